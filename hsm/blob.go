// Package hsm holds what every hardware sealing backend shares: the Sealer
// interface a backend implements (PKCS#11 in hsm/pkcs11, TPM later) and the
// versioned sealed-blob format that binds each sealed secret to the party,
// key, key epoch and kind of secret it belongs to.
//
// The host stores sealed blobs but is not trusted (DESIGN.md, trust model):
// it may hand an enclave any blob it holds, rewritten or not. OpenBlob
// therefore checks the blob's stated binding against the one the caller
// expects, and the Sealer authenticates that same binding as associated data,
// so neither swapping blobs nor rewriting a blob's header yields a secret the
// caller did not ask for.
package hsm

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/fxamacker/cbor/v2"
)

// Sealer encrypts with a key that never leaves the hardware. aad must be non-empty.
//
// Error contract: both methods return an error wrapping ErrAADRequired when
// aad is empty. Unseal returns an error wrapping ErrTampered when the sealed
// bytes fail authentication (modified, truncated, sealed under another key or
// with other aad); other errors (device unavailable, session lost) must not
// wrap ErrTampered, so callers can tell an attack from an outage.
// Implementations are safe for concurrent use.
type Sealer interface {
	Seal(aad, plaintext []byte) ([]byte, error)
	Unseal(aad, sealed []byte) ([]byte, error)
}

// Binding names what a sealed blob is: whose it is and which secret it holds.
// Kind is e.g. "share/ecdsa-secp256k1" or "preparams". PartyID and Kind are
// required; KeyID may be empty for secrets that belong to no key (preparams).
type Binding struct {
	PartyID, KeyID string
	Epoch          uint64
	Kind           string
}

// FormatVersion is the sealed-blob format this package writes.
//
// Evolution rule: a new version gets a new number; OpenBlob keeps reading every
// version it ever wrote. Fields are never reinterpreted within a version.
const FormatVersion = 1

// Limits on untrusted input. A blob larger than MaxBlobSize is rejected before
// it is decoded; binding fields longer than MaxBindingField are rejected on
// both sides.
const (
	MaxBlobSize     = 64 << 20
	MaxBindingField = 256
)

// Errors callers test with errors.Is. Each returned error wraps exactly one.
var (
	// ErrBindingMismatch: the blob states a different party, key, epoch or
	// kind than the caller wants; the error names the field.
	ErrBindingMismatch = errors.New("hsm: sealed blob binding mismatch")
	// ErrTampered: authentication failed; the blob was modified, its header
	// rewritten, or it was sealed under a different key.
	ErrTampered = errors.New("hsm: sealed blob failed authentication: tampered, or sealed under a different key")
	// ErrUnknownVersion: the blob (or a backend's sealed bytes) carries a
	// format version this build cannot read.
	ErrUnknownVersion = errors.New("hsm: unknown sealed blob format version")
	// ErrMalformed: the bytes are not a well-formed sealed blob (bad CBOR,
	// non-canonical encoding, missing or extra fields, over a size limit).
	ErrMalformed = errors.New("hsm: malformed sealed blob")
	// ErrAADRequired: a Sealer was called with empty associated data.
	ErrAADRequired = errors.New("hsm: associated data required")
	// ErrInvalidBinding: the caller passed a binding that cannot be sealed
	// (empty party or kind, over-long or non-UTF-8 field).
	ErrInvalidBinding = errors.New("hsm: invalid binding")
)

// BindingError reports which fields of a blob's stated binding differ from
// the wanted one. It wraps ErrBindingMismatch.
type BindingError struct {
	Got, Want Binding
}

func (e *BindingError) Error() string {
	var parts []string
	if e.Got.PartyID != e.Want.PartyID {
		parts = append(parts, fmt.Sprintf("party %q, want party %q", e.Got.PartyID, e.Want.PartyID))
	}
	if e.Got.KeyID != e.Want.KeyID {
		parts = append(parts, fmt.Sprintf("key %q, want key %q", e.Got.KeyID, e.Want.KeyID))
	}
	if e.Got.Epoch != e.Want.Epoch {
		parts = append(parts, fmt.Sprintf("epoch %d, want epoch %d", e.Got.Epoch, e.Want.Epoch))
	}
	if e.Got.Kind != e.Want.Kind {
		parts = append(parts, fmt.Sprintf("kind %q, want kind %q", e.Got.Kind, e.Want.Kind))
	}
	return "hsm: sealed blob belongs to " + strings.Join(parts, "; ")
}

