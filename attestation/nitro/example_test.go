package nitro_test

import (
	"crypto/rand"
	"fmt"
	"log"
	"time"

	"github.com/sealsign/sealsign/attestation"
	"github.com/sealsign/sealsign/attestation/nitro"
	"github.com/sealsign/sealsign/enclave/entropy"
)

// Inside a Nitro Enclave: seed the entropy mixer from the NSM, attest an
// identity key and a manifest hash, and check the document as a peer would.
// (Not run: it needs /dev/nsm.)
func Example() {
	if !nitro.Available() {
		log.Fatal("not inside a Nitro Enclave")
	}
	n, err := nitro.Open()
	if err != nil {
		log.Fatal(err)
	}
	defer n.Close()

	mixer, err := entropy.New(n, rand.Reader) // NSM randomness, mixed with the OS's
	if err != nil {
		log.Fatal(err)
	}
	nonce := make([]byte, 32)
	if _, err := mixer.Read(nonce); err != nil {
		log.Fatal(err)
	}
	identity, manifestHash := []byte("encoded identity keys"), make([]byte, 32)
	doc, err := n.Attest(identity, manifestHash, nonce)
	if err != nil {
		log.Fatal(err)
	}

	d, err := attestation.Verify(doc, attestation.VerifyOptions{
		Roots:     attestation.AWSRoots(),
		Time:      time.Now(),
		MaxAge:    time.Minute,
		PublicKey: identity,
		UserData:  manifestHash,
		Nonce:     nonce,
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s pcr0 %x\n", d.ModuleID, d.PCRs[0])
}
