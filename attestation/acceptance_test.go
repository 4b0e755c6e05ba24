package attestation

import (
	"bytes"
	"crypto/elliptic"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
)

// Acceptance tests of issue 4: the real documents under the embedded AWS
// root, and hostile documents rejected with a precise reason.

// TestVectorsAcceptance checks every real document in testdata/ under the
// embedded, pinned root (AWSRoots): the README's outcome at the README's
// time; rejection one day later and one day earlier; rejection with an empty
// root pool and with pools that do not hold the AWS root.
func TestVectorsAcceptance(t *testing.T) {
	for _, v := range vectors {
		t.Run(v.file, func(t *testing.T) {
			raw := readVector(t, v.file)
			res, err := VerifyDetailed(raw, VerifyOptions{Roots: AWSRoots(), Time: v.at})
			if v.wantKind != nil {
				checkErr(t, err, v.wantKind, v.wantCheck)
				if res.Document != nil || res.Chain != nil {
					t.Error("a rejected document came back with a document or chain")
				}
			} else {
				if err != nil {
					t.Fatalf("VerifyDetailed: %v", err)
				}
				if len(res.Chain) != 5 || !IsAWSRoot(res.Chain[4]) || !bytes.Equal(res.Chain[0].Raw, res.Document.Certificate) {
					t.Errorf("chain of %d certificates, want leaf + 3 intermediates + the AWS root", len(res.Chain))
				}
			}

			// Outside the ~3 h certificate window.
			for _, shift := range []time.Duration{24 * time.Hour, -24 * time.Hour} {
				_, err := Verify(raw, VerifyOptions{Roots: AWSRoots(), Time: v.at.Add(shift)})
				if v.wantKind == ErrMalformed { // rejected before any time is looked at
					checkErr(t, err, ErrMalformed, v.wantCheck)
					continue
				}
				ce := checkErr(t, err, ErrExpired, "chain")
				if ce.Reason != "expired" || !strings.Contains(err.Error(), "certificate has expired or is not yet valid") {
					t.Errorf("%+v: %v", shift, err)
				}
			}

			// No trust anchor at all.
			for _, empty := range [][]*x509.Certificate{nil, {}} {
				_, err := Verify(raw, VerifyOptions{Roots: empty, Time: v.at})
				ce := checkErr(t, err, ErrOptions, "options")
				if !strings.Contains(ce.Reason, "AWSRoots()") {
					t.Errorf("empty-roots error does not name the fix: %v", err)
				}
			}

			// Anchors that are not AWS's: another root named like AWS's,
			// a synthetic Nitro-shaped PKI, both together.
			other, pki := otherRoot(t), newTestPKI(t, elliptic.P384())
			for _, roots := range [][]*x509.Certificate{{other}, {pki.root}, {other, pki.root}} {
				_, err := Verify(raw, VerifyOptions{Roots: roots, Time: v.at, AllowDebug: true})
				if v.wantKind == ErrMalformed {
					checkErr(t, err, ErrMalformed, v.wantCheck)
					continue
				}
				ce := checkErr(t, err, ErrChain, "chain")
				if errors.Is(err, ErrExpired) || !strings.Contains(ce.Want, "CN=aws.nitro-enclaves") && !strings.Contains(ce.Want, "CN=test.nitro-enclaves") {
					t.Errorf("untrusted-root error: %v", err)
				}
			}
		})
	}
}

