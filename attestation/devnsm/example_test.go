package devnsm_test

import (
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/sealsign/sealsign/attestation"
	"github.com/sealsign/sealsign/attestation/devnsm"
)

// A dev party attests its identity key and manifest hash; a peer verifies
// the document with the same verifier production uses, trusting the dev
// root explicitly and pinning the party's PCR0.
func Example() {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	clock := func() time.Time { return now }

	ca, err := devnsm.NewCA(rand.Reader, now)
	if err != nil {
		panic(err)
	}
	pcr0, err := devnsm.MeasureSelf() // the enclave binary's measurement
	if err != nil {
		panic(err)
	}
	nsm, err := devnsm.New(ca, "party-a", map[uint][]byte{0: pcr0}, rand.Reader, clock)
	if err != nil {
		panic(err)
	}
	identity := []byte("encoded identity keys")
	manifestHash := make([]byte, 32)
	doc, err := nsm.Attest(identity, manifestHash, nil)
	if err != nil {
		panic(err)
	}

	d, err := attestation.Verify(doc, attestation.VerifyOptions{
		Roots:     []*x509.Certificate{ca.Cert()},
		Time:      now,
		MaxAge:    5 * time.Minute,
		PCRs:      map[uint][]byte{0: pcr0},
		PublicKey: identity,
		UserData:  manifestHash,
	})
	fmt.Println(d.ModuleID, len(d.PCRs), err)

	// Without the dev root among the trust anchors the document is refused.
	other, _ := devnsm.NewCA(rand.Reader, now)
	_, err = attestation.Verify(doc, attestation.VerifyOptions{Roots: []*x509.Certificate{other.Cert()}, Time: now})
	fmt.Println(errors.Is(err, attestation.ErrChain))
	// Output:
	// party-a 16 <nil>
	// true
}
