package policy

import (
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestEvaluateDefaultPolicy(t *testing.T) {
	p := defaultPolicy(t)
	treasury := func(owners ...string) []Approver {
		var out []Approver
		for _, o := range owners {
			out = append(out, Approver{KeyID: o + "-approver", Owner: o, Groups: []string{"treasury"}})
		}
		return out
	}
	withApprovals := func(in Input, a []Approver) Input { in.Approvals = a; return in }
	tests := []struct {
		name    string
		in      Input
		outcome Outcome
		rule    string // allowing rule
		code    Code   // a denial code expected
		codeFor string // rule of that denial
		clause  string // substring of that denial's clause
	}{
		{name: "small eth to allowlist", in: evmInput(transferSpec{"ETH", evmA, "999999999999999999", false}), outcome: Allow, rule: "eth-small"},
		{name: "evm destination lower case is normalised", in: evmInput(transferSpec{"ETH", strings.ToLower(evmB), "5", false}), outcome: Allow, rule: "eth-small"},
		{name: "usdc under limit", in: evmInput(transferSpec{usdc, evmB, "2499999999", false}), outcome: Allow, rule: "eth-small"},
		{name: "usdc contract upper case is normalised", in: evmInput(transferSpec{strings.ToUpper(usdc[:6]) + strings.ToUpper(usdc[6:]), evmB, "1", false}), outcome: Allow, rule: "eth-small"},
		{name: "eth to unknown address", in: evmInput(transferSpec{"ETH", evmOther, "1", false}), outcome: Deny, code: ConditionFalse, codeFor: "eth-small", clause: "t.to in"},
		{name: "exactly 1 eth needs treasury", in: evmInput(transferSpec{"ETH", evmA, oneETH, false}), outcome: NeedsApproval, code: ApprovalsMissing, codeFor: "eth-large"},
		{name: "2^64+1 wei needs treasury", in: evmInput(transferSpec{"ETH", evmA, "18446744073709551617", false}), outcome: NeedsApproval, code: ApprovalsMissing, codeFor: "eth-large"},
		{name: "large eth with 2 treasury approvals", in: withApprovals(evmInput(transferSpec{"ETH", evmA, "5000000000000000000", false}), treasury("bob", "carol")), outcome: Allow, rule: "eth-large"},
		{name: "large eth with 1 approval", in: withApprovals(evmInput(transferSpec{"ETH", evmA, "5000000000000000000", false}), treasury("bob")), outcome: NeedsApproval, code: ApprovalsMissing, codeFor: "eth-large"},
		{name: "initiator self-approval refused", in: withApprovals(evmInput(transferSpec{"ETH", evmA, "5000000000000000000", false}), treasury("bob", "alice")), outcome: NeedsApproval, code: ApprovalsMissing, codeFor: "eth-large"},
		{name: "same owner twice counts once", in: withApprovals(evmInput(transferSpec{"ETH", evmA, "5000000000000000000", false}), append(treasury("bob"), Approver{KeyID: "bob-2", Owner: "bob", Groups: []string{"treasury"}})), outcome: NeedsApproval, code: ApprovalsMissing, codeFor: "eth-large"},
		{name: "approver of another group", in: withApprovals(evmInput(transferSpec{"ETH", evmA, "5000000000000000000", false}), append(treasury("bob"), Approver{KeyID: "dave", Owner: "dave", Groups: []string{"ops"}})), outcome: NeedsApproval, code: ApprovalsMissing, codeFor: "eth-large"},
		{name: "large eth to unknown address is denied not pending", in: withApprovals(evmInput(transferSpec{"ETH", evmOther, "5000000000000000000", false}), treasury("bob", "carol")), outcome: Deny, code: NoAllowRule},
		{name: "contract call denied", in: func() Input {
			in := evmInput(transferSpec{"ETH", evmA, "1", false})
			in.Summary.Method = "contract-call"
			return in
		}(), outcome: Deny, code: ConditionFalse, codeFor: "eth-small", clause: `request.method in`},
		{name: "wrong chain", in: func() Input {
			in := evmInput(transferSpec{"ETH", evmA, "1", false})
			in.Summary.Chain = "eip155:5"
			return in
		}(), outcome: Deny, code: ConditionFalse, codeFor: "eth-small", clause: `request.chain == "eip155:1"`},
		{name: "fee too high", in: func() Input {
			in := evmInput(transferSpec{"ETH", evmA, "1", false})
			in.Summary.Fee = amt("10000000000000001")
			return in
		}(), outcome: Deny, code: ConditionFalse, codeFor: "eth-small", clause: "request.fee <="},
		{name: "raw digest denied by default", in: rawInput(), outcome: Deny, code: DenyRuleMatched, codeFor: "deny-raw"},
		{name: "btc small with change", in: btcInput("1000", transferSpec{"BTC", btcA, "9000000", false}, transferSpec{"BTC", btcOther, "50000000", true}), outcome: Allow, rule: "btc-small"},
		{name: "btc bech32 upper case is normalised", in: btcInput("1000", transferSpec{"BTC", strings.ToUpper(btcA), "1000", false}), outcome: Allow, rule: "btc-small"},
		{name: "btc total over 0.1", in: btcInput("1000", transferSpec{"BTC", btcA, "6000000", false}, transferSpec{"BTC", btcA, "4000000", false}), outcome: Deny, code: ConditionFalse, codeFor: "btc-small", clause: ".sum() <"},
		{name: "btc to unknown", in: btcInput("1000", transferSpec{"BTC", btcOther, "1000", false}), outcome: Deny, code: ConditionFalse, codeFor: "btc-small", clause: "t.change || t.to in"},
		{name: "btc fee too high", in: btcInput("200001", transferSpec{"BTC", btcA, "1000", false}), outcome: Deny, code: ConditionFalse, codeFor: "btc-small", clause: "request.fee"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := p.Evaluate(tc.in, NewVelocityState())
			if d.Outcome != tc.outcome {
				t.Fatalf("outcome %s, want %s; %v", d.Outcome, tc.outcome, d.Err())
			}
			if d.RuleID != tc.rule {
				t.Fatalf("allowing rule %q, want %q", d.RuleID, tc.rule)
			}
			if tc.outcome == Allow && d.Err() != nil {
				t.Fatalf("Err() = %v for an allow", d.Err())
			}
			if tc.code != "" {
				x, ok := findDenial(d, tc.code, tc.codeFor)
				if !ok {
					t.Fatalf("no %s denial for rule %q in %v", tc.code, tc.codeFor, d.Err())
				}
				if !strings.Contains(x.Clause, tc.clause) {
					t.Fatalf("clause %q, want it to contain %q", x.Clause, tc.clause)
				}
			}
			if d.Outcome == Deny && d.Denials[0].Code == NoAllowRule && len(d.Denials) != 4 {
				t.Fatalf("want no-allow-rule plus one reason per allow rule (3), got %v", d.Err())
			}
		})
	}
}

