package party

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sealsign/sealsign/enclave/api"
	"github.com/sealsign/sealsign/enclave/audit"
	"github.com/sealsign/sealsign/enclave/session"
	"github.com/sealsign/sealsign/governance/ceremony"
	"github.com/sealsign/sealsign/governance/keys"
)

var ceremonySeq int

// ceremony is a keygen ceremony for alg over every party at the manifest's
// threshold, valid from now for ten minutes, changed by mod (if any) and
// signed by the fixture admins at the indexes given (admin-1 and admin-2
// when none).
func (c *cluster) ceremony(alg string, mod func(*ceremony.Ceremony), signers ...int) []byte {
	c.t.Helper()
	if len(signers) == 0 {
		signers = []int{0, 1}
	}
	ceremonySeq++
	now := c.clock()
	cer := ceremony.Ceremony{
		Format: ceremony.FormatV1, ID: fmt.Sprintf("keygen-test-%08d", ceremonySeq), ClusterID: "test", Kind: ceremony.KindKeygen,
		Algorithm: alg, Parties: slices.Clone(c.ids), Threshold: 1,
		IssuedAt: now.Unix(), ExpiresAt: now.Add(10 * time.Minute).Unix(),
	}
	if mod != nil {
		mod(&cer)
	}
	var by []*keys.PrivateKey
	for _, i := range signers {
		by = append(by, c.gov.admins[i])
	}
	b, err := ceremony.New(cer, by...)
	if err != nil {
		c.t.Fatal(err)
	}
	return b
}

