// Package approval is the decision an approver signs about one signing
// request: approve or reject, bound to the request (its id and the digest of
// the exact signed request), the payload hash, the policy version in force
// and an expiry. Each enclave verifies approvals itself; the host only
// carries them. Any verified rejection aborts the request.
//
// # Wire format
//
// A signed approval is Signed in canonical CBOR (package canon): the exact
// canonical encoding of an Approval and a signature over
// keys.Message(Domain, those bytes), so the signature covers an encoding
// that excludes the signature field.
//
// # Backwards compatibility
//
// Approval is format 1. Fields are appended only; CBOR keys are never
// renumbered or reused. Decoding is strict: unknown fields are refused.
package approval

import (
	"crypto"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/sealsign/sealsign/governance/canon"
	"github.com/sealsign/sealsign/governance/keys"
	"github.com/sealsign/sealsign/governance/request"
)

// Domains for the approval signature and the approval digest.
const (
	Domain       = "sealsign/v1/approval"
	DigestDomain = "sealsign/v1/approval-id"
)

// FormatV1 is the only Approval format.
const FormatV1 = 1

// Decisions.
const (
	Approve = "approve"
	Reject  = "reject"
)

// Limits.
const (
	// MaxReasonLen bounds Reason in bytes (UTF-8).
	MaxReasonLen = 256
	// MaxLifetime bounds ExpiresAt-IssuedAt. An approval is for one request
	// that itself lives minutes; a week covers approvers in other time
	// zones and weekends without making approvals long-lived credentials.
	MaxLifetime = 7 * 24 * time.Hour
	// ClockSkew is how far in the future IssuedAt may be.
	ClockSkew = 2 * time.Minute
	// maxSigned bounds a signed approval; a real one is under 1 KiB.
	maxSigned = 4 << 10
)

// Errors, for errors.Is. Returned errors add expected and actual values.
var (
	ErrMalformed       = errors.New("approval: malformed")
	ErrUnknownApprover = errors.New("approval: unknown approver key")
	// ErrBadSignature also matches keys.ErrBadSignature.
	ErrBadSignature error = &wrapErr{"approval: signature does not verify", keys.ErrBadSignature}
	// ErrMismatch: the approval is authentic but about something else
	// (another cluster, request, payload or policy version).
	ErrMismatch    = errors.New("approval: does not match the request")
	ErrExpired     = errors.New("approval: expired")
	ErrNotYetValid = errors.New("approval: issued in the future")
	ErrLifetime    = errors.New("approval: lifetime too long")
	// ErrConflicting: one approver key sent two different decisions.
	ErrConflicting = errors.New("approval: conflicting decisions")
)

type wrapErr struct {
	msg  string
	base error
}

func (e *wrapErr) Error() string { return e.msg }
func (e *wrapErr) Unwrap() error { return e.base }

// Approval is one approver's decision about one request.
//
// Format 1. Append fields only; never renumber or reuse a CBOR key.
type Approval struct {
	Format    uint64 `json:"format" cbor:"1,keyasint"`
	ClusterID string `json:"cluster_id" cbor:"2,keyasint"`
	RequestID string `json:"request_id" cbor:"3,keyasint"`
	// RequestDigest is request.Digest of the signed request approved. It
	// binds the decision to everything the client signed (threshold key,
	// signers, client key), not only the payload: an approval of "pay X
	// from the petty-cash key" is not an approval of the same bytes signed
	// by the treasury key under a reused request id.
	RequestDigest [32]byte `json:"request_digest" cbor:"4,keyasint"`
	// PayloadHash is tx.Summary.PayloadHash of the request's payload.
	PayloadHash   [32]byte `json:"payload_hash" cbor:"5,keyasint"`
	PolicyVersion uint64   `json:"policy_version" cbor:"6,keyasint"`
	ApproverKeyID string   `json:"approver_key_id" cbor:"7,keyasint"`
	Decision      string   `json:"decision" cbor:"8,keyasint"` // Approve or Reject
	// Reason is optional free text (at most MaxReasonLen bytes, printable),
	// meant for rejections. It is shown to people; audit records store only
	// a keyed hash of it.
	Reason string `json:"reason,omitempty" cbor:"9,keyasint,omitempty"`
	// IssuedAt and ExpiresAt are unix seconds; valid while
	// IssuedAt-ClockSkew ≤ now < ExpiresAt.
	IssuedAt  int64 `json:"issued_at" cbor:"10,keyasint"`
	ExpiresAt int64 `json:"expires_at" cbor:"11,keyasint"`

	digest [32]byte // set by Verify; not encoded
}

