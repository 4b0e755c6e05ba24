package api

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
)

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
}

// ManifestParty is one party's entry.
type ManifestParty struct {
	ID   string `json:"id" cbor:"1,keyasint"`
	Kind string `json:"kind" cbor:"2,keyasint"` // "dev", "nitro", "hsm", "tpm"
	// PCRs pins measurements by index (decimal string) to hex values.
	PCRs map[string]string `json:"pcrs" cbor:"3,keyasint"`
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
		for k, v := range p.PCRs {
			idx, err := strconv.Atoi(k)
			if err != nil || idx < 0 || idx > 31 {
				return fmt.Errorf("api: manifest: party %q: pcr index %q invalid", p.ID, k)
			}
			b, err := hex.DecodeString(v)
			if err != nil || (len(b) != 32 && len(b) != 48 && len(b) != 64) {
				return fmt.Errorf("api: manifest: party %q: pcr%d is not 32, 48 or 64 hex-encoded bytes", p.ID, idx)
			}
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
