package tpm

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/sealsign/sealsign/hsm"
)

// A blob outlives the process that sealed it when the simulator's seed
// file does, and is useless under any other seed (another "TPM").
func TestBlobSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	seed := filepath.Join(dir, "party-a.seed")

	tp := openSimSeed(t, seed)
	blob, err := newSealer(t, tp, 16).Seal(testAAD, []byte("share"))
	if err != nil {
		t.Fatal(err)
	}
	if err := tp.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	tp = openSimSeed(t, seed)
	got, err := newSealer(t, tp, 16).Unseal(testAAD, blob)
	if err != nil || string(got) != "share" {
		t.Fatalf("Unseal after reopening with the same seed = %q, %v; want share", got, err)
	}
	tp.Close()

	tp = openSimSeed(t, filepath.Join(dir, "party-b.seed"))
	_, err = newSealer(t, tp, 16).Unseal(testAAD, blob)
	if !errors.Is(err, ErrTampered) || !strings.Contains(err.Error(), "sealed by another TPM") {
		t.Fatalf("Unseal under another seed: %v; want ErrTampered naming another TPM", err)
	}
}

func TestSeedFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "seed")
	s1, err := loadOrCreateSeed(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("seed file mode %#o, want 0600", fi.Mode().Perm())
	}
	content, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(content), seedHeader) || len(content) != seedFileLen {
		t.Fatalf("seed file content %q", content)
	}
	s2, err := loadOrCreateSeed(path)
	if err != nil || s2 != s1 {
		t.Fatalf("second load = %d, %v; want %d", s2, err, s1)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, ".tpm-sim-seed-*")); len(leftovers) != 0 {
		t.Fatalf("temporary files left behind: %v", leftovers)
	}

	// Concurrent first use: everyone ends up with the one seed on disk.
	race := filepath.Join(dir, "raced")
	seeds := make([]int64, 8)
	var wg sync.WaitGroup
	for i := range seeds {
		wg.Go(func() {
			s, err := loadOrCreateSeed(race)
			if err != nil {
				t.Error(err)
			}
			seeds[i] = s
		})
	}
	wg.Wait()
	for _, s := range seeds {
		if s != seeds[0] {
			t.Fatalf("concurrent creation gave different seeds: %v", seeds)
		}
	}

	for _, tc := range []struct {
		name    string
		content string
		mode    os.FileMode
	}{
		{"readable by others", string(content), 0o644},
		{"empty", "", 0o600},
		{"no newline", strings.TrimSuffix(string(content), "\n"), 0o600},
		{"upper-case hex", seedHeader + "0123456789ABCDEF\n", 0o600},
		{"short", seedHeader + "0123\n", 0o600},
		{"trailing data", string(content) + "x", 0o600},
		{"other header", strings.Replace(string(content), "v1", "v2", 1), 0o600},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "seed")
			if err := os.WriteFile(p, []byte(tc.content), tc.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(p, tc.mode); err != nil {
				t.Fatal(err)
			}
			if _, err := loadOrCreateSeed(p); !errors.Is(err, ErrSeedFile) {
				t.Fatalf("loadOrCreateSeed: %v; want ErrSeedFile", err)
			}
		})
	}
	if _, err := loadOrCreateSeed(""); !errors.Is(err, ErrSeedFile) {
		t.Fatalf("empty path: %v; want ErrSeedFile", err)
	}
	if _, err := OpenSimulator(filepath.Join(dir, "no-such-dir", "seed")); !errors.Is(err, ErrSeedFile) {
		t.Fatalf("seed in a missing directory: %v; want ErrSeedFile", err)
	}
}

func TestSimulatorSingleton(t *testing.T) {
	tp := openSim(t)
	if !tp.IsSimulator() || !strings.HasPrefix(tp.Path(), "simulator:") {
		t.Fatalf("IsSimulator %v, Path %q", tp.IsSimulator(), tp.Path())
	}
	if _, err := OpenSimulator(filepath.Join(t.TempDir(), "seed")); !errors.Is(err, ErrSimulatorBusy) {
		t.Fatalf("second OpenSimulator: %v; want ErrSimulatorBusy", err)
	}
}

func TestClosed(t *testing.T) {
	tp := openSim(t)
	s := newSealer(t, tp, 16)
	blob, err := s.Seal(testAAD, []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	if err := tp.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := tp.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := s.Seal(testAAD, []byte("x")); !errors.Is(err, ErrClosed) {
		t.Errorf("Seal after Close: %v; want ErrClosed", err)
	}
	if _, err := s.Unseal(testAAD, blob); !errors.Is(err, ErrClosed) || errors.Is(err, hsm.ErrTampered) {
		t.Errorf("Unseal after Close: %v; want ErrClosed, not tampered", err)
	}
	if _, err := tp.Read(make([]byte, 8)); !errors.Is(err, ErrClosed) {
		t.Errorf("Read after Close: %v; want ErrClosed", err)
	}
	if err := tp.ExtendPCR(16, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("ExtendPCR after Close: %v; want ErrClosed", err)
	}
	// The simulator is free again.
	openSim(t)
}

func TestOpenDevice(t *testing.T) {
	if _, err := Open(filepath.Join(t.TempDir(), "tpmrm0")); !errors.Is(err, ErrDevice) || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Open(missing): %v; want ErrDevice and os.ErrNotExist", err)
	}
	regular := filepath.Join(t.TempDir(), "file")
	os.WriteFile(regular, nil, 0o600)
	if _, err := Open(regular); !errors.Is(err, ErrDevice) || !strings.Contains(err.Error(), "not a device") {
		t.Fatalf("Open(regular file): %v; want ErrDevice, not a device", err)
	}
}

