package api

import (
	"fmt"
	"strings"

	"github.com/sealsign/sealsign/governance/tx"
)

// Governed signing (DESIGN.md flow 4). A signing request is a client-signed
// governance/request.Request; approvals are governance/approval signed
// approvals. The enclave verifies both itself: the host only carries bytes.

// Methods the host calls on the enclave for governance.
const (
	MethodEvaluate     = "evaluate"      // EvaluateRequest → Verdict: this party's verdict, no side effects
	MethodPolicyUpdate = "policy_update" // PolicyUpdateRequest → PolicyUpdateResponse
)

// Audit methods the host calls on the enclave.
const (
	MethodAuditCheckpoint = "audit_checkpoint" // nil → AuditCheckpointResponse: append a checkpoint now
	MethodAuditHash       = "audit_hash"       // AuditHashRequest → AuditHashResponse
)

// AuditCheckpointResponse is the checkpoint entry just appended: its seq
// and chain hash (it commits to the Seq-1 entries before it).
type AuditCheckpointResponse struct {
	Seq  uint64 `cbor:"1,keyasint" json:"seq"`
	Hash []byte `cbor:"2,keyasint" json:"hash"`
}

// AuditHashRequest asks for the keyed hash the log would store for Value.
type AuditHashRequest struct {
	Value []byte `cbor:"1,keyasint"`
}

type AuditHashResponse struct {
	MAC []byte `cbor:"1,keyasint" json:"mac"`
}

// MethodAudit is called by the enclave on the host: AuditAppendRequest →
// nil, replying only once the entry is durable.
const MethodAudit = "audit_append"

// EvaluateRequest asks for this party's verdict on a signed request and the
// approvals gathered so far.
type EvaluateRequest struct {
	Request   []byte   `cbor:"1,keyasint"`
	Approvals [][]byte `cbor:"2,keyasint,omitempty"`
	// Record asks the enclave to write a verdict that is not allow to its
	// audit log (with the request and the approvals that verified): the
	// host sets it when it reports the verdict to the client. An allow is
	// recorded when the request is admitted for signing.
	Record bool `cbor:"3,keyasint,omitempty"`
}

// Verdict outcomes (governance/policy Outcome).
const (
	OutcomeAllow         = "allow"
	OutcomeDeny          = "deny"
	OutcomeNeedsApproval = "needs-approval"
)

// Verdict is one party's decision on a request, computed inside its enclave
// from the payload it decoded itself.
type Verdict struct {
	PartyID       string `cbor:"1,keyasint" json:"party_id"`
	RequestID     string `cbor:"2,keyasint" json:"request_id"`
	RequestDigest []byte `cbor:"3,keyasint" json:"request_digest"`
	PayloadHash   []byte `cbor:"4,keyasint" json:"payload_hash"`
	PolicyVersion uint64 `cbor:"5,keyasint" json:"policy_version"`
	Outcome       string `cbor:"6,keyasint" json:"outcome"`
	// RuleID is the allowing rule (Outcome allow).
	RuleID  string        `cbor:"7,keyasint,omitempty" json:"rule_id,omitempty"`
	Denials []Denial      `cbor:"8,keyasint,omitempty" json:"denials,omitempty"`
	Pending []PendingRule `cbor:"9,keyasint,omitempty" json:"pending,omitempty"`
	Summary TxSummary     `cbor:"10,keyasint" json:"summary"`
	// Approvals are the decisions that verified; Ignored the ones that did
	// not (expired, another request, unknown key), each with its reason.
	Approvals []ApprovalSeen `cbor:"11,keyasint,omitempty" json:"approvals,omitempty"`
	Ignored   []ApprovalSeen `cbor:"12,keyasint,omitempty" json:"ignored_approvals,omitempty"`
	// DecisionDigest is policy.Decision.Digest: equal on parties that
	// decided alike.
	DecisionDigest []byte `cbor:"13,keyasint" json:"decision_digest"`
	KeyID          string `cbor:"14,keyasint" json:"key_id"`
	ClientKeyID    string `cbor:"15,keyasint" json:"client_key_id"`
	ExpiresAt      int64  `cbor:"16,keyasint" json:"expires_at"`
}

// Denial is one reason a request was not allowed (policy.Denial).
type Denial struct {
	Code    string `cbor:"1,keyasint" json:"code"`
	RuleID  string `cbor:"2,keyasint,omitempty" json:"rule_id,omitempty"`
	LimitID string `cbor:"3,keyasint,omitempty" json:"limit_id,omitempty"`
	Clause  string `cbor:"4,keyasint,omitempty" json:"clause,omitempty"`
	Detail  string `cbor:"5,keyasint,omitempty" json:"detail,omitempty"`
}

// PendingRule is an allow rule that matched but lacks approvals.
type PendingRule struct {
	RuleID string       `cbor:"1,keyasint" json:"rule_id"`
	Logic  string       `cbor:"2,keyasint" json:"logic"`
	Groups []GroupNeeds `cbor:"3,keyasint" json:"groups"`
}

// GroupNeeds is one approver group's progress toward its threshold.
type GroupNeeds struct {
	Group     string `cbor:"1,keyasint" json:"group"`
	Threshold int    `cbor:"2,keyasint" json:"threshold"`
	Have      int    `cbor:"3,keyasint" json:"have"`
	Need      int    `cbor:"4,keyasint" json:"need"`
	Excluded  int    `cbor:"5,keyasint,omitempty" json:"excluded_initiator,omitempty"`
}

