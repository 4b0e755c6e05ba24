// Package tpm is TPM 2.0 attestation for parties of kind "tpm" (DESIGN.md):
// an attestation key (AK) in the TPM, quotes over a selection of SHA-256
// PCRs with a caller's nonce, their verification, and evidence for an
// enclave identity that mirrors a Nitro attestation document's bindings
// (public_key, user_data, nonce).
//
// The AK is an ECDSA P-256 restricted signing key, a primary key of the
// endorsement hierarchy created from a fixed template, so a TPM yields the
// same AK on every boot and a cluster manifest can pin its public key
// (AK.PublicBytes, PKIX DER). A restricted key signs only data the TPM
// itself produced (TPMS_ATTEST starting with TPM_GENERATED_VALUE), which is
// what makes a quote evidence of PCR values.
//
// Security assumptions, written where they are relied on:
//   - The pinned AK really is a restricted key inside a genuine TPM. This
//     package does not prove that (no endorsement-key certificate, no
//     TPM2_ActivateCredential): whoever enrols the AK into the manifest must
//     take it from the machine itself. A non-restricted key could sign any
//     bytes, including a fake TPMS_ATTEST.
//   - PCR values mean what the measurement policy says only if the
//     measuring code (firmware, boot loader, the process that extends the
//     enclave PCR) is itself measured; a resettable PCR (16, 23) proves
//     little against root on the host.
//
// Formats: TPM 2.0 Library Part 2 §10.12 (TPMS_ATTEST, TPMS_QUOTE_INFO),
// Part 3 §18.4 (TPM2_Quote).
package tpm

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"sync"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/sealsign/sealsign/hsm/tpm/pcr"
)

// ErrDevice: the TPM failed a command or the AK is closed. Not a property
// of any evidence.
var ErrDevice = errors.New("tpm: tpm operation failed")

// NumPCRs is the number of PCRs a PC Client TPM has; indices are 0..23.
const NumPCRs = pcr.Num

// MaxNonceSize bounds a quote's nonce (TPM2_Quote qualifyingData). Every
// TPM accepts 32 bytes; hash a longer nonce with SHA-256 first.
const MaxNonceSize = 32

// akTemplate is the AK: ECDSA P-256 / SHA-256, restricted to signing data
// the TPM generated, fixed to this TPM, its private part generated inside.
// Changing the template changes the AK of every TPM: append-only, and
// only together with every manifest that pins an AK.
var akTemplate = tpm2.TPMTPublic{
	Type:    tpm2.TPMAlgECC,
	NameAlg: tpm2.TPMAlgSHA256,
	ObjectAttributes: tpm2.TPMAObject{
		FixedTPM:            true,
		FixedParent:         true,
		SensitiveDataOrigin: true,
		UserWithAuth:        true,
		NoDA:                true,
		Restricted:          true,
		SignEncrypt:         true,
	},
	Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, &tpm2.TPMSECCParms{
		Symmetric: tpm2.TPMTSymDefObject{Algorithm: tpm2.TPMAlgNull},
		Scheme: tpm2.TPMTECCScheme{
			Scheme:  tpm2.TPMAlgECDSA,
			Details: tpm2.NewTPMUAsymScheme(tpm2.TPMAlgECDSA, &tpm2.TPMSSigSchemeECDSA{HashAlg: tpm2.TPMAlgSHA256}),
		},
		CurveID: tpm2.TPMECCNistP256,
		KDF:     tpm2.TPMTKDFScheme{Scheme: tpm2.TPMAlgNull},
	}),
	Unique: tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{
		X: tpm2.TPM2BECCParameter{Buffer: make([]byte, 32)},
		Y: tpm2.TPM2BECCParameter{Buffer: make([]byte, 32)},
	}),
}

// AK is an attestation key loaded in a TPM. Its methods are safe for
// concurrent use.
type AK struct {
	mu     sync.Mutex
	tpm    transport.TPM
	handle tpm2.TPMHandle
	name   tpm2.TPM2BName
	pub    *ecdsa.PublicKey
	der    []byte
	closed bool
}

