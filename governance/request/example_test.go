package request_test

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"github.com/sealsign/sealsign/governance/keys"
	"github.com/sealsign/sealsign/governance/request"
	"github.com/sealsign/sealsign/governance/tx"
)

func Example() {
	// The client's API key; its public half is listed in the cluster
	// manifest.
	priv := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	clients, _ := keys.NewSet([]keys.PublicKey{{
		ID: "ops-bot", Owner: "ops", Algorithm: keys.Ed25519, Key: priv.Public().(ed25519.PublicKey),
	}})
	now := time.Unix(1_760_000_000, 0)

	// Client side.
	signed, err := request.New(request.Request{
		Format:      request.FormatV1,
		ID:          "pay-2025-10-09-0001",
		ClusterID:   "acme-prod",
		ClientKeyID: "ops-bot",
		KeyID:       "treasury-eth",
		Kind:        tx.KindRaw,
		Payload:     make([]byte, 32),
		IssuedAt:    now.Unix(),
		ExpiresAt:   now.Add(5 * time.Minute).Unix(),
	}, priv)
	if err != nil {
		fmt.Println(err)
		return
	}

	// Enclave side: verify, then admit once.
	var seen request.ReplayCache
	r, err := request.Verify(signed, clients, "acme-prod", now, request.DefaultMaxLifetime)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(r.ID, r.KeyID, r.Kind, seen.Admit(r, now))

	// The host replays the same bytes.
	r, _ = request.Verify(signed, clients, "acme-prod", now.Add(time.Minute), 0)
	err = seen.Admit(r, now.Add(time.Minute))
	fmt.Println(errors.Is(err, request.ErrReplay), err)

	// Output:
	// pay-2025-10-09-0001 treasury-eth raw-digest <nil>
	// true request: replay: request "pay-2025-10-09-0001" already accepted
}
