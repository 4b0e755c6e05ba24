package session

import (
	"bytes"
	"context"
	"crypto/elliptic"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/big"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bnb-chain/tss-lib/v2/tss"

	"github.com/sealsign/sealsign/enclave/api"
	"github.com/sealsign/sealsign/enclave/channel"
)

// Build constructs the tss-lib party for this session. It must not start it.
// The returned result channel yields the protocol's output exactly once.
type Build func(params *tss.Parameters, out chan<- tss.Message) (tss.Party, <-chan any, error)

// Config is everything a session needs. Send must not block for long: it
// hands an envelope to the host for relaying.
type Config struct {
	Me       string
	Keys     *channel.Keys
	Peers    map[string]*channel.Peer // every other party of the proposal, verified
	Proposal *Proposal
	PID      []byte
	Send     func(to string, envelope []byte) error
	Build    Build
	// TypePrefix is the tss-lib message type prefix this protocol accepts,
	// e.g. "binance.tsslib.ecdsa.signing.".
	TypePrefix string
	Curve      elliptic.Curve
	Rand       io.Reader
	// Inactivity aborts the session when no party makes progress for this
	// long; the error names the parties still owed a message.
	Inactivity time.Duration
	// OnStart, if set, is called once the session id is fixed and before
	// this party sends any protocol message; an error aborts the session.
	// The enclave records the session in its audit log here, so no share
	// leaves without its record being durable.
	OnStart func(sessionID []byte) error
	// HelloExtra, if set, travels in this party's (encrypted) hello to
	// every other party; Extras returns what the others sent. A reshare's
	// old committee hands the key's chain code to parties that join.
	HelloExtra []byte
	// Reshare, if set, makes this a tss-lib resharing (see Reshare); Build
	// is then unused and Run returns a *ReshareOutput.
	Reshare *Reshare
}

// MaxHelloExtra bounds the extra bytes one hello carries.
const MaxHelloExtra = 1024

// Session is one protocol run.
type Session struct {
	cfg     Config
	inbox   chan inbound
	local   chan localMsg // resharing: one local role to the other
	done    chan struct{}
	closeMu sync.Once

	// set once when all nonces are in; read by Deliver
	sidMu  sync.Mutex
	sid    []byte
	secret []byte
	extras map[string][]byte
}

type inbound struct {
	hdr channel.Header
	msg *inner
	raw []byte // plaintext, for duplicate detection
}

// inner is the encrypted content of an envelope.
type inner struct {
	Kind      uint8  `cbor:"1,keyasint"`
	Nonce     []byte `cbor:"2,keyasint,omitempty"` // hello
	Type      string `cbor:"3,keyasint,omitempty"` // tss message type
	Broadcast bool   `cbor:"4,keyasint,omitempty"`
	Wire      []byte `cbor:"5,keyasint,omitempty"`
	Origin    string `cbor:"6,keyasint,omitempty"` // echo: who broadcast
	Hash      []byte `cbor:"7,keyasint,omitempty"` // echo: hash of what was received
	Reason    string `cbor:"8,keyasint,omitempty"` // abort
	Extra     []byte `cbor:"9,keyasint,omitempty"` // hello: Config.HelloExtra
}

const (
	kindHello = 1
	kindTSS   = 2
	kindEcho  = 3
	kindAbort = 4
)

// Errors callers can test for.
var (
	ErrDuplicate = errors.New("session: duplicate message")
	ErrConflict  = errors.New("session: conflicting message")
	ErrTimeout   = errors.New("session: timed out")
	ErrFinished  = errors.New("session: already finished")
	ErrInbox     = errors.New("session: inbox full")
	ErrAborted   = errors.New("session: aborted by a peer")
)

// maxReason bounds an abort reason carried to peers.
const maxReason = 512

// inboxSize bounds buffered inbound messages; a whole 16-party keygen with
// echoes stays far below it.
const inboxSize = 4096

// New prepares a session; Run starts it.
func New(cfg Config) *Session {
	return &Session{cfg: cfg, inbox: make(chan inbound, inboxSize), local: make(chan localMsg, inboxSize), done: make(chan struct{})}
}

