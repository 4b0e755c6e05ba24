package tpm

import (
	"bytes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/sealsign/sealsign/hsm"
	"github.com/sealsign/sealsign/hsm/tpm/pcr"
)

// EpochKeys keeps one sealing secret per (key id, epoch) in an NV index of
// the TPM, so that undefining the index crypto-shreds every copy of that
// epoch's sealed blobs (hsm.EpochKeys).
//
// An epoch's index holds 64 bytes: a 32-byte tag, SHA-256 over a domain
// string, the key id and the epoch, that says whose index it is; then a
// 32-byte epoch secret drawn from TPM and OS randomness mixed (mixKey).
// Blobs are sealed twice: by the PCR-bound Sealer (a fresh TPM-sealed data
// key per blob) and then with AES-256-GCM under an HKDF-SHA256 key derived
// from the epoch secret, authenticating the aad. Opening a blob needs both
// the sealed data key and the epoch secret; once the index is gone the
// secret exists nowhere, and no copy of a blob of that epoch opens again.
//
// Handles. The index of (key id, epoch) lives at one of epochProbes
// candidate handles in the owner range 0x01800000..0x01BFFFFF: the first
// is 0x01800000 plus the tag's first 22 bits, the next ones follow it
// (wrapping inside the range). A collision — another index, ours for
// another epoch or anyone else's, at a candidate — is detected by the
// attributes, size and stored tag and skips to the next candidate. Every
// lookup probes all candidates, since a destroyed index leaves a hole.
//
// Authorization. The index is read and written only through a policy
// session satisfying TPM2_PolicyPCR over the same PCRs as the Sealer, with
// the values they had when the epoch was created (TPMA_NV_POLICYREAD and
// POLICYWRITE, no owner or auth read), and the secret crosses the bus
// encrypted under a session salted to the storage root key. So the host
// cannot read the secret through the resource manager unless it can bring
// the PCRs to the measured state — the same bar as unsealing the data key
// (see the package comment for what that means against root on a host whose
// PCRs are resettable). Undefining needs only owner authorization (empty by
// assumption), so destruction works whatever the PCRs hold.
//
// Limitations:
//   - Identifying an index reads its tag, which needs the PCR policy. An
//     index of our shape made under other PCR values (the measured state
//     changed since, or it is another epoch's) cannot be identified:
//     EpochSealer without create and DestroyEpoch then fail with ErrPolicy
//     rather than guess (DestroyEpoch never reports success while such an
//     index might be the epoch's).
//   - Lookup, creation and destruction are atomic within this process (they
//     hold the TPM), not against other processes using the same TPM.
//
// Simulator. The Microsoft simulator behind OpenSimulator is manufactured
// afresh on every open, with empty NV. So that a dev party survives a
// restart, the EpochKeys of a simulator TPM (and only of one: IsSimulator,
// set by OpenSimulator alone) keep an NV mirror file next to the seed file:
// after an index is created and written, and after one is undefined, the
// mirror is rewritten atomically to list every live epoch index — handle,
// tag and epoch secret, IN PLAINTEXT (format at mirrorMagic). Epochs replays
// it into the fresh NV. Plaintext secrets on disk are acceptable here only
// because the simulator is insecure by construction: its seed file already
// recreates every key, and whoever can read the mirror can read the seed
// beside it.
// A real TPM keeps epoch secrets only in its NV and never writes a mirror.
// What still binds a simulator party's blob to the measured state is its
// inner layer: the PCR-sealed data key of the Sealer, which replay does not
// touch. On the simulator, DestroyEpoch shreds only when the mirror rewrite
// succeeds (it fails otherwise), and any copy of an old mirror resurrects
// the epochs it lists.
//
// An EpochKeys is safe for concurrent use and valid until its TPM is closed.
type EpochKeys struct {
	tpm    *TPM
	sealer *Sealer
}

var _ hsm.EpochKeys = (*EpochKeys)(nil)

const (
	epochNVBase  = 0x01800000 // TCG handle registry: first owner NV index
	epochNVRange = 0x00400000 // owner range 0x01800000..0x01BFFFFF
	epochProbes  = 8

	epochTagSize    = sha256.Size
	epochSecretSize = 32
	epochNVSize     = epochTagSize + epochSecretSize

	// Epoch blob: version byte, GCM nonce, GCM(inner Sealer blob).
	epochBlobVersion = 1
	epochOverhead    = 1 + nonceSize + tagSize
	maxEpochSealed   = MaxSealedSize + epochOverhead

	epochTagContext = "sealsign/hsm/tpm epoch index v1"
	epochKeyInfo    = "sealsign/hsm/tpm epoch key v1"
	epochAADContext = "sealsign/hsm/tpm epoch blob v1"
)

