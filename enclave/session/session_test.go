package session

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"math/big"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bnb-chain/tss-lib/v2/common"
	ecdsakeygen "github.com/bnb-chain/tss-lib/v2/ecdsa/keygen"
	ecdsasigning "github.com/bnb-chain/tss-lib/v2/ecdsa/signing"
	eddsakeygen "github.com/bnb-chain/tss-lib/v2/eddsa/keygen"
	eddsasigning "github.com/bnb-chain/tss-lib/v2/eddsa/signing"
	"github.com/bnb-chain/tss-lib/v2/tss"
	"github.com/decred/dcrd/dcrec/edwards/v2"

	"github.com/sealsign/sealsign/enclave/api"
	"github.com/sealsign/sealsign/enclave/channel"
)

// relay is an in-memory stand-in for the hosts between sessions; tamper
// rewrites, duplicates or drops envelopes in flight, as a hostile host would.
type relay struct {
	mu       sync.Mutex
	sessions map[string]*Session
	tamper   func(from, to string, env []byte) [][]byte
	rejected []error
}

func (n *relay) send(from string) func(to string, env []byte) error {
	return func(to string, env []byte) error {
		n.mu.Lock()
		s := n.sessions[to]
		tamper := n.tamper
		n.mu.Unlock()
		envs := [][]byte{env}
		if tamper != nil {
			envs = tamper(from, to, env)
		}
		for _, e := range envs {
			parsed, err := channel.ParseEnvelope(e)
			if err == nil {
				err = s.Deliver(parsed)
			}
			if err != nil {
				n.mu.Lock()
				n.rejected = append(n.rejected, err)
				n.mu.Unlock()
			}
		}
		return nil
	}
}

type member struct {
	id   string
	keys *channel.Keys
}