// Deliver authenticates and decrypts an envelope addressed to this session
// and queues it. It returns an error for envelopes that fail checks; the
// session itself decides about duplicates and conflicts.
func (s *Session) Deliver(env *channel.Envelope) error {
	select {
	case <-s.done:
		return fmt.Errorf("%w: envelope from %q for proposal %x", ErrFinished, env.Header.From, s.cfg.PID[:8])
	default:
	}
	if !bytes.Equal(env.Header.ProposalID, s.cfg.PID) {
		return fmt.Errorf("session: envelope for proposal %x delivered to %x", env.Header.ProposalID[:8], s.cfg.PID[:8])
	}
	peer, ok := s.cfg.Peers[env.Header.From]
	if !ok {
		return fmt.Errorf("session: sender %q is not a party of this session", env.Header.From)
	}
	pt, err := s.cfg.Keys.Open(peer, env)
	if err != nil {
		return err
	}
	m := new(inner)
	if err := api.Unmarshal(pt, m); err != nil {
		return fmt.Errorf("session: malformed message from %q: %v", env.Header.From, err)
	}
	select {
	case s.inbox <- inbound{hdr: env.Header, msg: m, raw: pt}:
		return nil
	case <-s.done:
		return fmt.Errorf("%w: envelope from %q", ErrFinished, env.Header.From)
	default:
		return fmt.Errorf("%w: dropping message from %q", ErrInbox, env.Header.From)
	}
}

// Done is closed when Run has returned.
func (s *Session) Done() <-chan struct{} { return s.done }

// SessionID returns the session id once every party's nonce is in, else nil.
func (s *Session) SessionID() []byte {
	s.sidMu.Lock()
	defer s.sidMu.Unlock()
	return s.sid
}

// Secret returns 32 bytes derived from the session id and every party's
// hello nonce, for label. The nonces travel only inside the parties'
// encrypted envelopes, so the value is known to the session's parties and
// nobody else (the host sees the session id, not the nonces); and since
// it is fixed before any protocol message, it cannot be steered by what
// the protocol outputs. Nil until the session id is fixed.
func (s *Session) Secret(label string) []byte {
	s.sidMu.Lock()
	defer s.sidMu.Unlock()
	if s.secret == nil {
		return nil
	}
	h := sha256.New()
	h.Write([]byte(domainSecret + "\x00" + label + "\x00"))
	h.Write(s.secret)
	return h.Sum(nil)
}

// Extras returns the HelloExtra bytes every other party sent (an empty
// value for a party that sent none); nil until the session id is fixed.
func (s *Session) Extras() map[string][]byte {
	s.sidMu.Lock()
	defer s.sidMu.Unlock()
	return s.extras
}

// runner is Run's single-goroutine state.
type runner struct {
	s       *Session
	cfg     Config
	others  []string
	nonces  map[string][]byte
	extras  map[string][]byte
	sid     []byte
	seen    map[string][32]byte // dedupe key → plaintext hash
	pending []inbound           // tss/echo messages that arrived before the session id
	party   tss.Party
	ids     map[string]*tss.PartyID
	result  <-chan any
	bcasts  map[string]*bcast // origin|type → broadcast awaiting echoes
	out     *outbox
	seq     atomic.Uint64
	stop    chan struct{} // tells the pumps to flush and exit
	pumps   sync.WaitGroup
	// resharing: each committee's party ids and this party's roles
	oldIDs, newIDs   map[string]*tss.PartyID
	oldRole, newRole *role
}

type bcast struct {
	origin, typ string
	hash        []byte
	wire        []byte
	have        bool
	echoes      map[string][]byte
	delivered   bool
}

