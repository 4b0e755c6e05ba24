package attestation

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha512"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"math/big"
	"reflect"

	"github.com/fxamacker/cbor/v2"
)

// COSE_Sign1 as the NSM emits it (RFC 9052 §4.2; aws-nitro-enclaves-nsm-api
// docs/attestation_process.md §3.1):
//
//	[ protected: bstr .cbor {1: -35}, unprotected: {}, payload: bstr, signature: bstr(96) ]
//
// untagged (first byte 0x84) or with tag 18 (0xd2).
const (
	coseAlgES384    = -35
	coseSign1Tag    = 0xd2 // tag 18, one-byte head
	es384SigSize    = 96   // r ‖ s, 48 bytes each
	coseHeaderAlg   = 1
	coseHeaderCrit  = 2
	maxHeaderLabels = 16
)

// protectedES384 is the protected header AWS sends: {1: -35}.
var protectedES384 = []byte{0xa1, 0x01, 0x38, 0x22}

// decMode decodes untrusted bytes: definite lengths only, no tags, duplicate
// map keys rejected, exact field names, small nesting and element limits.
// fxamacker/cbor checks well-formedness before allocating, so a declared
// length larger than the input cannot cause a large allocation.
var decMode = func() cbor.DecMode {
	dm, err := cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		TagsMd:            cbor.TagsForbidden,
		MaxNestedLevels:   4,
		MaxArrayElements:  16,
		MaxMapPairs:       MaxPCRs,
		FieldNameMatching: cbor.FieldNameMatchingCaseSensitive,
		UTF8:              cbor.UTF8RejectInvalid,
		DefaultMapType:    reflect.TypeOf(map[any]any(nil)),
	}.DecMode()
	if err != nil {
		panic(err)
	}
	return dm
}()

// encMode is core deterministic encoding (RFC 8949 §4.2.1).
var encMode = func() cbor.EncMode {
	em, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(err)
	}
	return em
}()

type coseSign1 struct {
	_           struct{} `cbor:",toarray"`
	Protected   bstr
	Unprotected cbor.RawMessage
	Payload     bstr
	Signature   bstr
}

// sign1 is a decoded COSE_Sign1 message whose structure and algorithm have
// been checked; its signature has not.
type sign1 struct {
	protected []byte // as received: the signature covers these exact bytes
	payload   []byte
	signature []byte
}

// decodeSign1 checks the COSE_Sign1 envelope and returns its parts.
func decodeSign1(doc []byte) (*sign1, error) {
	if len(doc) == 0 {
		return nil, malformed("cose", "empty", "COSE_Sign1 bytes", "0 bytes", nil)
	}
	if len(doc) > MaxDocumentSize {
		return nil, malformed("cose", "too large", fmt.Sprintf("at most %d bytes", MaxDocumentSize), fmt.Sprintf("%d bytes", len(doc)), nil)
	}
	if doc[0] == coseSign1Tag {
		doc = doc[1:]
	}
	var m coseSign1
	if err := decMode.Unmarshal(doc, &m); err != nil {
		return nil, malformed("cose", "malformed", "COSE_Sign1 array [protected, unprotected, payload, signature]", "", err)
	}
	if len(m.Protected) == 0 {
		return nil, malformed("cose", "protected header missing", "{1: -35}", "empty", nil)
	}
	if err := checkProtected(m.Protected); err != nil {
		return nil, err
	}
	// Unprotected must be a map; null is accepted as an empty map, as
	// null stands for absent everywhere else in this format.
	if !bytes.Equal(m.Unprotected, []byte{0xf6}) {
		var hdr map[any]any
		if err := decMode.Unmarshal(m.Unprotected, &hdr); err != nil {
			return nil, malformed("cose", "unprotected header malformed", "a map", "", err)
		}
	}
	if len(m.Payload) == 0 {
		return nil, malformed("cose", "payload missing", "attestation document", "empty or detached", nil)
	}
	if len(m.Signature) != es384SigSize {
		return nil, &CheckError{Check: "signature", Reason: "bad length", Want: fmt.Sprintf("%d bytes (ES384 r‖s)", es384SigSize), Got: fmt.Sprintf("%d bytes", len(m.Signature)), Kind: ErrAlgorithm}
	}
	return &sign1{protected: m.Protected, payload: m.Payload, signature: m.Signature}, nil
}

