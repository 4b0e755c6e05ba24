// Package session runs one tss-lib protocol (keygen or signing) among
// enclaves over authenticated, encrypted channels, supplying what tss-lib
// leaves to its transport (tss-lib README "How to use this securely";
// notes/tss-lib.md §3.1):
//
//   - a session id bound to the proposal (kind, key id, signer set, message,
//     coordinator nonce) and a fresh nonce from every party, checked on every
//     message — tss-lib's own SSID is identical across runs in v2.0.2;
//   - sender identity from the channel signature, never from the payload;
//   - duplicate messages dropped and conflicting ones (same sender, same
//     message type, different content) fatal, because tss-lib silently keeps
//     the last one it stores;
//   - echo-checked broadcast: a broadcast reaches tss-lib only after every
//     other party has echoed the same hash;
//   - every tss-lib call behind recover(), the out channel drained by its own
//     goroutine, and an inactivity timeout that names the parties still owed.
package session

import (
	"crypto/sha256"
	"fmt"
	"slices"

	"github.com/sealsign/sealsign/enclave/api"
)

// Proposal describes one protocol run. The coordinator enclave signs it.
// Version 1; append fields only.
type Proposal struct {
	Version     uint8    `cbor:"1,keyasint"`
	Kind        string   `cbor:"2,keyasint"`
	Algorithm   string   `cbor:"3,keyasint"`
	KeyID       string   `cbor:"4,keyasint"`
	Epoch       uint64   `cbor:"5,keyasint"`
	Parties     []string `cbor:"6,keyasint"` // sorted, unique
	Threshold   int      `cbor:"7,keyasint"`
	Message     []byte   `cbor:"8,keyasint,omitempty"`
	Coordinator string   `cbor:"9,keyasint"`
	Nonce       []byte   `cbor:"10,keyasint"`
	CreatedMS   int64    `cbor:"11,keyasint"`
	Manifest    []byte   `cbor:"12,keyasint"` // manifest hash
	// Governed signing: the client-signed request and the approvals it
	// carries, the policy version the coordinator evaluated it under and the
	// digests it derived from the payload. Every party recomputes the
	// digests and its own verdict and refuses unless both match (the same
	// payload, the same policy version) and it allows. Message is empty.
	Request       []byte   `cbor:"13,keyasint,omitempty"`
	Approvals     [][]byte `cbor:"14,keyasint,omitempty"`
	PolicyVersion uint64   `cbor:"15,keyasint,omitempty"`
	Digests       [][]byte `cbor:"16,keyasint,omitempty"`
	// Governed keygen: the admin quorum's signed ceremony authorising it.
	// Every party verifies it against the manifest's admins and refuses a
	// ceremony id it has run before.
	Ceremony []byte `cbor:"17,keyasint,omitempty"`
	// Reshare: the key (at Epoch, held by OldParties at Threshold) moves
	// to NewParties at NewThreshold as NewEpoch; Parties is the union of
	// both committees and PublicKey the key's, which every party checks
	// (a joining party against what it ends up holding).
	OldParties   []string `cbor:"18,keyasint,omitempty"`
	NewParties   []string `cbor:"19,keyasint,omitempty"`
	NewThreshold int      `cbor:"20,keyasint,omitempty"`
	NewEpoch     uint64   `cbor:"21,keyasint,omitempty"`
	PublicKey    []byte   `cbor:"22,keyasint,omitempty"`
}

// MaxParties bounds a session's parties (both committees of a reshare).
const MaxParties = 16

// MaxDigests bounds the digests one governed proposal signs (a PSBT signs
// one per input).
const MaxDigests = 64

// Governed reports whether the proposal carries a client request.
func (p *Proposal) Governed() bool { return len(p.Request) > 0 }

// SubID is the proposal id of the i-th signing run of a proposal: the
// proposal id itself for the first digest, a derived one for the others,
// so each run's envelopes route to its own session.
func SubID(pid []byte, i int) []byte {
	if i == 0 {
		return pid
	}
	return ProposalID(append(append([]byte("sub\x00"), pid...), byte(i>>8), byte(i)))
}

