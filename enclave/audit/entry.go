// Package audit is the format of a party's audit log and the logic of its
// hash chain: every request, policy verdict, approval, signing session,
// result and key ceremony the enclave acts on becomes an Entry, signed by
// the enclave's per-boot Ed25519 identity key and linked to the entry before
// it. The enclave makes an entry durable (through the host) before it
// releases a signature share, so a signature never exists without its
// record. Storage and export live elsewhere; this package fixes the bytes.
//
// # Format
//
// An entry is a SignedEntry in canonical CBOR (package canon):
//
//	SignedEntry = {1: Entry bytes, 2: Ed25519 signature}
//	Entry       = {1: format (1), 2: party id, 3: seq (from 1), 4: time (unix ns),
//	               5: prev (32 bytes), 6: type, 7: body (canonical CBOR of the
//	               type's body struct), 8: signer key (32-byte Ed25519 public key)}
//
// The signature is over keys.Message(SignDomain, Entry bytes), so it covers
// everything but itself. The chain hash of an entry is
// canon.Digest(HashDomain, SignedEntry bytes): it covers the entry and its
// signature, so the chain commits to the exact bytes stored, and a
// verifier holding only a head hash can check any copy byte for byte. (Ed25519
// signatures are deterministic and Go rejects malleated ones, so covering
// the signature costs nothing and removes a question.) Prev of entry seq
// n+1 is the chain hash of entry n; Prev of seq 1 is 32 zero bytes.
//
// The signer key changes at every boot. An entry whose signer key differs
// from the previous entry's must be a "boot" entry, whose body carries the
// attestation document binding that key to a measured enclave image; the
// first entry of a log is a boot entry.
//
// # Backwards compatibility
//
// Format 1. Entry, SignedEntry and every body struct evolve by appending
// fields only; CBOR keys are never renumbered or reused, and type names
// never change meaning. Decoding is strict, so a verifier older than the
// log refuses what it cannot read rather than skipping it.
package audit

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"regexp"
)

// Domains.
const (
	SignDomain      = "sealsign/v1/audit-entry"
	HashDomain      = "sealsign/v1/audit-entry"
	keyedHashDomain = "sealsign/v1/audit-keyed"
)

// FormatV1 is the only Entry format.
const FormatV1 = 1

// Limits.
const (
	// MaxEntrySize bounds one SignedEntry. The largest expected entry is a
	// result for a PSBT with many inputs (one digest and signature each) or
	// a boot entry with its attestation document (about 5 KiB).
	MaxEntrySize = 256 << 10
	// maxList bounds lists inside bodies (signers, rule ids, digests).
	maxList = 4096
)

// Entry types.
const (
	TypeRequest    = "request"
	TypeVerdict    = "verdict"
	TypeApproval   = "approval"
	TypeSession    = "session"
	TypeResult     = "result"
	TypeCeremony   = "ceremony"
	TypeCheckpoint = "checkpoint"
	TypeBoot       = "boot"
)

// Entry is one record of a party's log.
//
// Format 1. Append fields only; never renumber or reuse a CBOR key.
type Entry struct {
	Format  uint64 `json:"format" cbor:"1,keyasint"`
	PartyID string `json:"party_id" cbor:"2,keyasint"`
	Seq     uint64 `json:"seq" cbor:"3,keyasint"`
	// Time is unix nanoseconds; it never decreases along a chain.
	Time int64    `json:"time" cbor:"4,keyasint"`
	Prev [32]byte `json:"prev" cbor:"5,keyasint"`
	Type string   `json:"type" cbor:"6,keyasint"`
	// Body is the canonical CBOR of the body struct for Type.
	Body []byte `json:"body" cbor:"7,keyasint"`
	// SignerKey is the Ed25519 identity public key of the enclave boot that
	// wrote the entry.
	SignerKey []byte `json:"signer_key" cbor:"8,keyasint"`
}

// SignedEntry is an Entry's canonical encoding and the enclave's signature
// over keys.Message(SignDomain, Entry).
//
// Format 1. Append fields only.
type SignedEntry struct {
	Entry     []byte `json:"entry" cbor:"1,keyasint"`
	Signature []byte `json:"signature" cbor:"2,keyasint"`
}

