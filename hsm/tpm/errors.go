package tpm

import (
	"errors"
	"fmt"

	"github.com/sealsign/sealsign/hsm"
)

// Errors callers test with errors.Is. Returned errors carry a more precise
// message; these name the class. Where the hsm.Sealer contract asks for one
// of the hsm sentinels, the returned error wraps that sentinel too (listed
// with each class).
var (
	// ErrPolicy: the PCR policy of a sealed blob is not satisfied — a PCR
	// in the policy has a different value than when the blob was sealed
	// (the machine booted other firmware or kernel, or the enclave
	// measurement differs), or the blob was sealed under a different PCR
	// selection. Not an attack on the blob and not an outage: the measured
	// state of this machine differs. Never wraps hsm.ErrTampered.
	ErrPolicy = errors.New("tpm: pcr policy not satisfied")
	// ErrTampered: authentication failed — the blob was modified, or sealed
	// by another TPM or under another storage key. Also hsm.ErrTampered.
	ErrTampered = errors.New("tpm: sealed data failed authentication")
	// ErrAADMismatch: the blob was sealed with other associated data (it
	// belongs to another party, key, epoch or kind). Also hsm.ErrTampered.
	ErrAADMismatch = errors.New("tpm: associated data mismatch")
	// ErrMalformed: the bytes are not sealed data this package writes
	// (truncated, over a size limit, inconsistent lengths). Also
	// hsm.ErrMalformed and hsm.ErrTampered.
	ErrMalformed = errors.New("tpm: malformed sealed data")
	// ErrInvalidPCR: a PCR selection the caller passed is unusable (empty,
	// index out of range, duplicate, not allocated in the SHA-256 bank).
	ErrInvalidPCR = errors.New("tpm: invalid pcr selection")
	// ErrClosed: the TPM was closed.
	ErrClosed = errors.New("tpm: closed")
	// ErrDevice: the TPM failed a command or cannot be reached (device
	// missing, no permission, resource exhausted). Retrying or reopening may
	// help. Never an attack signal.
	ErrDevice = errors.New("tpm: tpm operation failed")
	// ErrSimulatorBusy: the TPM simulator is a process-wide singleton and is
	// already open in this process.
	ErrSimulatorBusy = errors.New("tpm: simulator already open in this process")
	// ErrSeedFile: the simulator seed file cannot be read, created or parsed.
	ErrSeedFile = errors.New("tpm: simulator seed file unusable")
	// ErrUnsupported: this binary was built without the TPM simulator
	// (CGO_ENABLED=0 or the notpmsim build tag).
	ErrUnsupported = errors.New("tpm: tpm simulator not built in")
)

// classError carries a precise message, its class sentinels and the
// underlying cause (for example a tpm2.TPMRC), all reachable through
// errors.Is / errors.As.
type classError struct {
	msg     string
	classes []error
	cause   error
}

func (e *classError) Error() string { return e.msg }

func (e *classError) Unwrap() []error {
	errs := append([]error(nil), e.classes...)
	if e.cause != nil {
		errs = append(errs, e.cause)
	}
	return errs
}

// alsoWraps lists the hsm sentinels each class must also match.
func alsoWraps(class error) []error {
	switch class {
	case ErrTampered, ErrAADMismatch:
		return []error{class, hsm.ErrTampered}
	case ErrMalformed:
		return []error{class, hsm.ErrMalformed, hsm.ErrTampered}
	}
	return []error{class}
}

// classErrorf builds a classError; the message gets the "tpm: " prefix and,
// when cause is non-nil, ": " and the cause's text.
func classErrorf(class, cause error, format string, args ...any) error {
	msg := "tpm: " + fmt.Sprintf(format, args...)
	if cause != nil {
		msg += ": " + cause.Error()
	}
	return &classError{msg: msg, classes: alsoWraps(class), cause: cause}
}

// hsmErrorf is classErrorf for errors whose class is an hsm sentinel
// (ErrAADRequired, ErrUnknownVersion).
func hsmErrorf(class error, format string, args ...any) error {
	return &classError{msg: "tpm: " + fmt.Sprintf(format, args...), classes: []error{class}}
}
