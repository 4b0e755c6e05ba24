package attestation

import (
	"encoding/hex"
	"errors"
	"strings"
)

// Sentinel errors classify why a document failed. Every error Verify returns
// is a *CheckError whose Kind is one of these, so callers can branch with
// errors.Is and read the details with errors.As.
var (
	// ErrOptions means the caller's VerifyOptions are unusable (no roots, no
	// time, a malformed expected PCR). It is a programming error, not a
	// property of the document.
	ErrOptions = errors.New("attestation: invalid verify options")
	// ErrMalformed means the bytes are not a well-formed Nitro attestation
	// document: bad CBOR or COSE structure, a missing mandatory field, or a
	// field outside the size limits.
	ErrMalformed = errors.New("attestation: malformed document")
	// ErrAlgorithm means a key or signature is not ES384 / ECDSA P-384.
	ErrAlgorithm = errors.New("attestation: unsupported algorithm")
	// ErrChain means the certificate chain does not lead to one of the given
	// roots at the verification time.
	ErrChain = errors.New("attestation: certificate chain invalid")
	// ErrExpired means the document is outside its validity: a certificate
	// is expired or not yet valid at the verification time, or the document
	// is older than MaxAge or dated in the future. Expired certificates are
	// reported with both ErrChain and ErrExpired.
	ErrExpired = errors.New("attestation: document expired")
	// ErrSignature means the COSE_Sign1 signature does not verify under the
	// leaf certificate's key.
	ErrSignature = errors.New("attestation: signature invalid")
	// ErrDebug means the enclave runs in debug mode (PCR0 all zero): its
	// memory is readable by the parent instance.
	ErrDebug = errors.New("attestation: debug enclave")
	// ErrMeasurement means a required PCR is missing or differs.
	ErrMeasurement = errors.New("attestation: measurement mismatch")
	// ErrBinding means nonce, user_data or public_key differ from what the
	// caller expects.
	ErrBinding = errors.New("attestation: binding mismatch")
)

// CheckError reports one failed check. Want and Got hold the full expected
// and actual values (hex for bytes); Error abbreviates long values.
type CheckError struct {
	// Check names the check: "cose", "alg", "signature", "payload",
	// "module_id", "digest", "timestamp", "pcrs", "pcrN", "certificate",
	// "cabundle", "public_key", "user_data", "nonce", "leaf", "chain",
	// "age", "options".
	Check  string
	Reason string // what went wrong: "mismatch", "missing", "too long", …
	Want   string // expected value; may be empty
	Got    string // actual value; may be empty
	Kind   error  // one of the Err… sentinels
	Err    error  // underlying cause (CBOR or x509 error), may be nil

	also error // a second sentinel (an expired chain is ErrChain and ErrExpired)
}

func (e *CheckError) Error() string {
	var b strings.Builder
	b.WriteString("attestation: ")
	b.WriteString(e.Check)
	if e.Reason != "" {
		b.WriteString(" ")
		b.WriteString(e.Reason)
	}
	causeShown := false
	if e.Want != "" || e.Got != "" {
		want, got := abbreviate(e.Want), abbreviate(e.Got)
		if want == got && e.Want != e.Got {
			want, got = e.Want, e.Got
		}
		if got == "" && e.Err != nil {
			got, causeShown = e.Err.Error(), true
		}
		b.WriteString(": want ")
		b.WriteString(want)
		b.WriteString(", got ")
		b.WriteString(got)
	}
	if e.Err != nil && !causeShown {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap exposes both the sentinel kind and the underlying cause to
// errors.Is and errors.As.
func (e *CheckError) Unwrap() []error {
	errs := make([]error, 0, 3)
	if e.Kind != nil {
		errs = append(errs, e.Kind)
	}
	if e.also != nil {
		errs = append(errs, e.also)
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

// hexOrAbsent formats an optional byte field for Want/Got.
func hexOrAbsent(b []byte) string {
	if b == nil {
		return "absent"
	}
	if len(b) == 0 {
		return "empty"
	}
	return hex.EncodeToString(b)
}

func malformed(check, reason, want, got string, err error) *CheckError {
	return &CheckError{Check: check, Reason: reason, Want: want, Got: got, Kind: ErrMalformed, Err: err}
}
