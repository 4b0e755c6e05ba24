package tpm

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
)

// Limits on untrusted quote fields.
const (
	// MaxAttestSize bounds a TPMS_ATTEST; a quote is about 150 bytes.
	MaxAttestSize = 1024
	// MaxSignatureSize bounds a DER ECDSA P-256 signature (at most 72).
	MaxSignatureSize = 80
	pcrSize          = sha256.Size

	maxNameSize      = 2 + 64 // TPM2B_NAME: a TPMT_HA
	maxExtraDataSize = 2 + 64 // TPM2B_DATA: a TPMT_HA
	maxSelections    = 16
	maxSelectSize    = 8
	maxDigestSize    = 64
)

// Constants of TPM 2.0 Part 2.
const (
	tpmGeneratedValue = 0xff544347 // TPM_GENERATED_VALUE, "\xffTCG"
	tpmSTAttestQuote  = 0x8018     // TPM_ST_ATTEST_QUOTE
	tpmAlgSHA256      = 0x000b     // TPM_ALG_SHA256
)

// ClockInfo is the TPMS_CLOCK_INFO of a quote. ResetCount changes with
// every TPM reset (a reboot), so evidence from another boot shows here.
type ClockInfo struct {
	Clock        uint64 // milliseconds the TPM has been powered
	ResetCount   uint32
	RestartCount uint32
	Safe         bool
}

type pcrSelection struct {
	hash uint16
	mask []byte
}

// attestInfo is a parsed TPMS_ATTEST. body holds the TPMS_QUOTE_INFO only
// for a quote.
type attestInfo struct {
	magic           uint32
	typ             uint16
	qualifiedSigner []byte
	extraData       []byte
	clock           ClockInfo
	firmwareVersion uint64
	body            []byte

	selections []pcrSelection
	pcrDigest  []byte
}

// cursor reads big-endian TPM structures; the first shortfall sticks.
type cursor struct {
	b   []byte
	off int
	bad string
}

func (c *cursor) take(n int, what string) []byte {
	if c.bad != "" {
		return nil
	}
	if n < 0 || n > len(c.b)-c.off {
		c.bad = fmt.Sprintf("truncated in %s at offset %d", what, c.off)
		return nil
	}
	s := c.b[c.off : c.off+n : c.off+n]
	c.off += n
	return s
}

func (c *cursor) u8(what string) uint8 {
	if b := c.take(1, what); b != nil {
		return b[0]
	}
	return 0
}

func (c *cursor) u16(what string) uint16 {
	if b := c.take(2, what); b != nil {
		return binary.BigEndian.Uint16(b)
	}
	return 0
}

