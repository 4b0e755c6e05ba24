package e2e

import (
	"context"
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sealsign/sealsign/enclave/api"
	"github.com/sealsign/sealsign/host/devcluster"
)

func upWith(t *testing.T, o devcluster.Options) *devcluster.Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	o.BinDir, o.PreParamsNoRefill, o.InsecurePreParamsFixture, o.PolicyJSON = binDir(t), true, fixture(t), []byte(permissivePolicy)
	c, err := devcluster.Up(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Down() })
	return c
}

// killDuringSession stops party victim once its enclave runs a session,
// while run (a refresh or reshare) is under way; it returns run's error.
func killDuringSession(t *testing.T, c *devcluster.Cluster, victim string, run func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- run() }()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		h, err := c.Client(victim).Health(context.Background())
		if err == nil && h.Enclave != nil && h.Enclave.Sessions > 0 {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("the ceremony ended before %s was killed: %v", victim, err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never joined the session", victim)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := c.Stop(victim); err != nil {
		t.Fatal(err)
	}
	return <-done
}

// TestRefreshKilledAndRerun refreshes a real GG18 key, kills a party in the
// middle of the session, checks the key still signs at its old epoch,
// restarts the party, reruns the refresh to completion and signs with the
// new shares; the old epoch's blob no longer opens.
func TestRefreshKilledAndRerun(t *testing.T) {
	c := upWith(t, devcluster.Options{Dir: shortDir(t), PreParamsPool: 3})
	ctx := context.Background()
	waitPreParams(t, c)
	k, err := c.CreateKey(ctx, api.AlgECDSASecp256k1)
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256([]byte("lifecycle"))
	sign := func(signers ...string) {
		t.Helper()
		r, err := signRaw(t, c, c.Client(signers[0]), k.ID, digest[:], signers...)
		if err != nil {
			t.Fatalf("sign with %v: %v", signers, err)
		}
		if err := devcluster.VerifyECDSA(k.PublicKey, digest[:], r.Signatures[0], r.RecoveryIDs[0]); err != nil {
			t.Fatal(err)
		}
	}
	sign("a", "b")
	// A copy of c's sealed share as it is now (the store is read with c
	// stopped: bbolt is single-process).
	if err := c.Stop("c"); err != nil {
		t.Fatal(err)
	}
	oldBlob := readBlob(t, c, "c", "share/"+k.ID+"/0")
	if err := c.Restart(ctx, "c", ""); err != nil {
		t.Fatal(err)
	}

	err = killDuringSession(t, c, "c", func() error { _, err := c.Reshare(ctx, "a", k.ID, nil, 0); return err })
	if err == nil || !strings.Contains(err.Error(), "nothing was destroyed") {
		t.Fatalf("refresh with c killed: %v", err)
	}
	sign("a", "b") // the old epoch is still in force
	if err := c.Restart(ctx, "c", ""); err != nil {
		t.Fatal(err)
	}
	res, err := c.Reshare(ctx, "a", k.ID, nil, 0)
	if err != nil {
		t.Fatalf("rerun refresh: %v", err)
	}
	if res.Key.PublicKey != k.PublicKey || res.Epoch == 0 || len(res.Commits) != 3 {
		t.Fatalf("refresh result: %+v", res)
	}
	for _, cm := range res.Commits {
		if cm.Outcome != "committed" || len(cm.Destroyed) == 0 || cm.Destroyed[0] != 0 {
			t.Fatalf("commit on %s: %+v", cm.PartyID, cm)
		}
	}
	sign("b", "c")
	sign("a", "c")

	// c's old sealed share, handed back by its host after a restart, no
	// longer opens: the epoch's key is gone from c's token.
	c.Down()
	st := openStore(t, c, "c")
	if _, err := st.Blob("share/" + k.ID + "/0"); err == nil {
		t.Fatal("c's host still holds the old epoch's blob after the refresh")
	}
	if err := st.PutBlob("share/"+k.ID+"/0", oldBlob); err != nil {
		t.Fatal(err)
	}
	st.Close()
	c = upWith(t, devcluster.Options{Dir: c.Dir, PreParamsPool: 3})
	h, err := c.Client("c").Health(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range h.Refused {
		if f.Name == "share/"+k.ID+"/0" {
			found = strings.Contains(f.Error, "does not exist")
		}
	}
	if !found {
		t.Fatalf("the old epoch's blob was not refused as destroyed: %+v", h.Refused)
	}
	sign("a", "c") // and c still signs with the new epoch
}

// TestReshareGrowShrink takes a 2-of-3 key to 3-of-5 with two new parties
// (killing a new party mid-session once), signs with several 3-party sets,
// then removes two parties, who can no longer take part.
func TestReshareGrowShrink(t *testing.T) {
	all := []string{"a", "b", "c", "d", "e"}
	c := upWith(t, devcluster.Options{Dir: shortDir(t), Parties: all, NoPreParams: true})
	ctx := context.Background()
	k, err := c.CreateKeyAmong(ctx, api.AlgEdDSAEd25519, []string{"a", "b", "c"}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if h, err := c.Client("d").Health(ctx); err != nil || len(h.Enclave.Keys) != 0 {
		t.Fatalf("d holds a key it was not part of: %+v %v", h, err)
	}
	msg := []byte("committee change")
	signVia := func(host string, signers ...string) error {
		r, err := signRaw(t, c, c.Client(host), k.ID, msg, signers...)
		if err == nil {
			err = devcluster.VerifyEd25519(k.PublicKey, msg, r.Signatures[0])
		}
		return err
	}
	sign := func(signers ...string) error { return signVia(signers[0], signers...) }
	err = killDuringSession(t, c, "e", func() error { _, err := c.Reshare(ctx, "a", k.ID, all, 2); return err })
	if err == nil {
		t.Fatal("reshare with e killed succeeded")
	}
	t.Logf("reshare with e killed: %v", err)
	if err := sign("a", "c"); err != nil {
		t.Fatalf("2-of-3 after the failed reshare: %v", err)
	}
	if err := c.Restart(ctx, "e", ""); err != nil {
		t.Fatal(err)
	}
	res, err := c.Reshare(ctx, "a", k.ID, all, 2)
	if err != nil {
		b, _ := os.ReadFile(filepath.Join(c.Dir, "party-a", "host.log"))
		t.Logf("%s", b)
		t.Fatalf("rerun reshare: %v", err)
	}
	if res.Key.Threshold != 2 || len(res.Key.Parties) != 5 {
		t.Fatalf("reshare result: %+v", res.Key)
	}
	for _, set := range [][]string{{"a", "d", "e"}, {"b", "c", "d"}, {"c", "d", "e"}} {
		if err := sign(set...); err != nil {
			t.Fatalf("3-of-5 with %v: %v", set, err)
		}
	}
	if err := sign("a", "b"); err == nil {
		t.Fatal("two parties signed a 3-of-5 key")
	}

	res, err = c.Reshare(ctx, "c", k.ID, []string{"c", "d", "e"}, 1)
	if err != nil {
		t.Fatalf("remove a and b: %v", err)
	}
	removed := 0
	for _, cm := range res.Commits {
		if cm.Outcome == "removed" {
			removed++
		}
	}
	if removed != 2 {
		t.Fatalf("commits: %+v", res.Commits)
	}
	if err := sign("d", "e"); err != nil {
		t.Fatalf("2-of-3 without a and b: %v", err)
	}
	if err := signVia("c", "a", "c"); err == nil || !strings.Contains(err.Error(), `"a"`) {
		t.Fatalf("a removed party signing: %v", err)
	}
	for _, p := range []string{"a", "b"} {
		if h, err := c.Client(p).Health(ctx); err != nil || len(h.Enclave.Keys) != 0 {
			t.Fatalf("removed %s still holds keys: %+v %v", p, h, err)
		}
	}
}