func TestApprovalsDetail(t *testing.T) {
	p := defaultPolicy(t)
	in := evmInput(transferSpec{"ETH", evmA, "5000000000000000000", false})
	in.Approvals = []Approver{{KeyID: "a1", Owner: "alice", Groups: []string{"treasury"}}, {KeyID: "b1", Owner: "bob", Groups: []string{"treasury"}}}
	d := p.Evaluate(in, NewVelocityState())
	if d.Outcome != NeedsApproval || len(d.Pending) != 1 {
		t.Fatalf("got %s %+v", d.Outcome, d.Pending)
	}
	g := d.Pending[0].Groups[0]
	if g.Have != 1 || g.Need != 1 || g.Excluded != 1 || g.Threshold != 2 {
		t.Fatalf("group status %+v, want have 1 need 1 excluded 1", g)
	}
	x, _ := findDenial(d, ApprovalsMissing, "eth-large")
	if !strings.Contains(x.Detail, `group "treasury" has 1 of 2 (needs 1 more) (1 approval by the initiator not counted)`) {
		t.Fatalf("detail %q", x.Detail)
	}
}

func TestApprovalLogic(t *testing.T) {
	rule := func(logic string, allowInitiator bool) Rule {
		return Rule{ID: "r", Effect: EffectAllow, Condition: "true", Approvals: &ApprovalRequirement{
			Logic: logic, AllowInitiator: allowInitiator,
			Groups: []GroupThreshold{{Group: "treasury", Threshold: 2}, {Group: "compliance", Threshold: 1}},
		}}
	}
	ap := func(owner string, groups ...string) Approver {
		return Approver{KeyID: owner + "-k", Owner: owner, Groups: groups}
	}
	tests := []struct {
		name      string
		logic     string
		initiator bool
		approvers []Approver
		want      Outcome
	}{
		{"and: none", LogicAnd, false, nil, NeedsApproval},
		{"and: treasury only", LogicAnd, false, []Approver{ap("bob", "treasury"), ap("carol", "treasury")}, NeedsApproval},
		{"and: both met", LogicAnd, false, []Approver{ap("bob", "treasury"), ap("carol", "treasury"), ap("dave", "compliance")}, Allow},
		{"and: one owner in both groups counts in each", LogicAnd, false, []Approver{ap("bob", "treasury", "compliance"), ap("carol", "treasury")}, Allow},
		{"or: compliance alone", LogicOr, false, []Approver{ap("dave", "compliance")}, Allow},
		{"or: treasury 1 of 2", LogicOr, false, []Approver{ap("bob", "treasury")}, NeedsApproval},
		{"or: initiator refused", LogicOr, false, []Approver{ap("alice", "compliance")}, NeedsApproval},
		{"or: initiator allowed", LogicOr, true, []Approver{ap("alice", "compliance")}, Allow},
		{"and: initiator allowed completes treasury", LogicAnd, true, []Approver{ap("alice", "treasury"), ap("bob", "treasury", "compliance")}, Allow},
		{"approver without owner ignored", LogicOr, false, []Approver{{KeyID: "x", Groups: []string{"compliance"}}}, NeedsApproval},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := newPolicy(t, rule(tc.logic, tc.initiator))
			in := rawInput()
			in.Approvals = tc.approvers
			if d := p.Evaluate(in, nil); d.Outcome != tc.want {
				t.Fatalf("outcome %s, want %s: %v", d.Outcome, tc.want, d.Err())
			}
		})
	}
}

