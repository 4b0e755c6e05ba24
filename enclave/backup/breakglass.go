package backup

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
)

// Reconstructed is a key's private scalar rebuilt from t+1 shares.
type Reconstructed struct {
	KeyID     string
	Algorithm string
	Epoch     uint64
	PublicKey []byte
	Parties   []string // whose shares were combined
	// Scalar is the private key, big-endian, 32 bytes: for secp256k1 the
	// usual private key; for Ed25519 the secret scalar s (public key
	// s·B), not an RFC 8032 seed, since a threshold key never had one.
	Scalar []byte
}

// Clear overwrites the private scalar.
func (r *Reconstructed) Clear() { clear(r.Scalar) }

// Reconstruct combines opened shares of one key and epoch, from at least
// Threshold+1 distinct parties, by Lagrange interpolation at 0 (mod N for
// secp256k1, mod L for Ed25519), and checks the result's public key is the
// headers'. It is the break-glass path: the private key exists whole in
// this process's memory afterwards.
func Reconstruct(vs []*Verified, shares []*Share) (*Reconstructed, error) {
	if len(vs) == 0 || len(vs) != len(shares) {
		return nil, fmt.Errorf("backup: reconstruct: %d backups and %d shares", len(vs), len(shares))
	}
	h0 := vs[0].Header
	var parties []string
	var in []secretShare
	defer func() {
		for _, s := range in {
			zero(s.x)
		}
	}()
	for i, v := range vs {
		h := v.Header
		if h.KeyID != h0.KeyID || h.Epoch != h0.Epoch || h.Algorithm != h0.Algorithm || !bytes.Equal(h.PublicKey, h0.PublicKey) ||
			h.Threshold != h0.Threshold || !slices.Equal(h.Parties, h0.Parties) {
			return nil, fmt.Errorf("backup: reconstruct: backup of party %q is of key %q epoch %d, backup of party %q of key %q epoch %d: all must be of one key and epoch",
				h.Party, h.KeyID, h.Epoch, h0.Party, h0.KeyID, h0.Epoch)
		}
		if slices.Contains(parties, h.Party) {
			return nil, fmt.Errorf("backup: reconstruct: two backups of party %q; t+1 = %d distinct parties are needed", h.Party, h0.Threshold+1)
		}
		parties = append(parties, h.Party)
		ss, err := shares[i].secrets()
		if err != nil {
			return nil, err
		}
		in = append(in, secretShare{id: ss.ShareID, x: ss.Xi})
	}
	if need := h0.Threshold + 1; len(parties) < need {
		return nil, fmt.Errorf("backup: reconstruct: backups of %d distinct parties (%s), key %q needs t+1 = %d", len(parties), strings.Join(parties, ", "), h0.KeyID, need)
	}
	c, err := curveOf(h0.Algorithm)
	if err != nil {
		return nil, err
	}
	x, err := c.reconstruct(in)
	if err != nil {
		return nil, fmt.Errorf("backup: reconstruct: %v", err)
	}
	defer zero(x)
	p, err := c.baseMult(x)
	if err != nil {
		return nil, fmt.Errorf("backup: reconstruct: %v", err)
	}
	pub, err := Encode(h0.Algorithm, p.X(), p.Y())
	if err != nil || !bytes.Equal(pub, h0.PublicKey) {
		return nil, fmt.Errorf("backup: reconstruct: the combined shares give another public key than %x: refusing it", h0.PublicKey)
	}
	slices.Sort(parties)
	scalar := make([]byte, 32)
	x.FillBytes(scalar)
	return &Reconstructed{KeyID: h0.KeyID, Algorithm: h0.Algorithm, Epoch: h0.Epoch, PublicKey: pub, Parties: parties, Scalar: scalar}, nil
}
