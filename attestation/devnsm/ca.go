package devnsm

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"time"
)

// RootCommonName is the dev root's subject CN, shaped like AWS's
// "aws.nitro-enclaves" so a reader of a certificate dump sees at once which
// world it comes from.
const RootCommonName = "sealsign-dev.nitro-enclaves"

// rootLifetime matches the AWS root's 30 years.
const rootLifetime = 30 * 365 * 24 * time.Hour

// CA is a dev root: a self-signed P-384 certificate and its key. It stands
// in for the AWS Nitro root for dev parties and is trusted only where a
// verifier is given its certificate explicitly.
type CA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// NewCA creates a dev root valid from an hour before now for 30 years.
// rand supplies serial numbers and signing randomness (nil: crypto/rand).
func NewCA(rand io.Reader, now time.Time) (*CA, error) {
	rand = orDefault(rand)
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand)
	if err != nil {
		return nil, fmt.Errorf("devnsm: generate root key: %w", err)
	}
	serial, err := newSerial(rand)
	if err != nil {
		return nil, err
	}
	now = now.UTC().Truncate(time.Second)
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: RootCommonName, Organization: []string{"sealsign"}, OrganizationalUnit: []string{"dev"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(rootLifetime),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		SignatureAlgorithm:    x509.ECDSAWithSHA384,
	}
	der, err := x509.CreateCertificate(rand, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("devnsm: create root certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("devnsm: parse root certificate: %w", err)
	}
	return &CA{cert: cert, key: key}, nil
}

// Cert returns the root certificate, the trust anchor a verifier passes in
// attestation.VerifyOptions.Roots to accept this CA's documents. Treat it as
// read-only.
func (ca *CA) Cert() *x509.Certificate { return ca.cert }

// CertPEM returns the root certificate PEM-encoded.
func (ca *CA) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})
}

// WriteFiles stores the root certificate (mode 0644) and its PKCS#8 key
// (mode 0600). Each file is written atomically: a temporary file in the
// same directory, fsync, rename, fsync of the directory. The key is written
// first, so a crash never leaves a certificate whose key is missing.
func (ca *CA) WriteFiles(certPath, keyPath string) error {
	keyDER, err := x509.MarshalPKCS8PrivateKey(ca.key)
	if err != nil {
		return fmt.Errorf("devnsm: encode root key: %w", err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	if err := writeAtomic(keyPath, keyPEM, 0o600); err != nil {
		return err
	}
	return writeAtomic(certPath, ca.CertPEM(), 0o644)
}

// LoadCA reads a dev root written by WriteFiles. It refuses a key file that
// others can read and a key that does not belong to the certificate.
func LoadCA(certPath, keyPath string) (*CA, error) {
	cert, err := LoadRootCert(certPath)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(keyPath)
	if err != nil {
		return nil, fmt.Errorf("devnsm: root key: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("devnsm: root key %s is accessible to other users (mode %04o): run chmod 600 %s", keyPath, perm, keyPath)
	}
	b, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("devnsm: root key: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("devnsm: root key %s: no PEM \"PRIVATE KEY\" block", keyPath)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("devnsm: root key %s: %w", keyPath, err)
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok || key.Curve != elliptic.P384() {
		return nil, fmt.Errorf("devnsm: root key %s: want an ECDSA P-384 key, got %T", keyPath, k)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("devnsm: root key %s does not belong to certificate %s", keyPath, certPath)
	}
	return &CA{cert: cert, key: key}, nil
}

// LoadRootCert reads a dev root certificate (PEM) for a verifier.
func LoadRootCert(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("devnsm: root certificate: %w", err)
	}
	c, err := ParseRootCert(b)
	if err != nil {
		return nil, fmt.Errorf("%w (in %s)", err, path)
	}
	return c, nil
}

// ParseRootCert parses the first PEM CERTIFICATE block of pemBytes and
// checks that it is a P-384 CA certificate, as a dev root is.
func ParseRootCert(pemBytes []byte) (*x509.Certificate, error) {
	var blk *pem.Block
	for rest := pemBytes; ; {
		blk, rest = pem.Decode(rest)
		if blk == nil || blk.Type == "CERTIFICATE" {
			break
		}
	}
	if blk == nil {
		return nil, errors.New("devnsm: root certificate: no PEM \"CERTIFICATE\" block")
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("devnsm: root certificate: %w", err)
	}
	if !c.BasicConstraintsValid || !c.IsCA {
		return nil, fmt.Errorf("devnsm: root certificate %q is not a CA", c.Subject.CommonName)
	}
	if pub, ok := c.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P384() {
		return nil, fmt.Errorf("devnsm: root certificate %q: want an ECDSA P-384 key", c.Subject.CommonName)
	}
	return c, nil
}

// writeAtomic replaces path with data so that readers see the old or the
// new content, never a partial file, also across a crash.
func writeAtomic(path string, data []byte, perm os.FileMode) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("devnsm: write %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err = f.Chmod(perm); err != nil {
		return fmt.Errorf("devnsm: write %s: %w", path, err)
	}
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("devnsm: write %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("devnsm: write %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("devnsm: write %s: %w", path, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("devnsm: write %s: %w", path, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("devnsm: write %s: sync directory: %w", path, err)
	}
	defer d.Close()
	if err = d.Sync(); err != nil {
		return fmt.Errorf("devnsm: write %s: sync directory: %w", path, err)
	}
	return nil
}

// newSerial returns a positive 127-bit serial number (RFC 5280 §4.1.2.2).
func newSerial(r io.Reader) (*big.Int, error) {
	b := make([]byte, 16)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, fmt.Errorf("devnsm: serial number: %w", err)
	}
	b[0] = b[0]&0x7f | 0x40
	return new(big.Int).SetBytes(b), nil
}

func orDefault(r io.Reader) io.Reader {
	if r == nil {
		return rand.Reader
	}
	return r
}