// Epochs returns the epoch keys of t, sealing under the SHA-256 bank of
// pcrs as t.Sealer(pcrs) does and protecting each epoch's NV index with the
// same PCR policy.
//
// On a simulator TPM it first replays the NV mirror (see EpochKeys): every
// listed index whose handle is not defined is defined as epoch creation
// does, under the PCR policy over the CURRENT values of pcrs, and written
// with its tag and secret. So call Epochs once the PCRs are in their
// measured state (after ResetPCR and ExtendPCR of the enclave), and use one
// PCR selection per simulator party. The mirror holds epoch secrets in
// plaintext; that is tolerable only on the simulator, whose seed file
// already recreates every key, and the blobs' PCR-sealed inner data keys
// still bind them to the measured PCRs. An unreadable, corrupted or
// malformed mirror fails Epochs with ErrSeedFile, naming the file but never
// its contents. A real TPM never reads or writes a mirror.
func (t *TPM) Epochs(pcrs []int) (*EpochKeys, error) {
	s, err := t.Sealer(pcrs)
	if err != nil {
		return nil, err
	}
	e := &EpochKeys{tpm: t, sealer: s}
	if t.sim && t.nvMirror != nil {
		if err := t.do(e.replayMirror); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// epochTag names (keyID, epoch): SHA-256 of the context, the key id's
// length and bytes, and the epoch, so no two pairs share a tag.
func epochTag(keyID string, epoch uint64) []byte {
	h := sha256.New()
	h.Write([]byte(epochTagContext))
	var n [12]byte
	binary.BigEndian.PutUint32(n[:4], uint32(len(keyID)))
	h.Write(n[:4])
	h.Write([]byte(keyID))
	binary.BigEndian.PutUint64(n[4:], epoch)
	h.Write(n[4:])
	return h.Sum(nil)
}

// epochHandles are the candidate NV handles of tag, in probe order.
func epochHandles(tag []byte) []tpm2.TPMHandle {
	first := binary.BigEndian.Uint32(tag) % epochNVRange
	hs := make([]tpm2.TPMHandle, epochProbes)
	for i := range hs {
		hs[i] = tpm2.TPMHandle(epochNVBase + (first+uint32(i))%epochNVRange)
	}
	return hs
}

// epochAttributes are the attributes of an epoch index (TPMA_NV_WRITTEN
// aside, which the TPM sets on the first write).
func epochAttributes() tpm2.TPMANV {
	return tpm2.TPMANV{
		PolicyWrite: true,
		PolicyRead:  true,
		NoDA:        true,
		NT:          tpm2.TPMNTOrdinary,
	}
}

func checkKeyID(keyID string, epoch uint64) error {
	if len(keyID) > hsm.MaxBindingField || !utf8.ValidString(keyID) {
		return fmt.Errorf("tpm: epoch key of key id (%d bytes) epoch %d: key id must be valid UTF-8 of at most %d bytes: %w", len(keyID), epoch, hsm.MaxBindingField, hsm.ErrInvalidBinding)
	}
	return nil
}

// epochSlot is what a lookup found of (key id, epoch).
type epochSlot struct {
	handle tpm2.TPMHandle // the epoch's index; 0 when not found
	name   tpm2.TPM2BName
	secret []byte // when found and asked for

	free    tpm2.TPMHandle   // first candidate with no index, 0 if none
	stale   tpm2.TPMHandle   // first unwritten index of our shape (a crashed create)
	foreign []tpm2.TPMHandle // indexes of our shape under another PCR policy
}

// lookup probes every candidate handle of (keyID, epoch). Only indexes of
// our shape whose policy is the current PCR policy are read; the tag
// decides whether one is the epoch's. rw is held by the caller.
func (e *EpochKeys) lookup(rw transport.TPM, keyID string, epoch uint64, wantSecret bool) (*epochSlot, error) {
	t := e.tpm
	tag := epochTag(keyID, epoch)
	policy, err := e.currentPolicy(rw)
	if err != nil {
		return nil, err
	}
	srk, err := t.storageRoot(rw)
	if err != nil {
		return nil, err
	}
	slot := &epochSlot{}
	want := epochAttributes()
	for _, h := range epochHandles(tag) {
		rsp, err := tpm2.NVReadPublic{NVIndex: h}.Execute(rw)
		if err != nil {
			if errors.Is(err, tpm2.TPMRCHandle) {
				if slot.free == 0 {
					slot.free = h
				}
				continue
			}
			return nil, t.deviceError(fmt.Sprintf("TPM2_NV_ReadPublic(%#08x) for key %q epoch %d", uint32(h), keyID, epoch), err)
		}
		pub, err := rsp.NVPublic.Contents()
		if err != nil {
			return nil, classErrorf(ErrDevice, err, "TPM %q: NV index %#08x: public area", t.path, uint32(h))
		}
		attrs := pub.Attributes
		written := attrs.Written
		attrs.Written = false
		if attrs != want || pub.NameAlg != tpm2.TPMAlgSHA256 || pub.DataSize != epochNVSize {
			continue // someone else's index
		}
		if !written {
			if slot.stale == 0 {
				slot.stale = h
			}
			continue
		}
		if !bytes.Equal(pub.AuthPolicy.Buffer, policy) {
			slot.foreign = append(slot.foreign, h)
			continue
		}
		data, err := e.readIndex(rw, srk, h, rsp.NVName)
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(data[:epochTagSize], tag) {
			clear(data)
			continue // another epoch's index
		}
		slot.handle, slot.name = h, rsp.NVName
		if wantSecret {
			slot.secret = bytes.Clone(data[epochTagSize:])
		}
		clear(data)
		return slot, nil
	}
	return slot, nil
}

// currentPolicy is the PCR policy digest over the current PCR values.
func (e *EpochKeys) currentPolicy(rw transport.TPM) ([]byte, error) {
	vals, err := e.tpm.readPCRs(rw, e.sealer.pcrs)
	if err != nil {
		return nil, err
	}
	p, err := policyDigest(e.sealer.pcrs, vals)
	if err != nil {
		return nil, fmt.Errorf("tpm: compute pcr policy: %w", err)
	}
	return p, nil
}

// policySession authorizes index h by TPM2_PolicyPCR over the current
// values, in a session salted to the SRK with parameter encryption enc.
func (e *EpochKeys) policySession(srk *storageKey, enc tpm2.AuthOption) tpm2.Session {
	sel := pcr.SHA256Selection(e.sealer.pcrs)
	policy := func(tp transport.TPM, h tpm2.TPMISHPolicy, _ tpm2.TPM2BNonce) error {
		_, err := tpm2.PolicyPCR{PolicySession: h, Pcrs: sel}.Execute(tp)
		return err
	}
	return tpm2.Policy(tpm2.TPMAlgSHA256, 16, policy, tpm2.Salted(srk.handle, srk.pub), enc)
}

// readIndex reads the 64 bytes of epoch index h under the PCR policy.
func (e *EpochKeys) readIndex(rw transport.TPM, srk *storageKey, h tpm2.TPMHandle, name tpm2.TPM2BName) ([]byte, error) {
	t := e.tpm
	rsp, err := tpm2.NVRead{
		AuthHandle: tpm2.AuthHandle{Handle: h, Name: name, Auth: e.policySession(srk, tpm2.AESEncryption(128, tpm2.EncryptOut))},
		NVIndex:    tpm2.NamedHandle{Handle: h, Name: name},
		Size:       epochNVSize,
	}.Execute(rw)
	if err != nil {
		if errors.Is(err, tpm2.TPMRCPolicyFail) || errors.Is(err, tpm2.TPMRCPCRChanged) {
			return nil, classErrorf(ErrPolicy, err, "pcr policy failed: TPM %q refused to read epoch index %#08x: pcrs %s changed", t.path, uint32(h), pcrList(e.sealer.pcrs))
		}
		return nil, t.deviceError(fmt.Sprintf("TPM2_NV_Read(%#08x)", uint32(h)), err)
	}
	data := rsp.Data.Buffer
	if len(data) != epochNVSize {
		clear(data)
		return nil, classErrorf(ErrDevice, nil, "TPM %q: TPM2_NV_Read(%#08x) returned %d bytes, want %d", t.path, uint32(h), len(data), epochNVSize)
	}
	return data, nil
}

// notFound is the error for an epoch whose index the lookup did not find.
func (e *EpochKeys) notFound(slot *epochSlot, keyID string, epoch uint64) error {
	if len(slot.foreign) > 0 {
		return classErrorf(ErrPolicy, nil, "pcr policy failed: key %q epoch %d: no epoch index readable under the current values of pcrs %s, and %s on TPM %q %s made under other values; the measured state changed since the epoch was created, or they belong to other epochs",
			keyID, epoch, pcrList(e.sealer.pcrs), handleList(slot.foreign), e.tpm.path, plural(len(slot.foreign), "was", "were"))
	}
	return fmt.Errorf("tpm: key %q epoch %d: no epoch index on TPM %q: %w", keyID, epoch, e.tpm.path, hsm.ErrEpochDestroyed)
}

func handleList(hs []tpm2.TPMHandle) string {
	s := make([]string, len(hs))
	for i, h := range hs {
		s[i] = fmt.Sprintf("%#08x", uint32(h))
	}
	return "NV index " + strings.Join(s, ", ")
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// EpochSealer returns the sealer of (keyID, epoch). With create it defines
// the epoch's NV index with a fresh secret if no index of the epoch exists;
// without, a missing index is an error wrapping hsm.ErrEpochDestroyed (or
// ErrPolicy when an index that may be the epoch's exists under other PCR
// values). The returned sealer reads the secret from the TPM on every Seal
// and Unseal, so DestroyEpoch takes effect on sealers already handed out.
func (e *EpochKeys) EpochSealer(keyID string, epoch uint64, create bool) (hsm.Sealer, error) {
	if err := checkKeyID(keyID, epoch); err != nil {
		return nil, err
	}
	t := e.tpm
	osRandom := make([]byte, epochSecretSize)
	defer clear(osRandom)
	if create {
		if _, err := rand.Read(osRandom); err != nil {
			return nil, fmt.Errorf("tpm: key %q epoch %d: OS random: %w", keyID, epoch, err)
		}
	}
	err := t.do(func(rw transport.TPM) error {
		slot, err := e.lookup(rw, keyID, epoch, false)
		if err != nil {
			return err
		}
		if slot.handle != 0 {
			return nil
		}
		if !create {
			return e.notFound(slot, keyID, epoch)
		}
		return e.define(rw, slot, keyID, epoch, osRandom)
	})
	if err != nil {
		return nil, err
	}
	return &epochSealer{keys: e, keyID: keyID, epoch: epoch, tag: epochTag(keyID, epoch)}, nil
}

// define makes the index of (keyID, epoch) in the slot lookup found and
// writes its tag and a fresh secret. An unwritten index of our shape is
// the remnant of a create that crashed before its write: no blob was ever
// sealed under it, so it is reclaimed.
func (e *EpochKeys) define(rw transport.TPM, slot *epochSlot, keyID string, epoch uint64, osRandom []byte) error {
	t := e.tpm
	h := slot.free
	if slot.stale != 0 {
		h = slot.stale
		if err := undefine(rw, h); err != nil {
			return t.deviceError(fmt.Sprintf("TPM2_NV_UndefineSpace(%#08x, unwritten index) for key %q epoch %d", uint32(h), keyID, epoch), err)
		}
	}
	if h == 0 {
		return classErrorf(ErrDevice, nil, "TPM %q: key %q epoch %d: all %d candidate NV handles from %#08x are taken by other indexes", t.path, keyID, epoch, epochProbes, uint32(epochHandles(epochTag(keyID, epoch))[0]))
	}
	srk, err := t.storageRoot(rw)
	if err != nil {
		return err
	}
	policy, err := e.currentPolicy(rw)
	if err != nil {
		return err
	}
	tpmRandom := make([]byte, epochSecretSize)
	defer clear(tpmRandom)
	if _, err := t.getRandom(rw, tpmRandom); err != nil {
		return err
	}
	secret, err := mixKey(tpmRandom, osRandom)
	if err != nil {
		return fmt.Errorf("tpm: key %q epoch %d: derive epoch secret: %w", keyID, epoch, err)
	}
	defer clear(secret)

	data := make([]byte, 0, epochNVSize)
	data = append(append(data, epochTag(keyID, epoch)...), secret...)
	defer clear(data)
	what := fmt.Sprintf("key %q epoch %d", keyID, epoch)
	if err := e.defineIndex(rw, srk, h, policy, data, what); err != nil {
		return err
	}
	if t.sim && t.nvMirror != nil {
		if err := t.nvMirror.put(h, data); err != nil {
			// No blob was sealed under the index yet: drop it rather than
			// leave an epoch that would vanish on the next restart.
			undefine(rw, h)
			return fmt.Errorf("tpm: %s not created: %w", what, err)
		}
	}
	return nil
}

// defineIndex defines epoch index h with the epoch attributes and policy,
// and writes data (tag ‖ secret) to it under the PCR policy session. On a
// failed write it undefines the index again. what names the index in
// errors.
func (e *EpochKeys) defineIndex(rw transport.TPM, srk *storageKey, h tpm2.TPMHandle, policy, data []byte, what string) error {
	t := e.tpm
	pub := tpm2.TPMSNVPublic{
		NVIndex:    h,
		NameAlg:    tpm2.TPMAlgSHA256,
		Attributes: epochAttributes(),
		AuthPolicy: tpm2.TPM2BDigest{Buffer: policy},
		DataSize:   epochNVSize,
	}
	_, err := tpm2.NVDefineSpace{
		AuthHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(nil)},
		PublicInfo: tpm2.New2B(pub),
	}.Execute(rw)
	if err != nil {
		if errors.Is(err, tpm2.TPMRCNVSpace) {
			return classErrorf(ErrDevice, err, "TPM %q: %s: no NV space left for another epoch index; destroy old epochs", t.path, what)
		}
		return t.deviceError(fmt.Sprintf("TPM2_NV_DefineSpace(%#08x) for %s", uint32(h), what), err)
	}
	name, err := tpm2.NVName(&pub)
	if err != nil {
		undefine(rw, h)
		return fmt.Errorf("tpm: %s: NV index name: %w", what, err)
	}
	_, err = tpm2.NVWrite{
		AuthHandle: tpm2.AuthHandle{Handle: h, Name: *name, Auth: e.policySession(srk, tpm2.AESEncryption(128, tpm2.EncryptIn))},
		NVIndex:    tpm2.NamedHandle{Handle: h, Name: *name},
		Data:       tpm2.TPM2BMaxNVBuffer{Buffer: data},
	}.Execute(rw)
	if err != nil {
		undefine(rw, h) // leave no unwritten index behind when we can
		return t.deviceError(fmt.Sprintf("TPM2_NV_Write(%#08x) for %s", uint32(h), what), err)
	}
	return nil
}

// replayMirror defines every index the simulator's NV mirror lists that is
// not defined now, under the current PCR policy. rw is held by the caller.
func (e *EpochKeys) replayMirror(rw transport.TPM) error {
	t := e.tpm
	m := t.nvMirror
	if err := m.load(); err != nil {
		return err
	}
	if len(m.entries) == 0 {
		return nil
	}
	srk, err := t.storageRoot(rw)
	if err != nil {
		return err
	}
	policy, err := e.currentPolicy(rw)
	if err != nil {
		return err
	}
	for _, h := range slices.Sorted(maps.Keys(m.entries)) {
		_, err := tpm2.NVReadPublic{NVIndex: h}.Execute(rw)
		if err == nil {
			continue // defined already (an earlier Epochs on this TPM)
		}
		if !errors.Is(err, tpm2.TPMRCHandle) {
			return t.deviceError(fmt.Sprintf("TPM2_NV_ReadPublic(%#08x) replaying simulator NV mirror %q", uint32(h), m.path), err)
		}
		if err := e.defineIndex(rw, srk, h, policy, m.entries[h], fmt.Sprintf("index %#08x of simulator NV mirror %q", uint32(h), m.path)); err != nil {
			return err
		}
	}
	return nil
}

func undefine(rw transport.TPM, h tpm2.TPMHandle) error {
	_, err := tpm2.NVUndefineSpace{
		AuthHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(nil)},
		NVIndex:    tpm2.NamedHandle{Handle: h},
	}.Execute(rw)
	return err
}

// DestroyEpoch undefines the NV index of (keyID, epoch) (TPM2_NV_UndefineSpace
// under owner authorization), shredding its secret. No index is not an
// error. It fails with ErrPolicy, after destroying what it identified, when
// an index that may be the epoch's cannot be identified because it was made
// under other PCR values: the caller must not believe the epoch shredded.
func (e *EpochKeys) DestroyEpoch(keyID string, epoch uint64) error {
	if err := checkKeyID(keyID, epoch); err != nil {
		return err
	}
	t := e.tpm
	return t.do(func(rw transport.TPM) error {
		slot, err := e.lookup(rw, keyID, epoch, false)
		if err != nil {
			return err
		}
		if slot.handle != 0 {
			if err := undefine(rw, slot.handle); err != nil && !errors.Is(err, tpm2.TPMRCHandle) {
				return t.deviceError(fmt.Sprintf("TPM2_NV_UndefineSpace(%#08x) for key %q epoch %d", uint32(slot.handle), keyID, epoch), err)
			}
			return e.forgetMirrored(slot.handle, keyID, epoch)
		}
		if len(slot.foreign) > 0 {
			return classErrorf(ErrPolicy, nil, "pcr policy failed: key %q epoch %d not destroyed: %s on TPM %q may be its index but %s made under other values of pcrs %s and cannot be read to tell; restore the measured state the epoch was created in and retry",
				keyID, epoch, handleList(slot.foreign), t.path, plural(len(slot.foreign), "was", "were"), pcrList(e.sealer.pcrs))
		}
		// No index: still make sure a simulator's mirror no longer lists
		// the epoch (a retry after a failed rewrite lands here).
		return e.forgetMirrored(0, keyID, epoch)
	})
}

// forgetMirrored drops (keyID, epoch), undefined at h (0: not found), from a
// simulator's NV mirror. Until the rewrite succeeds the secret is still on
// disk, so a failure is an error: the epoch is not shredded yet.
func (e *EpochKeys) forgetMirrored(h tpm2.TPMHandle, keyID string, epoch uint64) error {
	t := e.tpm
	if !t.sim || t.nvMirror == nil {
		return nil
	}
	if err := t.nvMirror.forget(h, epochTag(keyID, epoch)); err != nil {
		return fmt.Errorf("tpm: key %q epoch %d not shredded: its NV index is gone but the simulator NV mirror may still hold its secret; retry DestroyEpoch: %w", keyID, epoch, err)
	}
	return nil
}

// epochSealer is the hsm.Sealer of one (key id, epoch).
type epochSealer struct {
	keys  *EpochKeys
	keyID string
	epoch uint64
	tag   []byte
}

// epochKey reads the epoch secret and derives the blob key from it.
func (s *epochSealer) epochKey() ([]byte, error) {
	var secret []byte
	err := s.keys.tpm.do(func(rw transport.TPM) error {
		slot, err := s.keys.lookup(rw, s.keyID, s.epoch, true)
		if err != nil {
			return err
		}
		if slot.handle == 0 {
			return s.keys.notFound(slot, s.keyID, s.epoch)
		}
		secret = slot.secret
		return nil
	})
	defer clear(secret)
	if err != nil {
		return nil, err
	}
	key, err := hkdf.Key(sha256.New, secret, nil, epochKeyInfo+string(s.tag), dataKeySize)
	if err != nil {
		return nil, fmt.Errorf("tpm: key %q epoch %d: derive epoch key: %w", s.keyID, s.epoch, err)
	}
	return key, nil
}

// epochAAD binds the blob version and the caller's aad.
func epochAAD(aad []byte) []byte {
	out := make([]byte, 0, len(epochAADContext)+1+4+len(aad))
	out = append(out, epochAADContext...)
	out = append(out, epochBlobVersion)
	out = binary.BigEndian.AppendUint32(out, uint32(len(aad)))
	return append(out, aad...)
}

// Seal seals plaintext with the PCR-bound Sealer, then encrypts the result
// under the epoch key.
func (s *epochSealer) Seal(aad, plaintext []byte) ([]byte, error) {
	if len(aad) == 0 {
		return nil, hsmErrorf(hsm.ErrAADRequired, "seal: key %q epoch %d: %v", s.keyID, s.epoch, hsm.ErrAADRequired)
	}
	inner, err := s.keys.sealer.Seal(aad, plaintext)
	if err != nil {
		return nil, err
	}
	aead, err := s.aead()
	if err != nil {
		return nil, err
	}
	out := make([]byte, 1+nonceSize, epochOverhead+len(inner))
	out[0] = epochBlobVersion
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, fmt.Errorf("tpm: seal: key %q epoch %d: OS random: %w", s.keyID, s.epoch, err)
	}
	return aead.Seal(out, out[1:], inner, epochAAD(aad)), nil
}

