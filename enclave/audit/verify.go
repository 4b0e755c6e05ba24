package audit

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"

	"github.com/sealsign/sealsign/governance/canon"
	"github.com/sealsign/sealsign/governance/keys"
)

// Kinds of chain failure, for errors.Is on a *ChainError.
var (
	ErrMalformed    = errors.New("audit: malformed entry")
	ErrBadSignature = errors.New("audit: entry signature does not verify")
	ErrParty        = errors.New("audit: entry from another party")
	ErrSequence     = errors.New("audit: sequence gap")
	ErrLink         = errors.New("audit: broken link")
	ErrTime         = errors.New("audit: time runs backwards")
	ErrBoot         = errors.New("audit: signer key changed without a boot entry")
	ErrUntrusted    = errors.New("audit: signer key not trusted")
	ErrCheckpoint   = errors.New("audit: checkpoint does not match the chain")
	ErrAnchor       = errors.New("audit: entry differs from a known head")
	ErrTruncated    = errors.New("audit: log truncated")
)

// ChainError is a chain verification failure at one position.
type ChainError struct {
	// Index is the position in the entries given to Verify (0-based);
	// len(entries) when entries are missing at the end.
	Index int
	// Seq is the seq expected at Index.
	Seq uint64
	// Kind is one of the Err values above.
	Kind   error
	Detail string
}

func (e *ChainError) Error() string {
	return fmt.Sprintf("%v at entry %d (seq %d): %s", e.Kind, e.Index, e.Seq, e.Detail)
}

func (e *ChainError) Unwrap() error { return e.Kind }

// VerifyOptions configures VerifyWith.
type VerifyOptions struct {
	// Trust decides whether a signer key may sign entries. It is called
	// once for each run of entries signed by one key: with the run's boot
	// body, or with nil when the run began before the verified segment
	// (Start). A verifier checks there that the boot's attestation
	// document is genuine, pins an accepted measurement and names
	// signerKey. Required: there is no default trust.
	Trust func(signerKey []byte, boot *Boot) error
	// PartyID, if set, is the party every entry must name. When empty the
	// first entry's party is used, so an entry from another party's log is
	// still found, but one replacing the first entry is reported at the
	// second.
	PartyID string
	// Start is the head the entries continue from: the zero Head for a log
	// from its first entry, or a head verified earlier for a segment.
	Start Head
	// Anchors are heads known from elsewhere (a checkpoint countersigned
	// by an auditor, another party's copy, an earlier export). The log
	// must contain each: same hash at that seq, and reach the highest
	// one, or truncation is reported. Only Seq and Hash are compared.
	Anchors []Head
}

// Verify checks a log from its first entry: every entry's encoding and
// signature, seq continuity from 1, links, non-decreasing time, one party
// id, boot entries at every signer key change, and checkpoint bodies.
// trustedKeys is asked once per signer key run (see VerifyOptions.Trust
// for checks that need the boot entry's attestation). It returns the head
// of the log. Failures are *ChainError naming the position.
func Verify(entries [][]byte, trustedKeys func(signerKey []byte) error) (Head, error) {
	if trustedKeys == nil {
		return Head{}, errors.New("audit: Verify needs a trusted-key check")
	}
	return VerifyWith(entries, VerifyOptions{Trust: func(k []byte, _ *Boot) error { return trustedKeys(k) }})
}

// VerifyWith is Verify with options: a segment start, a fixed party id,
// anchors, and a trust check that sees boot entries.
func VerifyWith(entries [][]byte, opts VerifyOptions) (Head, error) {
	v, err := NewVerifier(opts)
	if err != nil {
		return Head{}, err
	}
	for _, b := range entries {
		if err := v.Add(b); err != nil {
			return Head{}, err
		}
	}
	return v.Finish()
}

// Verifier checks a log one entry at a time, for logs too large to hold.
// Add entries in order, then call Finish. After an error it refuses further
// entries.
type Verifier struct {
	opts    VerifyOptions
	party   string
	head    Head
	key     []byte
	index   int
	anchors map[uint64][32]byte
	maxAnch uint64
	err     error
}

// NewVerifier starts verifying after opts.Start.
func NewVerifier(opts VerifyOptions) (*Verifier, error) {
	if opts.Trust == nil {
		return nil, errors.New("audit: VerifyOptions.Trust is required (there is no default trust)")
	}
	if opts.Start.Seq == 0 && opts.Start != (Head{}) {
		return nil, errors.New("audit: VerifyOptions.Start has seq 0 but a hash or time; the empty log's head is zero")
	}
	v := &Verifier{opts: opts, party: opts.PartyID, head: opts.Start, anchors: map[uint64][32]byte{}}
	for _, a := range opts.Anchors {
		if a.Seq == 0 {
			return nil, errors.New("audit: anchor with seq 0")
		}
		if a.Seq < opts.Start.Seq {
			return nil, fmt.Errorf("audit: anchor at seq %d precedes the segment start %d and cannot be checked", a.Seq, opts.Start.Seq)
		}
		if a.Seq == opts.Start.Seq && a.Hash != opts.Start.Hash {
			return nil, fmt.Errorf("audit: anchor at seq %d has hash %x, but the segment starts from %x", a.Seq, a.Hash[:8], opts.Start.Hash[:8])
		}
		if h, dup := v.anchors[a.Seq]; dup && h != a.Hash {
			return nil, fmt.Errorf("audit: two anchors at seq %d disagree (%x, %x): the log has forked", a.Seq, h[:8], a.Hash[:8])
		}
		v.anchors[a.Seq] = a.Hash
		v.maxAnch = max(v.maxAnch, a.Seq)
	}
	return v, nil
}

