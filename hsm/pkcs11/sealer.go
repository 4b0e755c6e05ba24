//go:build cgo && !nopkcs11

package pkcs11

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	p11 "github.com/miekg/pkcs11"

	"github.com/sealsign/sealsign/hsm"
)

// Sealed-data layout written by Sealer.Seal:
//
//	version (1 byte) || iv (12 bytes) || ciphertext || tag (16 bytes)
//
// The version byte is also prepended to the GCM associated data, so it is
// authenticated along with the caller's aad.
const (
	sealVersion = 1
	ivSize      = 12
	tagSize     = 16
	keyBytes    = 32 // AES-256
	// sealOverhead is what Seal adds to the plaintext.
	sealOverhead = 1 + ivSize + tagSize
)

// Sealer seals with an AES-256 key that lives in the token and cannot leave
// it: CKM_AES_GCM, a 96-bit IV drawn from the token's C_GenerateRandom for
// every call, a 128-bit tag. Random 96-bit IVs keep the probability of an
// IV repeat under 2^-32 for up to 2^32 seals per key (NIST SP 800-38D
// §8.3); rotate to a new key label long before that.
//
// A Sealer is safe for concurrent use and valid until its Token is closed or
// its key destroyed.
type Sealer struct {
	tok   *Token
	key   p11.ObjectHandle
	label string
}

var _ hsm.Sealer = (*Sealer)(nil)

// Label is the key's CKA_LABEL.
func (s *Sealer) Label() string { return s.label }