// Run executes the protocol and returns its output (the value Build's
// result channel produced).
func (s *Session) Run(ctx context.Context) (result any, err error) {
	defer s.closeMu.Do(func() { close(s.done) })
	r := &runner{
		s:      s,
		cfg:    s.cfg,
		nonces: map[string][]byte{},
		extras: map[string][]byte{},
		seen:   map[string][32]byte{},
		bcasts: map[string]*bcast{},
		ids:    map[string]*tss.PartyID{},
	}
	for _, p := range s.cfg.Proposal.Parties {
		if p != s.cfg.Me {
			r.others = append(r.others, p)
		}
	}
	r.out = newOutbox()
	r.stop = make(chan struct{})
	defer func() {
		// Flush: everything tss-lib emitted before the end must still reach
		// the peers (our last round is their input).
		close(r.stop)
		r.pumps.Wait()
		if err != nil && !errors.Is(err, ErrAborted) {
			// Tell the others now rather than let them wait for their
			// inactivity timeout. Best effort: they may be gone.
			reason := err.Error()
			if len(reason) > maxReason {
				reason = reason[:maxReason]
			}
			for _, p := range r.others {
				msg := &inner{Kind: kindAbort, Reason: fmt.Sprintf("party %q: %s", r.cfg.Me, reason)}
				r.out.push(func() error { return r.sendTo(p, r.sid, msg) })
			}
		}
		if ferr := r.out.finish(flushTimeout); ferr != nil && err == nil {
			result, err = nil, ferr
		}
	}()
	return r.run(ctx)
}

func (r *runner) run(ctx context.Context) (any, error) {
	// Hello: contribute a fresh nonce to the session id.
	nonce := make([]byte, 32)
	if _, err := io.ReadFull(r.cfg.Rand, nonce); err != nil {
		return nil, fmt.Errorf("session: draw nonce: %w", err)
	}
	r.nonces[r.cfg.Me] = nonce
	if len(r.cfg.HelloExtra) > MaxHelloExtra {
		return nil, fmt.Errorf("session: hello extra is %d bytes, limit %d", len(r.cfg.HelloExtra), MaxHelloExtra)
	}
	for _, p := range r.others {
		hello := &inner{Kind: kindHello, Nonce: nonce, Extra: r.cfg.HelloExtra}
		r.out.push(func() error { return r.sendTo(p, nil, hello) })
	}
	timer := time.NewTimer(r.cfg.Inactivity)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			if cause := context.Cause(ctx); cause != nil && cause != ctx.Err() {
				return nil, fmt.Errorf("session: %v; %s", cause, r.waitingFor())
			}
			return nil, fmt.Errorf("session: %w; %s", ctx.Err(), r.waitingFor())
		case <-timer.C:
			return nil, fmt.Errorf("%w after %s of inactivity; %s", ErrTimeout, r.cfg.Inactivity, r.waitingFor())
		case res := <-r.result:
			return res, nil
		case l := <-r.s.local:
			if err := r.deliverLocal(l); err != nil {
				return nil, err
			}
			timer.Reset(r.cfg.Inactivity)
		case in := <-r.s.inbox:
			progressed, err := r.handle(in)
			if err != nil {
				return nil, err
			}
			if progressed {
				timer.Reset(r.cfg.Inactivity)
			}
		}
	}
}

// handle processes one authenticated message. It returns an error only for
// faults that must abort the session (conflicts, equivocation, tss errors).
func (r *runner) handle(in inbound) (bool, error) {
	from := in.hdr.From
	key, err := dedupeKey(from, in.msg)
	if err != nil {
		return false, err
	}
	h := sha256.Sum256(in.raw)
	if prev, ok := r.seen[key]; ok {
		if prev == h {
			return false, nil // duplicate: drop (replayed or re-sent)
		}
		return false, fmt.Errorf("%w: party %q sent two different %s; aborting (possible equivocation)", ErrConflict, from, describe(in.msg))
	}
	r.seen[key] = h

	if in.msg.Kind == kindAbort {
		reason := in.msg.Reason
		if len(reason) > maxReason {
			reason = reason[:maxReason]
		}
		return false, fmt.Errorf("%w: %q aborted: %s", ErrAborted, from, reason)
	}
	if in.msg.Kind == kindHello {
		if len(in.hdr.SessionID) != 0 || len(in.msg.Nonce) != 32 || len(in.msg.Extra) > MaxHelloExtra {
			return false, fmt.Errorf("session: malformed hello from %q", from)
		}
		r.nonces[from] = in.msg.Nonce
		r.extras[from] = slices.Clone(in.msg.Extra)
		if len(r.nonces) == len(r.cfg.Proposal.Parties) {
			if err := r.start(); err != nil {
				return false, err
			}
		}
		return true, nil
	}
	if r.sid == nil {
		r.pending = append(r.pending, in)
		return true, nil
	}
	return true, r.process(in)
}

