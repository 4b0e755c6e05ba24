package attestation

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"strings"
	"testing"
	"time"
)

// The fixtures in testdata/ are real AWS-signed documents; README.md there
// gives their provenance, verification times and expected outcomes.

const awsRootDERSHA256 = "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b"

func awsRoot(t testing.TB) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile("testdata/root.pem")
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		t.Fatal("testdata/root.pem: no CERTIFICATE block")
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func readVector(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// otherRoot is a P-384 root that signed none of the fixtures.
func otherRoot(t testing.TB) *x509.Certificate {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "aws.nitro-enclaves"}, // same name, different key
		NotBefore:             mustTime("2019-01-01T00:00:00Z"),
		NotAfter:              mustTime("2049-01-01T00:00:00Z"),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c
}

func TestRootFingerprint(t *testing.T) {
	sum := sha256.Sum256(awsRoot(t).Raw)
	if got := hex.EncodeToString(sum[:]); got != awsRootDERSHA256 {
		t.Fatalf("testdata/root.pem DER sha256 = %s, want %s", got, awsRootDERSHA256)
	}
}

type vector struct {
	file string
	at   time.Time
	// valid documents: expected field values (PCR prefixes/suffixes as the
	// testvectors README states them)
	pcrs      map[uint][2]string
	userData  string
	nonce     string
	pubKeyLen int
	// invalid documents
	wantKind  error
	wantCheck string
}

var vectors = []vector{
	{
		file:      "qos-mock-2022-07-06.cose",
		at:        time.Unix(1657117192, 0),
		pcrs:      map[uint][2]string{0: {"f8bb0133", "c3b6"}, 1: {"bcdf05fe", "e63f"}, 2: {"c185515d", "14bb"}, 3: {"00000000", "0000"}, 4: {"7021a476", "6485"}},
		userData:  "a2ec4272c44690b2dc32ed89d4bdd266ec2b0e753dff2f25f08b5d2a15cfe2e6",
		pubKeyLen: 800,
	},
	{
		file:     "eu-west-1-2022-11-09.cose",
		at:       mustTime("2022-11-09T23:00:00Z"),
		pcrs:     map[uint][2]string{0: {"22f9e1c9", "7d01"}, 1: {"bcdf05fe", "e63f"}, 2: {"00943ea8", "41f7"}},
		userData: "7c37108079b3e8a36d8a7970de1d6d4ff1461e0e35d9557c4d789df5e0576620",
		nonce:    "c678c86135de539d183acff58886d98dfb9823041af9f934bf909ac0f8d96245",
	},
	{
		file:      "eu-west-1-2022-11-09-bad-sig.cose",
		at:        mustTime("2022-11-09T23:00:00Z"),
		wantKind:  ErrSignature,
		wantCheck: "signature",
	},
	{
		file:      "us-east-1-2024-09-07-maxfields.cose",
		at:        mustTime("2024-09-07T14:40:00Z"),
		pcrs:      map[uint][2]string{1: {"0343b056", "c6aa"}},
		userData:  strings.Repeat("01", 1024),
		nonce:     strings.Repeat("01", 1024),
		pubKeyLen: 1024,
	},
	{
		file:      "us-east-1-2024-09-07-debug.cose",
		at:        mustTime("2024-09-07T14:40:00Z"),
		wantKind:  ErrDebug,
		wantCheck: "pcr0",
	},
	{
		file:      "selfsigned-no-cabundle.cose",
		at:        mustTime("2024-04-17T18:51:46Z"),
		wantKind:  ErrMalformed,
		wantCheck: "cabundle",
	},
}

func checkErr(t *testing.T, err error, kind error, check string) *CheckError {
	t.Helper()
	if err == nil {
		t.Fatalf("Verify succeeded, want %v (%s)", kind, check)
	}
	var ce *CheckError
	if !errors.As(err, &ce) {
		t.Fatalf("error %v (%T) is not a *CheckError", err, err)
	}
	if !errors.Is(err, kind) || ce.Check != check {
		t.Fatalf("error %q: check %q kind %v, want check %q kind %v", err, ce.Check, ce.Kind, check, kind)
	}
	if !strings.HasPrefix(err.Error(), "attestation: ") || strings.HasSuffix(err.Error(), ".") {
		t.Errorf("error %q: want prefix \"attestation: \" and no trailing period", err)
	}
	return ce
}

