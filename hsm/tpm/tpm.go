// Package tpm gives sealsign a TPM 2.0's entropy and sealing under a PCR
// policy, on github.com/google/go-tpm (party kind "tpm", DESIGN.md).
//
// Open talks to a device (/dev/tpmrm0, the kernel's resource-managed TPM);
// OpenSimulator runs the Microsoft reference TPM in process, for dev parties
// and tests. TPM.Read draws random bytes from TPM2_GetRandom; TPM.Sealer
// returns an hsm.Sealer whose blobs only this TPM can open, and only while
// the selected SHA-256 PCRs hold the values they had when the blob was
// sealed; TPM.ExtendPCR measures something (the enclave binary) into a PCR.
//
// A TPM is also a go-tpm transport.TPM (Send), so the attestation key of
// package attestation/tpm can share the connection; every command is
// serialised with the TPM's own operations.
//
// Security assumptions, written where they are relied on:
//   - The owner hierarchy has an empty authorization value (the default), so
//     the storage root key can be created without a secret.
//   - Sealing protects a secret against anyone who cannot bring this TPM's
//     PCRs to the sealed values: another machine, this machine booted into
//     other firmware or kernel, or — if the enclave binary is measured into
//     a PCR that is not resettable at the caller's locality — another
//     program. Software on this machine in the measured state can unseal,
//     and software with access to the TPM can create a blob of its own
//     under the same policy (TPM2_Create needs no PCR match): TPM sealing
//     authenticates against other machines and states, not against root on
//     the measured host.
//   - Commands and responses carrying the data key are encrypted with a
//     session salted to the storage root key, so a passive observer of the
//     TPM bus learns nothing; the storage key is not certified against the
//     endorsement key, so an active interposer is not excluded.
package tpm

import (
	"crypto"
	_ "crypto/sha1" // crypto.SHA1 for a SHA-1 PCR bank
	"crypto/sha256"
	_ "crypto/sha512" // crypto.SHA384, crypto.SHA512 for those banks
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
	"github.com/google/go-tpm/tpm2/transport/linuxtpm"

	"github.com/sealsign/sealsign/hsm/tpm/pcr"
)

// NumPCRs is the number of PCRs a PC Client TPM has; indices are 0..23.
const NumPCRs = pcr.Num

// TPM is an open TPM 2.0. Its methods are safe for concurrent use; the TPM
// runs one command at a time, and each operation (a seal, an unseal, a
// random read) holds the TPM for all of its commands, so operations never
// compete for the TPM's few object and session slots.
type TPM struct {
	mu     sync.Mutex
	rw     transport.TPMCloser
	path   string
	sim    bool
	closed bool
	// release runs after the transport is closed (frees the simulator).
	release func()
	// nvMirror is the simulator's plaintext copy of its epoch indexes
	// (OpenSimulator, EpochKeys); nil on every TPM Open returns, so a real
	// TPM never writes one. Guarded by mu.
	nvMirror *nvMirror

	maxRandom int                // bytes per TPM2_GetRandom
	banks     []tpm2.TPMIAlgHash // allocated PCR banks ExtendPCR extends
	srk       *storageKey        // created on first use, flushed on Close
}

// storageKey is the loaded storage root key: the TCG reference ECC P-256
// SRK, a primary key derived from the owner seed, so it is the same key on
// every boot (and the same key a persistent SRK at 0x81000001 would be).
type storageKey struct {
	handle tpm2.TPMHandle
	name   tpm2.TPM2BName
	pub    tpm2.TPMTPublic
}

// Open opens the TPM device at path, normally /dev/tpmrm0 (the kernel's
// resource manager; /dev/tpm0 works only while no other process uses the
// TPM). The process needs read-write access to the device (on Debian: member
// of group tss). Close the TPM when done.
func Open(path string) (*TPM, error) {
	rw, err := linuxtpm.Open(path)
	if err != nil {
		return nil, classErrorf(ErrDevice, err, "open TPM device %q (is a TPM present and its driver loaded? the process needs read-write access, e.g. group tss; the simulator is OpenSimulator)", path)
	}
	return newTPM(rw, path, false, nil)
}

