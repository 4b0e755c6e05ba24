package eif

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"sync"
	"time"

	"github.com/fxamacker/cbor/v2"
)

// The signature section (EIF v3+, notes §3). It holds a serde_cbor
// encoding of Vec<PcrSignature>: one map with the signing certificate (the
// PEM file's bytes, verbatim) and an untagged COSE_Sign1 over
// PcrInfo{register_index: 0, register_value: PCR0}. serde_cbor encodes a
// Vec<u8> as an array of small integers, not as a byte string; fxamacker
// would encode []byte as a byte string, so bytes go through []uint16.
//
// Following Trail of Bits' advice ("do not parse EIF signatures —
// reconstruct and verify them"), the reader accepts a signature section only
// if re-encoding what it decoded gives back the same bytes, and
// verification rebuilds the payload from the image's own PCR0 rather than
// trusting the embedded one.

var (
	cborOnce sync.Once
	cborEnc  cbor.EncMode
	cborDec  cbor.DecMode
)

func cborModes() (cbor.EncMode, cbor.DecMode) {
	cborOnce.Do(func() {
		var err error
		cborEnc, err = cbor.CoreDetEncOptions().EncMode()
		if err != nil {
			panic(fmt.Sprintf("eif: cbor encoder options: %v", err))
		}
		cborDec, err = cbor.DecOptions{
			DupMapKey:         cbor.DupMapKeyEnforcedAPF,
			IndefLength:       cbor.IndefLengthForbidden,
			TagsMd:            cbor.TagsForbidden,
			MaxNestedLevels:   8,
			MaxArrayElements:  MaxSignatureSize, // no array can have more items than the section has bytes
			MaxMapPairs:       16,
			ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
			UTF8:              cbor.UTF8RejectInvalid,
		}.DecMode()
		if err != nil {
			panic(fmt.Sprintf("eif: cbor decoder options: %v", err))
		}
	})
	return cborEnc, cborDec
}

func mustMarshal(v any) []byte {
	enc, _ := cborModes()
	b, err := enc.Marshal(v)
	if err != nil {
		// Only fixed Go types are marshalled here.
		panic(fmt.Sprintf("eif: cbor: %v", err))
	}
	return b
}

func uintArray(b []byte) []uint16 {
	a := make([]uint16, len(b))
	for i, v := range b {
		a[i] = uint16(v)
	}
	return a
}

// Signature is a decoded signature section.
type Signature struct {
	// CertificatePEM is the signing certificate as stored: the bytes of
	// the PEM file given to the signer.
	CertificatePEM []byte
	// Certificate is the first CERTIFICATE block of CertificatePEM.
	Certificate *x509.Certificate
	// COSESign1 is the untagged COSE_Sign1 structure.
	COSESign1 []byte
}

// encodeSignatureSection returns the section bytes for one PcrSignature,
// keys in serde's declaration order (signing_certificate first, which
// QEMU's parser requires), not in core deterministic key order.
func encodeSignatureSection(certPEM, cose []byte) []byte {
	b := []byte{0x81, 0xa2} // array(1), map(2)
	b = append(b, mustMarshal("signing_certificate")...)
	b = append(b, mustMarshal(uintArray(certPEM))...)
	b = append(b, mustMarshal("signature")...)
	b = append(b, mustMarshal(uintArray(cose))...)
	return b
}

type pcrSignatureCBOR struct {
	SigningCertificate []uint8 `cbor:"signing_certificate"`
	Signature          []uint8 `cbor:"signature"`
}

// parseSignatureSection decodes a signature section and its certificate.
func parseSignatureSection(b []byte) (*Signature, error) {
	_, dec := cborModes()
	var sigs []pcrSignatureCBOR
	if err := dec.Unmarshal(b, &sigs); err != nil {
		return nil, fmt.Errorf("eif: signature section is not a CBOR array of PcrSignature maps: %w", err)
	}
	if len(sigs) != 1 {
		return nil, fmt.Errorf("eif: signature section holds %d signatures, want exactly 1", len(sigs))
	}
	s := sigs[0]
	if !bytes.Equal(encodeSignatureSection(s.SigningCertificate, s.Signature), b) {
		return nil, errors.New("eif: signature section is not in the canonical encoding (array of one map, signing_certificate then signature, byte arrays of minimal integers)")
	}
	cert, _, err := parseCertificatePEM(s.SigningCertificate)
	if err != nil {
		return nil, err
	}
	return &Signature{CertificatePEM: s.SigningCertificate, Certificate: cert, COSESign1: s.Signature}, nil
}

// parseCertificatePEM returns the first CERTIFICATE block, as OpenSSL's
// X509::from_pem reads it, and its DER bytes.
func parseCertificatePEM(b []byte) (*x509.Certificate, []byte, error) {
	rest := b
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, nil, errors.New("eif: signing certificate: no PEM CERTIFICATE block found")
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, nil, fmt.Errorf("eif: signing certificate: %w", err)
		}
		return cert, block.Bytes, nil
	}
}