// Request records a client request the enclave verified and admitted.
//
// Append fields only.
type Request struct {
	RequestID     string   `json:"request_id" cbor:"1,keyasint"`
	RequestDigest [32]byte `json:"request_digest" cbor:"2,keyasint"` // request.Digest of the signed request
	ClientKeyID   string   `json:"client_key_id" cbor:"3,keyasint"`
	KeyID         string   `json:"key_id" cbor:"4,keyasint"`
	Kind          string   `json:"kind" cbor:"5,keyasint"`
	PayloadHash   [32]byte `json:"payload_hash" cbor:"6,keyasint"`
	Signers       []string `json:"signers,omitempty" cbor:"7,keyasint,omitempty"`
	IssuedAt      int64    `json:"issued_at" cbor:"8,keyasint"`  // unix seconds, as signed
	ExpiresAt     int64    `json:"expires_at" cbor:"9,keyasint"` // unix seconds, as signed
	// Path is the request's BIP-32 derivation path ("m/0/5") when it signs
	// with a child key; empty for the key itself.
	Path string `json:"path,omitempty" cbor:"10,keyasint,omitempty"`
}

// Verdict outcomes.
const (
	OutcomeAllow = "allow"
	OutcomeDeny  = "deny"
	// OutcomeNeedsApproval: allowed once approvals arrive; a later verdict
	// entry records the final outcome.
	OutcomeNeedsApproval = "needs-approval"
)

// Verdict records this party's policy decision on a request.
//
// Append fields only.
type Verdict struct {
	RequestID     string   `json:"request_id" cbor:"1,keyasint"`
	PayloadHash   [32]byte `json:"payload_hash" cbor:"2,keyasint"`
	PolicyVersion uint64   `json:"policy_version" cbor:"3,keyasint"`
	Outcome       string   `json:"outcome" cbor:"4,keyasint"` // OutcomeAllow, OutcomeDeny or OutcomeNeedsApproval
	// RuleIDs are the rules that matched (for an allow, the allowing rules).
	RuleIDs []string `json:"rule_ids,omitempty" cbor:"5,keyasint,omitempty"`
	// Denials lists every failed clause of a deny.
	Denials []Denial `json:"denials,omitempty" cbor:"6,keyasint,omitempty"`
	// DecisionDigest is the policy engine's digest of its decision
	// (governance/policy Decision.Digest), so every party's verdict on a
	// request can be compared byte for byte; empty if not computed.
	DecisionDigest []byte `json:"decision_digest,omitempty" cbor:"7,keyasint,omitempty"`
}

// Denial is one reason a policy denied a request.
//
// Append fields only.
type Denial struct {
	Code    string `json:"code" cbor:"1,keyasint"`
	RuleID  string `json:"rule_id,omitempty" cbor:"2,keyasint,omitempty"`
	Clause  string `json:"clause,omitempty" cbor:"3,keyasint,omitempty"`
	LimitID string `json:"limit_id,omitempty" cbor:"4,keyasint,omitempty"`
	// Detail is the policy engine's explanation (amounts, limits); it
	// holds no client free text.
	Detail string `json:"detail,omitempty" cbor:"5,keyasint,omitempty"`
}

// Approval records one verified approval or rejection.
//
// Append fields only.
type Approval struct {
	RequestID      string   `json:"request_id" cbor:"1,keyasint"`
	ApproverKeyID  string   `json:"approver_key_id" cbor:"2,keyasint"`
	Decision       string   `json:"decision" cbor:"3,keyasint"`        // "approve" or "reject"
	ApprovalDigest [32]byte `json:"approval_digest" cbor:"4,keyasint"` // approval.Digest of the signed approval
	// ReasonMAC is KeyedHash of the rejection reason, if any: free text
	// stays out of the log, yet a reason can be matched against it.
	ReasonMAC []byte `json:"reason_mac,omitempty" cbor:"5,keyasint,omitempty"`
}

// Session records the start of a signing protocol run.
//
// Append fields only.
type Session struct {
	RequestID  string   `json:"request_id" cbor:"1,keyasint"`
	SessionID  []byte   `json:"session_id" cbor:"2,keyasint"`
	ProposalID []byte   `json:"proposal_id,omitempty" cbor:"3,keyasint,omitempty"`
	KeyID      string   `json:"key_id" cbor:"4,keyasint"`
	Epoch      uint64   `json:"epoch" cbor:"5,keyasint"`
	Signers    []string `json:"signers" cbor:"6,keyasint"`
	Digests    [][]byte `json:"digests" cbor:"7,keyasint"` // what the run signs, in order
}

