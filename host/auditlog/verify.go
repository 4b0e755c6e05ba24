package auditlog

import (
	"bytes"
	"errors"
	"fmt"
	"iter"
	"time"

	"github.com/sealsign/sealsign/enclave/api"
	"github.com/sealsign/sealsign/enclave/audit"
	"github.com/sealsign/sealsign/governance/canon"
)

// Options configures Verify.
type Options struct {
	// Manifest is the cluster manifest the log's boot entries are
	// verified against; required.
	Manifest *api.Manifest
	// PartyID is the party every entry must name. Empty: the first
	// entry's party (which must be in the manifest); a forged first entry
	// is then reported at the second (audit.VerifyOptions.PartyID).
	PartyID string
	// Start is the head the entries continue from (zero: the log's first
	// entry). A run signed by a key whose boot entry precedes Start is
	// accepted on the caller's word; StartSignerKey, if set, must be its
	// key.
	Start          audit.Head
	StartSignerKey []byte
	// Anchors are heads known from elsewhere (an export manifest, an
	// earlier verification, another auditor): the log must contain each,
	// so a log cut short of one is reported as truncated.
	Anchors []audit.Head
}

// Log is one party's log as verified: the entries decoded, the boots
// trusted and the head. When verification fails, Records and Boots hold
// the entries before the failure and Err the failure.
type Log struct {
	PartyID string
	Start   audit.Head
	Head    audit.Head
	Records []Record
	Boots   []Boot
	// Checkpoints counts checkpoint entries (each checked against the
	// chain by audit.Verifier).
	Checkpoints int
	// Err is nil for a log that verified; else the failure, usually an
	// *audit.ChainError naming the position.
	Err error
}

// Verified reports whether the whole log verified.
func (l *Log) Verified() bool { return l != nil && l.Err == nil }

// Record is one verified entry.
type Record struct {
	Index     int
	Seq       uint64
	Time      time.Time
	Type      string
	Hash      [32]byte
	Prev      [32]byte
	SignerKey []byte
	// Boot indexes Log.Boots: the boot whose key signed this entry; -1
	// for a run that began before the segment's start.
	Boot int
	// Body is the decoded body: *audit.Request for "request", …,
	// *audit.Boot for "boot".
	Body any
	// Raw is the SignedEntry encoding, as stored.
	Raw []byte
}

// Slice yields entries held in memory.
func Slice(entries [][]byte) iter.Seq2[[]byte, error] {
	return func(yield func([]byte, error) bool) {
		for _, e := range entries {
			if !yield(e, nil) {
				return
			}
		}
	}
}

// Verify checks a party's log: every entry through audit.Verifier, and
// every boot entry through Trust at the boot entry's own time. It returns
// the Log even on failure (see Log). A failure in the chain or its trust is
// an *audit.ChainError naming the index and seq; a malformed raw file is
// one too (kind audit.ErrMalformed); other errors of entries (network,
// I/O) are returned as they are.
func Verify(entries iter.Seq2[[]byte, error], opts Options) (*Log, error) {
	if opts.Manifest == nil {
		return nil, errors.New("auditlog: Options.Manifest is required: boot entries are trusted only under the cluster manifest")
	}
	if opts.PartyID != "" {
		if _, ok := opts.Manifest.Party(opts.PartyID); !ok {
			return nil, fmt.Errorf("auditlog: %q is not a party of cluster %q (parties: %v)", opts.PartyID, opts.Manifest.ClusterID, opts.Manifest.PartyIDs())
		}
	}
	l := &Log{PartyID: opts.PartyID, Start: opts.Start}
	var (
		trust   *Trust
		cur     audit.Entry // the entry being added, decoded ahead of the verifier
		curBoot = -1
	)
	check := func(key []byte, b *audit.Boot) error {
		if b == nil {
			// audit.Verifier asks with nil only for the run in progress
			// at a non-zero Start.
			if opts.StartSignerKey != nil && !bytes.Equal(opts.StartSignerKey, key) {
				return fmt.Errorf("auditlog: the segment's first entries are signed by %s, the caller expects %s", short(key), short(opts.StartSignerKey))
			}
			curBoot = -1
			return nil
		}
		if trust == nil {
			var err error
			if trust, err = NewTrust(opts.Manifest, cur.PartyID); err != nil {
				return err
			}
		}
		info, err := trust.Check(key, b, time.Unix(0, cur.Time))
		if err != nil {
			return err
		}
		info.Index, info.Seq = len(l.Records), cur.Seq
		l.Boots = append(l.Boots, *info)
		curBoot = len(l.Boots) - 1
		return nil
	}
	v, err := audit.NewVerifier(audit.VerifyOptions{Trust: check, PartyID: opts.PartyID, Start: opts.Start, Anchors: opts.Anchors})
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*Log, error) {
		l.Err = err
		l.Head = v.Head()
		return l, err
	}
	for raw, rerr := range entries {
		if rerr != nil {
			if errors.Is(rerr, ErrRawFormat) {
				h := v.Head()
				rerr = &audit.ChainError{Index: len(l.Records), Seq: h.Seq + 1, Kind: audit.ErrMalformed, Detail: rerr.Error()}
			}
			return fail(rerr)
		}
		e, body, derr := decode(raw)
		cur = e
		if err := v.Add(raw); err != nil {
			return fail(err)
		}
		if derr != nil {
			// The verifier accepted what this package cannot decode: a
			// body type added to enclave/audit after this code.
			h := v.Head()
			return fail(&audit.ChainError{Index: len(l.Records), Seq: h.Seq, Kind: audit.ErrMalformed, Detail: derr.Error()})
		}
		if l.PartyID == "" {
			l.PartyID = e.PartyID
		}
		if _, ok := body.(*audit.Checkpoint); ok {
			l.Checkpoints++
		}
		l.Records = append(l.Records, Record{
			Index: len(l.Records), Seq: e.Seq, Time: time.Unix(0, e.Time).UTC(), Type: e.Type,
			Hash: audit.Hash(raw), Prev: e.Prev, SignerKey: e.SignerKey, Boot: curBoot, Body: body, Raw: raw,
		})
	}
	head, err := v.Finish()
	if err != nil {
		return fail(err)
	}
	l.Head = head
	return l, nil
}

