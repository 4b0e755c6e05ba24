package policy

import (
	"errors"
	"fmt"
	"math/big"
	"sort"
	"time"

	"github.com/sealsign/sealsign/governance/canon"
)

// Bounds on the velocity state. They keep its sealed encoding under
// canon.MaxSize; when one would be exceeded, Evaluate fails closed
// (VelocityUnavailable) rather than forgetting history.
const (
	MaxVelocityEvents  = 8192
	MaxVelocityBuckets = 1024
	maxScopeLen        = 160
	maxAmountBytes     = 40
	velocityFormat     = 1
)

// Charge is what one allowed request adds to one velocity counter, and the
// limit that counter is held to.
type Charge struct {
	RuleID  string
	LimitID string
	// Scope is "key:<key id>", "client:<client key id>" or
	// "destination:<address>".
	Scope     string
	Window    uint64
	Amount    *big.Int // nil for a limit without an asset (count only)
	Count     uint64
	MaxAmount *big.Int // nil: no amount limit
	MaxCount  uint64   // 0: no count limit
}

// VelocityState holds, per (rule id, limit id, scope value), the events
// inside the window: one per signed request, with its amount. It is keyed
// by ids, not by the policy version, so a policy update keeps the counts of
// every rule and limit whose ids it keeps (and a renamed limit starts from
// zero — renaming is how admins reset a counter, deliberately).
//
// The enclave seals it (MarshalBinary) after every Record; Seq increases
// with every Record so the sealer can bind it to a monotonic counter and
// refuse a rolled-back copy. A VelocityState is not safe for concurrent use.
type VelocityState struct {
	buckets map[bucketKey]*bucket
	events  int
	// Seq counts Record calls over the state's lifetime.
	Seq uint64
}

type bucketKey struct{ rule, limit, scope string }

type bucket struct {
	window uint64
	events []event // sorted by time
}

type event struct {
	t      int64
	amount *big.Int // nil for count-only
}

// NewVelocityState returns an empty state.
func NewVelocityState() *VelocityState {
	return &VelocityState{buckets: map[bucketKey]*bucket{}}
}

// used sums the events of a bucket that are inside [now-window, now]
// (events after now, from a clock that went back, count too: fail closed).
func (b *bucket) used(window uint64, now int64) (*big.Int, uint64) {
	sum, n := new(big.Int), uint64(0)
	if b == nil {
		return sum, 0
	}
	from := now - int64(window)
	i := sort.Search(len(b.events), func(i int) bool { return b.events[i].t > from })
	for _, e := range b.events[i:] {
		if e.amount != nil {
			sum.Add(sum, e.amount)
		}
		n++
	}
	return sum, n
}

// check returns a denial for each of the rule's limits this request would
// exceed.
func (v *VelocityState) check(r *Rule, charges []Charge, now time.Time) []Denial {
	if len(r.Velocity) == 0 {
		return nil
	}
	if v == nil {
		return []Denial{{Code: VelocityUnavailable, RuleID: r.ID, Detail: "rule has velocity limits but no velocity state was given"}}
	}
	var out []Denial
	for _, c := range charges {
		b := v.buckets[bucketKey{c.RuleID, c.LimitID, c.Scope}]
		amt, n := b.used(c.Window, now.Unix())
		if c.MaxCount > 0 && n+c.Count > c.MaxCount {
			out = append(out, Denial{Code: VelocityExceeded, RuleID: c.RuleID, LimitID: c.LimitID,
				Detail: fmt.Sprintf("%s in %d s window: count %d used + %d this request = %d > max %d",
					c.Scope, c.Window, n, c.Count, n+c.Count, c.MaxCount)})
		}
		if c.MaxAmount != nil && c.Amount != nil {
			total := new(big.Int).Add(amt, c.Amount)
			if total.Cmp(c.MaxAmount) > 0 {
				out = append(out, Denial{Code: VelocityExceeded, RuleID: c.RuleID, LimitID: c.LimitID,
					Detail: fmt.Sprintf("%s in %d s window: amount %s used + %s this request = %s > max %s",
						c.Scope, c.Window, amt, c.Amount, total, c.MaxAmount)})
			}
		}
	}
	return out
}

