//go:build !cgo

package pkcs11

const noPKCS11Reason = "hsm/pkcs11: built without cgo; rebuild with CGO_ENABLED=1"
