package audit

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"sync"
	"testing"
	"time"
)

// benchLog builds a log of n entries the way a busy party writes them: a
// boot entry, then governed requests of two digests each (request,
// verdict, two sessions, result: about 400 bytes an entry on average) and a
// checkpoint every 16 entries. Building signs every entry, so it is slow
// (about a minute for a million); logs are built once per size.
func benchLog(b *testing.B, n int) ([][]byte, ed25519.PublicKey) {
	benchMu.Lock()
	defer benchMu.Unlock()
	if l, ok := benchLogs[n]; ok {
		return l, benchKey.Public().(ed25519.PublicKey)
	}
	c, err := NewChain("party-a", benchKey, Head{})
	if err != nil {
		b.Fatal(err)
	}
	out := make([][]byte, 0, n)
	now := time.Unix(1_760_000_000, 0)
	add := func(typ string, body any) {
		e, _, err := c.Append(typ, body, now)
		if err != nil {
			b.Fatal(err)
		}
		out = append(out, e)
		now = now.Add(time.Millisecond)
	}
	add(TypeBoot, Boot{Measurement: make([]byte, 48), AttestationDocument: make([]byte, 4500), Software: "sealsign-enclave"})
	since := 0
	for i := 0; len(out) < n; i++ {
		id := fmt.Sprintf("req-%032x", i)
		var seed [8]byte
		binary.BigEndian.PutUint64(seed[:], uint64(i))
		h := func(tag string) []byte { s := sha256.Sum256(append([]byte(tag), seed[:]...)); return s[:] }
		d1, d2 := h("digest-1"), h("digest-2")
		payload := sha256.Sum256(h("payload"))
		bodies := []struct {
			typ  string
			body any
		}{
			{TypeRequest, Request{RequestID: id, RequestDigest: sha256.Sum256(h("request")), ClientKeyID: "treasury-app", KeyID: "f3c1a4b2d5e6f708192a3b4c5d6e7f80",
				Kind: "evm-tx", PayloadHash: payload, Signers: []string{"a", "b"}, IssuedAt: now.Unix(), ExpiresAt: now.Unix() + 600}},
			{TypeVerdict, Verdict{RequestID: id, PayloadHash: payload, PolicyVersion: 3, Outcome: OutcomeAllow, RuleIDs: []string{"small-transfers"}, DecisionDigest: h("decision")}},
			{TypeSession, Session{RequestID: id, SessionID: h("session-1"), ProposalID: h("proposal-1"), KeyID: "f3c1a4b2d5e6f708192a3b4c5d6e7f80", Signers: []string{"a", "b"}, Digests: [][]byte{d1}}},
			{TypeSession, Session{RequestID: id, SessionID: h("session-2"), ProposalID: h("proposal-2"), KeyID: "f3c1a4b2d5e6f708192a3b4c5d6e7f80", Signers: []string{"a", "b"}, Digests: [][]byte{d2}}},
			{TypeResult, Result{RequestID: id, Outcome: OutcomeSigned, Digests: [][]byte{d1, d2}, Signatures: [][]byte{append(h("r1"), h("s1")...), append(h("r2"), h("s2")...)}}},
		}
		for _, x := range bodies {
			if len(out) == n {
				break
			}
			add(x.typ, x.body)
			if since++; since == 16 && len(out) < n {
				e, _, err := c.Checkpoint(now)
				if err != nil {
					b.Fatal(err)
				}
				out = append(out, e)
				since = 0
			}
		}
	}
	benchLogs[n] = out
	return out, benchKey.Public().(ed25519.PublicKey)
}

var (
	benchMu   sync.Mutex
	benchLogs = map[int][][]byte{}
	benchKey  = ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
)

// benchVerify verifies the log once per iteration with the streaming
// Verifier and reports entries/s (and MB/s through SetBytes).
func benchVerify(b *testing.B, n int) {
	start := time.Now()
	entries, pub := benchLog(b, n)
	if d := time.Since(start); d > time.Second {
		b.Logf("built %d entries in %v", n, d.Round(time.Millisecond))
	}
	total := 0
	for _, e := range entries {
		total += len(e)
	}
	b.SetBytes(int64(total))
	trust := func(k []byte, _ *Boot) error {
		if string(k) != string(pub) {
			return fmt.Errorf("key %x unknown", k[:4])
		}
		return nil
	}
	b.ResetTimer()
	for range b.N {
		v, err := NewVerifier(VerifyOptions{Trust: trust, PartyID: "party-a"})
		if err != nil {
			b.Fatal(err)
		}
		for _, e := range entries {
			if err := v.Add(e); err != nil {
				b.Fatal(err)
			}
		}
		if h, err := v.Finish(); err != nil || h.Seq != uint64(n) {
			b.Fatalf("head %+v: %v", h, err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
	b.ReportMetric(float64(total)/float64(n), "bytes/entry")
}

// BenchmarkVerify: a 10,000-entry log, for quick runs.
func BenchmarkVerify(b *testing.B) { benchVerify(b, 10_000) }

// BenchmarkVerify1M: a 1,000,000-entry log (about 400 MB). Building it
// takes about a minute; run it alone:
//
//	go test -run '^$' -bench Verify1M -benchtime 1x ./enclave/audit/
func BenchmarkVerify1M(b *testing.B) { benchVerify(b, 1_000_000) }
