package policy

import (
	"crypto"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sealsign/sealsign/governance/canon"
	"github.com/sealsign/sealsign/governance/keys"
)

// Domain is the signature domain of policy documents (keys.Message).
const Domain = "sealsign/v1/policy"

// Limits and tolerances of Accept.
const (
	// MaxSignatures bounds the signatures of one SignedPolicy.
	MaxSignatures = 64
	// MaxIssueAge is how long after IssuedAt an update may still be
	// accepted. Without it, a quorum could backdate IssuedAt and so skip
	// the current policy's UpdateTimeLock; with it, the notice an update
	// gives is at least UpdateTimeLock − MaxIssueAge. Choose time locks
	// well above a day.
	MaxIssueAge = 24 * time.Hour
	// MaxClockSkew is how far in the future IssuedAt may be.
	MaxClockSkew = 5 * time.Minute
)

// SignedPolicy is a policy's canonical encoding and the admin signatures
// over it (keys.Sign under Domain over exactly Policy). The signatures are
// outside the signed bytes. Version 1; append fields only.
type SignedPolicy struct {
	Policy     []byte `cbor:"1,keyasint"`
	Signatures []Sig  `cbor:"2,keyasint"`
}

// Sig is one admin signature.
type Sig struct {
	KeyID     string `cbor:"1,keyasint"`
	Signature []byte `cbor:"2,keyasint"`
}

// Encode returns the canonical encoding of s.
func (s *SignedPolicy) Encode() ([]byte, error) {
	b, err := canon.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("policy: encode signed policy: %v", err)
	}
	return b, nil
}

// DecodeSigned reads a SignedPolicy strictly. It checks structure only; the
// signatures are checked by Accept.
func DecodeSigned(data []byte) (*SignedPolicy, error) {
	var s SignedPolicy
	if err := canon.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("policy: decode signed policy: %v", err)
	}
	if len(s.Signatures) > MaxSignatures {
		return nil, fmt.Errorf("policy: signed policy has %d signatures, more than the %d allowed", len(s.Signatures), MaxSignatures)
	}
	return &s, nil
}

// SignPolicy signs a policy's canonical encoding as admin keyID; for the
// CLI and tests (the enclave holds no admin key).
func SignPolicy(encoded []byte, keyID string, priv crypto.Signer) (Sig, error) {
	sig, err := keys.Sign(priv, Domain, encoded)
	if err != nil {
		return Sig{}, fmt.Errorf("policy: sign as %q: %v", keyID, err)
	}
	return Sig{KeyID: keyID, Signature: sig}, nil
}

// Admins are the keys allowed to sign policies and how many distinct
// owners must sign.
type Admins struct {
	Keys   keys.Set
	Quorum int
}

func (a Admins) validate() error {
	owners := map[string]bool{}
	for _, k := range a.Keys {
		owners[k.Owner] = true
	}
	if a.Quorum < 1 || a.Quorum > len(owners) {
		return fmt.Errorf("policy: admin quorum %d impossible with %d admin owners (want 1..%d)", a.Quorum, len(owners), len(owners))
	}
	return nil
}

// QuorumError is a quorum that was not reached: how many signatures
// counted, how many were needed, and why each other signature did not
// count.
type QuorumError struct {
	Valid, Quorum int
	NotCounted    []string
}

func (e *QuorumError) Error() string {
	msg := fmt.Sprintf("%d valid admin signatures of %d needed", e.Valid, e.Quorum)
	if len(e.NotCounted) > 0 {
		msg += " (not counted: " + strings.Join(e.NotCounted, "; ") + ")"
	}
	return msg
}

