package session

import (
	"math/big"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	secpecdsa "github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"
)

// ecdsaVerify checks a tss-lib signature with decred's secp256k1, an
// implementation independent of tss-lib.
func ecdsaVerify(x, y *big.Int, digest, r, s []byte) bool {
	var fx, fy secp256k1.FieldVal
	fx.SetByteSlice(x.Bytes())
	fy.SetByteSlice(y.Bytes())
	var rs, ss secp256k1.ModNScalar
	rs.SetByteSlice(r)
	ss.SetByteSlice(s)
	return secpecdsa.NewSignature(&rs, &ss).Verify(digest, secp256k1.NewPublicKey(&fx, &fy))
}