// aead is the epoch layer's cipher, under the key derived from the
// epoch secret read from NV now (so a destroyed epoch fails here).
func (s *epochSealer) aead() (cipher.AEAD, error) {
	key, err := s.epochKey()
	defer clear(key)
	if err != nil {
		return nil, err
	}
	return newGCM(key)
}

// Unseal decrypts under the epoch key, then unseals with the PCR-bound
// Sealer. Errors: hsm.ErrEpochDestroyed when the epoch's index is gone;
// ErrTampered (also hsm.ErrTampered) when the epoch layer fails
// authentication (modified, or sealed under another epoch or key id);
// ErrMalformed or hsm.ErrUnknownVersion for bytes that are not an epoch
// blob; otherwise the errors of Sealer.Unseal.
func (s *epochSealer) Unseal(aad, sealedData []byte) ([]byte, error) {
	if len(aad) == 0 {
		return nil, hsmErrorf(hsm.ErrAADRequired, "unseal: key %q epoch %d: %v", s.keyID, s.epoch, hsm.ErrAADRequired)
	}
	if len(sealedData) < 1 {
		return nil, classErrorf(ErrMalformed, nil, "unseal: key %q epoch %d: empty sealed data", s.keyID, s.epoch)
	}
	if sealedData[0] != epochBlobVersion {
		return nil, hsmErrorf(hsm.ErrUnknownVersion, "unseal: key %q epoch %d: epoch blob version %d, this build reads version %d", s.keyID, s.epoch, sealedData[0], epochBlobVersion)
	}
	if len(sealedData) < epochOverhead || len(sealedData) > maxEpochSealed {
		return nil, classErrorf(ErrMalformed, nil, "unseal: key %q epoch %d: sealed data is %d bytes, want %d..%d", s.keyID, s.epoch, len(sealedData), epochOverhead, maxEpochSealed)
	}
	aead, err := s.aead()
	if err != nil {
		return nil, err
	}
	inner, err := aead.Open(nil, sealedData[1:1+nonceSize], sealedData[1+nonceSize:], epochAAD(aad))
	if err != nil {
		return nil, classErrorf(ErrTampered, nil, "unseal: key %q epoch %d: epoch layer failed AES-GCM authentication: the blob was modified, or sealed under another epoch, key id or aad", s.keyID, s.epoch)
	}
	return s.keys.sealer.Unseal(aad, inner)
}

