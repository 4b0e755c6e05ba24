package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"strings"
	"testing"
)

func p256Key(t *testing.T) (*ecdsa.PrivateKey, PublicKey) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return priv, PublicKey{ID: "p256-key", Owner: "bob", Algorithm: ECDSAP256, Key: der}
}

func edKey(seed byte) (ed25519.PrivateKey, PublicKey) {
	s := make([]byte, ed25519.SeedSize)
	s[0] = seed
	priv := ed25519.NewKeyFromSeed(s)
	return priv, PublicKey{ID: "ed-key", Owner: "alice", Algorithm: Ed25519, Key: priv.Public().(ed25519.PublicKey)}
}

func TestSignVerifyRoundTrip(t *testing.T) {
	edPriv, edPub := edKey(1)
	pPriv, pPub := p256Key(t)
	tests := []struct {
		name string
		priv crypto.Signer
		pub  PublicKey
	}{
		{"ed25519", edPriv, edPub},
		{"ecdsa-p256", pPriv, pPub},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.pub.Validate(); err != nil {
				t.Fatal(err)
			}
			for _, body := range [][]byte{nil, []byte("body"), make([]byte, 4096)} {
				sig, err := Sign(tt.priv, "sealsign/v1/test", body)
				if err != nil {
					t.Fatal(err)
				}
				if err := tt.pub.Verify("sealsign/v1/test", body, sig); err != nil {
					t.Fatalf("own signature refused: %v", err)
				}
			}
		})
	}
}

func TestVerifyRejects(t *testing.T) {
	edPriv, edPub := edKey(1)
	otherPriv, _ := edKey(2)
	pPriv, pPub := p256Key(t)
	const dom = "sealsign/v1/test"
	body := []byte("approve request 1")
	edSig, _ := Sign(edPriv, dom, body)
	pSig, _ := Sign(pPriv, dom, body)
	otherSig, _ := Sign(otherPriv, dom, body)
	flipped := append([]byte(nil), edSig...)
	flipped[0] ^= 1
	longP := append(append([]byte(nil), pSig...), make([]byte, 80)...)

	tests := []struct {
		name   string
		pub    PublicKey
		domain string
		body   []byte
		sig    []byte
	}{
		{"ed wrong domain", edPub, "sealsign/v1/other", body, edSig},
		{"ed domain is a prefix", edPub, "sealsign/v1/tes", body, edSig},
		{"ed body moved into domain", edPub, dom + "\x00approve", []byte("request 1"), edSig},
		{"ed wrong body", edPub, dom, []byte("approve request 2"), edSig},
		{"ed wrong key", edPub, dom, body, otherSig},
		{"ed flipped bit", edPub, dom, body, flipped},
		{"ed short sig", edPub, dom, body, edSig[:63]},
		{"ed empty sig", edPub, dom, body, nil},
		{"ed sig on p256 key", pPub, dom, body, edSig},
		{"p256 wrong domain", pPub, "sealsign/v1/other", body, pSig},
		{"p256 wrong body", pPub, dom, body[1:], pSig},
		{"p256 sig on ed key", edPub, dom, body, pSig},
		{"p256 oversized sig", pPub, dom, body, longP},
		{"p256 garbage sig", pPub, dom, body, []byte{0x30, 0x02, 0x01, 0x01}},
		{"ed truncated key", PublicKey{ID: "x", Owner: "y", Algorithm: Ed25519, Key: edPub.Key[:31]}, dom, body, edSig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.pub.Verify(tt.domain, tt.body, tt.sig)
			if !errors.Is(err, ErrBadSignature) {
				t.Fatalf("error %v, want ErrBadSignature", err)
			}
			if !strings.Contains(err.Error(), tt.pub.ID) || !strings.HasPrefix(err.Error(), "keys: ") {
				t.Fatalf("error %q should name key %q with the package prefix", err, tt.pub.ID)
			}
		})
	}
}

