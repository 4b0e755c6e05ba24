package auditlog_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sealsign/sealsign/attestation/devnsm"
	"github.com/sealsign/sealsign/enclave/audit"
	"github.com/sealsign/sealsign/governance/canon"
	"github.com/sealsign/sealsign/host/auditlog"
	"github.com/sealsign/sealsign/host/auditlog/auditlogtest"
)

func verify(t *testing.T, c *auditlogtest.Cluster, id string, entries [][]byte, opts auditlog.Options) (*auditlog.Log, error) {
	t.Helper()
	opts.Manifest = c.Manifest
	if opts.PartyID == "" {
		opts.PartyID = id
	}
	return auditlog.Verify(auditlog.Slice(entries), opts)
}

func verifyAll(t *testing.T, c *auditlogtest.Cluster) []*auditlog.Log {
	t.Helper()
	var logs []*auditlog.Log
	for _, id := range c.IDs {
		l, err := verify(t, c, id, c.Party(id).Entries, auditlog.Options{})
		if err != nil {
			t.Fatalf("party %s: %v", id, err)
		}
		logs = append(logs, l)
	}
	return logs
}

func TestVerifyDemo(t *testing.T) {
	c := auditlogtest.New(t)
	c.Demo()
	logs := verifyAll(t, c)
	wantBoots := map[string]int{"a": 1, "b": 2, "c": 1}
	for _, l := range logs {
		p := c.Party(l.PartyID)
		if l.Head != p.Head() || len(l.Records) != len(p.Entries) {
			t.Errorf("party %s: head %+v, want %+v", l.PartyID, l.Head, p.Head())
		}
		if len(l.Boots) != wantBoots[l.PartyID] {
			t.Errorf("party %s: %d boots, want %d", l.PartyID, len(l.Boots), wantBoots[l.PartyID])
		}
		for _, b := range l.Boots {
			if b.Kind != "dev" || b.PCR != 0 || !bytes.Equal(b.Measurement, c.PCR0) || b.ModuleID != "party-"+l.PartyID || b.AttestedAt.IsZero() {
				t.Errorf("party %s: boot %+v", l.PartyID, b)
			}
			if l.Records[b.Index].Type != audit.TypeBoot || l.Records[b.Index].Seq != b.Seq {
				t.Errorf("party %s: boot %d does not point at its entry", l.PartyID, b.Seq)
			}
		}
		for _, r := range l.Records {
			if r.Boot < 0 || !bytes.Equal(l.Boots[r.Boot].SignerKey, r.SignerKey) {
				t.Fatalf("party %s seq %d: boot %d does not name its signer", l.PartyID, r.Seq, r.Boot)
			}
		}
	}
	if logs[0].Checkpoints != 1 {
		t.Errorf("party a: %d checkpoints, want 1", logs[0].Checkpoints)
	}
	cr := auditlog.CrossCheck(logs)
	if !cr.OK() || cr.Requests != 4 || cr.Signed != 4 || cr.Keys != 1 || len(cr.Unchecked) != 0 || len(cr.Notes) != 0 {
		t.Fatalf("cross-party: %+v", cr)
	}
}

