// Package ceremony is the admin quorum's authorisation of a key ceremony
// (creating a key now; refreshing, resharing, backing up and recovering
// one later): a Ceremony document naming what may run, signed by a quorum
// of distinct admin owners from the cluster manifest. Every enclave
// verifies it before taking part, so the host, which relays the bytes, can
// neither start a ceremony on its own nor alter one, and an enclave
// refuses a ceremony id it has already run (ReplayCache).
//
// # Wire format
//
// A signed ceremony is Signed in canonical CBOR (package canon): the exact
// canonical encoding of a Ceremony and admin signatures over
// keys.Message(Domain, those bytes), so the signatures are outside what
// they sign.
//
// # Backwards compatibility
//
// Ceremony is format 1. Fields are appended only; a CBOR key is never
// reused or given a new meaning. Decoding is strict (unknown fields are
// refused), so an enclave refuses a ceremony with fields it does not
// understand rather than ignoring a restriction it cannot enforce.
package ceremony

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/sealsign/sealsign/governance/canon"
	"github.com/sealsign/sealsign/governance/keys"
	"github.com/sealsign/sealsign/governance/policy"
	"github.com/sealsign/sealsign/governance/request"
)

// Domain is the signature domain of ceremonies (keys.Message).
const Domain = "sealsign/v1/ceremony"

// FormatV1 is the only Ceremony format.
const FormatV1 = 1

// Kinds of ceremony.
//
//   - KindKeygen creates a key among Parties at Threshold.
//   - KindRefresh reshares KeyID at Epoch to the same committee (Parties,
//     Threshold): the public key stays, every share changes, the old epoch
//     is destroyed.
//   - KindReshare reshares KeyID at Epoch from Parties/Threshold to
//     NewParties/NewThreshold (add or remove parties, change the threshold).
//   - KindBackup has every party of KeyID (Parties) export its share of
//     Epoch encrypted to Recipients.
//   - KindRecover restores Party's share of KeyID at Epoch from a backup.
const (
	KindKeygen  = "keygen"
	KindRefresh = "refresh"
	KindReshare = "reshare"
	KindBackup  = "backup"
	KindRecover = "recover"
)

// Limits. They are central so a reviewer sees every bound in one place.
const (
	// MaxSize bounds a signed ceremony: a few names and at most
	// policy.MaxSignatures signatures.
	MaxSize = 64 << 10
	// MaxParties matches the manifest's bound on parties.
	MaxParties = 16
	// MaxLifetime is the longest ExpiresAt-IssuedAt accepted. A ceremony
	// is run right after the admins sign it; a short life bounds how long
	// a captured one is useful and how long the replay cache holds it.
	MaxLifetime = time.Hour
	// ClockSkew is how far in the future IssuedAt may be, and how long
	// past ExpiresAt the replay cache keeps an id.
	ClockSkew = request.ClockSkew
)

// Errors returned by Verify and ReplayCache, for errors.Is. Each returned
// error adds what was expected and what was found.
var (
	ErrMalformed    = errors.New("ceremony: malformed")
	ErrTooLarge     = errors.New("ceremony: too large")
	ErrQuorum       = errors.New("ceremony: admin quorum not met")
	ErrWrongCluster = errors.New("ceremony: wrong cluster")
	ErrExpired      = errors.New("ceremony: expired")
	ErrNotYetValid  = errors.New("ceremony: issued in the future")
	ErrLifetime     = errors.New("ceremony: lifetime too long")
	ErrReplay       = errors.New("ceremony: replay")
	ErrCacheFull    = errors.New("ceremony: replay cache full")
)

var (
	// partyPattern and algPattern match enclave/api's party ids and
	// algorithm names; repeated here because governance does not import
	// enclave. The enclave compares the algorithm with its own.
	partyPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)
	algPattern   = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)
	// keyIDPattern matches the key ids enclaves choose at keygen (hex).
	keyIDPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)
)