// CertificatePCR returns PCR8 for a PEM signing certificate:
// Extend(SHA-384(DER)), what `nitro-cli pcr --signing-certificate` prints.
func CertificatePCR(certPEM []byte) (PCR, error) {
	_, der, err := parseCertificatePEM(certPEM)
	if err != nil {
		return PCR{}, err
	}
	return MeasureBytes(der), nil
}

// coseAlg is one COSE ECDSA algorithm (RFC 9053 §2.1).
type coseAlg struct {
	id        int
	name      string
	hash      crypto.Hash
	coordSize int
}

func algFor(pub crypto.PublicKey) (coseAlg, error) {
	k, ok := pub.(*ecdsa.PublicKey)
	if !ok {
		return coseAlg{}, fmt.Errorf("eif: signing key is %T, want ECDSA (P-256, P-384 or P-521), the only kind nitro-cli accepts", pub)
	}
	switch k.Curve {
	case elliptic.P256():
		return coseAlg{-7, "ES256", crypto.SHA256, 32}, nil
	case elliptic.P384():
		return coseAlg{-35, "ES384", crypto.SHA384, 48}, nil
	case elliptic.P521():
		return coseAlg{-36, "ES512", crypto.SHA512, 66}, nil
	}
	return coseAlg{}, fmt.Errorf("eif: signing key curve %s is not supported, want P-256, P-384 or P-521", k.Curve.Params().Name)
}

func (a coseAlg) protected() []byte { return mustMarshal(map[int]int{1: a.id}) }

// pcrPayload is serde_cbor's encoding of PcrInfo{register_index: 0,
// register_value: pcr}: a2 6e "register_index" 00 6e "register_value" 98 30 …
func pcrPayload(pcr PCR) []byte {
	return mustMarshal(struct {
		RegisterIndex int      `cbor:"register_index"`
		RegisterValue []uint16 `cbor:"register_value"`
	}{0, uintArray(pcr[:])})
}

// sigStructure is the COSE Sig_structure for COSE_Sign1 (RFC 9052 §4.4)
// with empty external AAD.
func sigStructure(protected, payload []byte) []byte {
	return mustMarshal([]any{"Signature1", protected, []byte{}, payload})
}

// Signer signs images. Key must be ECDSA on P-256, P-384 or P-521.
type Signer struct {
	Key            crypto.Signer
	CertificatePEM []byte // stored verbatim in the image
	alg            coseAlg
}

// NewSigner checks that key is a supported ECDSA key and that it belongs
// to the first certificate in certPEM.
//
// With an *ecdsa.PrivateKey the signature is deterministic (RFC 6979), so
// signed builds are byte-identical too. Other crypto.Signers (an HSM) get
// crypto/rand and sign randomly: the signature section and the CRC then
// differ between builds; the PCRs, PCR8 included, do not.
func NewSigner(key crypto.Signer, certPEM []byte) (*Signer, error) {
	alg, err := algFor(key.Public())
	if err != nil {
		return nil, err
	}
	cert, _, err := parseCertificatePEM(certPEM)
	if err != nil {
		return nil, err
	}
	pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
	if !ok || !pub.Equal(key.Public()) {
		return nil, fmt.Errorf("eif: signing key does not match the certificate %q: the certificate's public key is a different %T", cert.Subject.String(), cert.PublicKey)
	}
	return &Signer{Key: key, CertificatePEM: bytes.Clone(certPEM), alg: alg}, nil
}

// ParseSigner reads a PEM private key (SEC 1 "EC PRIVATE KEY" or PKCS #8
// "PRIVATE KEY") and a PEM certificate.
func ParseSigner(keyPEM, certPEM []byte) (*Signer, error) {
	var block *pem.Block
	rest := keyPEM
	for {
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errors.New("eif: signing key: no PEM \"EC PRIVATE KEY\" or \"PRIVATE KEY\" block found")
		}
		if block.Type == "EC PRIVATE KEY" || block.Type == "PRIVATE KEY" {
			break
		}
	}
	var key any
	var err error
	if block.Type == "EC PRIVATE KEY" {
		key, err = x509.ParseECPrivateKey(block.Bytes)
	} else {
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	}
	if err != nil {
		return nil, fmt.Errorf("eif: signing key: %w", err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("eif: signing key is %T, want ECDSA", key)
	}
	return NewSigner(signer, certPEM)
}

