package hsm

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// gcmSealer is a pure-Go stand-in for a hardware Sealer, for this package's
// tests only: output is nonce || ciphertext+tag.
type gcmSealer struct {
	aead cipher.AEAD
	// nonce, when set, replaces the random nonce (known-answer tests only).
	nonce []byte
}

func newGCMSealer(t testing.TB, key []byte) *gcmSealer {
	t.Helper()
	if key == nil {
		key = make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			t.Fatal(err)
		}
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	return &gcmSealer{aead: aead}
}

func (s *gcmSealer) Seal(aad, plaintext []byte) ([]byte, error) {
	if len(aad) == 0 {
		return nil, ErrAADRequired
	}
	nonce := s.nonce
	if nonce == nil {
		nonce = make([]byte, s.aead.NonceSize())
		if _, err := rand.Read(nonce); err != nil {
			return nil, err
		}
	}
	return s.aead.Seal(bytes.Clone(nonce), nonce, plaintext, aad), nil
}

func (s *gcmSealer) Unseal(aad, sealed []byte) ([]byte, error) {
	if len(aad) == 0 {
		return nil, ErrAADRequired
	}
	n := s.aead.NonceSize()
	if len(sealed) < n+s.aead.Overhead() {
		return nil, fmt.Errorf("test sealer: %w: too short", ErrTampered)
	}
	pt, err := s.aead.Open(nil, sealed[:n], sealed[n:], aad)
	if err != nil {
		return nil, fmt.Errorf("test sealer: %w", ErrTampered)
	}
	return pt, nil
}

var bindA = Binding{PartyID: "a", KeyID: "k1", Epoch: 3, Kind: "share/ecdsa-secp256k1"}

func TestSealOpenRoundTrip(t *testing.T) {
	s := newGCMSealer(t, nil)
	for _, tc := range []struct {
		name      string
		b         Binding
		plaintext []byte
	}{
		{"share", bindA, []byte("a secret share")},
		{"empty plaintext", bindA, nil},
		{"preparams without key id", Binding{PartyID: "a", Kind: "preparams"}, bytes.Repeat([]byte{7}, 4096)},
		{"unicode ids", Binding{PartyID: "partei-ä", KeyID: "schlüssel", Epoch: 1 << 63, Kind: "share/eddsa-ed25519"}, []byte{0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			blob, err := SealBlob(s, tc.b, tc.plaintext)
			if err != nil {
				t.Fatal(err)
			}
			got, err := OpenBlob(s, tc.b, blob)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tc.plaintext) {
				t.Fatalf("plaintext: got %x, want %x", got, tc.plaintext)
			}
			stated, err := BlobBinding(blob)
			if err != nil || stated != tc.b {
				t.Fatalf("BlobBinding = %+v, %v; want %+v", stated, err, tc.b)
			}
		})
	}
}

func TestOpenBlobBindingMismatch(t *testing.T) {
	s := newGCMSealer(t, nil)
	blob, err := SealBlob(s, bindA, []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	with := func(f func(*Binding)) Binding { b := bindA; f(&b); return b }
	for _, tc := range []struct {
		name    string
		want    Binding
		wantMsg string
	}{
		{"party", with(func(b *Binding) { b.PartyID = "b" }), `hsm: sealed blob belongs to party "a", want party "b"`},
		{"key", with(func(b *Binding) { b.KeyID = "k2" }), `hsm: sealed blob belongs to key "k1", want key "k2"`},
		{"epoch", with(func(b *Binding) { b.Epoch = 4 }), `hsm: sealed blob belongs to epoch 3, want epoch 4`},
		{"kind", with(func(b *Binding) { b.Kind = "preparams" }), `hsm: sealed blob belongs to kind "share/ecdsa-secp256k1", want kind "preparams"`},
		{"party and epoch", with(func(b *Binding) { b.PartyID = "b"; b.Epoch = 9 }), `hsm: sealed blob belongs to party "a", want party "b"; epoch 3, want epoch 9`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := OpenBlob(s, tc.want, blob)
			if !errors.Is(err, ErrBindingMismatch) {
				t.Fatalf("got %v, want ErrBindingMismatch", err)
			}
			if err.Error() != tc.wantMsg {
				t.Fatalf("message:\n got %s\nwant %s", err, tc.wantMsg)
			}
			var be *BindingError
			if !errors.As(err, &be) || be.Got != bindA || be.Want != tc.want {
				t.Fatalf("BindingError = %+v", be)
			}
		})
	}
}