// SignedProposal carries the proposal's exact encoded bytes and the
// coordinator's signature over them.
type SignedProposal struct {
	Body      []byte `cbor:"1,keyasint"`
	Signature []byte `cbor:"2,keyasint"`
}

// Domain labels for signatures and hashes.
const (
	DomainProposal = "sealsign/v1/proposal"
	domainPID      = "sealsign/v1/proposal-id"
	domainSID      = "sealsign/v1/session-id"
	domainSecret   = "sealsign/v1/session-secret"
)

// Limits.
const (
	MaxMessageECDSA = 32
	MaxMessageEdDSA = 64 << 10
)

// ID is the proposal id: SHA-256 over the encoded proposal.
func ProposalID(body []byte) []byte {
	h := sha256.New()
	h.Write([]byte(domainPID))
	h.Write([]byte{0})
	h.Write(body)
	return h.Sum(nil)
}

// ParseProposal decodes a signed proposal (not its signature; the caller
// verifies that with the coordinator's identity) and checks its shape.
func ParseProposal(raw []byte) (*SignedProposal, *Proposal, error) {
	sp := new(SignedProposal)
	if err := api.Unmarshal(raw, sp); err != nil {
		return nil, nil, fmt.Errorf("session: malformed signed proposal: %v", err)
	}
	p := new(Proposal)
	if err := api.Unmarshal(sp.Body, p); err != nil {
		return nil, nil, fmt.Errorf("session: malformed proposal: %v", err)
	}
	if err := p.Check(); err != nil {
		return nil, nil, err
	}
	return sp, p, nil
}

// Check validates the proposal's shape; parties apply their own rules on top.
func (p *Proposal) Check() error {
	if p.Version != 1 {
		return fmt.Errorf("session: proposal version %d unsupported, want 1", p.Version)
	}
	switch p.Kind {
	case api.KindKeygen, api.KindSign, api.KindReshare:
	default:
		return fmt.Errorf("session: unknown session kind %q", p.Kind)
	}
	if p.Algorithm != api.AlgECDSASecp256k1 && p.Algorithm != api.AlgEdDSAEd25519 {
		return fmt.Errorf("session: unknown algorithm %q", p.Algorithm)
	}
	if p.Kind == api.KindKeygen && (len(p.Message) != 0 || p.Governed() || len(p.Digests) != 0 || len(p.Approvals) != 0) {
		return fmt.Errorf("session: keygen proposal carries a message or a request")
	}
	if p.Kind == api.KindReshare {
		if err := p.checkReshare(); err != nil {
			return err
		}
	} else if len(p.OldParties) != 0 || len(p.NewParties) != 0 || p.NewThreshold != 0 || p.NewEpoch != 0 || len(p.PublicKey) != 0 {
		return fmt.Errorf("session: %s proposal carries reshare fields", p.Kind)
	}
	if p.Kind == api.KindSign && len(p.Ceremony) != 0 {
		return fmt.Errorf("session: sign proposal carries a ceremony (keygen only)")
	}
	if p.Kind == api.KindSign {
		msgs := [][]byte{p.Message}
		if p.Governed() {
			if len(p.Message) != 0 {
				return fmt.Errorf("session: governed proposal carries a bare message too")
			}
			if len(p.Digests) == 0 || len(p.Digests) > MaxDigests {
				return fmt.Errorf("session: governed proposal has %d digests, want 1 to %d", len(p.Digests), MaxDigests)
			}
			msgs = p.Digests
		} else if len(p.Digests) != 0 || len(p.Approvals) != 0 {
			return fmt.Errorf("session: proposal has digests or approvals but no request")
		}
		for _, m := range msgs {
			if err := checkMessage(p.Algorithm, m); err != nil {
				return err
			}
		}
	}
	if len(p.Nonce) != 32 {
		return fmt.Errorf("session: proposal nonce is %d bytes, want 32", len(p.Nonce))
	}
	if len(p.Parties) < 2 || len(p.Parties) > MaxParties {
		return fmt.Errorf("session: %d parties, want 2 to %d", len(p.Parties), MaxParties)
	}
	if !slices.IsSorted(p.Parties) || len(slices.Compact(slices.Clone(p.Parties))) != len(p.Parties) {
		return fmt.Errorf("session: party list must be sorted and unique")
	}
	if !slices.Contains(p.Parties, p.Coordinator) {
		return fmt.Errorf("session: coordinator %q is not a party", p.Coordinator)
	}
	if p.Threshold < 1 || (p.Kind == api.KindKeygen && p.Threshold >= len(p.Parties)) {
		return fmt.Errorf("session: threshold %d invalid for %d parties", p.Threshold, len(p.Parties))
	}
	if p.Kind == api.KindSign && len(p.Parties) != p.Threshold+1 {
		// Exactly t+1 signers: tss-lib stalls with more (bnb-chain/tss #34).
		return fmt.Errorf("session: signing needs exactly %d signers, proposal names %d", p.Threshold+1, len(p.Parties))
	}
	if p.KeyID == "" || len(p.KeyID) > 64 {
		return fmt.Errorf("session: key id empty or longer than 64 bytes")
	}
	return nil
}