// Signed is an Approval's canonical encoding and the approver's signature
// over keys.Message(Domain, Approval).
//
// Format 1. Append fields only.
type Signed struct {
	Approval  []byte `json:"approval" cbor:"1,keyasint"`
	Signature []byte `json:"signature" cbor:"2,keyasint"`
}

// Subject is what the enclave expects an approval to be about.
type Subject struct {
	ClusterID     string
	RequestID     string
	RequestDigest [32]byte // request.Digest of the signed request
	PayloadHash   [32]byte // tx.Summary.PayloadHash
	PolicyVersion uint64
}

// Validate checks the approval's fields on their own.
func (a *Approval) Validate() error {
	if a.Format != FormatV1 {
		return fmt.Errorf("%w: format %d unsupported, want %d", ErrMalformed, a.Format, FormatV1)
	}
	if !keys.ValidName(a.ClusterID) {
		return fmt.Errorf("%w: cluster id %q invalid", ErrMalformed, a.ClusterID)
	}
	if !request.ValidID(a.RequestID) {
		return fmt.Errorf("%w: request id %q invalid (want 16-64 of letters, digits, '_' and '-')", ErrMalformed, a.RequestID)
	}
	if a.RequestDigest == ([32]byte{}) {
		return fmt.Errorf("%w: request %q: request digest is zero", ErrMalformed, a.RequestID)
	}
	if a.PayloadHash == ([32]byte{}) {
		return fmt.Errorf("%w: request %q: payload hash is zero", ErrMalformed, a.RequestID)
	}
	if !keys.ValidName(a.ApproverKeyID) {
		return fmt.Errorf("%w: approver key id %q invalid", ErrMalformed, a.ApproverKeyID)
	}
	if a.Decision != Approve && a.Decision != Reject {
		return fmt.Errorf("%w: decision %q invalid (want %q or %q)", ErrMalformed, a.Decision, Approve, Reject)
	}
	if len(a.Reason) > MaxReasonLen {
		return fmt.Errorf("%w: reason is %d bytes, limit %d", ErrMalformed, len(a.Reason), MaxReasonLen)
	}
	if !utf8.ValidString(a.Reason) {
		return fmt.Errorf("%w: reason is not UTF-8", ErrMalformed)
	}
	for _, r := range a.Reason {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("%w: reason contains non-printable character %U", ErrMalformed, r)
		}
	}
	if a.IssuedAt <= 0 || a.ExpiresAt <= a.IssuedAt {
		return fmt.Errorf("%w: validity window invalid: issued_at %d, expires_at %d (want 0 < issued_at < expires_at)", ErrMalformed, a.IssuedAt, a.ExpiresAt)
	}
	if life := a.ExpiresAt - a.IssuedAt; life > int64(MaxLifetime/time.Second) {
		return fmt.Errorf("%w: approval by %q lives %ds, limit %s", ErrLifetime, a.ApproverKeyID, life, MaxLifetime)
	}
	return nil
}

// New validates a and signs it with priv (ed25519.PrivateKey or
// *ecdsa.PrivateKey P-256), returning the encoded Signed approval. It is
// for the CLI and tests.
func New(a Approval, priv crypto.Signer) ([]byte, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	body, err := canon.Marshal(&a)
	if err != nil {
		return nil, fmt.Errorf("approval: encode: %w", err)
	}
	sig, err := keys.Sign(priv, Domain, body)
	if err != nil {
		return nil, fmt.Errorf("approval: sign: %w", err)
	}
	out, err := canon.Marshal(&Signed{Approval: body, Signature: sig})
	if err != nil {
		return nil, fmt.Errorf("approval: encode: %w", err)
	}
	return out, nil
}

