package audit

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sealsign/sealsign/governance/canon"
	"github.com/sealsign/sealsign/governance/keys"
)

var t0 = time.Unix(1_760_000_000, 0)

func key(b byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{b}, ed25519.SeedSize))
}

func bootBody(b byte) Boot {
	return Boot{Measurement: bytes.Repeat([]byte{b}, 48), AttestationDocument: []byte{0xd2, b}, Software: "test"}
}

// bodies is one of each type after the boot entry; the checkpoint is
// appended through Chain.Checkpoint.
func bodies() []struct {
	typ  string
	body any
} {
	digest := sha256.Sum256([]byte("x"))
	return []struct {
		typ  string
		body any
	}{
		{TypeRequest, Request{RequestID: "req-0123456789abcdef", RequestDigest: digest, ClientKeyID: "ops-bot", KeyID: "treasury", Kind: "raw-digest", PayloadHash: digest, Signers: []string{"a", "b"}, IssuedAt: 1, ExpiresAt: 2}},
		{TypeVerdict, &Verdict{RequestID: "req-0123456789abcdef", PayloadHash: digest, PolicyVersion: 3, Outcome: OutcomeNeedsApproval, RuleIDs: []string{"small-payments"},
			Denials: []Denial{{Code: "approvals-missing", RuleID: "small-payments", Detail: "needs 1 of finance"}}}},
		{TypeApproval, Approval{RequestID: "req-0123456789abcdef", ApproverKeyID: "alice", Decision: "approve", ApprovalDigest: digest}},
		{TypeVerdict, Verdict{RequestID: "req-0123456789abcdef", PayloadHash: digest, PolicyVersion: 3, Outcome: OutcomeAllow, RuleIDs: []string{"small-payments"}}},
		{TypeSession, Session{RequestID: "req-0123456789abcdef", SessionID: digest[:], KeyID: "treasury", Epoch: 0, Signers: []string{"a", "b"}, Digests: [][]byte{digest[:]}}},
		{TypeResult, Result{RequestID: "req-0123456789abcdef", Outcome: OutcomeSigned, Digests: [][]byte{digest[:]}, Signatures: [][]byte{make([]byte, 65)}}},
		{TypeCeremony, Ceremony{Kind: "keygen", KeyID: "treasury", AuthorisedBy: []string{"admin-1", "admin-2"}, Parties: []string{"a", "b", "c"}, Threshold: 1, PublicKey: digest[:], Outcome: "done", Detail: map[string]string{"curve": "secp256k1"}}},
	}
}

// build writes a log for party: boot, one of each body, a checkpoint, then
// extra request entries.
func build(t testing.TB, party string, priv ed25519.PrivateKey, extra int) ([][]byte, *Chain) {
	t.Helper()
	c, err := NewChain(party, priv, Head{})
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	tick := t0
	add := func(b []byte, _ Head, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
		tick = tick.Add(time.Millisecond)
	}
	add(c.Append(TypeBoot, bootBody(priv[0]), tick))
	for _, b := range bodies() {
		add(c.Append(b.typ, b.body, tick))
	}
	add(c.Checkpoint(tick))
	for i := 0; i < extra; i++ {
		add(c.Append(TypeResult, &Result{RequestID: fmt.Sprintf("req-%016d", i), Outcome: OutcomeFailed, Error: "timeout in round 3 waiting for c"}, tick))
	}
	return out, c
}

func trustKeys(ks ...ed25519.PrivateKey) func([]byte) error {
	return func(k []byte) error {
		for _, p := range ks {
			if bytes.Equal(k, p.Public().(ed25519.PublicKey)) {
				return nil
			}
		}
		return fmt.Errorf("key %x unknown", k[:4])
	}
}

func TestVerifyIntact(t *testing.T) {
	entries, c := build(t, "party-a", key(1), 3)
	h, err := Verify(entries, trustKeys(key(1)))
	if err != nil {
		t.Fatal(err)
	}
	if h != c.Head() || h.Seq != uint64(len(entries)) {
		t.Fatalf("head %+v, chain head %+v", h, c.Head())
	}
	if h.Hash != Hash(entries[len(entries)-1]) {
		t.Fatal("head hash is not the last entry's hash")
	}
}

