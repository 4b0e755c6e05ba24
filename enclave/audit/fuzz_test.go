package audit

import (
	"testing"
)

// FuzzVerifyChain: Verify never panics on any three entries, a failure is
// always a *ChainError naming a position within them, and an accepted log's
// head is its last entry.
func FuzzVerifyChain(f *testing.F) {
	entries, _ := build(f, "party-a", key(1), 1)
	f.Add(entries[0], entries[1], entries[2])
	f.Add(entries[0], entries[2], entries[1])
	f.Add(entries[0], entries[8], entries[9])
	f.Add(entries[1], entries[2], entries[3])
	f.Add(entries[0][:40], []byte{}, []byte{0xa2, 0x01, 0x40, 0x02, 0x40})
	trust := trustKeys(key(1))
	f.Fuzz(func(t *testing.T, a, b, c []byte) {
		log := [][]byte{a, b, c}
		h, err := Verify(log, trust)
		if err != nil {
			ce, ok := err.(*ChainError)
			if !ok {
				t.Fatalf("error %v is not a *ChainError", err)
			}
			if ce.Index < 0 || ce.Index > len(log) || ce.Kind == nil {
				t.Fatalf("bad position in %v", err)
			}
			return
		}
		if h.Seq != 3 || h.Hash != Hash(c) {
			t.Fatalf("accepted log has head %+v", h)
		}
	})
}
