package approval_test

import (
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"time"

	"github.com/sealsign/sealsign/governance/approval"
	"github.com/sealsign/sealsign/governance/keys"
)

func Example() {
	alice := ed25519.NewKeyFromSeed(make([]byte, 32))
	bobSeed := make([]byte, 32)
	bobSeed[0] = 1
	bob := ed25519.NewKeyFromSeed(bobSeed)
	approvers, _ := keys.NewSet([]keys.PublicKey{
		{ID: "alice-laptop", Owner: "alice", Algorithm: keys.Ed25519, Key: alice.Public().(ed25519.PublicKey)},
		{ID: "bob-yubikey", Owner: "bob", Algorithm: keys.Ed25519, Key: bob.Public().(ed25519.PublicKey)},
	})
	groups := approval.Groups{"finance": {"alice-laptop", "bob-yubikey"}}
	now := time.Unix(1_760_000_000, 0)

	// What the enclave knows about the request (request.Digest of the
	// signed request, tx.Summary.PayloadHash, the policy in force).
	subject := approval.Subject{
		ClusterID:     "acme-prod",
		RequestID:     "pay-2025-10-09-0001",
		RequestDigest: sha256.Sum256([]byte("the signed request")),
		PayloadHash:   sha256.Sum256([]byte("the payload")),
		PolicyVersion: 3,
	}
	decide := func(keyID, decision, reason string, priv ed25519.PrivateKey) []byte {
		signed, err := approval.New(approval.Approval{
			Format: approval.FormatV1, ClusterID: subject.ClusterID, RequestID: subject.RequestID,
			RequestDigest: subject.RequestDigest, PayloadHash: subject.PayloadHash,
			PolicyVersion: subject.PolicyVersion, ApproverKeyID: keyID, Decision: decision, Reason: reason,
			IssuedAt: now.Unix(), ExpiresAt: now.Add(time.Hour).Unix(),
		}, priv)
		if err != nil {
			panic(err)
		}
		return signed
	}

	tally := approval.NewTally(approvers, subject)
	if _, err := tally.Add(decide("alice-laptop", approval.Approve, "", alice), now); err != nil {
		fmt.Println(err)
	}
	fmt.Printf("%+v\n", tally.Verified(groups))

	if _, err := tally.Add(decide("bob-yubikey", approval.Reject, "unknown vendor", bob), now); err != nil {
		fmt.Println(err)
	}
	fmt.Println(tally.Rejected())

	// Output:
	// [{KeyID:alice-laptop Owner:alice Groups:[finance]}]
	// true bob-yubikey unknown vendor
}