func checkProtected(b []byte) error {
	var hdr map[any]any
	if err := decMode.Unmarshal(b, &hdr); err != nil {
		return malformed("cose", "protected header malformed", "{1: -35}", "", err)
	}
	if len(hdr) > maxHeaderLabels {
		return malformed("cose", "protected header too large", fmt.Sprintf("at most %d labels", maxHeaderLabels), fmt.Sprintf("%d labels", len(hdr)), nil)
	}
	// We understand no critical header parameters (RFC 9052 §3.1).
	if _, ok := hdr[uint64(coseHeaderCrit)]; ok {
		return malformed("cose", "critical header present", "no crit parameter", "crit", nil)
	}
	alg, ok := hdr[uint64(coseHeaderAlg)]
	if !ok {
		return &CheckError{Check: "alg", Reason: "missing", Want: "ES384 (-35)", Got: "absent", Kind: ErrAlgorithm}
	}
	if v, ok := alg.(int64); !ok || v != coseAlgES384 {
		return &CheckError{Check: "alg", Reason: "unsupported", Want: "ES384 (-35)", Got: fmt.Sprintf("%v", alg), Kind: ErrAlgorithm}
	}
	return nil
}

// sigStructure is the COSE Sig_structure for a COSE_Sign1 without external
// AAD (RFC 9052 §4.4): ["Signature1", protected, h”, payload].
func sigStructure(protected, payload []byte) ([]byte, error) {
	return encMode.Marshal([]any{"Signature1", protected, []byte{}, payload})
}

// verifySignature checks the raw r‖s ES384 signature with the leaf key.
func (m *sign1) verifySignature(pub *ecdsa.PublicKey) bool {
	tbs, err := sigStructure(m.protected, m.payload)
	if err != nil {
		return false
	}
	h := sha512.Sum384(tbs)
	r := new(big.Int).SetBytes(m.signature[:48])
	s := new(big.Int).SetBytes(m.signature[48:])
	return ecdsa.Verify(pub, h[:], r, s)
}

// ParseUnverified decodes an attestation document and checks its structure
// and field limits, but NOT its signature, certificate chain or any policy:
// nothing in the result is authenticated. Use it to display a document (for
// example one that failed Verify); use Verify to rely on one.
func ParseUnverified(doc []byte) (*Document, error) {
	var d *Document
	var err error
	func() {
		defer recoverAsError(&d, &err)
		var m *sign1
		if m, err = decodeSign1(doc); err == nil {
			d, err = decodePayload(m.payload)
		}
	}()
	return d, err
}

// SignDocument encodes d as NSM does and signs it as an untagged ES384
// COSE_Sign1 with key, which must be the P-384 key of d.Certificate. It is
// the signing half of the dev NSM; production documents come from the NSM.
// rand is passed to key.Sign.
func SignDocument(d *Document, key crypto.Signer, rand io.Reader) ([]byte, error) {
	pub, ok := key.Public().(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P384() {
		return nil, errors.New("attestation: sign: key is not ECDSA P-384")
	}
	if err := d.validate(); err != nil {
		return nil, fmt.Errorf("attestation: sign: %w", err)
	}
	leaf, err := x509.ParseCertificate(d.Certificate)
	if err != nil {
		return nil, fmt.Errorf("attestation: sign: parse certificate: %w", err)
	}
	if lp, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || !lp.Equal(pub) {
		return nil, errors.New("attestation: sign: key does not match the document's certificate")
	}
	payload, err := d.MarshalCBOR()
	if err != nil {
		return nil, err
	}
	tbs, err := sigStructure(protectedES384, payload)
	if err != nil {
		return nil, fmt.Errorf("attestation: sign: %w", err)
	}
	h := sha512.Sum384(tbs)
	der, err := key.Sign(rand, h[:], crypto.SHA384)
	if err != nil {
		return nil, fmt.Errorf("attestation: sign: %w", err)
	}
	var rs struct{ R, S *big.Int }
	if rest, err := asn1.Unmarshal(der, &rs); err != nil || len(rest) != 0 || rs.R.Sign() <= 0 || rs.S.Sign() <= 0 ||
		rs.R.BitLen() > 384 || rs.S.BitLen() > 384 {
		return nil, errors.New("attestation: sign: signer returned a malformed ECDSA signature")
	}
	sig := make([]byte, es384SigSize)
	rs.R.FillBytes(sig[:48])
	rs.S.FillBytes(sig[48:])
	out, err := encMode.Marshal(coseSign1{
		Protected:   protectedES384,
		Unprotected: cbor.RawMessage{0xa0}, // {}
		Payload:     payload,
		Signature:   sig,
	})
	if err != nil {
		return nil, fmt.Errorf("attestation: sign: %w", err)
	}
	return out, nil
}
