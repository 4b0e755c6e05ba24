package keys

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestKeyFileRoundTrip(t *testing.T) {
	for _, alg := range []string{Ed25519, ECDSAP256} {
		t.Run(alg, func(t *testing.T) {
			k, err := Generate("admin-1", "alice", alg)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			path := filepath.Join(dir, "admin-1.key")
			if err := k.WriteFile(path); err != nil {
				t.Fatal(err)
			}
			got, err := LoadPrivate(path)
			if err != nil {
				t.Fatal(err)
			}
			if got.Public.ID != "admin-1" || got.Public.Owner != "alice" || got.Public.Algorithm != alg || !bytes.Equal(got.Public.Key, k.Public.Key) {
				t.Fatalf("loaded public key %+v, want %+v", got.Public, k.Public)
			}
			// The loaded key signs what the original public key verifies.
			sig, err := got.Sign("sealsign/v1/test", []byte("body"))
			if err != nil {
				t.Fatal(err)
			}
			if err := k.Public.Verify("sealsign/v1/test", []byte("body"), sig); err != nil {
				t.Fatalf("signature of the loaded key: %v", err)
			}
			// Encoding is stable: the loaded key encodes to the file.
			file, _ := os.ReadFile(path)
			enc, err := got.Encode()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(enc, file) {
				t.Fatalf("re-encoded key file differs:\n%s\nwant\n%s", enc, file)
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if perm := fi.Mode().Perm(); perm != 0o600 {
				t.Fatalf("key file mode %v, want 0600", perm)
			}
			// No temporary file is left behind.
			ents, _ := os.ReadDir(dir)
			if len(ents) != 1 {
				t.Fatalf("directory holds %d entries after WriteFile, want 1 (the key)", len(ents))
			}
		})
	}
}

func TestKeyFileRefusesOverwrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.key")
	first, err := Generate("client-1", "ops", Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	if err := first.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)
	second, err := Generate("client-1", "ops", Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	err = second.WriteFile(path)
	if err == nil || !strings.Contains(err.Error(), "refusing to overwrite") {
		t.Fatalf("second WriteFile: %v, want a refusal to overwrite", err)
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Fatal("refused WriteFile changed the existing key file")
	}
	// A file that is not a key is not replaced either.
	other := filepath.Join(t.TempDir(), "notes.txt")
	os.WriteFile(other, []byte("keep me"), 0o644)
	if err := second.WriteFile(other); err == nil {
		t.Fatal("WriteFile replaced an existing non-key file")
	}
}

// encodeFile returns a key file for alg and its PEM block, for tampering.
func encodeFile(t *testing.T, alg string) ([]byte, *pem.Block) {
	t.Helper()
	k, err := Generate("approver-1", "bob", alg)
	if err != nil {
		t.Fatal(err)
	}
	data, err := k.Encode()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(data)
	if b == nil {
		t.Fatal("Encode did not produce PEM")
	}
	return data, b
}

func reencode(b *pem.Block, mutate func(b *pem.Block)) []byte {
	c := &pem.Block{Type: b.Type, Headers: map[string]string{}, Bytes: b.Bytes}
	for k, v := range b.Headers {
		c.Headers[k] = v
	}
	mutate(c)
	return pem.EncodeToMemory(c)
}

func TestParsePrivateRefuses(t *testing.T) {
	edFile, edBlock := encodeFile(t, Ed25519)
	_, pBlock := encodeFile(t, ECDSAP256)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	rsaDER, _ := x509.MarshalPKCS8PrivateKey(rsaKey)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p384DER, _ := x509.MarshalPKCS8PrivateKey(p384)

	for _, tt := range []struct {
		name string
		data []byte
		want string
	}{
		{"ed25519 labelled ecdsa-p256", reencode(edBlock, func(b *pem.Block) { b.Headers["Algorithm"] = ECDSAP256 }),
			`holds an ed25519 key but says algorithm "ecdsa-p256"`},
		{"ecdsa-p256 labelled ed25519", reencode(pBlock, func(b *pem.Block) { b.Headers["Algorithm"] = Ed25519 }),
			"want an ecdsa P-256 key labelled ecdsa-p256"},
		{"algorithm header missing", reencode(edBlock, func(b *pem.Block) { delete(b.Headers, "Algorithm") }),
			`says algorithm ""`},
		{"key id invalid", reencode(edBlock, func(b *pem.Block) { b.Headers["Key-Id"] = "bad id" }),
			`key id "bad id" invalid`},
		{"owner missing", reencode(edBlock, func(b *pem.Block) { delete(b.Headers, "Owner") }),
			`owner "" invalid`},
		{"wrong PEM type", reencode(edBlock, func(b *pem.Block) { b.Type = "EC PRIVATE KEY" }),
			`want a PEM "PRIVATE KEY" block`},
		{"public key block", reencode(edBlock, func(b *pem.Block) { b.Type = "PUBLIC KEY" }),
			`want a PEM "PRIVATE KEY" block`},
		{"not PEM", []byte("hello"), "not a governance key file"},
		{"empty", nil, "not a governance key file"},
		{"trailing garbage", append(append([]byte(nil), edFile...), "garbage\n"...), "trailing data"},
		{"second block", append(append([]byte(nil), edFile...), edFile...), "trailing data"},
		{"body not PKCS#8", reencode(edBlock, func(b *pem.Block) { b.Bytes = b.Bytes[:len(b.Bytes)-1] }), "keys: key file:"},
		{"rsa key", reencode(edBlock, func(b *pem.Block) { b.Bytes = rsaDER }), "holds a *rsa.PrivateKey"},
		{"p384 key labelled ecdsa-p256", reencode(pBlock, func(b *pem.Block) { b.Bytes = p384DER }),
			"want an ecdsa P-256 key"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			k, err := ParsePrivate(tt.data)
			if err == nil {
				t.Fatalf("accepted: %+v", k.Public)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q, want it to contain %q", err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "keys: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
			// Errors never quote key material.
			for _, line := range strings.Split(string(tt.data), "\n") {
				if len(line) >= 16 && !strings.Contains(line, ":") && strings.Contains(err.Error(), line) {
					t.Fatalf("error quotes the key file body: %q", err)
				}
			}
		})
	}
}

func TestParsePrivateAcceptsTrailingWhitespace(t *testing.T) {
	data, _ := encodeFile(t, ECDSAP256)
	if _, err := ParsePrivate(append(data, "\n\r\n\t \n"...)); err != nil {
		t.Fatalf("trailing whitespace refused: %v", err)
	}
}

func TestLoadPrivateNamesPath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "broken.key")
	os.WriteFile(path, []byte("not a key"), 0o600)
	_, err := LoadPrivate(path)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "not a governance key file") {
		t.Fatalf("LoadPrivate: %v, want the path and the reason", err)
	}
	if _, err := LoadPrivate(filepath.Join(t.TempDir(), "missing.key")); !os.IsNotExist(err) {
		t.Fatalf("missing file: %v, want a not-exist error", err)
	}
}

func TestGenerateRefuses(t *testing.T) {
	for _, tt := range []struct{ id, owner, alg, want string }{
		{"k1", "alice", "rsa", `algorithm "rsa" unsupported`},
		{"", "alice", Ed25519, `key id "" invalid`},
		{"k1", "no owner", ECDSAP256, `owner "no owner" invalid`},
	} {
		if _, err := Generate(tt.id, tt.owner, tt.alg); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Generate(%q, %q, %q): %v, want %q", tt.id, tt.owner, tt.alg, err, tt.want)
		}
	}
}
