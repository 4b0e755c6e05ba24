package api

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"regexp"
	"sort"
	"strconv"

	"github.com/sealsign/sealsign/attestation/peer"
)

// TPMMeasurePCR is the TPM PCR a tpm party measures its own binary into at
// start (reset, then extended once with the binary's SHA-384), so its
// manifest entry pins pcrs {"23": SHA-256(zeros ‖ SHA-256(measurement))}.
// PC Client PCR 23, "application support", is resettable at locality 0: it
// tells binaries apart, not this host's root from the enclave (hsm/tpm);
// production tpm parties add boot PCRs to their policy.
const TPMMeasurePCR = 23

// Manifest describes a cluster: its parties, their expected measurements and
// the signing threshold. Every enclave is initialised with it and attests its
// hash in user_data, so parties configured with different manifests refuse
// each other.
//
// Version 1. Append fields only.
type Manifest struct {
	Version   uint64          `json:"version" cbor:"1,keyasint"`
	ClusterID string          `json:"cluster_id" cbor:"2,keyasint"`
	Threshold int             `json:"threshold" cbor:"3,keyasint"` // t: any t+1 parties sign
	Parties   []ManifestParty `json:"parties" cbor:"4,keyasint"`
	// DevRoots are PEM certificates of dev NSM roots. A dev attestation is
	// accepted only from a root listed here; production manifests leave it empty.
	DevRoots []string `json:"dev_roots,omitempty" cbor:"5,keyasint,omitempty"`
	// Governance holds admins, approvers, clients and the genesis policy.
	// A manifest without it has no signing requests governed by policy:
	// its parties sign only through the ungoverned dev API, and say so.
	Governance *Governance `json:"governance,omitempty" cbor:"6,keyasint,omitempty"`
}

// ManifestParty is one party's entry.
type ManifestParty struct {
	ID   string `json:"id" cbor:"1,keyasint"`
	Kind string `json:"kind" cbor:"2,keyasint"` // "dev", "nitro", "hsm", "tpm"
	// PCRs pins measurements by index (decimal string) to hex values: NSM
	// PCRs (SHA-384) for dev and nitro parties, SHA-256 bank PCRs for tpm
	// parties.
	PCRs map[string]string `json:"pcrs" cbor:"3,keyasint"`
	// AK is a tpm party's attestation key, hex PKIX DER (ECDSA P-256),
	// pinned at enrolment; required for kind tpm, refused for the others.
	AK string `json:"ak,omitempty" cbor:"4,keyasint,omitempty"`
}

var partyIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)

// ParseManifest decodes and validates a JSON manifest.
func ParseManifest(data []byte) (*Manifest, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	m := new(Manifest)
	if err := dec.Decode(m); err != nil {
		return nil, fmt.Errorf("api: manifest: %w", err)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m, nil
}

// Validate checks the manifest's internal consistency.
func (m *Manifest) Validate() error {
	if m.Version != 1 {
		return fmt.Errorf("api: manifest: version %d unsupported, want 1", m.Version)
	}
	if m.ClusterID == "" {
		return fmt.Errorf("api: manifest: cluster_id is empty")
	}
	n := len(m.Parties)
	if n < 2 || n > 16 {
		return fmt.Errorf("api: manifest: %d parties, want 2 to 16", n)
	}
	if m.Threshold < 1 || m.Threshold >= n {
		return fmt.Errorf("api: manifest: threshold %d invalid for %d parties (want 1 ≤ t < n; t+1 parties sign)", m.Threshold, n)
	}
	seen := map[string]bool{}
	for _, p := range m.Parties {
		if !partyIDPattern.MatchString(p.ID) {
			return fmt.Errorf("api: manifest: party id %q invalid (want lowercase letters, digits and '-', at most 32)", p.ID)
		}
		if seen[p.ID] {
			return fmt.Errorf("api: manifest: party %q listed twice", p.ID)
		}
		seen[p.ID] = true
		switch p.Kind {
		case "dev", "nitro", "hsm", "tpm":
		default:
			return fmt.Errorf("api: manifest: party %q has unknown kind %q", p.ID, p.Kind)
		}
		if len(p.PCRs) == 0 {
			return fmt.Errorf("api: manifest: party %q pins no measurement (pcrs is empty)", p.ID)
		}
		if p.Kind == "tpm" {
			if _, err := p.akPublic(); err != nil {
				return err
			}
		} else if p.AK != "" {
			return fmt.Errorf("api: manifest: party %q of kind %q has an ak; only tpm parties attest with one", p.ID, p.Kind)
		}
		for k, v := range p.PCRs {
			idx, err := strconv.Atoi(k)
			if err != nil || idx < 0 || idx > 31 {
				return fmt.Errorf("api: manifest: party %q: pcr index %q invalid", p.ID, k)
			}
			b, err := hex.DecodeString(v)
			if err != nil || (len(b) != 32 && len(b) != 48 && len(b) != 64) {
				return fmt.Errorf("api: manifest: party %q: pcr%d is not 32, 48 or 64 hex-encoded bytes", p.ID, idx)
			}
			if p.Kind == "tpm" && (len(b) != 32 || idx > 23) {
				return fmt.Errorf("api: manifest: tpm party %q: pcr%d must be a SHA-256 bank PCR 0..23 (32 bytes), got %d bytes", p.ID, idx, len(b))
			}
		}
	}
	if m.Governance != nil {
		if _, err := m.Governance.Sets(); err != nil {
			return err
		}
	}
	return nil
}

// Hash is SHA-256 over the manifest's deterministic CBOR encoding, so JSON
// formatting does not change it.
func (m *Manifest) Hash() ([]byte, error) {
	b, err := Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("api: manifest: encode: %w", err)
	}
	h := sha256.Sum256(append([]byte("sealsign/v1/manifest\x00"), b...))
	return h[:], nil
}