// Simulator NV mirror, the file seedFile + ".nv" of a simulator TPM (see
// EpochKeys and OpenSimulator). It holds epoch secrets in plaintext, which
// is acceptable only because the simulator's seed file recreates every key
// anyway; a real TPM never has one.
//
// Format, version 1, integers big-endian, nothing else accepted:
//
//	magic     "sealsign-tpm-simulator-nv\n"  26 bytes
//	version   1                             1 byte
//	count     number of entries             2 bytes, at most maxMirrorEntries
//	entries   count × (handle 4 ‖ tag 32 ‖ secret 32), handles strictly ascending
//	checksum  SHA-256 of all bytes before it  32 bytes
//
// Each handle is one of the candidate handles of its tag (epochHandles), so
// no two entries share a handle or (by the probe order) a tag; a duplicate
// tag is rejected all the same. Evolution: any change of layout takes a new
// version byte, and readers reject versions they do not know.
const (
	mirrorMagic      = "sealsign-tpm-simulator-nv\n"
	mirrorVersion    = 1
	mirrorHeaderSize = len(mirrorMagic) + 1 + 2
	mirrorEntrySize  = 4 + epochNVSize
	maxMirrorEntries = 1024 // far above what the simulator's NV can hold
	maxMirrorSize    = mirrorHeaderSize + maxMirrorEntries*mirrorEntrySize + sha256.Size
)

