package eif

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"testing"
	"time"
)

// PCR8 of the test certificates, derived with OpenSSL and Python:
//
//	openssl x509 -in signer-p384.crt -outform DER | python3 -c 'import sys,hashlib;
//	  d=sys.stdin.buffer.read(); print(hashlib.sha384(b"\0"*48+hashlib.sha384(d).digest()).hexdigest())'
const (
	p384PCR8 = "002feae2beee3f573fa5e642f0a0d70c8f5e4c56822b248737528fddde4d96e33bf2eb81692536570322acbfb20fb2ce"
	p256PCR8 = "55a5c000adad91ab7ef73f63573fc68267e4761b72d106e47ddfa912580236e305a1c0ff4733bb4b00026776f57c746f"
)

func TestCertificatePCR(t *testing.T) {
	for name, want := range map[string]string{"p384": p384PCR8, "p256": p256PCR8} {
		got, err := CertificatePCR(readTestdata(t, "signer-"+name+".crt"))
		if err != nil {
			t.Fatal(err)
		}
		if got.String() != want {
			t.Errorf("%s: PCR8 %s, want %s", name, got, want)
		}
	}
	// OpenSSL reads the first CERTIFICATE block, skipping other blocks.
	withKeyFirst := append(readTestdata(t, "signer-p256.key"), readTestdata(t, "signer-p384.crt")...)
	if got, _ := CertificatePCR(withKeyFirst); got.String() != p384PCR8 {
		t.Errorf("PCR8 with a key block first = %s", got)
	}
	_, err := CertificatePCR([]byte("not pem"))
	wantErr(t, err, "no PEM CERTIFICATE block")
}

// cborUints is the notes' §3.1 rule written out independently: an array
// header, then each byte as itself if < 24 and as 0x18 b otherwise.
func cborUints(b []byte) []byte {
	var out []byte
	switch n := len(b); {
	case n < 24:
		out = append(out, 0x80+byte(n))
	case n < 256:
		out = append(out, 0x98, byte(n))
	default:
		out = append(out, 0x99, byte(n>>8), byte(n))
	}
	for _, v := range b {
		if v < 24 {
			out = append(out, v)
		} else {
			out = append(out, 0x18, v)
		}
	}
	return out
}

func cborBstr(b []byte) []byte {
	if len(b) < 24 {
		return append([]byte{0x40 + byte(len(b))}, b...)
	}
	return append([]byte{0x58, byte(len(b))}, b...) // every bstr here is < 256 bytes
}