func TestTamper(t *testing.T) {
	a := key(1)
	entries, c := build(t, "party-a", a, 4) // 13 entries; checkpoint at index 8 (seq 9)
	other, _ := build(t, "party-b", key(2), 4)
	n := len(entries)
	final := c.Head()
	cpHead := Head{Seq: 9, Hash: Hash(entries[8])}
	del := func(i int) [][]byte { return append(append([][]byte{}, entries[:i]...), entries[i+1:]...) }
	swap := func(i, j int) [][]byte {
		out := append([][]byte{}, entries...)
		out[i], out[j] = out[j], out[i]
		return out
	}
	replace := func(i int, b []byte) [][]byte {
		out := append([][]byte{}, entries...)
		out[i] = b
		return out
	}

	tests := []struct {
		name    string
		entries [][]byte
		opts    VerifyOptions
		kind    error
		index   int
		seq     uint64
	}{
		{"delete middle", del(5), VerifyOptions{}, ErrSequence, 5, 6},
		{"delete first", del(0), VerifyOptions{}, ErrSequence, 0, 1},
		{"delete last with anchor", del(n - 1), VerifyOptions{Anchors: []Head{final}}, ErrTruncated, n - 1, uint64(n)},
		{"reorder", swap(6, 7), VerifyOptions{}, ErrSequence, 6, 7},
		{"duplicate", append(append(append([][]byte{}, entries[:4]...), entries[3]), entries[4:]...), VerifyOptions{}, ErrSequence, 4, 5},
		{"truncate after checkpoint", entries[:11], VerifyOptions{Anchors: []Head{final}}, ErrTruncated, 11, 12},
		{"truncate before checkpoint", entries[:6], VerifyOptions{Anchors: []Head{cpHead}}, ErrTruncated, 6, 7},
		{"truncate to nothing", nil, VerifyOptions{Anchors: []Head{cpHead}}, ErrTruncated, 0, 1},
		{"other party's entry", replace(4, other[4]), VerifyOptions{}, ErrParty, 4, 5},
		{"other party's first entry, party given", replace(0, other[0]), VerifyOptions{PartyID: "party-a"}, ErrParty, 0, 1},
		{"other party's first entry, party inferred", replace(0, other[0]), VerifyOptions{}, ErrParty, 1, 2},
		{"other party's whole log", other, VerifyOptions{PartyID: "party-a"}, ErrParty, 0, 1},
		{"untrusted key", entries, VerifyOptions{Trust: func([]byte, *Boot) error { return errors.New("not pinned") }}, ErrUntrusted, 0, 1},
		{"garbage entry", replace(3, []byte("junk")), VerifyOptions{}, ErrMalformed, 3, 4},
		{"empty entry", replace(3, nil), VerifyOptions{}, ErrMalformed, 3, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.opts.Trust == nil {
				tt.opts.Trust = func(k []byte, _ *Boot) error { return trustKeys(a, key(2))(k) }
			}
			_, err := VerifyWith(tt.entries, tt.opts)
			checkChainErr(t, err, tt.kind, tt.index, tt.seq)
		})
	}
}

func checkChainErr(t *testing.T, err error, kind error, index int, seq uint64) {
	t.Helper()
	var ce *ChainError
	if !errors.As(err, &ce) {
		t.Fatalf("error %v is not a *ChainError", err)
	}
	if !errors.Is(err, kind) || ce.Index != index || ce.Seq != seq {
		t.Fatalf("got %q (index %d, seq %d), want %v at index %d seq %d", err, ce.Index, ce.Seq, kind, index, seq)
	}
	if !strings.HasPrefix(err.Error(), "audit: ") || !strings.Contains(err.Error(), fmt.Sprintf("at entry %d (seq %d)", index, seq)) {
		t.Fatalf("error text %q does not name the position", err)
	}
}

