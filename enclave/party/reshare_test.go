package party

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	secpecdsa "github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"

	"github.com/sealsign/sealsign/enclave/api"
	"github.com/sealsign/sealsign/governance/ceremony"
	"github.com/sealsign/sealsign/hsm"
)

// reshareCeremony is a refresh (same committee) or reshare ceremony for
// key at epoch, signed by admins 0 and 1 unless mod changes it.
func (c *cluster) reshareCeremony(key *api.SessionResult, epoch uint64, old []string, oldT int, nw []string, newT int, mod func(*ceremony.Ceremony), signers ...int) []byte {
	c.t.Helper()
	return c.ceremony(key.Algorithm, func(cer *ceremony.Ceremony) {
		cer.Kind, cer.KeyID, cer.Epoch, cer.Parties, cer.Threshold = ceremony.KindRefresh, key.KeyID, epoch, old, oldT
		if !slices.Equal(old, nw) || oldT != newT {
			cer.Kind, cer.NewParties, cer.NewThreshold = ceremony.KindReshare, nw, newT
		}
		if mod != nil {
			mod(cer)
		}
	}, signers...)
}

// reshareSession proposes a reshare on coord and runs it on both
// committees; it returns every party's result and error.
func (c *cluster) reshareSession(coord string, key *api.SessionResult, nw []string, newT int, newEpoch uint64, cer []byte) (map[string]*api.SessionResult, map[string]error) {
	c.t.Helper()
	prop, err := c.encl[coord].propose(context.Background(), &api.ProposeRequest{Kind: api.KindReshare, KeyID: key.KeyID, NewParties: nw, NewThreshold: newT, NewEpoch: newEpoch, Ceremony: cer})
	if err != nil {
		return nil, map[string]error{coord: err}
	}
	k, _ := c.encl[coord].share(key.KeyID)
	all := slices.Concat(k.rec.Parties, nw)
	slices.Sort(all)
	return c.runProposal(prop.Proposal, slices.Compact(all))
}

// acks gathers each new member's ack for key at epoch from its enclave.
func (c *cluster) acks(keyID string, epoch uint64, members []string) ([]api.ReshareAck, error) {
	var out []api.ReshareAck
	for _, id := range members {
		a, err := c.encl[id].reshareAck(context.Background(), &api.ReshareAckRequest{KeyID: keyID, Epoch: epoch})
		if err != nil {
			return nil, err
		}
		out = append(out, *a)
	}
	return out, nil
}

func (c *cluster) commit(keyID string, acks []api.ReshareAck, parties []string) (map[string]*api.ReshareCommitResponse, map[string]error) {
	res, errs := map[string]*api.ReshareCommitResponse{}, map[string]error{}
	for _, id := range parties {
		r, err := c.encl[id].reshareCommit(context.Background(), &api.ReshareCommitRequest{KeyID: keyID, Acks: acks})
		if err != nil {
			errs[id] = err
			continue
		}
		res[id] = r
	}
	return res, errs
}

// mustReshare runs a full reshare (session, acks, commit everywhere).
func (c *cluster) mustReshare(key *api.SessionResult, old []string, oldT int, nw []string, newT int, fromEpoch, newEpoch uint64) map[string]*api.ReshareCommitResponse {
	c.t.Helper()
	cer := c.reshareCeremony(key, fromEpoch, old, oldT, nw, newT, nil)
	res, errs := c.reshareSession(old[0], key, nw, newT, newEpoch, cer)
	if len(errs) > 0 {
		c.t.Fatalf("reshare %v→%v: %v", old, nw, errs)
	}
	var acks []api.ReshareAck
	for _, id := range nw {
		if res[id].Ack == nil {
			c.t.Fatalf("new member %s returned no ack", id)
		}
		acks = append(acks, *res[id].Ack)
	}
	all := slices.Concat(old, nw)
	slices.Sort(all)
	cres, cerrs := c.commit(key.KeyID, acks, slices.Compact(all))
	if len(cerrs) > 0 {
		c.t.Fatalf("commit: %v", cerrs)
	}
	return cres
}