// ApprovalSeen is one approval the enclave looked at.
type ApprovalSeen struct {
	ApproverKeyID string `cbor:"1,keyasint" json:"approver_key_id"`
	Decision      string `cbor:"2,keyasint,omitempty" json:"decision,omitempty"`
	Error         string `cbor:"3,keyasint,omitempty" json:"error,omitempty"`
}

// TxSummary is the decoded payload as policy saw it (tx.Summary), amounts
// as decimal strings in base units.
type TxSummary struct {
	Kind      string       `cbor:"1,keyasint" json:"kind"`
	Chain     string       `cbor:"2,keyasint,omitempty" json:"chain,omitempty"`
	Method    string       `cbor:"3,keyasint" json:"method"`
	Transfers []TxTransfer `cbor:"4,keyasint,omitempty" json:"transfers,omitempty"`
	Fee       string       `cbor:"5,keyasint,omitempty" json:"fee,omitempty"`
	Digests   [][]byte     `cbor:"6,keyasint" json:"digests"`
}

// SummaryOf is the summary as verdicts show it.
func SummaryOf(s tx.Summary) TxSummary {
	out := TxSummary{Kind: string(s.Kind), Chain: s.Chain, Method: s.Method, Digests: s.Digests}
	if s.Fee != nil {
		out.Fee = s.Fee.String()
	}
	for _, t := range s.Transfers {
		out.Transfers = append(out.Transfers, TxTransfer{Action: string(t.Action), Asset: t.Asset, To: t.To, Amount: t.Amount.String(), Change: t.Change})
	}
	return out
}

// TxTransfer is one value movement of a payload.
type TxTransfer struct {
	Action string `cbor:"1,keyasint" json:"action"`
	Asset  string `cbor:"2,keyasint" json:"asset"`
	To     string `cbor:"3,keyasint" json:"to"`
	Amount string `cbor:"4,keyasint" json:"amount"`
	Change bool   `cbor:"5,keyasint,omitempty" json:"change,omitempty"`
}

// PolicyUpdateRequest carries a policy.SignedPolicy encoding.
type PolicyUpdateRequest struct {
	Policy []byte `cbor:"1,keyasint"`
}

// PolicyUpdateResponse reports the party's policy state after an accepted
// update.
type PolicyUpdateResponse struct {
	PartyID string `cbor:"1,keyasint" json:"party_id"`
	// Accepted is the version just accepted; it takes effect at NotBefore
	// (unix seconds).
	Accepted  uint64 `cbor:"2,keyasint" json:"accepted_version"`
	NotBefore int64  `cbor:"3,keyasint" json:"not_before"`
	// Effective is the version in force now.
	Effective uint64 `cbor:"4,keyasint" json:"effective_version"`
}

// MethodAuditTail is called by the enclave on the host: nil →
// AuditTailResponse, the last entry the host holds. The enclave asks after
// an append whose answer it did not get, to learn whether the entry was
// stored after all.
const MethodAuditTail = "audit_tail"

// MethodAuditRange is called by the enclave on the host at its start:
// AuditRangeRequest → AuditRangeResponse, the entries from seq From on (at
// most Limit), which the enclave verifies against the head it sealed.
const MethodAuditRange = "audit_range"

type AuditRangeRequest struct {
	From  uint64 `cbor:"1,keyasint"`
	Limit int    `cbor:"2,keyasint"`
}

type AuditRangeResponse struct {
	Entries [][]byte `cbor:"1,keyasint,omitempty"`
}

type AuditTailResponse struct {
	Entry []byte `cbor:"1,keyasint,omitempty"`
}

// AuditAppendRequest carries one audit.SignedEntry encoding; Seq is its
// sequence number, so the host can refuse gaps and overwrites.
type AuditAppendRequest struct {
	Seq   uint64 `cbor:"1,keyasint"`
	Entry []byte `cbor:"2,keyasint"`
}

// String is one line naming the rule, code, limit, clause and detail.
func (d Denial) String() string {
	s := d.Code
	if d.RuleID != "" {
		s = "rule " + d.RuleID + ": " + s
	}
	if d.LimitID != "" {
		s += " (limit " + d.LimitID + ")"
	}
	if d.Clause != "" {
		s += ": " + d.Clause
	}
	if d.Detail != "" {
		s += ": " + d.Detail
	}
	return s
}

// Explain is one line naming every reason of a verdict that is not allow.
func (v *Verdict) Explain() string {
	var parts []string
	for _, d := range v.Denials {
		parts = append(parts, d.String())
	}
	for _, p := range v.Pending {
		var gs []string
		for _, g := range p.Groups {
			gs = append(gs, fmt.Sprintf("%s has %d of %d, needs %d more", g.Group, g.Have, g.Threshold, g.Need))
		}
		parts = append(parts, fmt.Sprintf("rule %s awaits approvals (%s)", p.RuleID, strings.Join(gs, " "+p.Logic+" ")))
	}
	return fmt.Sprintf("party %s: request %s %s under policy v%d: %s", v.PartyID, v.RequestID, v.Outcome, v.PolicyVersion, strings.Join(parts, "; "))
}