// TestTamper: every kind of damage to party a's log is found at the
// entry where it is, with the kind of failure.
func TestTamper(t *testing.T) {
	c := auditlogtest.New(t)
	c.Demo()
	a := c.Party("a").Entries
	n := len(a)
	head := c.Party("a").Head()
	other := c.Party("b").Entries
	del := func(i int) [][]byte { return slices.Delete(slices.Clone(a), i, i+1) }
	swap := func(i, j int) [][]byte {
		out := slices.Clone(a)
		out[i], out[j] = out[j], out[i]
		return out
	}
	replace := func(i int, b []byte) [][]byte {
		out := slices.Clone(a)
		out[i] = b
		return out
	}
	flip := func(i, at int) [][]byte {
		e := slices.Clone(a[i])
		e[at] ^= 0x01
		return replace(i, e)
	}
	tests := []struct {
		name    string
		entries [][]byte
		opts    auditlog.Options
		kind    string
		index   int
		seq     uint64
	}{
		{"delete", del(6), auditlog.Options{}, "sequence", 6, 7},
		{"delete first", del(0), auditlog.Options{}, "sequence", 0, 1},
		{"reorder", swap(3, 4), auditlog.Options{}, "sequence", 3, 4},
		{"alter one byte of the body", flip(5, len(a[5])/2), auditlog.Options{}, "bad-signature", 5, 6},
		{"alter one byte of the signature", flip(5, len(a[5])-1), auditlog.Options{}, "bad-signature", 5, 6},
		{"alter one byte of the boot's attestation", flip(0, len(a[0])/2), auditlog.Options{}, "bad-signature", 0, 1},
		{"truncate", a[:n-3], auditlog.Options{Anchors: []audit.Head{head}}, "truncated", n - 3, uint64(n - 2)},
		{"truncate to nothing", nil, auditlog.Options{Anchors: []audit.Head{head}}, "truncated", 0, 1},
		{"replace with another party's entry", replace(4, other[4]), auditlog.Options{}, "party", 4, 5},
		{"replace the boot with another party's", replace(0, other[0]), auditlog.Options{}, "party", 0, 1},
		{"another party's whole log", other, auditlog.Options{}, "party", 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := verify(t, c, "a", tt.entries, tt.opts)
			checkPosition(t, err, tt.kind, tt.index, tt.seq)
			if l.Verified() || len(l.Records) != tt.index {
				t.Fatalf("log verified %v with %d records, want the %d before the failure", l.Verified(), len(l.Records), tt.index)
			}
		})
	}
}

func checkPosition(t *testing.T, err error, kind string, index int, seq uint64) {
	t.Helper()
	var ce *audit.ChainError
	if !errors.As(err, &ce) {
		t.Fatalf("error %v is not an *audit.ChainError", err)
	}
	if got := auditlog.KindName(err); got != kind || ce.Index != index || ce.Seq != seq {
		t.Fatalf("got %s at index %d seq %d (%v), want %s at index %d seq %d", got, ce.Index, ce.Seq, err, kind, index, seq)
	}
	if want := fmt.Sprintf("at entry %d (seq %d)", index, seq); !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not say %q", err, want)
	}
}

// TestUntrustedBoot: boot entries whose attestation does not bind the
// signer key to the pinned measurement under the manifest's dev root.
func TestUntrustedBoot(t *testing.T) {
	otherCA, err := devnsm.NewCA(rand.Reader, auditlogtest.Start)
	if err != nil {
		t.Fatal(err)
	}
	newKey := func() ed25519.PrivateKey {
		_, k, _ := ed25519.GenerateKey(rand.Reader)
		return k
	}
	pub := func(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }
	tests := []struct {
		name string
		boot func(c *auditlogtest.Cluster, p *auditlogtest.Party)
		msg  string
	}{
		{"another dev root", func(c *auditlogtest.Cluster, p *auditlogtest.Party) {
			k := newKey()
			p.BootWith(k, c.Attest("a", pub(k), otherCA, nil))
		}, "chain"},
		{"another pcr0", func(c *auditlogtest.Cluster, p *auditlogtest.Party) {
			k := newKey()
			p.BootWith(k, c.Attest("a", pub(k), nil, bytes.Repeat([]byte{0x66}, 48)))
		}, "pcr0"},
		{"document of another key", func(c *auditlogtest.Cluster, p *auditlogtest.Party) {
			p.BootWith(newKey(), c.Attest("a", pub(newKey()), nil, nil))
		}, "a document of another boot"},
		{"document of another party", func(c *auditlogtest.Cluster, p *auditlogtest.Party) {
			k := newKey()
			p.BootWith(k, c.Attest("b", pub(k), nil, nil))
		}, `names party "b", want "a"`},
		{"document replayed hours later", func(c *auditlogtest.Cluster, p *auditlogtest.Party) {
			k := newKey()
			doc := c.Attest("a", pub(k), nil, nil)
			c.Advance(4 * time.Hour) // past the leaf certificate's 3 h
			p.BootWith(k, doc)
		}, "expired"},
		{"not an attestation document", func(c *auditlogtest.Cluster, p *auditlogtest.Party) {
			p.BootWith(newKey(), []byte{0xd2, 0x84})
		}, "attestation of party"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := auditlogtest.New(t)
			c.Sign("req-1", "k", []string{"a", "b"}, auditlogtest.SignOptions{})
			p := c.Party("a")
			tt.boot(c, p)
			at := len(p.Entries) - 1
			c.Sign("req-2", "k", []string{"a", "b"}, auditlogtest.SignOptions{})
			_, err := verify(t, c, "a", p.Entries, auditlog.Options{})
			checkPosition(t, err, "untrusted", at, uint64(at+1))
			if !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("error %q does not contain %q", err, tt.msg)
			}
		})
	}
}

