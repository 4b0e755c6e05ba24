package party

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/sealsign/sealsign/enclave/api"
	"github.com/sealsign/sealsign/enclave/audit"
	gkeys "github.com/sealsign/sealsign/governance/keys"
)

// TestRestoreOncePerBoot: a host cannot restore twice (swapping in older
// counters, replay cache or audit head under a running party), and nothing
// that decides, signs or writes the log runs before the restore.
func TestRestoreOncePerBoot(t *testing.T) {
	c := newCluster(t)
	key := c.keygen(api.AlgEdDSAEd25519)
	ctx := context.Background()
	h := c.hosts["b"]
	h.mu.Lock()
	old := map[string][]byte{}
	for n, b := range h.blobs {
		old[n] = b
	}
	h.mu.Unlock()
	c.mustSign("a", key.KeyID, []string{"a", "b"}, c.raw(key.KeyID, []byte("pay 1")))

	var req api.RestoreRequest
	for n, b := range old {
		req.Blobs = append(req.Blobs, api.NamedBlob{Name: n, Blob: b})
	}
	if _, err := c.encl["b"].restore(ctx, &req); api.CodeOf(err) != api.CodeRejected || !strings.Contains(err.Error(), "already restored") {
		t.Fatalf("second restore with older blobs: %v; want a refusal", err)
	}

	// A fresh boot of b before its restore.
	e := New(Config{Sealer: c.encl["b"].cfg.Sealer, Rand: rand.Reader, Attester: c.encl["b"].cfg.Attester, Measurement: c.pcr0, Clock: c.clock})
	e.AttachHost(h)
	if _, err := e.init(ctx, &api.InitRequest{PartyID: "b", Manifest: c.manifest}); err != nil {
		t.Fatal(err)
	}
	calls := map[string]func() error{
		"evaluate": func() error {
			_, err := e.evaluateMethod(ctx, &api.EvaluateRequest{Request: c.raw(key.KeyID, []byte("pay 2"))})
			return err
		},
		"propose": func() error {
			_, err := e.propose(ctx, &api.ProposeRequest{Kind: api.KindSign, KeyID: key.KeyID, Parties: []string{"a", "b"}, Request: c.raw(key.KeyID, []byte("pay 3"))})
			return err
		},
		"policy update": func() error {
			_, err := e.policyUpdate(ctx, &api.PolicyUpdateRequest{Policy: c.policy(2, nil, 0, 1)})
			return err
		},
		"audit checkpoint": func() error { _, err := e.auditCheckpoint(ctx, nil); return err },
		"audit hash": func() error {
			_, err := e.auditHash(ctx, &api.AuditHashRequest{Value: []byte("x")})
			return err
		},
	}
	n := len(auditEntries(t, h))
	for name, call := range calls {
		if err := call(); api.CodeOf(err) != api.CodeUnavailable || !strings.Contains(err.Error(), "not restored") {
			t.Errorf("%s before restore: %v; want it refused", name, err)
		}
	}
	if got := len(auditEntries(t, h)); got != n {
		t.Fatalf("calls before restore wrote %d audit entries", got-n)
	}
}

// TestForgedAuditTail: a tail that its named key did not sign, or dated in
// the future, is refused; the party does not continue a log from it.
func TestForgedAuditTail(t *testing.T) {
	c := newCluster(t)
	key := c.keygen(api.AlgEdDSAEd25519)
	h := c.hosts["b"]
	h.mu.Lock()
	genuine := h.audit[len(h.audit)-1]
	h.mu.Unlock()
	var se audit.SignedEntry
	if err := api.Unmarshal(genuine, &se); err != nil {
		t.Fatal(err)
	}
	var en audit.Entry
	if err := api.Unmarshal(se.Entry, &en); err != nil {
		t.Fatal(err)
	}
	forge := func(edit func(*audit.Entry)) []byte {
		e := en
		edit(&e)
		body, err := api.Marshal(&e)
		if err != nil {
			t.Fatal(err)
		}
		out, err := api.Marshal(&audit.SignedEntry{Entry: body, Signature: se.Signature})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	for name, tail := range map[string][]byte{
		"seq moved on, old signature": forge(func(e *audit.Entry) { e.Seq += 100 }),
		"dated in a century":          forge(func(e *audit.Entry) { e.Time = time.Now().AddDate(100, 0, 0).UnixNano() }),
	} {
		t.Run(name, func(t *testing.T) {
			h.mu.Lock()
			h.audit = append(h.audit[:len(h.audit)-1:len(h.audit)-1], tail)
			h.mu.Unlock()
			c.restart("b")
			_, errs := c.runFor(2*time.Second, c.resign("a", c.proposal("a", key.KeyID, []string{"a", "b"}, c.raw(key.KeyID, []byte("pay")))), []string{"b"})
			if err := errs["b"]; err == nil || !strings.Contains(err.Error(), "host's last audit entry") {
				t.Fatalf("b continuing from a forged tail: %v", err)
			}
			h.mu.Lock()
			h.audit[len(h.audit)-1] = genuine
			h.mu.Unlock()
		})
	}
	c.restart("b")
	c.mustSign("a", key.KeyID, []string{"a", "b"}, c.raw(key.KeyID, []byte("pay 9")))
}

// TestUnsealedAuditSegment: the entries a host holds after the head a party
// sealed must be that party's — linked from the sealed head and signed by
// the sealing boot or an attested later one. Genuine unsealed entries (a
// recorded denial) are continued after a restart; an entry the host made
// up, however well formed, is refused.
func TestUnsealedAuditSegment(t *testing.T) {
	c := newClusterWith(t, clusterOptions{policy: []byte(psbtPolicy)}) // raw digests denied
	key := c.keygen(api.AlgEdDSAEd25519)
	ctx := context.Background()
	h := c.hosts["b"]
	// A recorded denial is written but not sealed.
	if v, err := c.encl["b"].evaluateMethod(ctx, &api.EvaluateRequest{Request: c.raw(key.KeyID, []byte("pay 1")), Record: true}); err != nil || v.Outcome != api.OutcomeDeny {
		t.Fatalf("evaluate: %+v %v", v, err)
	}
	c.restart("b")
	if _, err := c.encl["b"].auditCheckpoint(ctx, nil); err != nil {
		t.Fatalf("b continuing its own unsealed entries: %v", err)
	}

	// The host appends an entry of its own making after the tail.
	h.mu.Lock()
	tail := h.audit[len(h.audit)-1]
	var se audit.SignedEntry
	var en audit.Entry
	if err := api.Unmarshal(tail, &se); err != nil {
		t.Fatal(err)
	}
	if err := api.Unmarshal(se.Entry, &en); err != nil {
		t.Fatal(err)
	}
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	body, _ := api.Marshal(audit.Checkpoint{Count: en.Seq, Head: audit.Hash(tail)})
	forged := audit.Entry{Format: audit.FormatV1, PartyID: "b", Seq: en.Seq + 1, Time: en.Time + 1, Prev: audit.Hash(tail), Type: audit.TypeCheckpoint, Body: body, SignerKey: pub}
	fb, _ := api.Marshal(&forged)
	sb, _ := api.Marshal(&audit.SignedEntry{Entry: fb, Signature: ed25519.Sign(priv, gkeys.Message(audit.SignDomain, fb))})
	h.audit = append(h.audit, sb)
	h.mu.Unlock()
	c.restart("b")
	if _, err := c.encl["b"].auditCheckpoint(ctx, nil); api.CodeOf(err) != api.CodeRejected || !strings.Contains(err.Error(), "after the sealed head") {
		t.Fatalf("b continuing a log with an entry it did not write: %v", err)
	}
}
