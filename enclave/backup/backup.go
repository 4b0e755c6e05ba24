package backup

import (
	"bytes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/sealsign/sealsign/attestation/peer"
	"github.com/sealsign/sealsign/enclave/api"
	"github.com/sealsign/sealsign/governance/canon"
)

// AttestMaxAge bounds how far the attestation document's time may lie
// before the header's creation time (the enclave attests right after it
// builds the header); documents are verified as of that creation time, so
// an old backup still verifies once the document's certificates expire.
const AttestMaxAge = 5 * time.Minute

// Signer is the enclave side of Make: its identity key signs (labelled as
// enclave/channel Keys.Sign labels) and its attester attests.
type Signer interface {
	Sign(domain string, data []byte) []byte
	// Attest returns an attestation document of the enclave's identity
	// with user_data = the manifest hash and nonce as given.
	Attest(nonce []byte) ([]byte, error)
}

// aeadOverhead is the tag the share's encryption adds.
const aeadOverhead = chacha20poly1305.Overhead

// shareAEAD is the share record's cipher under data key dk, and its
// associated data for the header hash hh. dk encrypts one share only, so
// the nonce is zero.
func shareAEAD(dk, hh []byte) (cipher.AEAD, []byte, []byte, error) {
	a, err := chacha20poly1305.New(dk)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("backup: data key: %v", err)
	}
	return a, make([]byte, a.NonceSize()), labelled(DomainShareAEAD, hh), nil
}

// Make builds and signs a backup of share for h.Recipients, whose keys are
// recipients (the manifest's); h.ShareHash must be ShareHash(share). The
// share is encrypted under a fresh data key whose n-of-n XOR parts are
// sealed one to each recipient (see the package doc). share is not kept;
// the caller clears it.
func Make(h *Header, share []byte, recipients map[string]api.RecoveryKey, s Signer) ([]byte, error) {
	if len(share) > MaxShare {
		return nil, fmt.Errorf("backup: share record is %d bytes, limit %d", len(share), MaxShare)
	}
	if !bytes.Equal(h.ShareHash, ShareHash(share)) {
		return nil, fmt.Errorf("backup: the header's share hash is not SHA-256 of the share record being backed up")
	}
	if err := h.Check(); err != nil {
		return nil, err
	}
	hdr, err := h.Encode()
	if err != nil {
		return nil, err
	}
	hh := HeaderHash(hdr)
	f := &File{Format: FormatV2, Header: hdr}
	dk := make([]byte, DataKeySize)
	defer clear(dk)
	rand.Read(dk)
	a, nonce, ad, err := shareAEAD(dk, hh)
	if err != nil {
		return nil, err
	}
	f.Sealed = a.Seal(nil, nonce, share, ad)
	// last ends as dk ⊕ every earlier part: the last recipient's part.
	last := bytes.Clone(dk)
	defer clear(last)
	part := make([]byte, DataKeySize)
	defer clear(part)
	for i, id := range h.Recipients {
		if i < len(h.Recipients)-1 {
			rand.Read(part)
			subtle.XORBytes(last, last, part)
		} else {
			copy(part, last)
		}
		rk, ok := recipients[id]
		if !ok {
			return nil, fmt.Errorf("%w: recovery key %q is not in the manifest", ErrRecipients, id)
		}
		kem, err := api.RecoveryKEM(rk.KEM)
		if err != nil {
			return nil, err
		}
		pk, err := kem.NewPublicKey(rk.PublicKey)
		if err != nil {
			return nil, fmt.Errorf("backup: recovery key %q: %v", id, err)
		}
		ct, err := hpke.Seal(pk, kdf, aead, recipientInfo(hh, rk), part)
		if err != nil {
			return nil, fmt.Errorf("backup: seal to %q: %v", id, err)
		}
		f.Ciphertexts = append(f.Ciphertexts, Ciphertext{Recipient: id, KEM: rk.KEM, Ciphertext: ct})
	}
	msg, err := signedMessage(hdr, f.Ciphertexts, f.Sealed)
	if err != nil {
		return nil, err
	}
	if f.Attestation, err = s.Attest(hh); err != nil {
		return nil, fmt.Errorf("backup: attest: %w", err)
	}
	f.Signature = s.Sign(DomainSignature, msg)
	return f.Encode()
}

// recipientInfo binds a sealed part to its header and recovery key.
func recipientInfo(headerHash []byte, rk api.RecoveryKey) []byte {
	b := labelled(domainRecipient, headerHash)
	b = append(b, rk.KEM...)
	b = append(b, 0)
	b = append(b, rk.ID...)
	b = append(b, 0)
	return append(b, rk.PublicKey...)
}

