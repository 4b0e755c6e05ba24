package attestation

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
)

// A synthetic PKI with AWS's shape (root → intermediate → leaf, all P-384)
// lets these tests build documents the NSM would never emit.

var testNow = mustTime("2025-01-01T12:00:00Z")

type testPKI struct {
	rootKey, interKey *ecdsa.PrivateKey
	root, inter       *x509.Certificate
}

func newKey(t testing.TB, c elliptic.Curve) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func issue(t testing.TB, tmpl, parent *x509.Certificate, pub any, signer crypto.Signer) *x509.Certificate {
	t.Helper()
	if tmpl.SerialNumber == nil {
		tmpl.SerialNumber = big.NewInt(time.Now().UnixNano())
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func caTemplate(cn string, pathLen int) *x509.Certificate {
	return &x509.Certificate{
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             testNow.Add(-24 * time.Hour),
		NotAfter:              testNow.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLen:            pathLen,
		MaxPathLenZero:        pathLen == 0,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
}

func newTestPKI(t testing.TB, interCurve elliptic.Curve) *testPKI {
	t.Helper()
	p := &testPKI{rootKey: newKey(t, elliptic.P384()), interKey: newKey(t, interCurve)}
	rt := caTemplate("test.nitro-enclaves", -1)
	p.root = issue(t, rt, rt, &p.rootKey.PublicKey, p.rootKey)
	p.inter = issue(t, caTemplate("test-intermediate", 0), p.root, &p.interKey.PublicKey, p.rootKey)
	return p
}

func leafTemplate() *x509.Certificate {
	return &x509.Certificate{
		Subject:               pkix.Name{CommonName: "test-leaf"},
		NotBefore:             testNow.Add(-time.Minute),
		NotAfter:              testNow.Add(3 * time.Hour),
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature,
	}
}

// fixture is one document under construction.
type fixture struct {
	p           *testPKI
	leafKey     crypto.Signer
	doc         *Document
	protected   []byte
	unprotected []byte
	payload     []byte // nil: doc.MarshalCBOR()
	sig         []byte // nil: signed with leafKey
	post        func([]byte) []byte
	opts        VerifyOptions
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	p := newTestPKI(t, elliptic.P384())
	f := &fixture{p: p, protected: protectedES384, unprotected: []byte{0xa0}}
	f.setLeaf(t, newKey(t, elliptic.P384()), nil)
	pcrs := map[uint][]byte{}
	for i := uint(0); i < 16; i++ {
		pcrs[i] = make([]byte, 48)
	}
	pcrs[0] = bytes.Repeat([]byte{0x11}, 48)
	f.doc.ModuleID = "i-0123456789abcdef0-enc0123456789abcdef"
	f.doc.Digest = "SHA384"
	f.doc.Timestamp = uint64(testNow.UnixMilli())
	f.doc.PCRs = pcrs
	f.doc.CABundle = [][]byte{p.root.Raw, p.inter.Raw}
	f.doc.UserData = []byte("user data")
	f.opts = VerifyOptions{Roots: []*x509.Certificate{p.root}, Time: testNow.Add(time.Minute)}
	return f
}

// setLeaf issues a leaf for key (mutated by mod) and makes it the signer.
func (f *fixture) setLeaf(t testing.TB, key crypto.Signer, mod func(*x509.Certificate)) {
	t.Helper()
	tmpl := leafTemplate()
	if mod != nil {
		mod(tmpl)
	}
	leaf := issue(t, tmpl, f.p.inter, key.Public(), f.p.interKey)
	f.leafKey = key
	if f.doc == nil {
		f.doc = new(Document)
	}
	f.doc.Certificate = leaf.Raw
}

// rawSign signs msg as COSE ECDSA does: hash by curve size, r‖s fixed width.
func rawSign(t testing.TB, key crypto.Signer, msg []byte) []byte {
	t.Helper()
	k, ok := key.(*ecdsa.PrivateKey)
	if !ok {
		return bytes.Repeat([]byte{0x42}, es384SigSize)
	}
	var h []byte
	switch k.Curve {
	case elliptic.P256():
		s := sha256.Sum256(msg)
		h = s[:]
	case elliptic.P384():
		s := sha512.Sum384(msg)
		h = s[:]
	default:
		s := sha512.Sum512(msg)
		h = s[:]
	}
	r, s, err := ecdsa.Sign(rand.Reader, k, h)
	if err != nil {
		t.Fatal(err)
	}
	size := (k.Curve.Params().BitSize + 7) / 8
	out := make([]byte, 2*size)
	r.FillBytes(out[:size])
	s.FillBytes(out[size:])
	return out
}

func (f *fixture) bytes(t testing.TB) []byte {
	t.Helper()
	payload := f.payload
	if payload == nil {
		var err error
		if payload, err = f.doc.MarshalCBOR(); err != nil {
			t.Fatal(err)
		}
	}
	sig := f.sig
	if sig == nil {
		tbs, err := sigStructure(f.protected, payload)
		if err != nil {
			t.Fatal(err)
		}
		sig = rawSign(t, f.leafKey, tbs)
	}
	out, err := encMode.Marshal(coseSign1{Protected: f.protected, Unprotected: f.unprotected, Payload: payload, Signature: sig})
	if err != nil {
		t.Fatal(err)
	}
	if f.post != nil {
		out = f.post(out)
	}
	return out
}

// rawPayload encodes key/value pairs in order; values that are
// cbor.RawMessage are inserted verbatim.
func rawPayload(t testing.TB, kv ...any) []byte {
	t.Helper()
	out := []byte{0xa0 | byte(len(kv)/2)}
	if len(kv)/2 > 23 {
		t.Fatal("rawPayload: too many pairs")
	}
	for _, v := range kv {
		b, err := encMode.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b...)
	}
	return out
}

// docPairs is d's payload as pairs, for rawPayload edits.
func docPairs(d *Document) []any {
	return []any{"module_id", d.ModuleID, "digest", d.Digest, "timestamp", d.Timestamp, "pcrs", d.PCRs,
		"certificate", d.Certificate, "cabundle", d.CABundle, "public_key", d.PublicKey, "user_data", d.UserData, "nonce", d.Nonce}
}

func withoutField(pairs []any, name string) []any {
	var out []any
	for i := 0; i < len(pairs); i += 2 {
		if pairs[i] != name {
			out = append(out, pairs[i], pairs[i+1])
		}
	}
	return out
}

func TestStructure(t *testing.T) {
	otherCA := newTestPKI(t, elliptic.P384())
	p256CA := newTestPKI(t, elliptic.P256())
	tests := []struct {
		name  string
		mod   func(t *testing.T, f *fixture)
		kind  error // nil: must verify
		check string
	}{
		{"valid", func(t *testing.T, f *fixture) {}, nil, ""},
		{"tagged 18", func(t *testing.T, f *fixture) { f.post = func(b []byte) []byte { return append([]byte{0xd2}, b...) } }, nil, ""},
		{"unprotected null treated as empty", func(t *testing.T, f *fixture) { f.unprotected = []byte{0xf6} }, nil, ""},
		{"unknown payload field ignored", func(t *testing.T, f *fixture) {
			f.payload = rawPayload(t, append(docPairs(f.doc), "future_field", []byte{1})...)
		}, nil, ""},
		{"max aux fields", func(t *testing.T, f *fixture) {
			f.doc.PublicKey = bytes.Repeat([]byte{1}, 1024)
			f.doc.UserData = bytes.Repeat([]byte{2}, 1024)
			f.doc.Nonce = bytes.Repeat([]byte{3}, 1024)
		}, nil, ""},
		{"32 pcrs of 64 bytes", func(t *testing.T, f *fixture) {
			for i := uint(1); i < 32; i++ {
				f.doc.PCRs[i] = make([]byte, 64)
			}
		}, nil, ""},
		{"cabundle[0] junk is ignored", func(t *testing.T, f *fixture) { f.doc.CABundle[0] = []byte("not a certificate") }, nil, ""},
		{"non-canonical protected header signed as received", func(t *testing.T, f *fixture) {
			f.protected = []byte{0xa1, 0x01, 0x39, 0x00, 0x22} // -35 in a 2-byte argument
		}, nil, ""},

		// envelope
		{"other tag", func(t *testing.T, f *fixture) { f.post = func(b []byte) []byte { return append([]byte{0xd3}, b...) } }, ErrMalformed, "cose"},
		{"tag 18 twice", func(t *testing.T, f *fixture) {
			f.post = func(b []byte) []byte { return append([]byte{0xd2, 0xd2}, b...) }
		}, ErrMalformed, "cose"},
		{"trailing bytes", func(t *testing.T, f *fixture) { f.post = func(b []byte) []byte { return append(b, 0x00) } }, ErrMalformed, "cose"},
		{"indefinite-length array", func(t *testing.T, f *fixture) {
			f.post = func(b []byte) []byte { return append(append([]byte{0x9f}, b[1:]...), 0xff) }
		}, ErrMalformed, "cose"},
		{"array of 3", func(t *testing.T, f *fixture) {
			f.post = func(b []byte) []byte {
				out, _ := encMode.Marshal([]any{protectedES384, map[int]int{}, []byte{1}})
				return out
			}
		}, ErrMalformed, "cose"},
		{"signature as an integer array", func(t *testing.T, f *fixture) {
			f.post = func(b []byte) []byte {
				m, err := decodeSign1(b)
				if err != nil {
					t.Fatal(err)
				}
				ints := make([]uint, len(m.signature))
				for i, c := range m.signature {
					ints[i] = uint(c)
				}
				out, _ := encMode.Marshal([]any{m.protected, map[int]int{}, m.payload, ints})
				return out
			}
		}, ErrMalformed, "cose"},
		{"protected as an integer array", func(t *testing.T, f *fixture) {
			f.post = func(b []byte) []byte {
				m, _ := decodeSign1(b)
				out, _ := encMode.Marshal([]any{[]uint{0xa1, 0x01, 0x38, 0x22}, map[int]int{}, m.payload, m.signature})
				return out
			}
		}, ErrMalformed, "cose"},
		{"not an array", func(t *testing.T, f *fixture) { f.post = func([]byte) []byte { return []byte{0xa0} } }, ErrMalformed, "cose"},
		{"empty input", func(t *testing.T, f *fixture) { f.post = func([]byte) []byte { return nil } }, ErrMalformed, "cose"},
		{"truncated", func(t *testing.T, f *fixture) { f.post = func(b []byte) []byte { return b[:len(b)/2] } }, ErrMalformed, "cose"},
		{"oversized", func(t *testing.T, f *fixture) {
			f.post = func(b []byte) []byte { return append(b, make([]byte, MaxDocumentSize)...) }
		}, ErrMalformed, "cose"},
		{"protected empty", func(t *testing.T, f *fixture) { f.protected = []byte{} }, ErrMalformed, "cose"},
		{"protected not a map", func(t *testing.T, f *fixture) { f.protected = []byte{0x01} }, ErrMalformed, "cose"},
		{"protected duplicate alg", func(t *testing.T, f *fixture) { f.protected = []byte{0xa2, 0x01, 0x38, 0x22, 0x01, 0x38, 0x22} }, ErrMalformed, "cose"},
		{"crit header", func(t *testing.T, f *fixture) { f.protected = []byte{0xa2, 0x01, 0x38, 0x22, 0x02, 0x81, 0x01} }, ErrMalformed, "cose"},
		{"alg ES256", func(t *testing.T, f *fixture) { f.protected = []byte{0xa1, 0x01, 0x26} }, ErrAlgorithm, "alg"},
		{"alg as text", func(t *testing.T, f *fixture) { f.protected = append([]byte{0xa1, 0x01, 0x65}, "ES384"...) }, ErrAlgorithm, "alg"},
		{"alg missing", func(t *testing.T, f *fixture) { f.protected = []byte{0xa1, 0x04, 0x41, 0x01} }, ErrAlgorithm, "alg"},
		{"unprotected not a map", func(t *testing.T, f *fixture) { f.unprotected = []byte{0x01} }, ErrMalformed, "cose"},
		{"payload empty", func(t *testing.T, f *fixture) { f.payload = []byte{} }, ErrMalformed, "cose"},
		{"signature truncated", func(t *testing.T, f *fixture) { f.sig = make([]byte, 95) }, ErrAlgorithm, "signature"},
		{"signature empty", func(t *testing.T, f *fixture) { f.sig = []byte{} }, ErrAlgorithm, "signature"},
		{"signature DER-encoded", func(t *testing.T, f *fixture) { f.sig = make([]byte, 104) }, ErrAlgorithm, "signature"},

		// payload
		{"payload not a map", func(t *testing.T, f *fixture) { f.payload = []byte{0x83, 1, 2, 3} }, ErrMalformed, "payload"},
		{"payload duplicate key", func(t *testing.T, f *fixture) {
			f.payload = rawPayload(t, append(docPairs(f.doc), "module_id", "i-other")...)
		}, ErrMalformed, "payload"},
		{"payload case-folded key", func(t *testing.T, f *fixture) {
			f.payload = rawPayload(t, append(withoutField(docPairs(f.doc), "digest"), "DIGEST", "SHA384")...)
		}, ErrMalformed, "digest"},
		{"pcrs duplicate index", func(t *testing.T, f *fixture) {
			pcr := append([]byte{0x58, 48}, make([]byte, 48)...)
			pcrs := append(append(append([]byte{0xa2, 0x00}, pcr...), 0x00), pcr...)
			f.payload = rawPayload(t, "module_id", f.doc.ModuleID, "digest", "SHA384", "timestamp", f.doc.Timestamp,
				"pcrs", cbor.RawMessage(pcrs), "certificate", f.doc.Certificate, "cabundle", f.doc.CABundle)
		}, ErrMalformed, "payload"},
		{"tag inside payload", func(t *testing.T, f *fixture) {
			f.payload = rawPayload(t, append(withoutField(docPairs(f.doc), "timestamp"), "timestamp", cbor.Tag{Number: 1, Content: 1700000000})...)
		}, ErrMalformed, "payload"},
		{"nesting too deep", func(t *testing.T, f *fixture) {
			f.payload = rawPayload(t, append(docPairs(f.doc), "x", []any{[]any{[]any{[]any{1}}}})...)
		}, ErrMalformed, "payload"},
		{"certificate as an integer array", func(t *testing.T, f *fixture) {
			ints := make([]uint, len(f.doc.Certificate))
			for i, c := range f.doc.Certificate {
				ints[i] = uint(c)
			}
			f.payload = rawPayload(t, append(withoutField(docPairs(f.doc), "certificate"), "certificate", ints)...)
		}, ErrMalformed, "payload"},
		{"nonce as an integer array", func(t *testing.T, f *fixture) {
			f.payload = rawPayload(t, append(withoutField(docPairs(f.doc), "nonce"), "nonce", []uint{1, 2})...)
		}, ErrMalformed, "payload"},
		{"pcr as text", func(t *testing.T, f *fixture) {
			f.payload = rawPayload(t, append(withoutField(docPairs(f.doc), "pcrs"), "pcrs", map[uint]string{0: strings.Repeat("a", 48)})...)
		}, ErrMalformed, "payload"},
		{"cabundle as one byte string", func(t *testing.T, f *fixture) {
			f.payload = rawPayload(t, append(withoutField(docPairs(f.doc), "cabundle"), "cabundle", f.p.inter.Raw)...)
		}, ErrMalformed, "payload"},
		{"nonce undefined treated as absent", func(t *testing.T, f *fixture) {
			f.payload = rawPayload(t, append(withoutField(docPairs(f.doc), "nonce"), "nonce", cbor.RawMessage{0xf7})...)
		}, nil, ""},
		{"timestamp as text", func(t *testing.T, f *fixture) {
			f.payload = rawPayload(t, append(withoutField(docPairs(f.doc), "timestamp"), "timestamp", "1700000000000")...)
		}, ErrMalformed, "payload"},
		{"pcr index negative", func(t *testing.T, f *fixture) {
			f.payload = rawPayload(t, append(withoutField(docPairs(f.doc), "pcrs"), "pcrs", map[int][]byte{-1: make([]byte, 48)})...)
		}, ErrMalformed, "payload"},
		{"33 pcrs", func(t *testing.T, f *fixture) {
			for i := uint(0); i < 33; i++ {
				f.doc.PCRs[i] = make([]byte, 48)
			}
		}, ErrMalformed, "payload"},
		{"module_id missing", func(t *testing.T, f *fixture) {
			f.payload = rawPayload(t, withoutField(docPairs(f.doc), "module_id")...)
		}, ErrMalformed, "module_id"},
		{"module_id null", func(t *testing.T, f *fixture) {
			f.payload = rawPayload(t, append(withoutField(docPairs(f.doc), "module_id"), "module_id", nil)...)
		}, ErrMalformed, "module_id"},
		{"module_id too long", func(t *testing.T, f *fixture) { f.doc.ModuleID = strings.Repeat("i", 257) }, ErrMalformed, "module_id"},
		{"digest SHA256", func(t *testing.T, f *fixture) { f.doc.Digest = "SHA256" }, ErrMalformed, "digest"},
		{"timestamp missing", func(t *testing.T, f *fixture) {
			f.payload = rawPayload(t, withoutField(docPairs(f.doc), "timestamp")...)
		}, ErrMalformed, "timestamp"},
		{"timestamp huge", func(t *testing.T, f *fixture) { f.doc.Timestamp = 1 << 63 }, ErrMalformed, "timestamp"},
		{"pcrs missing", func(t *testing.T, f *fixture) { f.payload = rawPayload(t, withoutField(docPairs(f.doc), "pcrs")...) }, ErrMalformed, "pcrs"},
		{"pcrs empty", func(t *testing.T, f *fixture) { f.doc.PCRs = map[uint][]byte{} }, ErrMalformed, "pcrs"},
		{"pcr index 32", func(t *testing.T, f *fixture) { f.doc.PCRs[32] = make([]byte, 48) }, ErrMalformed, "pcrs"},
		{"pcr 47 bytes", func(t *testing.T, f *fixture) { f.doc.PCRs[5] = make([]byte, 47) }, ErrMalformed, "pcr5"},
		{"certificate missing", func(t *testing.T, f *fixture) {
			f.payload = rawPayload(t, withoutField(docPairs(f.doc), "certificate")...)
		}, ErrMalformed, "certificate"},
		{"certificate 1025 bytes", func(t *testing.T, f *fixture) { f.doc.Certificate = make([]byte, 1025) }, ErrMalformed, "certificate"},
		{"certificate garbage", func(t *testing.T, f *fixture) { f.doc.Certificate = []byte("garbage") }, ErrMalformed, "certificate"},
		{"cabundle missing", func(t *testing.T, f *fixture) {
			f.payload = rawPayload(t, withoutField(docPairs(f.doc), "cabundle")...)
		}, ErrMalformed, "cabundle"},
		{"cabundle too long", func(t *testing.T, f *fixture) {
			for len(f.doc.CABundle) <= MaxCABundle {
				f.doc.CABundle = append(f.doc.CABundle, f.p.inter.Raw)
			}
		}, ErrMalformed, "cabundle"},
		{"cabundle entry empty", func(t *testing.T, f *fixture) { f.doc.CABundle[1] = []byte{} }, ErrMalformed, "cabundle[1]"},
		{"cabundle entry garbage", func(t *testing.T, f *fixture) { f.doc.CABundle[1] = []byte("garbage") }, ErrMalformed, "cabundle[1]"},
		{"public_key 1025", func(t *testing.T, f *fixture) { f.doc.PublicKey = make([]byte, 1025) }, ErrMalformed, "public_key"},
		{"user_data 1025", func(t *testing.T, f *fixture) { f.doc.UserData = make([]byte, 1025) }, ErrMalformed, "user_data"},
		{"nonce 1025", func(t *testing.T, f *fixture) { f.doc.Nonce = make([]byte, 1025) }, ErrMalformed, "nonce"},

		// keys and chain
		{"leaf P-521 with P-521 signature", func(t *testing.T, f *fixture) { f.setLeaf(t, newKey(t, elliptic.P521()), nil) }, ErrAlgorithm, "signature"},
		{"leaf P-521 with 96-byte signature", func(t *testing.T, f *fixture) {
			f.setLeaf(t, newKey(t, elliptic.P521()), nil)
			f.sig = bytes.Repeat([]byte{7}, 96)
		}, ErrAlgorithm, "leaf"},
		{"leaf P-256", func(t *testing.T, f *fixture) {
			f.setLeaf(t, newKey(t, elliptic.P256()), nil)
			f.sig = bytes.Repeat([]byte{7}, 96)
		}, ErrAlgorithm, "leaf"},
		{"leaf Ed25519", func(t *testing.T, f *fixture) {
			_, k, _ := ed25519.GenerateKey(rand.Reader)
			f.setLeaf(t, k, nil)
		}, ErrAlgorithm, "leaf"},
		{"leaf RSA", func(t *testing.T, f *fixture) {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				t.Fatal(err)
			}
			f.setLeaf(t, k, nil)
		}, ErrAlgorithm, "leaf"},
		{"leaf signed with ECDSA-SHA256", func(t *testing.T, f *fixture) {
			f.setLeaf(t, newKey(t, elliptic.P384()), func(c *x509.Certificate) { c.SignatureAlgorithm = x509.ECDSAWithSHA256 })
		}, ErrAlgorithm, "leaf"},
		{"leaf is a CA", func(t *testing.T, f *fixture) {
			f.setLeaf(t, newKey(t, elliptic.P384()), func(c *x509.Certificate) { c.IsCA = true; c.KeyUsage |= x509.KeyUsageCertSign })
		}, ErrChain, "leaf"},
		{"leaf without digitalSignature", func(t *testing.T, f *fixture) {
			f.setLeaf(t, newKey(t, elliptic.P384()), func(c *x509.Certificate) { c.KeyUsage = x509.KeyUsageKeyEncipherment })
		}, ErrChain, "leaf"},
		{"intermediate P-256", func(t *testing.T, f *fixture) {
			f.p = p256CA
			f.setLeaf(t, newKey(t, elliptic.P384()), func(c *x509.Certificate) { c.SignatureAlgorithm = x509.ECDSAWithSHA384 })
			f.doc.CABundle = [][]byte{p256CA.root.Raw, p256CA.inter.Raw}
			f.opts.Roots = []*x509.Certificate{p256CA.root}
		}, ErrAlgorithm, "cabundle[1]"},
		{"chain to cabundle[0] only (attacker root)", func(t *testing.T, f *fixture) {
			f.p = otherCA
			f.setLeaf(t, newKey(t, elliptic.P384()), nil)
			f.doc.CABundle = [][]byte{otherCA.root.Raw, otherCA.inter.Raw}
		}, ErrChain, "chain"},
		{"intermediate missing", func(t *testing.T, f *fixture) { f.doc.CABundle = f.doc.CABundle[:1] }, ErrChain, "chain"},
		{"leaf expired", func(t *testing.T, f *fixture) { f.opts.Time = testNow.Add(4 * time.Hour) }, ErrExpired, "chain"},
		{"leaf not yet valid", func(t *testing.T, f *fixture) { f.opts.Time = testNow.Add(-2 * time.Minute) }, ErrExpired, "chain"},
		{"timestamp after leaf lifetime", func(t *testing.T, f *fixture) { f.doc.Timestamp = uint64(testNow.Add(5 * time.Hour).UnixMilli()) }, ErrChain, "timestamp"},
		{"timestamp before leaf", func(t *testing.T, f *fixture) { f.doc.Timestamp = uint64(testNow.Add(-time.Hour).UnixMilli()) }, ErrChain, "timestamp"},

		// signature
		{"signature bit flipped", func(t *testing.T, f *fixture) {
			f.post = func(b []byte) []byte { b[len(b)-1] ^= 1; return b }
		}, ErrSignature, "signature"},
		{"payload byte changed", func(t *testing.T, f *fixture) {
			f.post = func(b []byte) []byte {
				i := bytes.Index(b, []byte("user data"))
				b[i] ^= 0x20
				return b
			}
		}, ErrSignature, "signature"},
		{"protected changed after signing", func(t *testing.T, f *fixture) {
			f.post = func(b []byte) []byte {
				i := bytes.Index(b, protectedES384)
				return append(append(append([]byte{}, b[:i-1]...), 0x45, 0xa1, 0x01, 0x39, 0x00, 0x22), b[i+4:]...)
			}
		}, ErrSignature, "signature"},
		{"signed by another key", func(t *testing.T, f *fixture) {
			other := newKey(t, elliptic.P384())
			payload, _ := f.doc.MarshalCBOR()
			tbs, _ := sigStructure(f.protected, payload)
			f.sig = rawSign(t, other, tbs)
		}, ErrSignature, "signature"},
		{"signature zero", func(t *testing.T, f *fixture) { f.sig = make([]byte, 96) }, ErrSignature, "signature"},
		{"signature r,s = n", func(t *testing.T, f *fixture) {
			f.sig = append(elliptic.P384().Params().N.FillBytes(make([]byte, 48)), elliptic.P384().Params().N.FillBytes(make([]byte, 48))...)
		}, ErrSignature, "signature"},

		// policy on a synthetic document
		{"timestamp in the future with MaxAge", func(t *testing.T, f *fixture) {
			f.doc.Timestamp = uint64(testNow.Add(time.Hour).UnixMilli())
			f.opts.MaxAge = 5 * time.Minute
		}, ErrExpired, "age"},
		{"timestamp in the future without MaxAge", func(t *testing.T, f *fixture) { f.doc.Timestamp = uint64(testNow.Add(time.Hour).UnixMilli()) }, nil, ""},
		{"pcr0 absent without AllowDebug", func(t *testing.T, f *fixture) { delete(f.doc.PCRs, 0) }, ErrMeasurement, "pcr0"},
		{"pcr0 absent with AllowDebug", func(t *testing.T, f *fixture) { delete(f.doc.PCRs, 0); f.opts.AllowDebug = true }, nil, ""},
		{"instance id mismatch", func(t *testing.T, f *fixture) { f.opts.MatchInstanceID = true }, ErrMeasurement, "pcr4"},
		{"instance id match", func(t *testing.T, f *fixture) {
			f.doc.PCRs[4] = InstancePCR("i-0123456789abcdef0")
			f.opts.MatchInstanceID = true
		}, nil, ""},
		{"module id not an instance", func(t *testing.T, f *fixture) { f.doc.ModuleID = "party-a.dev"; f.opts.MatchInstanceID = true }, ErrMeasurement, "module_id"},
		{"user_data bound", func(t *testing.T, f *fixture) { f.opts.UserData = []byte("user data"); f.opts.Nonce = []byte{} }, nil, ""},
		{"empty nonce expected, nonce present", func(t *testing.T, f *fixture) { f.doc.Nonce = []byte{1}; f.opts.Nonce = []byte{} }, ErrBinding, "nonce"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			tt.mod(t, f)
			raw := f.bytes(t)
			d, err := Verify(raw, f.opts)
			if tt.kind == nil {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if d == nil {
					t.Fatal("nil document without error")
				}
				return
			}
			if d != nil {
				t.Error("document returned with an error")
			}
			checkErr(t, err, tt.kind, tt.check)
			t.Logf("%v", err)
		})
	}
}

