package auditlog

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/sealsign/sealsign/attestation/peer"
	"github.com/sealsign/sealsign/enclave/api"
	"github.com/sealsign/sealsign/enclave/audit"
)

// Hex is a byte string that prints as lowercase hex in JSON.
type Hex []byte

func (h Hex) MarshalJSON() ([]byte, error) {
	return []byte(`"` + hex.EncodeToString(h) + `"`), nil
}

func (h *Hex) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	d, err := hex.DecodeString(s)
	if err != nil {
		return fmt.Errorf("auditlog: %q is not hex", s)
	}
	*h = d
	return nil
}

func (h Hex) String() string { return hex.EncodeToString(h) }

// Boot is a boot entry that passed Trust: the signer key it introduced and
// the measurement its attestation proved.
type Boot struct {
	Index     int       `json:"index"` // position in the verified entries
	Seq       uint64    `json:"seq"`
	Time      time.Time `json:"time"` // the boot entry's time
	SignerKey Hex       `json:"signer_key"`
	Kind      string    `json:"kind"` // party kind: dev, nitro, tpm
	ModuleID  string    `json:"module_id"`
	// PCR and Measurement are what the party kind is measured by
	// (peer.Measurement): PCR0 for NSM documents, the lowest pinned PCR for
	// TPM evidence.
	PCR         uint `json:"pcr"`
	Measurement Hex  `json:"measurement"`
	// AttestedAt is an NSM document's timestamp; zero for TPM evidence.
	AttestedAt time.Time `json:"attested_at,omitzero"`
	// ReportedMeasurement is the boot entry's own Measurement field (for
	// NSM parties equal to the attested PCR0; for TPM parties the binary's
	// SHA-384, which the TPM PCR extends).
	ReportedMeasurement Hex    `json:"reported_measurement,omitempty"`
	Software            string `json:"software,omitempty"`
}

// Trust decides whether a boot entry of one party may introduce its signer
// key, under one cluster manifest. See the package documentation.
type Trust struct {
	party        string
	policy       peer.Policy
	manifestHash []byte
}

// NewTrust is the trust check of party partyID's log under manifest m.
func NewTrust(m *api.Manifest, partyID string) (*Trust, error) {
	if m == nil {
		return nil, errors.New("auditlog: no manifest: a log is verified against the cluster manifest that pins its parties' measurements")
	}
	pol, err := m.AttestationPolicy(partyID)
	if err != nil {
		return nil, err
	}
	h, err := m.Hash()
	if err != nil {
		return nil, err
	}
	return &Trust{party: partyID, policy: pol, manifestHash: h}, nil
}

// Check verifies boot, the body of a boot entry dated at and signed by
// signerKey, and returns what it proved (Index and Seq are the caller's to
// fill in). A nil boot — a run whose boot entry is not at hand — is
// refused: only the caller can vouch for such a run (Options.Start).
// Errors name the failed check.
func (t *Trust) Check(signerKey []byte, boot *audit.Boot, at time.Time) (*Boot, error) {
	if boot == nil {
		return nil, fmt.Errorf("auditlog: signer key %s has no boot entry in these entries: verify from the log's first entry, or give the head the segment continues from", short(signerKey))
	}
	v, err := peer.Verify(boot.AttestationDocument, t.policy, peer.Expect{UserData: t.manifestHash}, at, 0)
	if err != nil {
		return nil, fmt.Errorf("auditlog: attestation of party %q at %s: %w", t.party, at.UTC().Format(time.RFC3339Nano), err)
	}
	var id api.Identity
	if err := api.Unmarshal(v.PublicKey, &id); err != nil {
		return nil, fmt.Errorf("auditlog: attested public_key is not an enclave identity: %v", err)
	}
	if id.PartyID != t.party {
		return nil, fmt.Errorf("auditlog: attestation names party %q, want %q", id.PartyID, t.party)
	}
	if !bytes.Equal(id.SigningKey, signerKey) {
		return nil, fmt.Errorf("auditlog: attested signing key is %s, the boot entry's signer key %s (a document of another boot)", short(id.SigningKey), short(signerKey))
	}
	if len(boot.ManifestHash) != 0 && !bytes.Equal(boot.ManifestHash, t.manifestHash) {
		return nil, fmt.Errorf("auditlog: boot entry names manifest %s, verified under %s", short(boot.ManifestHash), short(t.manifestHash))
	}
	pcr, val := peer.Measurement(v, t.policy)
	if v.Kind != peer.KindTPM && len(boot.Measurement) != 0 && !bytes.Equal(boot.Measurement, val) {
		return nil, fmt.Errorf("auditlog: boot entry reports measurement %s, its attestation pcr0 %s", short(boot.Measurement), short(val))
	}
	return &Boot{
		Time: at, SignerKey: bytes.Clone(signerKey), Kind: v.Kind, ModuleID: v.ModuleID,
		PCR: pcr, Measurement: val, AttestedAt: v.Time, ReportedMeasurement: bytes.Clone(boot.Measurement), Software: boot.Software,
	}, nil
}

// short is the first 8 bytes of b in hex, for messages.
func short(b []byte) string {
	if len(b) > 8 {
		return hex.EncodeToString(b[:8]) + "…"
	}
	return hex.EncodeToString(b)
}
