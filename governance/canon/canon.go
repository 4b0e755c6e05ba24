// Package canon is the encoding of everything governance signs or hashes:
// core deterministic CBOR (RFC 8949 §4.2.1) out, strict CBOR in (no
// duplicate keys, no unknown fields, no indefinite lengths, no tags, bounded
// nesting and sizes), and domain-separated digests.
package canon

import (
	"crypto/sha256"
	"fmt"
	"sync"

	"github.com/fxamacker/cbor/v2"
)

// Limits applied to every CBOR value decoded from untrusted bytes.
const (
	MaxSize          = 1 << 20
	maxNesting       = 16
	maxArrayElements = 1 << 14
	maxMapPairs      = 1 << 12
)

var (
	modesOnce sync.Once
	encMode   cbor.EncMode
	decMode   cbor.DecMode
)

// EncMode is core deterministic CBOR encoding: the encoding of everything
// sealsign signs or hashes (enclave/api uses it for its frames too).
func EncMode() cbor.EncMode {
	enc, _ := modes()
	return enc
}

// StrictDecMode returns a strict decoder (duplicate keys, unknown fields,
// indefinite lengths, tags and invalid UTF-8 refused, nesting bounded) with
// the given bounds on array elements and map pairs.
func StrictDecMode(maxArrayElements, maxMapPairs int) (cbor.DecMode, error) {
	return cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		TagsMd:            cbor.TagsForbidden,
		MaxNestedLevels:   maxNesting,
		MaxArrayElements:  maxArrayElements,
		MaxMapPairs:       maxMapPairs,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
		UTF8:              cbor.UTF8RejectInvalid,
	}.DecMode()
}

func modes() (cbor.EncMode, cbor.DecMode) {
	modesOnce.Do(func() {
		var err error
		encMode, err = cbor.CoreDetEncOptions().EncMode()
		if err != nil {
			panic(fmt.Sprintf("canon: cbor encoder options: %v", err))
		}
		decMode, err = StrictDecMode(maxArrayElements, maxMapPairs)
		if err != nil {
			panic(fmt.Sprintf("canon: cbor decoder options: %v", err))
		}
	})
	return encMode, decMode
}

// Marshal encodes v with core deterministic CBOR.
func Marshal(v any) ([]byte, error) {
	enc, _ := modes()
	return enc.Marshal(v)
}

// Unmarshal decodes untrusted CBOR into v with strict limits, and then
// requires that data is exactly the canonical encoding of what it decoded,
// so one value has one accepted byte string (signatures over it cannot be
// replayed onto a differently encoded twin).
func Unmarshal(data []byte, v any) error {
	if len(data) > MaxSize {
		return fmt.Errorf("canon: %d bytes exceeds the %d-byte limit", len(data), MaxSize)
	}
	_, dec := modes()
	if err := dec.Unmarshal(data, v); err != nil {
		return fmt.Errorf("canon: %w", err)
	}
	again, err := Marshal(v)
	if err != nil {
		return fmt.Errorf("canon: re-encode: %w", err)
	}
	if string(again) != string(data) {
		return fmt.Errorf("canon: encoding is not core deterministic CBOR")
	}
	return nil
}

// Digest is SHA-256 over domain, a zero byte, and data. Domains are
// constant strings such as "sealsign/v1/policy"; no domain is a prefix of
// another because of the zero byte.
func Digest(domain string, data []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte(domain))
	h.Write([]byte{0})
	h.Write(data)
	var out [32]byte
	h.Sum(out[:0])
	return out
}
