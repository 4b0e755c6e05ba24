package tx

import (
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
)

// Key algorithms the threshold key may use.
const (
	AlgorithmECDSASecp256k1 = "ecdsa-secp256k1" // PublicKey: 33-byte compressed point
	AlgorithmEdDSAEd25519   = "eddsa-ed25519"   // PublicKey: 32 bytes
)

// Size limits, checked before any parsing.
const (
	// MaxPayloadSize bounds every payload, whatever its kind.
	MaxPayloadSize = 1 << 20
	// MaxRawMessage bounds the message an EdDSA key signs as a raw payload.
	MaxRawMessage = 64 << 10
	// MaxBitcoinInputs and MaxBitcoinOutputs bound a PSBT's transaction; each
	// input costs one threshold signature.
	MaxBitcoinInputs  = 256
	MaxBitcoinOutputs = 256
)

// Error classes. Every error Decode and Assemble return wraps exactly one of
// them (test with errors.Is); the message says what was expected and what
// was found.
var (
	// ErrTooLarge: the payload exceeds MaxPayloadSize (or a kind's own bound).
	ErrTooLarge = errors.New("tx: payload too large")
	// ErrMalformed: the bytes do not parse as the declared kind, or they
	// parse but describe something no network would accept (chain id 0,
	// outputs exceeding inputs, a lying non_witness_utxo, ...).
	ErrMalformed = errors.New("tx: malformed payload")
	// ErrUnsupported: a well-formed payload this package deliberately does
	// not sign (blob transactions, non-P2WPKH inputs, SIGHASH_NONE, an EdDSA
	// key for a chain transaction, an unknown kind).
	ErrUnsupported = errors.New("tx: unsupported payload")
	// ErrKeyMismatch: the payload spends from, or the signed result recovers
	// to, something other than the signing key.
	ErrKeyMismatch = errors.New("tx: key mismatch")
	// ErrInvalidKey: Key itself is malformed.
	ErrInvalidKey = errors.New("tx: invalid key")
	// ErrBadSignature: a signature handed to Assemble is malformed, of the
	// wrong count, or does not verify against the key and its digest.
	ErrBadSignature = errors.New("tx: bad signature")
)

// txError carries a precise message and the class it belongs to.
type txError struct {
	class error
	msg   string
}

func (e *txError) Error() string { return "tx: " + e.msg }
func (e *txError) Unwrap() error { return e.class }

func errorf(class error, format string, args ...any) error {
	return &txError{class: class, msg: fmt.Sprintf(format, args...)}
}

// guard runs f, turning a panic inside a third-party parser into an
// ErrMalformed error: untrusted bytes must never crash the enclave. Only
// library calls are wrapped, so a bug in this package still panics in tests
// and fuzzing.
func guard(what string, f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = errorf(ErrMalformed, "%s: parser panicked: %v", what, r)
		}
	}()
	return f()
}

// Key is the threshold key that will sign.
type Key struct {
	Algorithm string // AlgorithmECDSASecp256k1 or AlgorithmEdDSAEd25519
	PublicKey []byte // 33-byte compressed secp256k1 point, or 32-byte ed25519 key
}

// Options tune decoding. The zero value is the safe default.
type Options struct {
	// BitcoinNetwork selects the address encoding and CAIP-2 chain id of a
	// PSBT: "mainnet" (default when empty), "testnet3", "signet", "regtest".
	BitcoinNetwork string
	// AllowWitnessUTXOOnly accepts PSBT inputs that carry only witness_utxo
	// (no non_witness_utxo). Off by default: segwit v0 sighashes commit only
	// to the amount of the input being signed, so without the full previous
	// transaction a host can lie about other inputs' amounts and make the
	// fee look smaller than it is (the 2020 "segwit fee attack"). Turn it on
	// only for wallets that cannot supply previous transactions and whose
	// fee exposure policy bounds separately.
	AllowWitnessUTXOOnly bool
}

// Signature is one threshold signature over one Summary.Digests entry.
type Signature struct {
	// RS is, for ECDSA, r‖s (32 bytes each, big-endian) with low S
	// (s ≤ n/2; high-S is refused, not normalized); for EdDSA, the 64-byte
	// signature.
	RS []byte
	// RecoveryID is, for ECDSA, 0 or 1 (the parity of R's y coordinate). It
	// is checked wherever the result carries it (EVM, raw) and ignored for
	// Bitcoin, whose signatures do not. For EdDSA it must be 0.
	RecoveryID byte
}

// Decoded is a decoded payload: the Summary policy evaluates, and the state
// Assemble needs. Assemble works from its own copies, so changing Summary
// does not change what is assembled.
type Decoded struct {
	Summary Summary

	key     parsedKey
	digests [][32]byte // ECDSA digests; unused for EdDSA raw
	message []byte     // EdDSA raw message
	evm     *evmState
	psbt    *psbtState
}

// parsedKey is a validated Key.
type parsedKey struct {
	algorithm  string
	secp       *secp256k1.PublicKey
	compressed []byte // 33 bytes, ECDSA only
	ed         ed25519.PublicKey
}