func (p *Proposal) checkReshare() error {
	if len(p.Message) != 0 || p.Governed() || len(p.Digests) != 0 || len(p.Approvals) != 0 {
		return fmt.Errorf("session: reshare proposal carries a message or a request")
	}
	for _, c := range []struct {
		name string
		ids  []string
		t    int
	}{{"old", p.OldParties, p.Threshold}, {"new", p.NewParties, p.NewThreshold}} {
		if len(c.ids) < 2 || !slices.IsSorted(c.ids) || len(slices.Compact(slices.Clone(c.ids))) != len(c.ids) {
			return fmt.Errorf("session: reshare %s committee must be 2 or more parties, sorted and unique", c.name)
		}
		if c.t < 1 || c.t >= len(c.ids) {
			return fmt.Errorf("session: reshare %s threshold %d invalid for %d parties", c.name, c.t, len(c.ids))
		}
	}
	u := slices.Concat(p.OldParties, p.NewParties)
	slices.Sort(u)
	if !slices.Equal(slices.Compact(u), p.Parties) {
		return fmt.Errorf("session: reshare parties must be the union of the old and the new committee")
	}
	if !slices.Contains(p.OldParties, p.Coordinator) {
		return fmt.Errorf("session: reshare coordinator %q holds no share (not in the old committee)", p.Coordinator)
	}
	if p.NewEpoch <= p.Epoch {
		return fmt.Errorf("session: reshare to epoch %d, not after the key's epoch %d", p.NewEpoch, p.Epoch)
	}
	if len(p.PublicKey) == 0 || len(p.PublicKey) > 64 {
		return fmt.Errorf("session: reshare names no public key")
	}
	return nil
}

func checkMessage(alg string, m []byte) error {
	switch alg {
	case api.AlgECDSASecp256k1:
		if len(m) != MaxMessageECDSA {
			return fmt.Errorf("session: ecdsa signing needs a 32-byte digest, got %d bytes", len(m))
		}
	case api.AlgEdDSAEd25519:
		if len(m) == 0 || len(m) > MaxMessageEdDSA {
			return fmt.Errorf("session: eddsa message is %d bytes, want 1 to %d", len(m), MaxMessageEdDSA)
		}
	}
	return nil
}

// sessionID binds the proposal and every party's fresh nonce.
func sessionID(pid []byte, parties []string, nonces map[string][]byte) []byte {
	h := sha256.New()
	h.Write([]byte(domainSID))
	h.Write([]byte{0})
	h.Write(pid)
	for _, p := range parties {
		h.Write([]byte(p))
		h.Write([]byte{0})
		h.Write(nonces[p])
	}
	return h.Sum(nil)
}

// sessionSecret is the root of Session.Secret: like the session id a hash
// over every party's nonce, under its own domain, so the session id (which
// the host sees) says nothing about it.
func sessionSecret(sid []byte, parties []string, nonces map[string][]byte) []byte {
	h := sha256.New()
	h.Write([]byte(domainSecret))
	h.Write([]byte{0})
	h.Write(sid)
	for _, p := range parties {
		h.Write([]byte(p))
		h.Write([]byte{0})
		h.Write(nonces[p])
	}
	return h.Sum(nil)
}
