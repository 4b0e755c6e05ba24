package attestation_test

import (
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/sealsign/sealsign/attestation"
)

// Verify a real AWS document at a time inside its certificate window,
// pinning its PCR0 and binding its nonce.
func ExampleVerify() {
	doc, _ := os.ReadFile("testdata/eu-west-1-2022-11-09.cose")
	rootPEM, _ := os.ReadFile("testdata/root.pem")
	blk, _ := pem.Decode(rootPEM)
	root, _ := x509.ParseCertificate(blk.Bytes)

	pcr0, _ := hex.DecodeString("22f9e1c949208da55eb01b9b9fc88f87454f77ba133f0d82320b509621c92482152a99d0a12335b97178c02d6f977d01")
	nonce, _ := hex.DecodeString("c678c86135de539d183acff58886d98dfb9823041af9f934bf909ac0f8d96245")
	d, err := attestation.Verify(doc, attestation.VerifyOptions{
		Roots: []*x509.Certificate{root},
		Time:  time.Date(2022, 11, 9, 23, 0, 0, 0, time.UTC),
		PCRs:  map[uint][]byte{0: pcr0},
		Nonce: nonce,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(d.ModuleID, d.Time().Format(time.RFC3339))

	// The same document with another PCR0 pinned.
	_, err = attestation.Verify(doc, attestation.VerifyOptions{
		Roots: []*x509.Certificate{root},
		Time:  time.Date(2022, 11, 9, 23, 0, 0, 0, time.UTC),
		PCRs:  map[uint][]byte{0: make([]byte, 48)},
	})
	var ce *attestation.CheckError
	if errors.Is(err, attestation.ErrMeasurement) && errors.As(err, &ce) {
		fmt.Println(ce.Check, ce.Reason)
	}
	fmt.Println(err)
	// Output:
	// i-04fd167167daacf3b-enc01845e97d0b3eb4e 2022-11-09T22:52:00Z
	// pcr0 mismatch
	// attestation: pcr0 mismatch: want 00000000…0000, got 22f9e1c9…7d01
}