func members(t *testing.T, ids ...string) []member {
	t.Helper()
	var ms []member
	for _, id := range ids {
		k, err := channel.NewKeys(id, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		ms = append(ms, member{id, k})
	}
	return ms
}

func newProposal(kind, alg string, ids []string, msg []byte) (*Proposal, []byte) {
	nonce := make([]byte, 32)
	rand.Read(nonce)
	p := &Proposal{Version: 1, Kind: kind, Algorithm: alg, KeyID: "k1", Parties: ids, Threshold: 1, Message: msg,
		Coordinator: ids[0], Nonce: nonce, CreatedMS: time.Now().UnixMilli()}
	body, _ := api.Marshal(p)
	return p, ProposalID(body)
}

type outcome struct {
	res any
	err error
}

type proto struct {
	build  Build
	prefix string
	curve  elliptic.Curve
}

// runAll runs one session per member over n and returns each outcome.
func runAll(t *testing.T, n *relay, ms []member, p *Proposal, pid []byte, inactivity time.Duration, mk func(id string) proto) map[string]outcome {
	t.Helper()
	n.sessions = map[string]*Session{}
	for _, me := range ms {
		peers := map[string]*channel.Peer{}
		for _, o := range ms {
			if o.id != me.id {
				pe, _ := channel.NewPeer(o.keys.Public())
				peers[o.id] = pe
			}
		}
		pr := mk(me.id)
		n.sessions[me.id] = New(Config{Me: me.id, Keys: me.keys, Peers: peers, Proposal: p, PID: pid, Send: n.send(me.id),
			Build: pr.build, TypePrefix: pr.prefix, Curve: pr.curve, Rand: rand.Reader, Inactivity: inactivity})
	}
	var mu sync.Mutex
	out := map[string]outcome{}
	var wg sync.WaitGroup
	for _, me := range ms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			res, err := n.sessions[me.id].Run(ctx)
			mu.Lock()
			out[me.id] = outcome{res, err}
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

func fwd[T any](end <-chan T) <-chan any {
	res := make(chan any, 1)
	go func() { res <- <-end }()
	return res
}

func eddsaKeygen(string) proto {
	return proto{func(params *tss.Parameters, out chan<- tss.Message) (tss.Party, <-chan any, error) {
		end := make(chan *eddsakeygen.LocalPartySaveData, 1)
		return eddsakeygen.NewLocalParty(params, out, end), fwd(end), nil
	}, "binance.tsslib.eddsa.keygen.", tss.Edwards()}
}

func eddsaSign(keys map[string]*eddsakeygen.LocalPartySaveData, msg []byte) func(string) proto {
	return func(id string) proto {
		return proto{func(params *tss.Parameters, out chan<- tss.Message) (tss.Party, <-chan any, error) {
			end := make(chan *common.SignatureData, 1)
			return eddsasigning.NewLocalParty(new(big.Int).SetBytes(msg), params, *keys[id], out, end, len(msg)), fwd(end), nil
		}, "binance.tsslib.eddsa.signing.", tss.Edwards()}
	}
}

// eddsaKeys runs a real 3-party EdDSA keygen over the session layer.
func eddsaKeys(t *testing.T, ms []member) map[string]*eddsakeygen.LocalPartySaveData {
	t.Helper()
	p, pid := newProposal(api.KindKeygen, api.AlgEdDSAEd25519, []string{"a", "b", "c"}, nil)
	out := runAll(t, &relay{}, ms, p, pid, 30*time.Second, eddsaKeygen)
	keys := map[string]*eddsakeygen.LocalPartySaveData{}
	for id, o := range out {
		if o.err != nil {
			t.Fatalf("keygen on %s: %v", id, o.err)
		}
		keys[id] = o.res.(*eddsakeygen.LocalPartySaveData)
	}
	return keys
}

func edPub(k *eddsakeygen.LocalPartySaveData) ed25519.PublicKey {
	pk := edwards.PublicKey{Curve: edwards.Edwards(), X: k.EDDSAPub.X(), Y: k.EDDSAPub.Y()}
	return pk.Serialize()
}

func TestEdDSAKeygenAndSign(t *testing.T) {
	ms := members(t, "a", "b", "c")
	keys := eddsaKeys(t, ms)
	pub := edPub(keys["a"])
	for _, id := range []string{"b", "c"} {
		if !bytes.Equal(edPub(keys[id]), pub) {
			t.Fatalf("party %s has a different public key", id)
		}
	}
	msg := []byte("\x00\x00leading zeros must survive")
	for _, signers := range [][]string{{"a", "b"}, {"b", "c"}, {"a", "c"}} {
		p, pid := newProposal(api.KindSign, api.AlgEdDSAEd25519, signers, msg)
		var sub []member
		for _, m := range ms {
			if strings.Contains(strings.Join(signers, ","), m.id) {
				sub = append(sub, m)
			}
		}
		out := runAll(t, &relay{}, sub, p, pid, 30*time.Second, eddsaSign(keys, msg))
		for id, o := range out {
			if o.err != nil {
				t.Fatalf("signers %v: %s: %v", signers, id, o.err)
			}
			sig := o.res.(*common.SignatureData).Signature
			if !ed25519.Verify(pub, msg, sig) {
				t.Fatalf("signers %v: signature from %s does not verify under crypto/ed25519", signers, id)
			}
		}
	}
}

// TestHostileRelay: what a compromised host can do to envelopes must end in
// a precise refusal or a harmless drop, never a wrong result.
func TestHostileRelay(t *testing.T) {
	ms := members(t, "a", "b", "c")
	keys := eddsaKeys(t, ms)
	msg := []byte("pay 1")
	signers := []string{"a", "b"}

	t.Run("duplicated envelopes are dropped", func(t *testing.T) {
		p, pid := newProposal(api.KindSign, api.AlgEdDSAEd25519, signers, msg)
		n := &relay{tamper: func(_, _ string, env []byte) [][]byte { return [][]byte{env, env} }}
		out := runAll(t, n, ms[:2], p, pid, 20*time.Second, eddsaSign(keys, msg))
		for id, o := range out {
			if o.err != nil {
				t.Fatalf("%s: replayed duplicates broke the session: %v", id, o.err)
			}
		}
	})

	t.Run("envelope replayed into another session", func(t *testing.T) {
		p1, pid1 := newProposal(api.KindSign, api.AlgEdDSAEd25519, signers, msg)
		var captured [][]byte
		var mu sync.Mutex
		n := &relay{tamper: func(_, _ string, env []byte) [][]byte {
			mu.Lock()
			captured = append(captured, env)
			mu.Unlock()
			return [][]byte{env}
		}}
		runAll(t, n, ms[:2], p1, pid1, 20*time.Second, eddsaSign(keys, msg))
		// Same signers, same message, new run: the old envelopes name another
		// proposal and session and must be refused.
		p2, pid2 := newProposal(api.KindSign, api.AlgEdDSAEd25519, signers, msg)
		n2 := &relay{}
		n2.sessions = map[string]*Session{}
		peers := map[string]*channel.Peer{}
		pa, _ := channel.NewPeer(ms[0].keys.Public())
		peers["a"] = pa
		pr := eddsaSign(keys, msg)("b")
		s := New(Config{Me: "b", Keys: ms[1].keys, Peers: peers, Proposal: p2, PID: pid2, Send: func(string, []byte) error { return nil },
			Build: pr.build, TypePrefix: pr.prefix, Curve: pr.curve, Rand: rand.Reader, Inactivity: time.Second})
		refused := 0
		for _, e := range captured {
			env, _ := channel.ParseEnvelope(e)
			if env.Header.To != "b" {
				continue
			}
			if err := s.Deliver(env); err != nil && strings.Contains(err.Error(), "proposal") {
				refused++
			}
		}
		if refused == 0 {
			t.Fatal("no replayed envelope was refused")
		}
	})

	t.Run("conflicting message aborts naming the sender", func(t *testing.T) {
		p, pid := newProposal(api.KindSign, api.AlgEdDSAEd25519, signers, msg)
		var once sync.Once
		n := &relay{}
		n.tamper = func(from, to string, env []byte) [][]byte {
			if from != "a" || to != "b" {
				return [][]byte{env}
			}
			var extra [][]byte
			once.Do(func() {
				// Forge, as party a, a second hello with a different nonce.
				e, _ := channel.ParseEnvelope(env)
				if e.Header.SessionID != nil {
					return
				}
				pb, _ := channel.NewPeer(ms[1].keys.Public())
				pt, _ := api.Marshal(&inner{Kind: kindHello, Nonce: bytes.Repeat([]byte{9}, 32)})
				forged, _ := ms[0].keys.Seal(pb, channel.Header{ProposalID: pid, Seq: 99}, pt)
				extra = append(extra, forged)
			})
			return append([][]byte{env}, extra...)
		}
		out := runAll(t, n, ms[:2], p, pid, 5*time.Second, eddsaSign(keys, msg))
		err := out["b"].err
		if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), `"a"`) {
			t.Fatalf("b's error = %v, want a conflict naming party a", err)
		}
	})

	t.Run("an aborting party tells the others at once", func(t *testing.T) {
		p, pid := newProposal(api.KindSign, api.AlgEdDSAEd25519, signers, msg)
		var once sync.Once
		n := &relay{}
		n.tamper = func(from, to string, env []byte) [][]byte {
			if from != "a" || to != "b" {
				return [][]byte{env}
			}
			// A forged second hello from a makes b abort with a conflict;
			// a must then hear about it long before its 20 s timeout.
			var extra [][]byte
			once.Do(func() {
				pb, _ := channel.NewPeer(ms[1].keys.Public())
				pt, _ := api.Marshal(&inner{Kind: kindHello, Nonce: bytes.Repeat([]byte{9}, 32)})
				forged, _ := ms[0].keys.Seal(pb, channel.Header{ProposalID: pid, Seq: 99}, pt)
				extra = append(extra, forged)
			})
			return append([][]byte{env}, extra...)
		}
		start := time.Now()
		out := runAll(t, n, ms[:2], p, pid, 20*time.Second, eddsaSign(keys, msg))
		if err := out["a"].err; !errors.Is(err, ErrAborted) || !strings.Contains(err.Error(), `"b" aborted`) || !strings.Contains(err.Error(), "conflicting") {
			t.Fatalf("a's error = %v, want b's abort with its reason", err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("a learned of the abort after %s; want well before its 20 s timeout", d)
		}
	})

	t.Run("dropped messages time out naming the silent party", func(t *testing.T) {
		p, pid := newProposal(api.KindSign, api.AlgEdDSAEd25519, signers, msg)
		n := &relay{tamper: func(from, _ string, env []byte) [][]byte {
			if from == "b" {
				return nil
			}
			return [][]byte{env}
		}}
		out := runAll(t, n, ms[:2], p, pid, 2*time.Second, eddsaSign(keys, msg))
		err := out["a"].err
		if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "waiting for b") {
			t.Fatalf("a's error = %v, want a timeout waiting for b", err)
		}
	})

	t.Run("flipped ciphertext is refused", func(t *testing.T) {
		p, pid := newProposal(api.KindSign, api.AlgEdDSAEd25519, signers, msg)
		n := &relay{tamper: func(_, _ string, env []byte) [][]byte {
			e, _ := channel.ParseEnvelope(env)
			e.Ciphertext[len(e.Ciphertext)/2] ^= 1
			b, _ := api.Marshal(e)
			return [][]byte{b}
		}}
		runAll(t, n, ms[:2], p, pid, time.Second, eddsaSign(keys, msg))
		if len(n.rejected) == 0 || !errors.Is(n.rejected[0], channel.ErrSignature) {
			t.Fatalf("rejections = %v, want signature failures", n.rejected)
		}
	})
}