// Sealer returns a Sealer for the AES key labelled label. If no such key
// exists it fails with ErrKeyMissing, unless create is set: then it generates
// one with CKM_AES_KEY_GEN as a token object that is private, sensitive and
// not extractable, usable only to encrypt and decrypt (no wrap, unwrap,
// derive, sign) and not modifiable afterwards.
//
// An existing key is used only if it is an AES-256 token object, private,
// allows encrypt and decrypt, and is — and always was — sensitive and not
// extractable; otherwise the error wraps ErrKeyUnsafe. Two keys with the same label are an error.
// Creation is serialised within this process only; create keys from one
// process (sealsign dev up, an enclave's first boot).
func (t *Token) Sealer(label string, create bool) (*Sealer, error) {
	if label == "" {
		return nil, classErrorf(ErrKeyMissing, nil, "empty key label")
	}
	t.keyMu.Lock()
	defer t.keyMu.Unlock()
	var key p11.ObjectHandle
	err := t.do(func(sh p11.SessionHandle) error {
		keys, err := t.findKeys(sh, label)
		if err != nil {
			return err
		}
		switch {
		case len(keys) > 1:
			return classErrorf(ErrKeyUnsafe, nil, "%d AES keys labelled %q on token %q; labels must be unique, destroy the extra ones", len(keys), label, t.label)
		case len(keys) == 1:
			key = keys[0]
			return t.checkKey(sh, key, label)
		case !create:
			return classErrorf(ErrKeyMissing, nil, "key missing: no AES key labelled %q on token %q (create it with Sealer(label, true), as sealsign dev up does)", label, t.label)
		}
		key, err = t.generateKey(sh, label)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &Sealer{tok: t, key: key, label: label}, nil
}

// DestroyKey destroys every AES key labelled label on the token. Whatever was
// sealed under it becomes unreadable for good (crypto-shredding). Sealers
// for the key must not be used afterwards; they fail with ErrKeyMissing.
func (t *Token) DestroyKey(label string) error {
	t.keyMu.Lock()
	defer t.keyMu.Unlock()
	return t.do(func(sh p11.SessionHandle) error {
		keys, err := t.findKeys(sh, label)
		if err != nil {
			return err
		}
		if len(keys) == 0 {
			return classErrorf(ErrKeyMissing, nil, "key missing: no AES key labelled %q on token %q to destroy", label, t.label)
		}
		for _, k := range keys {
			if err := t.mod.ctx.DestroyObject(sh, k); err != nil {
				return classErrorf(ErrToken, call("C_DestroyObject", err), "destroy key %q on token %q", label, t.label)
			}
		}
		return nil
	})
}

// maxKeysPerLabel bounds a key search; more than one is already an error.
const maxKeysPerLabel = 16

func (t *Token) findKeys(sh p11.SessionHandle, label string) ([]p11.ObjectHandle, error) {
	ctx := t.mod.ctx
	tmpl := []*p11.Attribute{
		p11.NewAttribute(p11.CKA_CLASS, p11.CKO_SECRET_KEY),
		p11.NewAttribute(p11.CKA_KEY_TYPE, p11.CKK_AES),
		p11.NewAttribute(p11.CKA_LABEL, label),
	}
	if err := ctx.FindObjectsInit(sh, tmpl); err != nil {
		return nil, classErrorf(ErrToken, call("C_FindObjectsInit", err), "find key %q on token %q", label, t.label)
	}
	keys, _, err := ctx.FindObjects(sh, maxKeysPerLabel)
	if ferr := ctx.FindObjectsFinal(sh); err == nil && ferr != nil {
		err = ferr
	}
	if err != nil {
		return nil, classErrorf(ErrToken, call("C_FindObjects", err), "find key %q on token %q", label, t.label)
	}
	return keys, nil
}

func (t *Token) generateKey(sh p11.SessionHandle, label string) (p11.ObjectHandle, error) {
	ctx := t.mod.ctx
	// CKA_ID is random, as Vault does: labels are for people, ids for
	// tools that pair objects.
	id, err := ctx.GenerateRandom(sh, 16)
	if err != nil {
		return 0, classErrorf(ErrToken, call("C_GenerateRandom", err), "key id for %q on token %q", label, t.label)
	}
	tmpl := []*p11.Attribute{
		p11.NewAttribute(p11.CKA_CLASS, p11.CKO_SECRET_KEY),
		p11.NewAttribute(p11.CKA_KEY_TYPE, p11.CKK_AES),
		p11.NewAttribute(p11.CKA_VALUE_LEN, keyBytes),
		p11.NewAttribute(p11.CKA_LABEL, label),
		p11.NewAttribute(p11.CKA_ID, id),
		p11.NewAttribute(p11.CKA_TOKEN, true),
		p11.NewAttribute(p11.CKA_PRIVATE, true),
		p11.NewAttribute(p11.CKA_SENSITIVE, true),
		p11.NewAttribute(p11.CKA_EXTRACTABLE, false),
		p11.NewAttribute(p11.CKA_ENCRYPT, true),
		p11.NewAttribute(p11.CKA_DECRYPT, true),
		// No wrap/unwrap: the key must not move other keys in or out.
		// No derive: derivation mechanisms (e.g. CKM_CONCATENATE_BASE_AND_KEY)
		// are a known path to extracting "sensitive" key bits.
		p11.NewAttribute(p11.CKA_WRAP, false),
		p11.NewAttribute(p11.CKA_UNWRAP, false),
		p11.NewAttribute(p11.CKA_DERIVE, false),
		p11.NewAttribute(p11.CKA_SIGN, false),
		p11.NewAttribute(p11.CKA_VERIFY, false),
		// Not modifiable: nobody holding the PIN can later grant it CKA_WRAP
		// or CKA_DERIVE.
		p11.NewAttribute(p11.CKA_MODIFIABLE, false),
	}
	key, err := ctx.GenerateKey(sh, []*p11.Mechanism{p11.NewMechanism(p11.CKM_AES_KEY_GEN, nil)}, tmpl)
	if err != nil {
		return 0, classErrorf(ErrToken, call("C_GenerateKey", err), "generate AES-256 key %q on token %q", label, t.label)
	}
	return key, nil
}

// checkKey refuses keys that could exist outside the token or cannot do the job.
func (t *Token) checkKey(sh p11.SessionHandle, key p11.ObjectHandle, label string) error {
	want := []struct {
		attr uint
		name string
		v    bool
	}{
		// A session object vanishes at logout, with everything sealed under it.
		{p11.CKA_TOKEN, "CKA_TOKEN", true},
		// A public object can be used without logging in, i.e. without the PIN.
		{p11.CKA_PRIVATE, "CKA_PRIVATE", true},
		{p11.CKA_SENSITIVE, "CKA_SENSITIVE", true},
		{p11.CKA_ALWAYS_SENSITIVE, "CKA_ALWAYS_SENSITIVE", true},
		{p11.CKA_EXTRACTABLE, "CKA_EXTRACTABLE", false},
		{p11.CKA_NEVER_EXTRACTABLE, "CKA_NEVER_EXTRACTABLE", true},
		{p11.CKA_ENCRYPT, "CKA_ENCRYPT", true},
		{p11.CKA_DECRYPT, "CKA_DECRYPT", true},
	}
	query := []*p11.Attribute{p11.NewAttribute(p11.CKA_VALUE_LEN, nil)}
	for _, w := range want {
		query = append(query, p11.NewAttribute(w.attr, nil))
	}
	attrs, err := t.mod.ctx.GetAttributeValue(sh, key, query)
	if err != nil {
		return classErrorf(ErrToken, call("C_GetAttributeValue", err), "inspect key %q on token %q", label, t.label)
	}
	var problems []string
	if n := ulong(attrs[0].Value); n != keyBytes {
		problems = append(problems, fmt.Sprintf("it is %d bits, want 256", n*8))
	}
	for i, w := range want {
		v := attrs[i+1].Value
		if got := len(v) == 1 && v[0] != 0; got != w.v {
			problems = append(problems, fmt.Sprintf("%s=%t, want %t", w.name, got, w.v))
		}
	}
	if len(problems) > 0 {
		return classErrorf(ErrKeyUnsafe, nil, "key %q on token %q: %s; sealsign seals only under private AES-256 token keys generated as sensitive and never extractable — use a new label and let sealsign create the key", label, t.label, strings.Join(problems, ", "))
	}
	return nil
}

// ulong decodes a CK_ULONG attribute value (native byte order).
func ulong(b []byte) uint64 {
	switch len(b) {
	case 8:
		return binary.NativeEndian.Uint64(b)
	case 4:
		return uint64(binary.NativeEndian.Uint32(b))
	}
	return 0
}

// gcmAAD is the associated data given to the token: version byte || aad.
func gcmAAD(aad []byte) []byte {
	return append([]byte{sealVersion}, aad...)
}

// Seal encrypts plaintext inside the token, authenticating aad (which must
// be non-empty). Output: version || iv || ciphertext || tag.
func (s *Sealer) Seal(aad, plaintext []byte) ([]byte, error) {
	if len(aad) == 0 {
		return nil, fmt.Errorf("pkcs11: seal with key %q: %w", s.label, hsm.ErrAADRequired)
	}
	if len(plaintext) > hsm.MaxBlobSize {
		return nil, fmt.Errorf("pkcs11: seal with key %q: plaintext is %d bytes, limit is %d", s.label, len(plaintext), hsm.MaxBlobSize)
	}
	ctx := s.tok.mod.ctx
	var out []byte
	err := s.tok.do(func(sh p11.SessionHandle) error {
		iv, err := ctx.GenerateRandom(sh, ivSize)
		if err != nil {
			return s.opError("C_GenerateRandom", err)
		}
		params := p11.NewGCMParams(iv, gcmAAD(aad), tagSize*8)
		// miekg/pkcs11 keeps the C copy of the IV and AAD alive until Free,
		// so a token that writes its own IV back can be read afterwards.
		defer params.Free()
		if err := ctx.EncryptInit(sh, []*p11.Mechanism{p11.NewMechanism(p11.CKM_AES_GCM, params)}, s.key); err != nil {
			return s.opError("C_EncryptInit", err)
		}
		ct, err := ctx.Encrypt(sh, plaintext)
		if err != nil {
			return s.opError("C_Encrypt", err)
		}
		// Some HSMs (AWS CloudHSM) ignore the caller's IV and use their own;
		// store the IV actually used.
		used := params.IV()
		if len(used) != ivSize {
			return classErrorf(ErrToken, nil, "seal with key %q on token %q: token reports a %d-byte IV, want %d", s.label, s.tok.label, len(used), ivSize)
		}
		if len(ct) != len(plaintext)+tagSize {
			return classErrorf(ErrToken, nil, "seal with key %q on token %q: C_Encrypt returned %d bytes for %d bytes of plaintext, want plaintext+%d (tag)", s.label, s.tok.label, len(ct), len(plaintext), tagSize)
		}
		out = make([]byte, 0, sealOverhead+len(plaintext))
		out = append(out, sealVersion)
		out = append(out, used...)
		out = append(out, ct...)
		return nil
	})
	return out, err
}

// Unseal authenticates and decrypts sealed under aad. Failed authentication
// (modified or truncated data, other aad, other key) wraps hsm.ErrTampered.
func (s *Sealer) Unseal(aad, sealed []byte) ([]byte, error) {
	if len(aad) == 0 {
		return nil, fmt.Errorf("pkcs11: unseal with key %q: %w", s.label, hsm.ErrAADRequired)
	}
	if len(sealed) < sealOverhead {
		return nil, fmt.Errorf("pkcs11: sealed data is %d bytes, shorter than the %d-byte minimum: %w", len(sealed), sealOverhead, hsm.ErrTampered)
	}
	if sealed[0] != sealVersion {
		return nil, fmt.Errorf("pkcs11: sealed data has format version %d, this build reads version %d: %w", sealed[0], sealVersion, hsm.ErrUnknownVersion)
	}
	if len(sealed) > hsm.MaxBlobSize {
		return nil, fmt.Errorf("pkcs11: sealed data is %d bytes, limit is %d: %w", len(sealed), hsm.MaxBlobSize, hsm.ErrMalformed)
	}
	ctx := s.tok.mod.ctx
	var pt []byte
	err := s.tok.do(func(sh p11.SessionHandle) error {
		params := p11.NewGCMParams(sealed[1:1+ivSize], gcmAAD(aad), tagSize*8)
		defer params.Free()
		if err := ctx.DecryptInit(sh, []*p11.Mechanism{p11.NewMechanism(p11.CKM_AES_GCM, params)}, s.key); err != nil {
			return s.opError("C_DecryptInit", err)
		}
		out, err := ctx.Decrypt(sh, sealed[1+ivSize:])
		if err != nil {
			if authFailure(err) {
				return fmt.Errorf("pkcs11: unseal with key %q on token %q: %w: %w", s.label, s.tok.label, call("C_Decrypt", err), hsm.ErrTampered)
			}
			return s.opError("C_Decrypt", err)
		}
		pt = out
		return nil
	})
	return pt, err
}

// authFailure reports whether C_Decrypt's error means the GCM tag did not
// verify. The standard answers are CKR_ENCRYPTED_DATA_INVALID and
// CKR_ENCRYPTED_DATA_LEN_RANGE; SoftHSM 2.6.1 answers a tag mismatch with
// CKR_GENERAL_ERROR (its OpenSSL decryptFinal failure is not mapped), so that
// counts too — only for C_Decrypt after a successful C_DecryptInit.
func authFailure(err error) bool {
	for _, rv := range []uint{p11.CKR_ENCRYPTED_DATA_INVALID, p11.CKR_ENCRYPTED_DATA_LEN_RANGE, p11.CKR_GENERAL_ERROR} {
		if errors.Is(err, p11.Error(rv)) {
			return true
		}
	}
	return false
}

func (s *Sealer) opError(fn string, err error) error {
	if errors.Is(err, p11.Error(p11.CKR_KEY_HANDLE_INVALID)) || errors.Is(err, p11.Error(p11.CKR_OBJECT_HANDLE_INVALID)) {
		return classErrorf(ErrKeyMissing, call(fn, err), "key missing: key %q on token %q no longer exists (destroyed?)", s.label, s.tok.label)
	}
	return classErrorf(ErrToken, call(fn, err), "key %q on token %q", s.label, s.tok.label)
}
