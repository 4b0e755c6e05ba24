// Package backup is the format of a party's encrypted share backup and the
// checks anyone can run on it without decrypting it.
//
// A backup is made inside the enclave of the party whose share it holds,
// under an admin-quorum backup ceremony. It is a File: a Header naming the
// key, the party, every party's public share point and the SHA-256 of the
// share record; the share record (a Share) encrypted under a random data
// key; per offline recovery key the header names (the ceremony's
// recipients, each a manifest governance recovery key), an HPKE ciphertext
// of one XOR part of that data key; and the enclave's Ed25519 signature
// over header and ciphertexts together with an attestation document whose
// public_key is the enclave's identity (naming that signing key), whose
// user_data is the manifest hash and whose nonce is the header hash. An
// auditor verifies who made a backup, of what, and for whom (Verify) with
// the manifest alone; opening it takes every recipient's recovery key
// together (Open): the parts are an n-of-n split, so no one recovery key
// holder, nor any coalition short of all of them, learns anything of the
// share, even holding every backup file the untrusted host passed along.
//
// # Encryption
//
// Make draws a 32-byte data key K and encrypts the share record with
// ChaCha20-Poly1305 under K, nonce zero (K encrypts one message only),
// associated data DomainShareAEAD, a zero byte and the header hash. For
// recipients r_1..r_n (the header's order) it draws random 32-byte parts
// P_1..P_{n-1} and sets P_n = K ⊕ P_1 ⊕ … ⊕ P_{n-1}; P_i is HPKE-sealed to
// r_i's key with info binding the header hash and r_i's id, KEM and public
// key, so a part moved to another backup or another recipient fails to
// open.
//
// # Wire format
//
// Everything is canonical CBOR (governance/canon): strict on input (no
// unknown fields, no duplicate keys, one accepted encoding), so a signed or
// hashed value has exactly one byte string.
//
// # Backwards compatibility
//
// File, Header and Share are format 2. Fields are appended only; a CBOR key
// is never reused or given a new meaning within a format; unknown fields
// are refused, so a reader never ignores a restriction it does not
// understand. Format 1 (each recipient's ciphertext held the whole share,
// so any one recovery key opened it) was never deployed and is refused
// with a message saying so.
package backup

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"regexp"
	"slices"

	"github.com/sealsign/sealsign/enclave/api"
	"github.com/sealsign/sealsign/governance/canon"
	"github.com/sealsign/sealsign/governance/keys"
)

// Formats of File, Header and Share.
const (
	// FormatV1 is the retired format 1, refused: any one recovery key
	// opened it.
	FormatV1 = 1
	// FormatV2 is the only format accepted and made.
	FormatV2 = 2
)

// Domains. Every signature and HPKE info is domain-separated.
const (
	// DomainSignature labels the enclave's signature over a backup.
	DomainSignature = "sealsign/v1/backup/signature"
	domainHeader    = "sealsign/v1/backup/header"
	domainRecipient = "sealsign/v1/backup/hpke-info"
	domainEnclave   = "sealsign/v1/backup/recover-hpke-info"
	// DomainShareAEAD labels the associated data of the share record's
	// encryption under the data key.
	DomainShareAEAD = "sealsign/v2/backup/share-aead"
)

// Limits, central so a reviewer sees every bound in one place.
const (
	// MaxSize bounds an encoded File (canon's own limit).
	MaxSize = canon.MaxSize
	// MaxParties matches the manifest's bound on parties.
	MaxParties = 16
	// MaxRecipients matches ceremony.MaxRecipients.
	MaxRecipients = 8
	// MaxShare bounds a Share's encoding: tss-lib ECDSA save data carries
	// every party's Paillier and ring-Pedersen parameters (2048-bit
	// numbers), about 10 KiB a party.
	MaxShare = 256 << 10
	// MaxAttestation bounds the attestation document (NSM or TPM evidence).
	MaxAttestation = 32 << 10
	// DataKeySize is the size of the data key and of each of its parts.
	DataKeySize = 32
	// maxPartCiphertext bounds an HPKE-sealed part: the KEM's encapsulated
	// key (1120 bytes for ML-KEM-768-X25519), the part and the tag.
	maxPartCiphertext = 2048
)

// Errors, for errors.Is. Each returned error adds what was expected and
// what was found; none carries share bytes.
var (
	ErrMalformed    = errors.New("backup: malformed")
	ErrSignature    = errors.New("backup: signature invalid")
	ErrAttestation  = errors.New("backup: attestation invalid")
	ErrInconsistent = errors.New("backup: header inconsistent")
	ErrRecipients   = errors.New("backup: recipients")
	ErrDecrypt      = errors.New("backup: decryption failed")
	ErrShare        = errors.New("backup: share does not match the header")
	ErrManifest     = errors.New("backup: not of this manifest")
)

