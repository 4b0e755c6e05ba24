package party

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sealsign/sealsign/enclave/api"
	"github.com/sealsign/sealsign/enclave/audit"
	"github.com/sealsign/sealsign/governance/approval"
	"github.com/sealsign/sealsign/governance/tx"
)

// TestAuditCheckpointsAndKeyedHash: the log carries a checkpoint at least
// every checkpointEvery entries and on demand, each committing to the
// head before it (the chain verifies with them); a rejection's reason is
// in the log only as a keyed hash, which the enclave's hash endpoint
// reproduces for an auditor's search and no other text matches.
func TestAuditCheckpointsAndKeyedHash(t *testing.T) {
	c := newCluster(t)
	key := c.keygen(api.AlgEdDSAEd25519)
	ctx := context.Background()
	for i := range 8 {
		c.mustSign("a", key.KeyID, []string{"a", "b"}, c.raw(key.KeyID, fmt.Appendf(nil, "pay %d", i)))
	}
	cp, err := c.encl["b"].auditCheckpoint(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	entries := auditEntries(t, c.hosts["b"])
	var last, checkpoints int
	for i, e := range entries {
		if e.Type != audit.TypeCheckpoint {
			continue
		}
		checkpoints++
		if i-last > checkpointEvery+1 {
			t.Fatalf("entries %d..%d carry no checkpoint (every %d wanted)", last, i, checkpointEvery)
		}
		last = i
	}
	if checkpoints < 2 {
		t.Fatalf("%d checkpoints in %d entries; want periodic ones and the one asked for", checkpoints, len(entries))
	}
	tail := entries[len(entries)-1]
	if body, _ := tail.body.(*audit.Checkpoint); tail.Type != audit.TypeCheckpoint || tail.Seq != cp.Seq || body == nil || body.Count != cp.Seq-1 {
		t.Fatalf("last entry is %s seq %d (%+v); want the checkpoint just asked for at seq %d, committing to seq %d", tail.Type, tail.Seq, tail.body, cp.Seq, cp.Seq-1)
	}
	if err := c.verifyAudit("b"); err != nil {
		t.Fatalf("log with checkpoints: %v", err)
	}

	// A rejected request: its reason is stored as a keyed hash.
	evm := c.gov.request(t, "test", key.KeyID, tx.KindRaw, []byte("pay 99"), c.clock())
	v := c.mustEvaluate("b", evm)
	rej := c.gov.approve(t, "test", 1, v, approval.Reject, c.clock())
	ok := c.gov.approve(t, "test", 0, v, approval.Approve, c.clock())
	prop := c.proposal("a", key.KeyID, []string{"a", "b"}, evm)
	prop.Approvals = [][]byte{ok, rej}
	if _, errs := c.runFor(2*time.Second, c.resign("a", prop), []string{"b"}); errs["b"] == nil {
		t.Fatal("b signed a rejected request")
	}
	mac, err := c.encl["b"].auditHash(ctx, &api.AuditHashRequest{Value: []byte("not this week")})
	if err != nil {
		t.Fatal(err)
	}
	other, _ := c.encl["b"].auditHash(ctx, &api.AuditHashRequest{Value: []byte("not this week!")})
	if bytes.Equal(mac.MAC, other.MAC) {
		t.Fatal("different values hash alike")
	}
	var found bool
	for _, e := range auditEntries(t, c.hosts["b"]) {
		if a, ok := e.body.(*audit.Approval); ok && a.Decision == approval.Reject {
			found = true
			if !bytes.Equal(a.ReasonMAC, mac.MAC) {
				t.Fatalf("rejection reason stored as %x; the hash endpoint gives %x", a.ReasonMAC, mac.MAC)
			}
		}
		if bytes.Contains(e.Body, []byte("not this week")) {
			t.Fatalf("the rejection reason is in the log in clear (%s entry)", e.Type)
		}
	}
	if !found {
		t.Fatal("the refused request's rejection is not in b's log")
	}
	if _, err := c.encl["b"].auditHash(ctx, &api.AuditHashRequest{}); err == nil {
		t.Fatal("empty value hashed")
	}
}

// TestAuditLostAcknowledgement: the host stored an entry but its answer was
// lost. The party refuses what that entry was for, then learns from the
// host's tail that the entry is its own and continues after it: the next
// signing works and the chain has neither a gap nor a duplicate.
func TestAuditLostAcknowledgement(t *testing.T) {
	c := newCluster(t)
	key := c.keygen(api.AlgEdDSAEd25519)
	h := c.hosts["b"]
	h.mu.Lock()
	h.auditLoseAck = true
	h.mu.Unlock()
	if _, errs := c.sign("a", key.KeyID, []string{"a", "b"}, c.raw(key.KeyID, []byte("pay 1"))); errs["b"] == nil || !strings.Contains(errs["b"].Error(), "audit log not written") {
		t.Fatalf("b with its audit acknowledgement lost: %v; want a refusal naming the audit log", errs)
	}
	c.mustSign("a", key.KeyID, []string{"a", "b"}, c.raw(key.KeyID, []byte("pay 2")))
	if err := c.verifyAudit("b"); err != nil {
		t.Fatalf("b's log after a lost acknowledgement: %v", err)
	}
	// The chain went on after the entry the host kept (without settling,
	// the restarted chain would offer that seq again and the host refuse
	// it): one boot at the start, one where the chain restarted.
	boots := 0
	for _, e := range auditEntries(t, h) {
		if e.Type == audit.TypeBoot {
			boots++
		}
	}
	if boots != 2 {
		t.Fatalf("%d boot entries; want 2 (first boot, and the restart after the failed append)", boots)
	}
}

// TestAuditRecordsDenials: a verdict the host reports to a client (Record)
// is in the log when it is not allow — request, then a verdict naming the
// rule — and an evaluation without Record leaves no trace.
func TestAuditRecordsDenials(t *testing.T) {
	c := newClusterWith(t, clusterOptions{policy: []byte(psbtPolicy)}) // no raw rule: raw digests are denied
	key := c.keygen(api.AlgEdDSAEd25519)
	ctx := context.Background()
	h := c.hosts["a"]
	before := len(auditEntries(t, h))
	req := c.raw(key.KeyID, []byte("pay 1"))
	if _, err := c.encl["a"].evaluateMethod(ctx, &api.EvaluateRequest{Request: req}); err != nil {
		t.Fatal(err)
	}
	if n := len(auditEntries(t, h)); n != before {
		t.Fatalf("an evaluation without Record wrote %d entries", n-before)
	}
	v, err := c.encl["a"].evaluateMethod(ctx, &api.EvaluateRequest{Request: req, Record: true})
	if err != nil || v.Outcome != api.OutcomeDeny {
		t.Fatalf("raw digest under a policy without a raw rule: %+v, %v", v, err)
	}
	added := auditEntries(t, h)[before:]
	var types []string
	for _, e := range added {
		if e.Type != audit.TypeBoot && e.Type != audit.TypeCheckpoint {
			types = append(types, e.Type)
		}
	}
	if strings.Join(types, ",") != "request,verdict" {
		t.Fatalf("recorded %v; want request, verdict", types)
	}
	vb := added[len(added)-1].body.(*audit.Verdict)
	if vb.Outcome != api.OutcomeDeny || vb.RequestID != v.RequestID || len(vb.Denials) == 0 || vb.Denials[0].Code != "no-allow-rule" {
		t.Fatalf("recorded verdict %+v", vb)
	}
}