func TestSegment(t *testing.T) {
	c := auditlogtest.New(t)
	c.Demo()
	a := c.Party("a").Entries
	const cut = 5
	first, err := verify(t, c, "a", a[:cut], auditlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	key := first.Records[cut-1].SignerKey
	l, err := verify(t, c, "a", a[cut:], auditlog.Options{Start: first.Head, StartSignerKey: key, Anchors: []audit.Head{c.Party("a").Head()}})
	if err != nil || l.Head != c.Party("a").Head() || l.Records[0].Boot != -1 {
		t.Fatalf("segment: %v, head %+v, boot %d", err, l.Head, l.Records[0].Boot)
	}
	_, err = verify(t, c, "a", a[cut:], auditlog.Options{})
	checkPosition(t, err, "sequence", 0, 1)
	_, err = verify(t, c, "a", a[cut:], auditlog.Options{Start: first.Head, StartSignerKey: c.Party("b").Key.Public().(ed25519.PublicKey)})
	checkPosition(t, err, "untrusted", 0, cut+1)
}

func TestTrustErrors(t *testing.T) {
	c := auditlogtest.New(t)
	if _, err := auditlog.NewTrust(nil, "a"); err == nil {
		t.Error("trust without a manifest")
	}
	if _, err := auditlog.NewTrust(c.Manifest, "z"); err == nil {
		t.Error("trust of a party the manifest lacks")
	}
	tr, err := auditlog.NewTrust(c.Manifest, "a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Check(make([]byte, 32), nil, c.Now); err == nil || !strings.Contains(err.Error(), "no boot entry") {
		t.Errorf("nil boot: %v", err)
	}
	if _, err := auditlog.Verify(auditlog.Slice(nil), auditlog.Options{}); err == nil {
		t.Error("verify without a manifest")
	}
	if _, err := auditlog.Verify(auditlog.Slice(nil), auditlog.Options{Manifest: c.Manifest, PartyID: "z"}); err == nil {
		t.Error("verify of a party the manifest lacks")
	}
}

// TestCrossParty: each way a signer's record can disagree with the
// others' is a finding naming the request, the parties and the field.
func TestCrossParty(t *testing.T) {
	type change struct {
		skipRequest, skipResult bool
		payload, signature      bool
		policyVersion           uint64
		rule                    string
		badDigest, digests      bool
		refusedFirst            bool
		approval                bool
	}
	tests := []struct {
		name    string
		b       change
		field   string // "" for no finding
		note    bool
		parties []string
	}{
		{"agree", change{}, "", false, nil},
		{"signer lacks the request", change{skipRequest: true}, "request", false, []string{"b", "a"}},
		{"other payload hash", change{payload: true}, "payload_hash", false, []string{"b", "a"}},
		{"other policy version", change{policyVersion: 7}, "policy_version", false, []string{"b", "a"}},
		{"other signatures", change{signature: true}, "signatures", false, []string{"b", "a"}},
		{"other session digests", change{digests: true}, "digests", false, []string{"b", "a"}},
		{"no result", change{skipResult: true}, "result", false, []string{"b", "a"}},
		{"decision digest not its verdict's", change{badDigest: true}, "decision_digest", false, []string{"b"}},
		{"allowed by another rule", change{rule: "big-payments"}, "", true, nil},
		{"refused, then admitted on a retry", change{refusedFirst: true}, "", false, nil},
		{"counted another approval", change{approval: true}, "", true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := auditlogtest.New(t)
			r := c.NewRequest("req-x", "k", []string{"a", "b"}, auditlogtest.SignOptions{})
			r.Record(c.Party("a"))
			b := c.Party("b")
			rb := *r
			if tt.b.payload {
				rb.PayloadHash[0] ^= 1
			}
			if tt.b.policyVersion != 0 {
				rb.PolicyVersion = tt.b.policyVersion
			}
			if tt.b.rule != "" {
				rb.Rule = tt.b.rule
			}
			if tt.b.signature {
				rb.Signatures = [][]byte{bytes.Repeat([]byte{9}, 64)}
			}
			if tt.b.digests {
				rb.Digests = [][]byte{bytes.Repeat([]byte{8}, 32)}
			}
			if tt.b.refusedFirst {
				b.Append(audit.TypeRequest, rb.RequestBody())
				b.Append(audit.TypeVerdict, audit.Verdict{RequestID: rb.ID, PayloadHash: rb.PayloadHash, PolicyVersion: 1, Outcome: audit.OutcomeDeny,
					Denials: []audit.Denial{{Code: "proposal-mismatch"}}})
			}
			if !tt.b.skipRequest {
				b.Append(audit.TypeRequest, rb.RequestBody())
			}
			if tt.b.approval {
				b.Append(audit.TypeApproval, audit.Approval{RequestID: rb.ID, ApproverKeyID: "appr-alice", Decision: "approve", ApprovalDigest: [32]byte{1}})
			}
			v := rb.VerdictBody()
			if tt.b.badDigest {
				v.DecisionDigest = bytes.Repeat([]byte{1}, 32)
			}
			b.Append(audit.TypeVerdict, v)
			b.Append(audit.TypeSession, rb.SessionBody(0))
			if !tt.b.skipResult {
				res := rb.ResultBody()
				res.Digests = r.Digests // the result's own digests stay right
				b.Append(audit.TypeResult, res)
			}
			cr := auditlog.CrossCheck(verifyAll(t, c))
			if tt.note != (len(cr.Notes) > 0) {
				t.Fatalf("notes %v", cr.Notes)
			}
			if tt.field == "" {
				if !cr.OK() {
					t.Fatalf("findings %v", cr.Findings)
				}
				return
			}
			var got *auditlog.Finding
			for i, f := range cr.Findings {
				if f.Field == tt.field {
					got = &cr.Findings[i]
					break
				}
			}
			if got == nil {
				t.Fatalf("no %s finding in %v", tt.field, cr.Findings)
			}
			if got.RequestID != "req-x" || !slices.Equal(got.Parties, tt.parties) {
				t.Fatalf("finding %+v, want request req-x, parties %v", got, tt.parties)
			}
			if s := got.String(); !strings.HasPrefix(s, "request req-x: "+tt.field+": ") || (len(got.Seqs) > 0 && !strings.Contains(s, " seq ")) {
				t.Fatalf("finding text %q", s)
			}
		})
	}
}