// room reports whether charges fit within the bounds after pruning at the
// time of the charges' evaluation.
func (v *VelocityState) room(charges []Charge, now time.Time) error {
	if len(charges) == 0 {
		return nil
	}
	if v == nil {
		return errors.New("no velocity state was given")
	}
	newBuckets := 0
	seen := map[bucketKey]bool{}
	for _, c := range charges {
		k := bucketKey{c.RuleID, c.LimitID, c.Scope}
		if v.buckets[k] == nil && !seen[k] {
			newBuckets++
		}
		seen[k] = true
		if len(c.Scope) > maxScopeLen {
			return fmt.Errorf("velocity scope %q is longer than %d bytes", c.Scope, maxScopeLen)
		}
	}
	events, buckets := v.events, len(v.buckets)
	if events+len(charges) > MaxVelocityEvents || buckets+newBuckets > MaxVelocityBuckets {
		// Count only what Record's pruning would keep, so a state full of
		// expired events does not lock itself.
		events, buckets = 0, 0
		for k, b := range v.buckets {
			if _, n := b.used(b.window, now.Unix()); n > 0 || seen[k] {
				events += int(n)
				buckets++
			}
		}
	}
	if events+len(charges) > MaxVelocityEvents || buckets+newBuckets > MaxVelocityBuckets {
		return fmt.Errorf("velocity state holds %d events in %d counters; %d more would exceed the bound of %d events or %d counters",
			events, buckets, len(charges), MaxVelocityEvents, MaxVelocityBuckets)
	}
	return nil
}

// Prune drops events outside their bucket's window at now, and empty
// buckets. Record prunes; call Prune when a long quiet period may have
// filled the state with expired events.
func (v *VelocityState) Prune(now time.Time) {
	if v.buckets == nil {
		v.buckets = map[bucketKey]*bucket{}
	}
	from := now.Unix()
	for k, b := range v.buckets {
		cut := from - int64(b.window)
		i := sort.Search(len(b.events), func(i int) bool { return b.events[i].t > cut })
		if i > 0 {
			v.events -= i
			b.events = append([]event(nil), b.events[i:]...)
		}
		if len(b.events) == 0 {
			delete(v.buckets, k)
		}
	}
}

// Record adds the charges of an Allow decision, made on in, to the state;
// call it after the signature is produced. It prunes first.
func (v *VelocityState) Record(in Input, d Decision) error {
	if d.Outcome != Allow {
		return fmt.Errorf("policy: record: decision is %q, only allowed requests are recorded", d.Outcome)
	}
	if d.PayloadHash != in.Summary.PayloadHash {
		return fmt.Errorf("policy: record: decision is for payload %x, input is payload %x", d.PayloadHash[:8], in.Summary.PayloadHash[:8])
	}
	v.Prune(in.Now)
	if err := v.room(d.Charges, in.Now); err != nil {
		return fmt.Errorf("policy: record: %v", err)
	}
	t := in.Now.Unix()
	for _, c := range d.Charges {
		k := bucketKey{c.RuleID, c.LimitID, c.Scope}
		b := v.buckets[k]
		if b == nil {
			b = &bucket{}
			v.buckets[k] = b
		}
		b.window = c.Window
		var amt *big.Int
		if c.Amount != nil {
			amt = new(big.Int).Set(c.Amount)
		}
		for n := uint64(0); n < c.Count; n++ {
			i := sort.Search(len(b.events), func(i int) bool { return b.events[i].t > t })
			b.events = append(b.events, event{})
			copy(b.events[i+1:], b.events[i:])
			b.events[i] = event{t: t, amount: amt}
			v.events++
		}
	}
	v.Seq++
	return nil
}

// Events returns how many events the state holds.
func (v *VelocityState) Events() int { return v.events }

type velocityWire struct {
	Format  uint64       `cbor:"1,keyasint"`
	Seq     uint64       `cbor:"2,keyasint"`
	Buckets []bucketWire `cbor:"3,keyasint"`
}

type bucketWire struct {
	Rule   string      `cbor:"1,keyasint"`
	Limit  string      `cbor:"2,keyasint"`
	Scope  string      `cbor:"3,keyasint"`
	Window uint64      `cbor:"4,keyasint"`
	Events []eventWire `cbor:"5,keyasint"`
}

