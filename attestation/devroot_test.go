package attestation_test

import (
	"crypto/rand"
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sealsign/sealsign/attestation"
	"github.com/sealsign/sealsign/attestation/devnsm"
)

// TestDevDocumentNeedsExplicitRoot checks that the dev root is a separate
// trust anchor: a document from a dev NSM fails under the production default
// (AWSRoots), even when its CA is named like AWS's and its cabundle carries
// the dev root, and passes only when the caller names the dev root.
func TestDevDocumentNeedsExplicitRoot(t *testing.T) {
	now := time.Date(2026, 2, 3, 4, 5, 6, 0, time.UTC)
	ca, err := devnsm.NewCA(rand.Reader, now)
	if err != nil {
		t.Fatal(err)
	}
	pcr0 := make([]byte, 48)
	pcr0[0] = 1
	nsm, err := devnsm.New(ca, "party-a", map[uint][]byte{0: pcr0}, rand.Reader, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	doc, err := nsm.Attest([]byte("identity"), []byte("manifest"), []byte("nonce"))
	if err != nil {
		t.Fatal(err)
	}
	d, err := attestation.ParseUnverified(doc)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := x509.ParseCertificate(d.CABundle[0]); got == nil || !got.Equal(ca.Cert()) {
		t.Fatal("dev document does not carry its root in cabundle[0]")
	}

	for _, tt := range []struct {
		name  string
		roots []*x509.Certificate
		ok    bool
	}{
		{"production default (AWSRoots)", attestation.AWSRoots(), false},
		{"AWS root passed by hand", []*x509.Certificate{attestation.AWSRoot()}, false},
		{"dev root passed explicitly", []*x509.Certificate{ca.Cert()}, true},
		{"AWS and dev roots passed explicitly", append(attestation.AWSRoots(), ca.Cert()), true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res, err := attestation.VerifyDetailed(doc, attestation.VerifyOptions{Roots: tt.roots, Time: now, MaxAge: time.Minute,
				PCRs: map[uint][]byte{0: pcr0}, PublicKey: []byte("identity"), UserData: []byte("manifest"), Nonce: []byte("nonce")})
			if tt.ok {
				if err != nil {
					t.Fatal(err)
				}
				root := res.Chain[len(res.Chain)-1]
				if attestation.IsAWSRoot(root) || !root.Equal(ca.Cert()) {
					t.Errorf("chain ends in %s, want the dev root", root.Subject)
				}
				return
			}
			var ce *attestation.CheckError
			if !errors.Is(err, attestation.ErrChain) || !errors.As(err, &ce) || ce.Check != "chain" {
				t.Fatalf("dev document under the AWS root: %v, want a chain failure", err)
			}
			if !strings.Contains(err.Error(), "want chain to root CN=aws.nitro-enclaves") || !strings.Contains(err.Error(), "party-a.dev.sealsign") {
				t.Errorf("error does not name the expected root and the leaf: %v", err)
			}
		})
	}
}