func TestValidateRejects(t *testing.T) {
	_, edPub := edKey(1)
	_, pPub := p256Key(t)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p384DER, _ := x509.MarshalPKIXPublicKey(&p384.PublicKey)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 1024)
	rsaDER, _ := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	with := func(k PublicKey, f func(*PublicKey)) PublicKey { f(&k); return k }
	tests := []struct {
		name string
		key  PublicKey
		msg  string
	}{
		{"empty id", with(edPub, func(k *PublicKey) { k.ID = "" }), "key id"},
		{"id with space", with(edPub, func(k *PublicKey) { k.ID = "a b" }), "key id"},
		{"id too long", with(edPub, func(k *PublicKey) { k.ID = strings.Repeat("a", 65) }), "key id"},
		{"bad owner", with(edPub, func(k *PublicKey) { k.Owner = "-alice" }), "owner"},
		{"ed short", with(edPub, func(k *PublicKey) { k.Key = k.Key[:31] }), "ed25519 key is 31 bytes, want 32"},
		{"malformed DER", with(pPub, func(k *PublicKey) { k.Key = k.Key[:len(k.Key)-1] }), "not PKIX DER"},
		{"DER garbage", with(pPub, func(k *PublicKey) { k.Key = []byte{0x30, 0x00} }), "not PKIX DER"},
		{"P-384", with(pPub, func(k *PublicKey) { k.Key = p384DER }), "not an ECDSA P-256 key"},
		{"RSA", with(pPub, func(k *PublicKey) { k.Key = rsaDER }), "not an ECDSA P-256 key"},
		{"raw ed key as p256", with(pPub, func(k *PublicKey) { k.Key = edPub.Key }), "not PKIX DER"},
		{"unknown algorithm", with(edPub, func(k *PublicKey) { k.Algorithm = "rsa" }), `algorithm "rsa" unsupported`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.key.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("error %v, want one containing %q", err, tt.msg)
			}
		})
	}
}

// TestVerifyMalformedKey: a key that never passed Validate (a Set built by
// hand) is refused rather than crashing. Note the error does not wrap
// ErrBadSignature (see the report on Verify's doc comment).
func TestVerifyMalformedKey(t *testing.T) {
	pPriv, pPub := p256Key(t)
	sig, _ := Sign(pPriv, "d", nil)
	bad := pPub
	bad.Key = []byte{0x30, 0x03, 0x02, 0x01, 0x01}
	if err := bad.Verify("d", nil, sig); err == nil {
		t.Fatal("malformed key verified a signature")
	}
	unk := pPub
	unk.Algorithm = "dsa"
	if err := unk.Verify("d", nil, sig); err == nil {
		t.Fatal("unknown algorithm verified a signature")
	}
}

func TestSignRejectsUnsupported(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 1024)
	if _, err := Sign(rsaKey, "d", nil); err == nil || !strings.Contains(err.Error(), "cannot sign with *rsa.PrivateKey") {
		t.Fatalf("error %v", err)
	}
}

func TestMessage(t *testing.T) {
	if got := string(Message("sealsign/v1/x", []byte("body"))); got != "sealsign/v1/x\x00body" {
		t.Fatalf("Message = %q", got)
	}
}

func TestNewSet(t *testing.T) {
	_, a := edKey(1)
	_, p := p256Key(t)
	s, err := NewSet([]PublicKey{a, p})
	if err != nil || len(s) != 2 || s["ed-key"].Owner != "alice" {
		t.Fatalf("NewSet: %v %v", s, err)
	}
	if _, err := NewSet([]PublicKey{a, a}); err == nil || !strings.Contains(err.Error(), `key id "ed-key" listed twice`) {
		t.Fatalf("duplicate: %v", err)
	}
	bad := a
	bad.Key = nil
	if _, err := NewSet([]PublicKey{bad}); err == nil {
		t.Fatal("invalid key accepted")
	}
}
