package store

import (
	"encoding/binary"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// ErrAuditOrder is returned for an audit entry that would leave a gap or
// overwrite an entry: the log is append-only.
var ErrAuditOrder = errors.New("store: audit entries are append-only")

func seqKey(seq uint64) []byte {
	k := make([]byte, 8)
	binary.BigEndian.PutUint64(k, seq)
	return k
}

// AppendAudit stores the audit entry with sequence number seq durably. It
// must be the next one: seq 1 for an empty log, last+1 otherwise.
func (s *Store) AppendAudit(seq uint64, entry []byte) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAudit)
		var last uint64
		if k, _ := b.Cursor().Last(); k != nil {
			last = binary.BigEndian.Uint64(k)
		}
		if seq != last+1 {
			return fmt.Errorf("%w: entry %d offered, the log ends at %d", ErrAuditOrder, seq, last)
		}
		return b.Put(seqKey(seq), entry)
	})
}

// AuditTail returns the last audit entry and its seq (nil, 0 for an empty
// log).
func (s *Store) AuditTail() ([]byte, uint64, error) {
	var out []byte
	var seq uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		k, v := tx.Bucket(bucketAudit).Cursor().Last()
		if k != nil {
			seq, out = binary.BigEndian.Uint64(k), append([]byte(nil), v...)
		}
		return nil
	})
	return out, seq, err
}

// Audit returns up to limit entries from seq from, in order.
func (s *Store) Audit(from uint64, limit int) ([][]byte, error) {
	var out [][]byte
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketAudit).Cursor()
		for k, v := c.Seek(seqKey(from)); k != nil && len(out) < limit; k, v = c.Next() {
			out = append(out, append([]byte(nil), v...))
		}
		return nil
	})
	return out, err
}

// PutRequest stores a signing request's record (the host's own tracking:
// opaque JSON to the store).
func (s *Store) PutRequest(id string, record []byte) error {
	if id == "" || len(id) > 128 {
		return fmt.Errorf("store: request id %q invalid", id)
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRequests).Put([]byte(id), record)
	})
}

// Request returns one request record.
func (s *Store) Request(id string) ([]byte, error) {
	var out []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketRequests).Get([]byte(id))
		if v == nil {
			return fmt.Errorf("%w: request %q", ErrNotFound, id)
		}
		out = append([]byte(nil), v...)
		return nil
	})
	return out, err
}

// Requests returns every request record.
func (s *Store) Requests() ([][]byte, error) {
	var out [][]byte
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRequests).ForEach(func(_, v []byte) error {
			out = append(out, append([]byte(nil), v...))
			return nil
		})
	})
	return out, err
}