func TestCrossPartyIncomplete(t *testing.T) {
	c := auditlogtest.New(t)
	c.Demo()
	logs := verifyAll(t, c)
	cr := auditlog.CrossCheck(logs[:2]) // c's log not given
	if !cr.OK() || len(cr.Unchecked) == 0 || !strings.Contains(strings.Join(cr.Unchecked, "\n"), "signer c's log was not given") {
		t.Fatalf("%+v", cr)
	}
	// A log that did not verify is not compared, and says so.
	bad, _ := verify(t, c, "c", c.Party("c").Entries[1:], auditlog.Options{})
	cr = auditlog.CrossCheck(append(logs[:2], bad))
	if !cr.OK() || !strings.Contains(strings.Join(cr.Unchecked, "\n"), "signer c's log did not verify") {
		t.Fatalf("%+v", cr)
	}
}

func TestCrossPartyKeygen(t *testing.T) {
	c := auditlogtest.New(t)
	c.Keygen("k1", "a", "b") // names a and b; c not a party
	c.Party("a").Append(audit.TypeCeremony, audit.Ceremony{Kind: "keygen", KeyID: "k2", Parties: []string{"a", "b", "c"}, Threshold: 1, PublicKey: []byte{2, 1}, Outcome: "done"})
	c.Party("b").Append(audit.TypeCeremony, audit.Ceremony{Kind: "keygen", KeyID: "k2", Parties: []string{"a", "b", "c"}, Threshold: 1, PublicKey: []byte{2, 2}, Outcome: "done"})
	cr := auditlog.CrossCheck(verifyAll(t, c))
	var fields []string
	for _, f := range cr.Findings {
		if f.KeyID != "k2" {
			t.Fatalf("finding about %s: %v", f.KeyID, f)
		}
		fields = append(fields, f.Field+":"+strings.Join(f.Parties, ","))
	}
	if want := []string{"public_key:b,a", "ceremony:c,a"}; !slices.Equal(fields, want) || cr.Keys != 2 {
		t.Fatalf("findings %v, want %v (%d keys)", fields, want, cr.Keys)
	}
}