// newTPM probes the TPM behind rw. On failure it closes rw and runs release.
func newTPM(rw transport.TPMCloser, path string, sim bool, release func()) (*TPM, error) {
	t := &TPM{rw: rw, path: path, sim: sim, release: release}
	if err := t.probe(); err != nil {
		rw.Close()
		if release != nil {
			release()
		}
		return nil, err
	}
	return t, nil
}

// probe reads the TPM's GetRandom limit and its allocated PCR banks.
func (t *TPM) probe() error {
	rsp, err := tpm2.GetCapability{Capability: tpm2.TPMCapTPMProperties, Property: uint32(tpm2.TPMPTMaxDigest), PropertyCount: 1}.Execute(t.rw)
	if err != nil {
		return t.deviceError("TPM2_GetCapability(TPM_PT_MAX_DIGEST)", err)
	}
	props, err := rsp.CapabilityData.Data.TPMProperties()
	if err != nil || len(props.TPMProperty) == 0 || props.TPMProperty[0].Property != tpm2.TPMPTMaxDigest {
		return classErrorf(ErrDevice, err, "TPM %q: TPM2_GetCapability did not report TPM_PT_MAX_DIGEST", t.path)
	}
	t.maxRandom = int(props.TPMProperty[0].Value)
	if t.maxRandom < 20 || t.maxRandom > 64 {
		return classErrorf(ErrDevice, nil, "TPM %q reports a maximum digest of %d bytes, want 20..64", t.path, t.maxRandom)
	}

	rsp, err = tpm2.GetCapability{Capability: tpm2.TPMCapPCRs, PropertyCount: 1}.Execute(t.rw)
	if err != nil {
		return t.deviceError("TPM2_GetCapability(TPM_CAP_PCRS)", err)
	}
	sels, err := rsp.CapabilityData.Data.AssignedPCR()
	if err != nil {
		return classErrorf(ErrDevice, err, "TPM %q: TPM2_GetCapability did not report PCR banks", t.path)
	}
	sha256Bank := false
	for _, s := range sels.PCRSelections {
		if !slices.ContainsFunc(s.PCRSelect, func(b byte) bool { return b != 0 }) {
			continue // bank implemented but no PCR allocated
		}
		if _, ok := bankHash(s.Hash); !ok {
			continue // a bank Go cannot hash (SM3): ExtendPCR leaves it alone
		}
		t.banks = append(t.banks, s.Hash)
		sha256Bank = sha256Bank || s.Hash == tpm2.TPMAlgSHA256
	}
	if !sha256Bank {
		return classErrorf(ErrDevice, nil, "TPM %q has no SHA-256 PCR bank allocated; allocate one (tpm2_pcrallocate sha256:all) — sealsign seals and quotes over SHA-256 PCRs", t.path)
	}
	return nil
}

func bankHash(alg tpm2.TPMIAlgHash) (crypto.Hash, bool) {
	switch alg {
	case tpm2.TPMAlgSHA1:
		return crypto.SHA1, true
	case tpm2.TPMAlgSHA256:
		return crypto.SHA256, true
	case tpm2.TPMAlgSHA384:
		return crypto.SHA384, true
	case tpm2.TPMAlgSHA512:
		return crypto.SHA512, true
	}
	return 0, false
}

// Path is the device path, or "simulator:" and the seed file.
func (t *TPM) Path() string { return t.path }

// IsSimulator reports whether t is the in-process simulator, which protects
// nothing (see OpenSimulator). Production parties must refuse it.
func (t *TPM) IsSimulator() bool { return t.sim }

// do runs fn with the TPM to itself.
func (t *TPM) do(fn func(rw transport.TPM) error) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return classErrorf(ErrClosed, nil, "TPM %q is closed", t.path)
	}
	return fn(t.rw)
}

// Send implements go-tpm's transport.TPM: it runs one raw command, in turn
// with the TPM's own operations. It is how package attestation/tpm shares
// this TPM.
func (t *TPM) Send(cmd []byte) ([]byte, error) {
	var rsp []byte
	err := t.do(func(rw transport.TPM) error {
		var err error
		rsp, err = rw.Send(cmd)
		return err
	})
	return rsp, err
}