// TestBroadcastEquivocation: a party that sends different round-1
// broadcasts to different parties is caught by the echo check.
func TestBroadcastEquivocation(t *testing.T) {
	ms := members(t, "a", "b", "c")
	p, pid := newProposal(api.KindKeygen, api.AlgEdDSAEd25519, []string{"a", "b", "c"}, nil)
	var once sync.Once
	n := &relay{}
	n.tamper = func(from, to string, env []byte) [][]byte {
		if from != "a" || to != "c" {
			return [][]byte{env}
		}
		e, _ := channel.ParseEnvelope(env)
		pt, err := ms[2].keys.Open(mustPeer(ms[0]), e)
		if err != nil {
			return [][]byte{env}
		}
		var m inner
		api.Unmarshal(pt, &m)
		if m.Kind != kindTSS || !m.Broadcast {
			return [][]byte{env}
		}
		changed := false
		once.Do(func() {
			m.Wire = append([]byte(nil), m.Wire...)
			m.Wire[len(m.Wire)-1] ^= 1 // a (as the equivocator) tells c something else
			changed = true
		})
		if !changed {
			return [][]byte{env}
		}
		pt2, _ := api.Marshal(&m)
		forged, _ := ms[0].keys.Seal(mustPeer(ms[2]), e.Header, pt2)
		return [][]byte{forged}
	}
	out := runAll(t, n, ms, p, pid, 5*time.Second, eddsaKeygen)
	caught := false
	for id, o := range out {
		if o.err == nil {
			t.Fatalf("%s finished keygen despite an equivocating broadcast", id)
		}
		if errors.Is(o.err, ErrConflict) && strings.Contains(o.err.Error(), `party "a" broadcast different`) {
			caught = true
		}
	}
	if !caught {
		t.Fatalf("no party named a as equivocator: %v", out)
	}
}