func TestFetch(t *testing.T) {
	c := auditlogtest.New(t)
	c.Demo()
	entries := c.Party("a").Entries
	pages := func(stored [][]byte, size int) auditlog.PageFunc {
		return func(_ context.Context, from uint64) (string, [][]byte, error) {
			var out [][]byte
			for _, e := range stored {
				if s := seqOf(t, e); s >= from && len(out) < size {
					out = append(out, e)
				}
			}
			return "a", out, nil
		}
	}
	fetch := func(page auditlog.PageFunc, progress func(int)) (*auditlog.Log, error) {
		t.Helper()
		r, err := auditlog.Open(context.Background(), page, progress)
		if err != nil {
			return nil, err
		}
		return auditlog.Verify(r.Entries(), auditlog.Options{Manifest: c.Manifest, PartyID: r.PartyID})
	}
	var progress []int
	l, err := fetch(pages(entries, 4), func(n int) { progress = append(progress, n) })
	if err != nil || l.PartyID != "a" || len(l.Records) != len(entries) || len(progress) != (len(entries)+3)/4 {
		t.Fatalf("fetch: %v, %d entries of %d, progress %v", err, len(l.Records), len(entries), progress)
	}
	// A host that deleted entry 6 serves a log with a gap, found where it is.
	_, err = fetch(pages(slices.Delete(slices.Clone(entries), 5, 6), 4), nil)
	checkPosition(t, err, "sequence", 5, 6)
	// A host serving garbage forever: verification stops at the first.
	calls := 0
	garbage := func(context.Context, uint64) (string, [][]byte, error) {
		calls++
		return "a", [][]byte{[]byte("x")}, nil
	}
	_, err = fetch(garbage, nil)
	checkPosition(t, err, "malformed", 0, 1)
	if calls != 1 {
		t.Fatalf("%d pages fetched after a malformed entry", calls)
	}
	turncoat := func(_ context.Context, from uint64) (string, [][]byte, error) {
		if from == 1 {
			return "a", entries[:2], nil
		}
		return "b", entries[2:3], nil
	}
	if _, err := fetch(turncoat, nil); err == nil || !strings.Contains(err.Error(), `then for "b"`) {
		t.Fatalf("party switch: %v", err)
	}
	failing := func(context.Context, uint64) (string, [][]byte, error) {
		return "", nil, errors.New("connection refused")
	}
	if _, err := fetch(failing, nil); err == nil || !strings.Contains(err.Error(), "from seq 1: connection refused") {
		t.Fatalf("failing host: %v", err)
	}
}

