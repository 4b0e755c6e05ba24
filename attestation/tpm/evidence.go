package tpm

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"

	"github.com/fxamacker/cbor/v2"
)

// Evidence format and limits.
const (
	// EvidenceVersion is the evidence format this package writes.
	//
	// Evolution rule: a new version gets a new number; VerifyEvidence keeps
	// reading every version it ever wrote. Fields are never reinterpreted
	// within a version, and version 1 has exactly the fields below.
	EvidenceVersion = 1
	// MaxEvidenceSize bounds the raw evidence VerifyEvidence decodes.
	MaxEvidenceSize = 16 << 10
	// MaxAuxSize bounds public_key, user_data and nonce, as for a Nitro
	// document (attestation.MaxAuxSize).
	MaxAuxSize = 1024
	// maxAKPublicSize bounds the PKIX DER of the AK (91 bytes for P-256).
	maxAKPublicSize = 512

	bindingContext = "sealsign/attestation/tpm evidence v1\x00"
)

// wireEvidence is the CBOR form, a map with integer keys in core
// deterministic encoding (RFC 8949 §4.2.1). Byte strings are always present
// (empty, never null), so every accepted encoding is the canonical one.
type wireEvidence struct {
	Version   uint64            `cbor:"1,keyasint"`
	AKPublic  []byte            `cbor:"2,keyasint"` // PKIX DER
	Attest    []byte            `cbor:"3,keyasint"` // TPMS_ATTEST
	Signature []byte            `cbor:"4,keyasint"` // DER ECDSA over SHA-256(Attest)
	PCRs      map[uint64][]byte `cbor:"5,keyasint"` // SHA-256 bank
	PublicKey []byte            `cbor:"6,keyasint"`
	UserData  []byte            `cbor:"7,keyasint"`
	Nonce     []byte            `cbor:"8,keyasint"`
}

// wireVersion reads only the version, so a future version is reported as
// such rather than as malformed.
type wireVersion struct {
	Version uint64 `cbor:"1,keyasint"`
}

var (
	encMode    cbor.EncMode
	strictDec  cbor.DecMode
	versionDec cbor.DecMode
)

func init() {
	enc := cbor.CoreDetEncOptions()
	enc.NilContainers = cbor.NilContainerAsEmpty
	var err error
	if encMode, err = enc.EncMode(); err != nil {
		panic(err)
	}
	limits := cbor.DecOptions{
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		MaxNestedLevels:  4,
		MaxArrayElements: 16,
		MaxMapPairs:      NumPCRs + 8,
		IndefLength:      cbor.IndefLengthForbidden,
		TagsMd:           cbor.TagsForbidden,
		UTF8:             cbor.UTF8RejectInvalid,
	}
	if versionDec, err = limits.DecMode(); err != nil {
		panic(err)
	}
	limits.ExtraReturnErrors = cbor.ExtraDecErrorUnknownField
	if strictDec, err = limits.DecMode(); err != nil {
		panic(err)
	}
}

// ExtraData is what an attester's quote signs as its nonce: SHA-256 over
// a context string and the length-prefixed (uint32 big-endian) public key,
// user data and nonce, in that order. A verifier in another language
// recomputes it from the evidence fields.
func ExtraData(publicKey, userData, nonce []byte) []byte {
	h := sha256.New()
	h.Write([]byte(bindingContext))
	for _, f := range [][]byte{publicKey, userData, nonce} {
		h.Write(binary.BigEndian.AppendUint32(nil, uint32(len(f))))
		h.Write(f)
	}
	return h.Sum(nil)
}

// Attester produces evidence for an enclave identity with an AK, quoting a
// fixed PCR selection. It is safe for concurrent use.
type Attester struct {
	ak   *AK
	pcrs []int
}

// NewAttester returns an Attester that quotes pcrs (SHA-256 bank) with ak.
func NewAttester(ak *AK, pcrs []int) (*Attester, error) {
	if ak == nil {
		return nil, errors.New("tpm: NewAttester called with a nil AK")
	}
	sel, err := normalizePCRs(pcrs)
	if err != nil {
		return nil, err
	}
	return &Attester{ak: ak, pcrs: sel}, nil
}

