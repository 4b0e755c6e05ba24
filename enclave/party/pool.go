package party

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"sync"
	"time"

	ecdsakeygen "github.com/bnb-chain/tss-lib/v2/ecdsa/keygen"

	"github.com/sealsign/sealsign/enclave/api"
	"github.com/sealsign/sealsign/hsm"
)

// PoolConfig sizes the Paillier pre-parameter pool.
type PoolConfig struct {
	// Goal is how many sets the background generator keeps ready.
	Goal int
	// Concurrency for safe-prime generation (default: all CPUs).
	Concurrency int
	// NoRefill stops the generator once Goal sets have been made, so a demo
	// or benchmark does not compete with background prime generation.
	NoRefill bool
	// InsecureFixture, when non-nil, supplies sets instead of generating
	// them. Fixture sets are public (their Paillier factorisation is in the
	// repository): only tests and dev clusters may use them.
	InsecureFixture []*ecdsakeygen.LocalPreParams
}

// preParamsEntry is one ready set and the blob name it is stored under.
type preParamsEntry struct {
	name string
	pp   *ecdsakeygen.LocalPreParams
}

func (p *preParamsEntry) params() *ecdsakeygen.LocalPreParams {
	if p == nil {
		return nil
	}
	return p.pp
}

// pool keeps sealed pre-parameter sets ready so keygen never waits ~20 s per
// party for safe primes on the request path (notes/tss-lib.md, G4). Sets are
// sealed and stored by the host, so they survive restarts; each is used once.
type pool struct {
	cfg PoolConfig
	e   *Enclave

	mu      sync.Mutex
	ready   []*preParamsEntry
	wake    chan struct{}
	changed chan struct{} // closed and replaced whenever ready grows
	started bool
	lastErr error
	fixture int
	made    int
}

func newPool(cfg PoolConfig, e *Enclave) *pool {
	return &pool{cfg: cfg, e: e, wake: make(chan struct{}, 1), changed: make(chan struct{})}
}

func (p *pool) counts() (int, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.ready), p.cfg.Goal
}

func binding(me string) hsm.Binding {
	return hsm.Binding{PartyID: me, KeyID: "pool", Epoch: 0, Kind: kindPreParams}
}

func (p *pool) restore(me string, b api.NamedBlob) error {
	pt, err := hsm.OpenBlob(p.e.cfg.Sealer, binding(me), b.Blob)
	if err != nil {
		return err
	}
	defer clear(pt)
	pp := new(ecdsakeygen.LocalPreParams)
	if err := json.Unmarshal(pt, pp); err != nil {
		return fmt.Errorf("party: pre-params blob: %v", err)
	}
	if !pp.ValidateWithProof() {
		return fmt.Errorf("party: pre-params blob holds an invalid set")
	}
	p.add(&preParamsEntry{name: b.Name, pp: pp})
	return nil
}

func (p *pool) add(e *preParamsEntry) {
	p.mu.Lock()
	p.ready = append(p.ready, e)
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
}

// start launches the background generator once the host has restored what
// it had stored.
func (p *pool) start(me string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.started || p.cfg.Goal <= 0 {
		return
	}
	p.started = true
	go p.loop(me)
}

func (p *pool) loop(me string) {
	for {
		p.mu.Lock()
		need := len(p.ready) < p.cfg.Goal && !(p.cfg.NoRefill && p.made+len(p.ready) >= p.cfg.Goal)
		p.mu.Unlock()
		if !need {
			<-p.wake
			continue
		}
		if err := p.fill(me); err != nil {
			p.mu.Lock()
			p.lastErr = err
			p.mu.Unlock()
			p.e.cfg.Log.Error("pre-params pool", "err", err)
			time.Sleep(5 * time.Second)
		}
	}
}

func (p *pool) fill(me string) error {
	var pp *ecdsakeygen.LocalPreParams
	p.mu.Lock()
	if p.fixture < len(p.cfg.InsecureFixture) {
		pp = p.cfg.InsecureFixture[p.fixture]
		p.fixture++
	}
	p.mu.Unlock()
	start := time.Now()
	if pp == nil {
		conc := p.cfg.Concurrency
		if conc <= 0 {
			conc = runtime.NumCPU()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
		defer cancel()
		var err error
		pp, err = ecdsakeygen.GeneratePreParamsWithContextAndRandom(ctx, p.e.cfg.Rand, conc)
		if err != nil {
			return fmt.Errorf("party: generate pre-params: %w", err)
		}
	}
	pt, err := json.Marshal(pp)
	if err != nil {
		return err
	}
	blob, err := hsm.SealBlob(p.e.cfg.Sealer, binding(me), pt)
	clear(pt)
	if err != nil {
		return fmt.Errorf("party: seal pre-params: %w", err)
	}
	id := make([]byte, 8)
	if _, err := io.ReadFull(p.e.cfg.Rand, id); err != nil {
		return err
	}
	name := preparamsBlobPrefix + hex.EncodeToString(id)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := p.e.callHost(ctx, api.MethodStore, api.StoreRequest{Blob: api.NamedBlob{Name: name, Blob: blob}}, nil); err != nil {
		return fmt.Errorf("party: store pre-params: %w", err)
	}
	p.mu.Lock()
	p.made++
	p.mu.Unlock()
	p.add(&preParamsEntry{name: name, pp: pp})
	p.e.cfg.Log.Info("pre-params ready", "ms", time.Since(start).Milliseconds())
	return nil
}

// take removes one set for a keygen. The host deletes its blob before the
// set is used, so no set ever serves two keys, even across a crash.
func (p *pool) take(ctx context.Context) (*preParamsEntry, error) {
	for {
		p.mu.Lock()
		if len(p.ready) > 0 {
			e := p.ready[0]
			p.ready = p.ready[1:]
			p.mu.Unlock()
			select {
			case p.wake <- struct{}{}:
			default:
			}
			if err := p.e.callHost(ctx, api.MethodDelete, api.DeleteRequest{Name: e.name}, nil); err != nil {
				return nil, api.Errorf(api.CodeUnavailable, "party: host could not delete used pre-params %s: %v", e.name, err)
			}
			return e, nil
		}
		ch, lastErr, goal := p.changed, p.lastErr, p.cfg.Goal
		p.mu.Unlock()
		if goal <= 0 {
			return nil, api.Errorf(api.CodeUnavailable, "party: pre-params pool disabled (goal 0); ecdsa keygen impossible")
		}
		select {
		case <-ch:
		case <-ctx.Done():
			msg := "still generating"
			if lastErr != nil {
				msg = "last attempt failed: " + lastErr.Error()
			}
			return nil, api.Errorf(api.CodeUnavailable, "party: no Paillier pre-params ready (%s); retry shortly", msg)
		}
	}
}