// Read fills p with random bytes from TPM2_GetRandom, in requests of at
// most the TPM's maximum digest size. It returns len(p), nil or an error; it
// never returns a short read without an error. Use it mixed with the OS RNG,
// never alone (DESIGN.md): the bytes cross the TPM bus in the clear.
func (t *TPM) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n := 0
	err := t.do(func(rw transport.TPM) error {
		var err error
		n, err = t.getRandom(rw, p)
		return err
	})
	return n, err
}

func (t *TPM) getRandom(rw transport.TPM, p []byte) (int, error) {
	n := 0
	for n < len(p) {
		want := min(len(p)-n, t.maxRandom)
		rsp, err := tpm2.GetRandom{BytesRequested: uint16(want)}.Execute(rw)
		if err != nil {
			return n, t.deviceError("TPM2_GetRandom", err)
		}
		got := rsp.RandomBytes.Buffer
		if len(got) == 0 || len(got) > want {
			return n, classErrorf(ErrDevice, nil, "TPM %q: TPM2_GetRandom returned %d bytes for a request of %d", t.path, len(got), want)
		}
		n += copy(p[n:], got)
	}
	return n, nil
}

// ExtendPCR measures data into PCR index: every allocated PCR bank is
// extended with its own hash of data, as TPM2_PCR_Event would (but for data
// of any length), so for SHA-256 the new value is
// SHA-256(old ‖ SHA-256(data)). Measure the enclave binary into a PCR the
// platform does not use (16 is the debug PCR and resettable; 23 is
// resettable at locality 0 — see the package comment for what that means).
func (t *TPM) ExtendPCR(index int, data []byte) error {
	if index < 0 || index >= NumPCRs {
		return classErrorf(ErrInvalidPCR, nil, "pcr index %d out of range 0..%d", index, NumPCRs-1)
	}
	return t.do(func(rw transport.TPM) error {
		var digests []tpm2.TPMTHA
		for _, alg := range t.banks {
			h, _ := bankHash(alg)
			hh := h.New()
			hh.Write(data)
			digests = append(digests, tpm2.TPMTHA{HashAlg: alg, Digest: hh.Sum(nil)})
		}
		_, err := tpm2.PCRExtend{
			PCRHandle: tpm2.AuthHandle{Handle: tpm2.TPMHandle(index), Auth: tpm2.PasswordAuth(nil)},
			Digests:   tpm2.TPMLDigestValues{Digests: digests},
		}.Execute(rw)
		if err != nil {
			return t.deviceError(fmt.Sprintf("TPM2_PCR_Extend(pcr %d)", index), err)
		}
		return nil
	})
}

// ResetPCR sets PCR index back to zero in every bank. Only PCRs the
// platform makes resettable at locality 0 can be reset — on PC Client TPMs
// 16 (debug) and 23 (application); others fail with ErrDevice. A process
// that measures itself into such a PCR at every start resets it first, so
// a restart on the same boot yields the same value. The flip side: anyone
// who can talk to the TPM can do the same, so sealing to or attesting such
// a PCR proves nothing against root on this host (see the package comment).
func (t *TPM) ResetPCR(index int) error {
	if index < 0 || index >= NumPCRs {
		return classErrorf(ErrInvalidPCR, nil, "pcr index %d out of range 0..%d", index, NumPCRs-1)
	}
	return t.do(func(rw transport.TPM) error {
		_, err := tpm2.PCRReset{PCRHandle: tpm2.AuthHandle{Handle: tpm2.TPMHandle(index), Auth: tpm2.PasswordAuth(nil)}}.Execute(rw)
		if err != nil {
			if errors.Is(err, tpm2.TPMRCLocality) {
				return classErrorf(ErrDevice, err, "TPM %q: pcr %d is not resettable at locality 0 (PC Client: only 16 and 23 are)", t.path, index)
			}
			return t.deviceError(fmt.Sprintf("TPM2_PCR_Reset(pcr %d)", index), err)
		}
		return nil
	})
}