func signedMessage(header []byte, cts []Ciphertext, sealed []byte) ([]byte, error) {
	b, err := canon.Marshal(signedPart{Header: header, Ciphertexts: cts, Sealed: sealed})
	if err != nil {
		return nil, fmt.Errorf("backup: encode signed part: %w", err)
	}
	return b, nil
}

// Verified is a backup that passed Verify.
type Verified struct {
	File       *File
	Header     *Header
	HeaderHash []byte
	// Identity is the attested identity of the enclave that made it.
	Identity api.Identity
	// Attested is what the attestation proved (kind, module, PCRs).
	Attested *peer.Verified
}

// Verify checks a backup without decrypting it, under manifest m: the file
// decodes strictly; it is of m (cluster id and manifest hash); its
// attestation verifies under m's policy for the header's party, as of the
// header's creation time, with nonce = the header hash and user_data = the
// manifest hash, and names that party; the attested identity's signing key
// signed header, sealed parts and sealed share; the header is consistent
// (Header.Check); and there is a sealed data key part, of the recovery
// key's KEM, for every recipient, each one of m's recovery keys. Errors
// match one of the package's Err values.
func Verify(b []byte, m *api.Manifest) (*Verified, error) {
	f, h, err := Parse(b)
	if err != nil {
		return nil, err
	}
	mh, err := m.Hash()
	if err != nil {
		return nil, err
	}
	if h.ClusterID != m.ClusterID || !bytes.Equal(h.ManifestHash, mh) {
		return nil, fmt.Errorf("%w: backup is of cluster %q manifest %x, this is cluster %q manifest %x", ErrManifest, h.ClusterID, h.ManifestHash[:8], m.ClusterID, mh[:8])
	}
	hh := HeaderHash(f.Header)
	pol, err := m.AttestationPolicy(h.Party)
	if err != nil {
		return nil, fmt.Errorf("%w: party %q: %v", ErrAttestation, h.Party, err)
	}
	// The nonce is compared after the signature, so a changed header is
	// reported as what it is (not signed) rather than as another backup's
	// attestation.
	at := time.UnixMilli(h.CreatedMS)
	v, err := peer.Verify(f.Attestation, pol, peer.Expect{UserData: mh}, at, AttestMaxAge)
	if err != nil {
		return nil, fmt.Errorf("%w: party %q: %v", ErrAttestation, h.Party, err)
	}
	var id api.Identity
	if err := api.Unmarshal(v.PublicKey, &id); err != nil {
		return nil, fmt.Errorf("%w: attested public_key is not an enclave identity: %v", ErrAttestation, err)
	}
	if id.PartyID != h.Party {
		return nil, fmt.Errorf("%w: attested identity is party %q, the header's party is %q", ErrAttestation, id.PartyID, h.Party)
	}
	if len(id.SigningKey) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: attested signing key is %d bytes", ErrAttestation, len(id.SigningKey))
	}
	msg, err := signedMessage(f.Header, f.Ciphertexts, f.Sealed)
	if err != nil {
		return nil, err
	}
	if !ed25519.Verify(id.SigningKey, labelled(DomainSignature, msg), f.Signature) {
		return nil, fmt.Errorf("%w: not made by party %q's attested enclave key %x over this header and these ciphertexts", ErrSignature, h.Party, id.SigningKey[:8])
	}
	if !bytes.Equal(v.Nonce, hh) {
		return nil, fmt.Errorf("%w: the attestation is of backup header %x, this header is %x", ErrAttestation, v.Nonce, hh)
	}
	if err := h.Check(); err != nil {
		return nil, err
	}
	var known map[string]api.RecoveryKey
	if m.Governance != nil {
		sets, err := m.Governance.Sets()
		if err != nil {
			return nil, err
		}
		known = sets.Recovery
	}
	for _, ct := range f.Ciphertexts {
		rk, ok := known[ct.Recipient]
		if !ok {
			return nil, fmt.Errorf("%w: recipient %q is not a recovery key of the manifest", ErrRecipients, ct.Recipient)
		}
		if rk.KEM != ct.KEM {
			return nil, fmt.Errorf("%w: ciphertext for %q says kem %q, the manifest's key is %q", ErrRecipients, ct.Recipient, ct.KEM, rk.KEM)
		}
	}
	return &Verified{File: f, Header: h, HeaderHash: hh, Identity: id, Attested: v}, nil
}

