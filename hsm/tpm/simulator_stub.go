//go:build !cgo || notpmsim

package tpm

// OpenSimulator is unavailable in this build: the TPM simulator needs cgo
// and OpenSSL's libcrypto, and the notpmsim tag leaves it out of production
// binaries. It always fails with ErrUnsupported.
func OpenSimulator(seedFile string) (*TPM, error) {
	return nil, classErrorf(ErrUnsupported, nil, "this binary was built without the TPM simulator: build with CGO_ENABLED=1 (Debian: apt-get install gcc libssl-dev) and without -tags notpmsim")
}
