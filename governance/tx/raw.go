package tx

// Raw payloads (KindRaw) are signed as they are: nothing about them can be
// decoded, so policy sees only Method "raw", no transfers and no fee, and
// should gate them on who asks rather than on what they move.

func decodeRaw(payload []byte, k parsedKey) (*Decoded, error) {
	d := &Decoded{Summary: Summary{Method: "raw"}}
	switch k.algorithm {
	case AlgorithmECDSASecp256k1:
		// ECDSA signs a digest; anything but 32 bytes would be hashed or
		// truncated by someone, and that someone is not this package.
		if len(payload) != 32 {
			return nil, errorf(ErrMalformed, "raw payload for an %s key is %d bytes, want a 32-byte digest", k.algorithm, len(payload))
		}
		var dg [32]byte
		copy(dg[:], payload)
		d.digests = [][32]byte{dg}
	default: // AlgorithmEdDSAEd25519: parseKey admits no other
		if len(payload) == 0 {
			return nil, errorf(ErrMalformed, "raw payload for an %s key is empty, want a 1..%d byte message", k.algorithm, MaxRawMessage)
		}
		if len(payload) > MaxRawMessage {
			return nil, errorf(ErrTooLarge, "raw payload for an %s key is %d bytes, limit is %d", k.algorithm, len(payload), MaxRawMessage)
		}
		d.message = payload // already a private copy (Decode copies)
	}
	return d, nil
}

func (d *Decoded) assembleRaw(sig Signature) ([]byte, error) {
	if d.key.algorithm == AlgorithmEdDSAEd25519 {
		if err := verifyEd25519(d.key.ed, d.message, sig); err != nil {
			return nil, err
		}
		return append([]byte(nil), sig.RS...), nil
	}
	if _, err := verifyECDSA(d.key.secp, d.digests[0], sig, 0, true); err != nil {
		return nil, err
	}
	out := make([]byte, 65)
	copy(out, sig.RS)
	out[64] = sig.RecoveryID
	return out, nil
}
