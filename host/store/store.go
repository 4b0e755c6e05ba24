// Package store is the host's embedded store for sealed blobs and key
// metadata, on bbolt: every write is one transaction, fsynced before it
// returns, so a crash leaves either the old or the new state.
//
// The host never holds a plaintext share: blobs are opaque sealed bytes the
// enclave produced; metadata is public (key ids, public keys, parties).
package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"
)

var (
	bucketBlobs    = []byte("blobs")
	bucketKeys     = []byte("keys")
	bucketAudit    = []byte("audit")
	bucketRequests = []byte("requests")
)

// ErrNotFound is returned for a missing blob or key.
var ErrNotFound = errors.New("store: not found")

// Key is the public metadata of a key.
type Key struct {
	ID        string    `json:"key_id"`
	Algorithm string    `json:"algorithm"`
	PublicKey []byte    `json:"public_key"`
	Threshold int       `json:"threshold"`
	Parties   []string  `json:"parties"`
	Created   time.Time `json:"created"`
	// Epoch of the key's shares in force (0 from keygen, +1 per refresh or
	// reshare; this host's enclave is the authority).
	Epoch uint64 `json:"epoch,omitempty"`
}

// Store is a bbolt-backed store. It is safe for concurrent use.
type Store struct {
	db *bolt.DB
}

// Open opens (creating if needed) the store at path. A second process
// opening the same file waits up to a second and then fails, instead of
// corrupting it.
func Open(path string) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketBlobs, bucketKeys, bucketAudit, bucketRequests} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("store: init %s: %w", path, err)
	}
	return &Store{db: db}, nil
}

// Close closes the store.
func (s *Store) Close() error { return s.db.Close() }

// PutBlob stores a blob durably, replacing any blob of the same name.
func (s *Store) PutBlob(name string, blob []byte) error {
	if name == "" || len(name) > 256 {
		return fmt.Errorf("store: blob name %q invalid", name)
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketBlobs).Put([]byte(name), blob)
	})
}

// DeleteBlob removes a blob; a missing blob is not an error.
func (s *Store) DeleteBlob(name string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketBlobs).Delete([]byte(name))
	})
}

// Blob returns one blob.
func (s *Store) Blob(name string) ([]byte, error) {
	var out []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketBlobs).Get([]byte(name))
		if v == nil {
			return fmt.Errorf("%w: blob %q", ErrNotFound, name)
		}
		out = append([]byte(nil), v...)
		return nil
	})
	return out, err
}

// Blobs returns every blob, by name.
func (s *Store) Blobs() (map[string][]byte, error) {
	out := map[string][]byte{}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketBlobs).ForEach(func(k, v []byte) error {
			out[string(k)] = append([]byte(nil), v...)
			return nil
		})
	})
	return out, err
}

// PutKey records a key's metadata.
func (s *Store) PutKey(k Key) error {
	b, err := json.Marshal(k)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketKeys).Put([]byte(k.ID), b)
	})
}

// DeleteKey removes a key's metadata (a reshare removed this party).
func (s *Store) DeleteKey(id string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketKeys).Delete([]byte(id))
	})
}

// Key returns one key's metadata.
func (s *Store) Key(id string) (Key, error) {
	var k Key
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketKeys).Get([]byte(id))
		if v == nil {
			return fmt.Errorf("%w: key %q", ErrNotFound, id)
		}
		return json.Unmarshal(v, &k)
	})
	return k, err
}

// Keys lists all keys, oldest first.
func (s *Store) Keys() ([]Key, error) {
	var out []Key
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketKeys).ForEach(func(_, v []byte) error {
			var k Key
			if err := json.Unmarshal(v, &k); err != nil {
				return err
			}
			out = append(out, k)
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, err
}
