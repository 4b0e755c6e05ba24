package eif

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// TestDescribeJSONUnsigned pins the whole describe-eif document of the mini
// image: nitro-cli's field names and order (notes §4), 2-space indent.
func TestDescribeJSONUnsigned(t *testing.T) {
	img, err := Read(bytes.NewReader(readTestdata(t, "mini-v4.eif")))
	if err != nil {
		t.Fatal(err)
	}
	got, err := MarshalIndent(Describe(img, testNow))
	if err != nil {
		t.Fatal(err)
	}
	want := `{
  "EifVersion": 4,
  "Measurements": {
    "HashAlgorithm": "Sha384 { ... }",
    "PCR0": "` + miniPCR0 + `",
    "PCR1": "` + miniPCR1 + `",
    "PCR2": "` + miniPCR2 + `"
  },
  "IsSigned": false,
  "CheckCRC": true,
  "ImageName": "test",
  "ImageVersion": "1.0",
  "Metadata": {
    "BuildTime": "1970-01-01T00:00:00+00:00",
    "BuildTool": "eif_build",
    "BuildToolVersion": "0.0.0",
    "OperatingSystem": "Linux",
    "KernelVersion": "0.0.0",
    "DockerInfo": null
  }
}`
	if string(got) != want {
		t.Fatalf("describe JSON:\n%s\nwant:\n%s", got, want)
	}
}

func TestDescribeJSONSigned(t *testing.T) {
	spec := miniSpec()
	spec.Signer = testSigner(t, "p384")
	spec.Metadata.DockerInfo = json.RawMessage(`{"Id":"sha256:00"}`)
	spec.Metadata.CustomMetadata = json.RawMessage(`{"zeta":1,"alpha":{"x":true}}`)
	var buf bytes.Buffer
	if _, err := Build(&buf, spec); err != nil {
		t.Fatal(err)
	}
	img, err := Read(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	d := Describe(img, testNow)
	if !d.IsSigned || !d.SignatureCheck || d.SignatureError != "" {
		t.Fatalf("signed: %v, check %v (%s)", d.IsSigned, d.SignatureCheck, d.SignatureError)
	}
	c := d.SigningCertificate
	if c.Algorithm != "ecdsa-with-SHA384" || c.IssuerName["commonName"] != "sealsign eif test signer" ||
		c.IssuerName["organizationName"] != "sealsign test" || c.IssuerName["countryName"] != "US" ||
		c.NotBefore != "Nov 22 02:43:08 2026 GMT" || c.NotAfter != "Nov 22 02:43:08 2046 GMT" {
		t.Fatalf("certificate info %+v", c)
	}
	if len(c.Signature) < 3 || c.Signature[2] != ':' || strings.ToUpper(c.Signature) != c.Signature {
		t.Fatalf("signature %q: want uppercase hex bytes joined by ':'", c.Signature)
	}
	js, err := MarshalIndent(d)
	if err != nil {
		t.Fatal(err)
	}
	// Key order: nitro-cli's, with CustomMetadata's keys flattened into
	// Metadata after DockerInfo, sorted.
	order := []string{`"EifVersion"`, `"Measurements"`, `"PCR8": "` + p384PCR8 + `"`, `"IsSigned": true`, `"SigningCertificate"`,
		`"IssuerName"`, `"Algorithm"`, `"NotBefore"`, `"NotAfter"`, `"Signature"`, `"CheckCRC": true`,
		`"SignatureCheck": true`, `"ImageName"`, `"ImageVersion"`, `"Metadata"`, `"DockerInfo": {`, `"alpha": {`, `"zeta": 1`}
	rest := string(js)
	for _, key := range order {
		i := strings.Index(rest, key)
		if i < 0 {
			t.Fatalf("%s missing or out of order in\n%s", key, js)
		}
		rest = rest[i+len(key):]
	}
	// An expired certificate: SignatureCheck false with the reason.
	d = Describe(img, testNow.AddDate(30, 0, 0))
	if d.SignatureCheck || !strings.Contains(d.SignatureError, "not at 2060") {
		t.Fatalf("expired: check %v, error %q", d.SignatureCheck, d.SignatureError)
	}
	mj, err := MeasurementsJSON(img.Measurements)
	if err != nil || !strings.HasPrefix(string(mj), "{\n  \"Measurements\": {\n    \"HashAlgorithm\"") {
		t.Fatalf("MeasurementsJSON: %s, %v", mj, err)
	}
}
