package request

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sealsign/sealsign/governance/canon"
)

func verified(t testing.TB, r Request) *Request {
	t.Helper()
	signed, err := New(r, edPriv)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Verify(signed, clients(t), cluster, now, 0)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func withID(id string) Request {
	r := base()
	r.ID = id
	return r
}

func TestReplayCacheRefuses(t *testing.T) {
	first := verified(t, base())
	same := verified(t, base()) // same content, same (deterministic) signature
	other := base()
	other.KeyID = "petty-cash"
	conflicting := verified(t, other)
	p := base()
	p.ClientKeyID = "client-p256"
	resignedA, _ := New(p, p256Priv)
	resignedB, _ := New(p, p256Priv) // ECDSA: different signature, same content
	ra, err := Verify(resignedA, clients(t), cluster, now, 0)
	if err != nil {
		t.Fatal(err)
	}
	rb, err := Verify(resignedB, clients(t), cluster, now, 0)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		first  *Request
		second *Request
		msg    string
	}{
		{"resend", first, same, "already accepted"},
		{"different content", first, conflicting, `conflicting request with id "req-0123456789abcdef"`},
		{"re-signed same content", ra, rb, "already accepted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := NewReplayCache(0)
			if err := c.Admit(tt.first, now); err != nil {
				t.Fatal(err)
			}
			if err := c.Check(tt.second); !errors.Is(err, ErrReplay) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("Check: %v, want ErrReplay containing %q", err, tt.msg)
			}
			err := c.Admit(tt.second, now)
			if !errors.Is(err, ErrReplay) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("Admit: %v, want ErrReplay containing %q", err, tt.msg)
			}
			if c.Len() != 1 {
				t.Fatalf("Len = %d, want 1", c.Len())
			}
		})
	}
}

func TestReplayCacheExpiry(t *testing.T) {
	c, _ := NewReplayCache(2)
	r1 := verified(t, withID("req-aaaaaaaaaaaaaaaa"))
	r2 := verified(t, withID("req-bbbbbbbbbbbbbbbb"))
	r3 := verified(t, withID("req-cccccccccccccccc"))
	for _, r := range []*Request{r1, r2} {
		if err := c.Admit(r, now); err != nil {
			t.Fatal(err)
		}
	}
	// Full and nothing expired: fail closed.
	err := c.Admit(r3, now)
	if !errors.Is(err, ErrReplayCacheFull) || !strings.Contains(err.Error(), "2 unexpired ids held (capacity 2)") {
		t.Fatalf("Admit into a full cache: %v", err)
	}
	// Still held within the skew after expiry.
	atExpiry := time.Unix(r1.ExpiresAt, 0).Add(ClockSkew)
	if err := c.Admit(r3, atExpiry); !errors.Is(err, ErrReplayCacheFull) {
		t.Fatalf("ids forgotten before ExpiresAt+ClockSkew: %v", err)
	}
	// After expiry + skew the old ids make room.
	later := atExpiry.Add(time.Second)
	if err := c.Admit(r3, later); err != nil {
		t.Fatalf("Admit after expiry: %v", err)
	}
	if c.Len() != 1 {
		t.Fatalf("Len = %d after pruning, want 1", c.Len())
	}
	c.Prune(time.Unix(r3.ExpiresAt, 0).Add(ClockSkew + time.Second))
	if c.Len() != 0 {
		t.Fatalf("Len = %d after Prune, want 0", c.Len())
	}
}

func TestReplayCacheFloor(t *testing.T) {
	c, _ := NewReplayCache(0)
	r := verified(t, base())
	c.SetFloor(time.Unix(r.IssuedAt+1, 0))
	c.SetFloor(time.Unix(0, 0)) // never moves back
	err := c.Admit(r, now)
	if !errors.Is(err, ErrExpired) || !strings.Contains(err.Error(), "replay floor") {
		t.Fatalf("Admit below floor: %v", err)
	}
}

func TestNewReplayCacheCapacity(t *testing.T) {
	for _, n := range []int{-1, MaxReplayCapacity + 1} {
		if _, err := NewReplayCache(n); err == nil {
			t.Errorf("capacity %d accepted", n)
		}
	}
}

func TestReplayCacheZeroValue(t *testing.T) {
	var c ReplayCache
	if err := c.Admit(verified(t, base()), now); err != nil {
		t.Fatal(err)
	}
	if err := c.Admit(verified(t, base()), now); !errors.Is(err, ErrReplay) {
		t.Fatalf("zero cache did not refuse a replay: %v", err)
	}
}

