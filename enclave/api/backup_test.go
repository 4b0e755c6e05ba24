package api

import (
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"testing"

	"github.com/sealsign/sealsign/governance/keys"
)

func TestManifestRecoveryKeys(t *testing.T) {
	rk := func(id, kem string) RecoveryKey {
		k, err := RecoveryKEM(kem)
		if err != nil {
			t.Fatal(err)
		}
		priv, err := k.GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		return RecoveryKey{ID: id, KEM: kem, PublicKey: priv.PublicKey().Bytes()}
	}
	key := func(id string) keys.PublicKey {
		pub, _, _ := ed25519.GenerateKey(rand.Reader)
		return keys.PublicKey{ID: id, Owner: id, Algorithm: keys.Ed25519, Key: pub}
	}
	r1, r2 := rk("recovery-1", KEMX25519), rk("recovery-2", KEMMLKEM768X25519)
	good := func() *Governance {
		return &Governance{Admins: []keys.PublicKey{key("admin-1"), key("admin-2")}, AdminQuorum: 2,
			Clients: []keys.PublicKey{key("client-1")}, Policy: []byte{1}, Recovery: []RecoveryKey{r1, r2}}
	}
	for _, tt := range []struct {
		name   string
		mutate func(g *Governance)
		want   string
	}{
		{"valid", func(*Governance) {}, ""},
		{"none", func(g *Governance) { g.Recovery = nil }, ""},
		{"bad id", func(g *Governance) { g.Recovery[0].ID = "no spaces" }, `recovery key id "no spaces" invalid`},
		{"unknown kem", func(g *Governance) { g.Recovery[0].KEM = "rsa-oaep" }, `recovery kem "rsa-oaep" unknown`},
		{"kem of the other key", func(g *Governance) { g.Recovery[0].KEM = KEMMLKEM768X25519 }, `recovery key "recovery-1": mlkem768-x25519 public key (32 bytes) invalid`},
		{"short key", func(g *Governance) { g.Recovery[1].PublicKey = g.Recovery[1].PublicKey[:100] }, "public key (100 bytes) invalid"},
		{"duplicate id", func(g *Governance) { g.Recovery[1].ID = "recovery-1" }, `recovery key id "recovery-1" listed twice`},
		{"id of an admin", func(g *Governance) { g.Recovery[1].ID = "admin-1" }, `key id "admin-1" is both`},
		{"too many", func(g *Governance) {
			for i := 0; len(g.Recovery) <= MaxRecoveryKeys; i++ {
				r := rk("r-"+strings.Repeat("x", i+1), KEMX25519)
				g.Recovery = append(g.Recovery, r)
			}
		}, "recovery keys, limit 16"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g := good()
			tt.mutate(g)
			_, err := g.Sets()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Sets: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Sets = %v; want an error containing %q", err, tt.want)
			}
		})
	}
}
