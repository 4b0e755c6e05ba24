package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"math/big"

	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"
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
		// Verify accepts low-S only: normalise.
		r, s, err := ecdsa.Sign(rand.Reader, k, h[:])
		if err != nil {
			return nil, err
		}
		n := k.Curve.Params().N
		if s.Cmp(new(big.Int).Rsh(n, 1)) > 0 {
			s.Sub(n, s)
		}
		var b cryptobyte.Builder
		b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1BigInt(r)
			b.AddASN1BigInt(s)
		})
		return b.Bytes()
	default:
		return nil, fmt.Errorf("keys: cannot sign with %T (want ed25519.PrivateKey or *ecdsa.PrivateKey)", priv)
	}
}
