package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
)

// Sign signs Message(domain, body) with an Ed25519 or ECDSA P-256 private
// key, producing what PublicKey.Verify accepts. It is for the CLI, tests and
// tools that hold governance keys; the enclave never holds one.
func Sign(priv crypto.Signer, domain string, body []byte) ([]byte, error) {
	msg := Message(domain, body)
	switch k := priv.(type) {
	case ed25519.PrivateKey:
		return ed25519.Sign(k, msg), nil
	case *ecdsa.PrivateKey:
		h := sha256.Sum256(msg)
		return ecdsa.SignASN1(rand.Reader, k, h[:])
	default:
		return nil, fmt.Errorf("keys: cannot sign with %T (want ed25519.PrivateKey or *ecdsa.PrivateKey)", priv)
	}
}
