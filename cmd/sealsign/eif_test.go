package main

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const (
	testdata = "../../eif/testdata"
	miniPCR0 = "61fd2b06210a933b3db5e15c5752e394894bb097f7f1d96ad1f55a7525d0d7aa2c63b235f44420b12d8376cc392bdefb"
	p384PCR8 = "002feae2beee3f573fa5e642f0a0d70c8f5e4c56822b248737528fddde4d96e33bf2eb81692536570322acbfb20fb2ce"
)

func init() {
	// The test certificates are valid from 2026-11-22 to 2046-11-22.
	eifNow = func() time.Time { return time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC) }
}

// runEIF calls the eif command as main would.
func runEIF(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = eifMain(args, &out, &errb)
	return code, out.String(), errb.String()
}

func wantRun(t *testing.T, wantCode int, args ...string) (string, string) {
	t.Helper()
	code, out, errs := runEIF(t, args...)
	if code != wantCode {
		t.Fatalf("sealsign eif %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, wantCode, out, errs)
	}
	return out, errs
}

func writeFile(t *testing.T, dir, name, data string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestEIFUsage(t *testing.T) {
	_, errs := wantRun(t, 2)
	if !strings.Contains(errs, "Usage:") || !strings.Contains(errs, "Examples:") || !strings.Contains(errs, "Exit codes: 0 ok, 1 failed, 2 usage.") {
		t.Fatalf("usage text: %s", errs)
	}
	out, _ := wantRun(t, 0, "-h")
	if !strings.Contains(out, "sealsign eif build-enclave") {
		t.Fatalf("help: %s", out)
	}
	_, errs = wantRun(t, 2, "frobnicate")
	if !strings.HasPrefix(errs, `sealsign: eif: unknown verb "frobnicate"`) {
		t.Fatalf("stderr %q", errs)
	}
	for _, args := range [][]string{
		{"describe"},
		{"describe", "a", "b"},
		{"describe", "--bogus", "x"},
		{"pcrs"},
		{"build", "--cmdline", "x", "-o", "out"},
		{"build", "--kernel", "k", "-o", "out"},
		{"build", "--kernel", "k", "--ramdisk", "r"},
		{"build", "--kernel", "k", "--ramdisk", "r", "-o", "o", "--arch", "mips"},
		{"build", "--kernel", "k", "--ramdisk", "r", "-o", "o", "--build-time", "yesterday"},
		{"build", "--kernel", "k", "--ramdisk", "r", "-o", "o", "--sign-key", "k.pem"},
		{"sign", "x.eif"},
		{"build-enclave", "extra"},
	} {
		code, _, errs := runEIF(t, args...)
		if code != 2 || !strings.HasPrefix(errs, "sealsign: eif: ") {
			t.Errorf("%q: exit %d, stderr %q; want 2 and a sealsign: eif: error", args, code, errs)
		}
	}
}

func TestEIFDescribe(t *testing.T) {
	mini := filepath.Join(testdata, "mini-v4.eif")
	out, _ := wantRun(t, 0, "describe", mini)
	for _, want := range []string{"EifVersion: 4", "PCR0: " + miniPCR0, "IsSigned: false", "CheckCRC: true", "ImageName: test", "   4 ramdisk   offset 863"} {
		if !strings.Contains(out, want) {
			t.Errorf("describe output lacks %q:\n%s", want, out)
		}
	}
	// --json after the file, nitro-cli's field names and order.
	out, _ = wantRun(t, 0, "describe", mini, "--json")
	var doc map[string]any
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("--json output is not JSON: %v\n%s", err, out)
	}
	if doc["EifVersion"] != 4.0 || doc["CheckCRC"] != true || doc["IsSigned"] != false || doc["Measurements"].(map[string]any)["PCR0"] != miniPCR0 {
		t.Fatalf("describe --json: %s", out)
	}
	if !strings.HasPrefix(out, "{\n  \"EifVersion\": 4,\n  \"Measurements\": {\n    \"HashAlgorithm\": \"Sha384 { ... }\",") {
		t.Fatalf("describe --json layout:\n%s", out)
	}

	// A corrupted copy fails with the reader's precise error.
	data, _ := os.ReadFile(mini)
	data[880] ^= 1
	bad := writeFile(t, t.TempDir(), "bad.eif", string(data))
	_, errs := wantRun(t, 1, "describe", bad)
	if !strings.HasPrefix(errs, "sealsign: eif: crc32 mismatch: header says 3a83bf6d, computed") {
		t.Fatalf("stderr %q", errs)
	}
	_, errs = wantRun(t, 1, "pcrs", filepath.Join(t.TempDir(), "missing.eif"))
	if !strings.Contains(errs, "no such file") {
		t.Fatalf("stderr %q", errs)
	}
	out, _ = wantRun(t, 0, "pcrs", mini)
	if !strings.HasPrefix(out, "PCR0 "+miniPCR0+"\nPCR1 ") || strings.Contains(out, "PCR8") {
		t.Fatalf("pcrs: %s", out)
	}
}

// TestEIFBuildSignDescribe: build twice (identical bytes), sign in place,
// and describe the signed image.
func TestEIFBuildSignDescribe(t *testing.T) {
	dir := t.TempDir()
	kernel := writeFile(t, dir, "bzImage", "KERNEL")
	r0 := writeFile(t, dir, "r0.cpio", "RAMDISK0")
	r1 := writeFile(t, dir, "r1.cpio", "RAMDISK1")
	build := func(out string, extra ...string) string {
		args := append([]string{"build", "--kernel", kernel, "--cmdline", "console=ttyS0", "--ramdisk", r0, "--ramdisk", r1,
			"--name", "test", "--build-time", "1970-01-01T00:00:00+00:00", "-o", out}, extra...)
		stdout, _ := wantRun(t, 0, args...)
		return stdout
	}
	a, b := filepath.Join(dir, "a.eif"), filepath.Join(dir, "b.eif")
	out := build(a)
	build(b)
	if !strings.HasPrefix(out, "PCR0 "+miniPCR0) {
		t.Fatalf("build output %q", out)
	}
	ab, _ := os.ReadFile(a)
	bb, _ := os.ReadFile(b)
	if !bytes.Equal(ab, bb) {
		t.Fatal("two builds of the same inputs differ")
	}
	desc, _ := wantRun(t, 0, "describe", a)
	if !strings.Contains(desc, "CheckCRC: true") || !strings.Contains(desc, "BuildTool: sealsign") {
		t.Fatalf("describe: %s", desc)
	}

	key, cert := filepath.Join(testdata, "signer-p384.key"), filepath.Join(testdata, "signer-p384.crt")
	out, _ = wantRun(t, 0, "sign", a, "--sign-key", key, "--sign-cert", cert, "--json")
	if !strings.Contains(out, `"PCR8": "`+p384PCR8+`"`) {
		t.Fatalf("sign --json: %s", out)
	}
	desc, _ = wantRun(t, 0, "describe", a)
	for _, want := range []string{"IsSigned: true", "PCR8: " + p384PCR8, "SignatureCheck: true", "commonName: sealsign eif test signer", "Algorithm: ecdsa-with-SHA384"} {
		if !strings.Contains(desc, want) {
			t.Errorf("signed describe lacks %q:\n%s", want, desc)
		}
	}
	// Building signed directly gives the same image as build + sign.
	c := filepath.Join(dir, "c.eif")
	build(c, "--sign-key", key, "--sign-cert", cert)
	signedA, _ := os.ReadFile(a)
	cb, _ := os.ReadFile(c)
	if !bytes.Equal(signedA, cb) {
		t.Fatal("build --sign-key differs from build then sign")
	}
	// A key that does not match the certificate fails before writing.
	_, errs := wantRun(t, 1, "sign", b, "--sign-key", filepath.Join(testdata, "signer-p256.key"), "--sign-cert", cert, "-o", filepath.Join(dir, "d.eif"))
	if !strings.HasPrefix(errs, "sealsign: eif: signing key does not match the certificate") {
		t.Fatalf("stderr %q", errs)
	}
	if _, err := os.Stat(filepath.Join(dir, "d.eif")); !os.IsNotExist(err) {
		t.Fatal("failed sign left an output file")
	}
}

// testELF is a minimal static x86_64 ELF executable header.
func testELF() []byte {
	var b bytes.Buffer
	h := elf.Header64{Type: uint16(elf.ET_EXEC), Machine: uint16(elf.EM_X86_64), Version: 1, Phoff: 64, Ehsize: 64, Phentsize: 56, Phnum: 1}
	copy(h.Ident[:], []byte{0x7f, 'E', 'L', 'F', byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)})
	binary.Write(&b, binary.LittleEndian, h)
	binary.Write(&b, binary.LittleEndian, elf.Prog64{Type: uint32(elf.PT_LOAD)})
	return b.Bytes()
}

