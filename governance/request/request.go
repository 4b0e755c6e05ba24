// Package request is the signing request a client sends the enclave: what
// to sign (a typed payload), with which threshold key, and by whom, signed
// with the client's API key from the cluster manifest. The host relays the
// bytes but cannot forge or alter a request, and the enclave refuses a
// request it has already accepted (ReplayCache).
//
// # Wire format
//
// A signed request is Signed in canonical CBOR (package canon): the exact
// canonical encoding of a Request, and a signature over
// keys.Message(Domain, those bytes). The signature therefore covers an
// encoding that excludes the signature field itself.
//
// # Backwards compatibility
//
// Request is format 1. Fields are appended only; a CBOR key is never reused
// or given a new meaning. Decoding is strict (unknown fields are refused),
// so an enclave refuses requests with fields it does not understand rather
// than ignoring them.
package request

import (
	"crypto"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/sealsign/sealsign/governance/canon"
	"github.com/sealsign/sealsign/governance/keys"
	"github.com/sealsign/sealsign/governance/tx"
)

// Domains for the request signature and the request digest.
const (
	Domain       = "sealsign/v1/request"
	DigestDomain = "sealsign/v1/request-id"
	// contentDomain hashes the unsigned Request encoding, so the replay
	// cache recognises the same request re-signed (ECDSA signatures differ
	// each time) as the same content.
	contentDomain = "sealsign/v1/request-content"
)

// FormatV1 is the only Request format.
const FormatV1 = 1

// Limits. They are central so a reviewer sees every bound in one place.
const (
	// MaxPayloadSize bounds the payload. A PSBT with full previous
	// transactions is the largest payload we expect; 512 KiB leaves room
	// while keeping the signed request well under canon.MaxSize.
	MaxPayloadSize = 512 << 10
	// MaxSigners bounds the optional signer list (a manifest has at most
	// 16 parties).
	MaxSigners = 16
	// DefaultMaxLifetime is the longest ExpiresAt-IssuedAt accepted when
	// Verify is given maxLifetime ≤ 0. Short lifetimes keep the replay
	// cache small and bound how long a captured request is useful.
	DefaultMaxLifetime = 15 * time.Minute
	// ClockSkew is how far in the future IssuedAt may be, and how long past
	// ExpiresAt the replay cache keeps an id, to absorb clock differences
	// between the client and the enclaves.
	ClockSkew = 2 * time.Minute
)

// Errors returned by Verify and ReplayCache, for errors.Is. Each returned
// error adds what was expected and what was found.
var (
	ErrMalformed     = errors.New("request: malformed")
	ErrTooLarge      = errors.New("request: too large")
	ErrUnknownClient = errors.New("request: unknown client key")
	// ErrBadSignature also matches keys.ErrBadSignature.
	ErrBadSignature    error = &wrapErr{"request: signature does not verify", keys.ErrBadSignature}
	ErrWrongCluster          = errors.New("request: wrong cluster")
	ErrExpired               = errors.New("request: expired")
	ErrNotYetValid           = errors.New("request: issued in the future")
	ErrLifetime              = errors.New("request: lifetime too long")
	ErrReplay                = errors.New("request: replay")
	ErrReplayCacheFull       = errors.New("request: replay cache full")
)

type wrapErr struct {
	msg  string
	base error
}

func (e *wrapErr) Error() string { return e.msg }
func (e *wrapErr) Unwrap() error { return e.base }

