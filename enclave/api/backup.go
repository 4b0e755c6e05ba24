package api

import (
	"crypto/ecdh"
	"crypto/hpke"
	"fmt"

	"github.com/sealsign/sealsign/governance/keys"
)

// Methods the host calls on the enclave for backup and recovery.
const (
	MethodBackup  = "backup"  // BackupRequest → BackupResponse
	MethodRecover = "recover" // RecoverRequest → RecoverResponse
)

// Recovery KEMs: how a backup is encrypted to an offline recovery key
// (HPKE, RFC 9180, base mode; HKDF-SHA256 and ChaCha20-Poly1305 with either).
const (
	// KEMX25519 is DHKEM(X25519, HKDF-SHA256).
	KEMX25519 = "x25519"
	// KEMMLKEM768X25519 is the post-quantum hybrid of ML-KEM-768 and X25519
	// (crypto/hpke MLKEM768X25519): a backup stays confidential as long as
	// either holds.
	KEMMLKEM768X25519 = "mlkem768-x25519"
)

// RecoveryKEM returns the HPKE KEM a recovery key of kem uses.
func RecoveryKEM(kem string) (hpke.KEM, error) {
	switch kem {
	case KEMX25519:
		return hpke.DHKEM(ecdh.X25519()), nil
	case KEMMLKEM768X25519:
		return hpke.MLKEM768X25519(), nil
	}
	return nil, fmt.Errorf("api: recovery kem %q unknown (want %q or %q)", kem, KEMX25519, KEMMLKEM768X25519)
}

// MaxRecoveryKeys bounds the manifest's recovery keys.
const MaxRecoveryKeys = 16

// RecoveryKey is an offline recovery public key of the manifest's
// governance section: backups are encrypted to it. Its private half is
// kept offline (sealsign recovery-key create) and is needed, with the
// admins' authorisation, to restore a party or (break-glass) the key.
//
// Version 1. Append fields only.
type RecoveryKey struct {
	ID        string `json:"id" cbor:"1,keyasint"`
	KEM       string `json:"kem" cbor:"2,keyasint"`
	PublicKey []byte `json:"public_key" cbor:"3,keyasint"` // the KEM's serialised public key (RFC 9180 SerializePublicKey)
}

// Validate checks the id, the KEM and that the public key parses.
func (k RecoveryKey) Validate() error {
	if !keys.ValidName(k.ID) {
		return fmt.Errorf("api: recovery key id %q invalid (1-64 of letters, digits, '.', '_', '@', '-')", k.ID)
	}
	kem, err := RecoveryKEM(k.KEM)
	if err != nil {
		return fmt.Errorf("api: recovery key %q: %w", k.ID, err)
	}
	if _, err := kem.NewPublicKey(k.PublicKey); err != nil {
		return fmt.Errorf("api: recovery key %q: %s public key (%d bytes) invalid: %v", k.ID, k.KEM, len(k.PublicKey), err)
	}
	return nil
}

// validateRecoveryKeys checks every key and that ids are unique.
func validateRecoveryKeys(ks []RecoveryKey) (map[string]RecoveryKey, error) {
	if len(ks) > MaxRecoveryKeys {
		return nil, fmt.Errorf("api: manifest: governance lists %d recovery keys, limit %d", len(ks), MaxRecoveryKeys)
	}
	out := make(map[string]RecoveryKey, len(ks))
	for _, k := range ks {
		if err := k.Validate(); err != nil {
			return nil, fmt.Errorf("api: manifest: governance: %w", err)
		}
		if _, dup := out[k.ID]; dup {
			return nil, fmt.Errorf("api: manifest: governance: recovery key id %q listed twice", k.ID)
		}
		out[k.ID] = k
	}
	return out, nil
}

// BackupRequest asks the enclave to export its share of a key, encrypted
// to the recovery keys a backup ceremony names.
type BackupRequest struct {
	// Ceremony is a signed ceremony.KindBackup (governance/ceremony).
	Ceremony []byte `cbor:"1,keyasint"`
}

// BackupResponse carries the backup file (enclave/backup format).
type BackupResponse struct {
	Backup []byte `cbor:"1,keyasint"`
}

// RecoverRequest restores this party's share from a backup.
type RecoverRequest struct {
	// Ceremony is a signed ceremony.KindRecover naming this party.
	Ceremony []byte `cbor:"1,keyasint"`
	// Backup is the party's backup file, as the enclave signed it.
	Backup []byte `cbor:"2,keyasint"`
	// Share is the backed-up share, HPKE-sealed by the recovery operator to
	// this enclave's attested identity (backup.SealToEnclave).
	Share []byte `cbor:"3,keyasint"`
}

// RecoverResponse describes the key restored.
type RecoverResponse struct {
	KeyID     string   `cbor:"1,keyasint"`
	Algorithm string   `cbor:"2,keyasint"`
	Epoch     uint64   `cbor:"3,keyasint"`
	Threshold int      `cbor:"4,keyasint"`
	Parties   []string `cbor:"5,keyasint"`
	PublicKey []byte   `cbor:"6,keyasint"`
}
