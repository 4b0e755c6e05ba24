package channel

import (
	"crypto/hpke"
	"fmt"
)

// OpenSealed decrypts an HPKE ciphertext (base mode, this package's suite)
// sealed to this enclave's identity key outside any envelope: a share a
// recovery operator restores into this enclave (enclave/backup
// SealToEnclave). info binds it to its use; the caller builds it, and it
// must name this identity so a ciphertext for another enclave is refused.
// The error never carries plaintext.
func (k *Keys) OpenSealed(info, ciphertext []byte) ([]byte, error) {
	pt, err := hpke.Open(k.decap, kdf, aead, info, ciphertext)
	if err != nil {
		return nil, fmt.Errorf("%w: sealed payload", ErrDecrypt)
	}
	return pt, nil
}