func TestRead(t *testing.T) {
	tp := openSim(t)
	if n, err := tp.Read(nil); n != 0 || err != nil {
		t.Fatalf("Read(nil) = %d, %v", n, err)
	}
	seen := map[string]bool{}
	for _, size := range []int{1, 32, 63, 64, 65, 1000, 4096} {
		p := make([]byte, size)
		n, err := tp.Read(p)
		if err != nil || n != size {
			t.Fatalf("Read(%d bytes) = %d, %v", size, n, err)
		}
		if size >= 32 && bytes.Equal(p, make([]byte, size)) {
			t.Fatalf("Read(%d bytes) returned zeros", size)
		}
		if size >= 32 && bytes.Equal(p[:size/2], p[size/2:2*(size/2)]) {
			t.Fatalf("Read(%d bytes) repeats itself", size)
		}
		seen[string(p[:min(size, 32)])] = true
	}
	if len(seen) != 7 {
		t.Fatalf("reads were not distinct")
	}
	// io.Reader contract: io.ReadFull works.
	var buf [100]byte
	if _, err := io.ReadFull(tp, buf[:]); err != nil {
		t.Fatal(err)
	}
}

func TestExtendPCR(t *testing.T) {
	tp := openSim(t)
	before, err := tp.ReadPCRs([]int{16})
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("sealsign-enclave binary")
	if err := tp.ExtendPCR(16, data); err != nil {
		t.Fatal(err)
	}
	after, err := tp.ReadPCRs([]int{16})
	if err != nil {
		t.Fatal(err)
	}
	d := sha256.Sum256(data)
	want := sha256.Sum256(append(bytes.Clone(before[16]), d[:]...))
	if !bytes.Equal(after[16], want[:]) {
		t.Fatalf("pcr16 = %x, want SHA-256(old ‖ SHA-256(data)) = %x", after[16], want)
	}
	for _, i := range []int{-1, 24} {
		if err := tp.ExtendPCR(i, data); !errors.Is(err, ErrInvalidPCR) {
			t.Errorf("ExtendPCR(%d): %v; want ErrInvalidPCR", i, err)
		}
	}
	// PCR 16 is resettable at locality 0; PCR 7 is not.
	if err := tp.ResetPCR(16); err != nil {
		t.Fatalf("ResetPCR(16): %v", err)
	}
	if reset, err := tp.ReadPCRs([]int{16}); err != nil || !bytes.Equal(reset[16], make([]byte, 32)) {
		t.Fatalf("pcr16 after reset = %x, %v; want zeros", reset[16], err)
	}
	if err := tp.ResetPCR(7); !errors.Is(err, ErrDevice) || !strings.Contains(err.Error(), "not resettable") {
		t.Fatalf("ResetPCR(7): %v; want ErrDevice, not resettable", err)
	}
	if err := tp.ExtendPCR(16, data); err != nil {
		t.Fatal(err)
	}
	// More PCRs than one TPM2_PCR_Read returns.
	all := make([]int, NumPCRs)
	for i := range all {
		all[i] = i
	}
	vals, err := tp.ReadPCRs(all)
	if err != nil || len(vals) != NumPCRs {
		t.Fatalf("ReadPCRs(all) = %d values, %v", len(vals), err)
	}
	if !bytes.Equal(vals[16], after[16]) {
		t.Fatalf("ReadPCRs(all)[16] differs from ReadPCRs([16])")
	}
}

// Seal, Unseal, Read, ReadPCRs and raw Send from several goroutines share
// one TPM; run with -race.
func TestConcurrentUse(t *testing.T) {
	tp := openSim(t)
	s := newSealer(t, tp, 7, 16)
	workers, rounds := 6, 8
	if testing.Short() {
		rounds = 3
	}
	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds*3)
	for w := range workers {
		wg.Go(func() {
			for r := range rounds {
				aad := fmt.Appendf(nil, "worker-%d/round-%d", w, r)
				pt := fmt.Appendf(nil, "secret %d/%d", w, r)
				blob, err := s.Seal(aad, pt)
				if err != nil {
					errs <- err
					return
				}
				got, err := s.Unseal(aad, blob)
				if err != nil || !bytes.Equal(got, pt) {
					errs <- fmt.Errorf("worker %d round %d: Unseal = %q, %v", w, r, got, err)
					return
				}
				p := make([]byte, 100)
				if _, err := tp.Read(p); err != nil {
					errs <- err
					return
				}
				if _, err := tp.ReadPCRs([]int{0, 7, 16, 23}); err != nil {
					errs <- err
					return
				}
				if w == 0 {
					// An unrelated PCR changes under the others' feet.
					if err := tp.ExtendPCR(23, p); err != nil {
						errs <- err
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestExpectedPCRMatchesSimulator(t *testing.T) {
	tp := openSim(t)
	if err := tp.ResetPCR(23); err != nil {
		t.Fatal(err)
	}
	a, b := []byte("first measurement"), []byte("second")
	for _, m := range [][]byte{a, b} {
		if err := tp.ExtendPCR(23, m); err != nil {
			t.Fatal(err)
		}
	}
	got, err := tp.ReadPCRs([]int{23})
	if err != nil {
		t.Fatal(err)
	}
	if want := ExpectedPCR(a, b); !bytes.Equal(got[23], want) {
		t.Fatalf("pcr23 = %x, ExpectedPCR = %x", got[23], want)
	}
	if bytes.Equal(ExpectedPCR(a, b), ExpectedPCR(b, a)) || bytes.Equal(ExpectedPCR(), ExpectedPCR(a)) {
		t.Fatal("ExpectedPCR ignores order or input")
	}
}
