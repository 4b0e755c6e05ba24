package tpm

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/sealsign/sealsign/hsm"
)

func newEpochs(t *testing.T, tp *TPM, pcrs ...int) *EpochKeys {
	t.Helper()
	e, err := tp.Epochs(pcrs)
	if err != nil {
		t.Fatalf("Epochs(%v): %v", pcrs, err)
	}
	return e
}

func getEpochSealer(t *testing.T, e *EpochKeys, keyID string, epoch uint64, create bool) hsm.Sealer {
	t.Helper()
	s, err := e.EpochSealer(keyID, epoch, create)
	if err != nil {
		t.Fatalf("EpochSealer(%q, %d, %t): %v", keyID, epoch, create, err)
	}
	return s
}

func mustSeal(t *testing.T, s hsm.Sealer, pt string) []byte {
	t.Helper()
	b, err := s.Seal(testAAD, []byte(pt))
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	return b
}

func wantUnseal(t *testing.T, s hsm.Sealer, blob []byte, pt string) {
	t.Helper()
	got, err := s.Unseal(testAAD, blob)
	if err != nil || string(got) != pt {
		t.Fatalf("Unseal = %q, %v; want %q", got, err, pt)
	}
}

// wantDestroyed asserts err is the destroyed-epoch error and not an attack
// or PCR signal.
func wantDestroyed(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, hsm.ErrEpochDestroyed) || errors.Is(err, hsm.ErrTampered) || errors.Is(err, ErrPolicy) {
		t.Fatalf("%s: %v; want hsm.ErrEpochDestroyed, not hsm.ErrTampered or ErrPolicy", what, err)
	}
}

func TestEpochDestroyShreds(t *testing.T) {
	tp := openSim(t)
	e := newEpochs(t, tp, 16)
	s0 := getEpochSealer(t, e, "key-1", 0, true)
	s1 := getEpochSealer(t, e, "key-1", 1, true)
	b0 := mustSeal(t, s0, "share epoch 0")
	b1 := mustSeal(t, s1, "share epoch 1")
	wantUnseal(t, s0, b0, "share epoch 0")
	wantUnseal(t, s1, b1, "share epoch 1")

	// Asking again without create finds the same index and secret.
	wantUnseal(t, getEpochSealer(t, e, "key-1", 0, false), b0, "share epoch 0")
	// An epoch's blob does not open under another epoch's key.
	if _, err := s1.Unseal(testAAD, b0); !errors.Is(err, hsm.ErrTampered) || !errors.Is(err, ErrTampered) {
		t.Fatalf("Unseal of an epoch 0 blob by the epoch 1 sealer: %v; want ErrTampered", err)
	}

	if err := e.DestroyEpoch("key-1", 0); err != nil {
		t.Fatalf("DestroyEpoch(key-1, 0): %v", err)
	}
	// The sealer handed out before the destroy reads the TPM each time.
	_, err := s0.Unseal(testAAD, b0)
	wantDestroyed(t, "Unseal of an epoch 0 blob after destroying epoch 0", err)
	_, err = s0.Seal(testAAD, []byte("x"))
	wantDestroyed(t, "Seal under a destroyed epoch", err)
	_, err = e.EpochSealer("key-1", 0, false)
	wantDestroyed(t, "EpochSealer(key-1, 0, create=false) after destroy", err)
	wantUnseal(t, s1, b1, "share epoch 1")

	// Destroying again, or an epoch never made, is not an error.
	for _, epoch := range []uint64{0, 0, 7} {
		if err := e.DestroyEpoch("key-1", epoch); err != nil {
			t.Fatalf("DestroyEpoch(key-1, %d) of a missing epoch: %v", epoch, err)
		}
	}

	// Re-creating the epoch makes a new secret: the old blob stays shredded.
	s0again := getEpochSealer(t, e, "key-1", 0, true)
	if _, err := s0again.Unseal(testAAD, b0); !errors.Is(err, hsm.ErrTampered) {
		t.Fatalf("Unseal of an old epoch 0 blob under a re-created epoch 0: %v; want hsm.ErrTampered", err)
	}
	wantUnseal(t, s1, b1, "share epoch 1")
}