func parseKey(k Key) (parsedKey, error) {
	switch k.Algorithm {
	case AlgorithmECDSASecp256k1:
		if len(k.PublicKey) != 33 || (k.PublicKey[0] != 0x02 && k.PublicKey[0] != 0x03) {
			return parsedKey{}, errorf(ErrInvalidKey, "%s public key is %d bytes with prefix %s, want 33-byte compressed (0x02 or 0x03 prefix)",
				k.Algorithm, len(k.PublicKey), prefixHex(k.PublicKey))
		}
		pub, err := secp256k1.ParsePubKey(k.PublicKey)
		if err != nil {
			return parsedKey{}, errorf(ErrInvalidKey, "%s public key %x is not on the curve: %v", k.Algorithm, k.PublicKey, err)
		}
		return parsedKey{algorithm: k.Algorithm, secp: pub, compressed: pub.SerializeCompressed()}, nil
	case AlgorithmEdDSAEd25519:
		if len(k.PublicKey) != ed25519.PublicKeySize {
			return parsedKey{}, errorf(ErrInvalidKey, "%s public key is %d bytes, want %d", k.Algorithm, len(k.PublicKey), ed25519.PublicKeySize)
		}
		return parsedKey{algorithm: k.Algorithm, ed: ed25519.PublicKey(append([]byte(nil), k.PublicKey...))}, nil
	default:
		return parsedKey{}, errorf(ErrInvalidKey, "key algorithm %q unknown, want %q or %q", k.Algorithm, AlgorithmECDSASecp256k1, AlgorithmEdDSAEd25519)
	}
}

func prefixHex(b []byte) string {
	if len(b) == 0 {
		return "(none)"
	}
	return fmt.Sprintf("0x%02x", b[0])
}

// PayloadHash is the hash approvals and verdicts bind to (see Summary):
// SHA-256("sealsign/v1/payload\x00" ‖ kind ‖ 0x00 ‖ payload).
func PayloadHash(kind Kind, payload []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte("sealsign/v1/payload\x00"))
	h.Write([]byte(kind))
	h.Write([]byte{0})
	h.Write(payload)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// Decode parses payload as kind, entirely from the bytes (no host-supplied
// facts), checks that key can sign it, and returns the Summary and digests.
// Errors wrap one of the Err* classes. payload is copied; the caller may
// reuse it.
func Decode(kind Kind, payload []byte, key Key, opts Options) (*Decoded, error) {
	if len(payload) > MaxPayloadSize {
		return nil, errorf(ErrTooLarge, "%s payload is %d bytes, limit is %d", kind, len(payload), MaxPayloadSize)
	}
	k, err := parseKey(key)
	if err != nil {
		return nil, err
	}
	payload = append([]byte(nil), payload...)

	var d *Decoded
	switch kind {
	case KindEVM, KindPSBT:
		if k.algorithm != AlgorithmECDSASecp256k1 {
			return nil, errorf(ErrUnsupported, "kind %q needs an %s key, got %s (EdDSA keys sign %q only)", kind, AlgorithmECDSASecp256k1, k.algorithm, KindRaw)
		}
		if kind == KindEVM {
			d, err = decodeEVM(payload, k)
		} else {
			d, err = decodePSBT(payload, k, opts)
		}
	case KindRaw:
		d, err = decodeRaw(payload, k)
	default:
		return nil, errorf(ErrUnsupported, "payload kind %q unknown, want %q, %q or %q", kind, KindEVM, KindPSBT, KindRaw)
	}
	if err != nil {
		return nil, err
	}
	d.key = k
	d.Summary.Kind = kind
	d.Summary.PayloadHash = PayloadHash(kind, payload)
	d.Summary.Digests = make([][]byte, 0, len(d.digests)+1)
	if d.message != nil {
		d.Summary.Digests = append(d.Summary.Digests, append([]byte(nil), d.message...))
	}
	for _, dg := range d.digests {
		d.Summary.Digests = append(d.Summary.Digests, append([]byte(nil), dg[:]...))
	}
	return d, nil
}

// Assemble takes exactly one Signature per Summary.Digests entry, in order,
// verifies each against the key and its digest before using it, and returns
// the broadcast-ready bytes: for EVM the signed transaction as go-ethereum's
// MarshalBinary encodes it; for a PSBT the finalized, extracted wire
// transaction (with witnesses); for raw the signature itself (64 bytes, or
// 65 as r‖s‖recovery id for ECDSA). Errors wrap ErrBadSignature or
// ErrKeyMismatch. Assemble does not change d and may be retried.
func (d *Decoded) Assemble(sigs []Signature) ([]byte, error) {
	if d == nil || d.key.algorithm == "" {
		return nil, errors.New("tx: Assemble called on a Decoded not returned by Decode")
	}
	want := len(d.digests)
	if d.message != nil {
		want = 1
	}
	if len(sigs) != want {
		return nil, errorf(ErrBadSignature, "got %d signatures, want %d (one per digest)", len(sigs), want)
	}
	switch {
	case d.evm != nil:
		return d.assembleEVM(sigs[0])
	case d.psbt != nil:
		return d.assemblePSBT(sigs)
	default:
		return d.assembleRaw(sigs[0])
	}
}