// NewAK creates (re-derives) the AK in the endorsement hierarchy of the TPM
// behind t and keeps it loaded until Close. t is any go-tpm transport: a
// *tpm.TPM of package hsm/tpm (sharing its connection), or
// transport.FromReadWriter over a device. The endorsement hierarchy must
// have an empty authorization value (the default).
func NewAK(t transport.TPM) (*AK, error) {
	if t == nil {
		return nil, errors.New("tpm: NewAK called with a nil TPM")
	}
	rsp, err := tpm2.CreatePrimary{
		PrimaryHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHEndorsement, Auth: tpm2.PasswordAuth(nil)},
		InPublic:      tpm2.New2B(akTemplate),
	}.Execute(t)
	if err != nil {
		return nil, fmt.Errorf("tpm: create attestation key (TPM2_CreatePrimary in the endorsement hierarchy, which must have an empty auth value): %w: %w", err, ErrDevice)
	}
	ak := &AK{tpm: t, handle: rsp.ObjectHandle, name: rsp.Name}
	if err := ak.setPublic(&rsp.OutPublic); err != nil {
		tpm2.FlushContext{FlushHandle: rsp.ObjectHandle}.Execute(t)
		return nil, err
	}
	return ak, nil
}

func (a *AK) setPublic(out *tpm2.TPM2BPublic) error {
	pub, err := out.Contents()
	if err != nil {
		return fmt.Errorf("tpm: attestation key public area: %w: %w", err, ErrDevice)
	}
	attrs := pub.ObjectAttributes
	if pub.Type != tpm2.TPMAlgECC || !attrs.Restricted || !attrs.SignEncrypt || !attrs.FixedTPM || !attrs.SensitiveDataOrigin {
		return fmt.Errorf("tpm: TPM returned an attestation key that is not a restricted ECC signing key fixed to the TPM: %w", ErrDevice)
	}
	parms, err := pub.Parameters.ECCDetail()
	if err != nil {
		return fmt.Errorf("tpm: attestation key parameters: %w: %w", err, ErrDevice)
	}
	point, err := pub.Unique.ECC()
	if err != nil {
		return fmt.Errorf("tpm: attestation key point: %w: %w", err, ErrDevice)
	}
	key, err := tpm2.ECDSAPub(parms, point)
	if err != nil {
		return fmt.Errorf("tpm: attestation key: %w: %w", err, ErrDevice)
	}
	if key.Curve != elliptic.P256() {
		return fmt.Errorf("tpm: attestation key is on %s, want P-256: %w", key.Curve.Params().Name, ErrDevice)
	}
	der, err := x509.MarshalPKIXPublicKey(key)
	if err != nil {
		return fmt.Errorf("tpm: encode attestation key: %w", err)
	}
	a.pub, a.der = key, der
	return nil
}

// Public returns the AK's public key, an *ecdsa.PublicKey on P-256.
func (a *AK) Public() crypto.PublicKey { return a.pub }

// PublicBytes returns the AK's public key as PKIX DER
// (SubjectPublicKeyInfo): the stable encoding a manifest pins.
func (a *AK) PublicBytes() []byte { return slices.Clone(a.der) }

// Close flushes the AK from the TPM. It does not close the TPM. Close is
// idempotent; Quote fails afterwards.
func (a *AK) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil
	}
	a.closed = true
	if _, err := (tpm2.FlushContext{FlushHandle: a.handle}).Execute(a.tpm); err != nil {
		return fmt.Errorf("tpm: flush attestation key: %w: %w", err, ErrDevice)
	}
	return nil
}

// Quote is a TPM2_Quote over SHA-256 PCRs and the values of those PCRs.
type Quote struct {
	// Attest is the TPMS_ATTEST the TPM signed, as it signed it.
	Attest []byte
	// Signature is the AK's ECDSA signature over SHA-256(Attest), ASN.1
	// DER (the form crypto/ecdsa.VerifyASN1 takes).
	Signature []byte
	// PCRs are the SHA-256 values of the quoted PCRs, read right after the
	// quote and checked against its PCR digest.
	PCRs map[int][]byte
}

// quoteAttempts bounds retries when a PCR changes between TPM2_Quote and
// TPM2_PCR_Read.
const quoteAttempts = 3

