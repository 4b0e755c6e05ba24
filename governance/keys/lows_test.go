package keys

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"math/big"
	"testing"

	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"
)

// TestP256HighSRefused: the high-S twin (r, n−s) of a valid signature is
// refused, so a digest over signed bytes has exactly one accepted value;
// Sign always produces low-S.
func TestP256HighSRefused(t *testing.T) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	pk := PublicKey{ID: "client-1", Owner: "ops", Algorithm: ECDSAP256, Key: der}
	body := []byte("request bytes")
	for i := 0; i < 20; i++ {
		sig, err := Sign(priv, "sealsign/v1/test", body)
		if err != nil {
			t.Fatal(err)
		}
		if err := pk.Verify("sealsign/v1/test", body, sig); err != nil {
			t.Fatalf("Sign's own signature refused: %v", err)
		}
		var r, s big.Int
		in := cryptobyte.String(sig)
		var inner cryptobyte.String
		if !in.ReadASN1(&inner, asn1.SEQUENCE) || !inner.ReadASN1Integer(&r) || !inner.ReadASN1Integer(&s) {
			t.Fatal("Sign's signature is not ASN.1")
		}
		n := elliptic.P256().Params().N
		if s.Cmp(new(big.Int).Rsh(n, 1)) > 0 {
			t.Fatal("Sign produced a high-S signature")
		}
		var b cryptobyte.Builder
		b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1BigInt(&r)
			b.AddASN1BigInt(new(big.Int).Sub(n, &s))
		})
		twin := b.BytesOrPanic()
		if err := pk.Verify("sealsign/v1/test", body, twin); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("high-S twin: %v, want ErrBadSignature", err)
		}
	}
}
