package policy

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// step is one request in a velocity scenario: at offset seconds after t0.
type step struct {
	at   int64
	in   Input
	want Outcome
}

func runSteps(t *testing.T, p *Policy, steps []step) *VelocityState {
	t.Helper()
	vel := NewVelocityState()
	for i, s := range steps {
		s.in.Now = t0.Add(time.Duration(s.at) * time.Second)
		d := p.Evaluate(s.in, vel)
		if d.Outcome != s.want {
			t.Fatalf("step %d at +%ds: outcome %s, want %s: %v", i, s.at, d.Outcome, s.want, d.Err())
		}
		if d.Outcome == Allow {
			if err := vel.Record(s.in, d); err != nil {
				t.Fatalf("step %d: record: %v", i, err)
			}
		}
		// The sealed state round-trips at every step.
		b, err := vel.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var again VelocityState
		if err := again.UnmarshalBinary(b); err != nil {
			t.Fatalf("step %d: unmarshal: %v", i, err)
		}
		b2, _ := again.MarshalBinary()
		if !bytes.Equal(b, b2) {
			t.Fatalf("step %d: state encoding does not round-trip", i)
		}
		vel = &again
	}
	return vel
}

func TestVelocityCountDefaultPolicy(t *testing.T) {
	p := defaultPolicy(t)
	small := func() Input { return evmInput(transferSpec{"ETH", evmA, "1", false}) }
	steps := []step{
		{0, small(), Allow}, {10, small(), Allow}, {20, small(), Allow}, {30, small(), Allow}, {40, small(), Allow},
		{50, small(), Deny},   // 6th in 10 minutes
		{599, small(), Deny},  // the first is still inside (599 < 600)
		{600, small(), Allow}, // the first left the window
		{601, small(), Deny},
		{1300, small(), Allow},
	}
	vel := runSteps(t, p, steps)
	if vel.Seq != 7 {
		t.Fatalf("seq %d, want 7 records", vel.Seq)
	}
	// The denial names the rule, limit, window and counts.
	in := small()
	in.Now = t0.Add(1301 * time.Second)
	vel2 := NewVelocityState()
	for i := 0; i < 5; i++ {
		d := p.Evaluate(in, vel2)
		if err := vel2.Record(in, d); err != nil {
			t.Fatal(err)
		}
	}
	d := p.Evaluate(in, vel2)
	x, ok := findDenial(d, VelocityExceeded, "eth-small")
	if !ok || x.LimitID != "key-rate" || !strings.Contains(x.Detail, "key:key-1 in 600 s window: count 5 used + 1 this request = 6 > max 5") {
		t.Fatalf("got %+v (%v)", x, d.Err())
	}
}

