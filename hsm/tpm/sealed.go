package tpm

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/google/go-tpm/tpm2"

	"github.com/sealsign/sealsign/hsm"
	"github.com/sealsign/sealsign/hsm/tpm/pcr"
)

// Sealed-data layout written by Sealer.Seal (all integers big-endian):
//
//	version          1 byte, 1
//	pcr selection    3 bytes, PC Client bitmap: bit j of byte i is PCR 8i+j
//	pcr values       32 bytes per selected PCR, ascending: the SHA-256 values
//	                 the policy was computed from (public: anyone can read PCRs)
//	aad digest       32 bytes, SHA-256(aadContext ‖ aad)
//	public           TPM2B_PUBLIC of the sealed object: uint16 size ‖ TPMT_PUBLIC
//	private          TPM2B_PRIVATE of the sealed object: uint16 size ‖ bytes
//	nonce            12 bytes
//	ciphertext       AES-256-GCM(data key, nonce, plaintext) ‖ 16-byte tag
//
// The sealed object is a TPM keyed-hash data object holding the 32-byte data
// key, under the storage root key, usable only through a policy session
// satisfying TPM2_PolicyPCR over the selection at the recorded values. The
// GCM associated data is gcmContext ‖ header (everything before the
// ciphertext) ‖ aad, so every header byte is authenticated under the data
// key. The pcr values and aad digest are stored only to name what differs
// when unsealing fails; the TPM and GCM decide.
//
// Evolution rule: a new layout gets a new version byte; Unseal keeps
// reading every version ever written.
const (
	sealVersion   = 1
	selectSize    = NumPCRs / 8
	pcrValueSize  = sha256.Size
	aadDigestSize = sha256.Size
	nonceSize     = 12
	tagSize       = 16
	dataKeySize   = 32 // AES-256

	// maxPublicSize bounds the sealed object's public area. Ours is 78
	// bytes; the bound leaves room without letting a blob carry junk.
	maxPublicSize = 256
	// maxPrivateSize bounds TPM2B_PRIVATE; a sealed 32-byte key needs about
	// 130 bytes on the reference TPM.
	maxPrivateSize = 512
	// maxHeaderSize is the largest header a valid blob can have.
	maxHeaderSize = 1 + selectSize + NumPCRs*pcrValueSize + aadDigestSize + 2 + maxPublicSize + 2 + maxPrivateSize + nonceSize
	// MaxSealedSize bounds what Unseal reads: the header and a ciphertext
	// of up to hsm.MaxBlobSize plaintext bytes.
	MaxSealedSize = maxHeaderSize + hsm.MaxBlobSize + tagSize

	aadContext = "sealsign/hsm/tpm aad v1\x00"
	gcmContext = "sealsign/hsm/tpm sealed v1\x00"
)

// sealed is a parsed blob. Slices alias the input.
type sealed struct {
	pcrs       []int    // ascending
	values     [][]byte // SHA-256 value of each pcr at seal time
	aadDigest  []byte
	public     []byte // TPMT_PUBLIC (contents of the TPM2B_PUBLIC)
	private    []byte // contents of the TPM2B_PRIVATE
	nonce      []byte
	header     []byte // everything before the ciphertext
	ciphertext []byte
}

func aadDigest(aad []byte) []byte {
	h := sha256.New()
	h.Write([]byte(aadContext))
	h.Write(aad)
	return h.Sum(nil)
}

func gcmAAD(header, aad []byte) []byte {
	out := make([]byte, 0, len(gcmContext)+len(header)+len(aad))
	out = append(out, gcmContext...)
	out = append(out, header...)
	return append(out, aad...)
}

// marshalHeader writes everything but the ciphertext.
func (b *sealed) marshalHeader() []byte {
	out := make([]byte, 0, maxHeaderSize)
	out = append(out, sealVersion)
	out = append(out, pcr.Mask(b.pcrs)...)
	for _, v := range b.values {
		out = append(out, v...)
	}
	out = append(out, b.aadDigest...)
	out = binary.BigEndian.AppendUint16(out, uint16(len(b.public)))
	out = append(out, b.public...)
	out = binary.BigEndian.AppendUint16(out, uint16(len(b.private)))
	out = append(out, b.private...)
	return append(out, b.nonce...)
}

// reader consumes a byte slice, recording the first shortfall.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) take(n int, what string) []byte {
	if r.err != nil {
		return nil
	}
	if n > len(r.b)-r.off {
		r.err = classErrorf(ErrMalformed, nil, "malformed sealed data: truncated in %s at offset %d: want %d more bytes, got %d", what, r.off, n, len(r.b)-r.off)
		return nil
	}
	s := r.b[r.off : r.off+n : r.off+n]
	r.off += n
	return s
}

func (r *reader) sized(max int, what string) []byte {
	sz := r.take(2, what+" size")
	if r.err != nil {
		return nil
	}
	n := int(binary.BigEndian.Uint16(sz))
	if n == 0 || n > max {
		r.err = classErrorf(ErrMalformed, nil, "malformed sealed data: %s is %d bytes, want 1..%d", what, n, max)
		return nil
	}
	return r.take(n, what)
}

