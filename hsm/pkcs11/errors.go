package pkcs11

import (
	"errors"
	"fmt"
)

// Errors callers test with errors.Is. Messages of returned errors are more
// specific; these name the class.
var (
	ErrInvalidURI     = errors.New("pkcs11: invalid uri")
	ErrModuleNotFound = errors.New("pkcs11: module not found or not loadable")
	ErrTokenNotFound  = errors.New("pkcs11: token not found")
	ErrPINIncorrect   = errors.New("pkcs11: wrong PIN")
	ErrPINLocked      = errors.New("pkcs11: PIN locked")
	ErrKeyMissing     = errors.New("pkcs11: key missing")
	// ErrKeyUnsafe: a key with the wanted label exists but could leak or is
	// not AES-256 for encryption; sealsign refuses to seal under it.
	ErrKeyUnsafe = errors.New("pkcs11: key unsafe for sealing")
	ErrClosed    = errors.New("pkcs11: token closed")
	// ErrToken: the token or module failed an operation (device error,
	// session lost); retrying or reopening may help. Never an attack signal.
	ErrToken = errors.New("pkcs11: token operation failed")
	// ErrUnsupported: this binary was built without PKCS#11 support.
	ErrUnsupported = errors.New("pkcs11: PKCS#11 support not built in")
)

// classError carries a precise message, the class sentinel and the
// underlying cause (for example a miekg/pkcs11 return value), all reachable
// through errors.Is / errors.As.
type classError struct {
	msg   string
	class error
	cause error
}

func (e *classError) Error() string { return e.msg }

func (e *classError) Unwrap() []error {
	if e.cause == nil {
		return []error{e.class}
	}
	return []error{e.class, e.cause}
}

// classErrorf builds a classError; the message gets the package prefix and,
// when cause is non-nil, ": " and the cause's text.
func classErrorf(class, cause error, format string, args ...any) error {
	msg := "pkcs11: " + fmt.Sprintf(format, args...)
	if cause != nil {
		msg += ": " + cause.Error()
	}
	return &classError{msg: msg, class: class, cause: cause}
}

func uriErrorf(format string, args ...any) error {
	return classErrorf(ErrInvalidURI, nil, format, args...)
}