// nvMirror is a simulator TPM's mirror file and its contents. Its methods
// run with the TPM's mutex held.
type nvMirror struct {
	path    string
	entries map[tpm2.TPMHandle][]byte // handle → tag ‖ secret; nil until loaded
	dirty   bool                      // a rewrite failed: the file may differ from entries
}

// load reads the mirror file once; a missing file is an empty mirror.
func (m *nvMirror) load() error {
	if m.entries != nil {
		return nil
	}
	entries, err := readMirror(m.path)
	if err != nil {
		return err
	}
	m.entries = entries
	return nil
}

// put records index h holding data (tag ‖ secret) and rewrites the file.
// On failure h is not recorded.
func (m *nvMirror) put(h tpm2.TPMHandle, data []byte) error {
	if err := m.load(); err != nil {
		return err
	}
	old, had := m.entries[h]
	m.entries[h] = bytes.Clone(data)
	if err := m.save(); err != nil {
		clear(m.entries[h])
		if had {
			m.entries[h] = old
		} else {
			delete(m.entries, h)
		}
		return err
	}
	if had {
		clear(old)
	}
	return nil
}

// forget drops index h and every entry tagged tag, and rewrites the file
// when that changed it or a previous rewrite failed.
func (m *nvMirror) forget(h tpm2.TPMHandle, tag []byte) error {
	if err := m.load(); err != nil {
		return err
	}
	changed := false
	for hh, d := range m.entries {
		if hh == h || bytes.Equal(d[:epochTagSize], tag) {
			clear(d)
			delete(m.entries, hh)
			changed = true
		}
	}
	if !changed && !m.dirty {
		return nil
	}
	return m.save()
}