// signatureSection signs PCR0 and returns the signature section bytes.
func (s *Signer) signatureSection(pcr0 PCR) ([]byte, error) {
	if s == nil || s.Key == nil {
		return nil, errors.New("eif: no signing key")
	}
	alg := s.alg
	if alg.id == 0 {
		var err error
		if alg, err = algFor(s.Key.Public()); err != nil {
			return nil, err
		}
	}
	protected := alg.protected()
	payload := pcrPayload(pcr0)
	h := alg.hash.New()
	h.Write(sigStructure(protected, payload))
	digest := h.Sum(nil)
	var random = rand.Reader
	if _, ok := s.Key.(*ecdsa.PrivateKey); ok {
		random = nil // RFC 6979 deterministic signature
	}
	der, err := s.Key.Sign(random, digest, alg.hash)
	if err != nil {
		return nil, fmt.Errorf("eif: sign: %w", err)
	}
	var rs struct{ R, S *big.Int }
	if rest, err := asn1.Unmarshal(der, &rs); err != nil || len(rest) != 0 || rs.R == nil || rs.S == nil {
		return nil, fmt.Errorf("eif: sign: signer returned a malformed ASN.1 ECDSA signature")
	}
	// COSE wants r ‖ s, each left-padded to the coordinate size (RFC 9053 §2.1).
	sig := make([]byte, 2*alg.coordSize)
	rs.R.FillBytes(sig[:alg.coordSize])
	rs.S.FillBytes(sig[alg.coordSize:])
	cose := mustMarshal([]any{protected, map[int]any{}, payload, sig})
	return encodeSignatureSection(s.CertificatePEM, cose), nil
}

type coseSign1 struct {
	_           struct{} `cbor:",toarray"`
	Protected   []byte
	Unprotected cbor.RawMessage
	Payload     []byte
	Signature   []byte
}

// VerifySignature checks that the image is signed for its own PCR0: the
// COSE_Sign1 must carry exactly the protected header of the certificate's
// curve, an empty unprotected header and the payload rebuilt from
// img.Measurements.PCR0, its ECDSA signature must verify with the
// certificate's key, and the certificate must be valid at now (nitro-cli
// run-enclave refuses an expired one; describe-eif does not check this).
// The certificate is not chained to any root: PCR8 is what pins it.
func (img *Image) VerifySignature(now time.Time) error {
	if img.Signature == nil {
		return errors.New("eif: image is not signed")
	}
	return verifySignature(img.Signature, img.Measurements.PCR0, now)
}

func verifySignature(sig *Signature, pcr0 PCR, now time.Time) error {
	cert := sig.Certificate
	alg, err := algFor(cert.PublicKey)
	if err != nil {
		return err
	}
	if now.Before(cert.NotBefore) || now.After(cert.NotAfter) {
		return fmt.Errorf("eif: signing certificate is valid from %s to %s, not at %s",
			cert.NotBefore.UTC().Format(time.RFC3339), cert.NotAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	raw := sig.COSESign1
	if len(raw) > 0 && raw[0] == 0xd2 { // tag 18, COSE_Sign1: readers accept it, AWS does not write it
		raw = raw[1:]
	}
	_, dec := cborModes()
	var msg coseSign1
	if err := dec.Unmarshal(raw, &msg); err != nil {
		return fmt.Errorf("eif: signature is not a COSE_Sign1 structure: %w", err)
	}
	if want := alg.protected(); !bytes.Equal(msg.Protected, want) {
		return fmt.Errorf("eif: COSE protected header is %x, want %x ({1: %d}, %s for the certificate's key)", msg.Protected, want, alg.id, alg.name)
	}
	if !bytes.Equal(msg.Unprotected, []byte{0xa0}) {
		return fmt.Errorf("eif: COSE unprotected header is %x, want a0 (empty)", []byte(msg.Unprotected))
	}
	if want := pcrPayload(pcr0); !bytes.Equal(msg.Payload, want) {
		var signed struct {
			RegisterIndex int     `cbor:"register_index"`
			RegisterValue []uint8 `cbor:"register_value"`
		}
		if err := dec.Unmarshal(msg.Payload, &signed); err == nil && signed.RegisterIndex == 0 && len(signed.RegisterValue) == len(pcr0) {
			return fmt.Errorf("eif: signature is for PCR0 %x, the image's PCR0 is %s", signed.RegisterValue, pcr0)
		}
		return fmt.Errorf("eif: signed payload is %x, want PcrInfo{0, PCR0 %s}", msg.Payload, pcr0)
	}
	if len(msg.Signature) != 2*alg.coordSize {
		return fmt.Errorf("eif: %s signature is %d bytes, want %d (r ‖ s)", alg.name, len(msg.Signature), 2*alg.coordSize)
	}
	h := alg.hash.New()
	h.Write(sigStructure(msg.Protected, msg.Payload))
	r := new(big.Int).SetBytes(msg.Signature[:alg.coordSize])
	s := new(big.Int).SetBytes(msg.Signature[alg.coordSize:])
	if !ecdsa.Verify(cert.PublicKey.(*ecdsa.PublicKey), h.Sum(nil), r, s) {
		return fmt.Errorf("eif: %s signature does not verify with the key of certificate %q", alg.name, cert.Subject.String())
	}
	return nil
}