func (v *Verifier) fail(kind error, format string, args ...any) error {
	v.err = &ChainError{Index: v.index, Seq: v.head.Seq + 1, Kind: kind, Detail: fmt.Sprintf(format, args...)}
	return v.err
}

// Add verifies the next entry.
func (v *Verifier) Add(b []byte) (err error) {
	if v.err != nil {
		return v.err
	}
	defer func() {
		if p := recover(); p != nil {
			err = v.fail(ErrMalformed, "decoder panic: %v", p)
		}
	}()
	if err := v.add(b); err != nil {
		return err
	}
	v.index++
	return nil
}

func (v *Verifier) add(b []byte) error {
	want := v.head.Seq + 1
	if len(b) > MaxEntrySize {
		return v.fail(ErrMalformed, "%d bytes, limit %d", len(b), MaxEntrySize)
	}
	var se SignedEntry
	if err := canon.Unmarshal(b, &se); err != nil {
		return v.fail(ErrMalformed, "signed entry: %v", err)
	}
	var e Entry
	if err := canon.Unmarshal(se.Entry, &e); err != nil {
		return v.fail(ErrMalformed, "entry: %v", err)
	}
	if e.Format != FormatV1 {
		return v.fail(ErrMalformed, "format %d unsupported, want %d", e.Format, FormatV1)
	}
	if len(e.SignerKey) != ed25519.PublicKeySize {
		return v.fail(ErrMalformed, "signer key is %d bytes, want %d", len(e.SignerKey), ed25519.PublicKeySize)
	}
	if len(se.Signature) != ed25519.SignatureSize || !ed25519.Verify(e.SignerKey, keys.Message(SignDomain, se.Entry), se.Signature) {
		return v.fail(ErrBadSignature, "signer key %x", e.SignerKey[:8])
	}
	// The entry is what its signer wrote; now check where it sits.
	if !partyPattern.MatchString(e.PartyID) {
		return v.fail(ErrMalformed, "party id %q invalid", e.PartyID)
	}
	if v.party == "" {
		v.party = e.PartyID
	}
	if e.PartyID != v.party {
		return v.fail(ErrParty, "entry names party %q, want %q", e.PartyID, v.party)
	}
	if e.Seq != want {
		if e.Seq == want+1 {
			return v.fail(ErrSequence, "got seq %d, want %d (entry %d missing, or entries reordered)", e.Seq, want, want)
		}
		if e.Seq > want {
			return v.fail(ErrSequence, "got seq %d, want %d (entries %d to %d missing, or entries reordered)", e.Seq, want, want, e.Seq-1)
		}
		return v.fail(ErrSequence, "got seq %d, want %d (entry repeated or entries reordered)", e.Seq, want)
	}
	if e.Prev != v.head.Hash {
		return v.fail(ErrLink, "prev is %x, want %x (the hash of seq %d)", e.Prev[:8], v.head.Hash[:8], v.head.Seq)
	}
	if e.Time <= 0 || e.Time < v.head.Time {
		return v.fail(ErrTime, "time %d ns, previous entry's %d ns", e.Time, v.head.Time)
	}
	body, ok := newBody(e.Type)
	if !ok {
		return v.fail(ErrMalformed, "type %q unknown", e.Type)
	}
	if err := canon.Unmarshal(e.Body, body); err != nil {
		return v.fail(ErrMalformed, "%s body: %v", e.Type, err)
	}
	if err := validateBody(body); err != nil {
		return v.fail(ErrMalformed, "%v", err)
	}
	if cp, ok := body.(*Checkpoint); ok && (cp.Count != v.head.Seq || cp.Head != v.head.Hash) {
		return v.fail(ErrCheckpoint, "checkpoint says %d entries with head %x, the chain has %d with head %x", cp.Count, cp.Head[:8], v.head.Seq, v.head.Hash[:8])
	}
	boot, isBoot := body.(*Boot)
	switch {
	case isBoot:
		if err := v.opts.Trust(e.SignerKey, boot); err != nil {
			return v.fail(ErrUntrusted, "boot of signer key %x: %v", e.SignerKey[:8], err)
		}
	case v.key == nil && v.head.Seq == 0:
		return v.fail(ErrBoot, "a log starts with a %q entry, got %q", TypeBoot, e.Type)
	case v.key == nil:
		if err := v.opts.Trust(e.SignerKey, nil); err != nil {
			return v.fail(ErrUntrusted, "signer key %x: %v", e.SignerKey[:8], err)
		}
	case !bytes.Equal(v.key, e.SignerKey):
		return v.fail(ErrBoot, "%q entry signed by key %x, previous entries by %x", e.Type, e.SignerKey[:8], v.key[:8])
	}
	h := Hash(b)
	if a, ok := v.anchors[e.Seq]; ok && a != h {
		return v.fail(ErrAnchor, "hash %x, the known head at seq %d is %x (the log was rewritten from here, or forked)", h[:8], e.Seq, a[:8])
	}
	v.key = e.SignerKey
	v.head = Head{Seq: e.Seq, Hash: h, Time: e.Time}
	return nil
}

// Head returns the head of the entries verified so far.
func (v *Verifier) Head() Head { return v.head }

// Finish checks that the log reaches every anchor and returns its head.
func (v *Verifier) Finish() (Head, error) {
	if v.err != nil {
		return Head{}, v.err
	}
	if v.maxAnch > v.head.Seq {
		return Head{}, v.fail(ErrTruncated, "log ends at seq %d, but seq %d is known (%d entries missing at the end)", v.head.Seq, v.maxAnch, v.maxAnch-v.head.Seq)
	}
	return v.head, nil
}