type eventWire struct {
	_ struct{} `cbor:",toarray"`
	// T is unix seconds.
	T int64
	// Amount is big-endian without leading zeros; absent (null) for a
	// count-only event, empty for an amount of zero.
	Amount []byte
}

// MarshalBinary encodes the state with canon (deterministic: buckets sorted
// by rule, limit and scope; events by time).
func (v *VelocityState) MarshalBinary() ([]byte, error) {
	w := velocityWire{Format: velocityFormat, Seq: v.Seq, Buckets: []bucketWire{}}
	for k, b := range v.buckets {
		bw := bucketWire{Rule: k.rule, Limit: k.limit, Scope: k.scope, Window: b.window, Events: make([]eventWire, len(b.events))}
		for i, e := range b.events {
			bw.Events[i].T = e.t
			if e.amount != nil {
				bw.Events[i].Amount = e.amount.Bytes()
			}
		}
		w.Buckets = append(w.Buckets, bw)
	}
	sort.Slice(w.Buckets, func(i, j int) bool { return lessBucket(&w.Buckets[i], &w.Buckets[j]) })
	b, err := canon.Marshal(w)
	if err != nil {
		return nil, fmt.Errorf("policy: velocity state: %v", err)
	}
	return b, nil
}

func lessBucket(a, b *bucketWire) bool {
	if a.Rule != b.Rule {
		return a.Rule < b.Rule
	}
	if a.Limit != b.Limit {
		return a.Limit < b.Limit
	}
	return a.Scope < b.Scope
}

// UnmarshalBinary decodes strictly: canonical encoding, sorted unique
// buckets, sorted events, minimal amounts and every bound, so one state
// has one encoding.
func (v *VelocityState) UnmarshalBinary(data []byte) error {
	var w velocityWire
	if err := canon.Unmarshal(data, &w); err != nil {
		return fmt.Errorf("policy: velocity state: %v", err)
	}
	if w.Format != velocityFormat {
		return fmt.Errorf("policy: velocity state: format %d unsupported (want %d)", w.Format, velocityFormat)
	}
	if w.Buckets == nil {
		return errors.New("policy: velocity state: counters missing (null)")
	}
	if len(w.Buckets) > MaxVelocityBuckets {
		return fmt.Errorf("policy: velocity state: %d counters, more than %d", len(w.Buckets), MaxVelocityBuckets)
	}
	out := NewVelocityState()
	out.Seq = w.Seq
	for i := range w.Buckets {
		bw := &w.Buckets[i]
		if i > 0 && !lessBucket(&w.Buckets[i-1], bw) {
			return fmt.Errorf("policy: velocity state: counter %d (%q/%q/%q) out of order or repeated", i, bw.Rule, bw.Limit, bw.Scope)
		}
		if !idPattern.MatchString(bw.Rule) || !idPattern.MatchString(bw.Limit) || bw.Scope == "" || len(bw.Scope) > maxScopeLen {
			return fmt.Errorf("policy: velocity state: counter %d has an invalid rule, limit or scope", i)
		}
		if bw.Window < MinWindow || bw.Window > MaxWindow {
			return fmt.Errorf("policy: velocity state: counter %d window %d s outside %d..%d", i, bw.Window, MinWindow, MaxWindow)
		}
		if len(bw.Events) == 0 {
			return fmt.Errorf("policy: velocity state: counter %d is empty", i)
		}
		out.events += len(bw.Events)
		if out.events > MaxVelocityEvents {
			return fmt.Errorf("policy: velocity state: more than %d events", MaxVelocityEvents)
		}
		b := &bucket{window: bw.Window, events: make([]event, len(bw.Events))}
		for j, ew := range bw.Events {
			if j > 0 && ew.T < bw.Events[j-1].T {
				return fmt.Errorf("policy: velocity state: counter %d event %d out of time order", i, j)
			}
			if ew.Amount != nil {
				if len(ew.Amount) > maxAmountBytes || (len(ew.Amount) > 0 && ew.Amount[0] == 0) {
					return fmt.Errorf("policy: velocity state: counter %d event %d amount not minimal or too long", i, j)
				}
				b.events[j].amount = new(big.Int).SetBytes(ew.Amount)
			}
			b.events[j].t = ew.T
		}
		out.buckets[bucketKey{bw.Rule, bw.Limit, bw.Scope}] = b
	}
	*v = *out
	return nil
}