// TestAlterEveryByte flips each byte of one entry in turn: every change is
// caught at that entry, never later and never missed.
func TestAlterEveryByte(t *testing.T) {
	entries, _ := build(t, "party-a", key(1), 0)
	const target = 4
	for i := range entries[target] {
		for _, bit := range []byte{0x01, 0x80} {
			tampered := append([][]byte{}, entries...)
			e := append([]byte{}, entries[target]...)
			e[i] ^= bit
			tampered[target] = e
			_, err := Verify(tampered, trustKeys(key(1)))
			var ce *ChainError
			if !errors.As(err, &ce) || ce.Index != target {
				t.Fatalf("byte %d ^ %#x: error %v, want one at entry %d", i, bit, err, target)
			}
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrBadSignature) {
				t.Fatalf("byte %d ^ %#x: unexpected kind: %v", i, bit, err)
			}
		}
	}
}

// forge signs an arbitrary entry with priv, for entries Chain refuses to
// write.
func forge(t testing.TB, priv ed25519.PrivateKey, e Entry) []byte {
	t.Helper()
	eb, err := canon.Marshal(&e)
	if err != nil {
		t.Fatal(err)
	}
	b, err := canon.Marshal(&SignedEntry{Entry: eb, Signature: ed25519.Sign(priv, keys.Message(SignDomain, eb))})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func decodeEntry(t testing.TB, b []byte) Entry {
	t.Helper()
	var se SignedEntry
	var e Entry
	if err := canon.Unmarshal(b, &se); err != nil {
		t.Fatal(err)
	}
	if err := canon.Unmarshal(se.Entry, &e); err != nil {
		t.Fatal(err)
	}
	return e
}

func mustBody(t testing.TB, v any) []byte {
	b, err := canon.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestForgedEntries: entries a signer could write but Chain never would.
func TestForgedEntries(t *testing.T) {
	a := key(1)
	entries, _ := build(t, "party-a", a, 0)
	const at = 5
	prev := decodeEntry(t, entries[at])
	variant := func(f func(*Entry)) [][]byte {
		e := prev
		f(&e)
		out := append([][]byte{}, entries[:at]...)
		return append(out, forge(t, a, e))
	}
	other := key(7)
	tests := []struct {
		name    string
		entries [][]byte
		kind    error
		msg     string
	}{
		{"format 2", variant(func(e *Entry) { e.Format = 2 }), ErrMalformed, "format 2 unsupported"},
		{"broken link", variant(func(e *Entry) { e.Prev[0] ^= 1 }), ErrLink, "prev is"},
		{"time backwards", variant(func(e *Entry) { e.Time = t0.UnixNano() - 1 }), ErrTime, "time"},
		{"zero time", variant(func(e *Entry) { e.Time = 0 }), ErrTime, "time"},
		{"unknown type", variant(func(e *Entry) { e.Type = "gossip" }), ErrMalformed, `type "gossip" unknown`},
		{"body of wrong type", variant(func(e *Entry) { e.Type = TypeBoot }), ErrMalformed, "boot body"},
		{"non-canonical body", variant(func(e *Entry) { e.Body = append([]byte{0xb9, 0x00, byte(len(prev.Body))}, prev.Body[1:]...) }), ErrMalformed, "body"},
		{"bad verdict outcome", variant(func(e *Entry) {
			e.Type, e.Body = TypeVerdict, mustBody(t, &Verdict{RequestID: "r", Outcome: "maybe"})
		}), ErrMalformed, `outcome "maybe" invalid`},
		{"deny without denials", variant(func(e *Entry) {
			e.Type, e.Body = TypeVerdict, mustBody(t, &Verdict{RequestID: "r", Outcome: OutcomeDeny})
		}), ErrMalformed, "without denials"},
		{"wrong checkpoint", variant(func(e *Entry) {
			e.Type, e.Body = TypeCheckpoint, mustBody(t, &Checkpoint{Count: at - 1, Head: prev.Prev})
		}), ErrCheckpoint, "checkpoint says 4 entries"},
		{"short signer key", variant(func(e *Entry) { e.SignerKey = e.SignerKey[:31] }), ErrMalformed, "signer key is 31 bytes"},
		{"bad party id", variant(func(e *Entry) { e.PartyID = "Party A" }), ErrMalformed, `party id "Party A" invalid`},
		{"key change without boot", func() [][]byte {
			e := prev
			e.SignerKey = other.Public().(ed25519.PublicKey)
			return append(append([][]byte{}, entries[:at]...), forge(t, other, e))
		}(), ErrBoot, "signed by key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Verify(tt.entries, trustKeys(a, other))
			checkChainErr(t, err, tt.kind, at, at+1)
			if !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("error %q does not contain %q", err, tt.msg)
			}
		})
	}
	t.Run("log not starting with boot", func(t *testing.T) {
		e := decodeEntry(t, entries[1])
		e.Seq, e.Prev = 1, [32]byte{}
		_, err := Verify([][]byte{forge(t, a, e)}, trustKeys(a))
		checkChainErr(t, err, ErrBoot, 0, 1)
	})
	t.Run("bad signature", func(t *testing.T) {
		var se SignedEntry
		if err := canon.Unmarshal(entries[at], &se); err != nil {
			t.Fatal(err)
		}
		se.Signature = ed25519.Sign(a, keys.Message("sealsign/v1/other", se.Entry))
		b, _ := canon.Marshal(&se)
		_, err := Verify(append(append([][]byte{}, entries[:at]...), b), trustKeys(a))
		checkChainErr(t, err, ErrBadSignature, at, at+1)
	})
	t.Run("oversize", func(t *testing.T) {
		_, err := Verify(append(append([][]byte{}, entries[:at]...), make([]byte, MaxEntrySize+1)), trustKeys(a))
		checkChainErr(t, err, ErrMalformed, at, at+1)
	})
}