func TestDenyWinsAndListsEveryDenyRule(t *testing.T) {
	p := newPolicy(t,
		Rule{ID: "allow-all", Effect: EffectAllow, Condition: "true"},
		Rule{ID: "deny-other", Effect: EffectDeny, Condition: "request.transfers.exists(t, t.to == '" + evmOther + "')"},
		Rule{ID: "deny-big", Effect: EffectDeny, Condition: "request.transfers.exists(t, t.amount > units(1000))"},
		Rule{ID: "deny-never", Effect: EffectDeny, Condition: "false"},
	)
	d := p.Evaluate(evmInput(transferSpec{"ETH", evmOther, "1001", false}), nil)
	if d.Outcome != Deny || !slices.Equal(codes(d), []Code{DenyRuleMatched, DenyRuleMatched}) || d.Denials[0].RuleID != "deny-other" || d.Denials[1].RuleID != "deny-big" {
		t.Fatalf("got %v", d.Err())
	}
	if d := p.Evaluate(evmInput(transferSpec{"ETH", evmA, "1000", false}), nil); d.Outcome != Allow || d.RuleID != "allow-all" {
		t.Fatalf("got %v", d.Err())
	}
}

func TestUnitsArithmetic(t *testing.T) {
	in := evmInput(transferSpec{"ETH", evmA, "18446744073709551617", false}, transferSpec{"ETH", evmB, "0", false})
	tests := []struct {
		cond string
		want bool
	}{
		{"request.transfers[0].amount > units('18446744073709551616')", true},
		{"request.transfers[0].amount == units('18446744073709551617')", true},
		{"request.transfers[0].amount >= units('18446744073709551618')", false},
		{"request.transfers[0].amount < units(18446744073709551615u)", false},
		{"request.transfers[1].amount == units(0)", true},
		{"request.transfers[1].amount == units('0')", true},
		{"request.transfers[1].amount <= units(0) && request.transfers[1].amount >= units(0)", true},
		{"request.transfers.map(t, t.amount).sum() == units('18446744073709551617')", true},
		{"request.transfers[0].amount + request.transfers[0].amount == units('36893488147419103234')", true},
		{"string(request.transfers[0].amount) == '18446744073709551617'", true},
		{"request.transfers[0].amount in [units(1), units('18446744073709551617')]", true},
		{"request.transfers[0].amount != units(1)", true},
		{"units('115792089237316195423570985008687907853269984665640564039457584007913129639935') > request.transfers[0].amount", true},
		{"request.fee == units(21000000000000)", true},
		{"request.transfers.filter(t, t.amount > units(0)).size() == 1", true},
		{"request.digest_count == 1 && size(request.payload_hash) == 64", true},
		{"now == timestamp('2026-01-01T01:00:00Z')", true},
		{"request.initiator == 'alice' && request.client_id == 'client-1' && request.key_id == 'key-1'", true},
	}
	for _, tc := range tests {
		t.Run(tc.cond, func(t *testing.T) {
			p := newPolicy(t, Rule{ID: "r", Effect: EffectAllow, Condition: tc.cond})
			d := p.Evaluate(in, nil)
			if got := d.Outcome == Allow; got != tc.want {
				t.Fatalf("got %v, want %v: %v", got, tc.want, d.Err())
			}
		})
	}
}

