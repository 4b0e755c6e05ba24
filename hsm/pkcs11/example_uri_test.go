package pkcs11_test

import (
	"fmt"

	"github.com/sealsign/sealsign/hsm/pkcs11"
)

// A URI prints without its PIN, so it can be logged.
func ExampleParseURI() {
	u, err := pkcs11.ParseURI("pkcs11:token=party-a?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=1234")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(u.Token)
	fmt.Println(u)
	// Output:
	// party-a
	// pkcs11:token=party-a?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=REDACTED
}
