package request

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sealsign/sealsign/governance/canon"
	"github.com/sealsign/sealsign/governance/keys"
	"github.com/sealsign/sealsign/governance/tx"
)

var (
	now      = time.Unix(1_760_000_000, 0)
	cluster  = "cluster-1"
	edPriv   = ed25519.NewKeyFromSeed(seed(1))
	edOther  = ed25519.NewKeyFromSeed(seed(2))
	p256Priv = mustP256()
)

func seed(b byte) []byte {
	s := make([]byte, ed25519.SeedSize)
	for i := range s {
		s[i] = b
	}
	return s
}

func mustP256() *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}

func clients(t testing.TB) keys.Set {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(&p256Priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	s, err := keys.NewSet([]keys.PublicKey{
		{ID: "client-ed", Owner: "alice", Algorithm: keys.Ed25519, Key: edPriv.Public().(ed25519.PublicKey)},
		{ID: "client-p256", Owner: "bob", Algorithm: keys.ECDSAP256, Key: der},
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func base() Request {
	return Request{
		Format:      FormatV1,
		ID:          "req-0123456789abcdef",
		ClusterID:   cluster,
		ClientKeyID: "client-ed",
		KeyID:       "treasury",
		Kind:        tx.KindRaw,
		Payload:     make([]byte, 32),
		IssuedAt:    now.Unix() - 10,
		ExpiresAt:   now.Unix() + 600,
	}
}

// signRaw signs r without validating it, to build authentic but invalid
// requests.
func signRaw(t testing.TB, r Request, priv crypto.Signer, domain string) []byte {
	t.Helper()
	body, err := canon.Marshal(&r)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := keys.Sign(priv, domain, body)
	if err != nil {
		t.Fatal(err)
	}
	out, err := canon.Marshal(&Signed{Request: body, Signature: sig})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestVerifyAccepts(t *testing.T) {
	cs := clients(t)
	tests := []struct {
		name string
		mod  func(*Request)
		priv crypto.Signer
	}{
		{"ed25519", func(*Request) {}, edPriv},
		{"p256", func(r *Request) { r.ClientKeyID = "client-p256" }, p256Priv},
		{"signers", func(r *Request) { r.Signers = []string{"party-a", "party-b"} }, edPriv},
		{"max lifetime", func(r *Request) { r.IssuedAt = now.Unix(); r.ExpiresAt = r.IssuedAt + 900 }, edPriv},
		{"issued within skew", func(r *Request) { r.IssuedAt = now.Unix() + 120; r.ExpiresAt = r.IssuedAt + 60 }, edPriv},
		{"max payload", func(r *Request) { r.Payload = make([]byte, MaxPayloadSize) }, edPriv},
		{"evm kind", func(r *Request) { r.Kind = tx.KindEVM }, edPriv},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := base()
			tt.mod(&r)
			signed, err := New(r, tt.priv)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Verify(signed, cs, cluster, now, 0)
			if err != nil {
				t.Fatal(err)
			}
			if got.ID != r.ID || got.KeyID != r.KeyID || string(got.Payload) != string(r.Payload) {
				t.Fatalf("verified request differs: %+v", got)
			}
			if got.Digest() != Digest(signed) || got.Digest() == ([32]byte{}) {
				t.Fatalf("Digest() = %x, want %x", got.Digest(), Digest(signed))
			}
		})
	}
}

func TestVerifyRejects(t *testing.T) {
	cs := clients(t)
	good, err := New(base(), edPriv)
	if err != nil {
		t.Fatal(err)
	}
	var gs Signed
	if err := canon.Unmarshal(good, &gs); err != nil {
		t.Fatal(err)
	}
	envelope := func(s Signed) []byte {
		b, err := canon.Marshal(&s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	mod := func(f func(*Request)) []byte {
		r := base()
		f(&r)
		return signRaw(t, r, edPriv, Domain)
	}
	flipSig := append([]byte(nil), gs.Signature...)
	flipSig[0] ^= 1
	nonCanonical := append([]byte{0xb9, 0x00, 0x02}, good[1:]...) // map(2) with a 2-byte length

	tests := []struct {
		name    string
		signed  []byte
		now     time.Time
		maxLife time.Duration
		want    error
		msg     string // substring the error must contain
	}{
		{"empty", nil, now, 0, ErrMalformed, "signed envelope"},
		{"garbage", []byte("not cbor"), now, 0, ErrMalformed, "signed envelope"},
		{"too large", make([]byte, canon.MaxSize+1), now, 0, ErrTooLarge, "limit"},
		{"non-canonical envelope", nonCanonical, now, 0, ErrMalformed, "signed envelope"},
		{"body not cbor", envelope(Signed{Request: []byte{0xff}, Signature: gs.Signature}), now, 0, ErrMalformed, "request body"},
		{"unknown body field", envelope(Signed{Request: append([]byte{0xaa}, append(gs.Request[1:], 0x18, 0x63, 0x01)...), Signature: gs.Signature}), now, 0, ErrMalformed, "request body"},
		{"format 2", mod(func(r *Request) { r.Format = 2 }), now, 0, ErrMalformed, "format 2 unsupported, want 1"},
		{"unknown client", mod(func(r *Request) { r.ClientKeyID = "mallory" }), now, 0, ErrUnknownClient, `"mallory" is not a client key`},
		{"flipped signature", envelope(Signed{Request: gs.Request, Signature: flipSig}), now, 0, ErrBadSignature, `client key "client-ed"`},
		{"no signature", envelope(Signed{Request: gs.Request}), now, 0, ErrBadSignature, "client-ed"},
		{"wrong key", signRaw(t, base(), edOther, Domain), now, 0, ErrBadSignature, "client-ed"},
		{"wrong domain", signRaw(t, base(), edPriv, "sealsign/v1/approval"), now, 0, ErrBadSignature, "client-ed"},
		{"p256 key ed signature", mod(func(r *Request) { r.ClientKeyID = "client-p256" }), now, 0, ErrBadSignature, "ecdsa-p256"},
		{"short id", mod(func(r *Request) { r.ID = "short" }), now, 0, ErrMalformed, `id "short" invalid`},
		{"long id", mod(func(r *Request) { r.ID = strings.Repeat("a", 65) }), now, 0, ErrMalformed, "invalid"},
		{"id charset", mod(func(r *Request) { r.ID = "req 0123456789abcdef" }), now, 0, ErrMalformed, "invalid"},
		{"empty cluster", mod(func(r *Request) { r.ClusterID = "" }), now, 0, ErrMalformed, "cluster id"},
		{"empty key id", mod(func(r *Request) { r.KeyID = "" }), now, 0, ErrMalformed, "key id"},
		{"bad kind", mod(func(r *Request) { r.Kind = "EVM!" }), now, 0, ErrMalformed, `kind "EVM!" invalid`},
		{"empty payload", mod(func(r *Request) { r.Payload = nil }), now, 0, ErrMalformed, "payload is empty"},
		{"payload too large", mod(func(r *Request) { r.Payload = make([]byte, MaxPayloadSize+1) }), now, 0, ErrTooLarge, "payload is 524289 bytes, limit 524288"},
		{"expires before issued", mod(func(r *Request) { r.ExpiresAt = r.IssuedAt }), now, 0, ErrMalformed, "validity window"},
		{"zero issued", mod(func(r *Request) { r.IssuedAt = 0 }), now, 0, ErrMalformed, "validity window"},
		{"too many signers", mod(func(r *Request) {
			for i := 0; i <= MaxSigners; i++ {
				r.Signers = append(r.Signers, "p"+string(rune('a'+i)))
			}
		}), now, 0, ErrMalformed, "17 signers, limit 16"},
		{"unsorted signers", mod(func(r *Request) { r.Signers = []string{"b", "a"} }), now, 0, ErrMalformed, "not sorted"},
		{"duplicate signers", mod(func(r *Request) { r.Signers = []string{"a", "a"} }), now, 0, ErrMalformed, "not sorted and unique"},
		{"bad signer", mod(func(r *Request) { r.Signers = []string{"Party_A"} }), now, 0, ErrMalformed, "not a party id"},
		{"wrong cluster", mod(func(r *Request) { r.ClusterID = "cluster-2" }), now, 0, ErrWrongCluster, `for cluster "cluster-2", want "cluster-1"`},
		{"expired", good, time.Unix(base().ExpiresAt, 0), 0, ErrExpired, "expired at"},
		{"long expired", good, now.Add(24 * time.Hour), 0, ErrExpired, "expired at"},
		{"future", mod(func(r *Request) { r.IssuedAt = now.Unix() + 121; r.ExpiresAt = r.IssuedAt + 60 }), now, 0, ErrNotYetValid, "check the client's clock"},
		{"lifetime default", mod(func(r *Request) { r.ExpiresAt = r.IssuedAt + 901 }), now, 0, ErrLifetime, "lives 901s"},
		{"lifetime custom", good, now, 5 * time.Minute, ErrLifetime, "limit 5m0s"},
		{"lifetime overflow", mod(func(r *Request) { r.IssuedAt = 1; r.ExpiresAt = 1 << 62 }), now, 0, ErrLifetime, "lives"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Verify(tt.signed, cs, cluster, tt.now, tt.maxLife)
			if err == nil {
				t.Fatalf("accepted %+v", r)
			}
			if r != nil {
				t.Fatalf("returned a request with error %v", err)
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("error %q is not %q", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("error %q does not contain %q", err, tt.msg)
			}
			if !strings.HasPrefix(err.Error(), "request: ") {
				t.Fatalf("error %q lacks the package prefix", err)
			}
		})
	}
}

func TestBadSignatureMatchesKeys(t *testing.T) {
	signed := signRaw(t, base(), edOther, Domain)
	_, err := Verify(signed, clients(t), cluster, now, 0)
	if !errors.Is(err, ErrBadSignature) || !errors.Is(err, keys.ErrBadSignature) {
		t.Fatalf("error %v should match request.ErrBadSignature and keys.ErrBadSignature", err)
	}
}

func TestErrorsNeverEchoPayload(t *testing.T) {
	r := base()
	r.Payload = []byte("SECRET-PAYLOAD-MARKER-0123456789")
	r.ClusterID = "cluster-2"
	signed := signRaw(t, r, edPriv, Domain)
	for _, c := range []string{cluster, "cluster-2"} {
		for _, at := range []time.Time{now, now.Add(time.Hour)} {
			_, err := Verify(signed, clients(t), c, at, 0)
			if err != nil && (strings.Contains(err.Error(), "SECRET") || strings.Contains(err.Error(), hex.EncodeToString(r.Payload[:8]))) {
				t.Fatalf("error echoes the payload: %v", err)
			}
		}
	}
}

func TestNewRejectsInvalid(t *testing.T) {
	r := base()
	r.ID = "x"
	if _, err := New(r, edPriv); !errors.Is(err, ErrMalformed) {
		t.Fatalf("New accepted an invalid request: %v", err)
	}
	if _, err := New(base(), nil); err == nil {
		t.Fatal("New signed with a nil key")
	}
}

func TestPayloadHashVector(t *testing.T) {
	// Known answers, computed independently with Python:
	// hashlib.sha256(b"sealsign/v1/payload\x00" + kind + b"\x00" + payload)
	tests := []struct {
		name    string
		kind    tx.Kind
		payload []byte
		want    string
	}{
		{"raw 32 zero bytes", tx.KindRaw, make([]byte, 32), "f5fd8731a73c031c8f4979bde99bdab64c57db44ce5b8457f61b6016c36f559f"},
		{"evm one byte", tx.KindEVM, []byte{1}, "70164fab5ca5056f8029736ff6dcc22fa6f3eea9d49c7d82f950520855e1043e"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Request{Kind: tt.kind, Payload: tt.payload}
			got := r.PayloadHash()
			if hex.EncodeToString(got[:]) != tt.want {
				t.Fatalf("PayloadHash = %x, want %s", got, tt.want)
			}
		})
	}
}

func TestRequestEncodingVector(t *testing.T) {
	// Hand-assembled: a9 (map of 9), keys 1..9 in order, Signers omitted
	// when empty; pins the CBOR key layout.
	r := Request{Format: 1, ID: "req-0123456789abcdef", ClusterID: "c", ClientKeyID: "k", KeyID: "t", Kind: tx.KindRaw, Payload: []byte{1}, IssuedAt: 1, ExpiresAt: 2}
	b, err := canon.Marshal(&r)
	if err != nil {
		t.Fatal(err)
	}
	const want = "a9010102747265712d3031323334353637383961626364656603616304616b056174066a7261772d64696765737407410108010902"
	if got := hex.EncodeToString(b); got != want {
		t.Fatalf("encoding\n got %s\nwant %s", got, want)
	}
}
