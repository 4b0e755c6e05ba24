package tpm

import (
	"path/filepath"
	"testing"
)

// openSim opens a fresh simulator whose seed lives in a new temporary seed
// file, closed when the test ends. The simulator is a process-wide
// singleton: tests of this package must not run in parallel.
func openSim(t testing.TB) *TPM {
	t.Helper()
	return openSimSeed(t, filepath.Join(t.TempDir(), "tpm-sim.seed"))
}

func openSimSeed(t testing.TB, seedFile string) *TPM {
	t.Helper()
	tp, err := OpenSimulator(seedFile)
	if err != nil {
		t.Fatalf("open TPM simulator: %v", err)
	}
	t.Cleanup(func() { tp.Close() })
	return tp
}

func newSealer(t testing.TB, tp *TPM, pcrs ...int) *Sealer {
	t.Helper()
	s, err := tp.Sealer(pcrs)
	if err != nil {
		t.Fatalf("Sealer(%v): %v", pcrs, err)
	}
	return s
}