// parseSealed decodes a blob without touching the TPM. It never panics;
// every error wraps ErrMalformed (hence hsm.ErrMalformed and
// hsm.ErrTampered) or hsm.ErrUnknownVersion.
func parseSealed(data []byte) (*sealed, error) {
	if len(data) == 0 {
		return nil, classErrorf(ErrMalformed, nil, "malformed sealed data: empty")
	}
	if len(data) > MaxSealedSize {
		return nil, classErrorf(ErrMalformed, nil, "malformed sealed data: %d bytes, limit is %d", len(data), MaxSealedSize)
	}
	if data[0] != sealVersion {
		return nil, hsmErrorf(hsm.ErrUnknownVersion, "sealed data has format version %d, this build reads version %d", data[0], sealVersion)
	}
	r := &reader{b: data, off: 1}
	mask := r.take(selectSize, "pcr selection")
	var b sealed
	if r.err == nil {
		for i := 0; i < NumPCRs; i++ {
			if mask[i/8]&(1<<(i%8)) != 0 {
				b.pcrs = append(b.pcrs, i)
			}
		}
		if len(b.pcrs) == 0 {
			return nil, classErrorf(ErrMalformed, nil, "malformed sealed data: empty pcr selection")
		}
	}
	for range b.pcrs {
		b.values = append(b.values, r.take(pcrValueSize, "pcr values"))
	}
	b.aadDigest = r.take(aadDigestSize, "aad digest")
	b.public = r.sized(maxPublicSize, "sealed object public area")
	b.private = r.sized(maxPrivateSize, "sealed object private area")
	b.nonce = r.take(nonceSize, "nonce")
	if r.err != nil {
		return nil, r.err
	}
	b.header = data[:r.off:r.off]
	b.ciphertext = data[r.off:]
	if len(b.ciphertext) < tagSize {
		return nil, classErrorf(ErrMalformed, nil, "malformed sealed data: truncated ciphertext: want at least the %d-byte tag, got %d bytes", tagSize, len(b.ciphertext))
	}
	return &b, nil
}

// policyDigest is the TPM2_PolicyPCR policy digest (TPM 2.0 Part 3,
// §23.7) for the sorted pcrs at values, from an empty SHA-256 policy.
func policyDigest(pcrs []int, values [][]byte) ([]byte, error) {
	h := sha256.New()
	for _, v := range values {
		h.Write(v)
	}
	calc, err := tpm2.NewPolicyCalculator(tpm2.TPMAlgSHA256)
	if err != nil {
		return nil, err
	}
	cmd := tpm2.PolicyPCR{PcrDigest: tpm2.TPM2BDigest{Buffer: h.Sum(nil)}, Pcrs: pcr.SHA256Selection(pcrs)}
	if err := cmd.Update(calc); err != nil {
		return nil, err
	}
	return calc.Hash().Digest, nil
}

// sealedTemplate is the public area of a sealed data key: a keyed-hash data
// object that cannot leave this TPM or its parent, and that only a policy
// session can use (userWithAuth clear), the policy being policy.
func sealedTemplate(policy []byte) tpm2.TPMTPublic {
	return tpm2.TPMTPublic{
		Type:    tpm2.TPMAlgKeyedHash,
		NameAlg: tpm2.TPMAlgSHA256,
		ObjectAttributes: tpm2.TPMAObject{
			FixedTPM:        true,
			FixedParent:     true,
			UserWithAuth:    false,
			AdminWithPolicy: true,
			NoDA:            true,
		},
		AuthPolicy: tpm2.TPM2BDigest{Buffer: policy},
		Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgKeyedHash, &tpm2.TPMSKeyedHashParms{
			Scheme: tpm2.TPMTKeyedHashScheme{Scheme: tpm2.TPMAlgNull},
		}),
		Unique: tpm2.NewTPMUPublicID(tpm2.TPMAlgKeyedHash, &tpm2.TPM2BDigest{}),
	}
}

// checkPublic accepts exactly the public area the TPM returns for
// sealedTemplate(policy): the template with a 32-byte unique (the digest
// the TPM computes over the object's seed and data). Comparing bytes keeps
// untrusted input away from go-tpm's reflective unmarshaller, and refuses
// sealed objects with any other policy or attribute — one usable without
// the PCR policy in particular.
func checkPublic(pub, policy []byte) error {
	want := tpm2.Marshal(sealedTemplate(policy))
	prefix := want[:len(want)-2] // template minus its empty unique
	unique := []byte{0, sha256.Size}
	if len(pub) != len(prefix)+2+sha256.Size || !bytes.HasPrefix(pub, prefix) || !bytes.Equal(pub[len(prefix):len(prefix)+2], unique) {
		return classErrorf(ErrTampered, nil, "sealed object public area is not a sealsign data key under this PCR policy (%d bytes, want %d)", len(pub), len(prefix)+2+sha256.Size)
	}
	return nil
}

// pcrList formats PCR indices for errors: "[7 16]".
func pcrList(pcrs []int) string {
	s := make([]string, len(pcrs))
	for i, p := range pcrs {
		s[i] = fmt.Sprint(p)
	}
	return "[" + strings.Join(s, " ") + "]"
}

// pcrDiff names every PCR whose current value differs from the sealed one.
func pcrDiff(pcrs []int, sealedVals, current [][]byte) string {
	var d []string
	for i, p := range pcrs {
		if !bytes.Equal(sealedVals[i], current[i]) {
			d = append(d, fmt.Sprintf("pcr %d (sha256) is %s, sealed under %s", p, hex.EncodeToString(current[i]), hex.EncodeToString(sealedVals[i])))
		}
	}
	return strings.Join(d, "; ")
}