// Ceremony authorises one run of a key ceremony on one cluster.
//
// Format 1. Append fields only; never renumber or reuse a CBOR key.
type Ceremony struct {
	Format uint64 `json:"format" cbor:"1,keyasint"`
	// ID is chosen by the admins (request.ValidID: 16-64 of
	// [A-Za-z0-9_-]); an enclave runs each id at most once.
	ID        string `json:"id" cbor:"2,keyasint"`
	ClusterID string `json:"cluster_id" cbor:"3,keyasint"`
	Kind      string `json:"kind" cbor:"4,keyasint"`
	Algorithm string `json:"algorithm" cbor:"5,keyasint"`
	// Parties are the party ids taking part, sorted and unique; Threshold
	// is the key's threshold t (t+1 parties sign).
	Parties   []string `json:"parties" cbor:"6,keyasint"`
	Threshold int      `json:"threshold" cbor:"7,keyasint"`
	// IssuedAt and ExpiresAt are unix seconds. The ceremony is valid while
	// IssuedAt-ClockSkew ≤ now < ExpiresAt.
	IssuedAt  int64 `json:"issued_at" cbor:"8,keyasint"`
	ExpiresAt int64 `json:"expires_at" cbor:"9,keyasint"`
	// KeyID and Epoch name the key and the epoch of its shares a lifecycle
	// ceremony (every kind but keygen) applies to; an enclave refuses it
	// for any other epoch, so an authorisation cannot be replayed against
	// the key's later state.
	KeyID string `json:"key_id,omitempty" cbor:"10,keyasint,omitempty"`
	Epoch uint64 `json:"epoch,omitempty" cbor:"11,keyasint,omitempty"`
	// NewParties and NewThreshold are the committee a reshare moves the
	// key to (sorted, unique).
	NewParties   []string `json:"new_parties,omitempty" cbor:"12,keyasint,omitempty"`
	NewThreshold int      `json:"new_threshold,omitempty" cbor:"13,keyasint,omitempty"`
	// Recipients are the ids of the offline recovery keys (from the
	// manifest's governance section) a backup is encrypted to.
	Recipients []string `json:"recipients,omitempty" cbor:"14,keyasint,omitempty"`
	// Party is the party a recovery restores.
	Party string `json:"party,omitempty" cbor:"15,keyasint,omitempty"`
}

// Signed is a Ceremony's canonical encoding and the admin signatures over
// keys.Message(Domain, Ceremony).
//
// Format 1. Append fields only.
type Signed struct {
	Ceremony   []byte       `json:"ceremony" cbor:"1,keyasint"`
	Signatures []policy.Sig `json:"signatures" cbor:"2,keyasint"`
}

// Validate checks the ceremony's fields on their own: format, id, names,
// party list and the validity window's shape. It does not check the
// signatures, the cluster or the clock (Verify does).
func (c *Ceremony) Validate() error {
	if c.Format != FormatV1 {
		return fmt.Errorf("%w: format %d unsupported, want %d", ErrMalformed, c.Format, FormatV1)
	}
	if !request.ValidID(c.ID) {
		return fmt.Errorf("%w: id %q invalid (want 16-64 of letters, digits, '_' and '-')", ErrMalformed, c.ID)
	}
	if !keys.ValidName(c.ClusterID) {
		return fmt.Errorf("%w: ceremony %q: cluster id %q invalid", ErrMalformed, c.ID, c.ClusterID)
	}
	switch c.Kind {
	case KindKeygen, KindRefresh, KindReshare, KindBackup, KindRecover:
	default:
		return fmt.Errorf("%w: ceremony %q: kind %q unknown (want %q, %q, %q, %q or %q)", ErrMalformed, c.ID, c.Kind, KindKeygen, KindRefresh, KindReshare, KindBackup, KindRecover)
	}
	if !algPattern.MatchString(c.Algorithm) {
		return fmt.Errorf("%w: ceremony %q: algorithm %q invalid", ErrMalformed, c.ID, c.Algorithm)
	}
	if len(c.Parties) < 2 || len(c.Parties) > MaxParties {
		return fmt.Errorf("%w: ceremony %q: %d parties, want 2 to %d", ErrMalformed, c.ID, len(c.Parties), MaxParties)
	}
	for i, p := range c.Parties {
		if !partyPattern.MatchString(p) {
			return fmt.Errorf("%w: ceremony %q: %q is not a party id", ErrMalformed, c.ID, p)
		}
		if i > 0 && c.Parties[i-1] >= p {
			return fmt.Errorf("%w: ceremony %q: parties not sorted and unique (%q then %q)", ErrMalformed, c.ID, c.Parties[i-1], p)
		}
	}
	if c.Threshold < 1 || c.Threshold >= len(c.Parties) {
		return fmt.Errorf("%w: ceremony %q: threshold %d invalid for %d parties (want 1 to %d)", ErrMalformed, c.ID, c.Threshold, len(c.Parties), len(c.Parties)-1)
	}
	if err := c.validateKind(); err != nil {
		return err
	}
	if c.IssuedAt <= 0 || c.ExpiresAt <= c.IssuedAt {
		return fmt.Errorf("%w: ceremony %q: validity window invalid: issued_at %d, expires_at %d (want 0 < issued_at < expires_at)", ErrMalformed, c.ID, c.IssuedAt, c.ExpiresAt)
	}
	return nil
}