func mustPeer(m member) *channel.Peer {
	p, _ := channel.NewPeer(m.keys.Public())
	return p
}

func TestProposalCheck(t *testing.T) {
	base := func() *Proposal {
		p, _ := newProposal(api.KindSign, api.AlgECDSASecp256k1, []string{"a", "b"}, make([]byte, 32))
		return p
	}
	tests := []struct {
		name   string
		mutate func(*Proposal)
		want   string
	}{
		{"ok", func(*Proposal) {}, ""},
		{"unsorted parties", func(p *Proposal) { p.Parties = []string{"b", "a"} }, "sorted"},
		{"duplicate party", func(p *Proposal) { p.Parties = []string{"a", "a"} }, "unique"},
		{"too many signers", func(p *Proposal) { p.Parties = []string{"a", "b", "c"} }, "exactly 2 signers"},
		{"short digest", func(p *Proposal) { p.Message = []byte{1} }, "32-byte digest"},
		{"unknown kind", func(p *Proposal) { p.Kind = "presign" }, "unknown session kind"},
		{"reshare with a message", func(p *Proposal) { p.Kind = api.KindReshare }, "reshare proposal carries a message"},
		{"sign with reshare fields", func(p *Proposal) { p.NewEpoch = 1 }, "carries reshare fields"},
		{"unknown algorithm", func(p *Proposal) { p.Algorithm = "rsa" }, "unknown algorithm"},
		{"short nonce", func(p *Proposal) { p.Nonce = p.Nonce[:8] }, "nonce"},
		{"coordinator outside", func(p *Proposal) { p.Coordinator = "z" }, "not a party"},
		{"keygen with message", func(p *Proposal) { p.Kind = api.KindKeygen }, "carries a message"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := base()
			tc.mutate(p)
			err := p.Check()
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Check() = %v, want %q", err, tc.want)
			}
		})
	}
}

