package tx

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"

	"github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"
)

func edKey(seed byte) (ed25519.PrivateKey, Key) {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
	return priv, Key{Algorithm: AlgorithmEdDSAEd25519, PublicKey: priv.Public().(ed25519.PublicKey)}
}

func TestRawECDSA(t *testing.T) {
	priv, key := testKey(t, 0x33)
	digest := sha256.Sum256([]byte("sealsign raw"))
	d, err := Decode(KindRaw, digest[:], key, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := d.Summary
	if s.Method != "raw" || s.Chain != "" || s.Fee != nil || len(s.Transfers) != 0 || s.Kind != KindRaw {
		t.Fatalf("summary %+v, want raw with no chain, fee or transfers", s)
	}
	if len(s.Digests) != 1 || !bytes.Equal(s.Digests[0], digest[:]) {
		t.Fatalf("digests %x, want [%x]", s.Digests, digest)
	}
	sig := signDigest(priv, digest[:])
	out, err := d.Assemble([]Signature{sig})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 65 || !bytes.Equal(out[:64], sig.RS) || out[64] != sig.RecoveryID {
		t.Fatalf("output %x, want r‖s‖recid %x%02x", out, sig.RS, sig.RecoveryID)
	}
	// The 65 bytes recover the key with an independent recoverer.
	pub, _, err := ecdsa.RecoverCompact(append([]byte{27 + 4 + out[64]}, out[:64]...), digest[:])
	if err != nil || !pub.IsEqual(priv.PubKey()) {
		t.Fatalf("output does not recover the key (%v)", err)
	}
	_, err = d.Assemble([]Signature{{RS: sig.RS, RecoveryID: 1 - sig.RecoveryID}})
	wantErr(t, err, ErrBadSignature, "does not recover")
}

func TestRawEd25519(t *testing.T) {
	priv, key := edKey(0x44)
	msg := []byte("a message of any length")
	d, err := Decode(KindRaw, msg, key, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Summary.Digests) != 1 || !bytes.Equal(d.Summary.Digests[0], msg) {
		t.Fatalf("digests %q, want [the message]", d.Summary.Digests)
	}
	sig := ed25519.Sign(priv, msg)
	out, err := d.Assemble([]Signature{{RS: sig}})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, sig) {
		t.Fatalf("output %x, want the signature %x", out, sig)
	}
	bad := append([]byte(nil), sig...)
	bad[10] ^= 1
	cases := []struct {
		name     string
		sig      Signature
		fragment string
	}{
		{"flipped bit", Signature{RS: bad}, "does not verify"},
		{"other message", Signature{RS: ed25519.Sign(priv, []byte("other"))}, "does not verify"},
		{"short", Signature{RS: sig[:63]}, "63 bytes, want 64"},
		{"recovery id", Signature{RS: sig, RecoveryID: 1}, "want 0"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := d.Assemble([]Signature{c.sig})
			wantErr(t, err, ErrBadSignature, c.fragment)
		})
	}
}

func TestRawRejects(t *testing.T) {
	_, ecKey := testKey(t, 0x33)
	_, edk := edKey(0x44)
	cases := []struct {
		name     string
		payload  []byte
		key      Key
		class    error
		fragment string
	}{
		{"ecdsa 31 bytes", make([]byte, 31), ecKey, ErrMalformed, "31 bytes, want a 32-byte digest"},
		{"ecdsa 33 bytes", make([]byte, 33), ecKey, ErrMalformed, "33 bytes"},
		{"ecdsa empty", nil, ecKey, ErrMalformed, "0 bytes"},
		{"eddsa empty", nil, edk, ErrMalformed, "empty"},
		{"eddsa too long", make([]byte, MaxRawMessage+1), edk, ErrTooLarge, "limit is 65536"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Decode(KindRaw, c.payload, c.key, Options{})
			wantErr(t, err, c.class, c.fragment)
		})
	}
	if _, err := Decode(KindRaw, make([]byte, MaxRawMessage), edk, Options{}); err != nil {
		t.Fatalf("a MaxRawMessage-byte message: %v", err)
	}
}

