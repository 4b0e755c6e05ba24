package server

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/sealsign/sealsign/attestation"
	"github.com/sealsign/sealsign/attestation/devnsm"
	"github.com/sealsign/sealsign/attestation/nitro"
	attesttpm "github.com/sealsign/sealsign/attestation/tpm"
	"github.com/sealsign/sealsign/enclave/api"
	"github.com/sealsign/sealsign/enclave/entropy"
	"github.com/sealsign/sealsign/enclave/party"
	"github.com/sealsign/sealsign/hsm"
	"github.com/sealsign/sealsign/hsm/pkcs11"
	"github.com/sealsign/sealsign/hsm/tpm"
)

// MeasurePCR is where a tpm party measures itself (api.TPMMeasurePCR).
const MeasurePCR = api.TPMMeasurePCR

// hardware is a party's root of trust as the enclave sees it.
type hardware struct {
	kind        string // "dev", "nitro" or "tpm": what this enclave attests as
	sealer      hsm.Sealer
	epochs      hsm.EpochKeys // per key-epoch sealing keys (crypto-shredding)
	rand        *entropy.Mixer
	attester    party.Attester
	measurement []byte // PCR0 for NSM documents, the binary's SHA-384 for tpm
	closers     []func() error
}

func (h *hardware) Close() {
	for i := len(h.closers) - 1; i >= 0; i-- {
		h.closers[i]()
	}
}

// openHardware selects the party's hardware from the options and the
// machine: exactly one of a PKCS#11 token (--hsm) or a TPM (--tpm) seals
// and feeds entropy; the attester is the Nitro NSM whenever /dev/nsm
// exists, else the TPM for a tpm party, else the dev NSM (which needs its
// CA). Any mismatch is a configuration error, never a silent fallback.
func openHardware(o Options, log *slog.Logger) (_ *hardware, err error) {
	h := &hardware{}
	defer func() {
		if err != nil {
			h.Close()
		}
	}()
	switch {
	case o.HSM != "" && o.TPM != "":
		return nil, errors.New("enclave: both --hsm and --tpm given: a party seals with exactly one of them")
	case o.HSM == "" && o.TPM == "":
		return nil, errors.New("enclave: no hardware root: pass --hsm PKCS11-URI (hsm, dev and nitro parties) or --tpm DEVICE|simulator:SEEDFILE (tpm parties)")
	}
	self, err := devnsm.MeasureSelf()
	if err != nil {
		return nil, fmt.Errorf("enclave: measure own binary: %w", err)
	}
	var hw io.Reader
	var tp *tpm.TPM
	if o.HSM != "" {
		tok, err := pkcs11.Open(o.HSM)
		if err != nil {
			return nil, err
		}
		h.closers = append(h.closers, tok.Close)
		if h.sealer, err = tok.Sealer(SealingKeyLabel, true); err != nil {
			return nil, err
		}
		h.epochs = tok
		hw = tok
	} else {
		if tp, err = openTPM(o.TPM, log); err != nil {
			return nil, err
		}
		h.closers = append(h.closers, tp.Close)
		// Measure ourselves from a known start, so a restart on the same
		// boot reaches the same value and a different binary another.
		if err := tp.ResetPCR(MeasurePCR); err != nil {
			return nil, err
		}
		if err := tp.ExtendPCR(MeasurePCR, self); err != nil {
			return nil, err
		}
		if h.sealer, err = tp.Sealer(tpmPCRs(o)); err != nil {
			return nil, err
		}
		if h.epochs, err = tp.Epochs(tpmPCRs(o)); err != nil {
			return nil, err
		}
		hw = tp
	}
	if h.rand, err = entropy.New(hw, rand.Reader); err != nil {
		return nil, err
	}

	switch {
	case nitro.Available():
		if o.DevCACert != "" || tp != nil {
			return nil, errors.New("enclave: running in a Nitro Enclave (/dev/nsm present): attestation comes from the NSM; drop --dev-ca-cert/--dev-ca-key and --tpm")
		}
		nsm, err := nitro.Open()
		if err != nil {
			return nil, err
		}
		h.closers = append(h.closers, nsm.Close)
		// The NSM's randomness joins the HSM's and the OS's.
		if h.rand, err = entropy.New(nsm, h.rand); err != nil {
			return nil, err
		}
		if h.measurement, err = nitroSelfMeasurement(nsm, log); err != nil {
			return nil, err
		}
		h.kind, h.attester = "nitro", nsm
	case tp != nil:
		if o.DevCACert != "" || o.DevCAKey != "" {
			return nil, errors.New("enclave: a tpm party attests with its TPM: drop --dev-ca-cert/--dev-ca-key")
		}
		ak, err := attesttpm.NewAK(tp)
		if err != nil {
			return nil, err
		}
		h.closers = append(h.closers, ak.Close)
		if h.attester, err = attesttpm.NewAttester(ak, tpmPCRs(o)); err != nil {
			return nil, err
		}
		h.kind, h.measurement = "tpm", self
	default:
		if o.DevCACert == "" || o.DevCAKey == "" {
			return nil, errors.New("enclave: no attester: outside a Nitro Enclave a dev party needs --dev-ca-cert and --dev-ca-key (or --tpm for a tpm party)")
		}
		ca, err := devnsm.LoadCA(o.DevCACert, o.DevCAKey)
		if err != nil {
			return nil, err
		}
		if h.attester, err = devnsm.New(ca, "sealsign-dev", map[uint][]byte{0: self}, h.rand, time.Now); err != nil {
			return nil, err
		}
		h.kind, h.measurement = "dev", self
	}
	return h, nil
}

// tpmPCRs is a tpm party's policy selection, the same for sealing and for
// quotes: MeasurePCR and the operator's further PCRs, sorted, each once.
func tpmPCRs(o Options) []int {
	pcrs := append([]int{MeasurePCR}, o.TPMSealPCRs...)
	slices.Sort(pcrs)
	return slices.Compact(pcrs)
}

// openTPM opens "simulator:SEEDFILE" (the in-process reference simulator:
// dev and tests only, it protects nothing) or a device path.
func openTPM(spec string, log *slog.Logger) (*tpm.TPM, error) {
	if seed, ok := strings.CutPrefix(spec, "simulator:"); ok {
		log.Warn("using the TPM SIMULATOR: its seed file recreates every key; dev and tests only", "seed_file", seed)
		return tpm.OpenSimulator(seed)
	}
	return tpm.Open(spec)
}

// nitroSelfMeasurement asks the NSM for a document and verifies it against
// the pinned AWS root before trusting its PCR0: an enclave that cannot
// verify its own attestation refuses to start (fail closed).
func nitroSelfMeasurement(nsm *nitro.NSM, log *slog.Logger) ([]byte, error) {
	nonce := make([]byte, 32)
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	raw, err := nsm.Attest(nil, nil, nonce)
	if err != nil {
		return nil, fmt.Errorf("enclave: self-attestation: %w", err)
	}
	doc, err := attestation.Verify(raw, attestation.VerifyOptions{
		Roots: attestation.AWSRoots(), Time: time.Now(), MaxAge: 5 * time.Minute, Nonce: nonce,
	})
	if err != nil {
		return nil, fmt.Errorf("enclave: own NSM document does not verify: %w", err)
	}
	if doc.Debug() {
		log.Warn("enclave runs in debug mode (PCR0 all zero): peers refuse it unless their policy allows debug enclaves")
	}
	return doc.PCRs[0], nil
}