// Result outcomes.
const (
	OutcomeSigned  = "signed"
	OutcomeFailed  = "failed"
	OutcomeAborted = "aborted"
)

// Result records how a request ended.
//
// Append fields only.
type Result struct {
	RequestID string   `json:"request_id" cbor:"1,keyasint"`
	Outcome   string   `json:"outcome" cbor:"2,keyasint"` // OutcomeSigned, OutcomeFailed or OutcomeAborted
	Digests   [][]byte `json:"digests,omitempty" cbor:"3,keyasint,omitempty"`
	// Signatures are the finished signatures, one per digest, encoded as
	// the key's algorithm does; they are public once released.
	Signatures [][]byte `json:"signatures,omitempty" cbor:"4,keyasint,omitempty"`
	// Error is a non-secret description of a failure (e.g. the culprit
	// party and round).
	Error    string   `json:"error,omitempty" cbor:"5,keyasint,omitempty"`
	Culprits []string `json:"culprits,omitempty" cbor:"6,keyasint,omitempty"`
}

// Ceremony records a key or governance ceremony (keygen, refresh, reshare,
// party change, derivation, backup, recovery, policy update).
//
// Append fields only.
type Ceremony struct {
	Kind         string   `json:"kind" cbor:"1,keyasint"` // e.g. "keygen", "refresh", "reshare", "backup"
	KeyID        string   `json:"key_id,omitempty" cbor:"2,keyasint,omitempty"`
	Epoch        uint64   `json:"epoch,omitempty" cbor:"3,keyasint,omitempty"`
	AuthorisedBy []string `json:"authorised_by,omitempty" cbor:"4,keyasint,omitempty"` // admin key ids
	Parties      []string `json:"parties,omitempty" cbor:"5,keyasint,omitempty"`
	Threshold    uint64   `json:"threshold,omitempty" cbor:"6,keyasint,omitempty"`
	PublicKey    []byte   `json:"public_key,omitempty" cbor:"7,keyasint,omitempty"`
	Outcome      string   `json:"outcome" cbor:"8,keyasint"` // e.g. "done", "failed"
	Error        string   `json:"error,omitempty" cbor:"9,keyasint,omitempty"`
	// Detail holds kind-specific public facts (e.g. a backup's recipient
	// key ids) until they earn fields of their own.
	Detail map[string]string `json:"detail,omitempty" cbor:"10,keyasint,omitempty"`
}

// Checkpoint commits to everything before it: Count entries, the last of
// which has chain hash Head. It repeats what Prev implies, as a signed,
// self-contained statement an auditor can store and later hold a log to
// (see VerifyOptions.Anchors).
//
// Append fields only.
type Checkpoint struct {
	Count uint64   `json:"count" cbor:"1,keyasint"`
	Head  [32]byte `json:"head" cbor:"2,keyasint"`
}

// Boot binds a new signer key to the enclave that holds it. The
// attestation document's public_key is the enclave's identity (which names
// the signer key); a verifier checks the document before it trusts the
// entries that key signs.
//
// Append fields only.
type Boot struct {
	Measurement         []byte `json:"measurement" cbor:"1,keyasint"` // PCR0
	AttestationDocument []byte `json:"attestation_document" cbor:"2,keyasint"`
	ManifestHash        []byte `json:"manifest_hash,omitempty" cbor:"3,keyasint,omitempty"`
	Software            string `json:"software,omitempty" cbor:"4,keyasint,omitempty"` // build version
}

var (
	partyPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)
	typePattern  = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)
)

// newBody returns a pointer to the zero body struct for typ.
func newBody(typ string) (any, bool) {
	switch typ {
	case TypeRequest:
		return new(Request), true
	case TypeVerdict:
		return new(Verdict), true
	case TypeApproval:
		return new(Approval), true
	case TypeSession:
		return new(Session), true
	case TypeResult:
		return new(Result), true
	case TypeCeremony:
		return new(Ceremony), true
	case TypeCheckpoint:
		return new(Checkpoint), true
	case TypeBoot:
		return new(Boot), true
	}
	return nil, false
}

