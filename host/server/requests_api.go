package server

import (
	"time"

	"github.com/sealsign/sealsign/enclave/api"
)

// The governed-signing HTTP API. Request bodies carry the signed bytes
// exactly as their signers made them (base64 in JSON); the host stores and
// forwards them, and every enclave verifies them itself.
//
//	POST /v1/requests                   SubmitRequest   → RequestStatus (200 signed, 202 pending, 403 denied)
//	GET  /v1/requests[?state=pending]                   → RequestList
//	GET  /v1/requests/{id}                              → RequestStatus
//	POST /v1/requests/{id}/approvals    ApprovalSubmit  → RequestStatus (as submit; 403 when rejected)
//	POST /v1/policy                     PolicyPush      → PolicyPushResponse (every party of the cluster)
//	GET  /v1/audit[?from=SEQ]                           → AuditEntries (this party's log)

// SubmitRequest is the body of POST /v1/requests.
type SubmitRequest struct {
	Request []byte `json:"request"` // governance/request signed encoding
}

// ApprovalSubmit is the body of POST /v1/requests/{id}/approvals.
type ApprovalSubmit struct {
	Approval []byte `json:"approval"` // governance/approval signed encoding
}

// Request states.
const (
	StatePending  = "pending"  // needs approvals
	StateSigned   = "signed"   // done: Result holds the signatures
	StateDenied   = "denied"   // a party's policy denied it
	StateRejected = "rejected" // an approver rejected it
	StateFailed   = "failed"   // allowed, but signing failed (Error says why); resubmitting an approval retries
)

// RequestStatus is one request as the host tracks it.
type RequestStatus struct {
	RequestID   string `json:"request_id"`
	State       string `json:"state"`
	KeyID       string `json:"key_id"`
	ClientKeyID string `json:"client_key_id"`
	// Request is the signed request as submitted; approvers fetch it to
	// check what they approve (sealsign approve decodes and shows it).
	Request       []byte `json:"request"`
	RequestDigest string `json:"request_digest"` // hex; approvals bind to it
	PayloadHash   string `json:"payload_hash"`   // hex
	PolicyVersion uint64 `json:"policy_version"`
	ExpiresAt     int64  `json:"expires_at"`
	// Verdicts are the parties' own verdicts, this host's party first.
	Verdicts []api.Verdict `json:"verdicts"`
	// Approvals are the signed approvals the host holds (each enclave
	// decides which count: see Verdicts[i].Approvals).
	Approvals [][]byte    `json:"approvals,omitempty"`
	Error     string      `json:"error,omitempty"`
	Result    *SignResult `json:"result,omitempty"`
	Updated   time.Time   `json:"updated"`
}

// SignResult is a finished governed signature.
type SignResult struct {
	Algorithm   string   `json:"algorithm"`
	PublicKey   string   `json:"public_key"` // hex
	Signers     []string `json:"signers"`
	SessionID   string   `json:"session_id"`
	RuleID      string   `json:"rule_id"`
	Digests     []string `json:"digests"`    // hex, in signing order
	Signatures  []string `json:"signatures"` // hex r‖s or R‖S, one per digest
	RecoveryIDs []int    `json:"recovery_ids,omitempty"`
	// Transaction is the payload assembled with the signatures, hex:
	// a broadcast-ready EVM transaction or a finalized Bitcoin transaction;
	// empty for raw digests.
	Transaction string `json:"transaction,omitempty"`
	// DerivationPath is the request's BIP-32 path ("m/0/5") when the
	// child key at it signed; PublicKey is then the child's.
	DerivationPath string `json:"derivation_path,omitempty"`
}

// RequestList is the answer of GET /v1/requests.
type RequestList struct {
	Requests []RequestStatus `json:"requests"`
}

// PolicyPush is the body of POST /v1/policy.
type PolicyPush struct {
	Policy []byte `json:"policy"` // policy.SignedPolicy encoding
}

// PolicyPushResponse reports each party's answer to a policy update.
type PolicyPushResponse struct {
	Parties []PolicyPartyResult `json:"parties"`
	Error   string              `json:"error,omitempty"` // set when any party refused
}

// PolicyPartyResult is one party's answer.
type PolicyPartyResult struct {
	api.PolicyUpdateResponse        // PartyID is set on errors too
	Error                    string `json:"error,omitempty"`
}

// AuditEntries is the answer of GET /v1/audit.
type AuditEntries struct {
	PartyID string   `json:"party_id"`
	Entries [][]byte `json:"entries"` // audit.SignedEntry encodings, in seq order
}
