package backup

import (
	"crypto/ecdh"
	"crypto/hpke"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"

	"github.com/sealsign/sealsign/enclave/api"
	"github.com/sealsign/sealsign/governance/keys"
)

// The HPKE suite of every recovery ciphertext: the recovery key's KEM
// (api.RecoveryKEM) with HKDF-SHA256 and ChaCha20-Poly1305. The share
// sealed to an enclave uses the enclave's channel suite (enclave/channel):
// DHKEM(X25519), HKDF-SHA256, ChaCha20-Poly1305.
var (
	kdf        = hpke.HKDFSHA256()
	aead       = hpke.ChaCha20Poly1305()
	enclaveKEM = hpke.DHKEM(ecdh.X25519())
)

// pemType is the PEM block of a recovery private key file.
const pemType = "SEALSIGN RECOVERY PRIVATE KEY"

// RecoveryPrivateKey is an offline recovery key. It is kept offline and
// used only by sealsign recover.
type RecoveryPrivateKey struct {
	ID  string
	KEM string
	key hpke.PrivateKey
}

// GenerateRecoveryKey makes a recovery key of kem (api.KEMX25519 or
// api.KEMMLKEM768X25519) from the operating system's entropy.
func GenerateRecoveryKey(id, kem string) (*RecoveryPrivateKey, error) {
	if !keys.ValidName(id) {
		return nil, fmt.Errorf("backup: recovery key id %q invalid (1-64 of letters, digits, '.', '_', '@', '-')", id)
	}
	k, err := api.RecoveryKEM(kem)
	if err != nil {
		return nil, err
	}
	priv, err := k.GenerateKey()
	if err != nil {
		return nil, fmt.Errorf("backup: generate %s key: %w", kem, err)
	}
	return &RecoveryPrivateKey{ID: id, KEM: kem, key: priv}, nil
}

// Public returns the manifest entry of k.
func (k *RecoveryPrivateKey) Public() api.RecoveryKey {
	return api.RecoveryKey{ID: k.ID, KEM: k.KEM, PublicKey: k.key.PublicKey().Bytes()}
}

// MarshalPEM encodes k as a PEM block with Key-Id and KEM headers. The
// result is secret: write it with WriteFileAtomic (mode 0600) and clear it.
func (k *RecoveryPrivateKey) MarshalPEM() ([]byte, error) {
	b, err := k.key.Bytes()
	if err != nil {
		return nil, fmt.Errorf("backup: recovery key %q: %w", k.ID, err)
	}
	defer clear(b)
	return pem.EncodeToMemory(&pem.Block{Type: pemType, Headers: map[string]string{"Key-Id": k.ID, "KEM": k.KEM}, Bytes: b}), nil
}

// ParseRecoveryKey decodes a recovery private key file. Errors never
// include key bytes.
func ParseRecoveryKey(data []byte) (*RecoveryPrivateKey, error) {
	blk, rest := pem.Decode(data)
	if blk == nil || blk.Type != pemType {
		return nil, fmt.Errorf("backup: not a recovery private key file (want a PEM %q block)", pemType)
	}
	defer clear(blk.Bytes)
	if len(rest) != 0 && len(pemTrim(rest)) != 0 {
		return nil, fmt.Errorf("backup: recovery key file has trailing data")
	}
	id, kemName := blk.Headers["Key-Id"], blk.Headers["KEM"]
	if !keys.ValidName(id) || len(blk.Headers) != 2 {
		return nil, fmt.Errorf("backup: recovery key file: want exactly the headers Key-Id (a valid id) and KEM, got %d headers, id %q", len(blk.Headers), id)
	}
	kem, err := api.RecoveryKEM(kemName)
	if err != nil {
		return nil, err
	}
	priv, err := kem.NewPrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("backup: recovery key %q: %s private key invalid", id, kemName)
	}
	return &RecoveryPrivateKey{ID: id, KEM: kemName, key: priv}, nil
}

func pemTrim(b []byte) []byte {
	for len(b) > 0 && (b[0] == '\n' || b[0] == '\r' || b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	return b
}

// LoadRecoveryKey reads a recovery private key file. It refuses a file
// others can read.
func LoadRecoveryKey(path string) (*RecoveryPrivateKey, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("backup: recovery key: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("backup: recovery key %s has mode %04o: others may read it; chmod 600 it", path, st.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("backup: recovery key: %w", err)
	}
	defer clear(b)
	return ParseRecoveryKey(b)
}

// WriteFileAtomic writes data to path with mode perm: a temporary file in
// the same directory, synced, then renamed over path, then the directory
// synced. A crash leaves the old file or the new, never a torn one. With
// exclusive, an existing path is refused.
func WriteFileAtomic(path string, data []byte, perm os.FileMode, exclusive bool) error {
	dir := filepath.Dir(path)
	if exclusive {
		if _, err := os.Lstat(path); err == nil {
			return fmt.Errorf("backup: %s exists; not replacing it", path)
		}
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	name := tmp.Name()
	defer os.Remove(name)
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return fmt.Errorf("backup: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("backup: write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("backup: sync %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if exclusive {
		// Link fails if path appeared meanwhile; rename would replace it.
		if err := os.Link(name, path); err != nil {
			return fmt.Errorf("backup: %s: %w", path, err)
		}
	} else if err := os.Rename(name, path); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