// TestSignatureSectionLayout rebuilds the whole signature section of the
// mini image by hand from the notes (§3.1, §3.2), checks the package wrote
// exactly those bytes, and verifies the ECDSA signature with crypto/ecdsa
// over a hand-built Sig_structure.
func TestSignatureSectionLayout(t *testing.T) {
	signer := testSigner(t, "p384")
	section := signedSection(t)

	var pcr0 [48]byte
	hex.Decode(pcr0[:], []byte(miniPCR0))
	payload := append([]byte{0xa2, 0x6e}, "register_index"...)
	payload = append(payload, 0x00, 0x6e)
	payload = append(payload, "register_value"...)
	payload = append(payload, cborUints(pcr0[:])...)
	if len(payload) != 128 || !bytes.HasPrefix(payload, mustHex("a26e72656769737465725f696e646578006e72656769737465725f76616c7565983018")) {
		t.Fatalf("hand-built payload is %d bytes %x; the notes say 128 bytes starting a26e…983018", len(payload), payload)
	}
	protected := []byte{0xa1, 0x01, 0x38, 0x22} // {1: -35} ES384

	// r ‖ s is whatever the key produced; everything around it is fixed,
	// and the signature itself is checked with crypto/ecdsa below.
	parsed, err := parseSignatureSection(section)
	if err != nil {
		t.Fatal(err)
	}
	cose := parsed.COSESign1
	rs := cose[len(cose)-96:]

	wantCOSE := []byte{0x84}
	wantCOSE = append(wantCOSE, cborBstr(protected)...)
	wantCOSE = append(wantCOSE, 0xa0)
	wantCOSE = append(wantCOSE, cborBstr(payload)...)
	wantCOSE = append(wantCOSE, 0x58, 0x60)
	wantCOSE = append(wantCOSE, rs...)
	if !bytes.Equal(cose, wantCOSE) {
		t.Fatalf("COSE_Sign1\n got %x\nwant %x", cose, wantCOSE)
	}
	wantSection := []byte{0x81, 0xa2, 0x73}
	wantSection = append(wantSection, "signing_certificate"...)
	wantSection = append(wantSection, cborUints(signer.CertificatePEM)...)
	wantSection = append(wantSection, 0x69)
	wantSection = append(wantSection, "signature"...)
	wantSection = append(wantSection, cborUints(wantCOSE)...)
	if !bytes.Equal(section, wantSection) {
		t.Fatalf("signature section differs from the hand-built one")
	}

	// Sig_structure = ["Signature1", protected, h'', payload].
	sigStructure := append([]byte{0x84, 0x6a}, "Signature1"...)
	sigStructure = append(sigStructure, cborBstr(protected)...)
	sigStructure = append(sigStructure, 0x40)
	sigStructure = append(sigStructure, cborBstr(payload)...)
	digest := sha512.Sum384(sigStructure)
	pub := signer.Key.Public().(*ecdsa.PublicKey)
	if !ecdsa.Verify(pub, digest[:], new(big.Int).SetBytes(rs[:48]), new(big.Int).SetBytes(rs[48:])) {
		t.Fatal("crypto/ecdsa does not verify the signature over the hand-built Sig_structure")
	}
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// selfSigned makes a throwaway certificate for key.
func selfSigned(t *testing.T, key *ecdsa.PrivateKey, notBefore, notAfter time.Time) []byte {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "eif test"}, NotBefore: notBefore, NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestSignAndVerifyEveryCurve(t *testing.T) {
	p521, err := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s521, err := NewSigner(p521, selfSigned(t, p521, testNow.AddDate(-1, 0, 0), testNow.AddDate(1, 0, 0)))
	if err != nil {
		t.Fatal(err)
	}
	for name, signer := range map[string]*Signer{"P-256": testSigner(t, "p256"), "P-384": testSigner(t, "p384"), "P-521": s521} {
		spec := miniSpec()
		spec.Signer = signer
		var buf bytes.Buffer
		if _, err := Build(&buf, spec); err != nil {
			t.Fatal(err)
		}
		img, err := Read(bytes.NewReader(buf.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		if err := img.VerifySignature(testNow); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestVerifyRejects tampers with every part of a signature.
func TestVerifyRejects(t *testing.T) {
	signed := func() *Image {
		spec := miniSpec()
		spec.Signer = testSigner(t, "p384")
		img, err := Build(&bytes.Buffer{}, spec)
		if err != nil {
			t.Fatal(err)
		}
		return img
	}
	// withCOSE replaces the COSE_Sign1 of a signed image.
	withCOSE := func(change func(c *coseSign1)) *Image {
		img := signed()
		_, dec := cborModes()
		var c coseSign1
		if err := dec.Unmarshal(img.Signature.COSESign1, &c); err != nil {
			t.Fatal(err)
		}
		change(&c)
		img.Signature.COSESign1 = mustMarshal([]any{c.Protected, c.Unprotected, c.Payload, c.Signature})
		return img
	}
	otherPCR0 := signed()
	otherPCR0.Measurements.PCR0[0] ^= 1
	cases := []struct {
		name string
		img  *Image
		now  time.Time
		want string
	}{
		{"image PCR0 differs from the signed one", otherPCR0, testNow, "signature is for PCR0 61fd2b06"},
		{"expired certificate", signed(), time.Date(2050, 1, 1, 0, 0, 0, 0, time.UTC), "signing certificate is valid from 2026-11-22T02:43:08Z to 2046-11-22T02:43:08Z, not at 2050-01-01T00:00:00Z"},
		{"not yet valid", signed(), time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), "not at 2020-01-01T00:00:00Z"},
		{"ES256 header on a P-384 key", withCOSE(func(c *coseSign1) { c.Protected = []byte{0xa1, 0x01, 0x26} }), testNow, "COSE protected header is a10126, want a1013822 ({1: -35}, ES384"},
		{"unprotected header set", withCOSE(func(c *coseSign1) { c.Unprotected = mustMarshal(map[int]int{4: 1}) }), testNow, "COSE unprotected header is a10401, want a0"},
		{"payload for register 1", withCOSE(func(c *coseSign1) { c.Payload[16] = 1 }), testNow, "signed payload is"},
		{"flipped signature bit", withCOSE(func(c *coseSign1) { c.Signature[10] ^= 1 }), testNow, "ES384 signature does not verify with the key of certificate"},
		{"short signature", withCOSE(func(c *coseSign1) { c.Signature = c.Signature[:64] }), testNow, "ES384 signature is 64 bytes, want 96"},
		{"not COSE", func() *Image { img := signed(); img.Signature.COSESign1 = []byte{0x01}; return img }(), testNow, "signature is not a COSE_Sign1 structure"},
		{"unsigned", func() *Image { img := signed(); img.Signature = nil; return img }(), testNow, "image is not signed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantErr(t, tc.img.VerifySignature(tc.now), tc.want)
		})
	}
	// Tag 18 is accepted: COSE readers must take tagged and untagged.
	img := signed()
	img.Signature.COSESign1 = append([]byte{0xd2}, img.Signature.COSESign1...)
	if err := img.VerifySignature(testNow); err != nil {
		t.Fatalf("tagged COSE_Sign1: %v", err)
	}
}

// TestSignatureSectionCanonical: only the one encoding AWS writes is read.
func TestSignatureSectionCanonical(t *testing.T) {
	good := signedSection(t)
	if _, err := parseSignatureSection(good); err != nil {
		t.Fatal(err)
	}
	p, _ := parseSignatureSection(good)
	swapped := []byte{0x81, 0xa2}
	swapped = append(swapped, mustMarshal("signature")...)
	swapped = append(swapped, mustMarshal(uintArray(p.COSESign1))...)
	swapped = append(swapped, mustMarshal("signing_certificate")...)
	swapped = append(swapped, mustMarshal(uintArray(p.CertificatePEM))...)
	bstr := []byte{0x81, 0xa2}
	bstr = append(bstr, mustMarshal("signing_certificate")...)
	bstr = append(bstr, mustMarshal(p.CertificatePEM)...)
	bstr = append(bstr, mustMarshal("signature")...)
	bstr = append(bstr, mustMarshal(uintArray(p.COSESign1))...)
	// 0x0a (a PEM newline) written non-minimally as 18 0a.
	nonMinimal := bytes.Replace(good, []byte{0x0a}, []byte{0x18, 0x0a}, 1)
	for name, b := range map[string][]byte{"keys swapped": swapped, "certificate as bstr": bstr, "non-minimal integer": nonMinimal, "truncated": good[:len(good)-1], "empty": nil} {
		if _, err := parseSignatureSection(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	var big [8]byte
	binary.BigEndian.PutUint64(big[:], 1<<40)
	huge := append([]byte{0x81, 0xa2, 0x73}, "signing_certificate"...)
	huge = append(huge, 0x9b)
	huge = append(huge, big[:]...)
	if _, err := parseSignatureSection(huge); err == nil {
		t.Error("array header claiming 2^40 items: accepted")
	}
}

func TestParseSignerRejects(t *testing.T) {
	p256Key, p384Crt := readTestdata(t, "signer-p256.key"), readTestdata(t, "signer-p384.crt")
	_, err := ParseSigner(p256Key, p384Crt)
	wantErr(t, err, "signing key does not match the certificate")
	_, err = ParseSigner([]byte("nope"), p384Crt)
	wantErr(t, err, `no PEM "EC PRIVATE KEY" or "PRIVATE KEY" block`)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	_, err = NewSigner(edKey, p384Crt)
	wantErr(t, err, "want ECDSA (P-256, P-384 or P-521)")
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	_, err = NewSigner(p224, p384Crt)
	wantErr(t, err, "curve P-224 is not supported")
	_, err = ParseSigner(p256Key, []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	wantErr(t, err, "signing certificate:")
}
