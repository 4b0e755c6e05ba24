package eif

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

func miniSpec() *Spec {
	return &Spec{
		Kernel:   strings.NewReader("KERNEL"),
		Cmdline:  "console=ttyS0",
		Ramdisks: []Content{strings.NewReader("RAMDISK0"), strings.NewReader("RAMDISK1")},
		Metadata: Metadata{
			ImageName: "test", ImageVersion: "1.0", BuildTime: EpochBuildTime, BuildTool: "eif_build",
			BuildToolVersion: "0.0.0", OperatingSystem: "Linux", KernelVersion: "0.0.0",
		},
	}
}

// TestBuildKnownAnswer: the builder writes exactly the bytes the Python
// derivation wrote (AWS section order, header fields, metadata JSON, CRC).
func TestBuildKnownAnswer(t *testing.T) {
	var buf bytes.Buffer
	img, err := Build(&buf, miniSpec())
	if err != nil {
		t.Fatal(err)
	}
	if want := readTestdata(t, "mini-v4.eif"); !bytes.Equal(buf.Bytes(), want) {
		t.Fatalf("Build wrote %x\nwant %x", buf.Bytes(), want)
	}
	if img.Header.CRC32 != miniCRC || img.Measurements.PCR0.String() != miniPCR0 || img.Measurements.PCR1.String() != miniPCR1 || img.Measurements.PCR2.String() != miniPCR2 {
		t.Fatalf("Build returned crc %08x and %+v", img.Header.CRC32, img.Measurements)
	}
}

// TestBuildReproducible: the same Spec gives byte-identical images, signed
// or not (the software key signs deterministically, RFC 6979), and Build
// reports what Read then finds.
func TestBuildReproducible(t *testing.T) {
	for _, signed := range []bool{false, true} {
		build := func() ([]byte, *Image) {
			spec := miniSpec()
			if signed {
				spec.Signer = testSigner(t, "p384")
			}
			var buf bytes.Buffer
			img, err := Build(&buf, spec)
			if err != nil {
				t.Fatal(err)
			}
			return buf.Bytes(), img
		}
		a, built := build()
		b, _ := build()
		if !bytes.Equal(a, b) {
			t.Fatalf("signed=%v: two builds of one spec differ", signed)
		}
		read, err := Read(bytes.NewReader(a))
		if err != nil {
			t.Fatal(err)
		}
		if read.Measurements.PCR0 != built.Measurements.PCR0 || read.Measurements.PCR1 != built.Measurements.PCR1 ||
			read.Measurements.PCR2 != built.Measurements.PCR2 || (read.Measurements.PCR8 == nil) != !signed ||
			(signed && *read.Measurements.PCR8 != *built.Measurements.PCR8) || read.Header != built.Header {
			t.Fatalf("signed=%v: Build reported %+v, Read found %+v", signed, built, read)
		}
		if signed {
			if err := read.VerifySignature(testNow); err != nil {
				t.Fatal(err)
			}
			if last := read.Sections[len(read.Sections)-1]; last.Type != SectionSignature {
				t.Fatalf("last section is %v, want the signature (AWS order)", last.Type)
			}
		}
	}
}

// TestBuildOrderAndHeader checks AWS's layout field by field on a build
// with a different architecture and metadata.
func TestBuildOrderAndHeader(t *testing.T) {
	spec := miniSpec()
	spec.Arch = ArchAarch64
	spec.Metadata.CustomMetadata = []byte(`{"b": 1, "a": "<x>"}`)
	var buf bytes.Buffer
	img, err := Build(&buf, spec)
	if err != nil {
		t.Fatal(err)
	}
	want := []SectionType{SectionKernel, SectionCmdline, SectionMetadata, SectionRamdisk, SectionRamdisk}
	for i, s := range img.Sections {
		if s.Type != want[i] {
			t.Fatalf("section %d is %v, want %v", i, s.Type, want[i])
		}
	}
	h := img.Header
	if h.Version != 4 || h.Flags != 1 || h.DefaultMem != 1<<30 || h.DefaultCPUs != 2 || h.NumSections != 5 {
		t.Fatalf("header %+v", h)
	}
	read, err := Read(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if read.Arch() != ArchAarch64 {
		t.Fatalf("arch %v", read.Arch())
	}
	// Custom metadata is re-encoded compactly with sorted keys and no HTML
	// escaping, as serde_json prints a Value.
	if !bytes.Contains(buf.Bytes(), []byte(`"CustomMetadata":{"a":"<x>","b":1}}`)) {
		t.Fatalf("metadata JSON not canonical: %s", buf.Bytes()[591+12:843])
	}
}

// TestWriteRoundTrip: writing the sections Read found, in the order it
// found them, gives back the identical file, for every version and order.
func TestWriteRoundTrip(t *testing.T) {
	sig := hsec{4, 0, signedSection(t)}
	k, c, md, r := miniSections()[0], miniSections()[1], miniSections()[2], miniSections()[3]
	for _, tc := range []struct {
		version uint16
		secs    []hsec
	}{
		{2, []hsec{k, c, r}},
		{3, []hsec{c, k, r, sig}},
		{4, []hsec{k, c, r, sig, md}},
	} {
		file := handImage(tc.version, 1, tc.secs, nil)
		img, err := Read(bytes.NewReader(file))
		if err != nil {
			t.Fatal(err)
		}
		var sections []SectionData
		for _, s := range img.Sections {
			sections = append(sections, SectionData{s.Type, io.NewSectionReader(bytes.NewReader(file), s.DataOffset(), s.Size)})
		}
		var buf bytes.Buffer
		if _, err := Write(&buf, img.Header, sections); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), file) {
			t.Fatalf("version %d: round trip changed the bytes", tc.version)
		}
	}
}