func FuzzParseProposal(f *testing.F) {
	p, _ := newProposal(api.KindSign, api.AlgEdDSAEd25519, []string{"a", "b"}, []byte("m"))
	body, _ := api.Marshal(p)
	raw, _ := api.Marshal(SignedProposal{Body: body, Signature: make([]byte, 64)})
	f.Add(raw)
	f.Add([]byte{0xa0})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, p, err := ParseProposal(b)
		if err == nil && p.Check() != nil {
			t.Fatal("ParseProposal accepted a proposal that fails Check")
		}
	})
}

// TestECDSAKeygenAndSign runs the real GG18 protocol with fixture
// pre-parameters (generating them takes ~20 s per party).
func TestECDSAKeygenAndSign(t *testing.T) {
	if testing.Short() {
		t.Skip("ECDSA keygen+sign takes ~20 s; skipped in -short (race) runs")
	}
	raw, err := os.ReadFile("../../test/testdata/preparams.json")
	if err != nil {
		t.Fatal(err)
	}
	var pre []*ecdsakeygen.LocalPreParams
	if err := json.Unmarshal(raw, &pre); err != nil {
		t.Fatal(err)
	}
	ms := members(t, "a", "b", "c")
	p, pid := newProposal(api.KindKeygen, api.AlgECDSASecp256k1, []string{"a", "b", "c"}, nil)
	idx := map[string]int{"a": 0, "b": 1, "c": 2}
	out := runAll(t, &relay{}, ms, p, pid, time.Minute, func(id string) proto {
		return proto{func(params *tss.Parameters, o chan<- tss.Message) (tss.Party, <-chan any, error) {
			end := make(chan *ecdsakeygen.LocalPartySaveData, 1)
			return ecdsakeygen.NewLocalParty(params, o, end, *pre[idx[id]]), fwd(end), nil
		}, "binance.tsslib.ecdsa.keygen.", tss.S256()}
	})
	keys := map[string]*ecdsakeygen.LocalPartySaveData{}
	for id, o := range out {
		if o.err != nil {
			t.Fatalf("keygen %s: %v", id, o.err)
		}
		keys[id] = o.res.(*ecdsakeygen.LocalPartySaveData)
	}
	digest := sha256.Sum256([]byte("x"))
	digest[0] = 0 // a leading zero byte must round-trip
	sp, spid := newProposal(api.KindSign, api.AlgECDSASecp256k1, []string{"b", "c"}, digest[:])
	sout := runAll(t, &relay{}, ms[1:], sp, spid, time.Minute, func(id string) proto {
		return proto{func(params *tss.Parameters, o chan<- tss.Message) (tss.Party, <-chan any, error) {
			end := make(chan *common.SignatureData, 1)
			return ecdsasigning.NewLocalParty(new(big.Int).SetBytes(digest[:]), params, *keys[id], o, end, 32), fwd(end), nil
		}, "binance.tsslib.ecdsa.signing.", tss.S256()}
	})
	for id, o := range sout {
		if o.err != nil {
			t.Fatalf("sign %s: %v", id, o.err)
		}
		sd := o.res.(*common.SignatureData)
		pk := keys["a"].ECDSAPub
		if !ecdsaVerify(pk.X(), pk.Y(), digest[:], sd.R, sd.S) {
			t.Fatalf("signature from %s does not verify", id)
		}
	}
}
