package auditlog_test

import (
	"fmt"
	"testing"

	"github.com/sealsign/sealsign/host/auditlog"
	"github.com/sealsign/sealsign/host/auditlog/auditlogtest"
)

// BenchmarkVerifyLog is "sealsign audit verify" on one party's log of
// 10,000 entries (governed requests of one digest, a dev NSM boot entry):
// audit.Verifier plus the attestation check, decoding and indexing.
// enclave/audit's BenchmarkVerify1M measures the chain alone.
func BenchmarkVerifyLog(b *testing.B) {
	c := auditlogtest.New(b, "a", "b")
	p := c.Party("a")
	for i := 0; len(p.Entries) < 10_000; i++ {
		c.NewRequest(fmt.Sprintf("req-%08d", i), "key-1", []string{"a", "b"}, auditlogtest.SignOptions{}).Record(p)
	}
	entries := p.Entries[:10_000]
	b.ResetTimer()
	for range b.N {
		l, err := auditlog.Verify(auditlog.Slice(entries), auditlog.Options{Manifest: c.Manifest, PartyID: "a"})
		if err != nil || len(l.Records) != len(entries) {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(entries))*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}
