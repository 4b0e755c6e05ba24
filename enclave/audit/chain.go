package audit

import (
	"crypto/ed25519"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/sealsign/sealsign/governance/canon"
	"github.com/sealsign/sealsign/governance/keys"
)

// Head is the end of a chain: the last entry's seq, chain hash and time.
// The zero Head is the empty log. An enclave seals its head so that after
// a restart it continues the same log.
//
// Append fields only.
type Head struct {
	Seq  uint64   `json:"seq" cbor:"1,keyasint"`
	Hash [32]byte `json:"hash" cbor:"2,keyasint"`
	Time int64    `json:"time" cbor:"3,keyasint"` // unix ns of the last entry
}

// Chain appends signed entries to one party's log. It holds only the head;
// the caller stores each returned entry and must make it durable before
// acting on it (releasing a signature share, answering the client).
//
// If an entry cannot be stored, stop using the Chain: the next entry would
// link to the lost one. Start again with NewChain from the last durable
// head.
//
// A Chain is safe for concurrent use; entries are numbered in the order
// Append calls take its lock.
type Chain struct {
	mu      sync.Mutex
	partyID string
	signer  ed25519.PrivateKey
	pub     []byte
	head    Head
	booted  bool // this Chain has written its boot entry
}

// NewChain continues partyID's log after head (the zero Head for a new
// log), signing with this boot's identity key. The first entry appended
// must be a "boot" entry introducing the key.
func NewChain(partyID string, signer ed25519.PrivateKey, head Head) (*Chain, error) {
	if !partyPattern.MatchString(partyID) {
		return nil, fmt.Errorf("audit: party id %q invalid (want lowercase letters, digits and '-', at most 32)", partyID)
	}
	if len(signer) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("audit: signer key is %d bytes, want an ed25519 private key (%d)", len(signer), ed25519.PrivateKeySize)
	}
	if head.Seq == 0 && head != (Head{}) {
		return nil, fmt.Errorf("audit: head has seq 0 but a hash or time; the empty log's head is zero")
	}
	if head.Seq != 0 && head.Hash == ([32]byte{}) {
		return nil, fmt.Errorf("audit: head at seq %d has a zero hash", head.Seq)
	}
	pub := signer.Public().(ed25519.PublicKey)
	return &Chain{partyID: partyID, signer: signer, pub: pub, head: head}, nil
}

// Head returns the chain's current head.
func (c *Chain) Head() Head {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.head
}

// Append signs and links a new entry of type typ, whose body must be the
// matching body struct (value or pointer: Request for "request", Verdict
// for "verdict", …, Boot for "boot"). It returns the encoded SignedEntry
// and the new head.
//
// now must not be before the previous entry's time: an enclave whose clock
// went backwards gets an error rather than a log with time running back.
// A "checkpoint" body must hold the current head (see Checkpoint).
func (c *Chain) Append(typ string, body any, now time.Time) ([]byte, Head, error) {
	got, ok := bodyType(body)
	if !ok {
		return nil, Head{}, fmt.Errorf("audit: %T is not an audit body", body)
	}
	if got != typ {
		return nil, Head{}, fmt.Errorf("audit: entry type %q with a %s body, want the %q body", typ, got, typ)
	}
	if isNilPtr(body) {
		return nil, Head{}, fmt.Errorf("audit: nil %T body", body)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.booted && typ != TypeBoot {
		return nil, Head{}, fmt.Errorf("audit: first entry of this chain is %q, want %q (it binds signer key %x to its attestation)", typ, TypeBoot, c.pub[:8])
	}
	if typ == TypeCheckpoint {
		cp := checkpointOf(body)
		if cp.Count != c.head.Seq || cp.Head != c.head.Hash {
			return nil, Head{}, fmt.Errorf("audit: checkpoint says %d entries with head %x, want %d with head %x (use Chain.Checkpoint)", cp.Count, cp.Head[:8], c.head.Seq, c.head.Hash[:8])
		}
	}
	bodyBytes, err := canon.Marshal(body)
	if err != nil {
		return nil, Head{}, fmt.Errorf("audit: encode %s body: %w", typ, err)
	}
	decoded, _ := newBody(typ)
	if err := canon.Unmarshal(bodyBytes, decoded); err != nil {
		return nil, Head{}, fmt.Errorf("audit: %s body does not round-trip: %w", typ, err)
	}
	if err := validateBody(decoded); err != nil {
		return nil, Head{}, fmt.Errorf("audit: %w", err)
	}
	t := now.UnixNano()
	if t <= 0 {
		return nil, Head{}, fmt.Errorf("audit: time %s is not after 1970", now.UTC().Format(time.RFC3339Nano))
	}
	if t < c.head.Time {
		return nil, Head{}, fmt.Errorf("audit: clock reads %s, before the previous entry's %s (seq %d); refusing to write time backwards",
			time.Unix(0, t).UTC().Format(time.RFC3339Nano), time.Unix(0, c.head.Time).UTC().Format(time.RFC3339Nano), c.head.Seq)
	}
	if c.head.Seq == math.MaxUint64 {
		return nil, Head{}, fmt.Errorf("audit: log is full at seq %d", c.head.Seq)
	}
	e := Entry{
		Format:    FormatV1,
		PartyID:   c.partyID,
		Seq:       c.head.Seq + 1,
		Time:      t,
		Prev:      c.head.Hash,
		Type:      typ,
		Body:      bodyBytes,
		SignerKey: c.pub,
	}
	eb, err := canon.Marshal(&e)
	if err != nil {
		return nil, Head{}, fmt.Errorf("audit: encode entry: %w", err)
	}
	sig := ed25519.Sign(c.signer, keys.Message(SignDomain, eb))
	out, err := canon.Marshal(&SignedEntry{Entry: eb, Signature: sig})
	if err != nil {
		return nil, Head{}, fmt.Errorf("audit: encode entry: %w", err)
	}
	if len(out) > MaxEntrySize {
		return nil, Head{}, fmt.Errorf("audit: %s entry is %d bytes, limit %d", typ, len(out), MaxEntrySize)
	}
	c.head = Head{Seq: e.Seq, Hash: Hash(out), Time: t}
	c.booted = true
	return out, c.head, nil
}

// Checkpoint appends a checkpoint entry committing to the current head.
func (c *Chain) Checkpoint(now time.Time) ([]byte, Head, error) {
	h := c.Head()
	// Append re-checks under the lock, so a racing Append makes this fail
	// rather than write a stale checkpoint.
	return c.Append(TypeCheckpoint, Checkpoint{Count: h.Seq, Head: h.Hash}, now)
}

// Hash is the chain hash of an encoded SignedEntry:
// canon.Digest(HashDomain, signedEntry).
func Hash(signedEntry []byte) [32]byte {
	return canon.Digest(HashDomain, signedEntry)
}

func checkpointOf(body any) Checkpoint {
	switch b := body.(type) {
	case Checkpoint:
		return b
	case *Checkpoint:
		return *b
	}
	return Checkpoint{}
}

func isNilPtr(body any) bool {
	switch b := body.(type) {
	case *Request:
		return b == nil
	case *Verdict:
		return b == nil
	case *Approval:
		return b == nil
	case *Session:
		return b == nil
	case *Result:
		return b == nil
	case *Ceremony:
		return b == nil
	case *Checkpoint:
		return b == nil
	case *Boot:
		return b == nil
	}
	return false
}