func TestEIFBuildEnclave(t *testing.T) {
	empty := t.TempDir()
	t.Setenv("NITRO_BLOBS", empty)
	_, errs := wantRun(t, 1, "build-enclave", "-o", filepath.Join(empty, "x.eif"))
	for _, want := range []string{"sealsign: eif: boot blobs not found in " + empty, "aws-nitro-enclaves-cli", "blobs/x86_64"} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errs)
		}
	}

	blobs := t.TempDir()
	writeFile(t, blobs, "bzImage", "fake kernel")
	writeFile(t, blobs, "bzImage.config", "#\n# comment\n# Linux/x86_64 4.14.256-209.484.amzn2.x86_64 Kernel Configuration\n")
	writeFile(t, blobs, "cmdline", "console=ttyS0\n")
	writeFile(t, blobs, "init", "fake init")
	writeFile(t, blobs, "nsm.ko", "fake nsm")
	t.Setenv("NITRO_BLOBS", blobs)
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	work := t.TempDir()
	bin := writeFile(t, work, "sealsign-enclave", string(testELF()))

	_, errs = wantRun(t, 1, "build-enclave", "--enclave-binary", filepath.Join(work, "missing"), "-o", filepath.Join(work, "x.eif"))
	if !strings.Contains(errs, "CGO_ENABLED=0 go build") {
		t.Fatalf("missing binary: %s", errs)
	}
	out1 := filepath.Join(work, "out", "sealsign.eif")
	stdout, errs := wantRun(t, 0, "build-enclave", "--enclave-binary", bin, "-o", out1)
	if !strings.HasPrefix(stdout, "PCR0 ") || !strings.Contains(errs, "wrote "+out1) {
		t.Fatalf("stdout %q stderr %q", stdout, errs)
	}
	out2 := filepath.Join(work, "again.eif")
	wantRun(t, 0, "build-enclave", "--enclave-binary", bin, "-o", out2, "--blobs", blobs)
	b1, _ := os.ReadFile(out1)
	b2, _ := os.ReadFile(out2)
	if !bytes.Equal(b1, b2) {
		t.Fatal("two enclave builds differ")
	}
	js, _ := wantRun(t, 0, "describe", out1, "--json")
	for _, want := range []string{`"ImageName": "sealsign-enclave"`, `"BuildTime": "2023-11-14T22:13:20+00:00"`, `"KernelVersion": "4.14.256"`, `"CheckCRC": true`} {
		if !strings.Contains(js, want) {
			t.Errorf("describe lacks %s:\n%s", want, js)
		}
	}
}

func TestEIFVerbHelp(t *testing.T) {
	out, _ := wantRun(t, 0, "describe", "-h")
	if !strings.Contains(out, "Usage:") {
		t.Fatalf("describe -h: %q", out)
	}
}
