package party

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sealsign/sealsign/enclave/api"
	"github.com/sealsign/sealsign/governance/keys"
	"github.com/sealsign/sealsign/governance/policy"
)

// TestInitVerifiesGenesisPolicy: an enclave accepts a governed manifest only
// when its genesis policy carries the admin quorum's signatures for this
// cluster, and reports the policy version it enforces.
func TestInitVerifiesGenesisPolicy(t *testing.T) {
	raw, err := os.ReadFile("../../governance/policy/testdata/default-policy.json")
	if err != nil {
		t.Fatal(err)
	}
	type admin struct {
		pub  keys.PublicKey
		priv ed25519.PrivateKey
	}
	var admins []admin
	for _, id := range []string{"admin-1", "admin-2", "admin-3"} {
		pub, priv, _ := ed25519.GenerateKey(rand.Reader)
		admins = append(admins, admin{keys.PublicKey{ID: id, Owner: id, Algorithm: keys.Ed25519, Key: pub}, priv})
	}
	clientPub, _, _ := ed25519.GenerateKey(rand.Reader)
	signed := func(cluster string, signers ...int) []byte {
		p, err := policy.ParseJSON([]byte(strings.Replace(string(raw), `"cluster_id": "demo"`, `"cluster_id": "`+cluster+`"`, 1)))
		if err != nil {
			t.Fatal(err)
		}
		enc, err := p.Encode()
		if err != nil {
			t.Fatal(err)
		}
		sp := policy.SignedPolicy{Policy: enc}
		for _, i := range signers {
			sig, err := policy.SignPolicy(enc, admins[i].pub.ID, admins[i].priv)
			if err != nil {
				t.Fatal(err)
			}
			sp.Signatures = append(sp.Signatures, sig)
		}
		b, err := sp.Encode()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	manifest := func(pol []byte) []byte {
		m := api.Manifest{Version: 1, ClusterID: "gov", Threshold: 1, Governance: &api.Governance{
			Admins:      []keys.PublicKey{admins[0].pub, admins[1].pub, admins[2].pub},
			AdminQuorum: 2,
			Clients:     []keys.PublicKey{{ID: "client-1", Owner: "ops", Algorithm: keys.Ed25519, Key: clientPub}},
			Policy:      pol,
		}}
		for _, id := range []string{"a", "b"} {
			m.Parties = append(m.Parties, api.ManifestParty{ID: id, Kind: "dev", PCRs: map[string]string{"0": hex.EncodeToString(make([]byte, 48))}})
		}
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	now := time.Unix(1767225600+3600, 0)
	for _, tt := range []struct {
		name   string
		policy []byte
		want   string // "" = accepted
	}{
		{"quorum of two", signed("gov", 0, 2), ""},
		{"one admin only", signed("gov", 1), "genesis policy refused"},
		{"same admin twice", signed("gov", 1, 1), "genesis policy refused"},
		{"policy of another cluster", signed("other", 0, 1), `cluster "other"`},
		{"not a signed policy", []byte("garbage"), "genesis policy refused"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := New(Config{Rand: rand.Reader, Measurement: make([]byte, 48), Clock: func() time.Time { return now }})
			_, err := e.init(context.Background(), &api.InitRequest{PartyID: "a", Manifest: manifest(tt.policy)})
			if tt.want == "" {
				if err != nil {
					t.Fatalf("init: %v", err)
				}
				if v := e.status().PolicyVersion; v != 1 {
					t.Fatalf("policy version %d, want 1", v)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("init = %v; want an error containing %q", err, tt.want)
			}
			if e.status().Initialised {
				t.Fatal("enclave initialised with a refused policy")
			}
		})
	}
}
