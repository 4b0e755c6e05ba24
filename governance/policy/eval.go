package policy

import (
	"fmt"
	"math/big"
	"sort"
	"strings"
	"time"

	"github.com/sealsign/sealsign/governance/canon"
	"github.com/sealsign/sealsign/governance/tx"
)

// Input is one signing request as the enclave sees it.
type Input struct {
	// ClusterID is the enclave's own cluster; the policy must name it.
	ClusterID string
	// Summary is the enclave-decoded payload.
	Summary tx.Summary
	// KeyID and KeyAlgorithm name the threshold key asked to sign.
	KeyID        string
	KeyAlgorithm string
	// KeyPath is the BIP-32 path of the child of KeyID that signs ("m" for
	// KeyID itself, "m/0/5" for a child; governance/request.Path).
	KeyPath string
	// ClientID is the id of the client key that initiated the request, and
	// Initiator that key's Owner.
	ClientID  string
	Initiator string
	// Now is the evaluation time: `now` in conditions, NotBefore and the
	// velocity windows are measured against it.
	Now time.Time
	// Approvals are approvers whose signatures over this request another
	// package has already verified.
	Approvals []Approver
	// Rejected is true when any approver rejected the request; any
	// rejection aborts it.
	Rejected bool
}

// Approver is one verified approval.
type Approver struct {
	KeyID  string
	Owner  string
	Groups []string
}

// Outcome of an evaluation.
type Outcome string

const (
	Allow         Outcome = "allow"
	Deny          Outcome = "deny"
	NeedsApproval Outcome = "needs-approval"
)

// Decision is the verdict on one Input. It is a deterministic function of
// the policy, the input and the velocity state.
type Decision struct {
	Outcome       Outcome
	PolicyVersion uint64
	PayloadHash   [32]byte
	// RuleID is the allow rule that allowed (Outcome Allow): the first in
	// policy order that fully allowed.
	RuleID string
	// Denials are every reason for Deny and NeedsApproval, in policy order.
	Denials []Denial
	// Pending lists, for NeedsApproval, each allow rule that matched and
	// passed its velocity limits but lacks approvals, and what it lacks.
	Pending []Pending
	// Charges are what Record adds to the velocity state: one per velocity
	// limit and scope value of every allow rule whose condition matched
	// (not only the rule that allowed), so a limit counts all signed
	// requests its rule covers.
	Charges []Charge
}

// Pending is the approval status of one allow rule.
type Pending struct {
	RuleID string
	Logic  string
	Groups []GroupStatus
}

// GroupStatus is one group's approvals: Have distinct owners counted toward
// Threshold; Need more are still needed (0 when met). Excluded counts
// approvers of the group not counted because they are the initiator.
type GroupStatus struct {
	Group     string
	Threshold int
	Have      int
	Need      int
	Excluded  int
}

// Err returns nil for Allow and a *DecisionError listing every reason
// otherwise.
func (d Decision) Err() error {
	if d.Outcome == Allow {
		return nil
	}
	return &DecisionError{Decision: d}
}

// Digest identifies the verdict so parties can compare theirs: SHA-256
// under domain "sealsign/v1/policy-decision" over the canonical encoding of
// the policy version, payload hash, outcome, allowing rule, and the (code,
// rule id, limit id) of every denial. Free-text details are excluded.
func (d Decision) Digest() [32]byte {
	type reason struct {
		Code    string `cbor:"1,keyasint"`
		RuleID  string `cbor:"2,keyasint"`
		LimitID string `cbor:"3,keyasint"`
	}
	v := struct {
		Version     uint64   `cbor:"1,keyasint"`
		PayloadHash []byte   `cbor:"2,keyasint"`
		Outcome     string   `cbor:"3,keyasint"`
		RuleID      string   `cbor:"4,keyasint"`
		Reasons     []reason `cbor:"5,keyasint"`
	}{d.PolicyVersion, d.PayloadHash[:], string(d.Outcome), d.RuleID, make([]reason, 0, len(d.Denials))}
	for _, r := range d.Denials {
		v.Reasons = append(v.Reasons, reason{string(r.Code), r.RuleID, r.LimitID})
	}
	b, err := canon.Marshal(v)
	if err != nil {
		// Marshal of strings, ints and byte strings cannot fail.
		panic(fmt.Sprintf("policy: decision digest: %v", err))
	}
	return canon.Digest("sealsign/v1/policy-decision", b)
}

