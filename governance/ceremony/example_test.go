package ceremony_test

import (
	"crypto/ed25519"
	"fmt"
	"time"

	"github.com/sealsign/sealsign/governance/ceremony"
	"github.com/sealsign/sealsign/governance/keys"
	"github.com/sealsign/sealsign/governance/policy"
)

func Example() {
	// Two admins of the manifest (quorum 2), each holding their own key.
	admin := func(id string, seed byte) *keys.PrivateKey {
		s := make([]byte, ed25519.SeedSize)
		s[0] = seed
		priv := ed25519.NewKeyFromSeed(s)
		return &keys.PrivateKey{Signer: priv, Public: keys.PublicKey{ID: id, Owner: id, Algorithm: keys.Ed25519, Key: priv.Public().(ed25519.PublicKey)}}
	}
	alice, bob := admin("admin-alice", 1), admin("admin-bob", 2)
	set, _ := keys.NewSet([]keys.PublicKey{alice.Public, bob.Public})
	admins := policy.Admins{Keys: set, Quorum: 2}
	now := time.Unix(1_760_000_000, 0)

	// The admins authorise one keygen.
	signed, err := ceremony.New(ceremony.Ceremony{
		Format: ceremony.FormatV1, ID: "keygen-2025-10-09-treasury", ClusterID: "acme-prod",
		Kind: ceremony.KindKeygen, Algorithm: "ecdsa-secp256k1", Parties: []string{"a", "b", "c"}, Threshold: 1,
		IssuedAt: now.Unix(), ExpiresAt: now.Add(10 * time.Minute).Unix(),
	}, alice, bob)
	if err != nil {
		panic(err)
	}

	// Every enclave verifies it and runs its id once.
	c, by, err := ceremony.Verify(signed, admins, "acme-prod", now, 0)
	fmt.Println(c.ID, by, err)
	seen, _ := ceremony.NewReplayCache(0)
	fmt.Println(seen.Admit(c, now))
	fmt.Println(seen.Admit(c, now))
	// Output:
	// keygen-2025-10-09-treasury [admin-alice admin-bob] <nil>
	// <nil>
	// ceremony: replay: ceremony "keygen-2025-10-09-treasury" already ran on this party; have the admins sign a new one
}