// TestVerifyDetailedChecks checks the list of performed checks: its order,
// that it names the root that matched, marks weakened checks as skipped and
// ends in the failure when there is one.
func TestVerifyDetailedChecks(t *testing.T) {
	raw := readVector(t, "qos-mock-2022-07-06.cose")
	at := time.Unix(1657117192, 0)
	d, err := ParseUnverified(raw)
	if err != nil {
		t.Fatal(err)
	}
	names := func(r *Result) string {
		var s []string
		for _, c := range r.Checks {
			s = append(s, c.Name+":"+c.Status)
		}
		return strings.Join(s, " ")
	}

	full := VerifyOptions{Roots: AWSRoots(), Time: at, MaxAge: time.Hour, PCRs: map[uint][]byte{0: d.PCRs[0], 3: d.PCRs[3]},
		MatchInstanceID: true, Nonce: []byte{}, UserData: d.UserData, PublicKey: d.PublicKey}
	res, err := VerifyDetailed(raw, full)
	if err != nil {
		t.Fatal(err)
	}
	want := "cose:pass payload:pass leaf:pass cabundle:pass chain:pass timestamp:pass signature:pass age:pass debug:pass " +
		"pcr0:pass pcr3:pass instance_id:pass nonce:pass user_data:pass public_key:pass"
	if got := names(res); got != want {
		t.Errorf("checks:\n got %s\nwant %s", got, want)
	}
	for _, c := range res.Checks {
		if c.Detail == "" {
			t.Errorf("check %s has no detail", c.Name)
		}
		if c.Name == "chain" && !strings.Contains(c.Detail, "CN=aws.nitro-enclaves") || c.Name == "chain" && !strings.Contains(c.Detail, AWSRootSHA256) {
			t.Errorf("chain detail does not name the pinned root: %s", c.Detail)
		}
	}
	if v, err := Verify(raw, full); err != nil || v.ModuleID != res.Document.ModuleID {
		t.Errorf("Verify disagrees with VerifyDetailed: %v", err)
	}

	// Minimal options: age and debug shown as what they are.
	res, err = VerifyDetailed(readVector(t, "us-east-1-2024-09-07-debug.cose"), VerifyOptions{Roots: AWSRoots(), Time: mustTime("2024-09-07T14:40:00Z"), AllowDebug: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := names(res); !strings.HasSuffix(got, "signature:pass age:skip debug:skip") {
		t.Errorf("checks with AllowDebug and no MaxAge: %s", got)
	}
	if last := res.Checks[len(res.Checks)-1]; !strings.Contains(last.Detail, "debug=true") {
		t.Errorf("debug skip detail %q does not say the document is debug", last.Detail)
	}

	// Failures end the list.
	for _, tt := range []struct {
		name   string
		raw    []byte
		opts   VerifyOptions
		checks string
	}{
		{"pcr mismatch", raw, VerifyOptions{Roots: AWSRoots(), Time: at, PCRs: map[uint][]byte{1: d.PCRs[0]}},
			"cose:pass payload:pass leaf:pass cabundle:pass chain:pass timestamp:pass signature:pass age:skip debug:pass pcr1:fail"},
		{"expired", raw, VerifyOptions{Roots: AWSRoots(), Time: at.Add(24 * time.Hour)},
			"cose:pass payload:pass leaf:pass cabundle:pass chain:fail"},
		{"bad signature", readVector(t, "eu-west-1-2022-11-09-bad-sig.cose"), VerifyOptions{Roots: AWSRoots(), Time: mustTime("2022-11-09T23:00:00Z")},
			"cose:pass payload:pass leaf:pass cabundle:pass chain:pass timestamp:pass signature:fail"},
		{"no cabundle", readVector(t, "selfsigned-no-cabundle.cose"), VerifyOptions{Roots: AWSRoots(), Time: at}, "cose:pass payload:fail"},
		{"no roots", raw, VerifyOptions{Time: at}, "options:fail"},
		{"truncated", raw[:100], VerifyOptions{Roots: AWSRoots(), Time: at}, "cose:fail"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res, err := VerifyDetailed(tt.raw, tt.opts)
			if err == nil || res == nil || res.Document != nil || res.Chain != nil {
				t.Fatalf("VerifyDetailed = %+v, %v; want a failure without document or chain", res, err)
			}
			if got := names(res); got != tt.checks {
				t.Errorf("checks:\n got %s\nwant %s", got, tt.checks)
			}
			if last := res.Checks[len(res.Checks)-1]; last.Detail != err.Error() {
				t.Errorf("failed check detail %q, want the error %q", last.Detail, err)
			}
		})
	}
}

// TestHostileDocuments checks that documents an attacker can craft — other
// curves, short signatures, missing fields, extra CBOR tags, oversized
// fields — are rejected with a reason naming the check and the expected
// and actual values, and without a panic.
func TestHostileDocuments(t *testing.T) {
	realDoc := readVector(t, "eu-west-1-2022-11-09.cose")
	realMsg, err := decodeSign1(realDoc)
	if err != nil {
		t.Fatal(err)
	}
	// reencode rebuilds a COSE_Sign1 array from (possibly tagged) parts.
	reencode := func(t *testing.T, parts ...any) []byte {
		out, err := encMode.Marshal(parts)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	p521CA := newTestPKI(t, elliptic.P521())
	tests := []struct {
		name  string
		mod   func(t *testing.T, f *fixture)
		kind  error // nil: must verify
		check string
		msg   string // substring of the error message
	}{
		{"P-384 leaf, as AWS issues", func(t *testing.T, f *fixture) {}, nil, "", ""},

		// curves and signature sizes
		{"P-521 leaf with its 132-byte signature", func(t *testing.T, f *fixture) { f.setLeaf(t, newKey(t, elliptic.P521()), nil) },
			ErrAlgorithm, "signature", "attestation: signature bad length: want 96 bytes (ES384 r‖s), got 132 bytes"},
		{"P-521 leaf with a 96-byte signature", func(t *testing.T, f *fixture) {
			f.setLeaf(t, newKey(t, elliptic.P521()), nil)
			f.sig = bytes.Repeat([]byte{7}, 96)
		}, ErrAlgorithm, "leaf", "attestation: leaf key curve: want ECDSA P-384, got ECDSA P-521"},
		{"P-256 leaf", func(t *testing.T, f *fixture) {
			f.setLeaf(t, newKey(t, elliptic.P256()), nil)
			f.sig = bytes.Repeat([]byte{7}, 96)
		}, ErrAlgorithm, "leaf", "attestation: leaf key curve: want ECDSA P-384, got ECDSA P-256"},
		{"P-224 leaf", func(t *testing.T, f *fixture) {
			f.setLeaf(t, newKey(t, elliptic.P224()), nil)
			f.sig = bytes.Repeat([]byte{7}, 96)
		}, ErrAlgorithm, "leaf", "attestation: leaf key curve: want ECDSA P-384, got ECDSA P-224"},
		{"P-521 intermediate", func(t *testing.T, f *fixture) {
			f.p = p521CA
			f.setLeaf(t, newKey(t, elliptic.P384()), func(c *x509.Certificate) { c.SignatureAlgorithm = x509.ECDSAWithSHA384 })
			f.doc.CABundle = [][]byte{p521CA.root.Raw, p521CA.inter.Raw}
			f.opts.Roots = []*x509.Certificate{p521CA.root}
		}, ErrAlgorithm, "cabundle[1]", "attestation: cabundle[1] key curve: want ECDSA P-384, got ECDSA P-521"},
		{"leaf signed with ECDSA-SHA512", func(t *testing.T, f *fixture) {
			f.setLeaf(t, newKey(t, elliptic.P384()), func(c *x509.Certificate) { c.SignatureAlgorithm = x509.ECDSAWithSHA512 })
		}, ErrAlgorithm, "leaf", "attestation: leaf signature algorithm: want ECDSA-SHA384, got ECDSA-SHA512"},
		{"signature truncated to 95 bytes", func(t *testing.T, f *fixture) { f.sig = make([]byte, 95) },
			ErrAlgorithm, "signature", "attestation: signature bad length: want 96 bytes (ES384 r‖s), got 95 bytes"},
		{"real document, signature truncated to r", func(t *testing.T, f *fixture) {
			f.post = func([]byte) []byte {
				return reencode(t, realMsg.protected, map[int]int{}, realMsg.payload, realMsg.signature[:48])
			}
		}, ErrAlgorithm, "signature", "attestation: signature bad length: want 96 bytes (ES384 r‖s), got 48 bytes"},
		{"real document, signature with a byte appended", func(t *testing.T, f *fixture) {
			f.post = func([]byte) []byte {
				return reencode(t, realMsg.protected, map[int]int{}, realMsg.payload, append(bytes.Clone(realMsg.signature), 0))
			}
		}, ErrAlgorithm, "signature", "got 97 bytes"},

		// missing mandatory fields
		{"module_id missing", func(t *testing.T, f *fixture) {
			f.payload = rawPayload(t, withoutField(docPairs(f.doc), "module_id")...)
		},
			ErrMalformed, "module_id", "attestation: module_id missing: want non-empty text, got empty or absent"},
		{"digest missing", func(t *testing.T, f *fixture) { f.payload = rawPayload(t, withoutField(docPairs(f.doc), "digest")...) },
			ErrMalformed, "digest", "attestation: digest missing: want SHA384, got empty or absent"},
		{"timestamp missing", func(t *testing.T, f *fixture) {
			f.payload = rawPayload(t, withoutField(docPairs(f.doc), "timestamp")...)
		},
			ErrMalformed, "timestamp", "attestation: timestamp missing: want milliseconds since the epoch, got 0 or absent"},
		{"pcrs missing", func(t *testing.T, f *fixture) { f.payload = rawPayload(t, withoutField(docPairs(f.doc), "pcrs")...) },
			ErrMalformed, "pcrs", "attestation: pcrs count out of range: want 1..32 entries, got 0 entries"},
		{"certificate missing", func(t *testing.T, f *fixture) {
			f.payload = rawPayload(t, withoutField(docPairs(f.doc), "certificate")...)
		}, ErrMalformed, "certificate", "attestation: certificate size out of range: want 1..1024 bytes, got 0 bytes"},
		{"cabundle missing", func(t *testing.T, f *fixture) {
			f.payload = rawPayload(t, withoutField(docPairs(f.doc), "cabundle")...)
		},
			ErrMalformed, "cabundle", "attestation: cabundle count out of range: want 1..8 certificates, got 0"},
		{"payload missing (nil)", func(t *testing.T, f *fixture) {
			f.post = func([]byte) []byte { return reencode(t, realMsg.protected, map[int]int{}, nil, realMsg.signature) }
		}, ErrMalformed, "cose", "attestation: cose payload missing: want attestation document, got empty or detached"},

		// extra CBOR tags
		{"tag 55799 (self-described CBOR) before the message", func(t *testing.T, f *fixture) {
			f.post = func(b []byte) []byte { return append([]byte{0xd9, 0xd9, 0xf7}, b...) }
		}, ErrMalformed, "cose", "attestation: cose malformed"},
		{"tag 98 (COSE_Sign) instead of 18", func(t *testing.T, f *fixture) {
			f.post = func(b []byte) []byte { return append([]byte{0xd8, 0x62}, b...) }
		}, ErrMalformed, "cose", "CBOR tag"},
		{"tag 24 around the payload", func(t *testing.T, f *fixture) {
			f.post = func([]byte) []byte {
				return reencode(t, realMsg.protected, map[int]int{}, cbor.Tag{Number: 24, Content: realMsg.payload}, realMsg.signature)
			}
		}, ErrMalformed, "cose", "CBOR tag"},
		{"tag around the protected header", func(t *testing.T, f *fixture) {
			f.post = func([]byte) []byte {
				return reencode(t, cbor.Tag{Number: 24, Content: realMsg.protected}, map[int]int{}, realMsg.payload, realMsg.signature)
			}
		}, ErrMalformed, "cose", "CBOR tag"},
		{"tag around the unprotected header", func(t *testing.T, f *fixture) {
			f.post = func([]byte) []byte {
				return reencode(t, realMsg.protected, cbor.Tag{Number: 259, Content: map[int]int{}}, realMsg.payload, realMsg.signature)
			}
		}, ErrMalformed, "cose", "CBOR tag"},
		{"tag around the signature", func(t *testing.T, f *fixture) {
			f.post = func([]byte) []byte {
				return reencode(t, realMsg.protected, map[int]int{}, realMsg.payload, cbor.Tag{Number: 2, Content: realMsg.signature})
			}
		}, ErrMalformed, "cose", "CBOR tag"},
		{"tag inside the protected header", func(t *testing.T, f *fixture) { f.protected = []byte{0xa1, 0x01, 0xc1, 0x38, 0x22} },
			ErrMalformed, "cose", "attestation: cose protected header malformed: want {1: -35}"},
		{"tag on a pcr value", func(t *testing.T, f *fixture) {
			f.payload = rawPayload(t, append(withoutField(docPairs(f.doc), "pcrs"), "pcrs", map[uint]any{0: cbor.Tag{Number: 2, Content: make([]byte, 48)}})...)
		}, ErrMalformed, "payload", "attestation: payload malformed: want CBOR attestation document map"},
		{"tag on a cabundle entry", func(t *testing.T, f *fixture) {
			f.payload = rawPayload(t, append(withoutField(docPairs(f.doc), "cabundle"), "cabundle", []any{f.p.root.Raw, cbor.Tag{Number: 24, Content: f.p.inter.Raw}})...)
		}, ErrMalformed, "payload", "payload malformed"},
		{"bignum timestamp", func(t *testing.T, f *fixture) {
			f.payload = rawPayload(t, append(withoutField(docPairs(f.doc), "timestamp"), "timestamp", cbor.Tag{Number: 2, Content: []byte{1, 0}})...)
		}, ErrMalformed, "payload", "payload malformed"},
		{"tag on the whole payload map", func(t *testing.T, f *fixture) {
			f.payload = append([]byte{0xd8, 0x18}, rawPayload(t, docPairs(f.doc)...)...)
		}, ErrMalformed, "payload", "payload malformed"},

		// oversized fields
		{"document over 16 KiB", func(t *testing.T, f *fixture) {
			f.post = func(b []byte) []byte { return append(b, make([]byte, MaxDocumentSize+1-len(b))...) }
		}, ErrMalformed, "cose", fmt.Sprintf("attestation: cose too large: want at most 16384 bytes, got %d bytes", MaxDocumentSize+1)},
		{"payload declares 2^63 bytes", func(t *testing.T, f *fixture) {
			f.post = func([]byte) []byte {
				return append([]byte{0x84, 0x44, 0xa1, 0x01, 0x38, 0x22, 0xa0, 0x5b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 1, 2, 3)
			}
		}, ErrMalformed, "cose", "attestation: cose malformed"},
		{"array declares 2^32 elements", func(t *testing.T, f *fixture) {
			f.post = func([]byte) []byte { return []byte{0x9a, 0xff, 0xff, 0xff, 0xff, 0x40} }
		}, ErrMalformed, "cose", "attestation: cose malformed"},
		{"pcrs map declares 2^32 pairs", func(t *testing.T, f *fixture) {
			p := rawPayload(t, withoutField(docPairs(f.doc), "pcrs")...)
			p[0]++ // one more pair: "pcrs" => map(2^32-1) with no entries following
			f.payload = append(append(p, 0x64, 'p', 'c', 'r', 's'), 0xba, 0xff, 0xff, 0xff, 0xff)
		}, ErrMalformed, "payload", "payload malformed"},
		{"protected header with 17 labels", func(t *testing.T, f *fixture) {
			h := map[int]int{1: -35}
			for i := 100; len(h) < 17; i++ {
				h[i] = i
			}
			b, _ := encMode.Marshal(h)
			f.protected = b
		}, ErrMalformed, "cose", "attestation: cose protected header too large: want at most 16 labels, got 17 labels"},
		{"module_id 257 bytes", func(t *testing.T, f *fixture) { f.doc.ModuleID = strings.Repeat("i", 257) },
			ErrMalformed, "module_id", "attestation: module_id too long: want at most 256 bytes, got 257 bytes"},
		{"pcr of 65 bytes", func(t *testing.T, f *fixture) { f.doc.PCRs[3] = make([]byte, 65) },
			ErrMalformed, "pcr3", "attestation: pcr3 bad length: want 32, 48 or 64 bytes, got 65 bytes"},
		{"certificate of 1025 bytes", func(t *testing.T, f *fixture) { f.doc.Certificate = make([]byte, 1025) },
			ErrMalformed, "certificate", "attestation: certificate size out of range: want 1..1024 bytes, got 1025 bytes"},
		{"cabundle entry of 1025 bytes", func(t *testing.T, f *fixture) { f.doc.CABundle[1] = make([]byte, 1025) },
			ErrMalformed, "cabundle[1]", "attestation: cabundle[1] size out of range: want 1..1024 bytes, got 1025 bytes"},
		{"9 cabundle entries", func(t *testing.T, f *fixture) {
			for len(f.doc.CABundle) < 9 {
				f.doc.CABundle = append(f.doc.CABundle, f.p.inter.Raw)
			}
		}, ErrMalformed, "cabundle", "attestation: cabundle count out of range: want 1..8 certificates, got 9"},
		{"public_key of 1025 bytes", func(t *testing.T, f *fixture) { f.doc.PublicKey = make([]byte, 1025) },
			ErrMalformed, "public_key", "attestation: public_key too long: want at most 1024 bytes, got 1025 bytes"},
		{"user_data of 1025 bytes", func(t *testing.T, f *fixture) { f.doc.UserData = make([]byte, 1025) },
			ErrMalformed, "user_data", "attestation: user_data too long: want at most 1024 bytes, got 1025 bytes"},
		{"nonce of 1025 bytes", func(t *testing.T, f *fixture) { f.doc.Nonce = make([]byte, 1025) },
			ErrMalformed, "nonce", "attestation: nonce too long: want at most 1024 bytes, got 1025 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			tt.mod(t, f)
			raw := f.bytes(t)
			for _, doc := range [][]byte{raw, append([]byte{coseSign1Tag}, raw...)} {
				res, err := VerifyDetailed(doc, f.opts)
				if tt.kind == nil {
					if err != nil {
						t.Fatalf("VerifyDetailed: %v", err)
					}
					continue
				}
				if res.Document != nil {
					t.Error("document returned with an error")
				}
				var ce *CheckError
				if !errors.As(err, &ce) || !errors.Is(err, tt.kind) || ce.Check == "decoder" {
					t.Fatalf("error %v, want %v", err, tt.kind)
				}
				if ce.Check != tt.check {
					t.Errorf("check %q, want %q (%v)", ce.Check, tt.check, err)
				}
				// With tag 18 in front, sizes in the message grow by one.
				if doc[0] != coseSign1Tag && !strings.Contains(err.Error(), tt.msg) {
					t.Errorf("error %q does not contain %q", err, tt.msg)
				}
			}
		})
	}
}

// TestTruncatedVectors cuts every real document at many lengths: each
// prefix is rejected as a malformed envelope, never a panic.
func TestTruncatedVectors(t *testing.T) {
	for _, v := range vectors {
		raw := readVector(t, v.file)
		for n := 0; n < len(raw); n += 1 + n/16 {
			_, err := Verify(raw[:n], VerifyOptions{Roots: AWSRoots(), Time: v.at})
			var ce *CheckError
			if !errors.As(err, &ce) || !errors.Is(err, ErrMalformed) || ce.Check != "cose" {
				t.Fatalf("%s cut to %d bytes: %v", v.file, n, err)
			}
		}
	}
}
