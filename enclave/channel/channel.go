// Package channel gives enclaves end-to-end encrypted, authenticated
// messages to each other across untrusted hosts.
//
// Each enclave holds per-boot identity keys: Ed25519 for signatures and an
// HPKE DHKEM(X25519) key for encryption (RFC 9180, base mode, HKDF-SHA256,
// ChaCha20-Poly1305). An envelope is HPKE-sealed to the recipient with the
// header bound into the HPKE info, then signed by the sender over header and
// ciphertext. Hosts see headers (for routing) and ciphertext only.
package channel

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hpke"
	"errors"
	"fmt"
	"io"

	"github.com/sealsign/sealsign/enclave/api"
)

var (
	kem  = hpke.DHKEM(ecdh.X25519())
	kdf  = hpke.HKDFSHA256()
	aead = hpke.ChaCha20Poly1305()
)

// Keys are an enclave's private identity keys. They never leave the enclave
// and are not persisted: a restarted enclave has a new identity.
type Keys struct {
	sign   ed25519.PrivateKey
	decap  hpke.PrivateKey
	public api.Identity
}

// NewKeys derives fresh identity keys from rand (the enclave's mixed
// entropy; the standard library's key generators ignore custom readers since
// Go 1.26, so keys are derived from explicitly drawn seeds).
func NewKeys(partyID string, rand io.Reader) (*Keys, error) {
	var seed [ed25519.SeedSize]byte
	if _, err := io.ReadFull(rand, seed[:]); err != nil {
		return nil, fmt.Errorf("channel: draw signing seed: %w", err)
	}
	sign := ed25519.NewKeyFromSeed(seed[:])
	clear(seed[:])
	var ikm [32]byte
	if _, err := io.ReadFull(rand, ikm[:]); err != nil {
		return nil, fmt.Errorf("channel: draw hpke seed: %w", err)
	}
	decap, err := kem.DeriveKeyPair(ikm[:])
	clear(ikm[:])
	if err != nil {
		return nil, fmt.Errorf("channel: derive hpke key: %w", err)
	}
	return &Keys{
		sign:  sign,
		decap: decap,
		public: api.Identity{
			PartyID:    partyID,
			SigningKey: append([]byte(nil), sign.Public().(ed25519.PublicKey)...),
			HPKEKey:    decap.PublicKey().Bytes(),
		},
	}, nil
}

// Public returns the identity to attest and publish.
func (k *Keys) Public() api.Identity { return k.public }

// Sign signs data under a domain-separation label.
// AuditKey is the identity signing key, for the audit chain only (package
// audit signs under its own domain, so its signatures never pass for
// channel or proposal signatures). It stays inside the enclave.
func (k *Keys) AuditKey() ed25519.PrivateKey { return k.sign }

func (k *Keys) Sign(domain string, data []byte) []byte {
	return ed25519.Sign(k.sign, labelled(domain, data))
}

func labelled(domain string, data []byte) []byte {
	out := make([]byte, 0, len(domain)+1+len(data))
	out = append(out, domain...)
	out = append(out, 0)
	return append(out, data...)
}

// Peer is a verified peer identity: only build one from an identity that
// came out of a verified attestation document.
type Peer struct {
	ID    api.Identity
	encap hpke.PublicKey
}

// NewPeer parses a peer identity's keys.
func NewPeer(id api.Identity) (*Peer, error) {
	if len(id.SigningKey) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("channel: peer %q signing key is %d bytes, want %d", id.PartyID, len(id.SigningKey), ed25519.PublicKeySize)
	}
	pk, err := kem.NewPublicKey(id.HPKEKey)
	if err != nil {
		return nil, fmt.Errorf("channel: peer %q hpke key: %w", id.PartyID, err)
	}
	return &Peer{ID: id, encap: pk}, nil
}

// Verify checks a signature made with Keys.Sign under the same domain.
func (p *Peer) Verify(domain string, data, sig []byte) bool {
	return len(sig) == ed25519.SignatureSize && ed25519.Verify(p.ID.SigningKey, labelled(domain, data), sig)
}

// Header and Envelope are the wire types (defined in the api package so
// hosts can route envelopes without importing enclave internals).
type (
	Header   = api.EnvelopeHeader
	Envelope = api.Envelope
)

// MaxEnvelope bounds an encoded envelope.
const MaxEnvelope = 4 << 20

const (
	domainInfo = "sealsign/v1/envelope/hpke-info"
	domainSig  = "sealsign/v1/envelope/signature"
)

// Errors from Open; they name the check and never include plaintext.
var (
	ErrMalformed = errors.New("channel: malformed envelope")
	ErrSignature = errors.New("channel: envelope signature invalid")
	ErrDecrypt   = errors.New("channel: envelope decryption failed")
)

// Seal encrypts plaintext to peer `to` and signs it.
func (k *Keys) Seal(to *Peer, h Header, plaintext []byte) ([]byte, error) {
	h.Version = 1
	h.From = k.public.PartyID
	h.To = to.ID.PartyID
	hdr, err := api.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("channel: encode header: %w", err)
	}
	ct, err := hpke.Seal(to.encap, kdf, aead, info(hdr, k.public.SigningKey, to.ID.HPKEKey), plaintext)
	if err != nil {
		return nil, fmt.Errorf("channel: hpke seal: %w", err)
	}
	env := Envelope{Header: h, Ciphertext: ct}
	env.Signature = k.Sign(domainSig, append(hdr, ct...))
	return api.Marshal(env)
}

func info(hdr, senderSigning, recipientHPKE []byte) []byte {
	b := labelled(domainInfo, hdr)
	b = append(b, senderSigning...)
	return append(b, recipientHPKE...)
}

// ParseEnvelope decodes an envelope without authenticating it; use its
// header only to find the sender, then call Open.
func ParseEnvelope(b []byte) (*Envelope, error) {
	if len(b) > MaxEnvelope {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrMalformed, len(b), MaxEnvelope)
	}
	env := new(Envelope)
	if err := api.Unmarshal(b, env); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if env.Header.Version != 1 {
		return nil, fmt.Errorf("%w: version %d, want 1", ErrMalformed, env.Header.Version)
	}
	if len(env.Header.ProposalID) != 32 || (len(env.Header.SessionID) != 0 && len(env.Header.SessionID) != 32) {
		return nil, fmt.Errorf("%w: bad proposal or session id length", ErrMalformed)
	}
	return env, nil
}

// Open authenticates env as sent by `from` to k, and decrypts it.
func (k *Keys) Open(from *Peer, env *Envelope) ([]byte, error) {
	if env.Header.From != from.ID.PartyID {
		return nil, fmt.Errorf("%w: header says from %q, verifying as %q", ErrMalformed, env.Header.From, from.ID.PartyID)
	}
	if env.Header.To != k.public.PartyID {
		return nil, fmt.Errorf("%w: addressed to %q, this is %q", ErrMalformed, env.Header.To, k.public.PartyID)
	}
	hdr, err := api.Marshal(env.Header)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if !from.Verify(domainSig, append(hdr, env.Ciphertext...), env.Signature) {
		return nil, fmt.Errorf("%w: from %q", ErrSignature, from.ID.PartyID)
	}
	pt, err := hpke.Open(k.decap, kdf, aead, info(hdr, from.ID.SigningKey, k.public.HPKEKey), env.Ciphertext)
	if err != nil {
		return nil, fmt.Errorf("%w: from %q", ErrDecrypt, from.ID.PartyID)
	}
	return pt, nil
}