func (e *BindingError) Unwrap() error { return ErrBindingMismatch }

// Wire forms. Integer keys keep the encoding small and stable; core
// deterministic encoding (RFC 8949 §4.2.1) makes it canonical.

type wireBinding struct {
	PartyID string `cbor:"1,keyasint"`
	KeyID   string `cbor:"2,keyasint"`
	Epoch   uint64 `cbor:"3,keyasint"`
	Kind    string `cbor:"4,keyasint"`
}

// wireBlob is the stored form: {1: version, 2: binding, 3: sealed bytes}.
type wireBlob struct {
	Version uint64      `cbor:"1,keyasint"`
	Binding wireBinding `cbor:"2,keyasint"`
	Sealed  []byte      `cbor:"3,keyasint"`
}

// wireAAD is what the Sealer authenticates: a domain-separation context, the
// format version and the binding. It never appears in the blob itself.
type wireAAD struct {
	Context string      `cbor:"1,keyasint"`
	Version uint64      `cbor:"2,keyasint"`
	Binding wireBinding `cbor:"3,keyasint"`
}

// wireVersion reads only the version, ignoring everything else, so a blob of
// a future version is reported as such rather than as malformed.
type wireVersion struct {
	Version uint64 `cbor:"1,keyasint"`
}

const aadContext = "sealsign/hsm/sealed-blob"

var (
	encMode cbor.EncMode
	// strictDec rejects everything a blob written by SealBlob cannot contain.
	strictDec cbor.DecMode
	// versionDec is lenient about fields but keeps the same resource limits.
	versionDec cbor.DecMode
)

func init() {
	var err error
	if encMode, err = cbor.CoreDetEncOptions().EncMode(); err != nil {
		panic(err)
	}
	limits := cbor.DecOptions{
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		MaxNestedLevels:  4,
		MaxArrayElements: 16,
		MaxMapPairs:      16,
		IndefLength:      cbor.IndefLengthForbidden,
		TagsMd:           cbor.TagsForbidden,
		UTF8:             cbor.UTF8RejectInvalid,
	}
	if versionDec, err = limits.DecMode(); err != nil {
		panic(err)
	}
	limits.ExtraReturnErrors = cbor.ExtraDecErrorUnknownField
	if strictDec, err = limits.DecMode(); err != nil {
		panic(err)
	}
}

func toWire(b Binding) wireBinding {
	return wireBinding(b)
}

func fromWire(w wireBinding) Binding {
	return Binding(w)
}

func validateBinding(b Binding) error {
	if b.PartyID == "" {
		return fmt.Errorf("%w: party id is empty", ErrInvalidBinding)
	}
	if b.Kind == "" {
		return fmt.Errorf("%w: kind is empty", ErrInvalidBinding)
	}
	for _, f := range []struct{ name, v string }{{"party id", b.PartyID}, {"key id", b.KeyID}, {"kind", b.Kind}} {
		if len(f.v) > MaxBindingField {
			return fmt.Errorf("%w: %s is %d bytes, limit is %d", ErrInvalidBinding, f.name, len(f.v), MaxBindingField)
		}
		if !utf8.ValidString(f.v) {
			return fmt.Errorf("%w: %s is not valid UTF-8", ErrInvalidBinding, f.name)
		}
	}
	return nil
}

// aadFor is the deterministic encoding of (format version, binding).
func aadFor(version uint64, b Binding) ([]byte, error) {
	return encMode.Marshal(wireAAD{Context: aadContext, Version: version, Binding: toWire(b)})
}

