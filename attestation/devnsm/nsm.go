// Package devnsm is the NSM of dev parties: it issues attestation documents
// with the same COSE_Sign1/CBOR shape as AWS Nitro, signed under a local dev
// PKI with AWS's shape (root → intermediate → per-document leaf, all P-384).
//
// Its documents go through the very verifier production uses
// (attestation.Verify); only the trust anchor differs. A verifier accepts
// them only when given the dev root (CA.Cert) explicitly, so a dev document
// can never pass where the AWS root is expected.
//
// What a dev document proves is weaker than a Nitro one: PCR0 is the
// SHA-384 of the enclave binary as the process measured itself, and whoever
// holds the dev root key can sign anything. It exercises the protocol, not
// hardware isolation.
package devnsm

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"sync"
	"time"

	"github.com/sealsign/sealsign/attestation"
)

const (
	// LeafLifetime is how long a document's leaf certificate — and so the
	// document — stays valid after it is issued, as on AWS (about 3 h).
	LeafLifetime = 3 * time.Hour
	// IntermediateLifetime is the validity of the NSM's intermediate CA, as
	// AWS's per-instance CA (about 24 h). It is renewed once it could no
	// longer cover a full leaf lifetime.
	IntermediateLifetime = 24 * time.Hour
	// NumPCRs is the number of PCRs a document always carries (0..15), as
	// Nitro reports them.
	NumPCRs = 16

	backdate = time.Minute // certificates start a little early for clock skew
)

var moduleIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,47}$`)

// NSM issues dev attestation documents. It is safe for concurrent use.
type NSM struct {
	ca       *CA
	moduleID string
	pcrs     map[uint][]byte
	rand     io.Reader
	clock    func() time.Time

	mu       sync.Mutex
	inter    *x509.Certificate
	interKey *ecdsa.PrivateKey
}

// New returns a dev NSM for the module moduleID (1..48 characters of
// letters, digits, '.', '_', '-'; it becomes the leaf CN
// "<moduleID>.dev.sealsign"). pcrs sets PCRs by index 0..31, each 48 bytes
// (SHA-384); PCRs 0..15 not given are reported as zeros. For a dev enclave
// PCR0 is MeasureSelf(). rand (nil: crypto/rand) supplies keys, serials and
// signatures; clock (nil: time.Now) dates documents and certificates.
func New(ca *CA, moduleID string, pcrs map[uint][]byte, rand io.Reader, clock func() time.Time) (*NSM, error) {
	if ca == nil || ca.cert == nil || ca.key == nil {
		return nil, errors.New("devnsm: no CA")
	}
	if !moduleIDPattern.MatchString(moduleID) {
		return nil, fmt.Errorf("devnsm: module id %q invalid (want 1 to 48 letters, digits, '.', '_' or '-')", moduleID)
	}
	own := make(map[uint][]byte, NumPCRs)
	for i := uint(0); i < NumPCRs; i++ {
		own[i] = make([]byte, sha512.Size384)
	}
	for i, v := range pcrs {
		if i >= attestation.MaxPCRs {
			return nil, fmt.Errorf("devnsm: pcr%d: index out of range 0..%d", i, attestation.MaxPCRs-1)
		}
		if len(v) != sha512.Size384 {
			return nil, fmt.Errorf("devnsm: pcr%d has %d bytes, want %d (SHA-384)", i, len(v), sha512.Size384)
		}
		own[i] = append([]byte(nil), v...)
	}
	if clock == nil {
		clock = time.Now
	}
	return &NSM{ca: ca, moduleID: moduleID, pcrs: own, rand: orDefault(rand), clock: clock}, nil
}

// Attest returns a COSE_Sign1 attestation document binding publicKey,
// userData and nonce, each at most 1024 bytes; empty ones are encoded as
// null, as the NSM does. Every call signs with a fresh P-384 leaf key
// certified for LeafLifetime.
func (n *NSM) Attest(publicKey, userData, nonce []byte) ([]byte, error) {
	for _, f := range []struct {
		name string
		b    []byte
	}{{"public_key", publicKey}, {"user_data", userData}, {"nonce", nonce}} {
		if len(f.b) > attestation.MaxAuxSize {
			return nil, fmt.Errorf("devnsm: %s is %d bytes, at most %d", f.name, len(f.b), attestation.MaxAuxSize)
		}
	}
	now := n.clock()
	if now.UnixMilli() <= 0 {
		return nil, fmt.Errorf("devnsm: clock reads %v, before the Unix epoch", now)
	}
	root := n.ca.cert
	if now.Before(root.NotBefore) || now.Add(LeafLifetime).After(root.NotAfter) {
		return nil, fmt.Errorf("devnsm: dev root %q is valid %s .. %s, which does not cover %s plus the leaf lifetime: create a new dev CA",
			root.Subject.CommonName, root.NotBefore.Format(time.RFC3339), root.NotAfter.Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	inter, interKey, err := n.intermediate(now)
	if err != nil {
		return nil, err
	}

	leafKey, err := ecdsa.GenerateKey(elliptic.P384(), n.rand)
	if err != nil {
		return nil, fmt.Errorf("devnsm: generate leaf key: %w", err)
	}
	serial, err := newSerial(n.rand)
	if err != nil {
		return nil, err
	}
	start := now.UTC().Truncate(time.Second)
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: n.moduleID + ".dev.sealsign", Organization: []string{"sealsign"}, OrganizationalUnit: []string{"dev"}},
		NotBefore:             start.Add(-backdate),
		NotAfter:              start.Add(LeafLifetime),
		BasicConstraintsValid: true,
		IsCA:                  false,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		SignatureAlgorithm:    x509.ECDSAWithSHA384,
	}
	leaf, err := x509.CreateCertificate(n.rand, tmpl, inter, &leafKey.PublicKey, interKey)
	if err != nil {
		return nil, fmt.Errorf("devnsm: create leaf certificate: %w", err)
	}

	pcrs := make(map[uint][]byte, len(n.pcrs))
	for i, v := range n.pcrs {
		pcrs[i] = v // never mutated; the encoder only reads
	}
	doc := &attestation.Document{
		ModuleID:    n.moduleID,
		Digest:      attestation.DigestSHA384,
		Timestamp:   uint64(now.UnixMilli()),
		PCRs:        pcrs,
		Certificate: leaf,
		CABundle:    [][]byte{root.Raw, inter.Raw},
		PublicKey:   nilIfEmpty(publicKey),
		UserData:    nilIfEmpty(userData),
		Nonce:       nilIfEmpty(nonce),
	}
	out, err := attestation.SignDocument(doc, leafKey, n.rand)
	if err != nil {
		return nil, fmt.Errorf("devnsm: %w", err)
	}
	return out, nil
}

// intermediate returns the current intermediate CA, issuing a new one when
// there is none, when the clock went back before its start, or when it
// would expire before a leaf issued now.
func (n *NSM) intermediate(now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.inter != nil && !now.Before(n.inter.NotBefore.Add(backdate)) && !now.Add(LeafLifetime+backdate).After(n.inter.NotAfter) {
		return n.inter, n.interKey, nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P384(), n.rand)
	if err != nil {
		return nil, nil, fmt.Errorf("devnsm: generate intermediate key: %w", err)
	}
	serial, err := newSerial(n.rand)
	if err != nil {
		return nil, nil, err
	}
	start := now.UTC().Truncate(time.Second)
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: n.moduleID + ".intermediate.dev.sealsign", Organization: []string{"sealsign"}, OrganizationalUnit: []string{"dev"}},
		NotBefore:             start.Add(-backdate),
		NotAfter:              start.Add(IntermediateLifetime),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		SignatureAlgorithm:    x509.ECDSAWithSHA384,
	}
	der, err := x509.CreateCertificate(n.rand, tmpl, n.ca.cert, &key.PublicKey, n.ca.key)
	if err != nil {
		return nil, nil, fmt.Errorf("devnsm: create intermediate certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("devnsm: parse intermediate certificate: %w", err)
	}
	n.inter, n.interKey = cert, key
	return cert, key, nil
}

func nilIfEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return append([]byte(nil), b...)
}

// MeasureFile returns the SHA-384 of a file's contents, read as a stream.
// It is PCR0 of a dev enclave: the measurement of its binary.
func MeasureFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("devnsm: measure: %w", err)
	}
	defer f.Close()
	h := sha512.New384()
	if _, err := io.Copy(h, f); err != nil {
		return nil, fmt.Errorf("devnsm: measure %s: %w", path, err)
	}
	return h.Sum(nil), nil
}

// MeasureSelf measures the running executable. On Linux it reads
// /proc/self/exe, which is the binary this process was started from even if
// the file at its path has since been replaced; elsewhere it measures the
// path os.Executable reports.
func MeasureSelf() ([]byte, error) {
	if m, err := MeasureFile("/proc/self/exe"); err == nil {
		return m, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("devnsm: measure self: %w", err)
	}
	return MeasureFile(exe)
}
