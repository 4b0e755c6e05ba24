package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// PrivateKey is a governance key as its holder keeps it: the private key
// and the public identity (id, owner) the manifest knows it by. The CLI and
// tools sign with it; enclaves never hold one.
type PrivateKey struct {
	Public PublicKey
	Signer crypto.Signer
}

// Sign signs Message(domain, body).
func (k *PrivateKey) Sign(domain string, body []byte) ([]byte, error) {
	return Sign(k.Signer, domain, body)
}

// pemType is the PEM block type of a key file; its body is PKCS#8 and its
// headers name the key.
const pemType = "PRIVATE KEY"

// Generate makes a new governance key.
func Generate(id, owner, algorithm string) (*PrivateKey, error) {
	var signer crypto.Signer
	var pub []byte
	switch algorithm {
	case Ed25519:
		p, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		signer, pub = priv, p
	case ECDSAP256:
		priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		der, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
		if err != nil {
			return nil, err
		}
		signer, pub = priv, der
	default:
		return nil, fmt.Errorf("keys: algorithm %q unsupported (want %s or %s)", algorithm, Ed25519, ECDSAP256)
	}
	k := &PrivateKey{Public: PublicKey{ID: id, Owner: owner, Algorithm: algorithm, Key: pub}, Signer: signer}
	if err := k.Public.Validate(); err != nil {
		return nil, err
	}
	return k, nil
}

// Encode returns the key file: a PEM "PRIVATE KEY" block (PKCS#8) with
// Key-Id, Owner and Algorithm headers.
func (k *PrivateKey) Encode() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k.Signer)
	if err != nil {
		return nil, fmt.Errorf("keys: encode key %q: %v", k.Public.ID, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemType, Headers: map[string]string{
		"Key-Id": k.Public.ID, "Owner": k.Public.Owner, "Algorithm": k.Public.Algorithm,
	}, Bytes: der}), nil
}

// WriteFile writes the key file at path with mode 0600, atomically, and
// refuses to replace an existing file (a key is never silently lost).
func (k *PrivateKey) WriteFile(path string) error {
	data, err := k.Encode()
	if err != nil {
		return err
	}
	if _, err := os.Stat(path); err == nil {
		return fmt.Errorf("keys: %s exists; refusing to overwrite a key file", path)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".key-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		return fmt.Errorf("keys: write %s: %w", path, err)
	}
	return nil
}

// ParsePrivate decodes a key file.
func ParsePrivate(data []byte) (*PrivateKey, error) {
	b, rest := pem.Decode(data)
	if b == nil || b.Type != pemType {
		return nil, errors.New("keys: not a governance key file (want a PEM \"PRIVATE KEY\" block)")
	}
	if len(rest) != 0 && len(pemTrim(rest)) != 0 {
		return nil, errors.New("keys: key file has trailing data")
	}
	priv, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("keys: key file: %v", err)
	}
	k := &PrivateKey{Public: PublicKey{ID: b.Headers["Key-Id"], Owner: b.Headers["Owner"], Algorithm: b.Headers["Algorithm"]}}
	switch p := priv.(type) {
	case ed25519.PrivateKey:
		k.Signer, k.Public.Key = p, p.Public().(ed25519.PublicKey)
		if k.Public.Algorithm != Ed25519 {
			return nil, fmt.Errorf("keys: key file %q holds an ed25519 key but says algorithm %q", k.Public.ID, k.Public.Algorithm)
		}
	case *ecdsa.PrivateKey:
		if p.Curve != elliptic.P256() || k.Public.Algorithm != ECDSAP256 {
			return nil, fmt.Errorf("keys: key file %q: want an ecdsa P-256 key labelled %s", k.Public.ID, ECDSAP256)
		}
		der, err := x509.MarshalPKIXPublicKey(&p.PublicKey)
		if err != nil {
			return nil, err
		}
		k.Signer, k.Public.Key = p, der
	default:
		return nil, fmt.Errorf("keys: key file holds a %T; want ed25519 or ecdsa P-256", priv)
	}
	if err := k.Public.Validate(); err != nil {
		return nil, err
	}
	return k, nil
}

// LoadPrivate reads a key file. Its error names the path, never key bytes.
func LoadPrivate(path string) (*PrivateKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	k, err := ParsePrivate(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

func pemTrim(b []byte) []byte {
	for len(b) > 0 && (b[0] == '\n' || b[0] == '\r' || b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	return b
}
