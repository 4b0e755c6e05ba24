package store

import (
	"context"
	"crypto/rand"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/sealsign/sealsign/host/store/pgtest"
)

// benchEntrySize is about an audit entry's size (request, verdict and
// result entries; boot entries with an attestation document are larger).
const benchEntrySize = 600

// BenchmarkAuditAppend measures durable audit appends, one at a time as an
// enclave makes them: bbolt fsyncs every transaction; PostgreSQL commits
// each with synchronous_commit on (fsync on, on a local server).
func BenchmarkAuditAppend(b *testing.B) {
	entry := make([]byte, benchEntrySize)
	rand.Read(entry)
	b.Run("bbolt", func(b *testing.B) {
		s, err := Open(filepath.Join(b.TempDir(), "s.db"))
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		benchAppend(b, s, entry)
	})
	url, _, _ := pgtest.Start(b)
	run := 0
	b.Run("postgres", func(b *testing.B) {
		run++ // a fresh party's log for each round the benchmark runs
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		p, err := OpenPostgres(ctx, url, fmt.Sprintf("bench-%d", run))
		if err != nil {
			b.Fatal(err)
		}
		defer p.Close()
		benchAppend(b, p, entry)
	})
}

func benchAppend(b *testing.B, l AuditLog, entry []byte) {
	b.SetBytes(int64(len(entry)))
	b.ResetTimer()
	for i := range b.N {
		if err := l.AppendAudit(uint64(i+1), entry); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}
