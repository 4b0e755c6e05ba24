package session

import (
	"crypto/ecdsa"
	"math/big"

	"github.com/bnb-chain/tss-lib/v2/tss"
)

func ecdsaVerify(x, y *big.Int, digest, r, s []byte) bool {
	pk := ecdsa.PublicKey{Curve: tss.S256(), X: x, Y: y}
	return ecdsa.Verify(&pk, digest, new(big.Int).SetBytes(r), new(big.Int).SetBytes(s))
}
