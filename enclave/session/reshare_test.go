package session

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"math/big"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bnb-chain/tss-lib/v2/common"
	ecdsakeygen "github.com/bnb-chain/tss-lib/v2/ecdsa/keygen"
	ecdsaresharing "github.com/bnb-chain/tss-lib/v2/ecdsa/resharing"
	ecdsasigning "github.com/bnb-chain/tss-lib/v2/ecdsa/signing"
	eddsakeygen "github.com/bnb-chain/tss-lib/v2/eddsa/keygen"
	eddsaresharing "github.com/bnb-chain/tss-lib/v2/eddsa/resharing"
	"github.com/bnb-chain/tss-lib/v2/tss"

	"github.com/sealsign/sealsign/enclave/api"
	"github.com/sealsign/sealsign/enclave/channel"
)

func union(a, b []string) []string {
	u := slices.Concat(a, b)
	slices.Sort(u)
	return slices.Compact(u)
}

// reshareAll runs one resharing session per party of old ∪ new and returns
// each party's output.
func reshareAll(t *testing.T, ms map[string]member, old, nw []string, oldT, newT int, oldEpoch, newEpoch uint64, alg string, buildOld func(id string) ReshareBuild, buildNew func(id string) ReshareBuild, extra func(id string) []byte) map[string]outcome {
	t.Helper()
	parties := union(old, nw)
	p, pid := newProposal("reshare", alg, parties, nil)
	p.Epoch = oldEpoch
	n := &relay{sessions: map[string]*Session{}}
	prefix, curve := "binance.tsslib.eddsa.resharing.", tss.Edwards()
	if alg == api.AlgECDSASecp256k1 {
		prefix, curve = "binance.tsslib.ecdsa.resharing.", tss.S256()
	}
	for _, id := range parties {
		peers := map[string]*channel.Peer{}
		for _, o := range parties {
			if o != id {
				pe, _ := channel.NewPeer(ms[o].keys.Public())
				peers[o] = pe
			}
		}
		rs := &Reshare{Old: old, New: nw, OldThreshold: oldT, NewThreshold: newT, OldEpoch: oldEpoch, NewEpoch: newEpoch}
		if slices.Contains(old, id) {
			rs.BuildOld = buildOld(id)
		}
		if slices.Contains(nw, id) {
			rs.BuildNew = buildNew(id)
		}
		var hello []byte
		if extra != nil {
			hello = extra(id)
		}
		n.sessions[id] = New(Config{Me: id, Keys: ms[id].keys, Peers: peers, Proposal: p, PID: pid, Send: n.send(id),
			TypePrefix: prefix, Curve: curve, Rand: rand.Reader, Inactivity: time.Minute, Reshare: rs, HelloExtra: hello})
	}
	var mu sync.Mutex
	out := map[string]outcome{}
	var wg sync.WaitGroup
	for _, id := range parties {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			res, err := n.sessions[id].Run(ctx)
			mu.Lock()
			out[id] = outcome{res, err}
			mu.Unlock()
		}()
	}
	wg.Wait()
	if extra != nil {
		for _, id := range parties {
			for from, got := range n.sessions[id].Extras() {
				if want := extra(from); !bytes.Equal(got, want) {
					t.Fatalf("%s got hello extra %q from %s, want %q", id, got, from, want)
				}
			}
		}
	}
	return out
}