func dedupeKey(from string, m *inner) (string, error) {
	switch m.Kind {
	case kindHello:
		return from + "|hello", nil
	case kindTSS:
		return fmt.Sprintf("%s|tss|%s|%t", from, m.Type, m.Broadcast), nil
	case kindEcho:
		return fmt.Sprintf("%s|echo|%s|%s", from, m.Origin, m.Type), nil
	case kindAbort:
		return from + "|abort", nil
	}
	return "", fmt.Errorf("session: message kind %d from %q unknown", m.Kind, from)
}

func describe(m *inner) string {
	switch m.Kind {
	case kindHello:
		return "hello messages"
	case kindEcho:
		return fmt.Sprintf("echoes of %q's %s", m.Origin, m.Type)
	}
	return fmt.Sprintf("%s messages", m.Type)
}

// start computes the session id and starts the tss-lib party.
func (r *runner) start() error {
	r.sid = sessionID(r.cfg.PID, r.cfg.Proposal.Parties, r.nonces)
	secret := sessionSecret(r.sid, r.cfg.Proposal.Parties, r.nonces)
	r.s.sidMu.Lock()
	r.s.sid, r.s.secret, r.s.extras = r.sid, secret, r.extras
	r.s.sidMu.Unlock()
	if r.cfg.OnStart != nil {
		if err := r.cfg.OnStart(r.sid); err != nil {
			return fmt.Errorf("session: not starting: %w", err)
		}
	}
	if r.cfg.Reshare != nil {
		if err := r.startReshare(); err != nil {
			return err
		}
		return r.drainPending()
	}

	// The committee of the key's epoch (keygen: epoch 0).
	var unsorted tss.UnSortedPartyIDs
	for _, p := range r.cfg.Proposal.Parties {
		unsorted = append(unsorted, tss.NewPartyID(p, p, EpochPartyKey(p, r.cfg.Proposal.Epoch)))
	}
	sorted := tss.SortPartyIDs(unsorted)
	var me *tss.PartyID
	for _, id := range sorted {
		r.ids[id.Id] = id
		if id.Id == r.cfg.Me {
			me = id
		}
	}
	params := tss.NewParameters(r.cfg.Curve, tss.NewPeerContext(sorted), me, len(sorted), r.cfg.Proposal.Threshold)
	params.SetRand(r.cfg.Rand)
	params.SetPartialKeyRand(r.cfg.Rand)
	out := make(chan tss.Message, inboxSize)
	var err error
	r.party, r.result, err = r.build(params, out)
	if err != nil {
		return err
	}
	r.pumps.Add(1)
	go r.pump(out, nil)
	if terr := safeStart(r.party); terr != nil {
		return r.tssError("start", terr)
	}
	return r.drainPending()
}

// drainPending processes the messages that arrived before the session id.
func (r *runner) drainPending() error {
	pend := r.pending
	r.pending = nil
	for _, in := range pend {
		if err := r.process(in); err != nil {
			return err
		}
	}
	return nil
}

func (r *runner) build(params *tss.Parameters, out chan<- tss.Message) (p tss.Party, res <-chan any, err error) {
	defer func() {
		if v := recover(); v != nil {
			p, res, err = nil, nil, fmt.Errorf("session: building the tss party failed: %v", v)
		}
	}()
	return r.cfg.Build(params, out)
}

// pump moves tss-lib's outgoing messages to the outbox. It runs in its own
// goroutine so tss-lib never blocks on its out channel (notes/tss-lib.md §2.4).
// ro is the resharing role whose out channel it drains (nil otherwise).
func (r *runner) pump(out <-chan tss.Message, ro *role) {
	defer r.pumps.Done()
	send := func(m tss.Message) {
		if ro != nil {
			r.out.push(func() error { return r.sendReshare(ro, m) })
			return
		}
		r.out.push(func() error { return r.sendTSS(m) })
	}
	for {
		select {
		case m := <-out:
			send(m)
		case <-r.stop:
			for {
				select {
				case m := <-out:
					send(m)
				default:
					return
				}
			}
		}
	}
}

