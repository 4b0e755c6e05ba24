// Package peer verifies the evidence a cluster party presents, whatever its
// kind: a Nitro or dev NSM attestation document (COSE_Sign1, package
// attestation) or TPM evidence (package attestation/tpm). The enclave (peer
// channels), the host and the CLI (sealsign attest fetch) all call Verify,
// so a party is judged the same way everywhere.
package peer

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"fmt"
	"time"

	"github.com/sealsign/sealsign/attestation"
	"github.com/sealsign/sealsign/attestation/tpm"
)

// Party kinds (DESIGN.md, "Party kinds").
const (
	KindDev   = "dev"
	KindNitro = "nitro"
	KindTPM   = "tpm"
	KindHSM   = "hsm"
)

// Policy is what a party of a given kind must prove. The zero value
// verifies nothing and is refused.
type Policy struct {
	Kind string
	// PCRs are the pinned measurements: for dev and nitro parties NSM PCRs
	// (SHA-384, 48 bytes), for tpm parties SHA-256 bank PCRs (32 bytes).
	// Every PCR named must be present with exactly this value.
	PCRs map[uint][]byte
	// DevRoots are the trust anchors of dev parties (the manifest's
	// dev_roots); required for kind dev, ignored otherwise. A nitro party
	// is always verified against the pinned AWS root only.
	DevRoots []*x509.Certificate
	// AKPublic is a tpm party's pinned attestation key; required for kind
	// tpm.
	AKPublic crypto.PublicKey
	// AllowDebug accepts Nitro enclaves in debug mode (PCR0 all zero),
	// whose memory the parent instance can read. Development on real
	// Nitro hardware only; never in a production manifest.
	AllowDebug bool
}

// Expect binds the evidence to a use: each non-nil field must equal the
// evidence's field byte for byte.
type Expect struct {
	Nonce, UserData, PublicKey []byte
}

// Verified is evidence that passed every check.
type Verified struct {
	Kind     string
	ModuleID string // Nitro/dev module id; "tpm" for TPM evidence
	// PCRs holds the pinned PCRs' verified values (the whole document's
	// PCRs for NSM documents).
	PCRs      map[uint][]byte
	PublicKey []byte
	UserData  []byte
	Nonce     []byte
	// Time is an NSM document's timestamp; zero for TPM evidence (a TPM
	// has no wall clock: order TPM evidence by TPMClock instead).
	Time     time.Time
	TPMClock *tpm.ClockInfo
}

// Verify checks raw under pol and exp at time now. maxAge bounds an NSM
// document's age (live checks); TPM evidence carries no wall-clock time,
// so its freshness comes from exp.Nonce or from ordering by TPMClock
// (EarlierBoot). Errors name the failed check with expected and actual values;
// hostile input never panics.
func Verify(raw []byte, pol Policy, exp Expect, now time.Time, maxAge time.Duration) (*Verified, error) {
	switch pol.Kind {
	case KindDev, KindNitro:
		opts := attestation.VerifyOptions{
			Time:       now,
			MaxAge:     maxAge,
			PCRs:       pol.PCRs,
			AllowDebug: pol.AllowDebug && pol.Kind == KindNitro,
			Nonce:      exp.Nonce,
			UserData:   exp.UserData,
			PublicKey:  exp.PublicKey,
		}
		if pol.Kind == KindNitro {
			opts.Roots = attestation.AWSRoots()
		} else {
			if len(pol.DevRoots) == 0 {
				return nil, fmt.Errorf("peer: a dev party is verified only against dev roots the manifest names, and it names none")
			}
			opts.Roots = pol.DevRoots
		}
		doc, err := attestation.Verify(raw, opts)
		if err != nil {
			return nil, err
		}
		return &Verified{Kind: pol.Kind, ModuleID: doc.ModuleID, PCRs: doc.PCRs, PublicKey: doc.PublicKey,
			UserData: doc.UserData, Nonce: doc.Nonce, Time: doc.Time()}, nil
	case KindTPM:
		if pol.AKPublic == nil {
			return nil, fmt.Errorf("peer: a tpm party needs its attestation key pinned in the manifest (ak)")
		}
		want := make(map[int][]byte, len(pol.PCRs))
		for i, v := range pol.PCRs {
			want[int(i)] = v
		}
		ev, err := tpm.VerifyEvidence(raw, tpm.VerifyOptions{
			AKPublic: pol.AKPublic, PCRs: want,
			Nonce: exp.Nonce, UserData: exp.UserData, PublicKey: exp.PublicKey,
		})
		if err != nil {
			return nil, err
		}
		pcrs := make(map[uint][]byte, len(ev.Quote.PCRs))
		for i, v := range ev.Quote.PCRs {
			pcrs[uint(i)] = v
		}
		clock := ev.Clock
		return &Verified{Kind: KindTPM, ModuleID: "tpm", PCRs: pcrs, PublicKey: ev.PublicKey,
			UserData: ev.UserData, Nonce: ev.Nonce, TPMClock: &clock}, nil
	case KindHSM:
		return nil, fmt.Errorf("peer: parties of kind %q attest with a TPM quote: declare them as kind %q with their attestation key", KindHSM, KindTPM)
	case "":
		return nil, fmt.Errorf("peer: policy names no party kind")
	default:
		return nil, fmt.Errorf("peer: unknown party kind %q (want %s, %s or %s)", pol.Kind, KindDev, KindNitro, KindTPM)
	}
}

// EarlierBoot reports whether TPM clock b is from an earlier boot of the
// TPM than a: a lower reset count, or the same reset count and a lower
// restart count (TPM 2.0 Part 1 §36.6). A verifier that remembers the last
// clock it accepted from a party refuses evidence from an earlier boot — a
// replay. It does not compare Clock: a process restart on the same boot is
// legitimate, and the reference simulator starts its clock at zero on every
// start. Evidence replayed from earlier in the current boot names identity
// keys that lived only in an earlier process; it lets a host deny service,
// which it can anyway, and no more. Live checks add a fresh nonce.
func EarlierBoot(a, b tpm.ClockInfo) bool {
	if b.ResetCount != a.ResetCount {
		return b.ResetCount < a.ResetCount
	}
	return b.RestartCount < a.RestartCount
}

// Measurement returns the PCR a party kind is measured by and its value in
// v: PCR0 (the enclave image) for NSM documents, the lowest pinned PCR for
// TPM evidence. For display and status; policy checks use Policy.PCRs.
func Measurement(v *Verified, pol Policy) (uint, []byte) {
	if v.Kind != KindTPM {
		return 0, bytes.Clone(v.PCRs[0])
	}
	best, found := uint(0), false
	for i := range pol.PCRs {
		if !found || i < best {
			best, found = i, true
		}
	}
	return best, bytes.Clone(v.PCRs[best])
}
