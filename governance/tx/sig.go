package tx

import (
	"crypto/ed25519"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"
)

// verifyECDSA checks that sig is a well-formed low-S secp256k1 signature by
// pub over digest and returns it parsed. With checkRecovery it also checks
// that sig.RecoveryID recovers pub, since the result (an EVM transaction, a
// raw 65-byte signature) carries it and a wrong one names another signer.
func verifyECDSA(pub *secp256k1.PublicKey, digest [32]byte, sig Signature, index int, checkRecovery bool) (*ecdsa.Signature, error) {
	if len(sig.RS) != 64 {
		return nil, errorf(ErrBadSignature, "signature %d is %d bytes, want 64 (r‖s)", index, len(sig.RS))
	}
	var r, s secp256k1.ModNScalar
	if overflow := r.SetByteSlice(sig.RS[:32]); overflow || r.IsZero() {
		return nil, errorf(ErrBadSignature, "signature %d: r is zero or not below the curve order", index)
	}
	if overflow := s.SetByteSlice(sig.RS[32:]); overflow || s.IsZero() {
		return nil, errorf(ErrBadSignature, "signature %d: s is zero or not below the curve order", index)
	}
	if s.IsOverHalfOrder() {
		// Refused rather than normalized: the signing side must produce the
		// canonical form (BIP-62 / EIP-2), so a caller bug shows up here.
		return nil, errorf(ErrBadSignature, "signature %d has high S, want low S (s ≤ n/2)", index)
	}
	if sig.RecoveryID > 1 {
		return nil, errorf(ErrBadSignature, "signature %d recovery id is %d, want 0 or 1", index, sig.RecoveryID)
	}
	parsed := ecdsa.NewSignature(&r, &s)
	if !parsed.Verify(digest[:], pub) {
		return nil, errorf(ErrBadSignature, "signature %d does not verify for key %x over digest %x", index, pub.SerializeCompressed(), digest)
	}
	if checkRecovery {
		// Compact format: header 27 + recovery id + 4 (compressed key), r, s.
		compact := make([]byte, 65)
		compact[0] = 27 + 4 + sig.RecoveryID
		copy(compact[1:], sig.RS)
		rec, _, err := ecdsa.RecoverCompact(compact, digest[:])
		if err != nil || !rec.IsEqual(pub) {
			return nil, errorf(ErrBadSignature, "signature %d recovery id %d does not recover key %x (try %d)", index, sig.RecoveryID, pub.SerializeCompressed(), 1-sig.RecoveryID)
		}
	}
	return parsed, nil
}

func verifyEd25519(pub ed25519.PublicKey, message []byte, sig Signature) error {
	if len(sig.RS) != ed25519.SignatureSize {
		return errorf(ErrBadSignature, "ed25519 signature is %d bytes, want %d", len(sig.RS), ed25519.SignatureSize)
	}
	if sig.RecoveryID != 0 {
		return errorf(ErrBadSignature, "ed25519 signature has recovery id %d, want 0 (EdDSA has none)", sig.RecoveryID)
	}
	if !ed25519.Verify(pub, message, sig.RS) {
		return errorf(ErrBadSignature, "ed25519 signature does not verify for key %x over the %d-byte message", []byte(pub), len(message))
	}
	return nil
}