func copyEd(t *testing.T, k *eddsakeygen.LocalPartySaveData) eddsakeygen.LocalPartySaveData {
	t.Helper()
	b, err := json.Marshal(k)
	if err != nil {
		t.Fatal(err)
	}
	var c eddsakeygen.LocalPartySaveData
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

func eddsaSignAt(t *testing.T, ms map[string]member, keys map[string]*eddsakeygen.LocalPartySaveData, signers []string, epoch uint64, threshold int, msg []byte) map[string]outcome {
	t.Helper()
	p, pid := newProposal(api.KindSign, api.AlgEdDSAEd25519, signers, msg)
	p.Epoch, p.Threshold = epoch, threshold
	var sub []member
	for _, id := range signers {
		sub = append(sub, ms[id])
	}
	return runAll(t, &relay{}, sub, p, pid, time.Minute, eddsaSign(keys, msg))
}

// TestEdDSAReshare refreshes a 2-of-3 key to the same committee, then grows
// it to 3-of-5, signing after each step with crypto/ed25519 as the judge,
// and checks the old shares are of no use with the new ones.
func TestEdDSAReshare(t *testing.T) {
	msList := members(t, "a", "b", "c", "d", "e")
	ms := map[string]member{}
	for _, m := range msList {
		ms[m.id] = m
	}
	keys := eddsaKeys(t, msList[:3])
	pub := edPub(keys["a"])
	abc := []string{"a", "b", "c"}
	oldB := copyEd(t, keys["b"])

	reshare := func(keys map[string]*eddsakeygen.LocalPartySaveData, old, nw []string, oldT, newT int, oldEpoch, newEpoch uint64) map[string]*eddsakeygen.LocalPartySaveData {
		t.Helper()
		out := reshareAll(t, ms, old, nw, oldT, newT, oldEpoch, newEpoch, api.AlgEdDSAEd25519,
			func(id string) ReshareBuild {
				return func(params *tss.ReSharingParameters, o chan<- tss.Message) (tss.Party, <-chan any, error) {
					end := make(chan *eddsakeygen.LocalPartySaveData, 1)
					return eddsaresharing.NewLocalParty(params, copyEd(t, keys[id]), o, end), fwd(end), nil
				}
			},
			func(id string) ReshareBuild {
				return func(params *tss.ReSharingParameters, o chan<- tss.Message) (tss.Party, <-chan any, error) {
					end := make(chan *eddsakeygen.LocalPartySaveData, 1)
					return eddsaresharing.NewLocalParty(params, eddsakeygen.NewLocalPartySaveData(len(nw)), o, end), fwd(end), nil
				}
			},
			func(id string) []byte { return []byte("chain-code-from-" + id) })
		next := map[string]*eddsakeygen.LocalPartySaveData{}
		for id, o := range out {
			if o.err != nil {
				t.Fatalf("reshare %v→%v on %s: %v", old, nw, id, o.err)
			}
			res := o.res.(*ReshareOutput)
			if slices.Contains(old, id) != (res.Old != nil) || slices.Contains(nw, id) != (res.New != nil) {
				t.Fatalf("%s: roles old=%v new=%v", id, res.Old != nil, res.New != nil)
			}
			if res.New != nil {
				k := res.New.(*eddsakeygen.LocalPartySaveData)
				if !bytes.Equal(edPub(k), pub) {
					t.Fatalf("%s: reshare changed the public key", id)
				}
				next[id] = k
			}
		}
		return next
	}

	refreshed := reshare(keys, abc, abc, 1, 1, 0, 1)
	if refreshed["b"].Xi.Cmp(oldB.Xi) == 0 {
		t.Fatal("refresh left b's share unchanged")
	}
	msg := []byte("after refresh")
	for id, o := range eddsaSignAt(t, ms, refreshed, []string{"a", "c"}, 1, 1, msg) {
		if o.err != nil || !ed25519.Verify(pub, msg, o.res.(*common.SignatureData).Signature) {
			t.Fatalf("signing after refresh on %s: %v", id, o.err)
		}
	}
	// An old share with a new one: the session keys differ per epoch, so
	// tss-lib cannot even find the old share's index among the new keys;
	// with the old epoch's keys the shares are inconsistent. Either way:
	// no valid signature.
	mixed := map[string]*eddsakeygen.LocalPartySaveData{"a": refreshed["a"], "b": &oldB}
	for id, o := range eddsaSignAt(t, ms, mixed, []string{"a", "b"}, 1, 1, msg) {
		if o.err == nil && ed25519.Verify(pub, msg, o.res.(*common.SignatureData).Signature) {
			t.Fatalf("an old-epoch share signed with a new one on %s", id)
		}
	}

	all := []string{"a", "b", "c", "d", "e"}
	grown := reshare(refreshed, abc, all, 1, 2, 1, 2)
	if len(grown) != 5 {
		t.Fatalf("grown committee has %d shares", len(grown))
	}
	msg = []byte("3 of 5")
	for _, signers := range [][]string{{"a", "d", "e"}, {"b", "c", "e"}} {
		for id, o := range eddsaSignAt(t, ms, grown, signers, 2, 2, msg) {
			if o.err != nil || !ed25519.Verify(pub, msg, o.res.(*common.SignatureData).Signature) {
				t.Fatalf("3-of-5 signing by %v on %s: %v", signers, id, o.err)
			}
		}
	}
	// Shrink to 2-of-3 without a and b: they take part as the old committee
	// only, and end with no share.
	cde := []string{"c", "d", "e"}
	shrunk := reshare(grown, all, cde, 2, 1, 2, 3)
	if _, ok := shrunk["a"]; ok {
		t.Fatal("a removed party got a share")
	}
	msg = []byte("without a and b")
	for id, o := range eddsaSignAt(t, ms, shrunk, []string{"d", "e"}, 3, 1, msg) {
		if o.err != nil || !ed25519.Verify(pub, msg, o.res.(*common.SignatureData).Signature) {
			t.Fatalf("signing after removal on %s: %v", id, o.err)
		}
	}
}

// TestReshareRouting: a party that sends a message of the other committee's
// type, or is not in the committee a type comes from, is refused.
func TestReshareRouting(t *testing.T) {
	r := &runner{cfg: Config{Me: "a", TypePrefix: "binance.tsslib.eddsa.resharing."}, oldIDs: map[string]*tss.PartyID{}, newIDs: map[string]*tss.PartyID{}}
	r.oldIDs["b"] = tss.NewPartyID("b", "b", EpochPartyKey("b", 0))
	r.newIDs["d"] = tss.NewPartyID("d", "d", EpochPartyKey("d", 1))
	for _, tc := range []struct {
		from, typ, want string
	}{
		{"d", "binance.tsslib.eddsa.resharing.DGRound1Message", "only the old committee sends"},
		{"b", "binance.tsslib.eddsa.resharing.DGRound4Message", "only the new committee sends"},
		{"b", "binance.tsslib.eddsa.signing.SignRound1Message", "not a resharing message"},
		{"b", "binance.tsslib.eddsa.resharing.Bogus", "not a resharing message"},
	} {
		err := r.updateReshare(tc.from, &inner{Type: tc.typ}, true)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s from %s: %v, want %q", tc.typ, tc.from, err, tc.want)
		}
	}
	if EpochPartyKey("a", 0).Cmp(PartyKey("a")) != 0 || EpochPartyKey("a", 1).Cmp(EpochPartyKey("a", 2)) == 0 || EpochPartyKey("a", 1).Cmp(EpochPartyKey("b", 1)) == 0 {
		t.Fatal("epoch party keys must keep epoch 0 and differ per epoch and party")
	}
}