func TestKeygenCeremony(t *testing.T) {
	c := newCluster(t)
	ctx := context.Background()
	alg := api.AlgEdDSAEd25519
	keygen := func(cer []byte) *api.ProposeRequest {
		return &api.ProposeRequest{Kind: api.KindKeygen, Algorithm: alg, Parties: c.ids, Ceremony: cer}
	}

	t.Run("no ceremony", func(t *testing.T) {
		if _, err := c.encl["a"].propose(ctx, keygen(nil)); err == nil || !strings.Contains(err.Error(), "no ceremony") {
			t.Fatalf("coordinator: %v", err)
		}
		// A coordinator that proposes anyway (or a host holding its key):
		// every other party refuses too.
		prop, err := c.encl["a"].propose(ctx, keygen(c.ceremony(alg, nil)))
		if err != nil {
			t.Fatal(err)
		}
		_, p, err := session.ParseProposal(prop.Proposal)
		if err != nil {
			t.Fatal(err)
		}
		p.Ceremony = nil
		_, errs := c.runProposal(c.resign("a", p), []string{"b", "c"})
		for _, id := range []string{"b", "c"} {
			if errs[id] == nil || !strings.Contains(errs[id].Error(), "no ceremony") {
				t.Fatalf("%s: %v", id, errs[id])
			}
		}
	})

	wrongSigners := []struct {
		name    string
		signers []int
		want    string
	}{
		{"one admin", []int{0}, "1 valid admin signatures of 2 needed"},
		{"same admin twice", []int{1, 1}, `"admin-2": key already signed`},
	}
	for _, tc := range wrongSigners {
		t.Run(tc.name, func(t *testing.T) {
			cer := c.ceremony(alg, nil, tc.signers...)
			if _, err := c.encl["a"].propose(ctx, keygen(cer)); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("coordinator: %v, want %q", err, tc.want)
			}
		})
	}
	for _, tc := range []struct {
		name string
		mod  func(*ceremony.Ceremony)
		want string
	}{
		{"other cluster", func(c *ceremony.Ceremony) { c.ClusterID = "other" }, `is for cluster "other", want "test"`},
		{"expired", func(c *ceremony.Ceremony) { c.IssuedAt, c.ExpiresAt = c.IssuedAt-600, c.IssuedAt-1 }, "expired at"},
		{"too long", func(c *ceremony.Ceremony) { c.ExpiresAt = c.IssuedAt + 2*3600 }, "lifetime too long"},
		{"other kind", func(c *ceremony.Ceremony) { c.Kind, c.KeyID = ceremony.KindRefresh, strings.Repeat("ab", 16) }, `kind "refresh", want "keygen"`},
		{"wrong algorithm", func(c *ceremony.Ceremony) { c.Algorithm = api.AlgECDSASecp256k1 }, `algorithm "ecdsa-secp256k1", proposal "eddsa-ed25519"`},
		{"wrong parties", func(c *ceremony.Ceremony) { c.Parties = []string{"a", "b"} }, "parties a,b, proposal a,b,c"},
		{"wrong threshold", func(c *ceremony.Ceremony) { c.Threshold = 2 }, "threshold 2, proposal 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cer := c.ceremony(alg, tc.mod)
			if _, err := c.encl["a"].propose(ctx, keygen(cer)); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("coordinator: %v, want %q", err, tc.want)
			}
		})
	}

	t.Run("valid, then replayed", func(t *testing.T) {
		cer := c.ceremony(alg, nil)
		res, errs := c.session("a", *keygen(cer))
		if len(errs) > 0 {
			t.Fatal(errs)
		}
		key := res["a"]
		for _, id := range c.ids {
			var found bool
			for _, e := range auditEntries(t, c.hosts[id]) {
				b, ok := e.body.(*audit.Ceremony)
				if !ok || b.Kind != "keygen" || b.KeyID != key.KeyID {
					continue
				}
				found = true
				if !slices.Equal(b.AuthorisedBy, []string{"admin-1", "admin-2"}) || !strings.HasPrefix(b.Detail["ceremony_id"], "keygen-test-") {
					t.Errorf("%s: keygen audited as authorised by %v, ceremony %q", id, b.AuthorisedBy, b.Detail["ceremony_id"])
				}
			}
			if !found {
				t.Errorf("%s: no keygen ceremony entry for key %s", id, key.KeyID)
			}
		}
		// The same ceremony again: a fresh proposal (new key id, nonce),
		// refused by the coordinator, and by every party when forced on
		// them.
		if _, err := c.encl["a"].propose(ctx, keygen(cer)); err == nil || !strings.Contains(err.Error(), "already ran") {
			t.Fatalf("coordinator: replay %v", err)
		}
		_, p, err := session.ParseProposal(c.forcedKeygen(cer))
		if err != nil {
			t.Fatal(err)
		}
		_, errs = c.runProposal(c.resign("a", p), c.ids)
		for _, id := range c.ids {
			if errs[id] == nil || !strings.Contains(errs[id].Error(), "already ran") {
				t.Fatalf("%s: replay %v", id, errs[id])
			}
		}
	})

	t.Run("sign proposal carrying a ceremony", func(t *testing.T) {
		p := &session.Proposal{Version: 1, Kind: api.KindSign, Algorithm: alg, KeyID: "k", Parties: []string{"a", "b"}, Threshold: 1,
			Message: []byte("m"), Coordinator: "a", Nonce: make([]byte, 32), Ceremony: []byte{1}}
		if err := p.Check(); err == nil || !strings.Contains(err.Error(), "carries a ceremony") {
			t.Fatalf("Check: %v", err)
		}
	})
}

// forcedKeygen is a keygen proposal for cer that a's enclave would not make
// (cer already ran there), built by hand with a fresh key id and nonce.
func (c *cluster) forcedKeygen(cer []byte) []byte {
	c.t.Helper()
	e := c.encl["a"]
	p := &session.Proposal{
		Version: 1, Kind: api.KindKeygen, Algorithm: api.AlgEdDSAEd25519, KeyID: "forced-keygen-key",
		Parties: slices.Clone(c.ids), Threshold: 1, Coordinator: "a", Nonce: make([]byte, 32),
		CreatedMS: c.clock().UnixMilli(), Manifest: e.manifestHash, Ceremony: cer,
	}
	p.Nonce[0] = 1
	return c.resign("a", p)
}
