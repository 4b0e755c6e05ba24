package eif

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// testELF returns a minimal 64-bit little-endian ELF executable header
// with one program header: PT_LOAD for a static binary, PT_INTERP for a
// dynamically linked one.
func testELF(machine elf.Machine, interp bool) []byte {
	var b bytes.Buffer
	h := elf.Header64{
		Type: uint16(elf.ET_EXEC), Machine: uint16(machine), Version: 1,
		Phoff: 64, Ehsize: 64, Phentsize: 56, Phnum: 1,
	}
	copy(h.Ident[:], []byte{0x7f, 'E', 'L', 'F', byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)})
	binary.Write(&b, binary.LittleEndian, h)
	p := elf.Prog64{Type: uint32(elf.PT_LOAD)}
	if interp {
		p.Type = uint32(elf.PT_INTERP)
	}
	binary.Write(&b, binary.LittleEndian, p)
	b.WriteString("payload")
	return b.Bytes()
}

const testKernelConfig = "#\n# Automatically generated file; DO NOT EDIT.\n# Linux/x86_64 4.14.256-209.484.amzn2.x86_64 Kernel Configuration\n#\n"

// fakeBlobs writes stand-in blobs with the real file names.
func fakeBlobs(t *testing.T) string {
	dir := t.TempDir()
	for name, data := range map[string]string{
		"bzImage":        "fake bzImage",
		"bzImage.config": testKernelConfig,
		"cmdline":        "reboot=k panic=30 pci=off nomodules console=ttyS0 random.trust_cpu=on\n",
		"init":           "fake init",
		"nsm.ko":         "fake nsm.ko",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestFindBlobsMissing(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "bzImage"), []byte("k"), 0o644)
	_, err := FindBlobs(dir)
	if !errors.Is(err, ErrNoBlobs) {
		t.Fatalf("error %v, want ErrNoBlobs", err)
	}
	for _, want := range []string{"missing bzImage.config, cmdline, init, nsm.ko", "aws-nitro-enclaves-cli-devel", "blobs/x86_64", "NITRO_BLOBS"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

// TestEnclaveImageFromBlobs builds an enclave image from stand-in blobs
// and checks PCR1 against an independent derivation: SHA-384 chain over
// the kernel, the trimmed cmdline and the bootstrap ramdisk written by
// hand from the notes. With AWS's real blobs the same computation gives
// nitro-cli's PCR1 (TestAWSBlobsPCR1).
func TestEnclaveImageFromBlobs(t *testing.T) {
	blobs, err := FindBlobs(fakeBlobs(t))
	if err != nil {
		t.Fatal(err)
	}
	bin := testELF(elf.EM_X86_64, false)
	app := &App{Path: "/bin/sealsign-enclave", Binary: bytes.NewReader(bin)}
	spec, err := blobs.Spec(app, Metadata{ImageName: "sealsign-enclave", ImageVersion: "test", BuildTime: EpochBuildTime, BuildTool: "sealsign", BuildToolVersion: "test"})
	if err != nil {
		t.Fatal(err)
	}
	var a, b bytes.Buffer
	img, err := Build(&a, spec)
	if err != nil {
		t.Fatal(err)
	}
	spec2, _ := blobs.Spec(app, Metadata{ImageName: "sealsign-enclave", ImageVersion: "test", BuildTime: EpochBuildTime, BuildTool: "sealsign", BuildToolVersion: "test"})
	if _, err := Build(&b, spec2); err != nil || !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatalf("two enclave builds differ (err %v)", err)
	}
	boot := handNewc(1492533000, []handEntry{{"dev", 0o40755, nil}, {"init", 0o100755, []byte("fake init")}, {"nsm.ko", 0o100755, []byte("fake nsm.ko")}})
	cmdline := []byte("reboot=k panic=30 pci=off nomodules console=ttyS0 random.trust_cpu=on")
	if got, want := img.Measurements.PCR1.String(), pcrOf([]byte("fake bzImage"), cmdline, boot); got != want {
		t.Fatalf("PCR1 %s, want %s", got, want)
	}
	if img.Cmdline != string(cmdline) || img.Metadata.KernelVersion != "4.14.256" || img.Metadata.OperatingSystem != "Linux" {
		t.Fatalf("cmdline %q, metadata %+v", img.Cmdline, img.Metadata)
	}
}

func TestCheckEnclaveBinary(t *testing.T) {
	if err := CheckEnclaveBinary(bytes.NewReader(testELF(elf.EM_X86_64, false)), ArchX86_64); err != nil {
		t.Fatal(err)
	}
	if err := CheckEnclaveBinary(bytes.NewReader(testELF(elf.EM_AARCH64, false)), ArchAarch64); err != nil {
		t.Fatal(err)
	}
	wantErr(t, CheckEnclaveBinary(bytes.NewReader(testELF(elf.EM_X86_64, true)), ArchX86_64), "dynamically linked")
	wantErr(t, CheckEnclaveBinary(bytes.NewReader(testELF(elf.EM_AARCH64, false)), ArchX86_64), "enclave binary is for EM_AARCH64, want EM_X86_64")
	wantErr(t, CheckEnclaveBinary(strings.NewReader("#!/bin/sh\n"), ArchX86_64), "enclave binary is not an ELF file")
}

// nitro-cli's PCR1 for the x86_64 blobs of nitro-cli v1.3.1 to v1.5.0
// (CLI tests/tests.rs KERNEL_PCR; notes §5 V2).
const awsX86PCR1 = "0343b056cd8485ca7890ddd833476d78460aed2aa161548e4e26bedf321726696257d623e8805f3f605946b3d8b0c6aa"

// TestAWSBlobsPCR1 is the end-to-end conformance check: with AWS's real
// x86_64 blobs, the image this package builds must have nitro-cli's PCR1.
// It needs the blobs, which are not redistributable here; without them it
// says where to get them and skips.
func TestAWSBlobsPCR1(t *testing.T) {
	dir := os.Getenv("NITRO_BLOBS")
	if dir == "" {
		dir = DefaultBlobsDir
	}
	blobs, err := FindBlobs(dir)
	if err != nil {
		t.Skipf("conformance with nitro-cli's PCR1 not checked: %v", err)
	}
	if blobs.Arch != ArchX86_64 {
		t.Skipf("blobs in %s are for %v; the pinned PCR1 is for x86_64", dir, blobs.Arch)
	}
	spec, err := blobs.Spec(&App{Path: "/app", Binary: bytes.NewReader(testELF(elf.EM_X86_64, false))}, Metadata{BuildTime: EpochBuildTime})
	if err != nil {
		t.Fatal(err)
	}
	img, err := Build(&bytes.Buffer{}, spec)
	if err != nil {
		t.Fatal(err)
	}
	if got := img.Measurements.PCR1.String(); got != awsX86PCR1 {
		t.Fatalf("PCR1 with the blobs in %s = %s, nitro-cli's is %s (blobs older than nitro-cli v1.3.1 give bcdf05fe…)", dir, got, awsX86PCR1)
	}
}
