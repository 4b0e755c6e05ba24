package request

import (
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/sealsign/sealsign/governance/canon"
)

// Replay cache limits.
const (
	// MaxReplayCapacity bounds a cache so its sealed state always fits in
	// canon.MaxSize (8192 entries with 64-character ids encode to about
	// 900 KiB; TestReplayCacheMaxFits checks it). At DefaultMaxLifetime it admits about 9 requests a second
	// sustained, far above what threshold signing sustains.
	MaxReplayCapacity = 8192
	// DefaultReplayCapacity is used by a zero ReplayCache.
	DefaultReplayCapacity = MaxReplayCapacity
)

// ReplayCache remembers the ids of accepted requests until they have
// expired (ExpiresAt + ClockSkew), so the host cannot make the enclave act
// on one request twice. A request with an id already held is refused with
// ErrReplay, whether its content is the same (a resend) or different
// ("conflicting": the client reused an id).
//
// The cache is bounded. When it is full and nothing in it has expired it
// refuses new requests (ErrReplayCacheFull): forgetting an unexpired id
// would re-open it to replay.
//
// Security assumption: the enclave seals the cache (MarshalBinary) and the
// host stores the blob, so the host can hand back an older blob after a
// restart. An enclave that cannot prove the blob is its latest must call
// SetFloor with its boot time, refusing every request issued before it
// that an earlier incarnation may have accepted.
//
// The zero value is an empty cache of DefaultReplayCapacity. It is safe for
// concurrent use.
type ReplayCache struct {
	mu       sync.Mutex
	capacity int
	floor    int64 // requests with IssuedAt < floor are refused
	entries  map[string]replayEntry
}

type replayEntry struct {
	// content only chooses the message: any held id is refused.
	content [32]byte
	until   int64 // unix seconds: forget after this
}

// NewReplayCache returns an empty cache holding at most capacity ids
// (1..MaxReplayCapacity; 0 means DefaultReplayCapacity).
func NewReplayCache(capacity int) (*ReplayCache, error) {
	if capacity == 0 {
		capacity = DefaultReplayCapacity
	}
	if capacity < 1 || capacity > MaxReplayCapacity {
		return nil, fmt.Errorf("request: replay cache capacity %d invalid (want 1 to %d)", capacity, MaxReplayCapacity)
	}
	return &ReplayCache{capacity: capacity}, nil
}

func (c *ReplayCache) init() {
	if c.capacity == 0 {
		c.capacity = DefaultReplayCapacity
	}
	if c.entries == nil {
		c.entries = make(map[string]replayEntry)
	}
}

// Admit records r as accepted, or refuses it with ErrReplay if its id is
// held (naming whether the content conflicts), ErrReplayCacheFull if no
// room can be made, or ErrExpired if r was issued before the floor. Check
// and record are one step, so two concurrent copies of a request cannot
// both be admitted.
func (c *ReplayCache) Admit(r *Request, now time.Time) error {
	content, err := r.contentHash()
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.init()
	if err := c.check(r, content); err != nil {
		return err
	}
	if len(c.entries) >= c.capacity {
		c.prune(now.Unix())
	}
	if len(c.entries) >= c.capacity {
		return fmt.Errorf("%w: %d unexpired ids held (capacity %d); request %q refused until the oldest expires at %s",
			ErrReplayCacheFull, len(c.entries), c.capacity, r.ID, unix(c.earliest()))
	}
	c.entries[r.ID] = replayEntry{content: content, until: r.ExpiresAt + int64(ClockSkew/time.Second)}
	return nil
}

// Check reports whether Admit would refuse r as a replay, without recording
// it. Use Admit to accept a request; Check followed by a separate record is
// racy.
func (c *ReplayCache) Check(r *Request) error {
	content, err := r.contentHash()
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.init()
	return c.check(r, content)
}

func (c *ReplayCache) check(r *Request, content [32]byte) error {
	if r.IssuedAt < c.floor {
		return fmt.Errorf("%w: request %q issued at %s, before this enclave's replay floor %s (it may have been accepted before a restart; resend with a new id)",
			ErrExpired, r.ID, unix(r.IssuedAt), unix(c.floor))
	}
	e, ok := c.entries[r.ID]
	if !ok {
		return nil
	}
	if e.content != content {
		return fmt.Errorf("%w: conflicting request with id %q: a request with different content was already accepted under this id (client key %q now; request ids must be unique)",
			ErrReplay, r.ID, r.ClientKeyID)
	}
	return fmt.Errorf("%w: request %q already accepted", ErrReplay, r.ID)
}

