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

// FuzzReshareCommit feeds host-supplied acks to a party holding a pending
// reshared epoch: whatever they are, it commits only on the genuine
// members' acks of its own pending share, and never panics.
func FuzzReshareCommit(f *testing.F) {
	c := newCluster(f)
	key := c.keygen(api.AlgEdDSAEd25519)
	abc := []string{"a", "b", "c"}
	res, errs := c.reshareSession("a", key, abc, 1, 1, c.reshareCeremony(key, 0, abc, 1, abc, 1, nil))
	if len(errs) > 0 {
		f.Fatal(errs)
	}
	genuine := res["a"].Ack.Statement
	f.Add(genuine, res["a"].Ack.Signature, "b", res["b"].Ack.Signature)
	f.Add([]byte{0xa1, 0x01, 0x40}, []byte{}, "a", []byte{1})
	f.Fuzz(func(t *testing.T, stmt, sigA []byte, second string, sigB []byte) {
		acks := []api.ReshareAck{
			{PartyID: "a", Statement: stmt, Signature: sigA},
			{PartyID: second, Statement: stmt, Signature: sigB},
			{PartyID: "c", Statement: stmt, Signature: res["c"].Ack.Signature},
		}
		r, err := c.encl["b"].reshareCommit(context.Background(), &api.ReshareCommitRequest{KeyID: key.KeyID, Acks: acks})
		if err == nil && string(stmt) != string(genuine) {
			t.Fatalf("committed on a statement no member signed: %+v", r)
		}
	})
}

// FuzzShareBlobName: a blob name from the host parses to a key and epoch
// only if it is exactly share/KEY/EPOCH.
func FuzzShareBlobName(f *testing.F) {
	f.Add("share/00ff/3")
	f.Add("share//1")
	f.Add("share/k/01")
	f.Add("share/k/18446744073709551616")
	f.Fuzz(func(t *testing.T, name string) {
		k, ep, err := parseShareBlobName(name)
		if err == nil && shareBlobName(k, ep) != name {
			t.Fatalf("%q parsed to %q epoch %d", name, k, ep)
		}
	})
}
