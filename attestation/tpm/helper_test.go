package tpm

import (
	"os"
	"path/filepath"
	"testing"

	hsmtpm "github.com/sealsign/sealsign/hsm/tpm"
)

// openTPM opens a fresh simulator with a new seed file; closed when the
// test ends. The simulator is a process-wide singleton: tests of this
// package must not run in parallel.
func openTPM(t testing.TB) *hsmtpm.TPM {
	t.Helper()
	return openTPMSeed(t, filepath.Join(t.TempDir(), "tpm-sim.seed"))
}

func openTPMSeed(t testing.TB, seedFile string) *hsmtpm.TPM {
	t.Helper()
	tp, err := hsmtpm.OpenSimulator(seedFile)
	if err != nil {
		t.Fatalf("open TPM simulator: %v", err)
	}
	t.Cleanup(func() { tp.Close() })
	return tp
}

// fixtureSeed copies testdata/sim.seed to a 0600 file (git does not keep
// the mode) and returns its path.
func fixtureSeed(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile("testdata/sim.seed")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "sim.seed")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func newAK(t testing.TB, tp *hsmtpm.TPM) *AK {
	t.Helper()
	ak, err := NewAK(tp)
	if err != nil {
		t.Fatalf("NewAK: %v", err)
	}
	t.Cleanup(func() { ak.Close() })
	return ak
}