// Quote has the TPM sign the SHA-256 values of pcrs together with nonce
// (at most MaxNonceSize bytes), and returns the signed TPMS_ATTEST, the
// signature and the PCR values.
func (a *AK) Quote(pcrs []int, nonce []byte) (*Quote, error) {
	sel, err := normalizePCRs(pcrs)
	if err != nil {
		return nil, err
	}
	if len(nonce) > MaxNonceSize {
		return nil, fmt.Errorf("tpm: quote nonce is %d bytes, limit is %d; hash it with SHA-256 first", len(nonce), MaxNonceSize)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil, fmt.Errorf("tpm: quote with a closed attestation key: %w", ErrDevice)
	}
	for range quoteAttempts {
		rsp, err := tpm2.Quote{
			SignHandle:     tpm2.AuthHandle{Handle: a.handle, Name: a.name, Auth: tpm2.PasswordAuth(nil)},
			QualifyingData: tpm2.TPM2BData{Buffer: nonce},
			InScheme:       tpm2.TPMTSigScheme{Scheme: tpm2.TPMAlgNull},
			PCRSelect:      pcr.SHA256Selection(sel),
		}.Execute(a.tpm)
		if err != nil {
			return nil, fmt.Errorf("tpm: TPM2_Quote: %w: %w", err, ErrDevice)
		}
		attest := slices.Clone(rsp.Quoted.Bytes())
		sig, err := signatureDER(&rsp.Signature)
		if err != nil {
			return nil, err
		}
		values, err := readPCRs(a.tpm, sel)
		if err != nil {
			return nil, err
		}
		info, cerr := parseAttest(attest)
		if cerr == nil {
			cerr = info.parseQuoteInfo()
		}
		if cerr != nil {
			return nil, fmt.Errorf("tpm: TPM2_Quote returned an unparsable TPMS_ATTEST: %w: %w", cerr, ErrDevice)
		}
		q := &Quote{Attest: attest, Signature: sig, PCRs: make(map[int][]byte, len(sel))}
		for i, p := range sel {
			q.PCRs[p] = values[i]
		}
		if string(pcrDigest(q.PCRs)) == string(info.pcrDigest) {
			return q, nil
		}
		// A PCR was extended between the quote and the read: try again.
	}
	return nil, fmt.Errorf("tpm: pcrs %v kept changing while quoting (%d attempts): %w", sel, quoteAttempts, ErrDevice)
}

// signatureDER converts the TPM's ECDSA signature to ASN.1 DER.
func signatureDER(sig *tpm2.TPMTSignature) ([]byte, error) {
	if sig.SigAlg != tpm2.TPMAlgECDSA {
		return nil, fmt.Errorf("tpm: TPM2_Quote signed with algorithm %#x, want ECDSA: %w", uint16(sig.SigAlg), ErrDevice)
	}
	ecc, err := sig.Signature.ECDSA()
	if err != nil {
		return nil, fmt.Errorf("tpm: TPM2_Quote signature: %w: %w", err, ErrDevice)
	}
	if ecc.Hash != tpm2.TPMAlgSHA256 {
		return nil, fmt.Errorf("tpm: TPM2_Quote signed with hash %#x, want SHA-256: %w", uint16(ecc.Hash), ErrDevice)
	}
	return asn1.Marshal(struct{ R, S *big.Int }{
		new(big.Int).SetBytes(ecc.SignatureR.Buffer),
		new(big.Int).SetBytes(ecc.SignatureS.Buffer),
	})
}

// normalizePCRs validates a PCR selection and returns it sorted.
func normalizePCRs(pcrs []int) ([]int, error) {
	s, err := pcr.Normalize(pcrs)
	if err != nil {
		return nil, fmt.Errorf("tpm: %w", err)
	}
	return s, nil
}

// readPCRs reads the SHA-256 values of sorted pcrs, in that order.
func readPCRs(t transport.TPM, pcrs []int) ([][]byte, error) {
	vals, err := pcr.Read(t, pcrs)
	if err != nil {
		return nil, fmt.Errorf("tpm: %w: %w", err, ErrDevice)
	}
	return vals, nil
}
