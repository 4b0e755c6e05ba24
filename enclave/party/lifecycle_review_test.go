package party

import (
	"slices"
	"strings"
	"testing"

	"github.com/sealsign/sealsign/enclave/api"
	"github.com/sealsign/sealsign/governance/ceremony"
)

// reviewKeyABC makes an EdDSA key on a, b, c (t=1) in a cluster of a..d.
func reviewKeyABC(t *testing.T) (*cluster, *api.SessionResult) {
	t.Helper()
	c := newClusterWith(t, clusterOptions{ids: []string{"a", "b", "c", "d"}})
	abc := []string{"a", "b", "c"}
	res, errs := c.session("a", api.ProposeRequest{Kind: api.KindKeygen, Algorithm: api.AlgEdDSAEd25519, Parties: abc,
		Ceremony: c.ceremony(api.AlgEdDSAEd25519, func(cer *ceremony.Ceremony) { cer.Parties = abc })})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	return c, res["a"]
}

func acksOf(t *testing.T, res map[string]*api.SessionResult, ids []string) []api.ReshareAck {
	t.Helper()
	var out []api.ReshareAck
	for _, id := range ids {
		if res[id] == nil || res[id].Ack == nil {
			t.Fatalf("%s returned no ack", id)
		}
		out = append(out, *res[id].Ack)
	}
	return out
}

// TestLifecycleReviewSupersededRemovalCommit: a party that is NOT in the new
// committee of an abandoned (never committed) reshare R1 accepts R1's commit
// as "removed" although it holds a pending share of a later reshare R2, and
// destroys that pending share. The hostile host of c replays R1's acks to c
// after R2 has been committed on a and b: R2's committee {a,b,c} at t=2 is
// left with two shares, the key can neither sign nor be reshared (t+1=3 old
// parties needed). In addition d commits R1, so two reshares of the same
// epoch end up committed.
func TestLifecycleReviewSupersededRemovalCommit(t *testing.T) {
	c, key := reviewKeyABC(t)
	abc, abd := []string{"a", "b", "c"}, []string{"a", "b", "d"}

	// R1: {a,b,c} -> {a,b,d}, epoch 0 -> 1. Session done, acks gathered, the
	// coordinator's host withholds the commit.
	res1, errs := c.reshareSession("a", key, abd, 1, 1, c.reshareCeremony(key, 0, abc, 1, abd, 1, nil))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	acks1 := acksOf(t, res1, abd)

	// R2 (the admins' retry): {a,b,c} t=1 -> {a,b,c} t=2, epoch 0 -> 2.
	res2, errs := c.reshareSession("a", key, abc, 2, 2, c.reshareCeremony(key, 0, abc, 1, abc, 2, nil))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	acks2 := acksOf(t, res2, abc)
	if _, errs := c.commit(key.KeyID, acks2, []string{"a", "b"}); len(errs) > 0 {
		t.Fatalf("commit R2 on a, b: %v", errs)
	}

	// c's host replays R1's commit to c instead of R2's.
	cres, errs := c.commit(key.KeyID, acks1, []string{"c"})
	if errs["c"] == nil {
		t.Errorf("c accepted the commit of superseded reshare R1 (%+v): it holds pending epoch 2 above R1's epoch 1", cres["c"])
	}
	// d's host does the same to d.
	if cres, errs := c.commit(key.KeyID, acks1, []string{"d"}); errs["d"] == nil {
		t.Logf("d committed R1 too (%+v): two reshares of epoch 0 committed", cres["d"])
	}
	// R2 must still be committable on c.
	if _, errs := c.commit(key.KeyID, acks2, []string{"c"}); errs["c"] != nil {
		t.Errorf("R2 can no longer be committed on c: %v", errs["c"])
	}
	if _, errs := c.session("a", api.ProposeRequest{Kind: api.KindSign, KeyID: key.KeyID, Parties: abc, Request: c.raw(key.KeyID, []byte("after"))}); len(errs) > 0 {
		var msgs []string
		for id, err := range errs {
			msgs = append(msgs, id+": "+err.Error())
		}
		slices.Sort(msgs)
		t.Errorf("the key no longer signs with its committee a, b, c:\n%s", strings.Join(msgs, "\n"))
	}
}

// TestLifecycleReviewHostChosenNewEpochFreezesKey: the host picks a reshare's new
// epoch; one far above the key's must be refused, or epoch 2^64-1 would
// leave no epoch for any later refresh.
func TestLifecycleReviewHostChosenNewEpochFreezesKey(t *testing.T) {
	c := newCluster(t)
	key := c.keygen(api.AlgEdDSAEd25519)
	abc := []string{"a", "b", "c"}
	const top = ^uint64(0)
	res, errs := c.reshareSession("a", key, abc, 1, top, c.reshareCeremony(key, 0, abc, 1, abc, 1, nil))
	if len(errs) == 0 {
		if _, cerrs := c.commit(key.KeyID, acksOf(t, res, abc), abc); len(cerrs) > 0 {
			t.Fatal(cerrs)
		}
		t.Errorf("a refresh to host-chosen epoch %d was run and committed", top)
	}
	k, err := c.encl["a"].share(key.KeyID)
	if err != nil {
		t.Fatal(err)
	}
	// The admins now want to refresh again (e.g. to remove a suspect party).
	_, errs = c.reshareSession("a", key, abc, 1, 0, c.reshareCeremony(key, k.rec.Epoch, abc, 1, abc, 1, nil))
	if len(errs) > 0 {
		t.Fatalf("no further refresh is possible from epoch %d: %v", k.rec.Epoch, errs)
	}
}

// TestLifecycleReviewReplayedOldCommitDestroysPendingEpoch: a party that already
// committed epoch 1 answers a replay of epoch 1's commit "already-committed"
// (reshare.go:501, checked before the "superseded" case) and then destroys
// every other epoch (destroyEpochsExcept keep=1), including the pending
// epoch 2 of a later reshare whose commit has already reached the others.
// a's host alone does it: b and c commit epoch 2 (destroying epoch 1), a's
// host feeds a the old commit first. Epoch 2 is {a,b,c} at t=2, so the key
// is lost.
func TestLifecycleReviewReplayedOldCommitDestroysPendingEpoch(t *testing.T) {
	c := newCluster(t)
	key := c.keygen(api.AlgEdDSAEd25519)
	abc := []string{"a", "b", "c"}
	res1, errs := c.reshareSession("a", key, abc, 1, 1, c.reshareCeremony(key, 0, abc, 1, abc, 1, nil))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	acks1 := acksOf(t, res1, abc)
	if _, errs := c.commit(key.KeyID, acks1, abc); len(errs) > 0 {
		t.Fatal(errs)
	}
	res2, errs := c.reshareSession("a", key, abc, 2, 2, c.reshareCeremony(key, 1, abc, 1, abc, 2, nil))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	acks2 := acksOf(t, res2, abc)
	if _, errs := c.commit(key.KeyID, acks2, []string{"b", "c"}); len(errs) > 0 {
		t.Fatal(errs)
	}
	// a's host replays epoch 1's commit.
	if r, errs := c.commit(key.KeyID, acks1, []string{"a"}); errs["a"] == nil && len(r["a"].Destroyed) > 0 {
		t.Errorf("a replayed commit of epoch 1 destroyed epochs %v (outcome %q)", r["a"].Destroyed, r["a"].Outcome)
	}
	if _, errs := c.commit(key.KeyID, acks2, []string{"a"}); errs["a"] != nil {
		t.Errorf("epoch 2 can no longer be committed on a: %v", errs["a"])
	}
}
