package tpm_test

import (
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"

	attesttpm "github.com/sealsign/sealsign/attestation/tpm"
	"github.com/sealsign/sealsign/hsm/tpm"
)

// A party of kind "tpm" attests its identity key and the cluster manifest
// it runs under; a peer verifies the evidence against the AK pinned in the
// manifest and the expected enclave measurement in PCR 16.
func Example() {
	dir, err := os.MkdirTemp("", "sealsign-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)

	// The party: one TPM (here a dev simulator) for sealing and attestation.
	t, err := tpm.OpenSimulator(filepath.Join(dir, "party-a-tpm.seed"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer t.Close()
	if err := t.ExtendPCR(16, []byte("sealsign-enclave v1")); err != nil {
		fmt.Println(err)
		return
	}
	ak, err := attesttpm.NewAK(t) // shares the TPM's connection
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ak.Close()
	attester, err := attesttpm.NewAttester(ak, []int{0, 7, 16})
	if err != nil {
		fmt.Println(err)
		return
	}
	nonce := []byte("peer challenge 1")
	evidence, err := attester.Attest([]byte("identity public keys"), []byte("manifest hash"), nonce)
	if err != nil {
		fmt.Println(err)
		return
	}

	// The peer: the manifest pins the AK (PKIX DER) and PCR 16.
	akPub, err := x509.ParsePKIXPublicKey(ak.PublicBytes())
	if err != nil {
		fmt.Println(err)
		return
	}
	pcrs, err := t.ReadPCRs([]int{16}) // what the manifest would list
	if err != nil {
		fmt.Println(err)
		return
	}
	opts := attesttpm.VerifyOptions{
		AKPublic: akPub,
		PCRs:     pcrs,
		UserData: []byte("manifest hash"),
		Nonce:    nonce,
	}
	ev, err := attesttpm.VerifyEvidence(evidence, opts)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("verified: %s\n", ev.PublicKey)

	// A replayed document answers another challenge.
	opts.Nonce = []byte("peer challenge 2")
	_, err = attesttpm.VerifyEvidence(evidence, opts)
	fmt.Println(err)
	// Output:
	// verified: identity public keys
	// tpm: nonce mismatch: want 70656572206368616c6c656e67652032, got 70656572206368616c6c656e67652031
}
