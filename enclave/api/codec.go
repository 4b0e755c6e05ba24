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

	"github.com/sealsign/sealsign/governance/canon"
)

// Limits applied to every CBOR value decoded from untrusted bytes (frames
// carry more than governance documents, hence wider than canon's).
const (
	maxArrayElements = 1 << 16
	maxMapPairs      = 1 << 12
)

var (
	modesOnce sync.Once
	decMode   cbor.DecMode
)

func modes() (cbor.EncMode, cbor.DecMode) {
	modesOnce.Do(func() {
		var err error
		decMode, err = canon.StrictDecMode(maxArrayElements, maxMapPairs)
		if err != nil {
			panic(fmt.Sprintf("api: cbor decoder options: %v", err))
		}
	})
	return canon.EncMode(), decMode
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