func (c *cluster) signRaw(t *testing.T, key *api.SessionResult, msg []byte, signers ...string) {
	t.Helper()
	res, errs := c.session(signers[0], api.ProposeRequest{Kind: api.KindSign, KeyID: key.KeyID, Parties: signers, Request: c.raw(key.KeyID, msg)})
	if len(errs) > 0 {
		t.Fatalf("signing with %v: %v", signers, errs)
	}
	if !ed25519.Verify(key.PublicKey, msg, res[signers[0]].Signature) {
		t.Fatalf("signature by %v does not verify under the key", signers)
	}
}

func TestRefresh(t *testing.T) {
	c := newCluster(t)
	key := c.keygen(api.AlgEdDSAEd25519)
	abc := []string{"a", "b", "c"}
	old := map[string][]byte{}
	for _, id := range abc {
		old[id] = c.hosts[id].blobs[shareBlobName(key.KeyID, 0)]
	}
	before, _ := c.encl["b"].share(key.KeyID)
	cres := c.mustReshare(key, abc, 1, abc, 1, 0, 1)
	for _, id := range abc {
		r := cres[id]
		if r.Outcome != "committed" || r.Epoch != 1 || !slices.Equal(r.Destroyed, []uint64{0}) {
			t.Fatalf("%s: commit %+v", id, r)
		}
		if _, ok := c.hosts[id].blobs[shareBlobName(key.KeyID, 0)]; ok {
			t.Fatalf("%s: host still holds the old epoch's blob", id)
		}
		// A copy of the old blob taken earlier no longer opens: its
		// hardware key is gone.
		if _, err := c.encl[id].openShare(id, key.KeyID, 0, old[id]); !errors.Is(err, hsm.ErrEpochDestroyed) {
			t.Fatalf("%s: old epoch blob after refresh: %v, want ErrEpochDestroyed", id, err)
		}
		k, err := c.encl[id].share(key.KeyID)
		if err != nil || k.rec.Epoch != 1 || string(k.rec.PublicKey) != string(key.PublicKey) {
			t.Fatalf("%s: share after refresh: epoch %d, %v", id, k.rec.Epoch, err)
		}
	}
	after, _ := c.encl["b"].share(key.KeyID)
	if after.eddsa.Xi.Cmp(before.eddsa.Xi) == 0 {
		t.Fatal("refresh left b's secret share unchanged")
	}
	c.signRaw(t, key, []byte("after refresh"), "a", "c")

	t.Run("restart loads the new epoch", func(t *testing.T) {
		c.restart("b")
		k, err := c.encl["b"].share(key.KeyID)
		if err != nil || k.rec.Epoch != 1 {
			t.Fatalf("after restart: %v", err)
		}
		c.signRaw(t, key, []byte("after restart"), "b", "c")
	})
	t.Run("old blob handed back by the host", func(t *testing.T) {
		c.hosts["c"].blobs[shareBlobName(key.KeyID, 0)] = old["c"]
		c.restart("c")
		k, err := c.encl["c"].share(key.KeyID)
		if err != nil || k.rec.Epoch != 1 {
			t.Fatalf("an unopenable old epoch must not hide the new one: %v", err)
		}
		c.signRaw(t, key, []byte("c still signs"), "a", "c")
	})
	t.Run("audit logs verify", func(t *testing.T) {
		for _, id := range abc {
			if err := c.verifyAudit(id); err != nil {
				t.Fatalf("%s: %v", id, err)
			}
		}
	})
}