// TestVectors checks every real document's stated outcome at its stated
// time, one day later and earlier, and with a root that is not AWS's.
func TestVectors(t *testing.T) {
	root := awsRoot(t)
	for _, v := range vectors {
		t.Run(v.file, func(t *testing.T) {
			raw := readVector(t, v.file)
			d, err := Verify(raw, VerifyOptions{Roots: []*x509.Certificate{root}, Time: v.at})
			if v.wantKind != nil {
				if d != nil {
					t.Error("Verify returned a document together with an error")
				}
				checkErr(t, err, v.wantKind, v.wantCheck)
				t.Logf("rejected as expected: %v", err)
				return
			}
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			for i, ps := range v.pcrs {
				h := hex.EncodeToString(d.PCRs[i])
				if !strings.HasPrefix(h, ps[0]) || !strings.HasSuffix(h, ps[1]) {
					t.Errorf("pcr%d = %s, want %s…%s", i, h, ps[0], ps[1])
				}
			}
			if len(d.PCRs) != 16 {
				t.Errorf("%d PCRs, want 16", len(d.PCRs))
			}
			if got := hex.EncodeToString(d.UserData); got != v.userData {
				t.Errorf("user_data = %s, want %s", got, v.userData)
			}
			if got := hex.EncodeToString(d.Nonce); got != v.nonce {
				t.Errorf("nonce = %s, want %s", got, v.nonce)
			}
			if v.nonce == "" && d.Nonce != nil {
				t.Errorf("nonce = %x, want absent (null)", d.Nonce)
			}
			if len(d.PublicKey) != v.pubKeyLen {
				t.Errorf("public_key has %d bytes, want %d", len(d.PublicKey), v.pubKeyLen)
			}
			if d.Digest != "SHA384" || d.ModuleID == "" || d.Debug() {
				t.Errorf("digest %q module_id %q debug %v", d.Digest, d.ModuleID, d.Debug())
			}

			// Binding the document's own aux fields and PCRs passes.
			opts := VerifyOptions{Roots: []*x509.Certificate{root}, Time: v.at, PCRs: d.PCRs,
				UserData: d.UserData, Nonce: d.Nonce, PublicKey: d.PublicKey, MatchInstanceID: true,
				MaxAge: 3 * time.Hour}
			if opts.Nonce == nil {
				opts.Nonce = []byte{} // absent equals empty
			}
			if _, err := Verify(raw, opts); err != nil {
				t.Errorf("Verify with the document's own policy: %v", err)
			}

			for _, shift := range []time.Duration{24 * time.Hour, -24 * time.Hour} {
				_, err := Verify(raw, VerifyOptions{Roots: []*x509.Certificate{root}, Time: v.at.Add(shift)})
				ce := checkErr(t, err, ErrExpired, "chain")
				if !errors.Is(err, ErrChain) {
					t.Errorf("expired chain error %v is not ErrChain", err)
				}
				var inv x509.CertificateInvalidError
				if !errors.As(err, &inv) {
					t.Errorf("expired chain error %v does not wrap x509.CertificateInvalidError", err)
				}
				if ce.Reason != "expired" {
					t.Errorf("reason %q, want expired", ce.Reason)
				}
			}
			_, err = Verify(raw, VerifyOptions{Roots: []*x509.Certificate{otherRoot(t)}, Time: v.at})
			checkErr(t, err, ErrChain, "chain")
			_, err = Verify(raw, VerifyOptions{Time: v.at})
			checkErr(t, err, ErrOptions, "options")
		})
	}
}