// rewriteHeader re-encodes blob with a different stated binding, keeping the
// sealed bytes: what a host that swaps blobs and fixes up headers would do.
func rewriteHeader(t testing.TB, blob []byte, b Binding) []byte {
	t.Helper()
	var w wireBlob
	if err := strictDec.Unmarshal(blob, &w); err != nil {
		t.Fatal(err)
	}
	w.Binding = toWire(b)
	out, err := encMode.Marshal(w)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestOpenBlobRejects(t *testing.T) {
	s := newGCMSealer(t, nil)
	blob, err := SealBlob(s, bindA, []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	bindB := bindA
	bindB.PartyID = "b"
	reencode := func(v any) []byte {
		out, err := encMode.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	var w wireBlob
	if err := strictDec.Unmarshal(blob, &w); err != nil {
		t.Fatal(err)
	}
	flipLast := bytes.Clone(blob)
	flipLast[len(flipLast)-1] ^= 0x01
	for _, tc := range []struct {
		name    string
		sealer  Sealer
		want    Binding
		blob    []byte
		wantErr error
		wantMsg string
	}{
		{"empty", s, bindA, nil, ErrMalformed, "empty"},
		{"not cbor", s, bindA, []byte{0xff, 0x00}, ErrMalformed, ""},
		{"cbor integer", s, bindA, []byte{0x01}, ErrMalformed, ""},
		{"trailing byte", s, bindA, append(bytes.Clone(blob), 0), ErrMalformed, ""},
		{"oversized", s, bindA, make([]byte, MaxBlobSize+1), ErrMalformed, "limit is 67108864"},
		{"version 2", s, bindA, reencode(wireBlob{Version: 2, Binding: w.Binding, Sealed: w.Sealed}), ErrUnknownVersion, "blob has version 2, this build reads version 1"},
		{"version 0 (missing)", s, bindA, reencode(map[int]any{2: w.Binding, 3: w.Sealed}), ErrUnknownVersion, ""},
		{"unknown field", s, bindA, reencode(map[int]any{1: 1, 2: w.Binding, 3: w.Sealed, 4: 0}), ErrMalformed, ""},
		{"missing sealed", s, bindA, reencode(map[int]any{1: 1, 2: w.Binding}), ErrMalformed, ""},
		{"empty sealed", s, bindA, reencode(wireBlob{Version: 1, Binding: w.Binding, Sealed: []byte{}}), ErrMalformed, "sealed bytes are empty"},
		{"non-canonical (indefinite length)", s, bindA, append(append([]byte{0xbf}, blob[1:]...), 0xff), ErrMalformed, ""},
		{"flipped tag byte", s, bindA, flipLast, ErrTampered, "tampered, or sealed under a different key"},
		{"swapped header", s, bindB, rewriteHeader(t, blob, bindB), ErrTampered, ""},
		{"other key", newGCMSealer(t, nil), bindA, blob, ErrTampered, ""},
		{"invalid want", s, Binding{Kind: "x"}, blob, ErrInvalidBinding, "party id is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pt, err := OpenBlob(tc.sealer, tc.want, tc.blob)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("got (%q, %v), want %v", pt, err, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("error %q does not contain %q", err, tc.wantMsg)
			}
			if !strings.HasPrefix(err.Error(), "hsm: ") {
				t.Fatalf("error %q lacks the package prefix", err)
			}
		})
	}
}

func TestEveryFlippedByteFails(t *testing.T) {
	s := newGCMSealer(t, nil)
	blob, err := SealBlob(s, bindA, []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range blob {
		for _, mask := range []byte{0x01, 0x80} {
			b := bytes.Clone(blob)
			b[i] ^= mask
			if pt, err := OpenBlob(s, bindA, b); err == nil {
				t.Fatalf("byte %d ^ %#x: opened to %q", i, mask, pt)
			}
		}
	}
}

func TestSealBlobRejects(t *testing.T) {
	s := newGCMSealer(t, nil)
	for _, tc := range []struct {
		name    string
		b       Binding
		pt      []byte
		wantMsg string
	}{
		{"empty party", Binding{Kind: "preparams"}, nil, "hsm: invalid binding: party id is empty"},
		{"empty kind", Binding{PartyID: "a"}, nil, "hsm: invalid binding: kind is empty"},
		{"long key id", Binding{PartyID: "a", Kind: "k", KeyID: strings.Repeat("x", MaxBindingField+1)}, nil, "key id is 257 bytes, limit is 256"},
		{"bad utf-8", Binding{PartyID: "a\xff", Kind: "k"}, nil, "party id is not valid UTF-8"},
		{"too large", bindA, make([]byte, MaxBlobSize+1), "hsm: plaintext is 67108865 bytes, limit is 67108864"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := SealBlob(s, tc.b, tc.pt)
			if err == nil || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("got %v, want error containing %q", err, tc.wantMsg)
			}
		})
	}
}

// TestKnownAnswer pins the wire format: the associated data and the blob
// encoding for a fixed binding, key and nonce. A change here breaks every
// blob already stored, so it needs a new FormatVersion.
func TestKnownAnswer(t *testing.T) {
	key, _ := hex.DecodeString("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
	s := newGCMSealer(t, key)
	s.nonce = make([]byte, 12)
	b := Binding{PartyID: "a", KeyID: "k1", Epoch: 3, Kind: "preparams"}

	aad, err := aadFor(FormatVersion, b)
	if err != nil {
		t.Fatal(err)
	}
	const wantAAD = "a30178187365616c7369676e2f68736d2f7365616c65642d626c6f62020103a401616102626b3103030469707265706172616d73"
	if got := hex.EncodeToString(aad); got != wantAAD {
		t.Errorf("aad:\n got %s\nwant %s", got, wantAAD)
	}
	blob, err := SealBlob(s, b, []byte("hi"))
	if err != nil {
		t.Fatal(err)
	}
	const wantBlob = "a3010102a401616102626b3103030469707265706172616d7303581e00000000000000000000000066d55b36c868336af917242f4e4ad4bca504"
	if got := hex.EncodeToString(blob); got != wantBlob {
		t.Errorf("blob:\n got %s\nwant %s", got, wantBlob)
	}
	got, err := OpenBlob(s, b, blob)
	if err != nil || string(got) != "hi" {
		t.Fatalf("OpenBlob = %q, %v", got, err)
	}
}