func TestVelocityAmountAndScopes(t *testing.T) {
	limit := func(scope string) Rule {
		return Rule{ID: "eth", Effect: EffectAllow, Condition: "request.transfers.all(t, t.asset == 'ETH')", Velocity: []VelocityLimit{
			{ID: "amount", Window: 3600, Scope: scope, Asset: "ETH", MaxAmount: "100"},
		}}
	}
	send := func(to, amount string) Input { return evmInput(transferSpec{"ETH", to, amount, false}) }
	byClient := func(client, amount string) Input { in := send(evmA, amount); in.ClientID = client; return in }
	t.Run("key amount trips on the third", func(t *testing.T) {
		runSteps(t, newPolicy(t, limit(ScopeKey)), []step{
			{0, send(evmA, "40"), Allow}, {1, send(evmB, "40"), Allow}, {2, send(evmA, "21"), Deny},
			{3, send(evmA, "20"), Allow}, {4, send(evmA, "1"), Deny},
		})
	})
	t.Run("key amount recovers as the window slides", func(t *testing.T) {
		runSteps(t, newPolicy(t, limit(ScopeKey)), []step{
			{0, send(evmA, "40"), Allow}, {1, send(evmB, "40"), Allow},
			{3599, send(evmA, "21"), Deny},  // both still inside
			{3600, send(evmA, "60"), Allow}, // t=0 left: 40 + 60 = 100
			{3601, send(evmA, "1"), Allow},  // t=1 left: 60 + 1
			{3602, send(evmA, "40"), Deny},  // 61 + 40 = 101
		})
	})
	t.Run("exactly the max is allowed", func(t *testing.T) {
		runSteps(t, newPolicy(t, limit(ScopeKey)), []step{{0, send(evmA, "100"), Allow}, {1, send(evmA, "0"), Allow}, {2, send(evmA, "1"), Deny}})
	})
	t.Run("amount above 2^64", func(t *testing.T) {
		r := limit(ScopeKey)
		r.Velocity[0].MaxAmount = "36893488147419103232" // 2^65
		runSteps(t, newPolicy(t, r), []step{{0, send(evmA, "18446744073709551616"), Allow}, {1, send(evmA, "18446744073709551616"), Allow}, {2, send(evmA, "1"), Deny}})
	})
	t.Run("per destination", func(t *testing.T) {
		runSteps(t, newPolicy(t, limit(ScopeDestination)), []step{
			{0, send(evmA, "100"), Allow}, {1, send(evmB, "100"), Allow}, {2, send(evmA, "1"), Deny}, {3, send(evmB, "1"), Deny}, {4, send(evmOther, "1"), Allow},
		})
	})
	t.Run("per client", func(t *testing.T) {
		runSteps(t, newPolicy(t, limit(ScopeClient)), []step{
			{0, byClient("c1", "100"), Allow}, {1, byClient("c2", "50"), Allow}, {2, byClient("c1", "1"), Deny}, {3, byClient("c2", "50"), Allow}, {4, byClient("c2", "1"), Deny},
		})
	})
	t.Run("asset filter ignores other assets", func(t *testing.T) {
		r := Rule{ID: "any", Effect: EffectAllow, Condition: "true", Velocity: []VelocityLimit{{ID: "eth", Window: 60, Scope: ScopeKey, Asset: "ETH", MaxAmount: "10", MaxCount: 2}}}
		runSteps(t, newPolicy(t, r), []step{
			{0, evmInput(transferSpec{usdc, evmA, "1000000", false}), Allow},
			{1, evmInput(transferSpec{usdc, evmA, "1000000", false}), Allow},
			{2, evmInput(transferSpec{usdc, evmA, "1000000", false}), Allow},
			{3, send(evmA, "5"), Allow}, {4, send(evmA, "5"), Allow}, {5, send(evmA, "0"), Deny}, // count 2
		})
	})
}

func TestVelocityBTCChangeExcluded(t *testing.T) {
	p := defaultPolicy(t)
	// 0.5 BTC per key per day; each request pays 0.09 BTC plus a 1 BTC change output.
	pay := func() Input {
		return btcInput("1000", transferSpec{"BTC", btcA, "9000000", false}, transferSpec{"BTC", btcOther, "100000000", true})
	}
	var steps []step
	for i := int64(0); i < 5; i++ {
		steps = append(steps, step{i * 601, pay(), Allow}) // 5 × 0.09 = 0.45 BTC
	}
	steps = append(steps, step{5 * 601, pay(), Deny}) // 0.54 > 0.5
	steps = append(steps, step{86400 + 1, pay(), Allow})
	runSteps(t, p, steps)
}

func TestVelocityNilStateFailsClosed(t *testing.T) {
	p := defaultPolicy(t)
	d := p.Evaluate(evmInput(transferSpec{"ETH", evmA, "1", false}), nil)
	if _, ok := findDenial(d, VelocityUnavailable, "eth-small"); d.Outcome != Deny || !ok {
		t.Fatalf("got %v", d.Err())
	}
}

func TestVelocityBound(t *testing.T) {
	r := Rule{ID: "any", Effect: EffectAllow, Condition: "true", Velocity: []VelocityLimit{{ID: "n", Window: 60, Scope: ScopeDestination, MaxCount: 5}}}
	p := newPolicy(t, r)
	vel := NewVelocityState()
	in := evmInput()
	for i := 0; i < MaxVelocityBuckets; i++ {
		in.Summary.Transfers = []txTransfer{{Action: "transfer", Asset: "ETH", To: "dst-" + itoa(i), Amount: amt("1")}}
		d := p.Evaluate(in, vel)
		if d.Outcome != Allow {
			t.Fatalf("request %d: %v", i, d.Err())
		}
		if err := vel.Record(in, d); err != nil {
			t.Fatal(err)
		}
	}
	in.Summary.Transfers = []txTransfer{{Action: "transfer", Asset: "ETH", To: "one-too-many", Amount: amt("1")}}
	d := p.Evaluate(in, vel)
	if d.Outcome != Deny || d.Denials[0].Code != VelocityUnavailable {
		t.Fatalf("full state must fail closed, got %v", d.Err())
	}
	// After the window, the expired counters do not block.
	in.Now = t0.Add(61 * time.Second)
	if d := p.Evaluate(in, vel); d.Outcome != Allow {
		t.Fatalf("expired state still blocks: %v", d.Err())
	}
	b, err := vel.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 1<<20 {
		t.Fatalf("state encoding %d bytes", len(b))
	}
}