func TestDebugAllowed(t *testing.T) {
	raw := readVector(t, "us-east-1-2024-09-07-debug.cose")
	opts := VerifyOptions{Roots: []*x509.Certificate{awsRoot(t)}, Time: mustTime("2024-09-07T14:40:00Z"), AllowDebug: true}
	d, err := Verify(raw, opts)
	if err != nil {
		t.Fatalf("AllowDebug: %v", err)
	}
	if !d.Debug() {
		t.Error("Debug() = false for a debug-mode document")
	}
	for _, i := range []uint{0, 1, 2} {
		if !allZero(d.PCRs[i]) {
			t.Errorf("pcr%d not zero in a debug document", i)
		}
	}
	// PCR4 is still populated in debug mode.
	if got := hex.EncodeToString(d.PCRs[4]); !strings.HasPrefix(got, "45706d7b") {
		t.Errorf("pcr4 = %s", got)
	}
	opts.MatchInstanceID = true
	if _, err := Verify(raw, opts); err != nil {
		t.Errorf("MatchInstanceID on a debug document: %v", err)
	}
}

func TestPolicyFailures(t *testing.T) {
	raw := readVector(t, "eu-west-1-2022-11-09.cose")
	at := mustTime("2022-11-09T23:00:00Z")
	doc, err := ParseUnverified(raw)
	if err != nil {
		t.Fatal(err)
	}
	wrong := bytes.Repeat([]byte{0x3c}, 48)
	tests := []struct {
		name      string
		mutate    func(*VerifyOptions)
		kind      error
		check     string
		wantInMsg string
	}{
		{"pcr0 mismatch", func(o *VerifyOptions) { o.PCRs = map[uint][]byte{0: wrong} }, ErrMeasurement, "pcr0",
			"attestation: pcr0 mismatch: want 3c3c3c3c…3c3c, got 22f9e1c9…7d01"},
		{"pcr2 mismatch after good pcr0", func(o *VerifyOptions) { o.PCRs = map[uint][]byte{0: doc.PCRs[0], 2: doc.PCRs[1]} }, ErrMeasurement, "pcr2",
			"pcr2 mismatch: want bcdf05fe…e63f, got 00943ea8…41f7"},
		{"pcr20 absent", func(o *VerifyOptions) { o.PCRs = map[uint][]byte{20: wrong} }, ErrMeasurement, "pcr20",
			"attestation: pcr20 missing: want 3c3c3c3c…3c3c, got absent"},
		{"pcr 32-byte length differs", func(o *VerifyOptions) { o.PCRs = map[uint][]byte{1: doc.PCRs[1][:32]} }, ErrMeasurement, "pcr1", "pcr1 mismatch"},
		{"nonce mismatch", func(o *VerifyOptions) { o.Nonce = []byte("another nonce") }, ErrBinding, "nonce",
			"nonce mismatch: want 616e6f74686572206e6f6e6365, got c678c861…6245"},
		{"user_data mismatch", func(o *VerifyOptions) { o.UserData = doc.Nonce }, ErrBinding, "user_data", "user_data mismatch"},
		{"public_key expected but absent", func(o *VerifyOptions) { o.PublicKey = []byte{1} }, ErrBinding, "public_key",
			"public_key mismatch: want 01, got absent"},
		{"too old for MaxAge", func(o *VerifyOptions) { o.MaxAge = 5 * time.Minute }, ErrExpired, "age", "age too old"},
		{"instance id", func(o *VerifyOptions) { o.MatchInstanceID = true; o.AllowDebug = false }, nil, "", ""},
		{"options: bad pcr index", func(o *VerifyOptions) { o.PCRs = map[uint][]byte{32: wrong} }, ErrOptions, "options", "PCR index 32"},
		{"options: bad pcr length", func(o *VerifyOptions) { o.PCRs = map[uint][]byte{0: wrong[:20]} }, ErrOptions, "options", "20 bytes"},
		{"options: zero time", func(o *VerifyOptions) { o.Time = time.Time{} }, ErrOptions, "options", "time is zero"},
		{"options: nil root", func(o *VerifyOptions) { o.Roots = append(o.Roots, nil) }, ErrOptions, "options", "Roots[1] is nil"},
		{"options: negative MaxAge", func(o *VerifyOptions) { o.MaxAge = -1 }, ErrOptions, "options", "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := VerifyOptions{Roots: []*x509.Certificate{awsRoot(t)}, Time: at}
			tt.mutate(&opts)
			d, err := Verify(raw, opts)
			if tt.kind == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if d != nil {
				t.Error("document returned with an error")
			}
			ce := checkErr(t, err, tt.kind, tt.check)
			if !strings.Contains(err.Error(), tt.wantInMsg) {
				t.Errorf("error %q does not contain %q", err, tt.wantInMsg)
			}
			if tt.kind == ErrMeasurement && strings.Contains(tt.wantInMsg, "mismatch") && (len(ce.Want) < 64 || len(ce.Got) != 96) {
				t.Errorf("Want/Got should hold full hex: %q / %q", ce.Want, ce.Got)
			}
		})
	}
}

