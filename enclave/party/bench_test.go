package party

import (
	"context"
	"encoding/json"
	"os"
	"testing"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/sealsign/sealsign/enclave/api"
	"github.com/sealsign/sealsign/enclave/audit"
	"github.com/sealsign/sealsign/enclave/session"
)

// benchPolicy is the dev cluster's genesis policy (host/devcluster/
// policy.json: five rules, CEL allowlists and amount tiers) with velocity
// limits raised so that a run never trips them.
func benchPolicy(b *testing.B) []byte {
	raw, err := os.ReadFile("../../host/devcluster/policy.json")
	if err != nil {
		b.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		b.Fatal(err)
	}
	delete(doc, "description")
	doc["issued_at"], doc["not_before"] = 1767225600, 1767225600 // devcluster fills these in
	for _, r := range doc["rules"].([]any) {
		rule := r.(map[string]any)
		if v, ok := rule["velocity"].([]any); ok {
			for _, l := range v {
				if lim := l.(map[string]any); lim["max_count"] != nil {
					lim["max_count"] = 8000
				}
			}
		}
	}
	out, _ := json.Marshal(doc)
	return out
}

// BenchmarkGovernance measures what governance adds to one signature on
// one signing party, with real SoftHSM sealing and the audit log on an
// in-memory host: "evaluate" is the check of a proposal (client signature,
// EVM decoding, the policy's CEL rules, approvals, velocity); "admit" is
// the point of no return before the session (re-evaluation, replay cache,
// velocity charge, request and verdict audit entries, sealed state) plus
// what follows the session (session and result entries, sealed state
// again). The tss-lib session itself is not included: see make bench for
// the end-to-end latency it is a part of.
func BenchmarkGovernance(b *testing.B) {
	c, key := ecdsaCluster(b, benchPolicy(b))
	to := common.HexToAddress("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed")
	ctx := context.Background()
	e := c.encl["b"]
	proposal := func(nonce uint64) *session.Proposal {
		payload, _ := evmTransfer{typ: types.DynamicFeeTxType, chainID: 1, nonce: nonce, to: to, value: eth(50)}.payload(b)
		req := c.gov.request(b, "test", key.KeyID, "evm", payload, c.clock())
		prop, err := c.encl["a"].propose(ctx, &api.ProposeRequest{Kind: api.KindSign, KeyID: key.KeyID, Parties: []string{"a", "b"}, Request: req})
		if err != nil {
			b.Fatal(err)
		}
		_, p, err := session.ParseProposal(prop.Proposal)
		if err != nil {
			b.Fatal(err)
		}
		return p
	}
	b.Run("evaluate", func(b *testing.B) {
		p := proposal(1)
		b.ResetTimer()
		for range b.N {
			e.gov.mu.Lock()
			ev, err := e.evaluate("b", p.Request, p.Approvals, c.clock())
			if err == nil {
				err = e.matchProposal("b", ev, p)
			}
			e.gov.mu.Unlock()
			if err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "evals/s")
	})
	b.Run("admit", func(b *testing.B) {
		for i := range b.N {
			b.StopTimer()
			p := proposal(uint64(100 + i))
			b.StartTimer()
			ev, err := e.admit(ctx, "b", p)
			if err != nil {
				b.Fatal(err)
			}
			if err := e.auditAppend(ctx, audit.TypeSession, audit.Session{RequestID: ev.req.ID, SessionID: make([]byte, 32), KeyID: p.KeyID, Signers: p.Parties, Digests: p.Digests}); err != nil {
				b.Fatal(err)
			}
			if err := e.auditResult(ctx, audit.Result{RequestID: ev.req.ID, Outcome: audit.OutcomeSigned, Digests: p.Digests, Signatures: [][]byte{make([]byte, 64)}}); err != nil {
				b.Fatal(err)
			}
			e.gov.mu.Lock()
			err = e.sealGovernance(ctx, "b")
			e.gov.mu.Unlock()
			if err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/signature")
	})
}

// BenchmarkRefresh measures a full 2-of-3 refresh inside three in-process
// enclaves (SoftHSM epoch keys): the resharing session, sealing and storing
// every new share, the acks, and a commit that destroys the old epoch on
// every party. EdDSA only: an ECDSA refresh also needs fresh Paillier
// pre-parameters per party (the e2e test times one).
func BenchmarkRefresh(b *testing.B) {
	c := newCluster(b)
	key := c.keygen(api.AlgEdDSAEd25519)
	abc := []string{"a", "b", "c"}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		cres := c.mustReshare(key, abc, 1, abc, 1, uint64(i), uint64(i+1))
		if cres["a"].Outcome != "committed" {
			b.Fatalf("refresh %d: %+v", i, cres["a"])
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/refresh")
}