// Party returns the entry for id.
func (m *Manifest) Party(id string) (ManifestParty, bool) {
	for _, p := range m.Parties {
		if p.ID == id {
			return p, true
		}
	}
	return ManifestParty{}, false
}

// PartyIDs returns the party ids in sorted order.
func (m *Manifest) PartyIDs() []string {
	ids := make([]string, len(m.Parties))
	for i, p := range m.Parties {
		ids[i] = p.ID
	}
	sort.Strings(ids)
	return ids
}

func (p ManifestParty) akPublic() (crypto.PublicKey, error) {
	der, err := hex.DecodeString(p.AK)
	if err != nil || len(der) == 0 {
		return nil, fmt.Errorf("api: manifest: tpm party %q needs ak, its attestation key as hex PKIX DER (sealsign dev up writes it)", p.ID)
	}
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("api: manifest: tpm party %q: ak is not a PKIX public key: %v", p.ID, err)
	}
	if ec, ok := pub.(*ecdsa.PublicKey); !ok || ec.Curve.Params().Name != "P-256" {
		return nil, fmt.Errorf("api: manifest: tpm party %q: ak must be an ECDSA P-256 key", p.ID)
	}
	return pub, nil
}

// AttestationPolicy is what party id must prove to be accepted, under this
// manifest: its kind, its pinned PCRs, and the trust anchor of its kind
// (the manifest's dev roots, the pinned AWS root, or its pinned TPM AK).
func (m *Manifest) AttestationPolicy(id string) (peer.Policy, error) {
	p, ok := m.Party(id)
	if !ok {
		return peer.Policy{}, fmt.Errorf("api: manifest: %q is not a party of cluster %q (parties: %v)", id, m.ClusterID, m.PartyIDs())
	}
	var roots []*x509.Certificate
	if p.Kind == peer.KindDev {
		var err error
		if roots, err = m.DevRootCerts(); err != nil {
			return peer.Policy{}, err
		}
	}
	return p.attestationPolicy(roots)
}

// AttestationPolicies are every party's AttestationPolicy, with the dev
// roots and attestation keys parsed once: an enclave computes them when it
// is initialised, not on each peer's attestation.
func (m *Manifest) AttestationPolicies() (map[string]peer.Policy, error) {
	roots, err := m.DevRootCerts()
	if err != nil {
		return nil, err
	}
	out := make(map[string]peer.Policy, len(m.Parties))
	for _, p := range m.Parties {
		if out[p.ID], err = p.attestationPolicy(roots); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (p ManifestParty) attestationPolicy(devRoots []*x509.Certificate) (peer.Policy, error) {
	pol := peer.Policy{Kind: p.Kind, PCRs: p.PinnedPCRs()}
	switch p.Kind {
	case peer.KindDev:
		pol.DevRoots = devRoots
	case peer.KindTPM:
		ak, err := p.akPublic()
		if err != nil {
			return peer.Policy{}, err
		}
		pol.AKPublic = ak
	}
	return pol, nil
}

// DevRootCerts parses the manifest's dev roots.
func (m *Manifest) DevRootCerts() ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for i, s := range m.DevRoots {
		blk, _ := pem.Decode([]byte(s))
		if blk == nil || blk.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("api: manifest: dev_roots[%d] is not a PEM certificate", i)
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("api: manifest: dev_roots[%d]: %v", i, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// PinnedPCRs returns a party's pinned measurements decoded.
func (p ManifestParty) PinnedPCRs() map[uint][]byte {
	out := make(map[uint][]byte, len(p.PCRs))
	for k, v := range p.PCRs {
		idx, _ := strconv.Atoi(k)
		b, _ := hex.DecodeString(v)
		out[uint(idx)] = b
	}
	return out
}
