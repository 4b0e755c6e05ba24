package policy

import (
	"fmt"
	"strings"
)

// Code is the typed reason of a Denial. Codes are stable strings: they
// appear in audit logs and in the verdict digest. Append codes only.
type Code string

const (
	// DenyRuleMatched: a deny rule's condition was true.
	DenyRuleMatched Code = "deny-rule-matched"
	// NoAllowRule: no allow rule allowed the request; the Denials that
	// follow say, per allow rule, why not.
	NoAllowRule Code = "no-allow-rule"
	// ConditionFalse: an allow rule's condition was false; Clause is the
	// first top-level conjunct that was false.
	ConditionFalse Code = "condition-false"
	// ConditionError: a condition could not be evaluated (for example
	// units() of a bad string). A deny rule that errs counts as matching
	// (fail closed); an allow rule that errs does not match.
	ConditionError Code = "condition-error"
	// CostExceeded: a condition exceeded MaxConditionCost; handled like
	// ConditionError.
	CostExceeded Code = "cost-exceeded"
	// VelocityExceeded: a matching allow rule's velocity limit would be
	// exceeded by this request.
	VelocityExceeded Code = "velocity-exceeded"
	// VelocityUnavailable: a matching allow rule has velocity limits but
	// no velocity state was given, or the state is at its size bound.
	VelocityUnavailable Code = "velocity-unavailable"
	// ApprovalsMissing: a matching allow rule still needs approvals.
	ApprovalsMissing Code = "approvals-missing"
	// Rejected: an approver rejected the request; any rejection aborts.
	Rejected Code = "rejected"
	// NotYetEffective: the policy's NotBefore is after Input.Now.
	NotYetEffective Code = "not-yet-effective"
	// WrongCluster: the policy was issued for another cluster.
	WrongCluster Code = "wrong-cluster"
	// InvalidInput: the input is malformed (negative or missing amount,
	// zero time); the decoder should never produce one.
	InvalidInput Code = "invalid-input"
	// InvalidPolicy: the policy was not validated (not built by ParseJSON,
	// DecodePolicy or Validate) or failed validation.
	InvalidPolicy Code = "invalid-policy"
)

// Denial is one reason a request was not allowed. RuleID is empty for
// reasons that concern the whole policy or request; Clause is the source
// text of the failing conjunct when Code is ConditionFalse, ConditionError
// or CostExceeded; LimitID names the velocity limit for VelocityExceeded.
type Denial struct {
	Code    Code   `json:"code"`
	RuleID  string `json:"rule_id,omitempty"`
	LimitID string `json:"limit_id,omitempty"`
	Clause  string `json:"clause,omitempty"`
	Detail  string `json:"detail,omitempty"`
}

func (d Denial) String() string {
	var b strings.Builder
	b.WriteString(string(d.Code))
	if d.RuleID != "" {
		fmt.Fprintf(&b, " rule %q", d.RuleID)
	}
	if d.LimitID != "" {
		fmt.Fprintf(&b, " limit %q", d.LimitID)
	}
	if d.Clause != "" {
		fmt.Fprintf(&b, " clause `%s`", d.Clause)
	}
	if d.Detail != "" {
		b.WriteString(": ")
		b.WriteString(d.Detail)
	}
	return b.String()
}

// DecisionError is the error form of a decision that is not Allow; it
// lists every reason.
type DecisionError struct {
	Decision Decision
}

func (e *DecisionError) Error() string {
	parts := make([]string, 0, len(e.Decision.Denials))
	for _, d := range e.Decision.Denials {
		parts = append(parts, d.String())
	}
	return fmt.Sprintf("policy: %s under policy version %d: %s", e.Decision.Outcome, e.Decision.PolicyVersion, strings.Join(parts, "; "))
}
