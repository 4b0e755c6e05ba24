// Package api is the enclave's wire contract: the framing and the CBOR types
// that the host and the enclave exchange, and the encoding rules for
// everything the enclave signs or hashes.
//
// Evolution rule: append fields only; never renumber or reuse a CBOR key.
package api

import (
	"fmt"
	"sync"

	"github.com/fxamacker/cbor/v2"
)

// Limits applied to every CBOR value decoded from untrusted bytes.
const (
	maxNesting       = 16
	maxArrayElements = 1 << 16
	maxMapPairs      = 1 << 12
)

var (
	modesOnce sync.Once
	encMode   cbor.EncMode
	decMode   cbor.DecMode
)

func modes() (cbor.EncMode, cbor.DecMode) {
	modesOnce.Do(func() {
		var err error
		encMode, err = cbor.CoreDetEncOptions().EncMode()
		if err != nil {
			panic(fmt.Sprintf("api: cbor encoder options: %v", err))
		}
		decMode, err = cbor.DecOptions{
			DupMapKey:         cbor.DupMapKeyEnforcedAPF,
			IndefLength:       cbor.IndefLengthForbidden,
			TagsMd:            cbor.TagsForbidden,
			MaxNestedLevels:   maxNesting,
			MaxArrayElements:  maxArrayElements,
			MaxMapPairs:       maxMapPairs,
			ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
			UTF8:              cbor.UTF8RejectInvalid,
		}.DecMode()
		if err != nil {
			panic(fmt.Sprintf("api: cbor decoder options: %v", err))
		}
	})
	return encMode, decMode
}

// Marshal encodes v with core deterministic CBOR (RFC 8949 §4.2.1), the
// encoding of everything that is signed or hashed.
func Marshal(v any) ([]byte, error) {
	enc, _ := modes()
	return enc.Marshal(v)
}

// Unmarshal decodes untrusted CBOR into v with strict limits: duplicate map
// keys, unknown fields, indefinite lengths and tags are rejected.
func Unmarshal(data []byte, v any) error {
	_, dec := modes()
	return dec.Unmarshal(data, v)
}
