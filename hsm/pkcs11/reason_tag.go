//go:build cgo && nopkcs11

package pkcs11

const noPKCS11Reason = "hsm/pkcs11: built with the nopkcs11 tag; rebuild without it, with CGO_ENABLED=1"
