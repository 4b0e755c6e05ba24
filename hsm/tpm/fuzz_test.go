package tpm

import (
	"bytes"
	"errors"
	"testing"

	"github.com/sealsign/sealsign/hsm"
)

// fuzzSeeds are well-formed and broken sealed blobs: a real blob from the
// simulator and edits of it.
func fuzzSeeds(t testing.TB, blob []byte) [][]byte {
	seeds := [][]byte{
		blob,
		blob[:len(blob)/2],
		append(bytes.Clone(blob), 0),
		{},
		{1},
		{2, 0, 0, 1},
		{1, 0xff, 0xff, 0xff},
	}
	for _, off := range []int{0, 1, 4, 100, 101, 180, len(blob) - 1} {
		if off < len(blob) {
			b := bytes.Clone(blob)
			b[off] ^= 0x80
			seeds = append(seeds, b)
		}
	}
	return seeds
}

// FuzzParseSealed: the blob decoder never panics, classifies every error,
// and everything it accepts re-encodes to the same bytes.
func FuzzParseSealed(f *testing.F) {
	tp := openSim(f)
	blob, err := newSealer(f, tp, 7, 16).Seal(testAAD, []byte("fuzz seed share"))
	if err != nil {
		f.Fatal(err)
	}
	tp.Close()
	for _, s := range fuzzSeeds(f, blob) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := parseSealed(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, hsm.ErrUnknownVersion) {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		again := append(b.marshalHeader(), b.ciphertext...)
		if !bytes.Equal(again, data) {
			t.Fatalf("parse/marshal round trip changed the blob")
		}
	})
}

// FuzzUnseal: Unseal on a real simulator never panics on hostile bytes,
// never reports an attack as a device failure, and accepts only the blob
// that was sealed.
func FuzzUnseal(f *testing.F) {
	tp := openSim(f)
	s := newSealer(f, tp, 7, 16)
	plaintext := []byte("fuzz seed share")
	blob, err := s.Seal(testAAD, plaintext)
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range fuzzSeeds(f, blob) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		pt, err := s.Unseal(testAAD, data)
		if err == nil {
			if !bytes.Equal(data, blob) || !bytes.Equal(pt, plaintext) {
				t.Fatalf("Unseal accepted bytes other than the sealed blob")
			}
			return
		}
		if errors.Is(err, ErrDevice) || errors.Is(err, ErrClosed) {
			t.Fatalf("hostile blob reported as a device failure: %v", err)
		}
		if !errors.Is(err, hsm.ErrTampered) && !errors.Is(err, hsm.ErrUnknownVersion) && !errors.Is(err, ErrPolicy) {
			t.Fatalf("unclassified error: %v", err)
		}
	})
}