func (c *cursor) u32(what string) uint32 {
	if b := c.take(4, what); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

func (c *cursor) u64(what string) uint64 {
	if b := c.take(8, what); b != nil {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}

func (c *cursor) sized(max int, what string) []byte {
	n := int(c.u16(what + " size"))
	if c.bad == "" && n > max {
		c.bad = fmt.Sprintf("%s is %d bytes, limit is %d", what, n, max)
		return nil
	}
	return c.take(n, what)
}

// parseAttest parses the common TPMS_ATTEST header and keeps the
// type-specific rest in body. It never panics.
func parseAttest(b []byte) (*attestInfo, *CheckError) {
	if len(b) == 0 || len(b) > MaxAttestSize {
		return nil, malformed("attest", "size out of range", fmt.Sprintf("1..%d bytes", MaxAttestSize), fmt.Sprintf("%d bytes", len(b)), nil)
	}
	c := &cursor{b: b}
	a := &attestInfo{
		magic:           c.u32("magic"),
		typ:             c.u16("type"),
		qualifiedSigner: c.sized(maxNameSize, "qualifiedSigner"),
		extraData:       c.sized(maxExtraDataSize, "extraData"),
	}
	a.clock.Clock = c.u64("clock")
	a.clock.ResetCount = c.u32("resetCount")
	a.clock.RestartCount = c.u32("restartCount")
	safe := c.u8("safe")
	a.firmwareVersion = c.u64("firmwareVersion")
	if c.bad != "" {
		return nil, malformed("attest", c.bad, "", "", nil)
	}
	if safe > 1 {
		return nil, malformed("attest", "clockInfo.safe is not a TPMI_YES_NO", "0 or 1", fmt.Sprint(safe), nil)
	}
	a.clock.Safe = safe == 1
	a.body = b[c.off:]
	return a, nil
}

// parseQuoteInfo parses body as TPMS_QUOTE_INFO, which must end the
// structure exactly.
func (a *attestInfo) parseQuoteInfo() *CheckError {
	c := &cursor{b: a.body}
	n := c.u32("pcrSelect count")
	if c.bad == "" && (n == 0 || n > maxSelections) {
		return malformed("attest", "pcrSelect count out of range", fmt.Sprintf("1..%d", maxSelections), fmt.Sprint(n), nil)
	}
	for i := uint32(0); i < n && c.bad == ""; i++ {
		hash := c.u16("pcrSelect hash")
		size := int(c.u8("sizeofSelect"))
		if c.bad == "" && (size == 0 || size > maxSelectSize) {
			return malformed("attest", "sizeofSelect out of range", fmt.Sprintf("1..%d", maxSelectSize), fmt.Sprint(size), nil)
		}
		a.selections = append(a.selections, pcrSelection{hash: hash, mask: c.take(size, "pcrSelect")})
	}
	a.pcrDigest = c.sized(maxDigestSize, "pcrDigest")
	if c.bad != "" {
		return malformed("attest", c.bad, "", "", nil)
	}
	if c.off != len(a.body) {
		return malformed("attest", "trailing bytes", "none", fmt.Sprintf("%d bytes", len(a.body)-c.off), nil)
	}
	return nil
}

// pcrDigest is SHA-256 over the values in ascending PCR order: the
// pcrDigest of a quote over one SHA-256 bank signed with SHA-256.
func pcrDigest(pcrs map[int][]byte) []byte {
	idx := sortedKeys(pcrs)
	h := sha256.New()
	for _, i := range idx {
		h.Write(pcrs[i])
	}
	return h.Sum(nil)
}

func sortedKeys(m map[int][]byte) []int {
	idx := make([]int, 0, len(m))
	for i := range m {
		idx = append(idx, i)
	}
	slices.Sort(idx)
	return idx
}

func formatPCRs(idx []int) string {
	s := make([]string, len(idx))
	for i, p := range idx {
		s[i] = fmt.Sprint(p)
	}
	return "[" + strings.Join(s, " ") + "]"
}

// akKey checks that pub is an ECDSA P-256 key.
func akKey(pub crypto.PublicKey) (*ecdsa.PublicKey, *CheckError) {
	if pub == nil {
		return nil, &CheckError{Check: "options", Reason: "no attestation key: pin the party's AK public key (from the cluster manifest)", Kind: ErrOptions}
	}
	k, ok := pub.(*ecdsa.PublicKey)
	if !ok || k.Curve != elliptic.P256() {
		return nil, &CheckError{Check: "ak_public", Reason: "unsupported key", Want: "ECDSA P-256", Got: fmt.Sprintf("%T", pub), Kind: ErrAlgorithm}
	}
	return k, nil
}

func checkWant(want map[int][]byte) *CheckError {
	for _, i := range sortedKeys(want) {
		if i < 0 || i >= NumPCRs {
			return &CheckError{Check: "options", Reason: fmt.Sprintf("expected PCR index %d out of range 0..%d", i, NumPCRs-1), Kind: ErrOptions}
		}
		if len(want[i]) != pcrSize {
			return &CheckError{Check: "options", Reason: fmt.Sprintf("expected pcr%d has %d bytes, want %d (SHA-256 bank)", i, len(want[i]), pcrSize), Kind: ErrOptions}
		}
	}
	return nil
}

// VerifyQuote checks q against the attestation key akPub (an ECDSA P-256
// *ecdsa.PublicKey), the nonce the quote must carry, and the PCR values
// want requires (index → 32-byte SHA-256 value; a wanted PCR the quote
// lacks is a failure). In order: the signature over q.Attest, the magic
// and type of a TPM-generated quote, extraData == nonce, a PCR selection of
// exactly the SHA-256 PCRs q.PCRs reports, the PCR digest over those
// values, and every wanted PCR. It returns nil or a *CheckError naming the
// failed check with expected and actual values. It never panics.
func VerifyQuote(q *Quote, akPub crypto.PublicKey, nonce []byte, want map[int][]byte) error {
	if _, err := verifyQuote(q, akPub, nonce, want); err != nil {
		return err
	}
	return nil
}

func verifyQuote(q *Quote, akPub crypto.PublicKey, nonce []byte, want map[int][]byte) (*attestInfo, *CheckError) {
	key, cerr := akKey(akPub)
	if cerr != nil {
		return nil, cerr
	}
	if len(nonce) > maxExtraDataSize-2 {
		return nil, &CheckError{Check: "options", Reason: fmt.Sprintf("nonce is %d bytes, a quote carries at most %d", len(nonce), maxExtraDataSize-2), Kind: ErrOptions}
	}
	if cerr := checkWant(want); cerr != nil {
		return nil, cerr
	}
	if q == nil {
		return nil, malformed("quote", "missing", "", "", nil)
	}
	if n := len(q.Signature); n == 0 || n > MaxSignatureSize {
		return nil, malformed("signature", "size out of range", fmt.Sprintf("1..%d bytes", MaxSignatureSize), fmt.Sprintf("%d bytes", n), nil)
	}
	if n := len(q.PCRs); n == 0 || n > NumPCRs {
		return nil, malformed("pcrs", "count out of range", fmt.Sprintf("1..%d entries", NumPCRs), fmt.Sprintf("%d entries", n), nil)
	}
	for _, i := range sortedKeys(q.PCRs) {
		if i < 0 || i >= NumPCRs {
			return nil, malformed("pcrs", "index out of range", fmt.Sprintf("0..%d", NumPCRs-1), fmt.Sprint(i), nil)
		}
		if len(q.PCRs[i]) != pcrSize {
			return nil, malformed(fmt.Sprintf("pcr%d", i), "wrong size", fmt.Sprintf("%d bytes", pcrSize), fmt.Sprintf("%d bytes", len(q.PCRs[i])), nil)
		}
	}
	if n := len(q.Attest); n == 0 || n > MaxAttestSize {
		return nil, malformed("attest", "size out of range", fmt.Sprintf("1..%d bytes", MaxAttestSize), fmt.Sprintf("%d bytes", n), nil)
	}

	digest := sha256.Sum256(q.Attest)
	if !ecdsa.VerifyASN1(key, digest[:], q.Signature) {
		return nil, &CheckError{Check: "signature", Reason: "does not verify", Want: "ECDSA P-256/SHA-256 signature over the attest bytes by the pinned attestation key", Got: "invalid signature", Kind: ErrSignature}
	}

	a, cerr := parseAttest(q.Attest)
	if cerr != nil {
		return nil, cerr
	}
	if a.magic != tpmGeneratedValue {
		return nil, &CheckError{Check: "magic", Reason: "mismatch: not generated by a TPM", Want: fmt.Sprintf("%08x", tpmGeneratedValue), Got: fmt.Sprintf("%08x", a.magic), Kind: ErrQuote}
	}
	if a.typ != tpmSTAttestQuote {
		return nil, &CheckError{Check: "type", Reason: "mismatch: not a quote", Want: fmt.Sprintf("%04x (TPM_ST_ATTEST_QUOTE)", tpmSTAttestQuote), Got: fmt.Sprintf("%04x", a.typ), Kind: ErrQuote}
	}
	if cerr := a.parseQuoteInfo(); cerr != nil {
		return nil, cerr
	}
	if !bytes.Equal(a.extraData, nonce) {
		return nil, &CheckError{Check: "extra_data", Reason: "mismatch: quote is not over this nonce", Want: hexOrEmpty(nonce), Got: hexOrEmpty(a.extraData), Kind: ErrBinding}
	}

	reported := sortedKeys(q.PCRs)
	quoted, cerr := quotedPCRs(a.selections)
	if cerr != nil {
		return nil, cerr
	}
	if !slices.Equal(quoted, reported) {
		return nil, &CheckError{Check: "pcr_select", Reason: "mismatch: quoted PCRs differ from reported PCRs", Want: "sha256:" + formatPCRs(reported), Got: "sha256:" + formatPCRs(quoted), Kind: ErrQuote}
	}
	if d := pcrDigest(q.PCRs); !bytes.Equal(d, a.pcrDigest) {
		return nil, &CheckError{Check: "pcr_digest", Reason: "mismatch: reported PCR values are not the quoted ones", Want: hex.EncodeToString(d), Got: hexOrEmpty(a.pcrDigest), Kind: ErrQuote}
	}
	for _, i := range sortedKeys(want) {
		got, ok := q.PCRs[i]
		if !ok {
			return nil, &CheckError{Check: fmt.Sprintf("pcr%d", i), Reason: "missing: the quote does not cover it", Want: hex.EncodeToString(want[i]), Got: "absent", Kind: ErrMeasurement}
		}
		if !bytes.Equal(got, want[i]) {
			return nil, &CheckError{Check: fmt.Sprintf("pcr%d", i), Reason: "mismatch", Want: hex.EncodeToString(want[i]), Got: hex.EncodeToString(got), Kind: ErrMeasurement}
		}
	}
	return a, nil
}

// quotedPCRs returns the PCR indices a quote's selection covers; it must be
// the SHA-256 bank alone.
func quotedPCRs(sels []pcrSelection) ([]int, *CheckError) {
	if len(sels) != 1 || sels[0].hash != tpmAlgSHA256 {
		var got []string
		for _, s := range sels {
			got = append(got, fmt.Sprintf("%04x", s.hash))
		}
		return nil, &CheckError{Check: "pcr_select", Reason: "not a single SHA-256 bank", Want: "one selection of bank 000b (sha256)", Got: "banks " + strings.Join(got, ","), Kind: ErrQuote}
	}
	var idx []int
	for i := 0; i < 8*len(sels[0].mask); i++ {
		if sels[0].mask[i/8]&(1<<(i%8)) != 0 {
			idx = append(idx, i)
		}
	}
	return idx, nil
}
