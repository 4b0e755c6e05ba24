package api

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/sealsign/sealsign/governance/keys"
)

func TestManifestTPMParties(t *testing.T) {
	p256, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	akDER, _ := x509.MarshalPKIXPublicKey(&p256.PublicKey)
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	edDER, _ := x509.MarshalPKIXPublicKey(edPub)
	pcr48 := strings.Repeat("ab", 48)
	pcr32 := strings.Repeat("cd", 32)
	dev := ManifestParty{ID: "a", Kind: "dev", PCRs: map[string]string{"0": pcr48}}
	for _, tt := range []struct {
		name string
		p    ManifestParty
		want string // "" = valid
	}{
		{"tpm party", ManifestParty{ID: "b", Kind: "tpm", PCRs: map[string]string{"23": pcr32}, AK: hex.EncodeToString(akDER)}, ""},
		{"tpm without ak", ManifestParty{ID: "b", Kind: "tpm", PCRs: map[string]string{"23": pcr32}}, `tpm party "b" needs ak`},
		{"tpm ak not DER", ManifestParty{ID: "b", Kind: "tpm", PCRs: map[string]string{"23": pcr32}, AK: "00ff"}, "not a PKIX public key"},
		{"tpm ak not P-256", ManifestParty{ID: "b", Kind: "tpm", PCRs: map[string]string{"23": pcr32}, AK: hex.EncodeToString(edDER)}, "must be an ECDSA P-256 key"},
		{"tpm with SHA-384 pcr", ManifestParty{ID: "b", Kind: "tpm", PCRs: map[string]string{"23": pcr48}, AK: hex.EncodeToString(akDER)}, "must be a SHA-256 bank PCR"},
		{"tpm pcr index beyond 23", ManifestParty{ID: "b", Kind: "tpm", PCRs: map[string]string{"24": pcr32}, AK: hex.EncodeToString(akDER)}, "must be a SHA-256 bank PCR 0..23"},
		{"dev with ak", ManifestParty{ID: "b", Kind: "dev", PCRs: map[string]string{"0": pcr48}, AK: hex.EncodeToString(akDER)}, `of kind "dev" has an ak`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := &Manifest{Version: 1, ClusterID: "c", Threshold: 1, Parties: []ManifestParty{dev, tt.p}}
			err := m.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				pol, err := m.AttestationPolicy("b")
				if err != nil || pol.Kind != "tpm" || pol.AKPublic == nil || len(pol.PCRs[23]) != 32 {
					t.Fatalf("AttestationPolicy = %+v, %v", pol, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate = %v; want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestManifestAttestationPolicy(t *testing.T) {
	m := &Manifest{Version: 1, ClusterID: "c", Threshold: 1, Parties: []ManifestParty{
		{ID: "a", Kind: "dev", PCRs: map[string]string{"0": strings.Repeat("ab", 48)}},
		{ID: "n", Kind: "nitro", PCRs: map[string]string{"0": strings.Repeat("ab", 48)}},
	}}
	if _, err := m.AttestationPolicy("z"); err == nil || !strings.Contains(err.Error(), `"z" is not a party`) {
		t.Fatalf("unknown party: %v", err)
	}
	pol, err := m.AttestationPolicy("n")
	if err != nil || pol.Kind != "nitro" || len(pol.DevRoots) != 0 || pol.AllowDebug {
		t.Fatalf("nitro policy %+v, %v: want no dev roots, no debug", pol, err)
	}
	m.DevRoots = []string{"not pem"}
	if _, err := m.AttestationPolicy("a"); err == nil || !strings.Contains(err.Error(), "dev_roots[0] is not a PEM certificate") {
		t.Fatalf("bad dev root: %v", err)
	}
}

func TestManifestGovernance(t *testing.T) {
	key := func(id string) keys.PublicKey {
		pub, _, _ := ed25519.GenerateKey(rand.Reader)
		return keys.PublicKey{ID: id, Owner: id, Algorithm: keys.Ed25519, Key: pub}
	}
	a1, a2, ap, cl := key("admin-1"), key("admin-2"), key("approver-1"), key("client-1")
	good := func() *Governance {
		return &Governance{Admins: []keys.PublicKey{a1, a2}, AdminQuorum: 2, Approvers: []keys.PublicKey{ap},
			Groups: map[string][]string{"treasury": {"approver-1"}}, Clients: []keys.PublicKey{cl}, Policy: []byte{1}}
	}
	for _, tt := range []struct {
		name   string
		mutate func(g *Governance)
		want   string
	}{
		{"valid", func(*Governance) {}, ""},
		{"quorum of one", func(g *Governance) { g.AdminQuorum = 1 }, "admin quorum 1 of 2 admins invalid"},
		{"quorum above admins", func(g *Governance) { g.AdminQuorum = 3 }, "admin quorum 3 of 2"},
		{"no clients", func(g *Governance) { g.Clients = nil }, "names no client key"},
		{"key in two roles", func(g *Governance) { g.Clients = []keys.PublicKey{a1} }, `key id "admin-1" is both`},
		{"group member not an approver", func(g *Governance) { g.Groups = map[string][]string{"treasury": {"client-1"}} }, "governance groups"},
		{"no genesis policy", func(g *Governance) { g.Policy = nil }, "no genesis policy"},
		{"bad admin key", func(g *Governance) { g.Admins[0].Key = []byte{1, 2} }, "governance admins"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g := good()
			tt.mutate(g)
			m := &Manifest{Version: 1, ClusterID: "c", Threshold: 1, Governance: g, Parties: []ManifestParty{
				{ID: "a", Kind: "dev", PCRs: map[string]string{"0": strings.Repeat("ab", 48)}},
				{ID: "b", Kind: "dev", PCRs: map[string]string{"0": strings.Repeat("ab", 48)}},
			}}
			err := m.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate = %v; want an error containing %q", err, tt.want)
			}
		})
	}
}
