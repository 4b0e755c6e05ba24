package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sealsign/sealsign/attestation"
	"github.com/sealsign/sealsign/attestation/devnsm"
	"github.com/sealsign/sealsign/enclave/api"
	"github.com/sealsign/sealsign/host/server"
)

// The real AWS documents of the attestation package, with the times and
// outcomes its testdata/README.md states.
const attestTestdata = "../../attestation/testdata"

// runAttest runs "sealsign attest ARGS" as main would, with stdin and the
// clock injected.
func runAttest(t *testing.T, stdin string, now time.Time, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	oldIn, oldNow := attestStdin, attestNow
	attestStdin, attestNow = strings.NewReader(stdin), func() time.Time { return now }
	defer func() { attestStdin, attestNow = oldIn, oldNow }()
	var out, errb bytes.Buffer
	code = run(append([]string{"attest"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

func wantAttest(t *testing.T, wantCode int, stdin string, now time.Time, args ...string) (string, string) {
	t.Helper()
	code, out, errs := runAttest(t, stdin, now, args...)
	if code != wantCode {
		t.Fatalf("sealsign attest %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, wantCode, out, errs)
	}
	return out, errs
}

// attestJSON is the part of the --json report the tests read.
type attestJSON struct {
	Valid   bool   `json:"valid"`
	Verdict string `json:"verdict"`
	Error   *struct {
		Check, Reason, Want, Got, Message string
	} `json:"error"`
	Input struct {
		Format string `json:"format"`
		Bytes  int    `json:"bytes"`
	} `json:"input"`
	Policy struct {
		Time  string `json:"time"`
		Roots []struct {
			Subject, SHA256, Note string
		} `json:"roots"`
	} `json:"policy"`
	Document *struct {
		Authenticated bool              `json:"authenticated"`
		ModuleID      string            `json:"module_id"`
		Timestamp     string            `json:"timestamp"`
		Digest        string            `json:"digest"`
		Debug         bool              `json:"debug"`
		PCRs          map[string]string `json:"pcrs"`
		PublicKey     *string           `json:"public_key"`
		UserData      *string           `json:"user_data"`
		Nonce         *string           `json:"nonce"`
		Certificate   struct {
			Subject, NotBefore, NotAfter string
		} `json:"certificate"`
		CABundle []struct{ Subject, Note string } `json:"cabundle"`
	} `json:"document"`
	Chain []struct {
		Subject, SHA256, Note string
	} `json:"chain"`
	Checks []attestation.Check `json:"checks"`
	Party  string              `json:"party"`
}

func parseAttestJSON(t *testing.T, out string) attestJSON {
	t.Helper()
	var r attestJSON
	dec := json.NewDecoder(strings.NewReader(out))
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("--json output is not JSON: %v\n%s", err, out)
	}
	return r
}

func mustRFC3339(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

var attestVectors = []struct {
	file     string
	at       string
	code     int
	stderr   string // for invalid ones
	userData string
	nonce    string
	pcr0     string // prefix
}{
	{"qos-mock-2022-07-06.cose", "2022-07-06T14:19:52Z", 0, "",
		"a2ec4272c44690b2dc32ed89d4bdd266ec2b0e753dff2f25f08b5d2a15cfe2e6", "", "f8bb0133"},
	{"eu-west-1-2022-11-09.cose", "2022-11-09T23:00:00Z", 0, "",
		"7c37108079b3e8a36d8a7970de1d6d4ff1461e0e35d9557c4d789df5e0576620", "c678c86135de539d183acff58886d98dfb9823041af9f934bf909ac0f8d96245", "22f9e1c9"},
	{"eu-west-1-2022-11-09-bad-sig.cose", "2022-11-09T23:00:00Z", 1, "sealsign: attestation: signature invalid", "", "", ""},
	{"us-east-1-2024-09-07-maxfields.cose", "2024-09-07T14:40:00Z", 0, "", strings.Repeat("01", 1024), strings.Repeat("01", 1024), "e72a46ca"},
	{"us-east-1-2024-09-07-debug.cose", "2024-09-07T14:40:00Z", 1, "sealsign: attestation: pcr0 all zero (debug enclave", "", "", ""},
	{"selfsigned-no-cabundle.cose", "2024-04-17T18:51:46Z", 1, "sealsign: attestation: cabundle count out of range: want 1..8 certificates, got 0", "", "", ""},
}

// TestAttestVectors runs every real document through the CLI: its README
// outcome at its time (text and --json), a failure one day later, and a
// failure under a root that is not AWS's.
func TestAttestVectors(t *testing.T) {
	devRoot := writeAttestDevRoot(t)
	for _, v := range attestVectors {
		t.Run(v.file, func(t *testing.T) {
			file := filepath.Join(attestTestdata, v.file)
			at := mustRFC3339(v.at)
			out, errs := wantAttest(t, v.code, "", at, "verify", file, "--at", v.at)
			if v.code == 0 {
				if !strings.HasPrefix(out, "valid: attestation document verified at "+v.at) || errs != "" {
					t.Errorf("stdout %q\nstderr %q", out, errs)
				}
				if !strings.Contains(out, "root         CN=aws.nitro-enclaves,OU=AWS,O=Amazon,C=US (sha256 "+attestation.AWSRootSHA256+")") {
					t.Errorf("text output does not name the pinned root:\n%s", out)
				}
			} else if out != "" || !strings.HasPrefix(errs, v.stderr) {
				t.Errorf("stdout %q\nstderr %q, want prefix %q", out, errs, v.stderr)
			}

			// The same as JSON.
			out, errs = wantAttest(t, v.code, "", at, "verify", "--json", file, "--at", v.at)
			r := parseAttestJSON(t, out)
			if r.Valid != (v.code == 0) || r.Verdict != map[bool]string{true: "valid", false: "invalid"}[v.code == 0] {
				t.Errorf("valid %v verdict %q", r.Valid, r.Verdict)
			}
			if r.Input.Format != "cose" || r.Policy.Time != v.at || len(r.Policy.Roots) != 1 || r.Policy.Roots[0].SHA256 != attestation.AWSRootSHA256 {
				t.Errorf("input %+v policy %+v", r.Input, r.Policy)
			}
			if v.code != 0 {
				if r.Error == nil || !strings.HasPrefix("sealsign: "+r.Error.Message, v.stderr) || !strings.HasPrefix(errs, v.stderr) {
					t.Errorf("JSON error %+v, stderr %q; want %q", r.Error, errs, v.stderr)
				}
				if last := r.Checks; len(last) > 0 && last[len(last)-1].Status != attestation.CheckFailed {
					t.Errorf("last check %+v is not the failure", last[len(last)-1])
				}
			} else {
				d := r.Document
				if d == nil || !d.Authenticated || d.Digest != "SHA384" || d.ModuleID == "" || len(d.PCRs) != 16 || !strings.HasPrefix(d.PCRs["0"], v.pcr0) {
					t.Fatalf("document %+v", d)
				}
				if d.UserData == nil || *d.UserData != v.userData {
					t.Errorf("user_data %v, want %s", d.UserData, v.userData)
				}
				if (v.nonce == "") != (d.Nonce == nil) || d.Nonce != nil && *d.Nonce != v.nonce {
					t.Errorf("nonce %v, want %q", d.Nonce, v.nonce)
				}
				if len(r.Chain) != 5 || r.Chain[4].SHA256 != attestation.AWSRootSHA256 || r.Chain[0].Subject != d.Certificate.Subject {
					t.Errorf("chain %+v", r.Chain)
				}
				if len(d.CABundle) != 4 || !strings.HasPrefix(d.CABundle[0].Note, "ignored") {
					t.Errorf("cabundle %+v", d.CABundle)
				}
				for _, c := range r.Checks {
					if c.Status == attestation.CheckFailed {
						t.Errorf("valid document with failed check %+v", c)
					}
				}
			}
			if v.file == "selfsigned-no-cabundle.cose" {
				if r.Document != nil {
					t.Error("a document that does not decode is shown")
				}
				return
			}
			if v.code != 0 && (r.Document == nil || r.Document.Authenticated) {
				t.Errorf("invalid document: %+v, want it shown as unauthenticated", r.Document)
			}

			// One day later the leaf (about 3 h) has long expired.
			next := at.Add(24 * time.Hour).Format(time.RFC3339)
			_, errs = wantAttest(t, 1, "", at, "verify", file, "--at", next)
			if !strings.HasPrefix(errs, "sealsign: attestation: chain expired: want chain to root CN=aws.nitro-enclaves at "+next) ||
				!strings.Contains(errs, "sealsign: hint: the leaf certificate is valid ") {
				t.Errorf("a day later: %s", errs)
			}
			// Without --at, the clock decides: a day later too.
			_, errs = wantAttest(t, 1, "", at.Add(24*time.Hour), "verify", file)
			if !strings.Contains(errs, "chain expired") || !strings.Contains(errs, "verify an archived document with --at TIME") {
				t.Errorf("a day later by the clock: %s", errs)
			}

			// Another root instead of AWS's.
			_, errs = wantAttest(t, 1, "", at, "verify", file, "--at", v.at, "--root", devRoot, "--allow-debug")
			if !strings.HasPrefix(errs, "sealsign: attestation: chain untrusted: want chain to root CN="+devnsm.RootCommonName) {
				t.Errorf("under a dev root: %s", errs)
			}
		})
	}
}

func writeAttestDevRoot(t *testing.T) string {
	t.Helper()
	ca, err := devnsm.NewCA(rand.Reader, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "dev-root.pem")
	if err := os.WriteFile(p, ca.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestAttestPolicy checks the policy flags on a real document: matching
// values pass and are listed as checks; a mismatch names the check with
// the full expected and actual values.
func TestAttestPolicy(t *testing.T) {
	file := filepath.Join(attestTestdata, "eu-west-1-2022-11-09.cose")
	at := mustRFC3339("2022-11-09T23:00:00Z")
	const (
		pcr0  = "22f9e1c949208da55eb01b9b9fc88f87454f77ba133f0d82320b509621c92482152a99d0a12335b97178c02d6f977d01"
		pcr1  = "bcdf05fefccaa8e55bf2c8d6dee9e79bbff31e34bf28a99aa19e6b29c37ee80b214a414b7607236edf26fcb78654e63f"
		ud    = "7c37108079b3e8a36d8a7970de1d6d4ff1461e0e35d9557c4d789df5e0576620"
		nonce = "c678c86135de539d183acff58886d98dfb9823041af9f934bf909ac0f8d96245"
	)
	out, _ := wantAttest(t, 0, "", at, "verify", file, "--at", "2022-11-09T23:00:00Z", "--json", "--pcr", "0="+pcr0, "--pcr", "1="+strings.ToUpper(pcr1),
		"--user-data", ud, "--nonce", nonce, "--public-key", "", "--match-instance-id", "--max-age", "10m")
	r := parseAttestJSON(t, out)
	var names []string
	for _, c := range r.Checks {
		names = append(names, c.Name+":"+c.Status)
	}
	want := "cose:pass payload:pass leaf:pass cabundle:pass chain:pass timestamp:pass signature:pass age:pass debug:pass pcr0:pass pcr1:pass instance_id:pass nonce:pass user_data:pass public_key:pass"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("checks\n got %s\nwant %s", got, want)
	}

	for _, tt := range []struct {
		name  string
		args  []string
		check string
		msg   string
	}{
		{"pcr0 mismatch", []string{"--pcr", "0=" + pcr1}, "pcr0", "sealsign: attestation: pcr0 mismatch: want bcdf05fe…e63f, got 22f9e1c9…7d01"},
		{"pcr16 absent", []string{"--pcr", "16=" + pcr0}, "pcr16", "sealsign: attestation: pcr16 missing: want 22f9e1c9…7d01, got absent"},
		{"nonce mismatch", []string{"--nonce", "00"}, "nonce", "sealsign: attestation: nonce mismatch: want 00, got c678c861…6245"},
		{"nonce expected absent", []string{"--nonce", ""}, "nonce", "sealsign: attestation: nonce mismatch: want empty, got c678c861…6245"},
		{"user_data mismatch", []string{"--user-data", nonce}, "user_data", "sealsign: attestation: user_data mismatch"},
		{"public_key expected", []string{"--public-key", "0102"}, "public_key", "sealsign: attestation: public_key mismatch: want 0102, got absent"},
		{"too old", []string{"--max-age", "5m"}, "age", "sealsign: attestation: age too old: want timestamp at or after 2022-11-09T22:55:00Z, got 2022-11-09T22:52:00.696Z"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"verify", file, "--at", "2022-11-09T23:00:00Z"}, tt.args...)
			_, errs := wantAttest(t, 1, "", at, args...)
			if !strings.HasPrefix(errs, tt.msg) {
				t.Errorf("stderr %q, want prefix %q", errs, tt.msg)
			}
			out, _ := wantAttest(t, 1, "", at, append(args, "--json")...)
			r := parseAttestJSON(t, out)
			if r.Error == nil || r.Error.Check != tt.check || r.Error.Message != strings.TrimPrefix(strings.SplitN(errs, "\n", 2)[0], "sealsign: ") {
				t.Errorf("JSON error %+v, want check %q and the stderr message", r.Error, tt.check)
			}
			if tt.check == "pcr0" && (r.Error.Want != pcr1 || r.Error.Got != pcr0) {
				t.Errorf("JSON want/got are not the full values: %+v", r.Error)
			}
		})
	}

	// Debug documents pass only with --allow-debug.
	dbg := filepath.Join(attestTestdata, "us-east-1-2024-09-07-debug.cose")
	out, _ = wantAttest(t, 0, "", at, "verify", dbg, "--at", "2024-09-07T14:40:00Z", "--allow-debug")
	if !strings.Contains(out, "debug skip") {
		t.Errorf("--allow-debug output does not show the skipped debug check:\n%s", out)
	}
	_, errs := wantAttest(t, 1, "", at, "verify", dbg, "--at", "2024-09-07T14:40:00Z")
	if !strings.Contains(errs, "sealsign: hint: the enclave runs in debug mode; --allow-debug accepts it") {
		t.Errorf("debug hint missing: %s", errs)
	}
}

// TestAttestInputFormats checks raw COSE, base64 (wrapped, unpadded, URL
// alphabet) and hex (any case, 0x prefix) from a file or standard input.
func TestAttestInputFormats(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(attestTestdata, "qos-mock-2022-07-06.cose"))
	if err != nil {
		t.Fatal(err)
	}
	wrap := func(s string, n int) string {
		var b strings.Builder
		for len(s) > n {
			b.WriteString(s[:n] + "\n")
			s = s[n:]
		}
		return b.String() + s + "\n"
	}
	dir := t.TempDir()
	at := time.Unix(1657117192, 0)
	for _, tt := range []struct {
		name, content, format string
	}{
		{"raw", string(raw), "cose"},
		{"tagged raw", "\xd2" + string(raw), "cose"},
		{"base64 wrapped at 76", wrap(base64.StdEncoding.EncodeToString(raw), 76), "base64"},
		{"base64 unpadded URL alphabet", base64.RawURLEncoding.EncodeToString(raw), "base64"},
		{"hex", hex.EncodeToString(raw) + "\n", "hex"},
		{"hex upper case with 0x", "0x" + strings.ToUpper(hex.EncodeToString(raw)), "hex"},
		{"hex wrapped", wrap(hex.EncodeToString(raw), 64), "hex"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "_"))
			if err := os.WriteFile(p, []byte(tt.content), 0o644); err != nil {
				t.Fatal(err)
			}
			for _, args := range [][]string{{"verify", p, "--json"}, {"verify", "-", "--json"}} {
				out, _ := wantAttest(t, 0, tt.content, at, args...)
				r := parseAttestJSON(t, out)
				if r.Input.Format != tt.format || r.Input.Bytes != len(raw)+strings.Count(tt.name, "tagged") || !r.Valid {
					t.Errorf("%v: input %+v valid %v, want format %s", args, r.Input, r.Valid, tt.format)
				}
			}
		})
	}

	for _, tt := range []struct {
		name, content, msg string
	}{
		{"empty", "", "sealsign: attest: standard input: empty input"},
		{"text", "this is not a document!", "sealsign: attest: standard input: not a COSE_Sign1 document: raw bytes start with 0x84 or 0xd2 (got 0x74), and the input is neither hex nor base64"},
		{"words that are valid base64", "this is not a document", "base64 input decodes to 13 bytes starting with 0xb6, not a COSE_Sign1 document"},
		{"binary", "\x00\x01\x02", "not a COSE_Sign1 document: raw bytes start with 0x84 or 0xd2 (got 0x00)"},
		{"too large", strings.Repeat("a", maxAttestInput+1), "sealsign: attest: standard input is larger than 64 KiB"},
		{"base64 of something else", base64.StdEncoding.EncodeToString([]byte("hello")), "base64 input decodes to 5 bytes starting with 0x68, not a COSE_Sign1 document"},
		{"hex of something else", "68656c6c6f", "hex input decodes to 5 bytes starting with 0x68, not a COSE_Sign1 document"},
		{"COSE-looking garbage", base64.StdEncoding.EncodeToString([]byte{0x84, 1, 2}), "sealsign: attestation: cose malformed"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, errs := wantAttest(t, 1, tt.content, at, "verify", "-")
			if !strings.Contains(errs, tt.msg) {
				t.Errorf("stderr %q, want %q", errs, tt.msg)
			}
			out, _ := wantAttest(t, 1, tt.content, at, "verify", "-", "--json")
			if r := parseAttestJSON(t, out); r.Valid || r.Error == nil || r.Error.Message == "" {
				t.Errorf("JSON %+v", r)
			}
		})
	}
	_, errs := wantAttest(t, 1, "", at, "verify", filepath.Join(dir, "missing.cose"))
	if !strings.HasPrefix(errs, "sealsign: attest: open ") || !strings.Contains(errs, "no such file") {
		t.Errorf("missing file: %s", errs)
	}
}