// Open decrypts the share with the recovery keys of every recipient the
// header names (in any order; each once, none other) and checks it against
// the header (ParseShare). Each key opens its part of the data key; the
// parts XOR to the data key, which opens the share. Missing recipients are
// named before anything is decrypted. The caller clears the returned
// share's SaveData (Share.Clear) when done.
func (v *Verified) Open(ks ...*RecoveryPrivateKey) (*Share, error) {
	byID := map[string]*RecoveryPrivateKey{}
	for _, k := range ks {
		if !slices.Contains(v.Header.Recipients, k.ID) {
			return nil, fmt.Errorf("%w: recovery key %q is not a recipient of this backup (recipients %s)", ErrRecipients, k.ID, strings.Join(v.Header.Recipients, ", "))
		}
		if _, dup := byID[k.ID]; dup {
			return nil, fmt.Errorf("%w: recovery key %q given twice", ErrRecipients, k.ID)
		}
		byID[k.ID] = k
	}
	var missing []string
	for _, r := range v.Header.Recipients {
		if byID[r] == nil {
			missing = append(missing, fmt.Sprintf("%q", r))
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%w: opening needs the recovery key of every recipient (%s); missing %s", ErrRecipients, strings.Join(v.Header.Recipients, ", "), strings.Join(missing, ", "))
	}
	dk := make([]byte, DataKeySize)
	defer clear(dk)
	for _, ct := range v.File.Ciphertexts {
		k := byID[ct.Recipient]
		if ct.KEM != k.KEM {
			return nil, fmt.Errorf("%w: ciphertext for %q is %s, the key is %s", ErrRecipients, k.ID, ct.KEM, k.KEM)
		}
		rk := api.RecoveryKey{ID: k.ID, KEM: k.KEM, PublicKey: k.key.PublicKey().Bytes()}
		part, err := hpke.Open(k.key, kdf, aead, recipientInfo(v.HeaderHash, rk), ct.Ciphertext)
		if err != nil {
			return nil, fmt.Errorf("%w: part for recovery key %q (the wrong key, or a part or header altered or from another backup)", ErrDecrypt, k.ID)
		}
		if len(part) != DataKeySize {
			clear(part)
			return nil, fmt.Errorf("%w: part for recovery key %q is %d bytes, want %d", ErrDecrypt, k.ID, len(part), DataKeySize)
		}
		subtle.XORBytes(dk, dk, part)
		clear(part)
	}
	a, nonce, ad, err := shareAEAD(dk, v.HeaderHash)
	if err != nil {
		return nil, err
	}
	pt, err := a.Open(nil, nonce, v.File.Sealed, ad)
	if err != nil {
		return nil, fmt.Errorf("%w: the recipients' parts do not open the sealed share (a part or the share altered)", ErrDecrypt)
	}
	defer clear(pt)
	return ParseShare(pt, v.Header)
}

// ParseShare decodes a share and checks it against h: its bytes are the
// ones the header's ShareHash commits to (so every field of the save data
// is the backed-up one, not only those the header describes); the same key,
// algorithm, epoch, party, committee and public key; its share id is the
// header's; its x_i·G is the header's point; and its tss-lib public shares
// (Ks, BigXj) are the header's. Errors name the field, never its secret.
func ParseShare(pt []byte, h *Header) (s *Share, err error) {
	defer func() {
		if p := recover(); p != nil {
			s, err = nil, fmt.Errorf("%w: share decoder panic", ErrShare)
		}
	}()
	if len(pt) > MaxShare {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrShare, len(pt), MaxShare)
	}
	if !bytes.Equal(ShareHash(pt), h.ShareHash) {
		return nil, fmt.Errorf("%w: the share record's SHA-256 is not the header's share hash %x: not the record the enclave backed up (a field altered)", ErrShare, h.ShareHash)
	}
	s = new(Share)
	if err := canon.Unmarshal(pt, s); err != nil {
		return nil, fmt.Errorf("%w: malformed share record", ErrShare)
	}
	if err := s.check(h); err != nil {
		s.Clear()
		return nil, err
	}
	return s, nil
}

// Encode returns the share's canonical encoding (secret: clear it).
func (s *Share) Encode() ([]byte, error) {
	b, err := canon.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("backup: encode share: %w", err)
	}
	return b, nil
}

// Clear overwrites the share's secret bytes.
func (s *Share) Clear() {
	clear(s.SaveData)
}

// saveSecrets is the part of tss-lib's LocalPartySaveData (ECDSA and EdDSA
// alike) a backup checks: JSON field names as tss-lib encodes them.
type saveSecrets struct {
	Xi, ShareID *big.Int
	Ks          []*big.Int
	BigXj       []*struct {
		Curve  string
		Coords [2]*big.Int
	}
}

func (s *Share) secrets() (*saveSecrets, error) {
	var ss saveSecrets
	if err := json.Unmarshal(s.SaveData, &ss); err != nil {
		return nil, fmt.Errorf("%w: tss-lib save data malformed", ErrShare)
	}
	if ss.Xi == nil || ss.ShareID == nil {
		return nil, fmt.Errorf("%w: tss-lib save data has no secret share", ErrShare)
	}
	return &ss, nil
}