// Evaluate decides whether the policy allows in. It never panics and never
// errs: every failure is a Deny with typed reasons. See the package
// documentation for the semantics.
func (p *Policy) Evaluate(in Input, vel *VelocityState) Decision {
	d := Decision{PolicyVersion: p.Version, PayloadHash: in.Summary.PayloadHash, Outcome: Deny}
	deny := func(c Code, detail string) Decision {
		d.Denials = append(d.Denials, Denial{Code: c, Detail: detail})
		return d
	}
	if p.compiled == nil || len(p.compiled) != len(p.Rules) {
		return deny(InvalidPolicy, "policy was not validated (build it with ParseJSON, DecodePolicy or Validate)")
	}
	if in.ClusterID != p.ClusterID {
		return deny(WrongCluster, fmt.Sprintf("policy is for cluster %q, this is cluster %q", p.ClusterID, in.ClusterID))
	}
	if in.Now.Unix() < p.NotBefore {
		return deny(NotYetEffective, fmt.Sprintf("policy version %d takes effect at %s, now is %s",
			p.Version, time.Unix(p.NotBefore, 0).UTC().Format(time.RFC3339), in.Now.UTC().Format(time.RFC3339)))
	}
	act, err := activation(&in)
	if err != nil {
		return deny(InvalidInput, err.Error())
	}
	if in.Rejected {
		return deny(Rejected, "an approver rejected the request")
	}

	// Deny rules first: any match (or failure to evaluate) denies, and
	// every one is listed.
	for i, r := range p.Rules {
		if r.Effect != EffectDeny {
			continue
		}
		res := p.compiled[i].whole.eval(act)
		switch {
		case res.cost:
			d.Denials = append(d.Denials, Denial{Code: CostExceeded, RuleID: r.ID, Clause: r.Condition,
				Detail: fmt.Sprintf("deny rule exceeded the cost limit %d and counts as matching: %v", MaxConditionCost, res.err)})
		case res.err != nil:
			d.Denials = append(d.Denials, Denial{Code: ConditionError, RuleID: r.ID, Clause: r.Condition,
				Detail: fmt.Sprintf("deny rule could not be evaluated and counts as matching: %v", res.err)})
		case res.value:
			d.Denials = append(d.Denials, Denial{Code: DenyRuleMatched, RuleID: r.ID, Detail: r.Description})
		}
	}
	if len(d.Denials) > 0 {
		return d
	}

	var failures []Denial
	var pendingDenials []Denial
	for i, r := range p.Rules {
		if r.Effect != EffectAllow {
			continue
		}
		c := p.compiled[i]
		res := c.whole.eval(act)
		if res.err != nil || !res.value {
			clause, cres := c.failingClause(act)
			if res.err != nil {
				cres = res
			}
			switch {
			case cres.cost:
				failures = append(failures, Denial{Code: CostExceeded, RuleID: r.ID, Clause: clause,
					Detail: fmt.Sprintf("exceeded the cost limit %d: %v", MaxConditionCost, cres.err)})
			case cres.err != nil:
				failures = append(failures, Denial{Code: ConditionError, RuleID: r.ID, Clause: clause, Detail: cres.err.Error()})
			default:
				failures = append(failures, Denial{Code: ConditionFalse, RuleID: r.ID, Clause: clause})
			}
			continue
		}
		// A candidate: its condition matched.
		charges := chargesFor(&r, &in)
		d.Charges = append(d.Charges, charges...)
		if vd := vel.check(&p.Rules[i], charges, in.Now); len(vd) > 0 {
			failures = append(failures, vd...)
			continue
		}
		if r.Approvals != nil {
			st, ok := approvalStatus(r.Approvals, &in)
			if !ok {
				d.Pending = append(d.Pending, Pending{RuleID: r.ID, Logic: r.Approvals.Logic, Groups: st})
				pendingDenials = append(pendingDenials, Denial{Code: ApprovalsMissing, RuleID: r.ID, Detail: describeApprovals(r.Approvals.Logic, st)})
				continue
			}
		}
		if d.RuleID == "" {
			d.RuleID = r.ID
		}
	}
	// Charges must fit in the state as a whole, or nothing is allowed.
	if d.RuleID != "" || len(d.Pending) > 0 {
		if err := vel.room(d.Charges, in.Now); err != nil {
			d.RuleID, d.Pending, d.Charges = "", nil, nil
			return deny(VelocityUnavailable, err.Error())
		}
	}
	switch {
	case d.RuleID != "":
		d.Outcome = Allow
		d.Denials = nil
		d.Pending = nil
	case len(d.Pending) > 0:
		d.Outcome = NeedsApproval
		d.Denials = append(pendingDenials, failures...)
	default:
		d.Charges = nil
		d.Denials = append([]Denial{{Code: NoAllowRule, Detail: "no allow rule matched"}}, failures...)
	}
	return d
}