// TestAttestUsage checks usage errors exit 2 with a message, help exits 0.
func TestAttestUsage(t *testing.T) {
	file := filepath.Join(attestTestdata, "eu-west-1-2022-11-09.cose")
	pcr := strings.Repeat("ab", 48)
	now := time.Now()
	_, errs := wantAttest(t, 2, "", now)
	if !strings.Contains(errs, "Usage:") || !strings.Contains(errs, "Examples:") || !strings.Contains(errs, "Exit codes: 0 valid, 1 invalid") {
		t.Errorf("usage text: %s", errs)
	}
	for _, args := range [][]string{{"-h"}, {"help"}, {"verify", "-h"}, {"fetch", "--help"}} {
		out, _ := wantAttest(t, 0, "", now, args...)
		if !strings.Contains(out, "sealsign attest verify FILE") {
			t.Errorf("%v: %s", args, out)
		}
	}
	for _, tt := range []struct {
		args []string
		msg  string
	}{
		{[]string{"check", file}, `sealsign: attest: unknown verb "check"`},
		{[]string{"verify"}, "sealsign: attest verify: verify takes one FILE (or - for standard input), got 0 arguments"},
		{[]string{"verify", file, file}, "got 2 arguments"},
		{[]string{"verify", file, "--at", "yesterday"}, `--at "yesterday" is not an RFC 3339 time`},
		{[]string{"verify", file, "--at"}, "flag needs an argument: -at"},
		{[]string{"verify", file, "--pcr", "0"}, "want N=HEX"},
		{[]string{"verify", file, "--pcr", "32=" + pcr}, `PCR index "32" is not 0..31`},
		{[]string{"verify", file, "--pcr", "-1=" + pcr}, `PCR index "-1"`},
		{[]string{"verify", file, "--pcr", "0=zz"}, "pcr0: value is not hex"},
		{[]string{"verify", file, "--pcr", "0=abcd"}, "pcr0: 2 bytes, want 48"},
		{[]string{"verify", file, "--pcr", "0=" + pcr, "--pcr", "0=" + pcr}, "pcr0 given twice"},
		{[]string{"verify", file, "--nonce", "xyz"}, `invalid value "xyz" for flag -nonce: not hex`},
		{[]string{"verify", file, "--user-data", strings.Repeat("00", 1025)}, "1025 bytes, a document carries at most 1024"},
		{[]string{"verify", file, "--max-age", "-5m"}, "--max-age -5m0s is negative"},
		{[]string{"verify", file, "--max-age", "soon"}, "invalid value"},
		{[]string{"verify", file, "--bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"fetch", "--manifest", "m.json"}, "sealsign: attest fetch: --url is required"},
		{[]string{"fetch", "--url", "http://x"}, "--manifest is required"},
		{[]string{"fetch", "--url", "http://x", "--manifest", "m", "extra"}, "fetch takes no arguments"},
		{[]string{"fetch", "--url", "http://x", "--manifest", "m", "--max-age", "0s"}, "--max-age must be positive"},
	} {
		_, errs := wantAttest(t, 2, "", now, tt.args...)
		if !strings.Contains(errs, tt.msg) || !strings.HasPrefix(errs, "sealsign: attest") {
			t.Errorf("%v: stderr %q, want %q", tt.args, errs, tt.msg)
		}
	}
}

// devParty is a dev NSM whose documents the tests verify through the CLI.
type devParty struct {
	ca   *devnsm.CA
	nsm  *devnsm.NSM
	pcr0 []byte
	root string // PEM file
}

func newDevParty(t *testing.T, now time.Time) *devParty {
	t.Helper()
	ca, err := devnsm.NewCA(rand.Reader, now)
	if err != nil {
		t.Fatal(err)
	}
	pcr0 := bytes.Repeat([]byte{0x5e}, 48)
	n, err := devnsm.New(ca, "party-a", map[uint][]byte{0: pcr0}, rand.Reader, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(t.TempDir(), "dev-root.pem")
	if err := os.WriteFile(root, ca.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	return &devParty{ca: ca, nsm: n, pcr0: pcr0, root: root}
}

// TestAttestDevDocument checks a dev NSM's document verifies only when its
// root is passed with --root: the default anchor is AWS's alone.
func TestAttestDevDocument(t *testing.T) {
	now := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	p := newDevParty(t, now)
	doc, err := p.nsm.Attest([]byte("identity"), []byte("manifest"), []byte("nonce"))
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "dev.cose")
	if err := os.WriteFile(file, []byte(base64.StdEncoding.EncodeToString(doc)), 0o644); err != nil {
		t.Fatal(err)
	}
	later := now.Add(time.Minute)

	// Default trust anchor: the pinned AWS root only.
	_, errs := wantAttest(t, 1, "", later, "verify", file)
	if !strings.HasPrefix(errs, "sealsign: attestation: chain untrusted: want chain to root CN=aws.nitro-enclaves") ||
		!strings.Contains(errs, "sealsign: hint: the document does not chain to the AWS Nitro root (its cabundle names root CN="+devnsm.RootCommonName) ||
		!strings.Contains(errs, "verifies only with --root DEV_ROOT.pem") {
		t.Errorf("dev document under the default root: %s", errs)
	}
	// Pinning the AWS root explicitly changes nothing.
	aws := filepath.Join(t.TempDir(), "aws.pem")
	if err := os.WriteFile(aws, attestation.AWSRootPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	wantAttest(t, 1, "", later, "verify", file, "--root", aws)

	// With the dev root named: valid, with the full policy.
	pol := []string{"--pcr", "0=" + hex.EncodeToString(p.pcr0), "--public-key", hex.EncodeToString([]byte("identity")),
		"--user-data", hex.EncodeToString([]byte("manifest")), "--nonce", hex.EncodeToString([]byte("nonce")), "--max-age", "2m"}
	out, _ := wantAttest(t, 0, "", later, append([]string{"verify", file, "--root", p.root, "--json"}, pol...)...)
	r := parseAttestJSON(t, out)
	if len(r.Chain) != 3 || r.Chain[2].Subject != p.ca.Cert().Subject.String() || r.Chain[2].Note != "trusted root" || r.Policy.Roots[0].Note != "" {
		t.Errorf("chain %+v policy roots %+v", r.Chain, r.Policy.Roots)
	}
	// Both roots trusted (a mixed cluster): still valid.
	wantAttest(t, 0, "", later, "verify", file, "--root", aws, "--root", p.root)
	// The dev root does not excuse a policy failure, nor staleness.
	_, errs = wantAttest(t, 1, "", later, "verify", file, "--root", p.root, "--pcr", "0="+strings.Repeat("00", 48))
	if !strings.HasPrefix(errs, "sealsign: attestation: pcr0 mismatch: want 00000000…0000, got 5e5e5e5e…5e5e") {
		t.Errorf("pcr0 mismatch: %s", errs)
	}
	_, errs = wantAttest(t, 1, "", later, "verify", file, "--root", p.root, "--max-age", "30s")
	if !strings.HasPrefix(errs, "sealsign: attestation: age too old") {
		t.Errorf("stale: %s", errs)
	}
	// A root file without a certificate is an error, not "trust nothing".
	empty := filepath.Join(t.TempDir(), "empty.pem")
	if err := os.WriteFile(empty, []byte("no certificate here\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, errs = wantAttest(t, 1, "", later, "verify", file, "--root", empty)
	if !strings.Contains(errs, `sealsign: attest: --root `+empty+`: no PEM "CERTIFICATE" block`) {
		t.Errorf("empty root file: %s", errs)
	}
	out, _ = wantAttest(t, 1, "", later, "verify", file, "--root", empty, "--json")
	if r := parseAttestJSON(t, out); r.Valid || r.Error == nil || !strings.Contains(r.Error.Message, "no PEM") {
		t.Errorf("empty root file, JSON: %s", out)
	}
}

// TestAttestFetch runs fetch against a host API served by httptest whose
// enclave is a dev NSM: a fresh document bound to the CLI's nonce, the
// manifest hash and the reported identity verifies; replays, other
// measurements and other identities do not.
func TestAttestFetch(t *testing.T) {
	now := time.Now()
	p := newDevParty(t, now)
	identity := api.Identity{PartyID: "a", SigningKey: bytes.Repeat([]byte{1}, 32), HPKEKey: bytes.Repeat([]byte{2}, 32)}
	manifest := func(pcr0 []byte) (string, []byte) {
		m := &api.Manifest{Version: 1, ClusterID: "test", Threshold: 1, DevRoots: []string{string(p.ca.CertPEM())},
			Parties: []api.ManifestParty{
				{ID: "a", Kind: "dev", PCRs: map[string]string{"0": hex.EncodeToString(pcr0)}},
				{ID: "b", Kind: "dev", PCRs: map[string]string{"0": hex.EncodeToString(pcr0)}},
			}}
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "manifest.json")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		h, err := m.Hash()
		if err != nil {
			t.Fatal(err)
		}
		return path, h
	}
	good, hash := manifest(p.pcr0)
	otherPCR, _ := manifest(bytes.Repeat([]byte{0x11}, 48))
	pub, err := api.Marshal(identity)
	if err != nil {
		t.Fatal(err)
	}
	stale, err := p.nsm.Attest(pub, hash, []byte("an old nonce"))
	if err != nil {
		t.Fatal(err)
	}
	serve := func(replay bool, id api.Identity) *httptest.Server {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/v1/attestation" {
				http.NotFound(w, r)
				return
			}
			nonce, err := hex.DecodeString(r.URL.Query().Get("nonce"))
			if err != nil || len(nonce) != 32 {
				http.Error(w, `{"error":"bad nonce"}`, http.StatusBadRequest)
				return
			}
			doc := stale
			if !replay {
				if doc, err = p.nsm.Attest(pub, hash, nonce); err != nil {
					t.Error(err)
				}
			}
			_ = json.NewEncoder(w).Encode(server.AttestationResponse{PartyID: "a", Document: doc, Identity: id})
		}))
		t.Cleanup(srv.Close)
		return srv
	}
	honest := serve(false, identity)

	out, errs := wantAttest(t, 0, "", now, "fetch", "--url", honest.URL, "--manifest", good)
	if !strings.HasPrefix(out, "valid: attestation document verified at ") || !strings.Contains(out, "party        a") || errs != "" {
		t.Errorf("stdout %s\nstderr %s", out, errs)
	}
	out, _ = wantAttest(t, 0, "", now, "fetch", "--url", honest.URL, "--manifest", good, "--json", "--party", "a")
	r := parseAttestJSON(t, out)
	var names []string
	for _, c := range r.Checks {
		names = append(names, c.Name)
	}
	if r.Party != "a" || !r.Valid || !strings.HasSuffix(strings.Join(names, " "), "age debug pcr0 nonce user_data public_key") {
		t.Errorf("fetch JSON: party %q valid %v checks %v", r.Party, r.Valid, names)
	}

	for _, tt := range []struct {
		name string
		url  string
		args []string
		msg  string
	}{
		{"replayed document", serve(true, identity).URL, nil, "attestation: nonce mismatch"},
		{"measurement not in the manifest", honest.URL, []string{"--manifest", otherPCR}, "attestation: pcr0 mismatch: want 11111111…1111, got 5e5e5e5e…5e5e"},
		{"identity of another party", serve(false, api.Identity{PartyID: "b", SigningKey: identity.SigningKey, HPKEKey: identity.HPKEKey}).URL, nil,
			`answers as party "a" with the identity of party "b"`},
		{"identity keys not the attested ones", serve(false, api.Identity{PartyID: "a", SigningKey: identity.HPKEKey, HPKEKey: identity.SigningKey}).URL, nil,
			"attestation: public_key mismatch"},
		{"another party expected", honest.URL, []string{"--party", "b"}, `answers as party "a", want "b"`},
		{"AWS root forced", honest.URL, []string{"--root", writeAWSRoot(t)}, "attestation: chain untrusted"},
		{"host down", "http://127.0.0.1:1", nil, "sealsign: attest: fetch from http://127.0.0.1:1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := []string{"fetch", "--url", tt.url, "--manifest", good}
			_, errs := wantAttest(t, 1, "", now, append(args, tt.args...)...)
			if !strings.Contains(errs, tt.msg) || !strings.HasPrefix(errs, "sealsign: ") {
				t.Errorf("stderr %q, want %q", errs, tt.msg)
			}
		})
	}
}

func writeAWSRoot(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "aws.pem")
	if err := os.WriteFile(p, attestation.AWSRootPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
