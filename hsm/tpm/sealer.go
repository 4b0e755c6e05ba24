package tpm

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/sealsign/sealsign/hsm"
	"github.com/sealsign/sealsign/hsm/tpm/pcr"
)

// Sealer seals under a PCR policy of its TPM, by envelope encryption: each
// Seal draws a fresh AES-256 data key (TPM random mixed with OS random),
// seals that key into a TPM data object bound by TPM2_PolicyPCR to the
// current values of the selected SHA-256 PCRs, and encrypts the plaintext
// with AES-256-GCM under it (TPM-sealed objects hold at most 128 bytes).
// Unseal works only on the TPM that sealed (under its storage root key) and
// only while every selected PCR has its value from sealing time.
//
// A Sealer is safe for concurrent use and valid until its TPM is closed.
type Sealer struct {
	tpm  *TPM
	pcrs []int // sorted
}

var _ hsm.Sealer = (*Sealer)(nil)

// Sealer returns a Sealer whose policy is the SHA-256 bank of pcrs (indices
// 0..23, each once). It checks that the PCRs exist and creates the storage
// root key now, so a misconfigured TPM fails here rather than at the first
// Seal.
func (t *TPM) Sealer(pcrs []int) (*Sealer, error) {
	sel, err := normalizePCRs(pcrs)
	if err != nil {
		return nil, err
	}
	err = t.do(func(rw transport.TPM) error {
		if _, err := t.readPCRs(rw, sel); err != nil {
			return err
		}
		_, err := t.storageRoot(rw)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &Sealer{tpm: t, pcrs: sel}, nil
}

// PCRs returns the policy's PCR selection, ascending.
func (s *Sealer) PCRs() []int { return slices.Clone(s.pcrs) }

// mixKey derives the data key from TPM and OS randomness, so neither source
// alone decides it (DESIGN.md: entropy is always mixed).
func mixKey(tpmRandom, osRandom []byte) ([]byte, error) {
	secret := make([]byte, 0, len(tpmRandom)+len(osRandom))
	secret = append(append(secret, tpmRandom...), osRandom...)
	defer clear(secret)
	return hkdf.Key(sha256.New, secret, nil, "sealsign/hsm/tpm data key v1", dataKeySize)
}

// Seal encrypts plaintext under a fresh data key sealed to the current
// values of the Sealer's PCRs, authenticating aad (which must be non-empty).
func (s *Sealer) Seal(aad, plaintext []byte) ([]byte, error) {
	if len(aad) == 0 {
		return nil, hsmErrorf(hsm.ErrAADRequired, "seal: %v", hsm.ErrAADRequired)
	}
	if len(plaintext) > hsm.MaxBlobSize {
		return nil, fmt.Errorf("tpm: seal: plaintext is %d bytes, limit is %d", len(plaintext), hsm.MaxBlobSize)
	}
	t := s.tpm
	osRandom := make([]byte, dataKeySize)
	if _, err := rand.Read(osRandom); err != nil {
		return nil, fmt.Errorf("tpm: seal: OS random: %w", err)
	}
	defer clear(osRandom)

	b := &sealed{pcrs: s.pcrs, aadDigest: aadDigest(aad), nonce: make([]byte, nonceSize)}
	var key, policy []byte
	err := t.do(func(rw transport.TPM) error {
		srk, err := t.storageRoot(rw)
		if err != nil {
			return err
		}
		if b.values, err = t.readPCRs(rw, s.pcrs); err != nil {
			return err
		}
		tpmRandom := make([]byte, dataKeySize)
		defer clear(tpmRandom)
		if _, err := t.getRandom(rw, tpmRandom); err != nil {
			return err
		}
		if key, err = mixKey(tpmRandom, osRandom); err != nil {
			return fmt.Errorf("tpm: seal: derive data key: %w", err)
		}
		if policy, err = policyDigest(s.pcrs, b.values); err != nil {
			return fmt.Errorf("tpm: seal: compute pcr policy: %w", err)
		}
		// The data key travels to the TPM encrypted (EncryptIn) under a
		// session salted to the SRK, so the bus never carries it in clear.
		rsp, err := tpm2.Create{
			ParentHandle: tpm2.AuthHandle{
				Handle: srk.handle,
				Name:   srk.name,
				Auth:   tpm2.HMAC(tpm2.TPMAlgSHA256, 16, tpm2.Salted(srk.handle, srk.pub), tpm2.AESEncryption(128, tpm2.EncryptIn)),
			},
			InSensitive: tpm2.TPM2BSensitiveCreate{Sensitive: &tpm2.TPMSSensitiveCreate{
				Data: tpm2.NewTPMUSensitiveCreate(&tpm2.TPM2BSensitiveData{Buffer: key}),
			}},
			InPublic: tpm2.New2B(sealedTemplate(policy)),
		}.Execute(rw)
		if err != nil {
			return t.deviceError("TPM2_Create(sealed data key)", err)
		}
		b.public = rsp.OutPublic.Bytes()
		b.private = rsp.OutPrivate.Buffer
		return nil
	})
	defer clear(key)
	if err != nil {
		return nil, err
	}
	// What the TPM returned must parse back, or no Unseal could read it.
	if err := checkPublic(b.public, policy); err != nil {
		return nil, classErrorf(ErrDevice, err, "TPM %q returned an unexpected public area for the sealed key", t.path)
	}
	if len(b.private) == 0 || len(b.private) > maxPrivateSize {
		return nil, classErrorf(ErrDevice, nil, "TPM %q returned a %d-byte private area for the sealed key, want 1..%d", t.path, len(b.private), maxPrivateSize)
	}
	if _, err := rand.Read(b.nonce); err != nil {
		return nil, fmt.Errorf("tpm: seal: OS random: %w", err)
	}
	header := b.marshalHeader()
	aead, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	out := make([]byte, len(header), len(header)+len(plaintext)+tagSize)
	copy(out, header)
	return aead.Seal(out, b.nonce, plaintext, gcmAAD(header, aad)), nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("tpm: data key: %w", err)
	}
	return cipher.NewGCM(block)
}

// Unseal checks sealed against aad and this Sealer's policy, has the TPM
// unseal the data key under a PCR policy session, and decrypts.
//
// Errors: hsm.ErrAADRequired for empty aad; ErrMalformed or
// hsm.ErrUnknownVersion for bytes that are not a blob of this package;
// ErrAADMismatch when the blob was sealed with other aad; ErrPolicy when a
// PCR differs from its value at sealing (the error names each PCR with both
// values) or the blob was sealed under another PCR selection; ErrTampered
// when the blob was modified or sealed by another TPM; ErrDevice or
// ErrClosed when the TPM failed. ErrTampered, ErrAADMismatch and
// ErrMalformed also match hsm.ErrTampered.
func (s *Sealer) Unseal(aad, sealedData []byte) ([]byte, error) {
	if len(aad) == 0 {
		return nil, hsmErrorf(hsm.ErrAADRequired, "unseal: %v", hsm.ErrAADRequired)
	}
	b, err := parseSealed(sealedData)
	if err != nil {
		return nil, err
	}
	return s.open(aad, b, true)
}

// open unseals a parsed blob. checkPCRs compares the recorded PCR values
// with the current ones first, for a precise error; tests turn it off to
// show the TPM enforces the policy by itself.
func (s *Sealer) open(aad []byte, b *sealed, checkPCRs bool) ([]byte, error) {
	if got := aadDigest(aad); string(got) != string(b.aadDigest) {
		return nil, classErrorf(ErrAADMismatch, nil, "unseal: blob was sealed with other associated data (another party, key, epoch or kind)")
	}
	if !slices.Equal(b.pcrs, s.pcrs) {
		return nil, classErrorf(ErrPolicy, nil, "pcr policy failed: blob is sealed under pcrs %s, this sealer's policy is pcrs %s", pcrList(b.pcrs), pcrList(s.pcrs))
	}
	policy, err := policyDigest(b.pcrs, b.values)
	if err != nil {
		return nil, fmt.Errorf("tpm: unseal: compute pcr policy: %w", err)
	}
	if err := checkPublic(b.public, policy); err != nil {
		return nil, err
	}
	key, err := s.tpm.unsealKey(b, checkPCRs)
	defer clear(key)
	if err != nil {
		return nil, err
	}
	aead, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	pt, err := aead.Open(nil, b.nonce, b.ciphertext, gcmAAD(b.header, aad))
	if err != nil {
		return nil, classErrorf(ErrTampered, nil, "unseal: ciphertext or header failed AES-GCM authentication: the blob was modified")
	}
	return pt, nil
}

// unsealKey loads the sealed object and unseals the data key through a
// policy session running TPM2_PolicyPCR over the current PCR values.
func (t *TPM) unsealKey(b *sealed, checkPCRs bool) ([]byte, error) {
	var key []byte
	err := t.do(func(rw transport.TPM) error {
		srk, err := t.storageRoot(rw)
		if err != nil {
			return err
		}
		if checkPCRs {
			cur, err := t.readPCRs(rw, b.pcrs)
			if err != nil {
				return err
			}
			if d := pcrDiff(b.pcrs, b.values, cur); d != "" {
				return classErrorf(ErrPolicy, nil, "pcr policy failed: %s; the measured state of this machine (boot chain or enclave binary) changed since sealing, or the blob was sealed on another machine", d)
			}
		}
		loaded, err := tpm2.Load{
			ParentHandle: tpm2.AuthHandle{Handle: srk.handle, Name: srk.name, Auth: tpm2.PasswordAuth(nil)},
			InPrivate:    tpm2.TPM2BPrivate{Buffer: b.private},
			InPublic:     tpm2.BytesAs2B[tpm2.TPMTPublic](b.public),
		}.Execute(rw)
		if err != nil {
			var rc tpm2.TPMRC
			if errors.As(err, &rc) && !rc.IsWarning() {
				return classErrorf(ErrTampered, err, "unseal: TPM %q refused to load the sealed key: sealed by another TPM (or simulator seed) or under another storage key, or modified", t.path)
			}
			return t.deviceError("TPM2_Load(sealed data key)", err)
		}
		defer tpm2.FlushContext{FlushHandle: loaded.ObjectHandle}.Execute(rw)

		sel := pcr.SHA256Selection(b.pcrs)
		policy := func(tp transport.TPM, h tpm2.TPMISHPolicy, _ tpm2.TPM2BNonce) error {
			// An empty pcrDigest makes the TPM use the PCRs' current values;
			// TPM2_Unseal then fails unless they give the object's policy.
			_, err := tpm2.PolicyPCR{PolicySession: h, Pcrs: sel}.Execute(tp)
			return err
		}
		// The data key comes back encrypted (EncryptOut) under a session
		// salted to the SRK.
		rsp, err := tpm2.Unseal{ItemHandle: tpm2.AuthHandle{
			Handle: loaded.ObjectHandle,
			Name:   loaded.Name,
			Auth:   tpm2.Policy(tpm2.TPMAlgSHA256, 16, policy, tpm2.Salted(srk.handle, srk.pub), tpm2.AESEncryption(128, tpm2.EncryptOut)),
		}}.Execute(rw)
		if err != nil {
			if errors.Is(err, tpm2.TPMRCPolicyFail) || errors.Is(err, tpm2.TPMRCPCRChanged) {
				return classErrorf(ErrPolicy, err, "pcr policy failed: TPM %q refused to unseal: pcrs %s no longer have the values the blob was sealed under", t.path, pcrList(b.pcrs))
			}
			return t.deviceError("TPM2_Unseal(sealed data key)", err)
		}
		key = rsp.OutData.Buffer
		return nil
	})
	if err != nil {
		clear(key)
		return nil, err
	}
	if len(key) != dataKeySize {
		clear(key)
		return nil, classErrorf(ErrTampered, nil, "unseal: sealed object holds %d bytes, want a %d-byte data key", len(key), dataKeySize)
	}
	return key, nil
}
