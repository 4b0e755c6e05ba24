package hsm

import (
	"bytes"
	"errors"
	"testing"
)

// fuzzKey is fixed so that seeded blobs stay openable across runs.
var fuzzKey = bytes.Repeat([]byte{0x42}, 32)

// FuzzOpenBlob feeds arbitrary bytes to OpenBlob and BlobBinding: they must
// never panic, every accepted header must re-encode to the input bytes, and
// every blob that opens must round-trip through SealBlob.
func FuzzOpenBlob(f *testing.F) {
	s := newGCMSealer(f, fuzzKey)
	valid, err := SealBlob(s, bindA, []byte("seed share"))
	if err != nil {
		f.Fatal(err)
	}
	empty, err := SealBlob(s, bindA, nil)
	if err != nil {
		f.Fatal(err)
	}
	bindB := bindA
	bindB.PartyID = "b"
	other, err := SealBlob(s, bindB, []byte("party b"))
	if err != nil {
		f.Fatal(err)
	}
	flipped := bytes.Clone(valid)
	flipped[len(flipped)-1] ^= 1
	for _, seed := range [][]byte{
		valid, empty, other, flipped,
		valid[:len(valid)-1],
		append(bytes.Clone(valid), 0),
		rewriteHeader(f, other, bindA),
		{}, {0xa0}, {0xa3, 0x01, 0x02}, {0xbf, 0xff}, {0xd8, 0x18, 0x40},
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, blob []byte) {
		pt, openErr := OpenBlob(s, bindA, blob)
		stated, parseErr := BlobBinding(blob)
		if parseErr == nil {
			w, err := parse(blob)
			if err != nil {
				t.Fatalf("BlobBinding accepted what parse rejects: %v", err)
			}
			again, err := encMode.Marshal(w)
			if err != nil || !bytes.Equal(again, blob) {
				t.Fatalf("accepted header does not re-encode to the input")
			}
		} else if openErr == nil {
			t.Fatalf("OpenBlob accepted a blob BlobBinding rejects: %v", parseErr)
		}
		if openErr != nil {
			for _, sentinel := range []error{ErrMalformed, ErrUnknownVersion, ErrBindingMismatch, ErrTampered} {
				if errors.Is(openErr, sentinel) {
					return
				}
			}
			t.Fatalf("OpenBlob error wraps no sentinel: %v", openErr)
		}
		if stated != bindA {
			t.Fatalf("opened a blob stating %+v as %+v", stated, bindA)
		}
		resealed, err := SealBlob(s, bindA, pt)
		if err != nil {
			t.Fatal(err)
		}
		pt2, err := OpenBlob(s, bindA, resealed)
		if err != nil || !bytes.Equal(pt, pt2) {
			t.Fatalf("round trip: %q, %v; want %q", pt2, err, pt)
		}
	})
}

// FuzzSealBlobRoundTrip checks that every binding SealBlob accepts opens
// again under itself and under nothing else.
func FuzzSealBlobRoundTrip(f *testing.F) {
	s := newGCMSealer(f, fuzzKey)
	f.Add("a", "k1", uint64(3), "share/ecdsa-secp256k1", []byte("x"))
	f.Add("a", "", uint64(0), "preparams", []byte{})
	f.Add("\xff", "k", uint64(1), "k", []byte{1})
	f.Fuzz(func(t *testing.T, party, key string, epoch uint64, kind string, pt []byte) {
		b := Binding{PartyID: party, KeyID: key, Epoch: epoch, Kind: kind}
		blob, err := SealBlob(s, b, pt)
		if err != nil {
			if !errors.Is(err, ErrInvalidBinding) {
				t.Fatalf("SealBlob: %v", err)
			}
			return
		}
		got, err := OpenBlob(s, b, blob)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("OpenBlob = %q, %v; want %q", got, err, pt)
		}
		other := b
		other.Epoch++
		if _, err := OpenBlob(s, other, blob); !errors.Is(err, ErrBindingMismatch) {
			t.Fatalf("opened under epoch %d: %v", other.Epoch, err)
		}
	})
}