func TestSignDocument(t *testing.T) {
	f := newFixture(t)
	raw, err := SignDocument(f.doc, f.leafKey, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if raw[0] != 0x84 {
		t.Errorf("first byte %#x, want 0x84 (untagged COSE_Sign1)", raw[0])
	}
	d, err := Verify(raw, f.opts)
	if err != nil {
		t.Fatal(err)
	}
	if d.Nonce != nil || d.PublicKey != nil {
		t.Error("absent fields did not decode as nil")
	}
	if !bytes.Contains(raw, []byte("nonce\xf6")) || !bytes.Contains(raw, []byte("public_key\xf6")) {
		t.Error("absent fields not encoded as null")
	}

	other := newKey(t, elliptic.P384())
	if _, err := SignDocument(f.doc, other, rand.Reader); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("signing with a key that is not the leaf's: %v", err)
	}
	if _, err := SignDocument(f.doc, newKey(t, elliptic.P256()), rand.Reader); err == nil {
		t.Error("signing with a P-256 key succeeded")
	}
	f.doc.UserData = make([]byte, 1025)
	if _, err := SignDocument(f.doc, f.leafKey, rand.Reader); err == nil {
		t.Error("signing an oversized document succeeded")
	}
}

func TestRecoverBoundary(t *testing.T) {
	d, err := func() (d *Document, err error) {
		defer recoverAsError(&d, &err)
		d = new(Document)
		panic("boom")
	}()
	if d != nil || !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "attestation: decoder panicked") || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("recoverAsError: %v, %v", d, err)
	}
}
