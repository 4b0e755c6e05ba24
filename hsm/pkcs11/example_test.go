//go:build cgo && !nopkcs11

package pkcs11_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/sealsign/sealsign/hsm"
	"github.com/sealsign/sealsign/hsm/pkcs11"
	"github.com/sealsign/sealsign/hsm/pkcs11/softhsm"
)

// A party seals its key share under a key that never leaves its token, and
// only that party, key and epoch can open it again.
func Example() {
	dir, err := os.MkdirTemp("", "sealsign-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)

	// A throwaway SoftHSM2 token (sealsign dev up does the same).
	env, err := softhsm.Setup(dir)
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := env.InitToken("party-a", "so-pin-1234", "user-pin-1234"); err != nil {
		fmt.Println(err)
		return
	}
	pinFile := filepath.Join(dir, "party-a.pin")
	if err := os.WriteFile(pinFile, []byte("user-pin-1234\n"), 0o600); err != nil {
		fmt.Println(err)
		return
	}
	// SoftHSM finds its tokens through SOFTHSM2_CONF when the module loads.
	prev, had := os.LookupEnv("SOFTHSM2_CONF")
	os.Setenv("SOFTHSM2_CONF", env.ConfPath)
	defer func() {
		if had {
			os.Setenv("SOFTHSM2_CONF", prev)
		} else {
			os.Unsetenv("SOFTHSM2_CONF")
		}
	}()

	tok, err := pkcs11.Open(env.URI("party-a", pinFile))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer tok.Close()
	sealer, err := tok.Sealer("sealsign-seal", true) // created on first use
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

	b.PartyID = "party-b"
	_, err = hsm.OpenBlob(sealer, b, blob)
	fmt.Println(err)
	// Output:
	// my key share <nil>
	// hsm: sealed blob belongs to party "party-a", want party "party-b"
}