func (s *Share) check(h *Header) error {
	var bad []string
	if s.Format != FormatV2 {
		bad = append(bad, fmt.Sprintf("format %d", s.Format))
	}
	if s.KeyID != h.KeyID || s.Algorithm != h.Algorithm || s.Epoch != h.Epoch || s.Party != h.Party {
		bad = append(bad, fmt.Sprintf("share of key %q %s epoch %d party %q, header says key %q %s epoch %d party %q", s.KeyID, s.Algorithm, s.Epoch, s.Party, h.KeyID, h.Algorithm, h.Epoch, h.Party))
	}
	if s.Threshold != h.Threshold || !slices.Equal(s.Parties, h.Parties) {
		bad = append(bad, fmt.Sprintf("committee %v t=%d, header %v t=%d", s.Parties, s.Threshold, h.Parties, h.Threshold))
	}
	if !bytes.Equal(s.PublicKey, h.PublicKey) {
		bad = append(bad, fmt.Sprintf("public key %x, header %x", s.PublicKey, h.PublicKey))
	}
	if len(bad) > 0 {
		return fmt.Errorf("%w: %v", ErrShare, bad)
	}
	ss, err := s.secrets()
	if err != nil {
		return err
	}
	defer zero(ss.Xi)
	c, err := curveOf(h.Algorithm)
	if err != nil {
		return err
	}
	if ss.ShareID.Cmp(new(big.Int).SetBytes(h.ShareID)) != 0 {
		return fmt.Errorf("%w: share id differs from the header's", ErrShare)
	}
	p, err := c.baseMult(ss.Xi)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrShare, err)
	}
	enc, err := Encode(h.Algorithm, p.X(), p.Y())
	if err != nil || !bytes.Equal(enc, h.Point) {
		return fmt.Errorf("%w: x_i·G is not the header's public share point %x", ErrShare, h.Point)
	}
	if len(ss.Ks) != len(h.Shares) || len(ss.BigXj) != len(h.Shares) {
		return fmt.Errorf("%w: save data has %d share ids and %d public shares, header %d", ErrShare, len(ss.Ks), len(ss.BigXj), len(h.Shares))
	}
	for j, hs := range h.Shares {
		x := ss.BigXj[j]
		if ss.Ks[j] == nil || x == nil || x.Coords[0] == nil || x.Coords[1] == nil || ss.Ks[j].Cmp(new(big.Int).SetBytes(hs.ShareID)) != 0 {
			return fmt.Errorf("%w: save data's share id %d differs from the header's", ErrShare, j)
		}
		enc, err := Encode(h.Algorithm, x.Coords[0], x.Coords[1])
		if err != nil || !bytes.Equal(enc, hs.Point) {
			return fmt.Errorf("%w: save data's public share %d differs from the header's", ErrShare, j)
		}
	}
	return nil
}

// enclaveInfo binds a share sealed to an enclave to the backup's header and
// to that enclave's attested identity.
func enclaveInfo(headerHash []byte, id api.Identity) ([]byte, error) {
	idb, err := api.Marshal(id)
	if err != nil {
		return nil, err
	}
	return append(labelled(domainEnclave, headerHash), idb...), nil
}

// SealToEnclave encrypts an opened share to the enclave identity id (which
// the caller took from a verified attestation of the party to restore),
// bound to the backup's header hash.
func SealToEnclave(s *Share, headerHash []byte, id api.Identity) ([]byte, error) {
	pk, err := enclaveKEM.NewPublicKey(id.HPKEKey)
	if err != nil {
		return nil, fmt.Errorf("backup: enclave %q hpke key: %v", id.PartyID, err)
	}
	pt, err := s.Encode()
	if err != nil {
		return nil, err
	}
	defer clear(pt)
	info, err := enclaveInfo(headerHash, id)
	if err != nil {
		return nil, err
	}
	return hpke.Seal(pk, kdf, aead, info, pt)
}

// Opener decrypts with an enclave's HPKE identity key (enclave/channel
// Keys.OpenSealed).
type Opener interface {
	OpenSealed(info, ciphertext []byte) ([]byte, error)
}

// OpenInEnclave is SealToEnclave's other half, inside the enclave whose
// identity is id: it decrypts and checks the share against the verified
// backup's header (ParseShare).
func (v *Verified) OpenInEnclave(o Opener, id api.Identity, ct []byte) (*Share, error) {
	info, err := enclaveInfo(v.HeaderHash, id)
	if err != nil {
		return nil, err
	}
	pt, err := o.OpenSealed(info, ct)
	if err != nil {
		return nil, fmt.Errorf("%w: the share is not sealed to this enclave for this backup", ErrDecrypt)
	}
	defer clear(pt)
	return ParseShare(pt, v.Header)
}