// decode decodes a SignedEntry's entry and body, without checking the
// signature (audit.Verifier does).
func decode(raw []byte) (audit.Entry, any, error) {
	var se audit.SignedEntry
	var e audit.Entry
	if err := canon.Unmarshal(raw, &se); err != nil {
		return e, nil, fmt.Errorf("auditlog: signed entry: %v", err)
	}
	if err := canon.Unmarshal(se.Entry, &e); err != nil {
		return e, nil, fmt.Errorf("auditlog: entry: %v", err)
	}
	body := newBody(e.Type)
	if body == nil {
		return e, nil, fmt.Errorf("auditlog: entry type %q unknown to this verifier", e.Type)
	}
	if err := canon.Unmarshal(e.Body, body); err != nil {
		return e, nil, fmt.Errorf("auditlog: %s body: %v", e.Type, err)
	}
	return e, body, nil
}

// bodyTypes lists every entry type with a pointer to its zero body, in the
// order exports list them.
var bodyTypes = []struct {
	typ  string
	zero func() any
}{
	{audit.TypeBoot, func() any { return new(audit.Boot) }},
	{audit.TypeRequest, func() any { return new(audit.Request) }},
	{audit.TypeApproval, func() any { return new(audit.Approval) }},
	{audit.TypeVerdict, func() any { return new(audit.Verdict) }},
	{audit.TypeSession, func() any { return new(audit.Session) }},
	{audit.TypeResult, func() any { return new(audit.Result) }},
	{audit.TypeCeremony, func() any { return new(audit.Ceremony) }},
	{audit.TypeCheckpoint, func() any { return new(audit.Checkpoint) }},
}

func newBody(typ string) any {
	for _, b := range bodyTypes {
		if b.typ == typ {
			return b.zero()
		}
	}
	return nil
}

// KindName is a short name for the kind of a verification failure
// ("link", "sequence", "untrusted", …), for reports and JSON; "" when err
// is not an *audit.ChainError.
func KindName(err error) string {
	var ce *audit.ChainError
	if !errors.As(err, &ce) {
		return ""
	}
	for _, k := range []struct {
		err  error
		name string
	}{
		{audit.ErrMalformed, "malformed"}, {audit.ErrBadSignature, "bad-signature"}, {audit.ErrParty, "party"},
		{audit.ErrSequence, "sequence"}, {audit.ErrLink, "link"}, {audit.ErrTime, "time"}, {audit.ErrBoot, "boot"},
		{audit.ErrUntrusted, "untrusted"}, {audit.ErrCheckpoint, "checkpoint"}, {audit.ErrAnchor, "anchor"},
		{audit.ErrTruncated, "truncated"},
	} {
		if errors.Is(ce.Kind, k.err) {
			return k.name
		}
	}
	return "chain"
}
