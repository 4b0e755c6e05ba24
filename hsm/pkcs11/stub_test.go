//go:build !cgo || nopkcs11

package pkcs11

import (
	"errors"
	"testing"
)

func TestOpenFailsLoudlyWithoutPKCS11(t *testing.T) {
	_, err := Open("pkcs11:token=party-a?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=1234")
	if !errors.Is(err, ErrUnsupported) {
		t.Fatalf("got %v, want ErrUnsupported", err)
	}
	if err.Error() != noPKCS11Reason {
		t.Fatalf("got %q, want %q", err, noPKCS11Reason)
	}
	var tok *Token
	if _, err := tok.Read(make([]byte, 1)); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("Read: %v", err)
	}
}