var (
	partyPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)
	keyIDPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)
)

// PublicShare is one party's public share point: its tss-lib share id (the
// polynomial's x, big-endian) and x_j·G, encoded as the key's algorithm
// encodes public keys (secp256k1 compressed, 33 bytes; Ed25519, 32 bytes).
//
// Append fields only.
type PublicShare struct {
	ShareID []byte `cbor:"1,keyasint" json:"share_id"`
	Point   []byte `cbor:"2,keyasint" json:"point"`
}

// Header is what a backup is of. Its canonical encoding is signed, hashed
// into every HPKE info and the share's associated data, and attested
// (nonce = HeaderHash), so no ciphertext can be moved under another header.
//
// Format 2. Append fields only.
type Header struct {
	Format       uint64 `cbor:"1,keyasint" json:"format"`
	ClusterID    string `cbor:"2,keyasint" json:"cluster_id"`
	ManifestHash []byte `cbor:"3,keyasint" json:"manifest_hash"`
	KeyID        string `cbor:"4,keyasint" json:"key_id"`
	Algorithm    string `cbor:"5,keyasint" json:"algorithm"`
	Epoch        uint64 `cbor:"6,keyasint" json:"epoch"`
	// Party is the party whose share this is; Threshold and Parties are
	// the key's.
	Party     string   `cbor:"7,keyasint" json:"party"`
	Threshold int      `cbor:"8,keyasint" json:"threshold"`
	Parties   []string `cbor:"9,keyasint" json:"parties"`
	PublicKey []byte   `cbor:"10,keyasint" json:"public_key"`
	// ShareID and Point are this party's share id and public share point;
	// they are one of Shares.
	ShareID []byte `cbor:"11,keyasint" json:"share_id"`
	Point   []byte `cbor:"12,keyasint" json:"point"`
	// Shares are every party's public share points, in tss-lib's order
	// (its BigXj and Ks): any Threshold+1 of them interpolate to PublicKey.
	Shares []PublicShare `cbor:"13,keyasint" json:"shares"`
	// Recipients are the recovery key ids the share is encrypted to
	// (sorted, unique), the backup ceremony's.
	Recipients []string `cbor:"14,keyasint" json:"recipients"`
	CreatedMS  int64    `cbor:"15,keyasint" json:"created_ms"`
	// CeremonyID is the backup ceremony that authorised it.
	CeremonyID string `cbor:"16,keyasint" json:"ceremony_id"`
	// ShareHash is SHA-256 of the exact share-record plaintext the enclave
	// encrypted (ShareHash). Whoever restores a share must present exactly
	// those bytes: the header's points check the secret share and public
	// shares, this checks the rest (Paillier keys, NTilde, H1/H2, every
	// peer's keys, the chain code) that the recovery operator handles.
	ShareHash []byte `cbor:"17,keyasint" json:"share_hash"`
}

// Ciphertext is one recipient's part of the data key, HPKE-sealed to its
// recovery key: the KEM's encapsulated key followed by the AEAD ciphertext
// of the DataKeySize-byte part (crypto/hpke Seal).
//
// Append fields only.
type Ciphertext struct {
	Recipient  string `cbor:"1,keyasint"`
	KEM        string `cbor:"2,keyasint"`
	Ciphertext []byte `cbor:"3,keyasint"`
}

// File is a backup as stored and moved.
//
// Format 2. Append fields only.
type File struct {
	Format uint64 `cbor:"1,keyasint"`
	Header []byte `cbor:"2,keyasint"` // canonical encoding of a Header
	// Ciphertexts are the sealed data key parts, in Recipients order.
	Ciphertexts []Ciphertext `cbor:"3,keyasint"`
	// Attestation is the making enclave's attestation document: public_key
	// = its api.Identity encoding, user_data = Header.ManifestHash, nonce =
	// HeaderHash(Header).
	Attestation []byte `cbor:"4,keyasint"`
	// Signature is Ed25519 by the attested identity's signing key over
	// DomainSignature, a zero byte and the canonical encoding of
	// {1: Header, 2: Ciphertexts, 3: Sealed}.
	Signature []byte `cbor:"5,keyasint"`
	// Sealed is the share record encrypted under the data key
	// (ChaCha20-Poly1305, nonce zero, associated data DomainShareAEAD, a
	// zero byte and the header hash).
	Sealed []byte `cbor:"6,keyasint"`
}

