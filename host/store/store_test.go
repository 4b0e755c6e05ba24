package store

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

func TestStoreBlobsAndKeysSurviveReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutBlob("share/k1", []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutBlob("preparams/x", []byte{9}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteBlob("preparams/x"); err != nil {
		t.Fatal(err)
	}
	if err := s.PutKey(Key{ID: "k1", Algorithm: "ecdsa-secp256k1", PublicKey: []byte{2}, Threshold: 1, Parties: []string{"a", "b"}, Created: time.Unix(1, 0)}); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path); err == nil {
		t.Fatal("a second Open of a store in use succeeded")
	}
	s.Close()

	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	blobs, _ := s.Blobs()
	if len(blobs) != 1 || !bytes.Equal(blobs["share/k1"], []byte{1, 2, 3}) {
		t.Fatalf("blobs after reopen = %v", blobs)
	}
	if _, err := s.Blob("preparams/x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted blob: %v", err)
	}
	k, err := s.Key("k1")
	if err != nil || k.Threshold != 1 || len(k.Parties) != 2 {
		t.Fatalf("key = %+v, %v", k, err)
	}
	if _, err := s.Key("nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing key: %v", err)
	}
	if err := s.PutBlob("", nil); err == nil {
		t.Fatal("empty blob name accepted")
	}
}