var (
	idPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{16,64}$`)
	// partyPattern matches enclave/api's party ids; repeated here because
	// governance does not import enclave.
	partyPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)
	// kindPattern only bounds the kind's shape; the decoder in governance/tx
	// refuses kinds it does not know.
	kindPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)
)

// ValidID reports whether id is a well-formed request id: 16-64 of
// [A-Za-z0-9_-].
func ValidID(id string) bool { return idPattern.MatchString(id) }

// Request asks the enclave to sign Payload with the threshold key KeyID.
//
// Format 1. Append fields only; never renumber or reuse a CBOR key.
type Request struct {
	Format uint64 `json:"format" cbor:"1,keyasint"`
	// ID is chosen by the client: 16-64 of [A-Za-z0-9_-]. It is unique per
	// cluster; approvals and audit records name the request by it.
	ID          string  `json:"id" cbor:"2,keyasint"`
	ClusterID   string  `json:"cluster_id" cbor:"3,keyasint"`
	ClientKeyID string  `json:"client_key_id" cbor:"4,keyasint"`
	KeyID       string  `json:"key_id" cbor:"5,keyasint"`
	Kind        tx.Kind `json:"kind" cbor:"6,keyasint"`
	Payload     []byte  `json:"payload" cbor:"7,keyasint"`
	// IssuedAt and ExpiresAt are unix seconds. The request is valid while
	// IssuedAt-ClockSkew ≤ now < ExpiresAt.
	IssuedAt  int64 `json:"issued_at" cbor:"8,keyasint"`
	ExpiresAt int64 `json:"expires_at" cbor:"9,keyasint"`
	// Signers optionally names the parties asked to sign (sorted, unique).
	Signers []string `json:"signers,omitempty" cbor:"10,keyasint,omitempty"`
	// Path optionally signs with the BIP-32 non-hardened child of KeyID at
	// this path (secp256k1 keys only; see Path) instead of KeyID itself.
	// Absent (empty) is the key itself; a request without it encodes as it
	// did before the field existed.
	Path Path `json:"path,omitempty" cbor:"11,keyasint,omitempty"`

	// digest is set by Verify; it is not part of the encoding.
	digest [32]byte
}

// Signed is a Request's canonical encoding and the client's signature over
// keys.Message(Domain, Request).
//
// Format 1. Append fields only.
type Signed struct {
	Request   []byte `json:"request" cbor:"1,keyasint"`
	Signature []byte `json:"signature" cbor:"2,keyasint"`
}

// Validate checks the request's fields on their own: format, id, names,
// sizes and the validity window's shape. It does not check the signature,
// the cluster or the clock (Verify does).
func (r *Request) Validate() error {
	if r.Format != FormatV1 {
		return fmt.Errorf("%w: format %d unsupported, want %d", ErrMalformed, r.Format, FormatV1)
	}
	if !idPattern.MatchString(r.ID) {
		return fmt.Errorf("%w: id %q invalid (want 16-64 of letters, digits, '_' and '-')", ErrMalformed, r.ID)
	}
	if !keys.ValidName(r.ClusterID) {
		return fmt.Errorf("%w: request %q: cluster id %q invalid", ErrMalformed, r.ID, r.ClusterID)
	}
	if !keys.ValidName(r.ClientKeyID) {
		return fmt.Errorf("%w: request %q: client key id %q invalid", ErrMalformed, r.ID, r.ClientKeyID)
	}
	if !keys.ValidName(r.KeyID) {
		return fmt.Errorf("%w: request %q: key id %q invalid", ErrMalformed, r.ID, r.KeyID)
	}
	if !kindPattern.MatchString(string(r.Kind)) {
		return fmt.Errorf("%w: request %q: kind %q invalid (want e.g. %q, %q or %q)", ErrMalformed, r.ID, r.Kind, tx.KindEVM, tx.KindPSBT, tx.KindRaw)
	}
	if len(r.Payload) == 0 {
		return fmt.Errorf("%w: request %q: payload is empty", ErrMalformed, r.ID)
	}
	if len(r.Payload) > MaxPayloadSize {
		return fmt.Errorf("%w: request %q: payload is %d bytes, limit %d", ErrTooLarge, r.ID, len(r.Payload), MaxPayloadSize)
	}
	if r.IssuedAt <= 0 || r.ExpiresAt <= r.IssuedAt {
		return fmt.Errorf("%w: request %q: validity window invalid: issued_at %d, expires_at %d (want 0 < issued_at < expires_at)", ErrMalformed, r.ID, r.IssuedAt, r.ExpiresAt)
	}
	if len(r.Signers) > MaxSigners {
		return fmt.Errorf("%w: request %q: %d signers, limit %d", ErrMalformed, r.ID, len(r.Signers), MaxSigners)
	}
	for i, s := range r.Signers {
		if !partyPattern.MatchString(s) {
			return fmt.Errorf("%w: request %q: signer %q is not a party id", ErrMalformed, r.ID, s)
		}
		if i > 0 && r.Signers[i-1] >= s {
			return fmt.Errorf("%w: request %q: signers not sorted and unique (%q then %q)", ErrMalformed, r.ID, r.Signers[i-1], s)
		}
	}
	if err := r.Path.Validate(); err != nil {
		return fmt.Errorf("%w: request %q: %w", ErrMalformed, r.ID, err)
	}
	return nil
}

// New validates r and signs it with priv (an ed25519.PrivateKey or
// *ecdsa.PrivateKey P-256), returning the encoded Signed request. It is for
// the CLI and tests; the enclave never signs requests.
func New(r Request, priv crypto.Signer) ([]byte, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	body, err := canon.Marshal(&r)
	if err != nil {
		return nil, fmt.Errorf("request: encode: %w", err)
	}
	sig, err := keys.Sign(priv, Domain, body)
	if err != nil {
		return nil, fmt.Errorf("request: sign: %w", err)
	}
	out, err := canon.Marshal(&Signed{Request: body, Signature: sig})
	if err != nil {
		return nil, fmt.Errorf("request: encode: %w", err)
	}
	if len(out) > canon.MaxSize {
		return nil, fmt.Errorf("%w: signed request is %d bytes, limit %d", ErrTooLarge, len(out), canon.MaxSize)
	}
	return out, nil
}

// Verify decodes a signed request and accepts it only if it is well formed,
// signed by a key in clients, for clusterID, and valid at now: not expired,
// not issued more than ClockSkew in the future, and living no longer than
// maxLifetime (DefaultMaxLifetime when ≤ 0). It does not check for replay:
// pass the result to ReplayCache.Admit.
//
// Errors match one of the package's Err values with errors.Is; they never
// contain payload bytes.
func Verify(signed []byte, clients keys.Set, clusterID string, now time.Time, maxLifetime time.Duration) (r *Request, err error) {
	// canon and the key parsers are not ours; untrusted bytes must not
	// panic the enclave whatever they do.
	defer func() {
		if p := recover(); p != nil {
			r, err = nil, fmt.Errorf("%w: decoder panic: %v", ErrMalformed, p)
		}
	}()
	if maxLifetime <= 0 {
		maxLifetime = DefaultMaxLifetime
	}
	if len(signed) > canon.MaxSize {
		return nil, fmt.Errorf("%w: signed request is %d bytes, limit %d", ErrTooLarge, len(signed), canon.MaxSize)
	}
	var s Signed
	if err := canon.Unmarshal(signed, &s); err != nil {
		return nil, fmt.Errorf("%w: signed envelope: %v", ErrMalformed, err)
	}
	req := new(Request)
	if err := canon.Unmarshal(s.Request, req); err != nil {
		return nil, fmt.Errorf("%w: request body: %v", ErrMalformed, err)
	}
	if req.Format != FormatV1 {
		return nil, fmt.Errorf("%w: format %d unsupported, want %d", ErrMalformed, req.Format, FormatV1)
	}
	key, ok := clients[req.ClientKeyID]
	if !ok {
		return nil, fmt.Errorf("%w: %q is not a client key of cluster %q (request %q)", ErrUnknownClient, req.ClientKeyID, clusterID, req.ID)
	}
	if err := key.Verify(Domain, s.Request, s.Signature); err != nil {
		if errors.Is(err, keys.ErrBadSignature) {
			return nil, fmt.Errorf("%w: request %q, client key %q (%s)", ErrBadSignature, req.ID, key.ID, key.Algorithm)
		}
		return nil, fmt.Errorf("%w: request %q, client key %q: %v", ErrBadSignature, req.ID, key.ID, err)
	}
	// Everything below is about an authentic request.
	if err := req.Validate(); err != nil {
		return nil, err
	}
	if req.ClusterID != clusterID {
		return nil, fmt.Errorf("%w: request %q is for cluster %q, want %q", ErrWrongCluster, req.ID, req.ClusterID, clusterID)
	}
	nowS := now.Unix()
	if nowS >= req.ExpiresAt {
		return nil, fmt.Errorf("%w: request %q expired at %s, now %s", ErrExpired, req.ID, unix(req.ExpiresAt), unix(nowS))
	}
	if req.IssuedAt > nowS+int64(ClockSkew/time.Second) {
		return nil, fmt.Errorf("%w: request %q issued at %s, now %s (more than %s ahead; check the client's clock)", ErrNotYetValid, req.ID, unix(req.IssuedAt), unix(nowS), ClockSkew)
	}
	// Compare in seconds: converting a hostile lifetime to a Duration
	// could overflow.
	if life := req.ExpiresAt - req.IssuedAt; life > int64(maxLifetime/time.Second) {
		return nil, fmt.Errorf("%w: request %q lives %ds (issued %s, expires %s), limit %s", ErrLifetime, req.ID, life, unix(req.IssuedAt), unix(req.ExpiresAt), maxLifetime)
	}
	req.digest = Digest(signed)
	return req, nil
}

// Digest identifies one signed request in audit records and approvals:
// canon.Digest(DigestDomain, signed).
func Digest(signed []byte) [32]byte {
	return canon.Digest(DigestDomain, signed)
}

// Digest returns the digest of the signed request Verify accepted this
// Request from (the package-level Digest of those bytes). It is zero for a
// Request that did not come from Verify.
func (r *Request) Digest() [32]byte {
	return r.digest
}

// PayloadHash is tx.PayloadHash of the request's kind and payload: the
// hash approvals and verdicts bind to (tx.Summary.PayloadHash).
func (r *Request) PayloadHash() [32]byte {
	return tx.PayloadHash(r.Kind, r.Payload)
}

// contentHash is the digest of the unsigned request encoding.
func (r *Request) contentHash() ([32]byte, error) {
	b, err := canon.Marshal(r)
	if err != nil {
		return [32]byte{}, fmt.Errorf("request: encode: %w", err)
	}
	return canon.Digest(contentDomain, b), nil
}

func unix(s int64) string {
	return time.Unix(s, 0).UTC().Format(time.RFC3339)
}