// Share is the plaintext of Sealed: the party's whole share record.
//
// Format 2. Append fields only.
type Share struct {
	Format    uint64   `cbor:"1,keyasint"`
	KeyID     string   `cbor:"2,keyasint"`
	Algorithm string   `cbor:"3,keyasint"`
	Epoch     uint64   `cbor:"4,keyasint"`
	Party     string   `cbor:"5,keyasint"`
	Threshold int      `cbor:"6,keyasint"`
	Parties   []string `cbor:"7,keyasint"`
	PublicKey []byte   `cbor:"8,keyasint"`
	// SaveData is tss-lib's LocalPartySaveData, JSON, as the enclave holds it.
	SaveData  []byte `cbor:"9,keyasint"`
	ChainCode []byte `cbor:"10,keyasint,omitempty"`
}

// HeaderHash is the digest a header is referred to by.
func HeaderHash(header []byte) []byte {
	d := canon.Digest(domainHeader, header)
	return d[:]
}

// signedPart is what the enclave signs: header and ciphertexts.
type signedPart struct {
	Header      []byte       `cbor:"1,keyasint"`
	Ciphertexts []Ciphertext `cbor:"2,keyasint"`
	Sealed      []byte       `cbor:"3,keyasint"`
}

// ShareHash is the digest Header.ShareHash holds: SHA-256 of the share
// record's canonical encoding, exactly as encrypted.
func ShareHash(share []byte) []byte {
	s := sha256.Sum256(share)
	return s[:]
}

// labelled is domain, a zero byte and data: the labelling enclave/channel
// signs with (Keys.Sign), so the enclave's identity key signs backups the
// way it signs everything else.
func labelled(domain string, data []byte) []byte {
	out := make([]byte, 0, len(domain)+1+len(data))
	out = append(out, domain...)
	out = append(out, 0)
	return append(out, data...)
}

// Encode returns the canonical encoding of f.
func (f *File) Encode() ([]byte, error) {
	b, err := canon.Marshal(f)
	if err != nil {
		return nil, fmt.Errorf("backup: encode: %w", err)
	}
	if len(b) > MaxSize {
		return nil, fmt.Errorf("%w: backup is %d bytes, limit %d", ErrMalformed, len(b), MaxSize)
	}
	return b, nil
}

// Parse decodes a backup file strictly and checks the shape of every field
// (Header.Validate); it verifies no signature and no attestation (Verify
// does). Hostile input never panics.
func Parse(b []byte) (f *File, h *Header, err error) {
	defer func() {
		if p := recover(); p != nil {
			f, h, err = nil, nil, fmt.Errorf("%w: decoder panic: %v", ErrMalformed, p)
		}
	}()
	if len(b) > MaxSize {
		return nil, nil, fmt.Errorf("%w: %d bytes, limit %d", ErrMalformed, len(b), MaxSize)
	}
	f = new(File)
	if err := canon.Unmarshal(b, f); err != nil {
		return nil, nil, fmt.Errorf("%w: file: %v", ErrMalformed, err)
	}
	if err := checkFormat("file", f.Format); err != nil {
		return nil, nil, err
	}
	if len(f.Attestation) == 0 || len(f.Attestation) > MaxAttestation {
		return nil, nil, fmt.Errorf("%w: attestation is %d bytes, want 1 to %d", ErrMalformed, len(f.Attestation), MaxAttestation)
	}
	if len(f.Signature) != 64 {
		return nil, nil, fmt.Errorf("%w: signature is %d bytes, want 64 (Ed25519)", ErrMalformed, len(f.Signature))
	}
	h = new(Header)
	if err := canon.Unmarshal(f.Header, h); err != nil {
		return nil, nil, fmt.Errorf("%w: header: %v", ErrMalformed, err)
	}
	if err := h.Validate(); err != nil {
		return nil, nil, err
	}
	if len(f.Sealed) <= aeadOverhead || len(f.Sealed) > MaxShare+aeadOverhead {
		return nil, nil, fmt.Errorf("%w: sealed share is %d bytes, want %d to %d", ErrMalformed, len(f.Sealed), aeadOverhead+1, MaxShare+aeadOverhead)
	}
	if len(f.Ciphertexts) != len(h.Recipients) {
		return nil, nil, fmt.Errorf("%w: %d ciphertexts for %d recipients (%v)", ErrRecipients, len(f.Ciphertexts), len(h.Recipients), h.Recipients)
	}
	for i, ct := range f.Ciphertexts {
		if ct.Recipient != h.Recipients[i] {
			return nil, nil, fmt.Errorf("%w: ciphertext %d is for %q, header names %q there", ErrRecipients, i, ct.Recipient, h.Recipients[i])
		}
		if _, err := api.RecoveryKEM(ct.KEM); err != nil {
			return nil, nil, fmt.Errorf("%w: ciphertext for %q: %v", ErrMalformed, ct.Recipient, err)
		}
		if len(ct.Ciphertext) <= DataKeySize || len(ct.Ciphertext) > maxPartCiphertext {
			return nil, nil, fmt.Errorf("%w: ciphertext for %q is %d bytes, want %d to %d", ErrMalformed, ct.Recipient, len(ct.Ciphertext), DataKeySize+1, maxPartCiphertext)
		}
	}
	return f, h, nil
}

