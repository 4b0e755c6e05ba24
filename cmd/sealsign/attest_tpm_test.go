package main

import (
	"bytes"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	attesttpm "github.com/sealsign/sealsign/attestation/tpm"
	"github.com/sealsign/sealsign/enclave/api"
	"github.com/sealsign/sealsign/host/server"
	hsmtpm "github.com/sealsign/sealsign/hsm/tpm"
)

// TestAttestFetchTPM runs fetch against a host API whose party is of kind
// tpm, with evidence quoted by the real TPM simulator: fresh evidence bound
// to the CLI's nonce verifies under the manifest's pinned AK and PCR23;
// replays, another binary and another AK do not.
func TestAttestFetchTPM(t *testing.T) {
	tp, err := hsmtpm.OpenSimulator(filepath.Join(t.TempDir(), "sim.seed"))
	if err != nil {
		t.Fatalf("TPM simulator: %v", err)
	}
	defer tp.Close()
	binary := sha512.Sum384([]byte("sealsign-enclave"))
	if err := tp.ExtendPCR(api.TPMMeasurePCR, binary[:]); err != nil {
		t.Fatal(err)
	}
	ak, err := attesttpm.NewAK(tp)
	if err != nil {
		t.Fatal(err)
	}
	defer ak.Close()
	att, err := attesttpm.NewAttester(ak, []int{api.TPMMeasurePCR})
	if err != nil {
		t.Fatal(err)
	}
	identity := api.Identity{PartyID: "b", SigningKey: bytes.Repeat([]byte{1}, 32), HPKEKey: bytes.Repeat([]byte{2}, 32)}
	pub, err := api.Marshal(identity)
	if err != nil {
		t.Fatal(err)
	}
	manifest := func(pcr []byte, akHex string) (string, []byte) {
		m := &api.Manifest{Version: 1, ClusterID: "test", Threshold: 1, Parties: []api.ManifestParty{
			{ID: "a", Kind: "nitro", PCRs: map[string]string{"0": strings.Repeat("ab", 48)}},
			{ID: "b", Kind: "tpm", PCRs: map[string]string{"23": hex.EncodeToString(pcr)}, AK: akHex},
		}}
		b, _ := json.Marshal(m)
		path := filepath.Join(t.TempDir(), "manifest.json")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		h, err := m.Hash()
		if err != nil {
			t.Fatal(err)
		}
		return path, h
	}
	akHex := hex.EncodeToString(ak.PublicBytes())
	good, hash := manifest(hsmtpm.ExpectedPCR(binary[:]), akHex)
	rogue, _ := manifest(hsmtpm.ExpectedPCR([]byte("another build")), akHex)
	stale, err := att.Attest(pub, hash, bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	serve := func(replay bool) *httptest.Server {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			nonce, err := hex.DecodeString(r.URL.Query().Get("nonce"))
			if r.URL.Path != "/v1/attestation" || err != nil || len(nonce) != 32 {
				http.Error(w, `{"error":"bad request"}`, http.StatusBadRequest)
				return
			}
			doc := stale
			if !replay {
				if doc, err = att.Attest(pub, hash, nonce); err != nil {
					t.Error(err)
				}
			}
			_ = json.NewEncoder(w).Encode(server.AttestationResponse{PartyID: "b", Document: doc, Identity: identity})
		}))
		t.Cleanup(srv.Close)
		return srv
	}
	honest := serve(false)
	now := time.Now()

	out, errs := wantAttest(t, 0, "", now, "fetch", "--url", honest.URL, "--manifest", good)
	if !strings.HasPrefix(out, "valid: TPM evidence verified") || !strings.Contains(out, "pcr23        "+hex.EncodeToString(hsmtpm.ExpectedPCR(binary[:]))) || errs != "" {
		t.Errorf("stdout %s\nstderr %s", out, errs)
	}
	out, _ = wantAttest(t, 0, "", now, "fetch", "--url", honest.URL, "--manifest", good, "--json")
	var rep attestTPMReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil || !rep.Valid || rep.Kind != "tpm" || rep.Party != "b" || rep.AK != akHex || rep.Clock == nil {
		t.Errorf("JSON %s (%v)", out, err)
	}

	for _, tt := range []struct {
		name, url, manifest, msg string
	}{
		{"replayed evidence", serve(true).URL, good, "nonce"},
		{"another binary", honest.URL, rogue, "tpm: pcr23 mismatch"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, errs := wantAttest(t, 1, "", now, "fetch", "--url", tt.url, "--manifest", tt.manifest, "--json")
			var rep attestTPMReport
			if !strings.Contains(errs, tt.msg) || !strings.HasPrefix(errs, "sealsign: ") || json.Unmarshal([]byte(out), &rep) != nil || rep.Valid || rep.Error == nil {
				t.Errorf("stderr %q, want %q; JSON %s", errs, tt.msg, out)
			}
		})
	}
}