// save replaces the file with the current entries: a temporary file in the
// same directory, mode 0600, synced, renamed over the mirror, then the
// directory synced, so a crash leaves the old or the new list, never a mix.
func (m *nvMirror) save() error {
	if len(m.entries) > maxMirrorEntries {
		return classErrorf(ErrSeedFile, nil, "simulator NV mirror %q: %d epoch indexes, the format holds at most %d; destroy old epochs", m.path, len(m.entries), maxMirrorEntries)
	}
	m.dirty = true
	b := encodeMirror(m.entries)
	defer clear(b)
	dir := filepath.Dir(m.path)
	tmp, err := os.CreateTemp(dir, ".tpm-sim-nv-*")
	if err != nil {
		return classErrorf(ErrSeedFile, err, "write simulator NV mirror %q", m.path)
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName) // fails harmlessly once renamed
	err = tmp.Chmod(0o600)
	if err == nil {
		_, err = tmp.Write(b)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmpName, m.path)
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		return classErrorf(ErrSeedFile, err, "write simulator NV mirror %q", m.path)
	}
	m.dirty = false
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// encodeMirror is the version 1 encoding of entries, in handle order.
func encodeMirror(entries map[tpm2.TPMHandle][]byte) []byte {
	b := make([]byte, 0, mirrorHeaderSize+len(entries)*mirrorEntrySize+sha256.Size)
	b = append(b, mirrorMagic...)
	b = append(b, mirrorVersion)
	b = binary.BigEndian.AppendUint16(b, uint16(len(entries)))
	for _, h := range slices.Sorted(maps.Keys(entries)) {
		b = binary.BigEndian.AppendUint32(b, uint32(h))
		b = append(b, entries[h]...)
	}
	sum := sha256.Sum256(b)
	return append(b, sum[:]...)
}