func TestReshareGrowAndShrink(t *testing.T) {
	all := []string{"a", "b", "c", "d", "e"}
	c := newClusterWith(t, clusterOptions{ids: all})
	abc := []string{"a", "b", "c"}
	res, errs := c.session("a", api.ProposeRequest{Kind: api.KindKeygen, Algorithm: api.AlgEdDSAEd25519, Parties: abc,
		Ceremony: c.ceremony(api.AlgEdDSAEd25519, func(cer *ceremony.Ceremony) { cer.Parties = abc })})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	key := res["a"]
	if _, err := c.encl["d"].share(key.KeyID); err == nil {
		t.Fatal("d holds a share of a key made by a, b, c")
	}
	cres := c.mustReshare(key, abc, 1, all, 2, 0, 1)
	for _, id := range all {
		if cres[id].Outcome != "committed" || cres[id].Threshold != 2 {
			t.Fatalf("%s: %+v", id, cres[id])
		}
	}
	c.signRaw(t, key, []byte("3 of 5"), "a", "d", "e")
	c.signRaw(t, key, []byte("3 of 5 again"), "b", "c", "e")
	if _, errs := c.session("a", api.ProposeRequest{Kind: api.KindSign, KeyID: key.KeyID, Parties: []string{"a", "b"}, Request: c.raw(key.KeyID, []byte("2 are not enough"))}); len(errs) == 0 {
		t.Fatal("two signers of a 3-of-5 key were accepted")
	}

	cde := []string{"c", "d", "e"}
	cres = c.mustReshare(key, all, 2, cde, 1, 1, 2)
	for _, id := range []string{"a", "b"} {
		if cres[id].Outcome != "removed" || !slices.Equal(cres[id].Destroyed, []uint64{1}) {
			t.Fatalf("removed %s: %+v", id, cres[id])
		}
		if _, err := c.encl[id].share(key.KeyID); err == nil {
			t.Fatalf("removed party %s still holds a share", id)
		}
		if len(c.hosts[id].blobs) != 0 {
			for n := range c.hosts[id].blobs {
				if strings.HasPrefix(n, shareBlobPrefix) {
					t.Fatalf("removed party %s's host still holds %s", id, n)
				}
			}
		}
	}
	c.signRaw(t, key, []byte("without a and b"), "d", "e")
	_, errs = c.session("d", api.ProposeRequest{Kind: api.KindSign, KeyID: key.KeyID, Parties: []string{"a", "d"}, Request: c.raw(key.KeyID, []byte("a is out"))})
	if errs["d"] == nil || !strings.Contains(errs["d"].Error(), `"a" holds no share`) {
		t.Fatalf("a removed party proposed as signer: %v", errs)
	}
	if _, errs := c.session("a", api.ProposeRequest{Kind: api.KindSign, KeyID: key.KeyID, Parties: []string{"a", "d"}, Request: c.raw(key.KeyID, []byte("a tries"))}); errs["a"] == nil {
		t.Fatal("a removed party coordinated a signing")
	}
}