// Encode validates c and returns its canonical encoding, the bytes admins
// sign with Sign.
func (c *Ceremony) Encode() ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	b, err := canon.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("ceremony: encode: %w", err)
	}
	return b, nil
}

// Sign signs a ceremony's encoding (Encode) as the admin k. It is for the
// CLI and tests; the enclave holds no admin key.
func Sign(body []byte, k *keys.PrivateKey) (policy.Sig, error) {
	if k == nil || k.Signer == nil {
		return policy.Sig{}, errors.New("ceremony: sign: no admin key")
	}
	sig, err := k.Sign(Domain, body)
	if err != nil {
		return policy.Sig{}, fmt.Errorf("ceremony: sign as %q: %w", k.Public.ID, err)
	}
	return policy.Sig{KeyID: k.Public.ID, Signature: sig}, nil
}

// New validates c, signs it with every admin key and returns the encoded
// Signed ceremony.
func New(c Ceremony, admins ...*keys.PrivateKey) ([]byte, error) {
	body, err := c.Encode()
	if err != nil {
		return nil, err
	}
	s := Signed{Ceremony: body}
	for _, k := range admins {
		sig, err := Sign(body, k)
		if err != nil {
			return nil, err
		}
		s.Signatures = append(s.Signatures, sig)
	}
	return s.Encode()
}

// Encode returns the canonical encoding of s.
func (s *Signed) Encode() ([]byte, error) {
	out, err := canon.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("ceremony: encode: %w", err)
	}
	if len(out) > MaxSize {
		return nil, fmt.Errorf("%w: signed ceremony is %d bytes, limit %d", ErrTooLarge, len(out), MaxSize)
	}
	return out, nil
}

// Verify decodes a signed ceremony and accepts it only if, in order: it is
// strict canonical CBOR within MaxSize; at least admins.Quorum of its
// signatures are valid under Domain from distinct admin keys of distinct
// owners (policy.Admins.VerifyQuorum); the ceremony is valid, for
// clusterID, and valid at now: not expired, not issued more than ClockSkew
// in the future, and living no longer than maxLifetime (MaxLifetime when
// ≤ 0 or larger). It returns the ceremony and the key ids of the admins
// whose signatures counted. It does not check for replay: pass the result
// to ReplayCache.Admit.
//
// Errors match one of the package's Err values with errors.Is.
func Verify(signed []byte, admins policy.Admins, clusterID string, now time.Time, maxLifetime time.Duration) (c *Ceremony, by []string, err error) {
	// canon and the key parsers are not ours; untrusted bytes must not
	// panic the enclave whatever they do.
	defer func() {
		if p := recover(); p != nil {
			c, by, err = nil, nil, fmt.Errorf("%w: decoder panic: %v", ErrMalformed, p)
		}
	}()
	if maxLifetime <= 0 || maxLifetime > MaxLifetime {
		maxLifetime = MaxLifetime
	}
	if len(signed) > MaxSize {
		return nil, nil, fmt.Errorf("%w: signed ceremony is %d bytes, limit %d", ErrTooLarge, len(signed), MaxSize)
	}
	var s Signed
	if err := canon.Unmarshal(signed, &s); err != nil {
		return nil, nil, fmt.Errorf("%w: signed envelope: %v", ErrMalformed, err)
	}
	by, err = admins.VerifyQuorum(Domain, s.Ceremony, s.Signatures)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrQuorum, err)
	}
	// Only now, authenticated, is the ceremony parsed.
	c = new(Ceremony)
	if err := canon.Unmarshal(s.Ceremony, c); err != nil {
		return nil, nil, fmt.Errorf("%w: ceremony body: %v", ErrMalformed, err)
	}
	if err := c.Validate(); err != nil {
		return nil, nil, err
	}
	if c.ClusterID != clusterID {
		return nil, nil, fmt.Errorf("%w: ceremony %q is for cluster %q, want %q", ErrWrongCluster, c.ID, c.ClusterID, clusterID)
	}
	nowS := now.Unix()
	if nowS >= c.ExpiresAt {
		return nil, nil, fmt.Errorf("%w: ceremony %q expired at %s, now %s; have the admins sign a new one", ErrExpired, c.ID, unix(c.ExpiresAt), unix(nowS))
	}
	if c.IssuedAt > nowS+int64(ClockSkew/time.Second) {
		return nil, nil, fmt.Errorf("%w: ceremony %q issued at %s, now %s (more than %s ahead; check the signer's clock)", ErrNotYetValid, c.ID, unix(c.IssuedAt), unix(nowS), ClockSkew)
	}
	// Compare in seconds: converting a hostile lifetime to a Duration
	// could overflow.
	if life := c.ExpiresAt - c.IssuedAt; life > int64(maxLifetime/time.Second) {
		return nil, nil, fmt.Errorf("%w: ceremony %q lives %ds (issued %s, expires %s), limit %s", ErrLifetime, c.ID, life, unix(c.IssuedAt), unix(c.ExpiresAt), maxLifetime)
	}
	return c, slices.Clip(by), nil
}