func TestEpochNeverCreated(t *testing.T) {
	tp := openSim(t)
	e := newEpochs(t, tp, 16)
	_, err := e.EpochSealer("key-1", 3, false)
	wantDestroyed(t, "EpochSealer of an epoch never made", err)
}

func TestEpochKeysIndependent(t *testing.T) {
	tp := openSim(t)
	e := newEpochs(t, tp, 16)
	a := getEpochSealer(t, e, "key-a", 1, true)
	b := getEpochSealer(t, e, "key-b", 1, true)
	ba, bb := mustSeal(t, a, "a"), mustSeal(t, b, "b")
	if _, err := b.Unseal(testAAD, ba); !errors.Is(err, hsm.ErrTampered) {
		t.Fatalf("key-b epoch 1 opening key-a's blob: %v; want hsm.ErrTampered", err)
	}
	if err := e.DestroyEpoch("key-a", 1); err != nil {
		t.Fatal(err)
	}
	_, err := a.Unseal(testAAD, ba)
	wantDestroyed(t, "key-a after destroying it", err)
	wantUnseal(t, b, bb, "b")
}

// Two epochs whose first candidate handle is the same must not share an
// index: the second probes on, and destroying one leaves the other.
func TestEpochHandleCollision(t *testing.T) {
	tp := openSim(t)
	e := newEpochs(t, tp, 16)
	s1 := getEpochSealer(t, e, "key-1", 1, true)
	b1 := mustSeal(t, s1, "one")
	h1 := epochHandles(epochTag("key-1", 1))[0]

	// Find another (key, epoch) with the same first candidate; 22 bits of
	// handle make a search over a few million epochs cheap enough.
	var other uint64
	found := false
	for ep := uint64(0); ep < 1<<25; ep++ {
		if epochHandles(epochTag("key-2", ep))[0] == h1 {
			other, found = ep, true
			break
		}
	}
	if !found {
		t.Fatal("no colliding epoch found")
	}
	s2 := getEpochSealer(t, e, "key-2", other, true)
	b2 := mustSeal(t, s2, "two")
	err := tp.do(func(rw transport.TPM) error {
		slot, err := e.lookup(rw, "key-2", other, false)
		if err == nil && slot.handle == h1 {
			t.Errorf("colliding epoch got the occupied handle %#08x", uint32(h1))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.DestroyEpoch("key-1", 1); err != nil {
		t.Fatal(err)
	}
	wantUnseal(t, s2, b2, "two") // found past the hole at h1
	_, err = s1.Unseal(testAAD, b1)
	wantDestroyed(t, "key-1 epoch 1 after destroy", err)
}

// The epoch secret cannot be read out with owner or empty authorization:
// only the PCR policy session reads the index, and only while the PCRs
// hold the values of creation.
func TestEpochIndexReadProtected(t *testing.T) {
	tp := openSim(t)
	e := newEpochs(t, tp, 16)
	s := getEpochSealer(t, e, "key-1", 1, true)
	blob := mustSeal(t, s, "share")
	h := findIndex(t, tp, e, "key-1", 1)

	err := tp.do(func(rw transport.TPM) error {
		pub, err := tpm2.NVReadPublic{NVIndex: h}.Execute(rw)
		if err != nil {
			return err
		}
		for _, auth := range []tpm2.TPMHandle{tpm2.TPMRHOwner, h} {
			_, err := tpm2.NVRead{
				AuthHandle: tpm2.AuthHandle{Handle: auth, Auth: tpm2.PasswordAuth(nil)},
				NVIndex:    tpm2.NamedHandle{Handle: h, Name: pub.NVName},
				Size:       epochNVSize,
			}.Execute(rw)
			if err == nil {
				t.Errorf("TPM2_NV_Read of the epoch index with password auth on %#08x succeeded", uint32(auth))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	if err := tp.ExtendPCR(16, []byte("other enclave")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Unseal(testAAD, blob); !errors.Is(err, ErrPolicy) || errors.Is(err, hsm.ErrTampered) || errors.Is(err, hsm.ErrEpochDestroyed) {
		t.Fatalf("Unseal after a PCR change: %v; want ErrPolicy only", err)
	}
	if err := e.DestroyEpoch("key-1", 1); !errors.Is(err, ErrPolicy) {
		t.Fatalf("DestroyEpoch of an index it cannot identify: %v; want ErrPolicy, not a false success", err)
	}
	if err := tp.ResetPCR(16); err != nil {
		t.Fatal(err)
	}
	wantUnseal(t, s, blob, "share")
}

func findIndex(t *testing.T, tp *TPM, e *EpochKeys, keyID string, epoch uint64) tpm2.TPMHandle {
	t.Helper()
	var h tpm2.TPMHandle
	err := tp.do(func(rw transport.TPM) error {
		slot, err := e.lookup(rw, keyID, epoch, false)
		h = slot.handle
		return err
	})
	if err != nil || h == 0 {
		t.Fatalf("lookup(%q, %d) = %#08x, %v", keyID, epoch, uint32(h), err)
	}
	return h
}

// A crash between TPM2_NV_DefineSpace and the write leaves an unwritten
// index; it is not taken for the epoch, and create reclaims it.
func TestEpochUnwrittenIndexReclaimed(t *testing.T) {
	tp := openSim(t)
	e := newEpochs(t, tp, 16)
	h := epochHandles(epochTag("key-1", 1))[0]
	err := tp.do(func(rw transport.TPM) error {
		policy, err := e.currentPolicy(rw)
		if err != nil {
			return err
		}
		_, err = tpm2.NVDefineSpace{
			AuthHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(nil)},
			PublicInfo: tpm2.New2B(tpm2.TPMSNVPublic{NVIndex: h, NameAlg: tpm2.TPMAlgSHA256, Attributes: epochAttributes(), AuthPolicy: tpm2.TPM2BDigest{Buffer: policy}, DataSize: epochNVSize}),
		}.Execute(rw)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.EpochSealer("key-1", 1, false)
	wantDestroyed(t, "EpochSealer over an unwritten index", err)
	s := getEpochSealer(t, e, "key-1", 1, true)
	wantUnseal(t, s, mustSeal(t, s, "share"), "share")
	if got := findIndex(t, tp, e, "key-1", 1); got != h {
		t.Fatalf("epoch index at %#08x, want the reclaimed %#08x", uint32(got), uint32(h))
	}
}

func TestEpochSealerContract(t *testing.T) {
	tp := openSim(t)
	s := getEpochSealer(t, newEpochs(t, tp, 16), "key-1", 1, true)
	blob := mustSeal(t, s, "share")
	if _, err := s.Seal(nil, []byte("x")); !errors.Is(err, hsm.ErrAADRequired) {
		t.Fatalf("Seal with empty aad: %v", err)
	}
	if _, err := s.Unseal(nil, blob); !errors.Is(err, hsm.ErrAADRequired) {
		t.Fatalf("Unseal with empty aad: %v", err)
	}
	flipped := func(i int) []byte {
		b := bytes.Clone(blob)
		b[i] ^= 1
		return b
	}
	for _, tc := range []struct {
		name   string
		aad    []byte
		sealed []byte
		want   error
	}{
		{"other aad", []byte("party-b/key-1/epoch-1/share"), blob, hsm.ErrTampered},
		{"nonce flipped", testAAD, flipped(1), hsm.ErrTampered},
		{"ciphertext flipped", testAAD, flipped(len(blob) / 2), hsm.ErrTampered},
		{"tag flipped", testAAD, flipped(len(blob) - 1), hsm.ErrTampered},
		{"truncated", testAAD, blob[:epochOverhead-1], hsm.ErrMalformed},
		{"empty", testAAD, nil, hsm.ErrMalformed},
		{"unknown version", testAAD, append([]byte{9}, blob[1:]...), hsm.ErrUnknownVersion},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Unseal(tc.aad, tc.sealed)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Unseal: %v; want %v", err, tc.want)
			}
			if errors.Is(err, hsm.ErrEpochDestroyed) {
				t.Fatalf("Unseal: %v; a bad blob is not a destroyed epoch", err)
			}
		})
	}
	if _, err := newEpochs(t, tp, 16).EpochSealer(string([]byte{0xff}), 1, true); !errors.Is(err, hsm.ErrInvalidBinding) {
		t.Fatalf("EpochSealer with a non-UTF-8 key id: %v; want hsm.ErrInvalidBinding", err)
	}
}

// measuredEpochs brings PCR 23 to the measured state of self as
// enclave/server/hardware.go does (reset, extend) and opens the epoch keys.
func measuredEpochs(t *testing.T, tp *TPM, self string) *EpochKeys {
	t.Helper()
	if err := tp.ResetPCR(23); err != nil {
		t.Fatal(err)
	}
	if err := tp.ExtendPCR(23, []byte(self)); err != nil {
		t.Fatal(err)
	}
	return newEpochs(t, tp, 23)
}

func closeTPM(t *testing.T, tp *TPM) {
	t.Helper()
	if err := tp.Close(); err != nil {
		t.Fatal(err)
	}
}

// The simulator is manufactured afresh on every OpenSimulator (go-tpm-tools
// resets its NV); its NV mirror next to the seed file brings the live epoch
// indexes back on the next Epochs, and a destroyed epoch stays destroyed.
func TestEpochSimulatorReopen(t *testing.T) {
	seed := filepath.Join(t.TempDir(), "party-a.seed")
	mirror := seed + ".nv"
	tp := openSimSeed(t, seed)
	e := measuredEpochs(t, tp, "enclave v1")
	if _, err := os.Stat(mirror); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("NV mirror before any epoch was created: %v; want none", err)
	}
	b0 := mustSeal(t, getEpochSealer(t, e, "key-1", 0, true), "share epoch 0")
	b1 := mustSeal(t, getEpochSealer(t, e, "key-1", 1, true), "share epoch 1")
	if err := e.DestroyEpoch("key-1", 0); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(mirror)
	if err != nil {
		t.Fatalf("NV mirror of a simulator TPM: %v", err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Fatalf("NV mirror mode %#o, want 0600", perm)
	}
	entries, err := readMirror(mirror)
	if err != nil {
		t.Fatal(err)
	}
	tag1 := epochTag("key-1", 1)
	h1 := findIndex(t, tp, e, "key-1", 1)
	if len(entries) != 1 || !bytes.Equal(entries[h1][:epochTagSize], tag1) {
		t.Fatalf("NV mirror lists %d entries; want only key-1 epoch 1 at %#08x", len(entries), uint32(h1))
	}
	secret1 := bytes.Clone(entries[h1][epochTagSize:])
	closeTPM(t, tp)

	tp = openSimSeed(t, seed)
	e = measuredEpochs(t, tp, "enclave v1")
	wantUnseal(t, getEpochSealer(t, e, "key-1", 1, false), b1, "share epoch 1")
	_, err = e.EpochSealer("key-1", 0, false)
	wantDestroyed(t, "EpochSealer(key-1, 0) of an epoch destroyed before the reopen", err)
	if _, err := getEpochSealer(t, e, "key-1", 0, true).Unseal(testAAD, b0); !errors.Is(err, hsm.ErrTampered) {
		t.Fatalf("Unseal of a destroyed epoch's blob under a re-created epoch: %v; want hsm.ErrTampered", err)
	}
	// Epochs again on the same TPM finds the indexes defined and keeps them.
	wantUnseal(t, getEpochSealer(t, newEpochs(t, tp, 23), "key-1", 1, false), b1, "share epoch 1")
	if err := e.DestroyEpoch("key-1", 0); err != nil {
		t.Fatal(err)
	}
	closeTPM(t, tp)

	// Another measurement: the mirror is replayed under the new PCR values,
	// but the blob's inner PCR-sealed data key still refuses.
	tp = openSimSeed(t, seed)
	e = measuredEpochs(t, tp, "enclave v2")
	if _, err := getEpochSealer(t, e, "key-1", 1, false).Unseal(testAAD, b1); !errors.Is(err, ErrPolicy) || errors.Is(err, hsm.ErrTampered) {
		t.Fatalf("Unseal in another measured state after replay: %v; want ErrPolicy from the inner sealer", err)
	}
	closeTPM(t, tp)

	// A corrupted mirror fails Epochs clearly, without its contents.
	raw, err := os.ReadFile(mirror)
	if err != nil {
		t.Fatal(err)
	}
	raw[mirrorHeaderSize+4+epochTagSize+3] ^= 1 // a secret byte
	if err := os.WriteFile(mirror, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	tp = openSimSeed(t, seed)
	if err := tp.ResetPCR(23); err != nil {
		t.Fatal(err)
	}
	_, err = tp.Epochs([]int{23})
	if !errors.Is(err, ErrSeedFile) || !strings.Contains(err.Error(), mirror) || !strings.Contains(err.Error(), "checksum") {
		t.Fatalf("Epochs over a corrupted NV mirror: %v; want ErrSeedFile naming %q and the checksum", err, mirror)
	}
	wantNoSecret(t, err, secret1, tag1)
	// It stays refused: the corrupted file is not taken for an empty one.
	if _, err := tp.Epochs([]int{23}); !errors.Is(err, ErrSeedFile) {
		t.Fatalf("second Epochs over a corrupted NV mirror: %v; want ErrSeedFile", err)
	}
}

func wantNoSecret(t *testing.T, err error, secrets ...[]byte) {
	t.Helper()
	msg := err.Error()
	for _, s := range secrets {
		if strings.Contains(msg, string(s)) || strings.Contains(strings.ToLower(msg), hex.EncodeToString(s)) {
			t.Fatalf("error %q contains secret or tag bytes", msg)
		}
	}
}

// When the mirror cannot be rewritten, creation is undone and destruction
// reports that the epoch is not shredded yet; a retry finishes it.
func TestEpochMirrorWriteFailure(t *testing.T) {
	seed := filepath.Join(t.TempDir(), "party-a.seed")
	mirror := seed + ".nv"
	tp := openSimSeed(t, seed)
	e := measuredEpochs(t, tp, "enclave v1")
	s1 := getEpochSealer(t, e, "key-1", 1, true)
	b1 := mustSeal(t, s1, "share")

	// A directory in the mirror's place makes the rename fail, even as root.
	if err := os.Remove(mirror); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(mirror, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := e.EpochSealer("key-1", 2, true); !errors.Is(err, ErrSeedFile) {
		t.Fatalf("EpochSealer(create) with an unwritable mirror: %v; want ErrSeedFile", err)
	}
	if err := e.DestroyEpoch("key-1", 1); !errors.Is(err, ErrSeedFile) || !strings.Contains(err.Error(), "not shredded") {
		t.Fatalf("DestroyEpoch with an unwritable mirror: %v; want ErrSeedFile saying the epoch is not shredded", err)
	}
	_, err := s1.Unseal(testAAD, b1)
	wantDestroyed(t, "Unseal after the index was undefined", err)

	if err := os.Remove(mirror); err != nil {
		t.Fatal(err)
	}
	_, err = e.EpochSealer("key-1", 2, false)
	wantDestroyed(t, "EpochSealer of the epoch whose creation was undone", err)
	if err := e.DestroyEpoch("key-1", 1); err != nil {
		t.Fatalf("retried DestroyEpoch: %v", err)
	}
	entries, err := readMirror(mirror)
	if err != nil || len(entries) != 0 {
		t.Fatalf("NV mirror after the retried destroy: %d entries, %v; want an empty mirror", len(entries), err)
	}
}

// sharedTPM lets a test build a TPM the way Open does (newTPM, not a
// simulator) over the simulator's transport.
type sharedTPM struct{ t *TPM }

func (s sharedTPM) Send(cmd []byte) ([]byte, error) { return s.t.Send(cmd) }
func (sharedTPM) Close() error                      { return nil }

// A TPM from Open is not a simulator and never writes an NV mirror.
func TestEpochRealTPMWritesNoMirror(t *testing.T) {
	dir := t.TempDir()
	sim := openSimSeed(t, filepath.Join(dir, "tpm-sim.seed"))
	hw, err := newTPM(sharedTPM{sim}, filepath.Join(dir, "tpmrm0"), false, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer hw.Close()
	if hw.IsSimulator() || hw.nvMirror != nil {
		t.Fatalf("TPM built as Open does: IsSimulator %t, mirror %v; want neither", hw.IsSimulator(), hw.nvMirror)
	}
	e := newEpochs(t, hw, 16)
	s := getEpochSealer(t, e, "key-1", 1, true)
	wantUnseal(t, s, mustSeal(t, s, "share"), "share")
	getEpochSealer(t, e, "key-1", 2, true)
	if err := e.DestroyEpoch("key-1", 2); err != nil {
		t.Fatal(err)
	}
	// Open itself: a path that is no TPM fails, and leaves no mirror.
	notTPM := filepath.Join(dir, "not-a-tpm")
	if err := os.WriteFile(notTPM, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if tp, err := Open(notTPM); err == nil {
		tp.Close()
		t.Fatalf("Open(%q) of a regular file succeeded", notTPM)
	}
	names, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if strings.HasSuffix(n.Name(), ".nv") || strings.HasPrefix(n.Name(), ".tpm-sim-nv-") {
			t.Fatalf("%s written next to a real TPM's files", n.Name())
		}
	}
}

type mirrorEntry struct {
	h    uint32
	data []byte
}

// craftMirror encodes entries as given, with any version and count, and a
// valid checksum, so each field check of parseMirror can be reached.
func craftMirror(version byte, count uint16, entries ...mirrorEntry) []byte {
	b := append([]byte(mirrorMagic), version)
	b = binary.BigEndian.AppendUint16(b, count)
	for _, e := range entries {
		b = binary.BigEndian.AppendUint32(b, e.h)
		b = append(b, e.data...)
	}
	sum := sha256.Sum256(b)
	return append(b, sum[:]...)
}

func testMirrorEntry(keyID string, epoch uint64, probe int, secretByte byte) mirrorEntry {
	tag := epochTag(keyID, epoch)
	return mirrorEntry{uint32(epochHandles(tag)[probe]), append(tag, bytes.Repeat([]byte{secretByte}, epochSecretSize)...)}
}

func TestParseMirror(t *testing.T) {
	a := testMirrorEntry("key-1", 1, 0, 0xa5)
	b := testMirrorEntry("key-1", 2, 0, 0x5a)
	if a.h > b.h {
		a, b = b, a
	}
	valid := craftMirror(1, 2, a, b)
	flip := func(i int) []byte {
		c := bytes.Clone(valid)
		c[i] ^= 1
		return c
	}
	sameTag := testMirrorEntry("key-1", 1, 1, 0xa5) // a's tag at its next candidate
	aAgain := a
	if sameTag.h < a.h {
		aAgain, sameTag = sameTag, a
	}
	wrongHandle := mirrorEntry{a.h ^ 0x100000, a.data}
	for _, tc := range []struct {
		name string
		b    []byte
		n    int    // entries when valid
		want string // part of the error; "" when valid
	}{
		{"valid", valid, 2, ""},
		{"empty mirror", craftMirror(1, 0), 0, ""},
		{"empty file", nil, 0, "does not start with"},
		{"bad magic", flip(0), 0, "does not start with"},
		{"header truncated", []byte(mirrorMagic + "\x01\x00"), 0, "header"},
		{"unknown version", craftMirror(2, 2, a, b), 0, "format version 2"},
		{"too many entries", craftMirror(1, maxMirrorEntries+1), 0, "at most"},
		{"truncated", valid[:len(valid)-1], 0, "truncated"},
		{"trailing byte", append(bytes.Clone(valid), 0), 0, "trailing"},
		{"count says more", craftMirror(1, 3, a, b), 0, "want"},
		{"secret flipped", flip(mirrorHeaderSize + 4 + epochTagSize), 0, "checksum"},
		{"checksum flipped", flip(len(valid) - 1), 0, "checksum"},
		{"descending handles", craftMirror(1, 2, b, a), 0, "ascending"},
		{"duplicate handle", craftMirror(1, 2, a, a), 0, "ascending"},
		{"handle not of its tag", craftMirror(1, 1, wrongHandle), 0, "not a candidate"},
		{"duplicate tag", craftMirror(1, 2, aAgain, sameTag), 0, "repeats the tag"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseMirror("party.seed.nv", tc.b)
			if tc.want == "" {
				if err != nil || len(got) != tc.n {
					t.Fatalf("parseMirror = %d entries, %v; want %d", len(got), err, tc.n)
				}
				if re := encodeMirror(got); !bytes.Equal(re, tc.b) {
					t.Fatalf("re-encoding differs from the input")
				}
				return
			}
			if !errors.Is(err, ErrSeedFile) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "party.seed.nv") {
				t.Fatalf("parseMirror: %v; want ErrSeedFile naming the file and %q", err, tc.want)
			}
			wantNoSecret(t, err, a.data[epochTagSize:], b.data[epochTagSize:], a.data[:epochTagSize], b.data[:epochTagSize])
		})
	}
}

func TestReadMirrorFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "party.seed.nv")
	if got, err := readMirror(path); err != nil || len(got) != 0 {
		t.Fatalf("readMirror of a missing file = %d entries, %v; want an empty mirror", len(got), err)
	}
	if err := os.WriteFile(path, craftMirror(1, 0), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readMirror(path); !errors.Is(err, ErrSeedFile) || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("readMirror of a 0644 file: %v; want ErrSeedFile asking for chmod 600", err)
	}
	if _, err := readMirror(dir); !errors.Is(err, ErrSeedFile) {
		t.Fatalf("readMirror of a directory: %v; want ErrSeedFile", err)
	}
}

// FuzzParseMirror: the mirror decoder never panics, every error is
// ErrSeedFile, and what it accepts re-encodes to the same bytes.
func FuzzParseMirror(f *testing.F) {
	a := testMirrorEntry("key-1", 1, 0, 0xa5)
	valid := craftMirror(1, 1, a)
	for _, s := range [][]byte{valid, craftMirror(1, 0), valid[:len(valid)-1], append(bytes.Clone(valid), 0), craftMirror(2, 1, a), craftMirror(1, 2, a, a), nil} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := parseMirror("fuzz.nv", b)
		if err != nil {
			if !errors.Is(err, ErrSeedFile) {
				t.Fatalf("parseMirror: %v; want ErrSeedFile", err)
			}
			return
		}
		if !bytes.Equal(encodeMirror(got), b) {
			t.Fatal("accepted mirror does not re-encode to its bytes")
		}
	})
}