func TestConditionErrors(t *testing.T) {
	// units() of a runtime string that is not a number: the allow rule does
	// not match, the deny rule does (fail closed).
	bad := "units(request.method) > units(0)"
	p := newPolicy(t, Rule{ID: "allow", Effect: EffectAllow, Condition: bad})
	d := p.Evaluate(evmInput(), nil)
	if x, ok := findDenial(d, ConditionError, "allow"); d.Outcome != Deny || !ok || !strings.Contains(x.Detail, "not a non-negative decimal") {
		t.Fatalf("got %v", d.Err())
	}
	p = newPolicy(t, Rule{ID: "allow", Effect: EffectAllow, Condition: "true"}, Rule{ID: "deny", Effect: EffectDeny, Condition: bad})
	d = p.Evaluate(evmInput(), nil)
	if _, ok := findDenial(d, ConditionError, "deny"); d.Outcome != Deny || !ok {
		t.Fatalf("got %v", d.Err())
	}
}

func TestCostLimit(t *testing.T) {
	list := "[" + strings.TrimSuffix(strings.Repeat("1,", 100), ",") + "]"
	expensive := list + ".all(a, " + list + ".all(b, " + list + ".all(c, a + b + c > 0)))"
	if len(expensive) > MaxConditionLen {
		t.Fatalf("test condition too long: %d", len(expensive))
	}
	p := newPolicy(t,
		Rule{ID: "allow-expensive", Effect: EffectAllow, Condition: "request.method == 'native' && " + expensive},
	)
	d := p.Evaluate(evmInput(), nil)
	x, ok := findDenial(d, CostExceeded, "allow-expensive")
	if d.Outcome != Deny || !ok || !strings.HasPrefix(x.Clause, "[1, 1") {
		t.Fatalf("got %v", d.Err())
	}
	p = newPolicy(t,
		Rule{ID: "allow", Effect: EffectAllow, Condition: "true"},
		Rule{ID: "deny-expensive", Effect: EffectDeny, Condition: "!(" + expensive + ")"},
	)
	d = p.Evaluate(evmInput(), nil)
	if _, ok := findDenial(d, CostExceeded, "deny-expensive"); d.Outcome != Deny || !ok {
		t.Fatalf("deny rule over budget must deny: %v", d.Err())
	}
}