// TestRestart: an enclave restarted with a new key continues the log from
// its sealed head with a boot entry; the verifier trusts each key at its
// boot and sees the attestation there.
func TestRestart(t *testing.T) {
	a, b := key(1), key(2)
	first, c1 := build(t, "party-a", a, 1)
	c2, err := NewChain("party-a", b, c1.Head())
	if err != nil {
		t.Fatal(err)
	}
	later := t0.Add(time.Hour)
	if _, _, err := c2.Append(TypeRequest, Request{RequestID: "x"}, later); err == nil || !strings.Contains(err.Error(), `want "boot"`) {
		t.Fatalf("non-boot first entry after restart: %v", err)
	}
	boot, _, err := c2.Append(TypeBoot, bootBody(2), later)
	if err != nil {
		t.Fatal(err)
	}
	res, _, err := c2.Append(TypeResult, Result{RequestID: "y", Outcome: OutcomeAborted}, later)
	if err != nil {
		t.Fatal(err)
	}
	all := append(append(append([][]byte{}, first...), boot), res)
	var seen []string
	h, err := VerifyWith(all, VerifyOptions{Trust: func(k []byte, bt *Boot) error {
		if bt == nil {
			return errors.New("no boot")
		}
		seen = append(seen, fmt.Sprintf("%x:%x", k[:2], bt.AttestationDocument))
		return trustKeys(a, b)(k)
	}})
	if err != nil {
		t.Fatal(err)
	}
	if h != c2.Head() {
		t.Fatalf("head %+v, want %+v", h, c2.Head())
	}
	wantSeen := []string{
		fmt.Sprintf("%x:d201", a.Public().(ed25519.PublicKey)[:2]),
		fmt.Sprintf("%x:d202", b.Public().(ed25519.PublicKey)[:2]),
	}
	if fmt.Sprint(seen) != fmt.Sprint(wantSeen) {
		t.Fatalf("trust calls %v, want %v", seen, wantSeen)
	}

	// Segment: verify only the entries after the first log's head.
	var nilBoot bool
	seg, err := VerifyWith(all[len(first)+1:], VerifyOptions{Start: func() Head {
		hh, _ := Verify(all[:len(first)+1], trustKeys(a, b))
		return hh
	}(), Trust: func(k []byte, bt *Boot) error { nilBoot = bt == nil; return trustKeys(b)(k) }})
	if err != nil || seg != h || !nilBoot {
		t.Fatalf("segment: head %+v err %v nil boot %v", seg, err, nilBoot)
	}
}