// TestECDSARefresh refreshes a real GG18 2-of-3 key (fixture pre-parameters)
// and signs with the new shares.
func TestECDSARefresh(t *testing.T) {
	if testing.Short() {
		t.Skip("ECDSA keygen+refresh+sign takes ~30 s; skipped in -short (race) runs")
	}
	raw, err := os.ReadFile("../../test/testdata/preparams.json")
	if err != nil {
		t.Fatal(err)
	}
	var pre []*ecdsakeygen.LocalPreParams
	if err := json.Unmarshal(raw, &pre); err != nil {
		t.Fatal(err)
	}
	msList := members(t, "a", "b", "c")
	ms := map[string]member{}
	for _, m := range msList {
		ms[m.id] = m
	}
	abc := []string{"a", "b", "c"}
	idx := map[string]int{"a": 0, "b": 1, "c": 2}
	p, pid := newProposal(api.KindKeygen, api.AlgECDSASecp256k1, abc, nil)
	out := runAll(t, &relay{}, msList, p, pid, time.Minute, func(id string) proto {
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
	pk := keys["a"].ECDSAPub
	copyK := func(k *ecdsakeygen.LocalPartySaveData) ecdsakeygen.LocalPartySaveData {
		b, _ := json.Marshal(k)
		var c ecdsakeygen.LocalPartySaveData
		if err := json.Unmarshal(b, &c); err != nil {
			t.Fatal(err)
		}
		return c
	}
	xa := new(big.Int).Set(keys["a"].Xi)
	rout := reshareAll(t, ms, abc, abc, 1, 1, 0, 1, api.AlgECDSASecp256k1,
		func(id string) ReshareBuild {
			return func(params *tss.ReSharingParameters, o chan<- tss.Message) (tss.Party, <-chan any, error) {
				end := make(chan *ecdsakeygen.LocalPartySaveData, 1)
				return ecdsaresharing.NewLocalParty(params, copyK(keys[id]), o, end), fwd(end), nil
			}
		},
		func(id string) ReshareBuild {
			return func(params *tss.ReSharingParameters, o chan<- tss.Message) (tss.Party, <-chan any, error) {
				end := make(chan *ecdsakeygen.LocalPartySaveData, 1)
				save := ecdsakeygen.NewLocalPartySaveData(3)
				save.LocalPreParams = *pre[3+idx[id]] // fresh Paillier keys for the new epoch
				return ecdsaresharing.NewLocalParty(params, save, o, end), fwd(end), nil
			}
		}, nil)
	next := map[string]*ecdsakeygen.LocalPartySaveData{}
	for id, o := range rout {
		if o.err != nil {
			t.Fatalf("refresh %s: %v", id, o.err)
		}
		k := o.res.(*ReshareOutput).New.(*ecdsakeygen.LocalPartySaveData)
		if k.ECDSAPub.X().Cmp(pk.X()) != 0 || k.ECDSAPub.Y().Cmp(pk.Y()) != 0 {
			t.Fatalf("%s: refresh changed the public key", id)
		}
		next[id] = k
	}
	if keys["a"].Xi.Cmp(xa) != 0 {
		t.Fatal("the old share passed in was modified (pass copies: tss-lib zeroes Xi)")
	}
	digest := sha256.Sum256([]byte("after refresh"))
	sp, spid := newProposal(api.KindSign, api.AlgECDSASecp256k1, []string{"a", "c"}, digest[:])
	sp.Epoch = 1
	sout := runAll(t, &relay{}, []member{ms["a"], ms["c"]}, sp, spid, time.Minute, func(id string) proto {
		return proto{func(params *tss.Parameters, o chan<- tss.Message) (tss.Party, <-chan any, error) {
			end := make(chan *common.SignatureData, 1)
			return ecdsasigning.NewLocalParty(new(big.Int).SetBytes(digest[:]), params, *next[id], o, end, 32), fwd(end), nil
		}, "binance.tsslib.ecdsa.signing.", tss.S256()}
	})
	for id, o := range sout {
		if o.err != nil {
			t.Fatalf("sign after refresh %s: %v", id, o.err)
		}
		sd := o.res.(*common.SignatureData)
		if !ecdsaVerify(pk.X(), pk.Y(), digest[:], sd.R, sd.S) {
			t.Fatalf("signature from %s does not verify", id)
		}
	}
}
