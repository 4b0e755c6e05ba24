//go:build cgo && !notpmsim

package tpm

import (
	"sync/atomic"

	"github.com/google/go-tpm-tools/simulator"
	"github.com/google/go-tpm/tpm2/transport"
)

// simInUse guards the simulator, a process-wide singleton: a second
// simulator.Get would block until the first is closed; OpenSimulator fails
// fast instead.
var simInUse atomic.Bool

// OpenSimulator starts the Microsoft TPM 2.0 reference simulator in this
// process, with its hierarchy seeds derived from the seed kept in seedFile
// (created, mode 0600, on first use). Primary keys depend only on those
// seeds, so the storage root key, the attestation key and therefore every
// sealed blob survive a restart of the process as long as the seed file
// does; PCRs start at zero on each open, like after a reboot.
//
// A FILE-SEEDED SIMULATOR PROTECTS NOTHING. Whoever reads the seed file can
// recreate every key of this "TPM", unseal every blob it sealed and forge
// its quotes; the seed is only 64 bits; PCRs are whatever the process
// extends. It exists so dev parties and tests exercise the real TPM code
// paths. Production parties must use Open on a hardware TPM and refuse a
// TPM whose IsSimulator is true.
//
// The simulator's NV starts empty on every open, so it would forget the
// epoch indexes of EpochKeys. To let dev parties restart, a simulator TPM
// keeps an NV mirror next to the seed, seedFile + ".nv" (mode 0600), that
// lists every live epoch index — handle, tag and the EPOCH SECRET IN
// PLAINTEXT — and Epochs replays it into the fresh NV. That is acceptable
// only because the seed file already recreates every key of the simulator
// (it is insecure by construction; the mirror adds nothing a seed-file
// reader lacks); a real TPM keeps epoch secrets only in its NV and never
// writes a mirror. An epoch blob still needs the inner, PCR-sealed data key,
// so the mirror alone does not open it outside the measured PCR state.
// Deleting the mirror (or the seed) loses every epoch of the party; copying
// or backing it up defeats DestroyEpoch for the copies.
//
// Only one simulator can be open per process: a second OpenSimulator fails
// with ErrSimulatorBusy until the first is closed. The simulator needs cgo
// and OpenSSL's libcrypto (Debian: libssl-dev to build).
func OpenSimulator(seedFile string) (*TPM, error) {
	seed, err := loadOrCreateSeed(seedFile)
	if err != nil {
		return nil, err
	}
	if !simInUse.CompareAndSwap(false, true) {
		return nil, classErrorf(ErrSimulatorBusy, nil, "the TPM simulator is a process-wide singleton and is already open; close that TPM first")
	}
	sim, err := simulator.GetWithFixedSeedInsecure(seed)
	if err != nil {
		simInUse.Store(false)
		return nil, classErrorf(ErrDevice, err, "start TPM simulator")
	}
	t, err := newTPM(transport.FromReadWriteCloser(sim), "simulator:"+seedFile, true, func() { simInUse.Store(false) })
	if err != nil {
		return nil, err
	}
	t.nvMirror = &nvMirror{path: seedFile + ".nv"}
	return t, nil
}