func TestDecodeRejects(t *testing.T) {
	_, ecKey := testKey(t, 0x33)
	_, edk := edKey(0x44)
	offCurve := append([]byte{0x02}, bytes.Repeat([]byte{0xff}, 32)...) // x ≥ p
	cases := []struct {
		name     string
		kind     Kind
		payload  []byte
		key      Key
		class    error
		fragment string
	}{
		{"too large", KindEVM, make([]byte, MaxPayloadSize+1), ecKey, ErrTooLarge, "limit is 1048576"},
		{"unknown kind", Kind("btc-raw"), make([]byte, 32), ecKey, ErrUnsupported, `kind "btc-raw" unknown`},
		{"eddsa for evm", KindEVM, []byte{0xc0}, edk, ErrUnsupported, "needs an ecdsa-secp256k1 key"},
		{"eddsa for psbt", KindPSBT, []byte("psbt\xff"), edk, ErrUnsupported, "needs an ecdsa-secp256k1 key"},
		{"unknown algorithm", KindRaw, make([]byte, 32), Key{Algorithm: "ecdsa-p256", PublicKey: ecKey.PublicKey}, ErrInvalidKey, `"ecdsa-p256" unknown`},
		{"uncompressed key", KindRaw, make([]byte, 32), Key{Algorithm: AlgorithmECDSASecp256k1, PublicKey: append([]byte{0x04}, make([]byte, 64)...)}, ErrInvalidKey, "65 bytes with prefix 0x04"},
		{"key off curve", KindRaw, make([]byte, 32), Key{Algorithm: AlgorithmECDSASecp256k1, PublicKey: offCurve}, ErrInvalidKey, "not on the curve"},
		{"short ed25519 key", KindRaw, []byte("m"), Key{Algorithm: AlgorithmEdDSAEd25519, PublicKey: make([]byte, 31)}, ErrInvalidKey, "31 bytes, want 32"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, err := Decode(c.kind, c.payload, c.key, Options{})
			if d != nil {
				t.Fatal("got a Decoded for a refused request")
			}
			wantErr(t, err, c.class, c.fragment)
		})
	}
}

// TestPayloadHash pins the domain-separated hash against an independent
// computation and checks that kind and payload are both bound.
func TestPayloadHash(t *testing.T) {
	payload := bytes.Repeat([]byte{0xab}, 32)
	_, key := testKey(t, 0x33)
	d, err := Decode(KindRaw, payload, key, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256([]byte("sealsign/v1/payload\x00raw-digest\x00" + string(payload)))
	if d.Summary.PayloadHash != want {
		t.Fatalf("payload hash %x, want %x", d.Summary.PayloadHash, want)
	}
	if PayloadHash(KindEVM, payload) == want || PayloadHash(KindRaw, payload[1:]) == want {
		t.Fatal("payload hash does not bind kind and payload")
	}
}

// TestDecodedIsolation: neither the caller's payload buffer nor the
// returned Summary can change what Assemble signs off on.
func TestDecodedIsolation(t *testing.T) {
	priv, key := testKey(t, 0x33)
	payload := bytes.Repeat([]byte{0x5a}, 32)
	d, err := Decode(KindRaw, payload, key, Options{})
	if err != nil {
		t.Fatal(err)
	}
	sig := signDigest(priv, payload)
	payload[0] ^= 0xff
	d.Summary.Digests[0][0] ^= 0xff
	if _, err := d.Assemble([]Signature{sig}); err != nil {
		t.Fatalf("Assemble used mutated caller state: %v", err)
	}
	var zero *Decoded
	if _, err := zero.Assemble([]Signature{sig}); err == nil || !strings.HasPrefix(err.Error(), "tx: ") {
		t.Fatalf("nil Decoded: %v", err)
	}
	if errors.Is(ErrMalformed, ErrUnsupported) {
		t.Fatal("error classes overlap")
	}
}