// readMirror reads and strictly parses the mirror at path; a missing file
// is an empty mirror. Like the seed file it must be a regular file that
// only its owner can read.
func readMirror(path string) (map[tpm2.TPMHandle][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return map[tpm2.TPMHandle][]byte{}, nil
		}
		return nil, classErrorf(ErrSeedFile, err, "open simulator NV mirror %q", path)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, classErrorf(ErrSeedFile, err, "stat simulator NV mirror %q", path)
	}
	if !fi.Mode().IsRegular() {
		return nil, classErrorf(ErrSeedFile, nil, "simulator NV mirror %q is not a regular file (mode %v)", path, fi.Mode())
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, classErrorf(ErrSeedFile, nil, "simulator NV mirror %q has mode %#o, want 0600: it holds the simulator's epoch secrets; chmod 600 it", path, perm)
	}
	b, err := io.ReadAll(io.LimitReader(f, int64(maxMirrorSize)+1))
	defer clear(b)
	if err != nil {
		return nil, classErrorf(ErrSeedFile, err, "read simulator NV mirror %q", path)
	}
	return parseMirror(path, b)
}

// parseMirror decodes a version 1 mirror. Errors name the file and the
// offending field, never the bytes of a tag or secret. The entries do not
// alias b.
func parseMirror(path string, b []byte) (map[tpm2.TPMHandle][]byte, error) {
	bad := func(format string, args ...any) error {
		return classErrorf(ErrSeedFile, nil, "simulator NV mirror %q is unusable: %s; restore it from a backup, or delete it to start this dev party without epochs (its epoch-sealed blobs are then lost)", path, fmt.Sprintf(format, args...))
	}
	if len(b) < len(mirrorMagic) || string(b[:len(mirrorMagic)]) != mirrorMagic {
		return nil, bad("it does not start with %q", mirrorMagic)
	}
	if len(b) < mirrorHeaderSize {
		return nil, bad("%d bytes, shorter than the %d-byte header", len(b), mirrorHeaderSize)
	}
	if v := b[len(mirrorMagic)]; v != mirrorVersion {
		return nil, bad("format version %d, this build reads version %d", v, mirrorVersion)
	}
	n := int(binary.BigEndian.Uint16(b[len(mirrorMagic)+1:]))
	if n > maxMirrorEntries {
		return nil, bad("%d entries, at most %d allowed", n, maxMirrorEntries)
	}
	if want := mirrorHeaderSize + n*mirrorEntrySize + sha256.Size; len(b) != want {
		return nil, bad("%d bytes, want %d for %d entries (truncated or trailing bytes)", len(b), want, n)
	}
	body := b[:len(b)-sha256.Size]
	sum := sha256.Sum256(body)
	if !bytes.Equal(sum[:], b[len(body):]) {
		return nil, bad("SHA-256 checksum mismatch (corrupted)")
	}
	entries := make(map[tpm2.TPMHandle][]byte, n)
	tags := make(map[string]bool, n)
	var prev uint32
	for i := range n {
		e := body[mirrorHeaderSize+i*mirrorEntrySize:][:mirrorEntrySize]
		h := binary.BigEndian.Uint32(e)
		data := e[4:]
		tag := string(data[:epochTagSize])
		switch {
		case i > 0 && h <= prev:
			return nil, bad("entry %d: handle %#08x does not follow %#08x in strictly ascending order", i, h, prev)
		case !slices.Contains(epochHandles(data[:epochTagSize]), tpm2.TPMHandle(h)):
			return nil, bad("entry %d: handle %#08x is not a candidate handle of its tag", i, h)
		case tags[tag]:
			return nil, bad("entry %d at handle %#08x repeats the tag of an earlier entry", i, h)
		}
		tags[tag] = true
		entries[tpm2.TPMHandle(h)] = bytes.Clone(data)
		prev = h
	}
	return entries, nil
}
