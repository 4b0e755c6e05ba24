// Package keys holds the public keys of the people and systems governance
// knows — admins, approvers, API clients — and verifies their signatures.
//
// Every signature is over a domain-separated message (Message), so a
// signature made for one purpose (say, an approval) is never valid for
// another (a policy update), whatever the bytes.
package keys

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"math/big"

	"fmt"
	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"
	"regexp"
)

// Algorithms a governance key may use.
const (
	Ed25519   = "ed25519"    // PublicKey: 32 raw bytes; signature: 64 bytes
	ECDSAP256 = "ecdsa-p256" // PublicKey: PKIX DER; signature: ASN.1 DER over SHA-256(Message)
)

// ErrBadSignature is wrapped by every signature verification failure.
var ErrBadSignature = errors.New("keys: signature does not verify")

var idPattern = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._@-]{0,63}$`)

// ValidName reports whether s is a well-formed governance name — a key id,
// an owner, a cluster id: 1-64 of letters, digits, '.', '_', '@', '-',
// starting with a letter or digit.
func ValidName(s string) bool { return idPattern.MatchString(s) }

// PublicKey is one named key. Owner is the person or system that holds it;
// one owner may hold several keys (a client key and an approver key), and
// rules such as "the initiator may not approve" compare owners, not keys.
//
// Version 1. Append fields only.
type PublicKey struct {
	ID        string `json:"id" cbor:"1,keyasint"`
	Owner     string `json:"owner" cbor:"2,keyasint"`
	Algorithm string `json:"algorithm" cbor:"3,keyasint"`
	Key       []byte `json:"key" cbor:"4,keyasint"`
}

// Validate checks the key's id, owner, algorithm and encoding.
func (k PublicKey) Validate() error {
	if !idPattern.MatchString(k.ID) {
		return fmt.Errorf("keys: key id %q invalid (want 1-64 of letters, digits, '.', '_', '@', '-')", k.ID)
	}
	if !idPattern.MatchString(k.Owner) {
		return fmt.Errorf("keys: key %q: owner %q invalid", k.ID, k.Owner)
	}
	switch k.Algorithm {
	case Ed25519:
		if len(k.Key) != ed25519.PublicKeySize {
			return fmt.Errorf("keys: key %q: ed25519 key is %d bytes, want %d", k.ID, len(k.Key), ed25519.PublicKeySize)
		}
	case ECDSAP256:
		if _, err := k.p256(); err != nil {
			return err
		}
	default:
		return fmt.Errorf("keys: key %q: algorithm %q unsupported (want %q or %q)", k.ID, k.Algorithm, Ed25519, ECDSAP256)
	}
	return nil
}

func (k PublicKey) p256() (*ecdsa.PublicKey, error) {
	pub, err := x509.ParsePKIXPublicKey(k.Key)
	if err != nil {
		return nil, fmt.Errorf("keys: key %q: ecdsa-p256 key is not PKIX DER: %v", k.ID, err)
	}
	ec, ok := pub.(*ecdsa.PublicKey)
	if !ok || ec.Curve.Params().Name != "P-256" {
		return nil, fmt.Errorf("keys: key %q: not an ECDSA P-256 key", k.ID)
	}
	return ec, nil
}

// Message is what a governance signature covers: the domain, a zero byte,
// and the canonical encoding of the signed value.
func Message(domain string, body []byte) []byte {
	m := make([]byte, 0, len(domain)+1+len(body))
	m = append(m, domain...)
	m = append(m, 0)
	return append(m, body...)
}

// Verify checks sig over Message(domain, body). Errors name the key; a
// signature that does not verify wraps ErrBadSignature, a key that is
// malformed or of an unknown algorithm fails too (without that sentinel).
// ECDSA signatures must be low-S (s ≤ n/2), so each signed value has one
// accepted signature and digests over signed bytes are not malleable.
func (k PublicKey) Verify(domain string, body, sig []byte) error {
	msg := Message(domain, body)
	switch k.Algorithm {
	case Ed25519:
		if len(k.Key) == ed25519.PublicKeySize && len(sig) == ed25519.SignatureSize && ed25519.Verify(k.Key, msg, sig) {
			return nil
		}
	case ECDSAP256:
		pub, err := k.p256()
		if err != nil {
			return err
		}
		h := sha256.Sum256(msg)
		if len(sig) <= 72 && lowS(pub, sig) && ecdsa.VerifyASN1(pub, h[:], sig) {
			return nil
		}
	default:
		return fmt.Errorf("keys: key %q: algorithm %q unsupported", k.ID, k.Algorithm)
	}
	return fmt.Errorf("%w: key %q (%s) over %q", ErrBadSignature, k.ID, k.Algorithm, domain)
}

// Set is a collection of keys by id.
type Set map[string]PublicKey

// NewSet validates keys and indexes them, refusing duplicate ids.
func NewSet(ks []PublicKey) (Set, error) {
	s := make(Set, len(ks))
	for _, k := range ks {
		if err := k.Validate(); err != nil {
			return nil, err
		}
		if _, dup := s[k.ID]; dup {
			return nil, fmt.Errorf("keys: key id %q listed twice", k.ID)
		}
		s[k.ID] = k
	}
	return s, nil
}

// lowS parses an ASN.1 ECDSA signature and reports whether s ≤ n/2.
func lowS(pub *ecdsa.PublicKey, sig []byte) bool {
	var r, sv *big.Int
	in := cryptobyte.String(sig)
	var inner cryptobyte.String
	if !in.ReadASN1(&inner, asn1.SEQUENCE) || !in.Empty() {
		return false
	}
	r, sv = new(big.Int), new(big.Int)
	if !inner.ReadASN1Integer(r) || !inner.ReadASN1Integer(sv) || !inner.Empty() {
		return false
	}
	half := new(big.Int).Rsh(pub.Curve.Params().N, 1)
	return sv.Sign() > 0 && sv.Cmp(half) <= 0
}