// checkFormat refuses every format but FormatV2, format 1 with why.
func checkFormat(what string, f uint64) error {
	switch f {
	case FormatV2:
		return nil
	case FormatV1:
		return fmt.Errorf("%w: %s format 1 is retired (any one recovery key opened it) and not accepted; make a new backup (format %d)", ErrMalformed, what, FormatV2)
	}
	return fmt.Errorf("%w: %s format %d unsupported, want %d", ErrMalformed, what, f, FormatV2)
}

// Validate checks a header's fields on their own: names, sizes, order. It
// does not check the curve (Check does).
func (h *Header) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: header: %s", ErrMalformed, fmt.Sprintf(format, a...))
	}
	if err := checkFormat("header", h.Format); err != nil {
		return err
	}
	switch {
	case !keys.ValidName(h.ClusterID):
		return bad("cluster id %q invalid", h.ClusterID)
	case len(h.ManifestHash) != 32:
		return bad("manifest hash is %d bytes, want 32", len(h.ManifestHash))
	case !keyIDPattern.MatchString(h.KeyID):
		return bad("key id %q invalid", h.KeyID)
	case h.Algorithm != api.AlgECDSASecp256k1 && h.Algorithm != api.AlgEdDSAEd25519:
		return bad("algorithm %q unknown (want %q or %q)", h.Algorithm, api.AlgECDSASecp256k1, api.AlgEdDSAEd25519)
	case len(h.Parties) < 2 || len(h.Parties) > MaxParties:
		return bad("%d parties, want 2 to %d", len(h.Parties), MaxParties)
	case h.Threshold < 1 || h.Threshold >= len(h.Parties):
		return bad("threshold %d invalid for %d parties", h.Threshold, len(h.Parties))
	case len(h.Shares) != len(h.Parties):
		return bad("%d public shares for %d parties", len(h.Shares), len(h.Parties))
	case len(h.Recipients) < 1 || len(h.Recipients) > MaxRecipients:
		return bad("%d recipients, want 1 to %d", len(h.Recipients), MaxRecipients)
	case h.CreatedMS <= 0:
		return bad("creation time %d invalid", h.CreatedMS)
	case len(h.CeremonyID) == 0 || len(h.CeremonyID) > 64:
		return bad("ceremony id %q invalid", h.CeremonyID)
	case len(h.ShareHash) != sha256.Size:
		return bad("share hash is %d bytes, want %d", len(h.ShareHash), sha256.Size)
	}
	for i, p := range h.Parties {
		if !partyPattern.MatchString(p) {
			return bad("%q is not a party id", p)
		}
		if i > 0 && h.Parties[i-1] >= p {
			return bad("parties not sorted and unique (%q then %q)", h.Parties[i-1], p)
		}
	}
	if !slices.Contains(h.Parties, h.Party) {
		return bad("party %q is not one of the key's parties %v", h.Party, h.Parties)
	}
	for i, r := range h.Recipients {
		if !keys.ValidName(r) {
			return bad("recipient %q is not a key id", r)
		}
		if i > 0 && h.Recipients[i-1] >= r {
			return bad("recipients not sorted and unique (%q then %q)", h.Recipients[i-1], r)
		}
	}
	for i, s := range h.Shares {
		if len(s.ShareID) == 0 || len(s.ShareID) > 32 || len(s.Point) > 33 {
			return bad("public share %d: share id %d bytes, point %d bytes", i, len(s.ShareID), len(s.Point))
		}
	}
	return nil
}

// Check verifies a header's cryptographic consistency: every point is on
// the key's curve; the share ids are distinct and non-zero; the first
// Threshold+1 public shares interpolate (Lagrange at 0, in the exponent)
// to PublicKey, and every other one lies on the same polynomial; and
// (ShareID, Point) is one of them.
func (h *Header) Check() error {
	c, err := curveOf(h.Algorithm)
	if err != nil {
		return err
	}
	return c.checkShares(h)
}

// Encode returns the header's canonical encoding.
func (h *Header) Encode() ([]byte, error) {
	if err := h.Validate(); err != nil {
		return nil, err
	}
	b, err := canon.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("backup: encode header: %w", err)
	}
	return b, nil
}

// Hash returns sha-256 of b; a short, public fingerprint of a backup.
func Hash(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}
