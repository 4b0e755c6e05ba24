package tpm

import (
	"encoding/hex"
	"errors"
	"strings"

	"github.com/sealsign/sealsign/attestation"
)

// Sentinel errors classify why a quote or evidence failed. Every error
// VerifyQuote and VerifyEvidence return is a *CheckError whose Kind is one
// of these; each also matches the Nitro verifier's sentinel of the same
// meaning in package attestation (noted below), so a caller handling both
// party kinds can branch once.
var (
	// ErrOptions: the caller's options are unusable (no pinned attestation
	// key, a malformed expected PCR). A programming error. Also
	// attestation.ErrOptions.
	ErrOptions = errors.New("tpm: invalid verify options")
	// ErrMalformed: the bytes are not well-formed evidence or TPMS_ATTEST:
	// bad CBOR, a missing or extra field, a field over its size limit.
	// Also attestation.ErrMalformed.
	ErrMalformed = errors.New("tpm: malformed evidence")
	// ErrAlgorithm: a key or signature is not ECDSA P-256 with SHA-256.
	// Also attestation.ErrAlgorithm.
	ErrAlgorithm = errors.New("tpm: unsupported algorithm")
	// ErrAttestationKey: the evidence names an attestation key other than
	// the pinned one. Also attestation.ErrChain (not from a trusted key).
	ErrAttestationKey = errors.New("tpm: attestation key not the pinned one")
	// ErrSignature: the quote signature does not verify under the
	// attestation key. Also attestation.ErrSignature.
	ErrSignature = errors.New("tpm: quote signature invalid")
	// ErrQuote: the signed TPMS_ATTEST is not a quote (magic, type), or
	// its PCR selection or digest disagrees with the reported PCR values.
	// Also attestation.ErrMalformed.
	ErrQuote = errors.New("tpm: quote inconsistent")
	// ErrMeasurement: a required PCR is missing from the quote or differs.
	// Also attestation.ErrMeasurement.
	ErrMeasurement = errors.New("tpm: measurement mismatch")
	// ErrBinding: the nonce, user data or public key differ from what the
	// caller expects, or from what the quote signed. Also
	// attestation.ErrBinding.
	ErrBinding = errors.New("tpm: binding mismatch")
)

var parentKind = map[error]error{
	ErrOptions:        attestation.ErrOptions,
	ErrMalformed:      attestation.ErrMalformed,
	ErrAlgorithm:      attestation.ErrAlgorithm,
	ErrAttestationKey: attestation.ErrChain,
	ErrSignature:      attestation.ErrSignature,
	ErrQuote:          attestation.ErrMalformed,
	ErrMeasurement:    attestation.ErrMeasurement,
	ErrBinding:        attestation.ErrBinding,
}

// CheckError reports one failed check. Want and Got hold the full expected
// and actual values (hex for bytes); Error abbreviates long values.
type CheckError struct {
	// Check names the check: "options", "evidence", "version", "ak_public",
	// "signature", "attest", "magic", "type", "extra_data", "pcr_select",
	// "pcr_digest", "pcrN", "public_key", "user_data", "nonce".
	Check  string
	Reason string // what went wrong: "mismatch", "missing", "too long", …
	Want   string // expected value; may be empty
	Got    string // actual value; may be empty
	Kind   error  // one of the Err… sentinels
	Err    error  // underlying cause (CBOR or x509 error), may be nil
}

func (e *CheckError) Error() string {
	var b strings.Builder
	b.WriteString("tpm: ")
	b.WriteString(e.Check)
	if e.Reason != "" {
		b.WriteString(" ")
		b.WriteString(e.Reason)
	}
	if e.Want != "" || e.Got != "" {
		want, got := abbreviate(e.Want), abbreviate(e.Got)
		if want == got && e.Want != e.Got {
			want, got = e.Want, e.Got
		}
		b.WriteString(": want ")
		b.WriteString(want)
		b.WriteString(", got ")
		b.WriteString(got)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap exposes the kind, its attestation counterpart and the cause.
func (e *CheckError) Unwrap() []error {
	errs := make([]error, 0, 3)
	if e.Kind != nil {
		errs = append(errs, e.Kind)
		if p := parentKind[e.Kind]; p != nil {
			errs = append(errs, p)
		}
	}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}

// abbreviate shortens long hex values to "1a2b3c4d…9f0e" so a message stays
// readable; the full value stays in CheckError.Want/Got.
func abbreviate(s string) string {
	if len(s) <= 32 || !isHex(s) {
		return s
	}
	return s[:8] + "…" + s[len(s)-4:]
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// hexOrEmpty formats a byte field for Want/Got.
func hexOrEmpty(b []byte) string {
	if len(b) == 0 {
		return "empty"
	}
	return hex.EncodeToString(b)
}

func malformed(check, reason, want, got string, err error) *CheckError {
	return &CheckError{Check: check, Reason: reason, Want: want, Got: got, Kind: ErrMalformed, Err: err}
}
