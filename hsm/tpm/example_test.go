package tpm_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/sealsign/sealsign/hsm"
	"github.com/sealsign/sealsign/hsm/tpm"
)

// A party of kind "tpm" seals its key share under a PCR policy that covers
// its enclave measurement; a different enclave binary cannot open it.
func Example() {
	dir, err := os.MkdirTemp("", "sealsign-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)

	// A dev party: a simulator whose seed is kept in a file. It protects
	// nothing; production opens /dev/tpmrm0 with tpm.Open.
	t, err := tpm.OpenSimulator(filepath.Join(dir, "party-a-tpm.seed"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer t.Close()

	// The enclave measures itself into PCR 16 at start.
	if err := t.ExtendPCR(16, []byte("sealsign-enclave v1")); err != nil {
		fmt.Println(err)
		return
	}
	sealer, err := t.Sealer([]int{7, 16}) // secure-boot state and enclave
	if err != nil {
		fmt.Println(err)
		return
	}

	b := hsm.Binding{PartyID: "party-a", KeyID: "key-1", Epoch: 1, Kind: "share/ecdsa-secp256k1"}
	blob, err := hsm.SealBlob(sealer, b, []byte("my key share"))
	if err != nil {
		fmt.Println(err)
		return
	}
	share, err := hsm.OpenBlob(sealer, b, blob)
	fmt.Printf("%s %v\n", share, err)

	// Another binary measured on top: the policy no longer holds.
	if err := t.ExtendPCR(16, []byte("something else")); err != nil {
		fmt.Println(err)
		return
	}
	_, err = hsm.OpenBlob(sealer, b, blob)
	fmt.Println(errors.Is(err, tpm.ErrPolicy), errors.Is(err, hsm.ErrTampered))
	// Output:
	// my key share <nil>
	// true false
}

// The TPM is an io.Reader over TPM2_GetRandom; mix it with the OS RNG.
func ExampleTPM_Read() {
	dir, err := os.MkdirTemp("", "sealsign-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	t, err := tpm.OpenSimulator(filepath.Join(dir, "tpm.seed"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer t.Close()

	buf := make([]byte, 100) // more than one TPM2_GetRandom returns
	n, err := t.Read(buf)
	fmt.Println(n, err)
	// Output:
	// 100 <nil>
}
