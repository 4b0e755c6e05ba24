package party

import (
	"context"
	"testing"

	"github.com/sealsign/sealsign/enclave/api"
	"github.com/sealsign/sealsign/enclave/audit"
	"github.com/sealsign/sealsign/governance/approval"
	"github.com/sealsign/sealsign/governance/tx"
)

// FuzzEvaluate feeds host-supplied bytes — a signed request and an
// approval — to a real enclave's evaluate method: whatever they are, it
// answers with a verdict or an error, never a panic, and never allows a
// request its client did not sign.
func FuzzEvaluate(f *testing.F) {
	c := newCluster(f)
	key := c.keygen(api.AlgEdDSAEd25519)
	req := c.raw(key.KeyID, []byte("pay 1"))
	v := c.mustEvaluate("b", req)
	appr := c.gov.approve(f, "test", 0, v, approval.Approve, c.clock())
	evm := c.gov.request(f, "test", key.KeyID, tx.KindEVM, []byte{0x02, 0xc0}, c.clock())
	f.Add(req, appr)
	f.Add(evm, []byte{})
	f.Add([]byte{0xa2, 0x01, 0x40, 0x02, 0x40}, appr)
	f.Fuzz(func(t *testing.T, reqBytes, apprBytes []byte) {
		v, err := c.encl["b"].evaluateMethod(context.Background(), &api.EvaluateRequest{Request: reqBytes, Approvals: [][]byte{apprBytes}})
		if err == nil && v.Outcome == api.OutcomeAllow && string(reqBytes) != string(req) {
			// Only the seed request is signed by the client: a mutated one
			// that is allowed means a signature check was skipped.
			t.Fatalf("a request the client did not sign was allowed: %x", reqBytes)
		}
	})
}

// FuzzAuditTail: whatever the host claims is the last entry of the log, a
// restarted enclave either continues after it or refuses with an error.
func FuzzAuditTail(f *testing.F) {
	c := newCluster(f)
	c.keygen(api.AlgEdDSAEd25519)
	h := c.hosts["b"]
	f.Add(h.audit[len(h.audit)-1])
	f.Add([]byte{0xa2, 0x01, 0x41, 0x00, 0x02, 0x40})
	f.Fuzz(func(t *testing.T, tail []byte) {
		e := New(Config{Sealer: c.encl["b"].cfg.Sealer, Rand: c.encl["b"].cfg.Rand, Attester: c.encl["b"].cfg.Attester, Measurement: c.pcr0, Clock: c.clock})
		e.AttachHost(&memHost{c: c, me: "b", blobs: map[string][]byte{}, audit: nil})
		if _, err := e.init(context.Background(), &api.InitRequest{PartyID: "b", Manifest: c.manifest}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.restore(context.Background(), &api.RestoreRequest{AuditTail: tail}); err != nil {
			t.Fatal(err)
		}
		_ = e.auditAppend(context.Background(), audit.TypeCheckpoint, nil)
	})
}