func TestFailingClause(t *testing.T) {
	p := newPolicy(t, Rule{ID: "r", Effect: EffectAllow,
		Condition: "request.kind == 'evm' && (request.method == 'native' || request.method == 'erc20.transfer') && request.transfers.all(t, t.amount < units(10)) && request.fee < units(1)"})
	tests := []struct {
		name   string
		in     Input
		clause string
	}{
		{"kind", rawInput(), `request.kind == "evm"`},
		{"method", func() Input { in := evmInput(); in.Summary.Method = "contract-call"; return in }(), `request.method == "native" || request.method == "erc20.transfer"`},
		{"amount", evmInput(transferSpec{"ETH", evmA, "10", false}), `request.transfers.all(t, t.amount < units(10))`},
		{"fee", evmInput(transferSpec{"ETH", evmA, "9", false}), `request.fee < units(1)`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := p.Evaluate(tc.in, nil)
			x, ok := findDenial(d, ConditionFalse, "r")
			if !ok || x.Clause != tc.clause {
				t.Fatalf("clause %q, want %q (%v)", x.Clause, tc.clause, d.Err())
			}
		})
	}
	// A single-conjunct condition reports itself.
	p = newPolicy(t, Rule{ID: "one", Effect: EffectAllow, Condition: "request.kind == 'x'"})
	if x, _ := findDenial(p.Evaluate(evmInput(), nil), ConditionFalse, "one"); x.Clause != "request.kind == 'x'" {
		t.Fatalf("clause %q", x.Clause)
	}
}

func TestEvaluatePreconditions(t *testing.T) {
	p := defaultPolicy(t)
	small := evmInput(transferSpec{"ETH", evmA, "1", false})
	tests := []struct {
		name string
		p    *Policy
		in   func(Input) Input
		code Code
	}{
		{"wrong cluster", p, func(in Input) Input { in.ClusterID = "other"; return in }, WrongCluster},
		{"not yet effective", p, func(in Input) Input { in.Now = time.Unix(p.NotBefore-1, 0); return in }, NotYetEffective},
		{"rejected", p, func(in Input) Input { in.Rejected = true; return in }, Rejected},
		{"zero time", p, func(in Input) Input { in.Now = time.Time{}; return in }, NotYetEffective},
		{"nil amount", p, func(in Input) Input { in.Summary.Transfers[0].Amount = nil; return in }, InvalidInput},
		{"negative amount", p, func(in Input) Input { in.Summary.Transfers[0].Amount = big.NewInt(-1); return in }, InvalidInput},
		{"negative fee", p, func(in Input) Input { in.Summary.Fee = big.NewInt(-1); return in }, InvalidInput},
		{"unvalidated policy", &Policy{Format: 1, ClusterID: testCluster, Version: 1, Rules: []Rule{{ID: "a", Effect: "allow", Condition: "true"}}}, func(in Input) Input { return in }, InvalidPolicy},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.in(small)
			// Inputs share transfer slices; copy before mutating.
			d := tc.p.Evaluate(in, NewVelocityState())
			small = evmInput(transferSpec{"ETH", evmA, "1", false})
			if d.Outcome != Deny || len(d.Denials) != 1 || d.Denials[0].Code != tc.code {
				t.Fatalf("got %v, want %s", d.Err(), tc.code)
			}
		})
	}
}

func TestDecisionDigest(t *testing.T) {
	p := defaultPolicy(t)
	in := evmInput(transferSpec{"ETH", evmA, "1", false})
	a, b := p.Evaluate(in, NewVelocityState()), p.Evaluate(in, NewVelocityState())
	if a.Digest() != b.Digest() {
		t.Fatal("same input, different digests")
	}
	c := p.Evaluate(evmInput(transferSpec{"ETH", evmOther, "1", false}), NewVelocityState())
	if a.Digest() == c.Digest() {
		t.Fatal("allow and deny share a digest")
	}
	err := c.Err()
	if err == nil || !strings.HasPrefix(err.Error(), "policy: deny under policy version 1: no-allow-rule") {
		t.Fatalf("error %v", err)
	}
}
