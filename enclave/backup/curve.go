package backup

import (
	"crypto/elliptic"
	"fmt"
	"math/big"

	"github.com/bnb-chain/tss-lib/v2/crypto"
	"github.com/bnb-chain/tss-lib/v2/tss"
	"github.com/decred/dcrd/dcrec/edwards/v2"
	"github.com/decred/dcrd/dcrec/secp256k1/v4"

	"github.com/sealsign/sealsign/enclave/api"
)

// curve is the group of a key's algorithm, as tss-lib computes in it:
// secp256k1 (scalars mod N) for ECDSA, edwards25519 (scalars mod L) for
// EdDSA.
type curve struct {
	alg string
	c   elliptic.Curve
	q   *big.Int
}

func curveOf(alg string) (*curve, error) {
	switch alg {
	case api.AlgECDSASecp256k1:
		return &curve{alg: alg, c: tss.S256(), q: tss.S256().Params().N}, nil
	case api.AlgEdDSAEd25519:
		return &curve{alg: alg, c: tss.Edwards(), q: tss.Edwards().Params().N}, nil
	}
	return nil, fmt.Errorf("%w: algorithm %q unknown", ErrMalformed, alg)
}

// decode parses a point encoded as the algorithm encodes public keys.
func (c *curve) decode(b []byte) (p *crypto.ECPoint, err error) {
	defer func() {
		if r := recover(); r != nil {
			p, err = nil, fmt.Errorf("point decoder panic: %v", r)
		}
	}()
	var x, y *big.Int
	switch c.alg {
	case api.AlgECDSASecp256k1:
		if len(b) != 33 {
			return nil, fmt.Errorf("secp256k1 point is %d bytes, want 33 (compressed)", len(b))
		}
		pk, err := secp256k1.ParsePubKey(b)
		if err != nil {
			return nil, err
		}
		x, y = pk.X(), pk.Y()
	default:
		if len(b) != 32 {
			return nil, fmt.Errorf("ed25519 point is %d bytes, want 32", len(b))
		}
		pk, err := edwards.ParsePubKey(b)
		if err != nil {
			return nil, err
		}
		x, y = pk.X, pk.Y
	}
	return crypto.NewECPoint(c.c, x, y)
}

// Encode encodes a tss-lib point as alg encodes public keys.
func Encode(alg string, x, y *big.Int) ([]byte, error) {
	switch alg {
	case api.AlgECDSASecp256k1:
		var fx, fy secp256k1.FieldVal
		if fx.SetByteSlice(x.Bytes()) || fy.SetByteSlice(y.Bytes()) {
			return nil, fmt.Errorf("backup: secp256k1 coordinate overflows the field")
		}
		pk := secp256k1.NewPublicKey(&fx, &fy)
		if !pk.IsOnCurve() {
			return nil, fmt.Errorf("backup: secp256k1 point not on the curve")
		}
		return pk.SerializeCompressed(), nil
	case api.AlgEdDSAEd25519:
		pk := edwards.PublicKey{Curve: edwards.Edwards(), X: x, Y: y}
		b := pk.Serialize()
		if len(b) != 32 {
			return nil, fmt.Errorf("backup: ed25519 point encodes to %d bytes", len(b))
		}
		return b, nil
	}
	return nil, fmt.Errorf("backup: algorithm %q unknown", alg)
}

// baseMult is k·G, never panicking.
func (c *curve) baseMult(k *big.Int) (p *crypto.ECPoint, err error) {
	defer func() {
		if r := recover(); r != nil {
			p, err = nil, fmt.Errorf("scalar multiplication failed")
		}
	}()
	return crypto.ScalarBaseMult(c.c, new(big.Int).Mod(k, c.q)), nil
}

// lagrange is λ_i(x) over ids: Π_{m≠i} (x − x_m)/(x_i − x_m) mod q. ids
// are distinct mod q (the caller checked).
func (c *curve) lagrange(ids []*big.Int, i int, x *big.Int) *big.Int {
	num, den := big.NewInt(1), big.NewInt(1)
	for m, xm := range ids {
		if m == i {
			continue
		}
		num.Mul(num, new(big.Int).Sub(x, xm))
		num.Mod(num, c.q)
		den.Mul(den, new(big.Int).Sub(ids[i], xm))
		den.Mod(den, c.q)
	}
	inv := new(big.Int).ModInverse(den, c.q)
	if inv == nil {
		return big.NewInt(0)
	}
	return num.Mul(num, inv).Mod(num, c.q)
}

