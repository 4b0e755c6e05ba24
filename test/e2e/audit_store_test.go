package e2e

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sealsign/sealsign/enclave/api"
	"github.com/sealsign/sealsign/enclave/audit"
	"github.com/sealsign/sealsign/governance/canon"
	"github.com/sealsign/sealsign/host/client"
	"github.com/sealsign/sealsign/host/devcluster"
	"github.com/sealsign/sealsign/host/store"
	"github.com/sealsign/sealsign/host/store/pgtest"
)

// TestAuditStore: party a keeps its audit log in a real PostgreSQL server.
// While the server is down, every request a would take part in stops with
// an error naming the audit log (b and c still sign together); once it is
// back, signing resumes, and a's log is one verifiable chain with no gap and
// a fresh boot entry after the outage. b and c keep the embedded store.
func TestAuditStore(t *testing.T) {
	pgURL, stopPG, restartPG := pgtest.Start(t)
	dir := shortDir(t)
	ctx := context.Background()
	c := upWithAuditStores(t, dir, map[string]string{"a": pgURL})
	a, b := c.Client("a"), c.Client("b")

	key, err := c.CreateKey(ctx, api.AlgEdDSAEd25519)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	sign := func(cl *client.Client, signers ...string) error {
		t.Helper()
		n++
		msg := fmt.Appendf(nil, "audit store e2e %d", n)
		r, err := signRaw(t, c, cl, key.ID, msg, signers...)
		if err != nil {
			return err
		}
		return devcluster.VerifyEd25519(key.PublicKey, msg, r.Signatures[0])
	}
	mustSign := func(what string, cl *client.Client, signers ...string) {
		t.Helper()
		if err := sign(cl, signers...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	mustSign("a coordinates", a)
	mustSign("b coordinates, a signs", b, "a", "b")
	beforeOutage := auditSeqs(t, a)

	stopPG()
	outage := []struct {
		name    string
		cl      *client.Client
		signers []string
	}{
		{"a coordinates", a, nil},
		{"a only signs", b, []string{"a", "b"}},
	}
	for _, tc := range outage {
		err := sign(tc.cl, tc.signers...)
		if err == nil || !strings.Contains(err.Error(), "audit log") {
			t.Fatalf("%s with a's audit store down: %v; want a refusal naming the audit log", tc.name, err)
		}
		t.Logf("%s with a's audit store down: %v", tc.name, err)
	}
	mustSign("b and c during a's outage", b, "b", "c")

	restartPG()
	mustSign("a coordinates after the outage", a)
	mustSign("a signs after the outage", b, "a", "b")
	// A restarted host hands its enclave the tail from PostgreSQL.
	if err := c.Restart(ctx, "a", ""); err != nil {
		t.Fatal(err)
	}
	mustSign("a coordinates after a restart", a)

	res, err := a.Audit(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	entries := res.Entries
	boots := verifyAuditChain(t, "a", entries)
	if len(boots) < 3 || boots[0] != 1 {
		t.Fatalf("boot entries at seqs %v; want seq 1, one after the outage and one after the restart", boots)
	}
	if boots[1] <= beforeOutage[len(beforeOutage)-1] {
		t.Fatalf("boot entries at seqs %v; the log held %d entries before the outage, so a boot entry must follow them", boots, len(beforeOutage))
	}
	// What the host serves is what PostgreSQL holds, byte for byte.
	octx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	pg, err := store.OpenPostgres(octx, pgURL, "a")
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	stored, err := pg.Audit(1, len(entries)+10)
	if err != nil || len(stored) != len(entries) {
		t.Fatalf("postgres holds %d entries (%v), the host served %d", len(stored), err, len(entries))
	}
	for i := range stored {
		if !bytes.Equal(stored[i], entries[i]) {
			t.Fatalf("entry %d differs between postgres and GET /v1/audit", i+1)
		}
	}

	// The embedded store is still the default: b's log is there, a's is not.
	c.Down()
	sa := openStore(t, c, "a")
	if _, seq, err := sa.AuditTail(); err != nil || seq != 0 {
		t.Fatalf("a's embedded store holds audit entries up to %d (%v); a keeps its log in postgres", seq, err)
	}
	sa.Close()
	sb := openStore(t, c, "b")
	bEntries, err := sb.Audit(1, 100000)
	sb.Close()
	if err != nil || len(bEntries) == 0 {
		t.Fatalf("b's embedded audit log: %d entries, %v", len(bEntries), err)
	}
	verifyAuditChain(t, "b", bEntries)
}

func upWithAuditStores(t *testing.T, dir string, stores map[string]string) *devcluster.Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := devcluster.Up(ctx, devcluster.Options{Dir: dir, BinDir: binDir(t), PreParamsPool: 1, PreParamsNoRefill: true, InsecurePreParamsFixture: fixture(t),
		PolicyJSON: []byte(permissivePolicy), AuditStores: stores})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Down() })
	return c
}

// auditSeqs returns the seqs of a party's audit entries, as served.
func auditSeqs(t *testing.T, cl *client.Client) []uint64 {
	t.Helper()
	res, err := cl.Audit(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for _, b := range res.Entries {
		seqs = append(seqs, decodeEntry(t, b).Seq)
	}
	if len(seqs) == 0 {
		t.Fatal("empty audit log")
	}
	return seqs
}

// verifyAuditChain verifies party's whole log and returns the seqs of its
// boot entries. Every signer key is trusted here, but only from a boot
// entry (attestation-checked trust is the verifier's job, not this test's).
func verifyAuditChain(t *testing.T, party string, entries [][]byte) []uint64 {
	t.Helper()
	head, err := audit.VerifyWith(entries, audit.VerifyOptions{
		PartyID: party,
		Trust: func(_ []byte, boot *audit.Boot) error {
			if boot == nil {
				return fmt.Errorf("signer key without a boot entry")
			}
			return nil
		},
	})
	if err != nil {
		t.Fatalf("party %s's audit chain: %v", party, err)
	}
	var boots []uint64
	for i, b := range entries {
		e := decodeEntry(t, b)
		if e.Seq != uint64(i+1) {
			t.Fatalf("party %s: entry %d has seq %d: the log has a gap", party, i+1, e.Seq)
		}
		if e.Type == audit.TypeBoot {
			boots = append(boots, e.Seq)
		}
	}
	if head.Seq != uint64(len(entries)) {
		t.Fatalf("party %s: head at seq %d, %d entries", party, head.Seq, len(entries))
	}
	return boots
}

func decodeEntry(t *testing.T, b []byte) audit.Entry {
	t.Helper()
	var se audit.SignedEntry
	var e audit.Entry
	if err := canon.Unmarshal(b, &se); err != nil {
		t.Fatal(err)
	}
	if err := canon.Unmarshal(se.Entry, &e); err != nil {
		t.Fatal(err)
	}
	return e
}
