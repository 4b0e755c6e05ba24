package eif

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"io"
	"testing"
)

// fuzzSeeds are valid images of every version and shape, and broken ones.
func fuzzSeeds(f *testing.F) [][]byte {
	mini := readTestdata(f, "mini-v4.eif")
	sig := hsec{4, 0, signedSection(f)}
	k, c, md, r0, r1 := miniSections()[0], miniSections()[1], miniSections()[2], miniSections()[3], miniSections()[4]
	seeds := [][]byte{
		mini,
		handImage(2, 0, []hsec{k, c, r0}, nil),
		handImage(3, 1, []hsec{k, c, r0, r1, sig}, nil),
		handImage(4, 0, []hsec{k, c, r0, r1, sig, md}, nil),
		handImage(4, 0, []hsec{c, k, md, r0}, nil),
		mini[:600],
		mini[:548],
		append(bytes.Clone(mini), 0),
		append([]byte("EIF!"), mini[4:]...),
		nil,
	}
	var buf bytes.Buffer
	spec := miniSpec()
	spec.Signer = testSigner(f, "p256")
	if _, err := Build(&buf, spec); err != nil {
		f.Fatal(err)
	}
	return append(seeds, buf.Bytes())
}

// FuzzRead: no input makes Read panic or disagree between a sized and a
// pure stream source; every accepted image is self-consistent, rewrites
// to the same bytes, and measures the same through the writer's path.
// With fixCRC the CRC field is recomputed first, so mutations reach the
// checks behind the CRC.
func FuzzRead(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, data []byte, fixCRC bool) {
		if fixCRC && len(data) >= HeaderSize {
			data = bytes.Clone(data)
			crc := crc32.ChecksumIEEE(append(append([]byte{}, data[:crcOffset]...), data[HeaderSize:]...))
			binary.BigEndian.PutUint32(data[crcOffset:], crc)
		}
		img, err := Read(bytes.NewReader(data))
		img2, err2 := Read(streamOnly{bytes.NewReader(data)})
		if (err == nil) != (err2 == nil) {
			t.Fatalf("sized and streamed reads disagree: %v vs %v", err, err2)
		}
		if err != nil {
			if len(err.Error()) < 6 || err.Error()[:5] != "eif: " {
				t.Fatalf("error without the eif prefix: %v", err)
			}
			return
		}
		if img.Measurements.PCR0 != img2.Measurements.PCR0 || img.Measurements.PCR1 != img2.Measurements.PCR1 || img.Measurements.PCR2 != img2.Measurements.PCR2 {
			t.Fatal("sized and streamed reads measure differently")
		}
		if img.Header.ImageSize() != int64(len(data)) {
			t.Fatalf("accepted %d bytes, header describes %d", len(data), img.Header.ImageSize())
		}
		var sections []SectionData
		for _, s := range img.Sections {
			sections = append(sections, SectionData{s.Type, io.NewSectionReader(bytes.NewReader(data), s.DataOffset(), s.Size)})
		}
		var out bytes.Buffer
		if _, err := Write(&out, img.Header, sections); err != nil {
			t.Fatalf("Write refuses what Read accepted: %v", err)
		}
		if !bytes.Equal(out.Bytes(), data) {
			t.Fatal("rewriting an accepted image changed its bytes")
		}
		m, err := measureSections(sections)
		if err != nil || m.PCR0 != img.Measurements.PCR0 || m.PCR1 != img.Measurements.PCR1 || m.PCR2 != img.Measurements.PCR2 {
			t.Fatalf("writer-path measurements differ from the reader's (%v)", err)
		}
		if (img.Signature != nil) != (img.Measurements.PCR8 != nil) {
			t.Fatal("PCR8 and signature disagree")
		}
		if _, err := MarshalIndent(Describe(img, testNow)); err != nil {
			t.Fatalf("describe: %v", err)
		}
	})
}

// FuzzParseSignatureSection: the signature decoder never panics and
// accepts only bytes that re-encode to themselves.
func FuzzParseSignatureSection(f *testing.F) {
	good := signedSection(f)
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte{0x81, 0xa2})
	f.Add([]byte{0x80})
	f.Add([]byte{0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > MaxSignatureSize {
			return // the reader refuses larger sections before decoding
		}
		sig, err := parseSignatureSection(data)
		if err != nil {
			return
		}
		if !bytes.Equal(encodeSignatureSection(sig.CertificatePEM, sig.COSESign1), data) {
			t.Fatal("accepted a non-canonical signature section")
		}
		verifySignature(sig, PCR{}, testNow)
	})
}

// FuzzVerifySignature: arbitrary COSE_Sign1 bytes under a real certificate
// never panic, and never verify unless they are the genuine signature.
func FuzzVerifySignature(f *testing.F) {
	good, err := parseSignatureSection(signedSection(f))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good.COSESign1)
	f.Add(append([]byte{0xd2}, good.COSESign1...))
	f.Add(good.COSESign1[:40])
	f.Add([]byte{0x84, 0x40, 0xa0, 0x40, 0x40})
	var pcr0 PCR
	copy(pcr0[:], mustHex(miniPCR0))
	f.Fuzz(func(t *testing.T, cose []byte) {
		sig := &Signature{CertificatePEM: good.CertificatePEM, Certificate: good.Certificate, COSESign1: cose}
		err := verifySignature(sig, pcr0, testNow)
		if err == nil {
			raw := cose
			if len(raw) > 0 && raw[0] == 0xd2 {
				raw = raw[1:]
			}
			// Only the genuine structure verifies (its signature bytes
			// are fixed: RFC 6979).
			if !bytes.Equal(raw, good.COSESign1) {
				t.Fatalf("verified a different COSE_Sign1: %x", cose)
			}
		}
	})
}

// FuzzParseMetadata: the metadata decoder never panics, and what it
// accepts survives an encode-decode round trip.
func FuzzParseMetadata(f *testing.F) {
	f.Add([]byte(miniMetadata))
	f.Add([]byte(`{"ImageName":"a","ImageVersion":"b","BuildMetadata":{"BuildTime":"","BuildTool":"","BuildToolVersion":"","OperatingSystem":"","KernelVersion":""},"DockerInfo":{"x":[1,2.5e3,"<"]},"CustomMetadata":{"k":"v"}}`))
	f.Add([]byte(`{"ImageName":null}`))
	f.Add([]byte(`[`))
	f.Fuzz(func(t *testing.T, data []byte) {
		md, err := ParseMetadata(data)
		if err != nil {
			return
		}
		out, err := md.MarshalJSON()
		if err != nil {
			return // DockerInfo or CustomMetadata that Go's decoder took but will not re-encode
		}
		back, err := ParseMetadata(out)
		if err != nil {
			t.Fatalf("re-encoded metadata does not parse: %v\n%s", err, out)
		}
		if back.ImageName != md.ImageName || back.BuildTime != md.BuildTime || back.KernelVersion != md.KernelVersion {
			t.Fatalf("round trip changed fields: %+v vs %+v", back, md)
		}
	})
}