func TestVelocityStateUpdateKeepsCounts(t *testing.T) {
	r := Rule{ID: "r", Effect: EffectAllow, Condition: "true", Velocity: []VelocityLimit{{ID: "n", Window: 600, Scope: ScopeKey, MaxCount: 2}}}
	p1 := newPolicy(t, r)
	vel := NewVelocityState()
	in := evmInput(transferSpec{"ETH", evmA, "1", false})
	for i := 0; i < 2; i++ {
		d := p1.Evaluate(in, vel)
		if err := vel.Record(in, d); err != nil {
			t.Fatal(err)
		}
	}
	r.Description = "changed wording, same ids"
	p2 := newPolicy(t, r)
	p2.Version = 2
	if d := p2.Evaluate(in, vel); d.Outcome != Deny {
		t.Fatalf("updated policy with the same ids forgot the counts: %s", d.Outcome)
	}
	r.Velocity[0].ID = "n2"
	p3 := newPolicy(t, r)
	if d := p3.Evaluate(in, vel); d.Outcome != Allow {
		t.Fatalf("renamed limit should start at zero: %v", d.Err())
	}
}

func TestRecordRefuses(t *testing.T) {
	p := defaultPolicy(t)
	vel := NewVelocityState()
	in := evmInput(transferSpec{"ETH", evmOther, "1", false})
	d := p.Evaluate(in, vel)
	if err := vel.Record(in, d); err == nil {
		t.Fatal("recorded a deny")
	}
	in = evmInput(transferSpec{"ETH", evmA, "1", false})
	d = p.Evaluate(in, vel)
	other := btcInput("1")
	if err := vel.Record(other, d); err == nil || !strings.Contains(err.Error(), "decision is for payload") {
		t.Fatalf("recorded a decision for another payload: %v", err)
	}
}

func TestVelocityStateUnmarshalRefuses(t *testing.T) {
	good := func() []byte {
		p := newPolicy(t, Rule{ID: "r", Effect: EffectAllow, Condition: "true", Velocity: []VelocityLimit{
			{ID: "n", Window: 600, Scope: ScopeDestination, Asset: "ETH", MaxAmount: "100"}}})
		vel := NewVelocityState()
		for _, to := range []string{evmA, evmB} {
			in := evmInput(transferSpec{"ETH", to, "1", false})
			if err := vel.Record(in, p.Evaluate(in, vel)); err != nil {
				t.Fatal(err)
			}
		}
		b, err := vel.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}()
	var v VelocityState
	if err := v.UnmarshalBinary(good); err != nil {
		t.Fatal(err)
	}
	if v.Events() != 2 {
		t.Fatalf("events %d", v.Events())
	}
	tests := map[string][]byte{
		"empty":     {},
		"truncated": good[:len(good)-1],
		"trailing":  append(append([]byte{}, good...), 0),
		"not a map": {0x80},
		"format 2":  bytes.Replace(good, []byte{0xa3, 0x01, 0x01}, []byte{0xa3, 0x01, 0x02}, 1),
	}
	// Swap the two destination scopes' order by renaming the first past the second.
	i := bytes.Index(good, []byte("destination:"+evmA))
	if i < 0 {
		t.Fatal("scope not found")
	}
	swapped := append([]byte{}, good...)
	copy(swapped[i+len("destination:"):], "0xz")
	tests["buckets out of order"] = swapped
	for name, b := range tests {
		t.Run(name, func(t *testing.T) {
			var v VelocityState
			if err := v.UnmarshalBinary(b); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}