// Attest returns evidence binding publicKey (the enclave's identity keys),
// userData (the cluster manifest hash) and nonce (a verifier's challenge),
// each at most MaxAuxSize bytes, to this TPM's PCRs: deterministic CBOR
// carrying a quote whose extraData is ExtraData(publicKey, userData,
// nonce), the AK public key, the PCR values and the three fields.
func (a *Attester) Attest(publicKey, userData, nonce []byte) ([]byte, error) {
	for _, f := range []struct {
		name string
		b    []byte
	}{{"public key", publicKey}, {"user data", userData}, {"nonce", nonce}} {
		if len(f.b) > MaxAuxSize {
			return nil, fmt.Errorf("tpm: attest: %s is %d bytes, limit is %d", f.name, len(f.b), MaxAuxSize)
		}
	}
	q, err := a.ak.Quote(a.pcrs, ExtraData(publicKey, userData, nonce))
	if err != nil {
		return nil, err
	}
	w := wireEvidence{
		Version:   EvidenceVersion,
		AKPublic:  a.ak.PublicBytes(),
		Attest:    q.Attest,
		Signature: q.Signature,
		PCRs:      make(map[uint64][]byte, len(q.PCRs)),
		PublicKey: nonNil(publicKey),
		UserData:  nonNil(userData),
		Nonce:     nonNil(nonce),
	}
	for i, v := range q.PCRs {
		w.PCRs[uint64(i)] = v
	}
	out, err := encMode.Marshal(w)
	if err != nil {
		return nil, fmt.Errorf("tpm: encode evidence: %w", err)
	}
	if len(out) > MaxEvidenceSize {
		return nil, fmt.Errorf("tpm: evidence is %d bytes, limit is %d", len(out), MaxEvidenceSize)
	}
	return out, nil
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// VerifyOptions is the trust anchor and the policy evidence must satisfy.
// The zero value is unusable on purpose: the caller pins the AK.
type VerifyOptions struct {
	// AKPublic is the party's attestation key, pinned (from the cluster
	// manifest); required. An ECDSA P-256 *ecdsa.PublicKey, e.g. from
	// x509.ParsePKIXPublicKey(manifest AK bytes).
	AKPublic crypto.PublicKey

	// PCRs are required SHA-256 PCR values by index (0..23), 32 bytes
	// each. Every PCR named here must be quoted with exactly this value.
	// Empty means the evidence is only authenticated, not matched against
	// any measurement.
	PCRs map[int][]byte

	// PublicKey, UserData and Nonce, when non-nil, must equal the
	// evidence's fields byte for byte (an empty field equals only an empty
	// value). A live check passes a fresh Nonce; without one, old evidence
	// replays.
	PublicKey []byte
	UserData  []byte
	Nonce     []byte
}

// Evidence is verified evidence. Fields are copies, not aliases of the
// input.
type Evidence struct {
	Version  uint64
	AKPublic []byte // PKIX DER, equal to the pinned key
	// Quote is the verified quote; Quote.PCRs are the quoted values.
	Quote     Quote
	PublicKey []byte
	UserData  []byte
	Nonce     []byte
	// Clock and FirmwareVersion are from the signed TPMS_ATTEST.
	Clock           ClockInfo
	FirmwareVersion uint64
}

func (o *VerifyOptions) check() (akDER []byte, cerr *CheckError) {
	if _, cerr := akKey(o.AKPublic); cerr != nil {
		return nil, cerr
	}
	der, err := x509.MarshalPKIXPublicKey(o.AKPublic)
	if err != nil {
		return nil, &CheckError{Check: "options", Reason: "AKPublic cannot be encoded", Kind: ErrOptions, Err: err}
	}
	if cerr := checkWant(o.PCRs); cerr != nil {
		return nil, cerr
	}
	for _, f := range []struct {
		name string
		b    []byte
	}{{"public_key", o.PublicKey}, {"user_data", o.UserData}, {"nonce", o.Nonce}} {
		if len(f.b) > MaxAuxSize {
			return nil, &CheckError{Check: "options", Reason: fmt.Sprintf("expected %s has %d bytes, more than evidence can carry (%d)", f.name, len(f.b), MaxAuxSize), Kind: ErrOptions}
		}
	}
	return der, nil
}

// VerifyEvidence decodes raw strictly (size limits, canonical CBOR, no
// unknown fields), checks that its AK is the pinned one, verifies its quote
// (VerifyQuote) with ExtraData of its fields as the nonce and opts.PCRs as
// the measurement policy, and compares public key, user data and nonce with
// opts. It returns the evidence only when every check passes, else a nil
// Evidence and a *CheckError naming the first failed check. It never
// panics on hostile input.
func VerifyEvidence(raw []byte, opts VerifyOptions) (ev *Evidence, err error) {
	defer func() {
		// Defence in depth: decoding is bounded and checked, but a panic in
		// a library must not take the verifier down.
		if r := recover(); r != nil {
			ev, err = nil, malformed("evidence", "decoder panicked", "", "", fmt.Errorf("%v", r))
		}
	}()
	e, cerr := verifyEvidence(raw, opts)
	if cerr != nil {
		return nil, cerr
	}
	return e, nil
}

func verifyEvidence(raw []byte, opts VerifyOptions) (*Evidence, *CheckError) {
	pinned, cerr := opts.check()
	if cerr != nil {
		return nil, cerr
	}
	w, cerr := decodeEvidence(raw)
	if cerr != nil {
		return nil, cerr
	}
	if !bytes.Equal(w.AKPublic, pinned) {
		return nil, &CheckError{Check: "ak_public", Reason: "not the pinned attestation key", Want: hex.EncodeToString(pinned), Got: hex.EncodeToString(w.AKPublic), Kind: ErrAttestationKey}
	}
	q := Quote{Attest: w.Attest, Signature: w.Signature, PCRs: make(map[int][]byte, len(w.PCRs))}
	for i, v := range w.PCRs {
		q.PCRs[int(i)] = v
	}
	a, cerr := verifyQuote(&q, opts.AKPublic, ExtraData(w.PublicKey, w.UserData, w.Nonce), opts.PCRs)
	if cerr != nil {
		if cerr.Check == "extra_data" {
			cerr.Reason = "mismatch: the quote does not sign this evidence's public_key, user_data and nonce"
		}
		return nil, cerr
	}
	for _, f := range []struct {
		name      string
		want, got []byte
	}{{"public_key", opts.PublicKey, w.PublicKey}, {"user_data", opts.UserData, w.UserData}, {"nonce", opts.Nonce, w.Nonce}} {
		if f.want != nil && !bytes.Equal(f.want, f.got) {
			return nil, &CheckError{Check: f.name, Reason: "mismatch", Want: hexOrEmpty(f.want), Got: hexOrEmpty(f.got), Kind: ErrBinding}
		}
	}
	ev := &Evidence{
		Version:         w.Version,
		AKPublic:        slices.Clone(w.AKPublic),
		Quote:           Quote{Attest: slices.Clone(q.Attest), Signature: slices.Clone(q.Signature), PCRs: make(map[int][]byte, len(q.PCRs))},
		PublicKey:       slices.Clone(w.PublicKey),
		UserData:        slices.Clone(w.UserData),
		Nonce:           slices.Clone(w.Nonce),
		Clock:           a.clock,
		FirmwareVersion: a.firmwareVersion,
	}
	for i, v := range q.PCRs {
		ev.Quote.PCRs[i] = slices.Clone(v)
	}
	return ev, nil
}

// decodeEvidence decodes strictly: within limits, of a known version, with
// exactly the fields Attest writes, in canonical form.
func decodeEvidence(raw []byte) (*wireEvidence, *CheckError) {
	if len(raw) == 0 || len(raw) > MaxEvidenceSize {
		return nil, malformed("evidence", "size out of range", fmt.Sprintf("1..%d bytes", MaxEvidenceSize), fmt.Sprintf("%d bytes", len(raw)), nil)
	}
	var v wireVersion
	if err := versionDec.Unmarshal(raw, &v); err != nil {
		return nil, malformed("evidence", "not a CBOR evidence map", "", "", err)
	}
	if v.Version != EvidenceVersion {
		return nil, malformed("version", "unknown", fmt.Sprint(EvidenceVersion), fmt.Sprint(v.Version), nil)
	}
	var w wireEvidence
	if err := strictDec.Unmarshal(raw, &w); err != nil {
		return nil, malformed("evidence", "not a CBOR evidence map", "", "", err)
	}
	canon, err := encMode.Marshal(w)
	if err != nil || !bytes.Equal(canon, raw) {
		return nil, malformed("evidence", "not in canonical form (missing or null field, or not core deterministic CBOR)", "", "", err)
	}
	if n := len(w.AKPublic); n == 0 || n > maxAKPublicSize {
		return nil, malformed("ak_public", "size out of range", fmt.Sprintf("1..%d bytes", maxAKPublicSize), fmt.Sprintf("%d bytes", n), nil)
	}
	if n := len(w.PCRs); n == 0 || n > NumPCRs {
		return nil, malformed("pcrs", "count out of range", fmt.Sprintf("1..%d entries", NumPCRs), fmt.Sprintf("%d entries", n), nil)
	}
	for i := range w.PCRs {
		if i >= NumPCRs {
			return nil, malformed("pcrs", "index out of range", fmt.Sprintf("0..%d", NumPCRs-1), fmt.Sprint(i), nil)
		}
	}
	for _, f := range []struct {
		name string
		b    []byte
	}{{"public_key", w.PublicKey}, {"user_data", w.UserData}, {"nonce", w.Nonce}} {
		if len(f.b) > MaxAuxSize {
			return nil, malformed(f.name, "too long", fmt.Sprintf("at most %d bytes", MaxAuxSize), fmt.Sprintf("%d bytes", len(f.b)), nil)
		}
	}
	return &w, nil
}
