package tx

import (
	"bufio"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"
)

// loadVector reads a testdata key=value file ('#' starts a comment line).
func loadVector(t testing.TB, name string) map[string]string {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	v := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, val, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: line %q is not key=value", name, line)
		}
		v[k] = val
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return v
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.TrimPrefix(s, "0x"))
	if err != nil {
		t.Fatalf("hex %q: %v", s, err)
	}
	return b
}

// testKey is a deterministic secp256k1 key for tests.
func testKey(t testing.TB, seed byte) (*secp256k1.PrivateKey, Key) {
	t.Helper()
	var b [32]byte
	for i := range b {
		b[i] = seed
	}
	priv := secp256k1.PrivKeyFromBytes(b[:])
	return priv, Key{Algorithm: AlgorithmECDSASecp256k1, PublicKey: priv.PubKey().SerializeCompressed()}
}

// signDigest signs with RFC 6979 and returns the Signature Assemble wants
// (r‖s low-S and the recovery id), via the compact format.
func signDigest(priv *secp256k1.PrivateKey, digest []byte) Signature {
	compact := ecdsa.SignCompact(priv, digest, true) // [27+4+recid] ‖ r ‖ s, low-S
	return Signature{RS: append([]byte(nil), compact[1:]...), RecoveryID: compact[0] - 27 - 4}
}

func signAll(priv *secp256k1.PrivateKey, digests [][]byte) []Signature {
	sigs := make([]Signature, len(digests))
	for i, d := range digests {
		sigs[i] = signDigest(priv, d)
	}
	return sigs
}

// wantErr checks err against the expected class and message fragment.
func wantErr(t *testing.T, err, class error, fragment string) {
	t.Helper()
	if class == nil {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("got no error, want %v containing %q", class, fragment)
	}
	if !errors.Is(err, class) {
		t.Fatalf("error %q is not %v", err, class)
	}
	if !strings.Contains(err.Error(), fragment) {
		t.Fatalf("error %q does not mention %q", err, fragment)
	}
	if !strings.HasPrefix(err.Error(), "tx: ") {
		t.Fatalf("error %q lacks the tx: prefix", err)
	}
}