// bodyType names the entry type of a body value or pointer.
func bodyType(body any) (string, bool) {
	switch body.(type) {
	case Request, *Request:
		return TypeRequest, true
	case Verdict, *Verdict:
		return TypeVerdict, true
	case Approval, *Approval:
		return TypeApproval, true
	case Session, *Session:
		return TypeSession, true
	case Result, *Result:
		return TypeResult, true
	case Ceremony, *Ceremony:
		return TypeCeremony, true
	case Checkpoint, *Checkpoint:
		return TypeCheckpoint, true
	case Boot, *Boot:
		return TypeBoot, true
	}
	return "", false
}

// validateBody checks what the format itself requires of a decoded body
// (a pointer from newBody). Meaning (is this verdict right?) is for
// auditors; this only keeps enums closed and lists bounded.
func validateBody(b any) error {
	switch b := b.(type) {
	case *Request:
		if b.RequestID == "" {
			return errors.New("request: request id is empty")
		}
		return listLimit("signers", len(b.Signers))
	case *Verdict:
		if b.RequestID == "" {
			return errors.New("verdict: request id is empty")
		}
		switch b.Outcome {
		case OutcomeAllow:
			if len(b.Denials) != 0 {
				return fmt.Errorf("verdict: outcome %q with %d denials", b.Outcome, len(b.Denials))
			}
		case OutcomeDeny:
			if len(b.Denials) == 0 {
				return fmt.Errorf("verdict: outcome %q without denials (every deny names its clauses)", b.Outcome)
			}
		case OutcomeNeedsApproval:
		default:
			return fmt.Errorf("verdict: outcome %q invalid (want %q, %q or %q)", b.Outcome, OutcomeAllow, OutcomeDeny, OutcomeNeedsApproval)
		}
		if err := listLimit("rule ids", len(b.RuleIDs)); err != nil {
			return err
		}
		return listLimit("denials", len(b.Denials))
	case *Approval:
		if b.RequestID == "" || b.ApproverKeyID == "" {
			return errors.New("approval: request id or approver key id is empty")
		}
		if b.Decision != "approve" && b.Decision != "reject" {
			return fmt.Errorf("approval: decision %q invalid (want \"approve\" or \"reject\")", b.Decision)
		}
	case *Session:
		if b.RequestID == "" || len(b.SessionID) == 0 {
			return errors.New("session: request id or session id is empty")
		}
		if err := listLimit("signers", len(b.Signers)); err != nil {
			return err
		}
		return listLimit("digests", len(b.Digests))
	case *Result:
		if b.RequestID == "" {
			return errors.New("result: request id is empty")
		}
		switch b.Outcome {
		case OutcomeSigned:
			if len(b.Signatures) == 0 {
				return fmt.Errorf("result: outcome %q without signatures", b.Outcome)
			}
		case OutcomeFailed, OutcomeAborted:
		default:
			return fmt.Errorf("result: outcome %q invalid (want %q, %q or %q)", b.Outcome, OutcomeSigned, OutcomeFailed, OutcomeAborted)
		}
		if err := listLimit("digests", len(b.Digests)); err != nil {
			return err
		}
		return listLimit("signatures", len(b.Signatures))
	case *Ceremony:
		if !typePattern.MatchString(b.Kind) {
			return fmt.Errorf("ceremony: kind %q invalid", b.Kind)
		}
		if b.Outcome == "" {
			return errors.New("ceremony: outcome is empty")
		}
	case *Checkpoint:
	case *Boot:
		if len(b.AttestationDocument) == 0 {
			return errors.New("boot: attestation document is empty")
		}
	}
	return nil
}

func listLimit(what string, n int) error {
	if n > maxList {
		return fmt.Errorf("%d %s, limit %d", n, what, maxList)
	}
	return nil
}

// KeyedHash is HMAC-SHA256 under a per-deployment salt of data, for free
// text (such as rejection reasons) that the log should commit to without
// disclosing: whoever holds the salt can check a candidate text, nobody
// else can guess it from the log. The salt must be at least 16 bytes of
// secret randomness, kept with the deployment's configuration.
func KeyedHash(salt, data []byte) ([]byte, error) {
	if len(salt) < 16 {
		return nil, fmt.Errorf("audit: keyed-hash salt is %d bytes, want at least 16", len(salt))
	}
	m := hmac.New(sha256.New, salt)
	m.Write([]byte(keyedHashDomain))
	m.Write([]byte{0})
	m.Write(data)
	return m.Sum(nil), nil
}
