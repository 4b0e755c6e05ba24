package policy

import (
	"fmt"
	"strings"
	"testing"
)

// benchPolicy is a realistic 20-rule policy: deny rules for raw digests,
// contract creation, approvals and a blocklist; per-chain, per-asset allow
// rules with amount tiers, allowlists, velocity limits and approvals.
func benchPolicy(tb testing.TB) *Policy {
	allow := "['" + strings.Join([]string{evmA, evmB, "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB", "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb"}, "', '") + "']"
	rules := []Rule{
		{ID: "deny-raw", Effect: EffectDeny, Condition: "request.kind == 'raw-digest'"},
		{ID: "deny-create", Effect: EffectDeny, Condition: "request.method == 'contract-create'"},
		{ID: "deny-approve", Effect: EffectDeny, Condition: "request.transfers.exists(t, t.action == 'approve')"},
		{ID: "deny-blocklist", Effect: EffectDeny, Condition: "request.transfers.exists(t, t.to in ['" + evmOther + "', '0x0000000000000000000000000000000000000000'])"},
		{ID: "deny-huge-fee", Effect: EffectDeny, Condition: "request.fee > units('100000000000000000')"},
	}
	tiers := []struct{ name, max string }{{"t1", "100000000000000000"}, {"t2", "1000000000000000000"}, {"t3", "10000000000000000000"}}
	for ci, chain := range []string{"eip155:1", "eip155:10", "eip155:8453"} {
		for ti, tier := range tiers {
			r := Rule{
				ID:     fmt.Sprintf("eth-%d-%s", ci, tier.name),
				Effect: EffectAllow,
				Condition: fmt.Sprintf("request.chain == '%s' && request.method in ['native', 'erc20.transfer'] && "+
					"request.transfers.all(t, t.to in %s) && request.transfers.all(t, t.asset == 'ETH' && t.amount < units('%s'))", chain, allow, tier.max),
				Velocity: []VelocityLimit{
					{ID: "rate", Window: 600, Scope: ScopeKey, MaxCount: 50},
					{ID: "daily", Window: 86400, Scope: ScopeKey, Asset: "ETH", MaxAmount: "100000000000000000000"},
				},
			}
			if ti > 0 {
				r.Approvals = &ApprovalRequirement{Logic: LogicAnd, Groups: []GroupThreshold{{Group: "treasury", Threshold: ti}}}
			}
			rules = append(rules, r)
		}
	}
	for i := 0; i < 6; i++ {
		rules = append(rules, Rule{
			ID:        fmt.Sprintf("btc-%d", i),
			Effect:    EffectAllow,
			Condition: fmt.Sprintf("request.chain == '%s' && request.transfers.all(t, t.change || t.to in ['%s']) && request.transfers.filter(t, !t.change).map(t, t.amount).sum() < units(%d)", btcMain, btcA, (i+1)*1000000),
			Velocity:  []VelocityLimit{{ID: "dest", Window: 3600, Scope: ScopeDestination, Asset: "BTC", MaxAmount: "100000000"}},
			Approvals: &ApprovalRequirement{Logic: LogicOr, Groups: []GroupThreshold{{Group: "treasury", Threshold: 2}, {Group: "ops", Threshold: 1}}},
		})
	}
	p := &Policy{Format: 1, ClusterID: testCluster, Version: 1, IssuedAt: t0.Unix() - 60, NotBefore: t0.Unix() - 60, Rules: rules}
	if len(p.Rules) != 20 {
		tb.Fatalf("%d rules", len(p.Rules))
	}
	if err := p.Validate(); err != nil {
		tb.Fatal(err)
	}
	return p
}

func BenchmarkEvaluate20Rules(b *testing.B) {
	p := benchPolicy(b)
	in := evmInput(transferSpec{"ETH", evmB, "500000000000000000", false})
	in.Summary.Chain = "eip155:10"
	in.Approvals = []Approver{{KeyID: "bob-k", Owner: "bob", Groups: []string{"treasury"}}}
	vel := NewVelocityState()
	// Some history in the state.
	for i := 0; i < 40; i++ {
		d := p.Evaluate(in, vel)
		if d.Outcome != Allow {
			b.Fatalf("setup: %v", d.Err())
		}
		if err := vel.Record(in, d); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		d := p.Evaluate(in, vel)
		if d.Outcome != Allow {
			b.Fatal(d.Err())
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "evals/s")
}