// interpolate is Σ λ_i(x)·P_i, the points' polynomial evaluated at x in
// the exponent.
func (c *curve) interpolate(ids []*big.Int, pts []*crypto.ECPoint, x *big.Int) (out *crypto.ECPoint, err error) {
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, fmt.Errorf("point arithmetic failed")
		}
	}()
	for i, p := range pts {
		term := p.ScalarMult(c.lagrange(ids, i, x))
		if out == nil {
			out = term
			continue
		}
		if out, err = out.Add(term); err != nil {
			return nil, err
		}
	}
	if out == nil {
		return nil, fmt.Errorf("no points")
	}
	return out, nil
}

// shareIDs parses share ids, reduced mod q as tss-lib's VSS evaluates the
// polynomial (its party keys are 256-bit hashes, above Ed25519's L): each
// non-zero mod q, all distinct mod q.
func (c *curve) shareIDs(raw [][]byte) ([]*big.Int, error) {
	ids := make([]*big.Int, len(raw))
	seen := map[string]bool{}
	for i, b := range raw {
		id := new(big.Int).Mod(new(big.Int).SetBytes(b), c.q)
		if id.Sign() == 0 {
			return nil, fmt.Errorf("share id %d is zero modulo the group order", i)
		}
		if seen[id.String()] {
			return nil, fmt.Errorf("share id %d repeats an earlier one (modulo the group order)", i)
		}
		seen[id.String()] = true
		ids[i] = id
	}
	return ids, nil
}

func (c *curve) checkShares(h *Header) error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrInconsistent, fmt.Sprintf(format, a...))
	}
	pub, err := c.decode(h.PublicKey)
	if err != nil {
		return bad("public key: %v", err)
	}
	raw := make([][]byte, len(h.Shares))
	pts := make([]*crypto.ECPoint, len(h.Shares))
	for i, s := range h.Shares {
		raw[i] = s.ShareID
		if pts[i], err = c.decode(s.Point); err != nil {
			return bad("public share %d: %v", i, err)
		}
	}
	ids, err := c.shareIDs(raw)
	if err != nil {
		return bad("%v", err)
	}
	k := h.Threshold + 1
	got, err := c.interpolate(ids[:k], pts[:k], big.NewInt(0))
	if err != nil {
		return bad("interpolation: %v", err)
	}
	if !got.Equals(pub) {
		return bad("the public shares of the first %d parties interpolate to another key than the header's public key %x", k, h.PublicKey)
	}
	for j := k; j < len(ids); j++ {
		want, err := c.interpolate(ids[:k], pts[:k], ids[j])
		if err != nil {
			return bad("interpolation: %v", err)
		}
		if !want.Equals(pts[j]) {
			return bad("public share %d does not lie on the polynomial of the others: the shares are not of one key", j)
		}
	}
	own := new(big.Int).Mod(new(big.Int).SetBytes(h.ShareID), c.q)
	for i, id := range ids {
		if id.Cmp(own) == 0 {
			if string(h.Shares[i].Point) != string(h.Point) {
				return bad("the party's point %x differs from its entry %d in the public shares (%x)", h.Point, i, h.Shares[i].Point)
			}
			return nil
		}
	}
	return bad("the party's share id is not among the public shares")
}

// zero overwrites a secret big.Int's words, then sets it to 0 (SetInt64
// alone would leave the higher words in the backing array).
func zero(x *big.Int) {
	if x != nil {
		clear(x.Bits())
		x.SetInt64(0)
	}
}

// secretShare is one party's x_i with its share id.
type secretShare struct {
	id, x *big.Int
}

// reconstruct is the secret Σ λ_i(0)·x_i mod q over shares (distinct ids).
func (c *curve) reconstruct(shares []secretShare) (*big.Int, error) {
	raw := make([][]byte, len(shares))
	for i, s := range shares {
		raw[i] = s.id.Bytes()
	}
	ids, err := c.shareIDs(raw)
	if err != nil {
		return nil, err
	}
	sum := new(big.Int)
	for i, s := range shares {
		term := new(big.Int).Mul(c.lagrange(ids, i, big.NewInt(0)), s.x)
		sum.Add(sum, term)
		sum.Mod(sum, c.q)
		zero(term)
	}
	return sum, nil
}
