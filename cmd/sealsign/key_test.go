package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/sealsign/sealsign/enclave/api"
	"github.com/sealsign/sealsign/governance/ceremony"
	"github.com/sealsign/sealsign/governance/keys"
	"github.com/sealsign/sealsign/governance/policy"
	"github.com/sealsign/sealsign/host/server"
)

// TestKeyCreateCeremony: key create signs a keygen ceremony for the
// manifest's parties and threshold with every --admin-key and posts it.
func TestKeyCreateCeremony(t *testing.T) {
	dir := t.TempDir()
	a1, f1 := govKey(t, dir, "admin-1", "alice", keys.Ed25519)
	a2, f2 := govKey(t, dir, "admin-2", "bob", keys.ECDSAP256)
	cl, _ := govKey(t, dir, "client-1", "ops", keys.Ed25519)
	manifest := writeManifestAdmins(t, dir, []keys.PublicKey{a1.Public, a2.Public}, []keys.PublicKey{cl.Public}, nil)
	admins, err := keys.NewSet([]keys.PublicKey{a1.Public, a2.Public})
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		cer *ceremony.Ceremony
		by  []string
		err error
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req server.CreateKeyRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || r.URL.Path != "/v1/keys" {
			http.Error(w, "bad", 400)
			return
		}
		got.cer, got.by, got.err = ceremony.Verify(req.Ceremony, policy.Admins{Keys: admins, Quorum: 2}, "demo", time.Now(), 0)
		json.NewEncoder(w).Encode(server.KeyJSON{ID: "k1", Algorithm: req.Algorithm})
	}))
	defer srv.Close()

	out, _ := wantSealsign(t, 0, "key", "create", "--alg", api.AlgEdDSAEd25519, "--host", srv.URL, "--manifest", manifest, "--admin-key", f1, "--admin-key", f2)
	mustContain(t, "key create output", out, `"key_id": "k1"`)
	if got.err != nil {
		t.Fatalf("posted ceremony: %v", got.err)
	}
	if c := got.cer; c.Kind != ceremony.KindKeygen || c.Algorithm != api.AlgEdDSAEd25519 || len(c.Parties) != 2 || c.Threshold != 1 || len(got.by) != 2 {
		t.Fatalf("posted ceremony %+v by %v", c, got.by)
	}

	_, errs := wantSealsign(t, 2, "key", "create", "--alg", api.AlgEdDSAEd25519, "--host", srv.URL, "--admin-key", f1)
	mustContain(t, "without a manifest", errs, "pass --manifest FILE")
	_, errs = wantSealsign(t, 2, "key", "create", "--alg", api.AlgEdDSAEd25519, "--host", srv.URL, "--manifest", manifest)
	mustContain(t, "without admin keys", errs, "pass --admin-key FILE once per admin")
}
