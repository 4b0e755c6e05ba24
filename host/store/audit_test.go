package store

import (
	"errors"
	"path/filepath"
	"testing"
)

func TestAuditAppendOnly(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if tail, seq, err := s.AuditTail(); err != nil || tail != nil || seq != 0 {
		t.Fatalf("empty log tail = %q %d %v", tail, seq, err)
	}
	if err := s.AppendAudit(2, []byte("two")); !errors.Is(err, ErrAuditOrder) {
		t.Fatalf("gap accepted: %v", err)
	}
	for i, e := range []string{"one", "two", "three"} {
		if err := s.AppendAudit(uint64(i+1), []byte(e)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.AppendAudit(3, []byte("other")); !errors.Is(err, ErrAuditOrder) {
		t.Fatalf("overwrite accepted: %v", err)
	}
	tail, seq, err := s.AuditTail()
	if err != nil || string(tail) != "three" || seq != 3 {
		t.Fatalf("tail = %q %d %v", tail, seq, err)
	}
	got, err := s.Audit(2, 10)
	if err != nil || len(got) != 2 || string(got[0]) != "two" || string(got[1]) != "three" {
		t.Fatalf("Audit(2) = %q %v", got, err)
	}
	if got, _ := s.Audit(1, 1); len(got) != 1 || string(got[0]) != "one" {
		t.Fatalf("Audit limit: %q", got)
	}
}