// approvalStatus counts, per group, distinct owners among the approvers who
// belong to it, leaving out the initiator's owner unless AllowInitiator. An
// owner holding several approver keys counts once per group; an owner in
// several groups counts in each.
func approvalStatus(req *ApprovalRequirement, in *Input) ([]GroupStatus, bool) {
	st := make([]GroupStatus, len(req.Groups))
	met := 0
	for i, g := range req.Groups {
		owners := map[string]bool{}
		excluded := map[string]bool{}
		for _, a := range in.Approvals {
			if a.Owner == "" || !contains(a.Groups, g.Group) {
				continue
			}
			if !req.AllowInitiator && a.Owner == in.Initiator {
				excluded[a.Owner] = true
				continue
			}
			owners[a.Owner] = true
		}
		st[i] = GroupStatus{Group: g.Group, Threshold: g.Threshold, Have: len(owners), Excluded: len(excluded)}
		if st[i].Have < g.Threshold {
			st[i].Need = g.Threshold - st[i].Have
		} else {
			met++
		}
	}
	if req.Logic == LogicOr {
		return st, met > 0
	}
	return st, met == len(req.Groups)
}

func describeApprovals(logic string, st []GroupStatus) string {
	parts := make([]string, 0, len(st))
	for _, g := range st {
		s := fmt.Sprintf("group %q has %d of %d", g.Group, g.Have, g.Threshold)
		if g.Need > 0 {
			s += fmt.Sprintf(" (needs %d more)", g.Need)
		}
		if g.Excluded > 0 {
			s += fmt.Sprintf(" (%d approval by the initiator not counted)", g.Excluded)
		}
		parts = append(parts, s)
	}
	return fmt.Sprintf("%s of: %s", logic, strings.Join(parts, ", "))
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// chargesFor computes what request in adds to each of r's velocity limits.
// Change outputs are excluded. With an Asset, only non-change transfers of
// that asset count and a request without one adds nothing; without one,
// every request counts once (raw digests included, per key or client).
// Destination scope charges each distinct destination separately.
func chargesFor(r *Rule, in *Input) []Charge {
	var out []Charge
	for _, l := range r.Velocity {
		amountOf := func(byDst bool, dst string) (*big.Int, bool) {
			sum, hit := new(big.Int), false
			for _, t := range in.Summary.Transfers {
				if t.Change || t.Amount == nil {
					continue
				}
				if l.Asset != "" && normalAsset(t.Asset) != l.Asset {
					continue
				}
				if byDst && normalAddress(in.Summary.Kind, t.To) != dst {
					continue
				}
				sum.Add(sum, t.Amount)
				hit = true
			}
			return sum, hit
		}
		base := Charge{RuleID: r.ID, LimitID: l.ID, Window: l.Window, MaxCount: l.MaxCount}
		if l.MaxAmount != "" {
			base.MaxAmount, _ = parseUnits(l.MaxAmount)
		}
		add := func(scope string, byDst bool, dst string) {
			sum, hit := amountOf(byDst, dst)
			if (l.Asset != "" || byDst) && !hit {
				return
			}
			c := base
			c.Scope = scope
			c.Count = 1
			if l.Asset != "" {
				c.Amount = sum
			}
			out = append(out, c)
		}
		switch l.Scope {
		case ScopeKey:
			add("key:"+in.KeyID, false, "")
		case ScopeClient:
			add("client:"+in.ClientID, false, "")
		case ScopeDestination:
			seen := map[string]bool{}
			var dsts []string
			for _, t := range in.Summary.Transfers {
				to := normalAddress(in.Summary.Kind, t.To)
				if t.Change || seen[to] {
					continue
				}
				seen[to] = true
				dsts = append(dsts, to)
			}
			sort.Strings(dsts)
			for _, to := range dsts {
				add("destination:"+to, true, to)
			}
		}
	}
	return out
}