// Verify decodes a signed approval and accepts it only if it is well
// formed, signed by a key in approvers, about want, and valid at now. A
// verified rejection is returned without error: the caller (Tally) acts on
// the decision.
func Verify(signed []byte, approvers keys.Set, want Subject, now time.Time) (a *Approval, err error) {
	defer func() {
		if p := recover(); p != nil {
			a, err = nil, fmt.Errorf("%w: decoder panic: %v", ErrMalformed, p)
		}
	}()
	if len(signed) > maxSigned {
		return nil, fmt.Errorf("%w: signed approval is %d bytes, limit %d", ErrMalformed, len(signed), maxSigned)
	}
	var s Signed
	if err := canon.Unmarshal(signed, &s); err != nil {
		return nil, fmt.Errorf("%w: signed envelope: %v", ErrMalformed, err)
	}
	ap := new(Approval)
	if err := canon.Unmarshal(s.Approval, ap); err != nil {
		return nil, fmt.Errorf("%w: approval body: %v", ErrMalformed, err)
	}
	if ap.Format != FormatV1 {
		return nil, fmt.Errorf("%w: format %d unsupported, want %d", ErrMalformed, ap.Format, FormatV1)
	}
	key, ok := approvers[ap.ApproverKeyID]
	if !ok {
		return nil, fmt.Errorf("%w: %q is not an approver key (request %q)", ErrUnknownApprover, ap.ApproverKeyID, ap.RequestID)
	}
	if err := key.Verify(Domain, s.Approval, s.Signature); err != nil {
		if errors.Is(err, keys.ErrBadSignature) {
			return nil, fmt.Errorf("%w: approver key %q (%s), request %q", ErrBadSignature, key.ID, key.Algorithm, ap.RequestID)
		}
		return nil, fmt.Errorf("%w: approver key %q: %v", ErrBadSignature, key.ID, err)
	}
	if err := ap.Validate(); err != nil {
		return nil, err
	}
	if err := ap.Matches(want); err != nil {
		return nil, err
	}
	nowS := now.Unix()
	if nowS >= ap.ExpiresAt {
		return nil, fmt.Errorf("%w: approval by %q of request %q expired at %s, now %s", ErrExpired, ap.ApproverKeyID, ap.RequestID, unix(ap.ExpiresAt), unix(nowS))
	}
	if ap.IssuedAt > nowS+int64(ClockSkew/time.Second) {
		return nil, fmt.Errorf("%w: approval by %q issued at %s, now %s (more than %s ahead; check the approver's clock)", ErrNotYetValid, ap.ApproverKeyID, unix(ap.IssuedAt), unix(nowS), ClockSkew)
	}
	ap.digest = Digest(signed)
	return ap, nil
}

// Matches reports, as an ErrMismatch error naming the first differing field
// with expected and actual values, whether a is about want.
func (a *Approval) Matches(want Subject) error {
	switch {
	case a.ClusterID != want.ClusterID:
		return fmt.Errorf("%w: approval by %q is for cluster %q, want %q", ErrMismatch, a.ApproverKeyID, a.ClusterID, want.ClusterID)
	case a.RequestID != want.RequestID:
		return fmt.Errorf("%w: approval by %q is for request %q, want %q", ErrMismatch, a.ApproverKeyID, a.RequestID, want.RequestID)
	case a.RequestDigest != want.RequestDigest:
		return fmt.Errorf("%w: approval by %q of request %q: request digest %s, want %s (the request was re-signed or altered since it was approved)",
			ErrMismatch, a.ApproverKeyID, a.RequestID, hex.EncodeToString(a.RequestDigest[:]), hex.EncodeToString(want.RequestDigest[:]))
	case a.PayloadHash != want.PayloadHash:
		return fmt.Errorf("%w: approval by %q of request %q: payload hash %s, want %s",
			ErrMismatch, a.ApproverKeyID, a.RequestID, hex.EncodeToString(a.PayloadHash[:]), hex.EncodeToString(want.PayloadHash[:]))
	case a.PolicyVersion != want.PolicyVersion:
		return fmt.Errorf("%w: approval by %q of request %q: policy version %d, want %d (the policy changed; approve again)",
			ErrMismatch, a.ApproverKeyID, a.RequestID, a.PolicyVersion, want.PolicyVersion)
	}
	return nil
}

// Digest identifies one signed approval in audit records:
// canon.Digest(DigestDomain, signed).
func Digest(signed []byte) [32]byte {
	return canon.Digest(DigestDomain, signed)
}

// Digest returns the digest of the signed approval Verify accepted this
// Approval from; zero for an Approval that did not come from Verify.
func (a *Approval) Digest() [32]byte { return a.digest }

func unix(s int64) string {
	return time.Unix(s, 0).UTC().Format(time.RFC3339)
}
