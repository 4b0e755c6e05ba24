package attestation

import (
	"archive/zip"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

// TestAWSRootPinned checks the embedded anchor: its DER hashes to the pin,
// it is the same certificate the fixtures chain to, and it has the subject,
// key and validity AWS documents.
func TestAWSRootPinned(t *testing.T) {
	root := AWSRoot()
	if got := Fingerprint(root); got != awsRootDERSHA256 { // the value the testvectors README states
		t.Fatalf("AWSRoot DER sha256 = %s, want %s", got, AWSRootSHA256)
	}
	if !bytes.Equal(root.Raw, awsRoot(t).Raw) || !IsAWSRoot(awsRoot(t)) {
		t.Error("embedded root differs from testdata/root.pem")
	}
	if !bytes.Equal(AWSRootPEM(), readVector(t, "root.pem")) {
		t.Error("AWSRootPEM is not byte-identical to testdata/root.pem")
	}
	if got := root.Subject.String(); got != "CN=aws.nitro-enclaves,OU=AWS,O=Amazon,C=US" {
		t.Errorf("subject %q", got)
	}
	if pub, ok := root.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P384() {
		t.Errorf("root key %T, want ECDSA P-384", root.PublicKey)
	}
	if !root.NotBefore.Equal(mustTime("2019-10-28T13:28:05Z")) || !root.NotAfter.Equal(mustTime("2049-10-28T14:28:05Z")) {
		t.Errorf("validity %v .. %v", root.NotBefore, root.NotAfter)
	}
	if !root.IsCA || len(AWSRoots()) != 1 || !IsAWSRoot(AWSRoots()[0]) {
		t.Error("AWSRoots is not exactly the AWS root")
	}
	if IsAWSRoot(nil) || IsAWSRoot(otherRoot(t)) {
		t.Error("IsAWSRoot accepts another certificate")
	}
}

// TestAWSRootCopies checks that a caller altering its copy of the anchor
// changes nothing for the next caller.
func TestAWSRootCopies(t *testing.T) {
	a := AWSRoot()
	a.PublicKey = otherRoot(t).PublicKey
	a.Raw[10] ^= 0xff
	AWSRootPEM()[0] = 'X'
	if b := AWSRoot(); Fingerprint(b) != AWSRootSHA256 || b.PublicKey.(*ecdsa.PublicKey).Equal(a.PublicKey) {
		t.Fatal("mutating a returned root changed the pinned one")
	}
	if !bytes.HasPrefix(AWSRootPEM(), []byte("-----BEGIN CERTIFICATE-----")) {
		t.Fatal("mutating AWSRootPEM's result changed the embedded PEM")
	}
}

// TestAWSRootProvenance re-extracts root.pem from the zip AWS publishes
// (testdata/AWS_NitroEnclaves_Root-G1.zip, sha256 as AWS documents it in
// attestation_process.md §2.1) and compares it with the embedded PEM.
func TestAWSRootProvenance(t *testing.T) {
	raw := readVector(t, "AWS_NitroEnclaves_Root-G1.zip")
	if sum := sha256.Sum256(raw); hex.EncodeToString(sum[:]) != "8cf60e2b2efca96c6a9e71e851d00c1b6991cc09eadbe64a6a1d1b1eb9faff7c" {
		t.Fatalf("zip sha256 = %x", sum)
	}
	zr, err := zip.NewReader(bytes.NewReader(raw), int64(len(raw)))
	if err != nil {
		t.Fatal(err)
	}
	if len(zr.File) != 1 || zr.File[0].Name != "root.pem" {
		t.Fatalf("zip holds %d files, want only root.pem", len(zr.File))
	}
	rc, err := zr.File[0].Open()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	pemBytes, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	embedded, err := os.ReadFile("aws_nitro_root_g1.pem")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(pemBytes, embedded) || !bytes.Equal(pemBytes, awsRootPEM) {
		t.Fatal("embedded aws_nitro_root_g1.pem differs from root.pem in AWS's zip")
	}
}

// TestMustPinnedRoot checks the load-time pin: anything but the pinned
// certificate panics (a build mistake), the pinned one does not.
func TestMustPinnedRoot(t *testing.T) {
	other := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: otherRoot(t).Raw})
	key := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2, 3}})
	tests := []struct {
		name      string
		pem       []byte
		sha       string
		wantPanic string
	}{
		{"pinned root", awsRootPEM, AWSRootSHA256, ""},
		{"another root under the AWS pin", other, AWSRootSHA256, "has DER sha256"},
		{"AWS root under another pin", awsRootPEM, strings.Repeat("00", 32), "want " + strings.Repeat("00", 32)},
		{"two certificates", append(append([]byte{}, awsRootPEM...), other...), AWSRootSHA256, "not exactly one PEM CERTIFICATE"},
		{"a key, not a certificate", key, AWSRootSHA256, "not exactly one PEM CERTIFICATE"},
		{"empty", nil, AWSRootSHA256, "not exactly one PEM CERTIFICATE"},
		{"truncated DER with matching pin", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{0x30, 0x03}}),
			func() string { s := sha256.Sum256([]byte{0x30, 0x03}); return hex.EncodeToString(s[:]) }(), "does not parse"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				r := recover()
				if tt.wantPanic == "" {
					if r != nil {
						t.Fatalf("panic: %v", r)
					}
					return
				}
				msg, _ := r.(string)
				if r == nil || !strings.HasPrefix(msg, "attestation: embedded AWS Nitro root") || !strings.Contains(msg, tt.wantPanic) {
					t.Fatalf("panic %v, want one containing %q", r, tt.wantPanic)
				}
			}()
			der := mustPinnedRoot(tt.pem, tt.sha)
			if !bytes.Equal(der, awsRootDER) {
				t.Fatal("returned DER is not the AWS root's")
			}
		})
	}
}

// ExampleAWSRoots verifies a real AWS document against the embedded,
// pinned AWS root, as production does, at a time inside its window.
func ExampleAWSRoots() {
	doc, _ := os.ReadFile("testdata/qos-mock-2022-07-06.cose")
	res, err := VerifyDetailed(doc, VerifyOptions{
		Roots: AWSRoots(),
		Time:  time.Unix(1657117192, 0),
	})
	if err != nil {
		panic(err)
	}
	root := res.Chain[len(res.Chain)-1]
	fmt.Println(res.Document.ModuleID)
	fmt.Println(root.Subject.CommonName, Fingerprint(root)[:8], IsAWSRoot(root))
	// Output:
	// i-07e25f3bada361dec-enc0181d3dff86da785
	// aws.nitro-enclaves 641a0321 true
}