// ReadPCRs returns the SHA-256 bank values of the given PCRs.
func (t *TPM) ReadPCRs(pcrs []int) (map[int][]byte, error) {
	sel, err := normalizePCRs(pcrs)
	if err != nil {
		return nil, err
	}
	out := make(map[int][]byte, len(sel))
	err = t.do(func(rw transport.TPM) error {
		vals, err := t.readPCRs(rw, sel)
		for i, v := range vals {
			out[sel[i]] = v
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// normalizePCRs validates a PCR selection and returns it sorted.
func normalizePCRs(pcrs []int) ([]int, error) {
	s, err := pcr.Normalize(pcrs)
	if err != nil {
		return nil, classErrorf(ErrInvalidPCR, err, "invalid pcr selection")
	}
	return s, nil
}

// readPCRs reads the SHA-256 values of sorted pcrs, in that order.
func (t *TPM) readPCRs(rw transport.TPM, pcrs []int) ([][]byte, error) {
	vals, err := pcr.Read(rw, pcrs)
	if errors.Is(err, pcr.ErrInvalid) {
		return nil, classErrorf(ErrInvalidPCR, err, "TPM %q", t.path)
	}
	if err != nil {
		return nil, classErrorf(ErrDevice, err, "TPM %q", t.path)
	}
	return vals, nil
}

// storageRoot returns the loaded SRK, creating it on first use.
func (t *TPM) storageRoot(rw transport.TPM) (*storageKey, error) {
	if t.srk != nil {
		return t.srk, nil
	}
	rsp, err := tpm2.CreatePrimary{
		PrimaryHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(nil)},
		InPublic:      tpm2.New2B(tpm2.ECCSRKTemplate),
	}.Execute(rw)
	if err != nil {
		if errors.Is(err, tpm2.TPMRCBadAuth) || errors.Is(err, tpm2.TPMRCAuthFail) {
			return nil, classErrorf(ErrDevice, err, "TPM %q: creating the storage root key needs an empty owner authorization value, and this TPM's owner hierarchy has one", t.path)
		}
		return nil, t.deviceError("TPM2_CreatePrimary(storage root key)", err)
	}
	pub, err := rsp.OutPublic.Contents()
	if err != nil {
		return nil, classErrorf(ErrDevice, err, "TPM %q: storage root key public area", t.path)
	}
	t.srk = &storageKey{handle: rsp.ObjectHandle, name: rsp.Name, pub: *pub}
	return t.srk, nil
}

// Close flushes the storage root key and closes the device (or stops the
// simulator). It waits for operations in flight; afterwards every method
// fails with ErrClosed. Close is idempotent.
func (t *TPM) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil
	}
	t.closed = true
	var errs []error
	if t.srk != nil {
		if _, err := (tpm2.FlushContext{FlushHandle: t.srk.handle}).Execute(t.rw); err != nil {
			errs = append(errs, t.deviceError("TPM2_FlushContext(storage root key)", err))
		}
		t.srk = nil
	}
	if err := t.rw.Close(); err != nil {
		errs = append(errs, classErrorf(ErrDevice, err, "close TPM %q", t.path))
	}
	if t.release != nil {
		t.release()
	}
	return errors.Join(errs...)
}

// deviceError names the command that failed. A warning (TPM busy, out of
// memory) is an ErrDevice like any other failure here; callers that can
// blame the input (Load, Unseal) classify before falling back to this.
func (t *TPM) deviceError(cmd string, err error) error {
	return classErrorf(ErrDevice, err, "TPM %q: %s failed", t.path, cmd)
}

var _ transport.TPM = (*TPM)(nil)

// ExpectedPCR is the SHA-256 bank value of a PCR that starts at zero (after
// reset or power-on) and is extended with each of measurements in turn by
// ExtendPCR: the value a manifest pins for a party that measures itself.
func ExpectedPCR(measurements ...[]byte) []byte {
	v := make([]byte, sha256.Size)
	for _, m := range measurements {
		d := sha256.Sum256(m)
		h := sha256.New()
		h.Write(v)
		h.Write(d[:])
		v = h.Sum(nil)
	}
	return v
}