// TestFork: a host that rolls the enclave's head back makes it write a
// second seq n; a stored anchor from the first history catches it.
func TestFork(t *testing.T) {
	a := key(1)
	entries, c := build(t, "party-a", a, 0)
	anchor := c.Head()
	c2, _ := NewChain("party-a", key(3), Head{Seq: 5, Hash: Hash(entries[4]), Time: decodeEntry(t, entries[4]).Time})
	b1, _, err := c2.Append(TypeBoot, bootBody(3), t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	var rest [][]byte
	rest = append(rest, b1)
	for i := 0; len(rest) < len(entries)-5; i++ {
		b, _, err := c2.Append(TypeResult, Result{RequestID: "z", Outcome: OutcomeFailed}, t0.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		rest = append(rest, b)
	}
	forked := append(append([][]byte{}, entries[:5]...), rest...)
	if _, err := Verify(forked, trustKeys(a, key(3))); err != nil {
		t.Fatalf("a fork is a valid chain on its own: %v", err)
	}
	_, err = VerifyWith(forked, VerifyOptions{Trust: func(k []byte, _ *Boot) error { return trustKeys(a, key(3))(k) }, Anchors: []Head{anchor}})
	checkChainErr(t, err, ErrAnchor, len(entries)-1, anchor.Seq)
}

func TestVerifyOptionsErrors(t *testing.T) {
	if _, err := Verify(nil, nil); err == nil {
		t.Error("Verify without a trust check succeeded")
	}
	trust := func([]byte, *Boot) error { return nil }
	tests := []struct {
		name string
		opts VerifyOptions
	}{
		{"no trust", VerifyOptions{}},
		{"zero-seq start with hash", VerifyOptions{Trust: trust, Start: Head{Hash: [32]byte{1}}}},
		{"anchor seq 0", VerifyOptions{Trust: trust, Anchors: []Head{{}}}},
		{"anchor before start", VerifyOptions{Trust: trust, Start: Head{Seq: 5, Hash: [32]byte{1}}, Anchors: []Head{{Seq: 4}}}},
		{"anchor at start differs", VerifyOptions{Trust: trust, Start: Head{Seq: 5, Hash: [32]byte{1}}, Anchors: []Head{{Seq: 5, Hash: [32]byte{2}}}}},
		{"anchors disagree", VerifyOptions{Trust: trust, Anchors: []Head{{Seq: 5, Hash: [32]byte{1}}, {Seq: 5, Hash: [32]byte{2}}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := VerifyWith(nil, tt.opts); err == nil || !strings.HasPrefix(err.Error(), "audit: ") {
				t.Fatalf("error %v", err)
			}
		})
	}
	if h, err := Verify(nil, func([]byte) error { return nil }); err != nil || h != (Head{}) {
		t.Fatalf("empty log: %+v %v", h, err)
	}
}

func TestChainErrors(t *testing.T) {
	a := key(1)
	if _, err := NewChain("Party A", a, Head{}); err == nil {
		t.Error("bad party id accepted")
	}
	if _, err := NewChain("a", a[:10], Head{}); err == nil {
		t.Error("short key accepted")
	}
	if _, err := NewChain("a", a, Head{Hash: [32]byte{1}}); err == nil {
		t.Error("seq-0 head with a hash accepted")
	}
	if _, err := NewChain("a", a, Head{Seq: 3}); err == nil {
		t.Error("head without hash accepted")
	}
	c, _ := NewChain("a", a, Head{})
	if _, _, err := c.Append(TypeBoot, bootBody(1), t0); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		typ  string
		body any
		now  time.Time
		msg  string
	}{
		{"not a body", TypeRequest, "hello", t0, "string is not an audit body"},
		{"type mismatch", TypeVerdict, Request{RequestID: "r"}, t0, `entry type "verdict" with a request body`},
		{"nil body", TypeRequest, (*Request)(nil), t0, "nil *audit.Request body"},
		{"invalid body", TypeResult, Result{RequestID: "r", Outcome: OutcomeSigned}, t0, "without signatures"},
		{"invalid utf-8", TypeRequest, Request{RequestID: "r\xff"}, t0, "round-trip"},
		{"stale checkpoint", TypeCheckpoint, Checkpoint{Count: 0}, t0, "use Chain.Checkpoint"},
		{"time backwards", TypeRequest, Request{RequestID: "r"}, t0.Add(-time.Nanosecond), "refusing to write time backwards"},
		{"before 1970", TypeRequest, Request{RequestID: "r"}, time.Unix(0, 0), "not after 1970"},
		{"too large", TypeResult, Result{RequestID: "r", Outcome: OutcomeFailed, Error: strings.Repeat("e", MaxEntrySize)}, t0, "limit 262144"},
		{"empty boot", TypeBoot, Boot{}, t0, "attestation document is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := c.Head()
			_, _, err := c.Append(tt.typ, tt.body, tt.now)
			if err == nil || !strings.Contains(err.Error(), tt.msg) || !strings.HasPrefix(err.Error(), "audit: ") {
				t.Fatalf("error %v, want one containing %q", err, tt.msg)
			}
			if c.Head() != before {
				t.Fatal("failed Append moved the head")
			}
		})
	}
	c2, _ := NewChain("a", a, Head{})
	if _, _, err := c2.Append(TypeRequest, Request{RequestID: "r"}, t0); err == nil {
		t.Error("first entry other than boot accepted")
	}
}

// TestBootEntryVector pins the byte format. The entry encoding is
// assembled by hand from the documented key layout; Ed25519 is
// deterministic, so the chain hash is fixed too (regression value produced
// by this package at format 1: a change here is a format change).
func TestBootEntryVector(t *testing.T) {
	priv := key(1)
	c, _ := NewChain("party-a", priv, Head{})
	b, h, err := c.Append(TypeBoot, Boot{Measurement: []byte{1, 2, 3}, AttestationDocument: []byte{4}}, time.Unix(0, 1))
	if err != nil {
		t.Fatal(err)
	}
	var se SignedEntry
	if err := canon.Unmarshal(b, &se); err != nil {
		t.Fatal(err)
	}
	wantEntry := "a8" + "0101" + "02" + "67" + hex.EncodeToString([]byte("party-a")) + "0301" + "0401" +
		"055820" + strings.Repeat("00", 32) + "06" + "64" + hex.EncodeToString([]byte("boot")) +
		"07" + "49" + "a201430102030241" + "04" +
		"085820" + hex.EncodeToString(priv.Public().(ed25519.PublicKey))
	if got := hex.EncodeToString(se.Entry); got != wantEntry {
		t.Fatalf("entry\n got %s\nwant %s", got, wantEntry)
	}
	if got := hex.EncodeToString(h.Hash[:]); got != bootVectorHash {
		t.Fatalf("boot entry hash %s, want %s", got, bootVectorHash)
	}
}

const bootVectorHash = "b1fa1dece3ea41cdf524486e056437fb396d25553f52d4ad123f8c26b7535563"

func TestKeyedHash(t *testing.T) {
	salt := bytes.Repeat([]byte{7}, 16)
	h1, err := KeyedHash(salt, []byte("unknown vendor"))
	if err != nil {
		t.Fatal(err)
	}
	h2, _ := KeyedHash(salt, []byte("unknown vendor"))
	h3, _ := KeyedHash(bytes.Repeat([]byte{8}, 16), []byte("unknown vendor"))
	if !bytes.Equal(h1, h2) || bytes.Equal(h1, h3) || len(h1) != 32 {
		t.Fatal("keyed hash not deterministic per salt")
	}
	if _, err := KeyedHash(salt[:15], nil); err == nil {
		t.Fatal("short salt accepted")
	}
}

// TestChainConcurrentAppend: entries appended from many goroutines form one
// valid chain once stored in seq order.
func TestChainConcurrentAppend(t *testing.T) {
	c, _ := NewChain("party-a", key(1), Head{})
	boot, _, err := c.Append(TypeBoot, bootBody(1), t0)
	if err != nil {
		t.Fatal(err)
	}
	const n = 40
	out := make([][]byte, n+1)
	out[0] = boot
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			b, h, err := c.Append(TypeRequest, Request{RequestID: "r"}, t0.Add(time.Second))
			if err == nil {
				out[h.Seq-1] = b // distinct slots: seqs are unique
			}
			errs <- err
		}()
	}
	for i := 0; i < n; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Verify(out, trustKeys(key(1))); err != nil {
		t.Fatal(err)
	}
}
