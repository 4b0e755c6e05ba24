package ceremony

import (
	"fmt"
	"sync"
	"time"
)

// MaxReplayCapacity bounds a ReplayCache. Ceremonies are rare (each one
// is a quorum of admins at work); 1024 unexpired ids is far above any real
// rate at MaxLifetime.
const MaxReplayCapacity = 1024

// ReplayCache remembers the ids of ceremonies run until they have expired
// (ExpiresAt + ClockSkew), so the host cannot make the enclave run one
// authorisation twice. It is bounded: when full of unexpired ids it
// refuses new ceremonies (ErrCacheFull) rather than forget one.
//
// Security assumption: the cache lives in memory only. SetFloor with the
// enclave's boot time refuses every ceremony issued before it, which an
// earlier incarnation may have run; a ceremony issued after boot is in
// this cache. Sealing the cache with the governance state would lift the
// floor's cost (a ceremony signed just before a restart must be re-signed).
//
// The zero value is an empty cache of MaxReplayCapacity. It is safe for
// concurrent use.
type ReplayCache struct {
	mu       sync.Mutex
	capacity int
	floor    int64
	until    map[string]int64 // id → unix seconds after which it is forgotten
}

// NewReplayCache returns an empty cache holding at most capacity ids
// (1..MaxReplayCapacity; 0 means MaxReplayCapacity).
func NewReplayCache(capacity int) (*ReplayCache, error) {
	if capacity == 0 {
		capacity = MaxReplayCapacity
	}
	if capacity < 1 || capacity > MaxReplayCapacity {
		return nil, fmt.Errorf("ceremony: replay cache capacity %d invalid (want 1 to %d)", capacity, MaxReplayCapacity)
	}
	return &ReplayCache{capacity: capacity}, nil
}

// SetFloor refuses, from now on, every ceremony issued before t.
func (r *ReplayCache) SetFloor(t time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.floor = max(r.floor, t.Unix())
}

// Check reports whether Admit would refuse c, without recording it. Use
// Admit to run a ceremony; Check then a separate record is racy.
func (r *ReplayCache) Check(c *Ceremony) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.check(c)
}

// Admit records c as run, or refuses it: ErrReplay if its id is held,
// ErrExpired if it was issued before the floor, ErrCacheFull if no room
// can be made. Check and record are one step.
func (r *ReplayCache) Admit(c *Ceremony, now time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.check(c); err != nil {
		return err
	}
	if r.until == nil {
		r.until = map[string]int64{}
	}
	if r.capacity == 0 {
		r.capacity = MaxReplayCapacity
	}
	if len(r.until) >= r.capacity {
		nowS := now.Unix()
		for id, u := range r.until {
			if nowS > u {
				delete(r.until, id)
			}
		}
	}
	if len(r.until) >= r.capacity {
		return fmt.Errorf("%w: %d unexpired ceremony ids held (capacity %d); ceremony %q refused until one expires", ErrCacheFull, len(r.until), r.capacity, c.ID)
	}
	r.until[c.ID] = c.ExpiresAt + int64(ClockSkew/time.Second)
	return nil
}

func (r *ReplayCache) check(c *Ceremony) error {
	if _, ok := r.until[c.ID]; ok {
		return fmt.Errorf("%w: ceremony %q already ran on this party; have the admins sign a new one", ErrReplay, c.ID)
	}
	if c.IssuedAt < r.floor {
		return fmt.Errorf("%w: ceremony %q issued at %s, before this enclave's replay floor %s (it may have run before a restart; have the admins sign a new one)", ErrExpired, c.ID, unix(c.IssuedAt), unix(r.floor))
	}
	return nil
}