// TestReshareCrashes interrupts a refresh at each phase: the key must stay
// usable and a rerun must complete it.
func TestReshareCrashes(t *testing.T) {
	c := newCluster(t)
	key := c.keygen(api.AlgEdDSAEd25519)
	abc := []string{"a", "b", "c"}

	t.Run("party gone during the session", func(t *testing.T) {
		cer := c.reshareCeremony(key, 0, abc, 1, abc, 1, nil)
		prop, err := c.encl["a"].propose(context.Background(), &api.ProposeRequest{Kind: api.KindReshare, KeyID: key.KeyID, NewEpoch: 1, Ceremony: cer})
		if err != nil {
			t.Fatal(err)
		}
		// c never joins: a and b time out.
		_, errs := c.runFor(2*time.Second, prop.Proposal, []string{"a", "b"})
		if errs["a"] == nil || errs["b"] == nil {
			t.Fatalf("reshare without c finished: %v", errs)
		}
		// Nothing destroyed: epoch 0 still signs.
		c.signRaw(t, key, []byte("after a failed refresh"), "a", "b")
		// Rerun (a new ceremony) completes it, to an epoch above anything held.
		cres := c.mustReshare(key, abc, 1, abc, 1, 0, 2)
		for _, id := range abc {
			if cres[id].Outcome != "committed" || cres[id].Epoch != 2 {
				t.Fatalf("%s: %+v", id, cres[id])
			}
			if len(c.hosts[id].blobs[shareBlobName(key.KeyID, 1)]) != 0 {
				t.Fatalf("%s: the failed attempt's pending blob survived the commit", id)
			}
		}
		c.signRaw(t, key, []byte("after the rerun"), "b", "c")
	})

	t.Run("crash between session and commit, and mid-commit", func(t *testing.T) {
		cer := c.reshareCeremony(key, 2, abc, 1, abc, 1, nil)
		res, errs := c.reshareSession("a", key, abc, 1, 3, cer)
		if len(errs) > 0 {
			t.Fatal(errs)
		}
		// Coordinator gone before any commit; b restarts (new identity).
		c.restart("b")
		if _, err := c.encl["b"].share(key.KeyID); err != nil {
			t.Fatalf("b after restart with a pending epoch: %v", err)
		}
		c.signRaw(t, key, []byte("pending epoch, old one in force"), "a", "b")
		// The acks from before the restart no longer verify for b's
		// identity: a rerun gathers fresh ones.
		var stale []api.ReshareAck
		for _, id := range abc {
			stale = append(stale, *res[id].Ack)
		}
		if _, errs := c.commit(key.KeyID, stale, []string{"c"}); errs["c"] == nil || !strings.Contains(errs["c"].Error(), "does not verify") {
			t.Fatalf("commit with b's ack from its previous boot: %v", errs)
		}
		acks, err := c.acks(key.KeyID, 3, abc)
		if err != nil {
			t.Fatal(err)
		}
		// Incomplete acks: refused, nothing destroyed.
		if _, errs := c.commit(key.KeyID, acks[:2], []string{"a"}); errs["a"] == nil || !strings.Contains(errs["a"].Error(), "acks missing from c") {
			t.Fatalf("commit with two of three acks: %v", errs)
		}
		// A forged ack (c's statement signed by a) is refused.
		forged := slices.Clone(acks)
		forged[2].Signature = acks[0].Signature
		if _, errs := c.commit(key.KeyID, forged, []string{"a"}); errs["a"] == nil {
			t.Fatal("commit with a forged ack accepted")
		}
		// The commit reaches a only (the coordinator dies).
		cres, errs := c.commit(key.KeyID, acks, []string{"a"})
		if len(errs) > 0 || cres["a"].Outcome != "committed" {
			t.Fatalf("commit on a: %v %v", cres, errs)
		}
		// Rerun: b and c commit; a reports it already had.
		cres, errs = c.commit(key.KeyID, acks, abc)
		if len(errs) > 0 || cres["a"].Outcome != "already-committed" || cres["b"].Outcome != "committed" || cres["c"].Outcome != "committed" {
			t.Fatalf("rerun commit: %v %v", cres, errs)
		}
		c.signRaw(t, key, []byte("epoch 3"), "a", "c")
		for _, id := range abc {
			k, _ := c.encl[id].share(key.KeyID)
			if k.rec.Epoch != 3 {
				t.Fatalf("%s on epoch %d", id, k.rec.Epoch)
			}
		}
	})

	t.Run("authorisation", func(t *testing.T) {
		for _, tc := range []struct {
			name, want string
			cer        []byte
			epoch      uint64
		}{
			{"no ceremony", "no ceremony", nil, 4},
			{"one admin", "quorum", c.reshareCeremony(key, 3, abc, 1, abc, 1, nil, 0), 4},
			{"wrong epoch", "epoch", c.reshareCeremony(key, 2, abc, 1, abc, 1, nil), 4},
			{"keygen ceremony", "kind", c.ceremony(key.Algorithm, nil), 4},
			{"another key", "key", c.reshareCeremony(key, 3, abc, 1, abc, 1, func(cer *ceremony.Ceremony) { cer.KeyID = strings.Repeat("ab", 16) }), 4},
			{"not above the key's epoch", "not after the key's epoch 3", c.reshareCeremony(key, 3, abc, 1, abc, 1, nil), 3},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, errs := c.reshareSession("a", key, abc, 1, tc.epoch, tc.cer)
				if errs["a"] == nil || !strings.Contains(errs["a"].Error(), tc.want) {
					t.Fatalf("%v, want %q", errs, tc.want)
				}
			})
		}
		t.Run("replayed ceremony", func(t *testing.T) {
			cer := c.reshareCeremony(key, 3, abc, 1, abc, 1, nil)
			if _, errs := c.reshareSession("a", key, abc, 1, 4, cer); len(errs) > 0 {
				t.Fatal(errs)
			}
			_, errs := c.reshareSession("a", key, abc, 1, 5, cer)
			if errs["a"] == nil || !strings.Contains(errs["a"].Error(), "replay") {
				t.Fatalf("replayed ceremony: %v", errs)
			}
			// The uncommitted epoch 4 is still pending: epoch 3 signs, and
			// a new reshare must go above 4.
			c.signRaw(t, key, []byte("still epoch 3"), "b", "c")
			_, errs = c.reshareSession("a", key, abc, 1, 4, c.reshareCeremony(key, 3, abc, 1, abc, 1, nil))
			if errs["a"] == nil || !strings.Contains(errs["a"].Error(), "already holds epoch 4") {
				t.Fatalf("reshare onto a pending epoch: %v", errs)
			}
		})
	})
}