func TestReplayCacheConcurrentAdmit(t *testing.T) {
	c, _ := NewReplayCache(0)
	r := verified(t, base())
	var ok atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 32; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if c.Admit(r, now) == nil {
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 1 {
		t.Fatalf("%d concurrent admits of one request succeeded, want 1", ok.Load())
	}
}

func TestReplayCacheRoundTrip(t *testing.T) {
	c, _ := NewReplayCache(10)
	for _, id := range []string{"req-cccccccccccccccc", "req-aaaaaaaaaaaaaaaa", "req-bbbbbbbbbbbbbbbb"} {
		if err := c.Admit(verified(t, withID(id)), now); err != nil {
			t.Fatal(err)
		}
	}
	c.SetFloor(now.Add(-time.Hour))
	b, err := c.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var d ReplayCache
	if err := d.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	again, err := d.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if string(again) != string(b) {
		t.Fatal("replay cache does not round-trip byte for byte")
	}
	if err := d.Admit(verified(t, withID("req-bbbbbbbbbbbbbbbb")), now); !errors.Is(err, ErrReplay) {
		t.Fatalf("restored cache forgot an id: %v", err)
	}
	if d.capacity != 10 {
		t.Fatalf("restored capacity %d, want 10", d.capacity)
	}
}

func TestReplayCacheMaxFits(t *testing.T) {
	c, _ := NewReplayCache(MaxReplayCapacity)
	c.init()
	for i := 0; i < MaxReplayCapacity; i++ {
		id := fmt.Sprintf("%064d", i)
		c.entries[id] = replayEntry{content: [32]byte{0xff}, until: 1 << 62}
	}
	b, err := c.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > canon.MaxSize {
		t.Fatalf("full cache encodes to %d bytes, over canon.MaxSize %d", len(b), canon.MaxSize)
	}
	var d ReplayCache
	if err := d.UnmarshalBinary(b); err != nil {
		t.Fatalf("full cache does not restore: %v", err)
	}
}

func TestReplayCacheUnmarshalRejects(t *testing.T) {
	entry := func(id string) replayStateEntry {
		return replayStateEntry{ID: id, Until: 5}
	}
	enc := func(st replayState) []byte {
		b, err := canon.Marshal(&st)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	a, b := "req-aaaaaaaaaaaaaaaa", "req-bbbbbbbbbbbbbbbb"
	tests := []struct {
		name string
		data []byte
		msg  string
	}{
		{"garbage", []byte{0xff}, "replay cache: canon"},
		{"format", enc(replayState{Format: 2, Capacity: 1, Entries: []replayStateEntry{}}), "format 2 unsupported"},
		{"zero capacity", enc(replayState{Format: 1, Entries: []replayStateEntry{}}), "capacity 0 invalid"},
		{"huge capacity", enc(replayState{Format: 1, Capacity: MaxReplayCapacity + 1, Entries: []replayStateEntry{}}), "capacity 8193 invalid"},
		{"negative floor", enc(replayState{Format: 1, Capacity: 1, Floor: -1, Entries: []replayStateEntry{}}), "floor -1"},
		{"null entries", enc(replayState{Format: 1, Capacity: 1}), "null"},
		{"over capacity", enc(replayState{Format: 1, Capacity: 1, Entries: []replayStateEntry{entry(a), entry(b)}}), "2 entries exceed capacity 1"},
		{"unsorted", enc(replayState{Format: 1, Capacity: 2, Entries: []replayStateEntry{entry(b), entry(a)}}), "not sorted"},
		{"duplicate", enc(replayState{Format: 1, Capacity: 2, Entries: []replayStateEntry{entry(a), entry(a)}}), "not sorted and unique"},
		{"bad id", enc(replayState{Format: 1, Capacity: 2, Entries: []replayStateEntry{entry("x")}}), `id "x" invalid`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := NewReplayCache(3)
			if err := c.Admit(verified(t, base()), now); err != nil {
				t.Fatal(err)
			}
			err := c.UnmarshalBinary(tt.data)
			if err == nil || !strings.Contains(err.Error(), tt.msg) || !strings.HasPrefix(err.Error(), "request: replay cache: ") {
				t.Fatalf("error %v, want one containing %q", err, tt.msg)
			}
			if c.Len() != 1 || c.capacity != 3 {
				t.Fatal("failed UnmarshalBinary changed the cache")
			}
		})
	}
}