func unix(s int64) string {
	return time.Unix(s, 0).UTC().Format(time.RFC3339)
}

// MaxRecipients bounds a backup's recovery keys.
const MaxRecipients = 8

// validateKind checks the fields each kind needs and refuses the ones it
// does not use, so no field is silently ignored.
func (c *Ceremony) validateKind() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: ceremony %q (%s): %s", ErrMalformed, c.ID, c.Kind, fmt.Sprintf(format, a...))
	}
	if c.Kind == KindKeygen {
		if c.KeyID != "" || c.Epoch != 0 || len(c.NewParties) != 0 || c.NewThreshold != 0 || len(c.Recipients) != 0 || c.Party != "" {
			return bad("a keygen names no key, epoch, new committee, recipients or party")
		}
		return nil
	}
	if !keyIDPattern.MatchString(c.KeyID) {
		return bad("key id %q invalid", c.KeyID)
	}
	if c.Kind == KindReshare {
		if len(c.NewParties) < 2 || len(c.NewParties) > MaxParties {
			return bad("%d new parties, want 2 to %d", len(c.NewParties), MaxParties)
		}
		for i, p := range c.NewParties {
			if !partyPattern.MatchString(p) {
				return bad("%q is not a party id", p)
			}
			if i > 0 && c.NewParties[i-1] >= p {
				return bad("new parties not sorted and unique (%q then %q)", c.NewParties[i-1], p)
			}
		}
		if c.NewThreshold < 1 || c.NewThreshold >= len(c.NewParties) {
			return bad("new threshold %d invalid for %d parties (want 1 to %d)", c.NewThreshold, len(c.NewParties), len(c.NewParties)-1)
		}
		if slices.Equal(c.NewParties, c.Parties) && c.NewThreshold == c.Threshold {
			return bad("the new committee is the old one: that is a refresh")
		}
	} else if len(c.NewParties) != 0 || c.NewThreshold != 0 {
		return bad("only a reshare names a new committee")
	}
	if c.Kind == KindBackup {
		if len(c.Recipients) < 1 || len(c.Recipients) > MaxRecipients {
			return bad("%d recipients, want 1 to %d", len(c.Recipients), MaxRecipients)
		}
		for i, r := range c.Recipients {
			if !keys.ValidName(r) {
				return bad("recipient %q is not a key id", r)
			}
			if i > 0 && c.Recipients[i-1] >= r {
				return bad("recipients not sorted and unique (%q then %q)", c.Recipients[i-1], r)
			}
		}
	} else if len(c.Recipients) != 0 {
		return bad("only a backup names recipients")
	}
	if c.Kind == KindRecover {
		if !slices.Contains(c.Parties, c.Party) {
			return bad("party %q to recover is not one of the key's parties", c.Party)
		}
	} else if c.Party != "" {
		return bad("only a recovery names a party")
	}
	return nil
}
