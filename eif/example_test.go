package eif_test

import (
	"bytes"
	"fmt"
	"log"
	"os"
	"strings"

	"github.com/sealsign/sealsign/eif"
)

// Build an image reproducibly, then read it back and compare PCRs.
func ExampleBuild() {
	spec := &eif.Spec{
		Arch:     eif.ArchX86_64,
		Kernel:   strings.NewReader("KERNEL"),
		Cmdline:  "console=ttyS0",
		Ramdisks: []eif.Content{strings.NewReader("RAMDISK0"), strings.NewReader("RAMDISK1")},
		Metadata: eif.Metadata{
			ImageName: "test", ImageVersion: "1.0", BuildTime: eif.EpochBuildTime,
			BuildTool: "eif_build", BuildToolVersion: "0.0.0", OperatingSystem: "Linux", KernelVersion: "0.0.0",
		},
	}
	var buf bytes.Buffer
	built, err := eif.Build(&buf, spec)
	if err != nil {
		log.Fatal(err)
	}
	read, err := eif.Read(&buf)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(read.Measurements.PCR0 == built.Measurements.PCR0)
	fmt.Printf("%08x\n", read.Header.CRC32)
	fmt.Println(read.Measurements.PCR0)
	// Output:
	// true
	// 3a83bf6d
	// 61fd2b06210a933b3db5e15c5752e394894bb097f7f1d96ad1f55a7525d0d7aa2c63b235f44420b12d8376cc392bdefb
}

// Read checks and measures an image from any io.Reader.
func ExampleRead() {
	f, err := os.Open("testdata/mini-v4.eif")
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	img, err := eif.Read(f)
	if err != nil {
		log.Fatal(err)
	}
	for _, s := range img.Sections {
		fmt.Println(s.Index, s.Type, s.Offset, s.Size)
	}
	fmt.Println(img.Measurements.PCR2)
	// Output:
	// 0 kernel 548 6
	// 1 cmdline 566 13
	// 2 metadata 591 240
	// 3 ramdisk 843 8
	// 4 ramdisk 863 8
	// 5f699ae4300525c628f5c96fc521729dd6ca1a2c07cb07b69e7ae9e3fa935cfd7cc83b3e26d89201a486d9db2405c562
}

// MeasureBytes is `nitro-cli pcr --input`: the PCR of empty content is
// PCR2 of every image with a single ramdisk.
func ExampleMeasureBytes() {
	fmt.Println(eif.MeasureBytes(nil))
	// Output: 21b9efbc184807662e966d34f390821309eeac6802309798826296bf3e8bec7c10edb30948c90ba67310f7b964fc500a
}

// Sign an image with a software ECDSA key and verify it.
func ExampleSign() {
	key, _ := os.ReadFile("testdata/signer-p384.key")
	cert, _ := os.ReadFile("testdata/signer-p384.crt")
	signer, err := eif.ParseSigner(key, cert)
	if err != nil {
		log.Fatal(err)
	}
	unsigned, _ := os.ReadFile("testdata/mini-v4.eif")
	var signed bytes.Buffer
	if _, err := eif.Sign(&signed, bytes.NewReader(unsigned), signer); err != nil {
		log.Fatal(err)
	}
	img, err := eif.Read(&signed)
	if err != nil {
		log.Fatal(err)
	}
	pcr8, _ := eif.CertificatePCR(cert)
	fmt.Println(*img.Measurements.PCR8 == pcr8, img.VerifySignature(img.Signature.Certificate.NotBefore) == nil)
	// Output: true true
}