func (r *runner) sendTSS(m tss.Message) error {
	wire, routing, err := m.WireBytes()
	if err != nil {
		return fmt.Errorf("session: encode tss message: %w", err)
	}
	msg := &inner{Kind: kindTSS, Type: m.Type(), Broadcast: routing.IsBroadcast, Wire: wire}
	if routing.IsBroadcast || len(routing.To) == 0 {
		msg.Broadcast = true
		for _, p := range r.others {
			if err := r.sendTo(p, r.sid, msg); err != nil {
				return err
			}
		}
		return nil
	}
	for _, to := range routing.To {
		if err := r.sendTo(to.Id, r.sid, msg); err != nil {
			return err
		}
	}
	return nil
}

// sendTo seals and sends one message. Sequence numbers are per session and
// sender, for tracing; uniqueness comes from dedupe keys.
func (r *runner) sendTo(to string, sid []byte, m *inner) error {
	peer, ok := r.cfg.Peers[to]
	if !ok {
		return fmt.Errorf("session: no verified identity for party %q", to)
	}
	pt, err := api.Marshal(m)
	if err != nil {
		return err
	}
	env, err := r.cfg.Keys.Seal(peer, channel.Header{ProposalID: r.cfg.PID, SessionID: sid, Seq: r.seq.Add(1)}, pt)
	if err != nil {
		return err
	}
	return r.cfg.Send(to, env)
}

func (r *runner) process(in inbound) error {
	from := in.hdr.From
	if !bytes.Equal(in.hdr.SessionID, r.sid) {
		return fmt.Errorf("session: message from %q carries session id %x, want %x (replayed from another run?)", from, prefix(in.hdr.SessionID), r.sid[:8])
	}
	m := in.msg
	switch m.Kind {
	case kindEcho:
		if m.Origin == from || m.Origin == r.cfg.Me || !slices.Contains(r.others, m.Origin) || len(m.Hash) != 32 {
			return fmt.Errorf("session: malformed echo from %q (origin %q)", from, m.Origin)
		}
		b := r.bcast(m.Origin, m.Type)
		b.echoes[from] = m.Hash
		return r.tryDeliver(b)
	case kindTSS:
		if !strings.HasPrefix(m.Type, r.cfg.TypePrefix) {
			return fmt.Errorf("session: party %q sent a %q message in a %s session", from, m.Type, r.cfg.TypePrefix)
		}
		if !m.Broadcast {
			if r.cfg.Reshare != nil {
				return r.updateReshare(from, m, false)
			}
			return r.update(from, m, false)
		}
		b := r.bcast(from, m.Type)
		b.have = true
		b.wire = m.Wire
		sum := broadcastHash(from, m.Type, m.Wire)
		b.hash = sum
		// Echo what we received to everyone else, so they can compare.
		for _, p := range r.others {
			if p == from {
				continue
			}
			echo := &inner{Kind: kindEcho, Origin: from, Type: m.Type, Hash: sum}
			r.out.push(func() error { return r.sendTo(p, r.sid, echo) })
		}
		return r.tryDeliver(b)
	}
	return fmt.Errorf("session: unexpected message kind %d from %q", m.Kind, from)
}

func broadcastHash(origin, typ string, wire []byte) []byte {
	h := sha256.New()
	h.Write([]byte("sealsign/v1/echo\x00" + origin + "\x00" + typ + "\x00"))
	h.Write(wire)
	return h.Sum(nil)
}

func (r *runner) bcast(origin, typ string) *bcast {
	k := origin + "|" + typ
	b, ok := r.bcasts[k]
	if !ok {
		b = &bcast{origin: origin, typ: typ, echoes: map[string][]byte{}}
		r.bcasts[k] = b
	}
	return b
}

