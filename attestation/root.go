package attestation

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	_ "embed"
	"encoding/hex"
	"encoding/pem"
	"fmt"
)

// AWSRootSHA256 is the SHA-256 of the DER encoding of the AWS Nitro
// Enclaves root certificate "Root-G1" (CN=aws.nitro-enclaves, OU=AWS,
// O=Amazon, C=US; ECDSA P-384; valid 2019-10-28 .. 2049-10-28). It is the
// fingerprint to compare with AWS's: the PEM text and the zip AWS publishes
// hash differently.
const AWSRootSHA256 = "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b"

// awsRootPEM is root.pem exactly as it is inside AWS_NitroEnclaves_Root-G1.zip
// (https://aws-nitro-enclaves.amazonaws.com/AWS_NitroEnclaves_Root-G1.zip,
// zip sha256 8cf60e2b2efca96c6a9e71e851d00c1b6991cc09eadbe64a6a1d1b1eb9faff7c).
// testdata/ holds that zip; TestAWSRootProvenance extracts it and compares.
//
//go:embed aws_nitro_root_g1.pem
var awsRootPEM []byte

// awsRootDER is the pinned root. A wrong embedded file is a build mistake,
// not hostile input, so the check panics when the package loads rather than
// let any verification run against an unpinned anchor.
var awsRootDER = mustPinnedRoot(awsRootPEM, AWSRootSHA256)

// mustPinnedRoot returns the DER of the single CERTIFICATE in pemBytes and
// panics unless its SHA-256 is wantSHA256 and it parses.
func mustPinnedRoot(pemBytes []byte, wantSHA256 string) []byte {
	blk, rest := pem.Decode(pemBytes)
	if blk == nil || blk.Type != "CERTIFICATE" || len(bytes.TrimSpace(rest)) != 0 {
		panic("attestation: embedded AWS Nitro root is not exactly one PEM CERTIFICATE block")
	}
	sum := sha256.Sum256(blk.Bytes)
	if got := hex.EncodeToString(sum[:]); got != wantSHA256 {
		panic(fmt.Sprintf("attestation: embedded AWS Nitro root has DER sha256 %s, want %s", got, wantSHA256))
	}
	if _, err := x509.ParseCertificate(blk.Bytes); err != nil {
		panic(fmt.Sprintf("attestation: embedded AWS Nitro root does not parse: %v", err))
	}
	return blk.Bytes
}

// AWSRoot returns the pinned AWS Nitro Enclaves root certificate. Every call
// returns a fresh copy, so no caller can alter the anchor another one uses.
func AWSRoot() *x509.Certificate {
	// ParseCertificate aliases its input (c.Raw and friends): parse a copy.
	c, err := x509.ParseCertificate(bytes.Clone(awsRootDER))
	if err != nil {
		panic(err) // parsed once already when the package loaded
	}
	return c
}

// AWSRoots returns the trust anchors of production verification: the pinned
// AWS root and nothing else. Pass it as VerifyOptions.Roots for documents
// from real Nitro Enclaves. A dev NSM's root is never among them.
func AWSRoots() []*x509.Certificate { return []*x509.Certificate{AWSRoot()} }

// AWSRootPEM returns the pinned root as AWS publishes it (PEM).
func AWSRootPEM() []byte { return bytes.Clone(awsRootPEM) }

// IsAWSRoot reports whether c is the pinned AWS Nitro root, byte for byte.
func IsAWSRoot(c *x509.Certificate) bool { return c != nil && bytes.Equal(c.Raw, awsRootDER) }

// Fingerprint returns the hex SHA-256 of a certificate's DER encoding, the
// form AWSRootSHA256 takes.
func Fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}