// VerifyQuorum checks that at least a.Quorum of sigs are valid signatures
// under domain over body, from distinct admin keys of distinct owners, and
// returns the key ids that counted, in signature order. Unknown signers,
// repeated keys or owners and bad signatures do not count; when the quorum
// is not reached the error is a *QuorumError listing them. It is the
// quorum rule of everything the admins sign (policies, ceremonies), so
// each document type checks it the same way under its own domain.
func (a Admins) VerifyQuorum(domain string, body []byte, sigs []Sig) ([]string, error) {
	if err := a.validate(); err != nil {
		return nil, err
	}
	if len(sigs) > MaxSignatures {
		return nil, fmt.Errorf("policy: %d signatures, more than the %d allowed", len(sigs), MaxSignatures)
	}
	var bad, counted []string
	keysSeen, ownersSeen := map[string]bool{}, map[string]bool{}
	for i, sig := range sigs {
		k, ok := a.Keys[sig.KeyID]
		switch {
		case !ok:
			bad = append(bad, fmt.Sprintf("signature %d by %q: not an admin key", i, sig.KeyID))
		case keysSeen[sig.KeyID]:
			bad = append(bad, fmt.Sprintf("signature %d by %q: key already signed", i, sig.KeyID))
		case ownersSeen[k.Owner]:
			keysSeen[sig.KeyID] = true
			bad = append(bad, fmt.Sprintf("signature %d by %q: owner %q already signed", i, sig.KeyID, k.Owner))
		default:
			if err := k.Verify(domain, body, sig.Signature); err != nil {
				bad = append(bad, fmt.Sprintf("signature %d by %q: does not verify over domain %q", i, sig.KeyID, domain))
				continue
			}
			keysSeen[sig.KeyID] = true
			ownersSeen[k.Owner] = true
			counted = append(counted, sig.KeyID)
		}
	}
	if len(counted) < a.Quorum {
		return nil, &QuorumError{Valid: len(counted), Quorum: a.Quorum, NotCounted: bad}
	}
	return counted, nil
}

// verifyQuorum is VerifyQuorum for a signed policy.
func (a Admins) verifyQuorum(s *SignedPolicy) error {
	if _, err := a.VerifyQuorum(Domain, s.Policy, s.Signatures); err != nil {
		var qe *QuorumError
		if errors.As(err, &qe) {
			return fmt.Errorf("policy: %w", err)
		}
		return err
	}
	return nil
}

// Accept verifies an update (a SignedPolicy encoding) against the current
// sealed policy and returns the new policy. In order, it requires: a strict,
// canonical SignedPolicy; at least admins.Quorum valid signatures under
// Domain from distinct admin keys of distinct owners (unknown signers,
// repeated keys or owners and bad signatures do not count, and the error
// lists them); a strict, canonical, valid Policy; its ClusterID equal to
// clusterID; a Format this package reads; and, unless current is nil
// (genesis):
//   - Version > current.Version (rollback and replay refused);
//   - IssuedAt within [now − MaxIssueAge, now + MaxClockSkew];
//   - NotBefore ≥ IssuedAt + current.UpdateTimeLock.
//
// A policy whose NotBefore is still in the future is accepted: Evaluate on
// it denies with NotYetEffective until then. Use Store to keep evaluating
// under the previous policy until the new one takes effect.
func Accept(current *Policy, next []byte, admins Admins, clusterID string, now time.Time) (*Policy, error) {
	var c *constraint
	if current != nil {
		c = &constraint{version: current.Version, lock: current.UpdateTimeLock}
	}
	return accept(c, next, admins, clusterID, now)
}

// constraint is what an update must satisfy relative to what is sealed.
type constraint struct {
	version uint64
	lock    uint64
}