// SetFloor makes the cache refuse every request issued before t, whether or
// not its id is held. The floor only moves forward.
func (c *ReplayCache) SetFloor(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := t.Unix(); s > c.floor {
		c.floor = s
	}
}

// Prune forgets every id whose request expired (plus ClockSkew) before now.
func (c *ReplayCache) Prune(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.prune(now.Unix())
}

func (c *ReplayCache) prune(now int64) {
	for id, e := range c.entries {
		if e.until < now {
			delete(c.entries, id)
		}
	}
}

func (c *ReplayCache) earliest() int64 {
	var first int64
	for _, e := range c.entries {
		if first == 0 || e.until < first {
			first = e.until
		}
	}
	return first
}

// Len returns the number of ids held.
func (c *ReplayCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// replayState is the sealed form of a ReplayCache.
//
// Format 1. Append fields only. Entries are sorted by id, so one cache
// state has one encoding.
type replayState struct {
	Format   uint64             `cbor:"1,keyasint"`
	Capacity uint64             `cbor:"2,keyasint"`
	Floor    int64              `cbor:"3,keyasint"`
	Entries  []replayStateEntry `cbor:"4,keyasint"`
}

type replayStateEntry struct {
	ID      string   `cbor:"1,keyasint"`
	Content [32]byte `cbor:"2,keyasint"`
	Until   int64    `cbor:"3,keyasint"`
}

// MarshalBinary encodes the cache in canonical CBOR for sealing.
func (c *ReplayCache) MarshalBinary() ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.init()
	st := replayState{Format: FormatV1, Capacity: uint64(c.capacity), Floor: c.floor, Entries: make([]replayStateEntry, 0, len(c.entries))}
	for id, e := range c.entries {
		st.Entries = append(st.Entries, replayStateEntry{ID: id, Content: e.content, Until: e.until})
	}
	sort.Slice(st.Entries, func(i, j int) bool { return st.Entries[i].ID < st.Entries[j].ID })
	b, err := canon.Marshal(&st)
	if err != nil {
		return nil, fmt.Errorf("request: replay cache: encode: %w", err)
	}
	return b, nil
}

// UnmarshalBinary replaces the cache's contents with a sealed state. The
// state is checked as untrusted input (it has been outside the enclave
// even if sealed); on error the cache is unchanged.
func (c *ReplayCache) UnmarshalBinary(data []byte) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("request: replay cache: decoder panic: %v", p)
		}
	}()
	var st replayState
	if err := canon.Unmarshal(data, &st); err != nil {
		return fmt.Errorf("request: replay cache: %w", err)
	}
	if st.Format != FormatV1 {
		return fmt.Errorf("request: replay cache: format %d unsupported, want %d", st.Format, FormatV1)
	}
	if st.Capacity < 1 || st.Capacity > MaxReplayCapacity {
		return fmt.Errorf("request: replay cache: capacity %d invalid (want 1 to %d)", st.Capacity, MaxReplayCapacity)
	}
	if st.Floor < 0 {
		return fmt.Errorf("request: replay cache: floor %d is negative", st.Floor)
	}
	if st.Entries == nil {
		// MarshalBinary writes an empty array, never null: one state, one encoding.
		return fmt.Errorf("request: replay cache: entries are null, want an array")
	}
	if uint64(len(st.Entries)) > st.Capacity {
		return fmt.Errorf("request: replay cache: %d entries exceed capacity %d", len(st.Entries), st.Capacity)
	}
	entries := make(map[string]replayEntry, len(st.Entries))
	for i, e := range st.Entries {
		if !idPattern.MatchString(e.ID) {
			return fmt.Errorf("request: replay cache: entry %d: id %q invalid", i, e.ID)
		}
		if i > 0 && st.Entries[i-1].ID >= e.ID {
			return fmt.Errorf("request: replay cache: entries not sorted and unique at %d (%q then %q)", i, st.Entries[i-1].ID, e.ID)
		}
		entries[e.ID] = replayEntry{content: e.Content, until: e.Until}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.capacity = int(st.Capacity)
	c.floor = max(c.floor, st.Floor)
	c.entries = entries
	return nil
}