func TestWriteRejects(t *testing.T) {
	k := SectionData{SectionKernel, strings.NewReader("K")}
	c := SectionData{SectionCmdline, strings.NewReader("")}
	r := SectionData{SectionRamdisk, strings.NewReader("R")}
	md := SectionData{SectionMetadata, strings.NewReader(miniMetadata)}
	v4 := Header{Version: 4}
	cases := []struct {
		name     string
		h        Header
		sections []SectionData
		want     string
	}{
		{"no metadata in v4", v4, []SectionData{k, c, r}, "no metadata section, which version 4 requires"},
		{"ramdisk first", v4, []SectionData{r, k, c, md}, "section 0 is a ramdisk before the kernel"},
		{"no ramdisk", v4, []SectionData{k, c, md}, "no ramdisk section, want at least one"},
		{"unknown type", v4, []SectionData{k, c, md, r, {9, strings.NewReader("")}}, "section 4 has unknown type 9"},
		{"version 7", Header{Version: 7}, []SectionData{k, c, md, r}, "unsupported version 7"},
		{"bad flags", Header{Version: 4, Flags: 4}, []SectionData{k, c, md, r}, "unknown header flags 0x0004"},
		{"nil content", v4, []SectionData{k, {SectionCmdline, nil}, md, r}, "section 1 (cmdline) has no content"},
		{"33 sections", v4, append([]SectionData{k, c, md}, make([]SectionData, 30)...), "33 sections, want at most 32"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			_, err := Write(&buf, tc.h, tc.sections)
			wantErr(t, err, tc.want)
			if buf.Len() != 0 {
				t.Fatal("Write wrote bytes before failing")
			}
		})
	}
	spec := miniSpec()
	spec.Ramdisks = nil
	_, err := Build(io.Discard, spec)
	wantErr(t, err, "no ramdisk")
	spec = miniSpec()
	spec.Metadata.DockerInfo = []byte("{")
	_, err = Build(io.Discard, spec)
	wantErr(t, err, "metadata DockerInfo is not valid JSON")
}

// changingContent returns different bytes on every read.
type changingContent struct{ n *int }

func (c changingContent) Size() int64 { return 4 }
func (c changingContent) ReadAt(p []byte, off int64) (int, error) {
	*c.n++
	for i := range p {
		p[i] = byte(*c.n)
	}
	if off+int64(len(p)) >= 4 {
		return len(p), io.EOF
	}
	return len(p), nil
}

func TestWriteDetectsChangingContent(t *testing.T) {
	n := 0
	_, err := Write(io.Discard, Header{Version: 3}, []SectionData{
		{SectionKernel, changingContent{&n}},
		{SectionCmdline, strings.NewReader("")},
		{SectionRamdisk, strings.NewReader("")},
	})
	wantErr(t, err, "section content changed while the image was written")
}

// TestSignExistingImage signs an unsigned image, re-signs the result with
// another key (replacing, not adding, the signature), and refuses v2.
func TestSignExistingImage(t *testing.T) {
	mini := readTestdata(t, "mini-v4.eif")
	var signed bytes.Buffer
	img, err := Sign(&signed, bytes.NewReader(mini), testSigner(t, "p384"))
	if err != nil {
		t.Fatal(err)
	}
	if img.Measurements.PCR0.String() != miniPCR0 || img.Measurements.PCR8 == nil {
		t.Fatalf("signed measurements %+v", img.Measurements)
	}
	// The unsigned bytes are a prefix, apart from the header: sign-eif
	// appends the signature section at the end.
	if !bytes.Equal(signed.Bytes()[548:883], mini[548:]) {
		t.Fatal("signing changed the existing sections")
	}
	var resigned bytes.Buffer
	img2, err := Sign(&resigned, bytes.NewReader(signed.Bytes()), testSigner(t, "p256"))
	if err != nil {
		t.Fatal(err)
	}
	read, err := Read(bytes.NewReader(resigned.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if read.Header.NumSections != 6 || *read.Measurements.PCR8 != *img2.Measurements.PCR8 || *img2.Measurements.PCR8 == *img.Measurements.PCR8 {
		t.Fatalf("re-signed: %d sections, PCR8 %v", read.Header.NumSections, read.Measurements.PCR8)
	}
	if err := read.VerifySignature(testNow); err != nil {
		t.Fatal(err)
	}
	v2 := handImage(2, 0, []hsec{{1, 0, []byte("K")}, {2, 0, nil}, {3, 0, nil}}, nil)
	_, err = Sign(io.Discard, bytes.NewReader(v2), testSigner(t, "p384"))
	wantErr(t, err, "cannot sign a version 2 image")
}