func accept(c *constraint, next []byte, admins Admins, clusterID string, now time.Time) (*Policy, error) {
	s, err := DecodeSigned(next)
	if err != nil {
		return nil, err
	}
	if err := admins.verifyQuorum(s); err != nil {
		return nil, err
	}
	// Only now, authenticated, is the document parsed and its conditions
	// compiled.
	p, err := DecodePolicy(s.Policy)
	if err != nil {
		return nil, err
	}
	if p.ClusterID != clusterID {
		return nil, fmt.Errorf("policy: issued for cluster %q, this is cluster %q", p.ClusterID, clusterID)
	}
	if c == nil {
		return p, nil
	}
	if p.Version <= c.version {
		return nil, fmt.Errorf("policy: policy version %d is not newer than the sealed version %d", p.Version, c.version)
	}
	issued := time.Unix(p.IssuedAt, 0)
	if issued.Before(now.Add(-MaxIssueAge)) {
		return nil, fmt.Errorf("policy: issued_at %s is more than %s before now (%s); re-issue and re-sign it",
			issued.UTC().Format(time.RFC3339), MaxIssueAge, now.UTC().Format(time.RFC3339))
	}
	if issued.After(now.Add(MaxClockSkew)) {
		return nil, fmt.Errorf("policy: issued_at %s is in the future (now %s)", issued.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if want := p.IssuedAt + int64(c.lock); p.NotBefore < want {
		return nil, fmt.Errorf("policy: not_before %d is before issued_at %d + the sealed policy's update_time_lock %d s = %d",
			p.NotBefore, p.IssuedAt, c.lock, want)
	}
	return p, nil
}

// Store holds the effective policy and at most one accepted, not yet
// effective successor. The successor replaces the current policy at the
// first Effective call at or after its NotBefore; until then requests are
// evaluated under the current one, so an announced change neither bites
// early nor leaves a gap. A newer update supersedes a pending one; it must
// satisfy both the current and the pending policy's constraints (the
// higher version, the longer time lock). Not safe
// for concurrent use.
type Store struct {
	current *Policy
	pending *Policy
}

// NewStore starts a store from a validated genesis policy.
func NewStore(genesis *Policy) (*Store, error) {
	if genesis == nil || genesis.compiled == nil {
		return nil, errors.New("policy: store needs a validated genesis policy")
	}
	return &Store{current: genesis}, nil
}

// Accept verifies next as Accept does, against the latest policy the store
// holds, and keeps it as pending (or current, when already effective).
func (s *Store) Accept(next []byte, admins Admins, clusterID string, now time.Time) (*Policy, error) {
	c := &constraint{version: s.current.Version, lock: s.current.UpdateTimeLock}
	if pp := s.pending; pp != nil {
		c.version = max(c.version, pp.Version)
		c.lock = max(c.lock, pp.UpdateTimeLock)
	}
	p, err := accept(c, next, admins, clusterID, now)
	if err != nil {
		return nil, err
	}
	s.pending = p
	s.Effective(now)
	return p, nil
}

// Effective returns the policy in force at now, promoting the pending one
// if its NotBefore has come.
func (s *Store) Effective(now time.Time) *Policy {
	if s.pending != nil && now.Unix() >= s.pending.NotBefore {
		s.current, s.pending = s.pending, nil
	}
	return s.current
}

// Pending returns the accepted policy not yet in force, or nil.
func (s *Store) Pending() *Policy { return s.pending }

type storeWire struct {
	Current []byte `cbor:"1,keyasint"`
	Pending []byte `cbor:"2,keyasint,omitempty"`
}

// MarshalBinary encodes the store (the canonical policies) for sealing.
func (s *Store) MarshalBinary() ([]byte, error) {
	var w storeWire
	var err error
	if w.Current, err = canon.Marshal(s.current); err != nil {
		return nil, fmt.Errorf("policy: store: %v", err)
	}
	if s.pending != nil {
		if w.Pending, err = canon.Marshal(s.pending); err != nil {
			return nil, fmt.Errorf("policy: store: %v", err)
		}
	}
	return canon.Marshal(w)
}

// UnmarshalBinary decodes a sealed store strictly, revalidating both
// policies.
func (s *Store) UnmarshalBinary(data []byte) error {
	var w storeWire
	if err := canon.Unmarshal(data, &w); err != nil {
		return fmt.Errorf("policy: store: %v", err)
	}
	cur, err := DecodePolicy(w.Current)
	if err != nil {
		return fmt.Errorf("policy: store: current: %v", err)
	}
	var pend *Policy
	if w.Pending != nil {
		if pend, err = DecodePolicy(w.Pending); err != nil {
			return fmt.Errorf("policy: store: pending: %v", err)
		}
		if pend.Version <= cur.Version {
			return fmt.Errorf("policy: store: pending version %d is not newer than current %d", pend.Version, cur.Version)
		}
	}
	s.current, s.pending = cur, pend
	return nil
}