func TestMaxAgeWithinWindow(t *testing.T) {
	raw := readVector(t, "eu-west-1-2022-11-09.cose") // timestamp 22:52:00.696
	root := []*x509.Certificate{awsRoot(t)}
	for _, tt := range []struct {
		at  string
		ok  bool
		age time.Duration
	}{
		{"2022-11-09T22:53:00Z", true, time.Minute},
		{"2022-11-09T22:54:00Z", false, time.Minute},
		// leaf valid from 22:51:57: a verifier whose clock is 3s behind
		// still accepts within the skew
		{"2022-11-09T22:51:58Z", true, time.Minute},
	} {
		_, err := Verify(raw, VerifyOptions{Roots: root, Time: mustTime(tt.at), MaxAge: tt.age})
		if (err == nil) != tt.ok {
			t.Errorf("at %s MaxAge %v: err = %v, want ok=%v", tt.at, tt.age, err, tt.ok)
		}
	}
}

// TestMarshalMatchesNSM re-encodes each real payload and expects the exact
// bytes AWS signed: field order, null for absent fields, pcrs order.
func TestMarshalMatchesNSM(t *testing.T) {
	for _, v := range vectors {
		if v.wantKind == ErrMalformed {
			continue
		}
		raw := readVector(t, v.file)
		m, err := decodeSign1(raw)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(m.protected, protectedES384) {
			t.Errorf("%s: protected header %x, want %x", v.file, m.protected, protectedES384)
		}
		d, err := decodePayload(m.payload)
		if err != nil {
			t.Fatal(err)
		}
		enc, err := d.MarshalCBOR()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(enc, m.payload) {
			t.Errorf("%s: re-encoded payload differs from the NSM's (%d vs %d bytes)", v.file, len(enc), len(m.payload))
		}
	}
}

func TestMeasurementHelpers(t *testing.T) {
	// Known answer from aws docs / tkhq/qos pcr_extend_sha384_matches_aws_pcr3_example.
	const role = "78fce75db17cd4e0a3fb8dad3ad128ca5e77edbb2b2c7f75329dccd99aa5f6ef4fc1f1a452e315b9e98f9e312e6921e6"
	if got := hex.EncodeToString(RolePCR("arn:aws:iam::123456789012:role/Webserver")); got != role {
		t.Errorf("RolePCR = %s, want %s", got, role)
	}
	for _, tt := range []struct {
		moduleID, id string
		ok           bool
	}{
		{"i-07e25f3bada361dec-enc0181d3dff86da785", "i-07e25f3bada361dec", true},
		{"party-a.dev", "", false},
		{"i--enc1", "", false},
	} {
		id, ok := InstanceID(tt.moduleID)
		if id != tt.id || ok != tt.ok {
			t.Errorf("InstanceID(%q) = %q, %v", tt.moduleID, id, ok)
		}
	}
	d, err := ParseUnverified(readVector(t, "qos-mock-2022-07-06.cose"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(InstancePCR("i-07e25f3bada361dec"), d.PCRs[4]) {
		t.Error("InstancePCR does not reproduce the real document's PCR4")
	}
}

func TestErrorAbbreviation(t *testing.T) {
	e := &CheckError{Check: "pcr0", Reason: "mismatch", Want: "aaaaaaaa" + strings.Repeat("0", 80) + "bbbb", Got: "aaaaaaaa" + strings.Repeat("1", 80) + "bbbb", Kind: ErrMeasurement}
	// The abbreviations collide, so the message falls back to full values.
	if !strings.Contains(e.Error(), e.Want) || !strings.Contains(e.Error(), e.Got) {
		t.Errorf("colliding abbreviations not expanded: %s", e)
	}
}