// TestReshareECDSA grows a real GG18 2-of-3 key to 3-of-5 (fresh Paillier
// keys for every member of the new committee), signs with three of the
// five, and checks the BIP-32 chain code came along: the xpub at m is the
// same before and after, on old and new parties alike.
func TestReshareECDSA(t *testing.T) {
	if testing.Short() {
		t.Skip("ECDSA keygen + reshare to five takes ~40 s; skipped in -short (race) runs")
	}
	all := []string{"a", "b", "c", "d", "e"}
	c := newClusterWith(t, clusterOptions{ids: all, preParams: fixturePreParamsFor(t, all)})
	abc := []string{"a", "b", "c"}
	res, errs := c.session("a", api.ProposeRequest{Kind: api.KindKeygen, Algorithm: api.AlgECDSASecp256k1, Parties: abc,
		Ceremony: c.ceremony(api.AlgECDSASecp256k1, func(cer *ceremony.Ceremony) { cer.Parties = abc })})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	key := res["a"]
	xpub := func(id string) string {
		t.Helper()
		d, err := c.encl[id].deriveMethod(context.Background(), &api.DeriveRequest{KeyID: key.KeyID})
		if err != nil {
			t.Fatalf("derive on %s: %v", id, err)
		}
		return d.XPub
	}
	before := xpub("a")
	cres := c.mustReshare(key, abc, 1, all, 2, 0, 1)
	for _, id := range all {
		if cres[id].Outcome != "committed" {
			t.Fatalf("%s: %+v", id, cres[id])
		}
		if got := xpub(id); got != before {
			t.Fatalf("%s: xpub after the reshare %s, before %s (the chain code must survive)", id, got, before)
		}
	}
	digest := sha256.Sum256([]byte("3 of 5, ecdsa"))
	sres, errs := c.session("b", api.ProposeRequest{Kind: api.KindSign, KeyID: key.KeyID, Parties: []string{"b", "d", "e"}, Request: c.raw(key.KeyID, digest[:])})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	pk, err := secp256k1.ParsePubKey(key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	sig := sres["b"].Signature
	var r, s secp256k1.ModNScalar
	r.SetByteSlice(sig[:32])
	s.SetByteSlice(sig[32:])
	if !secpecdsa.NewSignature(&r, &s).Verify(digest[:], pk) {
		t.Fatal("3-of-5 ECDSA signature does not verify under the key made 2-of-3")
	}
}