func seqOf(t *testing.T, raw []byte) uint64 {
	t.Helper()
	var se audit.SignedEntry
	var e audit.Entry
	if err := canon.Unmarshal(raw, &se); err != nil {
		t.Fatal(err)
	}
	if err := canon.Unmarshal(se.Entry, &e); err != nil {
		t.Fatal(err)
	}
	return e.Seq
}

func TestTranscript(t *testing.T) {
	c := auditlogtest.New(t)
	c.Demo()
	logs := verifyAll(t, c)
	cs := auditlog.Ceremonies(logs, "")
	if len(cs) != 2 {
		t.Fatalf("%d ceremonies, want 2", len(cs))
	}
	kg, pu := cs[0], cs[1]
	if kg.Kind != "keygen" || kg.KeyID != "key-1" || !slices.Equal(kg.Parties, []string{"a", "b", "c"}) || kg.Threshold != 1 || len(kg.PublicKey) != 33 {
		t.Fatalf("keygen %+v", kg)
	}
	if pu.Kind != "policy-update" || pu.Version != "2" || !slices.Equal(pu.AuthorisedBy, []string{"admin-1", "admin-2"}) || !slices.Equal(pu.Parties, []string{"a", "b", "c"}) {
		t.Fatalf("policy update %+v", pu)
	}
	for _, cm := range cs {
		h := sha256.New()
		var parties []string
		for _, l := range logs { // in party order
			for _, r := range l.Records {
				if cb, ok := r.Body.(*audit.Ceremony); ok && cb.Kind == cm.Kind {
					h.Write(r.Hash[:])
					parties = append(parties, l.PartyID)
				}
			}
		}
		if !bytes.Equal(h.Sum(nil), cm.Transcript) || len(cm.Missing) != 0 || len(cm.Differences) != 0 {
			t.Fatalf("%s: transcript %x, want %x; missing %v; differences %v", cm.Kind, cm.Transcript, h.Sum(nil), cm.Missing, cm.Differences)
		}
		for i, e := range cm.Entries {
			if e.Party != parties[i] || e.Boot == nil || !bytes.Equal(e.Boot.Measurement, c.PCR0) {
				t.Fatalf("%s entry %d: %+v", cm.Kind, i, e)
			}
		}
	}
	// b rebooted before the policy update: its record names the second boot.
	if b := pu.Entries[1]; b.Party != "b" || b.Boot.Seq == 1 {
		t.Fatalf("policy update on b attributed to boot %+v", b.Boot)
	}
	if got := auditlog.Ceremonies(logs, "key-1"); len(got) != 1 || got[0].Kind != "keygen" {
		t.Fatalf("--key filter: %v", got)
	}
	var buf bytes.Buffer
	if err := auditlog.WriteReport(&buf, cs); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ceremony 1: keygen of key key-1", "threshold 1: any 2 sign", "authorised by  (not recorded)",
		"ceremony 2: policy-update to policy v2", "authorised by  admin-1, admin-2", fmt.Sprintf("measurement dev pcr0 %x", c.PCR0),
		"transcript     " + kg.Transcript.String()} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, buf.String())
		}
	}
	// A party that the keygen names but whose log lacks it.
	c2 := auditlogtest.New(t)
	c2.Keygen("k", "a", "b")
	c2.Party("c").Append(audit.TypeResult, audit.Result{RequestID: "x", Outcome: audit.OutcomeAborted})
	c2.Party("a").Append(audit.TypeCeremony, audit.Ceremony{Kind: "keygen", KeyID: "k9", Parties: []string{"a", "c"}, Outcome: "done"})
	cs = auditlog.Ceremonies(verifyAll(t, c2), "k9")
	if len(cs) != 1 || !slices.Equal(cs[0].Missing, []string{"c"}) {
		t.Fatalf("missing: %+v", cs)
	}
}