// tryDeliver hands a broadcast to tss-lib once every witness (every party
// other than us and its origin) echoed the hash we received.
func (r *runner) tryDeliver(b *bcast) error {
	for w, h := range b.echoes {
		if b.have && !bytes.Equal(h, b.hash) {
			return fmt.Errorf("%w: party %q broadcast different %s messages (party %q received another one)", ErrConflict, b.origin, b.typ, w)
		}
	}
	if !b.have || b.delivered {
		return nil
	}
	for _, w := range r.others {
		if w == b.origin {
			continue
		}
		if _, ok := b.echoes[w]; !ok {
			return nil
		}
	}
	b.delivered = true
	if r.cfg.Reshare != nil {
		return r.updateReshare(b.origin, &inner{Type: b.typ, Wire: b.wire}, true)
	}
	return r.update(b.origin, &inner{Type: b.typ, Wire: b.wire}, true)
}

func (r *runner) update(from string, m *inner, broadcast bool) error {
	id := r.ids[from]
	parsed, err := tss.ParseWireMessage(m.Wire, id, broadcast)
	if err != nil {
		return fmt.Errorf("session: undecodable tss message from %q: %v", from, err)
	}
	if parsed.Type() != m.Type {
		return fmt.Errorf("session: party %q labelled a %s message as %s", from, parsed.Type(), m.Type)
	}
	if terr := safeUpdate(r.party, parsed); terr != nil {
		return r.tssError("update", terr)
	}
	return nil
}

func (r *runner) tssError(op string, err error) error {
	var te *tss.Error
	if errors.As(err, &te) && len(te.Culprits()) > 0 {
		var names []string
		for _, c := range te.Culprits() {
			names = append(names, c.Id)
		}
		return fmt.Errorf("session: protocol %s failed in round %d, culprits %v: %v", op, te.Round(), names, te.Cause())
	}
	return fmt.Errorf("session: protocol %s failed: %v", op, err)
}

// waitingFor names the parties the session still waits on.
func (r *runner) waitingFor() string {
	missing := map[string]bool{}
	for _, p := range r.cfg.Proposal.Parties {
		if _, ok := r.nonces[p]; !ok {
			missing[p] = true
		}
	}
	if r.party != nil || r.oldRole != nil || r.newRole != nil {
		for _, p := range []tss.Party{r.party, roleParty(r.oldRole), roleParty(r.newRole)} {
			if p == nil {
				continue
			}
			for _, id := range safeWaitingFor(p) {
				if id != r.cfg.Me {
					missing[id] = true
				}
			}
		}
		for _, b := range r.bcasts {
			if b.delivered {
				continue
			}
			if !b.have {
				missing[b.origin] = true
			}
			for _, w := range r.others {
				if _, ok := b.echoes[w]; !ok && w != b.origin {
					missing[w] = true
				}
			}
		}
	}
	if len(missing) == 0 {
		return "waiting on no party (local stall)"
	}
	var names []string
	for p := range missing {
		names = append(names, p)
	}
	sort.Strings(names)
	return fmt.Sprintf("waiting for %s", strings.Join(names, ", "))
}

func roleParty(ro *role) tss.Party {
	if ro == nil {
		return nil
	}
	return ro.party
}

func prefix(b []byte) []byte {
	if len(b) > 8 {
		return b[:8]
	}
	return b
}

// PartyKey is the tss-lib party key of a party id. It must be stable across
// runs: tss-lib finds a party's share index by this key.
func PartyKey(id string) *big.Int {
	h := sha256.Sum256([]byte("sealsign/v1/party-key\x00" + id))
	return new(big.Int).SetBytes(h[:])
}

// recover boundaries: tss-lib v2.0.2 can panic on hostile input (short VSS
// vectors, round-9 decommitments; notes/tss-lib.md §3).

func safeStart(p tss.Party) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("tss-lib panicked: %v", v)
		}
	}()
	if terr := p.Start(); terr != nil {
		return terr
	}
	return nil
}

func safeUpdate(p tss.Party, m tss.ParsedMessage) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("tss-lib panicked on a message from %s: %v", m.GetFrom().Id, v)
		}
	}()
	if _, terr := p.Update(m); terr != nil {
		return terr
	}
	return nil
}

func safeWaitingFor(p tss.Party) (ids []string) {
	defer func() { recover() }()
	for _, id := range p.WaitingFor() {
		ids = append(ids, id.Id)
	}
	return ids
}