// SealBlob seals plaintext with s and returns a blob bound to b. The result is
// deterministic CBOR {version, binding, sealed}; the binding is also the
// associated data of the seal, so it is authenticated, not merely stated.
func SealBlob(s Sealer, b Binding, plaintext []byte) ([]byte, error) {
	if s == nil {
		return nil, errors.New("hsm: SealBlob called with a nil Sealer")
	}
	if err := validateBinding(b); err != nil {
		return nil, err
	}
	if len(plaintext) > MaxBlobSize {
		return nil, fmt.Errorf("hsm: plaintext is %d bytes, limit is %d", len(plaintext), MaxBlobSize)
	}
	aad, err := aadFor(FormatVersion, b)
	if err != nil {
		return nil, fmt.Errorf("hsm: encode associated data: %w", err)
	}
	sealed, err := s.Seal(aad, plaintext)
	if err != nil {
		return nil, fmt.Errorf("hsm: seal %s: %w", describe(b), err)
	}
	blob, err := encMode.Marshal(wireBlob{Version: FormatVersion, Binding: toWire(b), Sealed: sealed})
	if err != nil {
		return nil, fmt.Errorf("hsm: encode sealed blob: %w", err)
	}
	if len(blob) > MaxBlobSize {
		return nil, fmt.Errorf("hsm: sealed blob would be %d bytes, limit is %d; plaintext is too large", len(blob), MaxBlobSize)
	}
	return blob, nil
}

// OpenBlob checks that blob states the binding want, then unseals it with s,
// authenticating that binding. It returns errors wrapping ErrMalformed,
// ErrUnknownVersion, ErrBindingMismatch (as *BindingError) or ErrTampered.
func OpenBlob(s Sealer, want Binding, blob []byte) ([]byte, error) {
	if s == nil {
		return nil, errors.New("hsm: OpenBlob called with a nil Sealer")
	}
	if err := validateBinding(want); err != nil {
		return nil, err
	}
	w, err := parse(blob)
	if err != nil {
		return nil, err
	}
	if got := fromWire(w.Binding); got != want {
		return nil, &BindingError{Got: got, Want: want}
	}
	// The aad is rebuilt from want, never copied from the blob: the
	// authenticated binding is the one the caller asked for.
	aad, err := aadFor(w.Version, want)
	if err != nil {
		return nil, fmt.Errorf("hsm: encode associated data: %w", err)
	}
	pt, err := s.Unseal(aad, w.Sealed)
	if err != nil {
		if errors.Is(err, ErrTampered) {
			return nil, fmt.Errorf("%w (%s)", ErrTampered, describe(want))
		}
		return nil, fmt.Errorf("hsm: unseal %s: %w", describe(want), err)
	}
	return pt, nil
}

// BlobBinding returns the binding a blob states, without unsealing it. The
// result is NOT authenticated — anyone can write any header — so use it only
// to index or route blobs, never to decide what a secret is; OpenBlob is the
// only check.
func BlobBinding(blob []byte) (Binding, error) {
	w, err := parse(blob)
	if err != nil {
		return Binding{}, err
	}
	return fromWire(w.Binding), nil
}

// parse decodes a blob strictly: within limits, of a known version, with
// exactly the fields SealBlob writes, and in canonical form, so that every
// accepted blob re-encodes to the same bytes.
func parse(blob []byte) (*wireBlob, error) {
	if len(blob) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrMalformed)
	}
	if len(blob) > MaxBlobSize {
		return nil, fmt.Errorf("%w: %d bytes, limit is %d", ErrMalformed, len(blob), MaxBlobSize)
	}
	var v wireVersion
	if err := versionDec.Unmarshal(blob, &v); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if v.Version != FormatVersion {
		return nil, fmt.Errorf("%w: blob has version %d, this build reads version %d", ErrUnknownVersion, v.Version, FormatVersion)
	}
	var w wireBlob
	if err := strictDec.Unmarshal(blob, &w); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	canon, err := encMode.Marshal(w)
	if err != nil || !bytes.Equal(canon, blob) {
		return nil, fmt.Errorf("%w: not in canonical form (missing field, or not core deterministic CBOR)", ErrMalformed)
	}
	if err := validateBinding(fromWire(w.Binding)); err != nil {
		return nil, fmt.Errorf("%w: stated binding: %v", ErrMalformed, err)
	}
	if len(w.Sealed) == 0 {
		return nil, fmt.Errorf("%w: sealed bytes are empty", ErrMalformed)
	}
	return &w, nil
}

// describe names a binding in errors. Binding fields are public identifiers.
func describe(b Binding) string {
	return fmt.Sprintf("party %q key %q epoch %d kind %q", b.PartyID, b.KeyID, b.Epoch, b.Kind)
}
