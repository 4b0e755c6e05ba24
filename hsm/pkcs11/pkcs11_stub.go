//go:build !cgo || nopkcs11

// Package pkcs11 gives sealsign a PKCS#11 token's entropy and a sealing key
// that never leaves it. This build has no PKCS#11 support (no cgo, or the
// nopkcs11 tag): every entry point fails with ErrUnsupported, loudly, rather
// than falling back to anything weaker.
package pkcs11

import "github.com/sealsign/sealsign/hsm"

func unsupported() error { return &classError{msg: noPKCS11Reason, class: ErrUnsupported} }

// Token is unavailable in this build; see Open.
type Token struct{}

// Open fails: this binary was built without PKCS#11 support.
func Open(uri string) (*Token, error) {
	if _, err := ParseURI(uri); err != nil {
		return nil, err
	}
	return nil, unsupported()
}

func (t *Token) Label() string                                     { return "" }
func (t *Token) URI() URI                                          { return URI{} }
func (t *Token) Read(p []byte) (int, error)                        { return 0, unsupported() }
func (t *Token) Sealer(label string, create bool) (*Sealer, error) { return nil, unsupported() }
func (t *Token) DestroyKey(label string) error                     { return unsupported() }
func (t *Token) Close() error                                      { return nil }

// Sealer is unavailable in this build; see Open.
type Sealer struct{}

var _ hsm.Sealer = (*Sealer)(nil)

func (s *Sealer) Label() string                              { return "" }
func (s *Sealer) Seal(aad, plaintext []byte) ([]byte, error) { return nil, unsupported() }
func (s *Sealer) Unseal(aad, sealed []byte) ([]byte, error)  { return nil, unsupported() }
