package eif

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"
)

// The known-answer image: testdata/mini-v4.eif was written by
// testdata/mini-v4.py (Python struct/zlib/hashlib, from the notes alone),
// and its values agree with the ones the notes derived separately (§5,
// "Synthetic mini-EIF": 883 bytes, CRC 3a83bf6d, PCR0 61fd2b06…defb, …).
const (
	miniCRC  = 0x3a83bf6d
	miniPCR0 = "61fd2b06210a933b3db5e15c5752e394894bb097f7f1d96ad1f55a7525d0d7aa2c63b235f44420b12d8376cc392bdefb"
	miniPCR1 = "a6d35ce3e7ba80048a2b23da9b15063726a7cea90e16e9d6934e92a15aa1896fd54de706310e2fbc585d9c37db9c1805"
	miniPCR2 = "5f699ae4300525c628f5c96fc521729dd6ca1a2c07cb07b69e7ae9e3fa935cfd7cc83b3e26d89201a486d9db2405c562"
	// emptyPCR is Extend(SHA-384("")): PCR2 of every one-ramdisk image,
	// observed in real attestations (notes §2.2, tkhq/qos nitro.pcrs).
	emptyPCR = "21b9efbc184807662e966d34f390821309eeac6802309798826296bf3e8bec7c10edb30948c90ba67310f7b964fc500a"
)

func TestReadKnownAnswerMini(t *testing.T) {
	file := readTestdata(t, "mini-v4.eif")
	// The Go hand-builder and the Python script agree on every byte.
	if hand := handImage(4, 0, miniSections(), nil); !bytes.Equal(hand, file) {
		t.Fatal("handImage and testdata/mini-v4.eif differ: the two independent derivations disagree")
	}
	if got, want := hex.EncodeToString(file[:0x30]), "2e6569660004000000000000400000000000000000000002000000050000000000000224000000000000023600000000"; got != want {
		t.Fatalf("header[0:0x30] = %s, want %s (notes §5)", got, want)
	}
	for name, r := range map[string]io.Reader{"sized": bytes.NewReader(file), "stream": streamOnly{bytes.NewReader(file)}} {
		t.Run(name, func(t *testing.T) {
			img, err := Read(r)
			if err != nil {
				t.Fatal(err)
			}
			if img.Header.CRC32 != miniCRC {
				t.Errorf("crc %08x, want %08x", img.Header.CRC32, miniCRC)
			}
			var offs []int64
			for _, s := range img.Sections {
				offs = append(offs, s.Offset)
			}
			if got := offs; len(got) != 5 || got[0] != 548 || got[1] != 566 || got[2] != 591 || got[3] != 843 || got[4] != 863 {
				t.Errorf("section offsets %v, want [548 566 591 843 863]", got)
			}
			m := img.Measurements
			for _, c := range []struct{ name, got, want string }{
				{"PCR0", m.PCR0.String(), miniPCR0},
				{"PCR1", m.PCR1.String(), miniPCR1},
				{"PCR2", m.PCR2.String(), miniPCR2},
				// And the formula computed here with crypto/sha512 directly.
				{"PCR0 direct", m.PCR0.String(), pcrOf([]byte("KERNEL"), []byte("console=ttyS0"), []byte("RAMDISK0"), []byte("RAMDISK1"))},
			} {
				if c.got != c.want {
					t.Errorf("%s = %s, want %s", c.name, c.got, c.want)
				}
			}
			if m.PCR8 != nil {
				t.Error("unsigned image has a PCR8")
			}
			if img.Cmdline != "console=ttyS0" || img.Metadata == nil || img.Metadata.BuildTool != "eif_build" || img.Metadata.ImageName != "test" {
				t.Errorf("cmdline %q, metadata %+v", img.Cmdline, img.Metadata)
			}
			if img.Arch() != ArchX86_64 || img.Header.Version != 4 {
				t.Errorf("arch %v version %d", img.Arch(), img.Header.Version)
			}
		})
	}
}

func TestEmptyContentPCR(t *testing.T) {
	if got := MeasureBytes(nil).String(); got != emptyPCR {
		t.Fatalf("Extend(SHA-384(\"\")) = %s, want %s", got, emptyPCR)
	}
	if got := pcrOf(); got != emptyPCR {
		t.Fatalf("direct derivation %s, want %s", got, emptyPCR)
	}
	// A one-ramdisk image measures PCR2 as empty content, and PCR0 = PCR1.
	img, err := Read(bytes.NewReader(handImage(4, 0, miniSections()[:4], nil)))
	if err != nil {
		t.Fatal(err)
	}
	if img.Measurements.PCR2.String() != emptyPCR {
		t.Errorf("PCR2 of a one-ramdisk image = %s, want %s", img.Measurements.PCR2, emptyPCR)
	}
	if img.Measurements.PCR0 != img.Measurements.PCR1 {
		t.Error("PCR0 != PCR1 for a one-ramdisk image")
	}
}

// TestReadVersionsAndOrders reads every version and every section order
// AWS tools have written (notes §1.4, §1.7) and checks that the PCRs do not
// depend on where the unmeasured sections sit.
func TestReadVersionsAndOrders(t *testing.T) {
	k, c, md := hsec{1, 0, []byte("KERNEL")}, hsec{2, 0, []byte("console=ttyS0")}, hsec{5, 0, []byte(miniMetadata)}
	r0, r1 := hsec{3, 0, []byte("RAMDISK0")}, hsec{3, 0, []byte("RAMDISK1")}
	signed := signedSection(t)
	sig := hsec{4, 0, signed}
	cases := []struct {
		name    string
		version uint16
		secs    []hsec
	}{
		{"v2", 2, []hsec{k, c, r0, r1}},
		{"v3 unsigned", 3, []hsec{k, c, r0, r1}},
		{"v3 signed", 3, []hsec{k, c, r0, r1, sig}},
		{"v4 nitro-cli 1.2+ order", 4, []hsec{k, c, md, r0, r1}},
		{"v4 nitro-cli 1.1 order (metadata last)", 4, []hsec{k, c, r0, r1, md}},
		{"v4 README order (signature, metadata)", 4, []hsec{k, c, r0, r1, sig, md}},
		{"v4 cmdline before kernel", 4, []hsec{c, k, md, r0, r1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			img, err := Read(bytes.NewReader(handImage(tc.version, 0, tc.secs, nil)))
			if err != nil {
				t.Fatal(err)
			}
			var first []byte
			for _, s := range tc.secs {
				if s.typ == 1 || s.typ == 2 {
					first = append(first, s.data...)
				}
			}
			if got, want := img.Measurements.PCR0.String(), pcrOf(first, []byte("RAMDISK0RAMDISK1")); got != want {
				t.Errorf("PCR0 %s, want %s", got, want)
			}
			if got, want := img.Measurements.PCR1.String(), pcrOf(first, []byte("RAMDISK0")); got != want {
				t.Errorf("PCR1 %s, want %s", got, want)
			}
			if got, want := img.Measurements.PCR2.String(), pcrOf([]byte("RAMDISK1")); got != want {
				t.Errorf("PCR2 %s, want %s", got, want)
			}
			if (img.Signature != nil) != (img.Measurements.PCR8 != nil) {
				t.Error("PCR8 present without a signature or the reverse")
			}
			if (img.Metadata != nil) != (tc.version == 4) {
				t.Errorf("metadata %v for version %d", img.Metadata, tc.version)
			}
		})
	}
}

// signedSection returns a signature section made by the test P-384 signer
// over the PCR0 of the KERNEL/console=ttyS0/RAMDISK0/RAMDISK1 sections.
func signedSection(t testing.TB) []byte {
	var pcr0 PCR
	hex.Decode(pcr0[:], []byte(miniPCR0))
	b, err := testSigner(t, "p384").signatureSection(pcr0)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestReadRejects(t *testing.T) {
	mini := readTestdata(t, "mini-v4.eif")
	be := binary.BigEndian
	put16 := func(off int, v uint16) func([]byte) { return func(h []byte) { be.PutUint16(h[off:], v) } }
	put64 := func(off int, v uint64) func([]byte) { return func(h []byte) { be.PutUint64(h[off:], v) } }
	with := func(mutate func([]byte)) []byte { return handImage(4, 0, miniSections(), mutate) }
	secs := func(change func(s []hsec) []hsec) []byte { return handImage(4, 0, change(miniSections()), nil) }
	// patch changes bytes after the header and fixes the CRC, so the CRC
	// is not what catches the problem.
	patch := func(off int, b ...byte) []byte {
		img := bytes.Clone(mini)
		copy(img[off:], b)
		return refixCRC(img)
	}
	cases := []struct {
		name   string
		img    []byte
		sized  string // error with the size known up front
		stream string // error when only streamed ("" = same)
	}{
		{"empty file", nil, "truncated: file ends after 0 bytes, inside the 548-byte header", ""},
		{"bad magic", append([]byte("EIF!"), mini[4:]...), `bad magic: want 2e656966 (".eif"), found 45494621`, ""},
		{"bad magic short file", []byte("MZ\x90\x00junk"), "bad magic", ""},
		{"bad crc", func() []byte { b := bytes.Clone(mini); b[880] ^= 1; return b }(), "crc32 mismatch: header says 3a83bf6d, computed", ""},
		{"crc field flipped", func() []byte { b := bytes.Clone(mini); b[547] ^= 0xff; return b }(), "crc32 mismatch: header says 3a83bf92, computed 3a83bf6d", ""},
		{"section size disagrees with header", patch(863+4, 0, 0, 0, 0, 0, 0, 0, 7), "section 4 (ramdisk) size mismatch: section header says 7 bytes, EIF header says 8", ""},
		{"header size disagrees with section", with(put64(284+8*4, 9)), "truncated: the header's 5 sections end at byte 884, the file has 883", "section 4 (ramdisk) size mismatch: section header says 8 bytes, EIF header says 9"},
		{"unknown section type", patch(843, 0, 9), "section 3 has unknown type 9, want 1 to 5", ""},
		{"invalid section type 0", patch(843, 0, 0), "section 3 has the invalid type 0", ""},
		{"section flags", patch(843+2, 0, 1), "section 3 (ramdisk) has flags 0x0001, want 0", ""},
		{"truncated in section data", mini[:878], "truncated: the header's 5 sections end at byte 883, the file has 878", "truncated: section 4 (ramdisk) data at byte 875: want 8 bytes, file ends after 3 of them (at byte 878)"},
		{"truncated in section header", mini[:600], "the file has 600", "truncated: section 2 header at byte 591: want 12 bytes, file ends after 9 of them (at byte 600)"},
		{"truncated after header", mini[:548], "the file has 548", "truncated: section 0 header at byte 548: want 12 bytes, file ends after 0"},
		{"truncated in header", mini[:300], "truncated: file ends after 300 bytes, inside the 548-byte header", ""},
		{"trailing data", append(bytes.Clone(mini), 0), "1 trailing bytes: the header's last section ends at byte 883, the file has 884 bytes", "trailing data after the last section, which ends at byte 883"},
		{"header size 2^63 in the last slot", with(put64(284+8*4, 1<<63)), "section 4 size 9223372036854775808 at offset 863 ends beyond the 1099511627776-byte image limit", ""},
		{"header size 2^63 in a middle slot", with(put64(284+8*1, 1<<63)), "section 1 size 9223372036854775808 at offset 566 ends beyond the 1099511627776-byte image limit", ""},
		{"header size 2^64-1", with(put64(284, 1<<64-1)), "section 0 size 18446744073709551615", ""},
		{"offset 2^63", with(put64(28+8*2, 1<<63)), "section 2 offset is 9223372036854775808, want 591 (section 1 at 566 + 12-byte section header + 13 data bytes)", ""},
		{"first offset wrong", with(put64(28, 0)), "section 0 offset is 0, want 548 (right after the header)", ""},
		{"unused slot set", with(put64(28+8*5, 883)), "header slot 5 is beyond the 5 sections but holds offset 883 and size 0", ""},
		{"version 1", with(put16(4, 1)), "unsupported version 1: want 2 to 4", ""},
		{"version 5", with(put16(4, 5)), "unsupported version 5: want 2 to 4", ""},
		{"unknown flags", with(put16(6, 2)), "unknown header flags 0x0002", ""},
		{"reserved set", with(put16(24, 1)), "reserved header field is 0x1, want 0", ""},
		{"zero sections", with(put16(26, 0)), "header declares 0 sections, want 3 to 32", ""},
		{"33 sections", with(put16(26, 33)), "header declares 33 sections, want 3 to 32", ""},
		{"num sections too small for the file", with(put16(26, 4)), "header slot 4 is beyond the 4 sections but holds offset 863 and size 8", ""},
		{"two kernels", secs(func(s []hsec) []hsec { s[1].typ = 1; return s }), "section 1 is a second kernel section", ""},
		{"ramdisk before kernel", secs(func(s []hsec) []hsec { s[0], s[3] = s[3], s[0]; return s }), "section 0 is a ramdisk before the kernel and cmdline sections", ""},
		{"no ramdisk", secs(func(s []hsec) []hsec { s[3].typ, s[4].typ = 5, 5; return s }), "section 3 is a second metadata section", ""},
		{"v4 without metadata", secs(func(s []hsec) []hsec { return append(s[:2], s[3:]...) }), "no metadata section, which version 4 requires", ""},
		{"metadata in v3", handImage(3, 0, miniSections(), nil), "section 2 is a metadata section, which needs version 4, found version 3", ""},
		{"signature in v2", handImage(2, 0, []hsec{{1, 0, []byte("K")}, {2, 0, nil}, {3, 0, nil}, {4, 0, []byte{0x80}}}, nil), "section 3 is a signature section, which needs version 3 or later, found version 2", ""},
		{"oversized metadata", secs(func(s []hsec) []hsec { s[2].data = make([]byte, MaxMetadataSize+1); return s }), "section 2 (metadata) is 1048577 bytes, want at most 1048576", ""},
		{"bad metadata json", secs(func(s []hsec) []hsec { s[2].data = []byte("{"); return s }), "metadata section is not the JSON object nitro-cli writes", ""},
		{"metadata missing field", secs(func(s []hsec) []hsec {
			s[2].data = []byte(strings.Replace(miniMetadata, `"BuildTool":"eif_build",`, "", 1))
			return s
		}), `metadata section: missing string field "BuildMetadata.BuildTool"`, ""},
		{"garbage signature", secs(func(s []hsec) []hsec { return append(s, hsec{4, 0, []byte{0xff}}) }), "signature section is not a CBOR array of PcrSignature maps", ""},
		{"two signatures in the section", secs(func(s []hsec) []hsec {
			one := signedSection(t)
			two := append([]byte{0x82}, one[1:]...)
			two = append(two, one[1:]...)
			return append(s, hsec{4, 0, two})
		}), "signature section holds 2 signatures, want exactly 1", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Read(bytes.NewReader(tc.img))
			wantErr(t, err, tc.sized)
			want := tc.stream
			if want == "" {
				want = tc.sized
			}
			_, err = Read(streamOnly{bytes.NewReader(tc.img)})
			wantErr(t, err, want)
		})
	}
}

// TestReaderStreamsSections reads section data through Next and Read, in
// small pieces, and gets every section's exact bytes back.
func TestReaderStreamsSections(t *testing.T) {
	secs := miniSections()
	rd, err := NewReader(streamOnly{bytes.NewReader(handImage(4, 0, secs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rd.Measurements(); err == nil {
		t.Fatal("measurements before the end of the image")
	}
	for i := 0; ; i++ {
		s, err := rd.Next()
		if err == io.EOF {
			if i != len(secs) {
				t.Fatalf("EOF after %d sections, want %d", i, len(secs))
			}
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if i == 1 {
			continue // skipped sections still count for the CRC and PCRs
		}
		got, err := io.ReadAll(io.LimitReader(rd, 1<<20))
		if err != nil {
			t.Fatal(err)
		}
		if uint16(s.Type) != secs[i].typ || !bytes.Equal(got, secs[i].data) {
			t.Fatalf("section %d: %v %q, want type %d %q", i, s.Type, got, secs[i].typ, secs[i].data)
		}
	}
	m, err := rd.Measurements()
	if err != nil || m.PCR0.String() != miniPCR0 {
		t.Fatalf("measurements %v, %v", m.PCR0, err)
	}
	if _, err := rd.Next(); err != io.EOF {
		t.Fatalf("Next after the end = %v, want io.EOF", err)
	}
}

// TestReaderErrorIsSticky: once a reader failed, it keeps failing.
func TestReaderErrorIsSticky(t *testing.T) {
	img := readTestdata(t, "mini-v4.eif")
	rd, err := NewReader(streamOnly{bytes.NewReader(img[:600])})
	if err != nil {
		t.Fatal(err)
	}
	var first error
	for range 10 {
		if _, err := rd.Next(); err != nil {
			first = err
			break
		}
	}
	if _, err := rd.Next(); !errors.Is(err, first) && err.Error() != first.Error() {
		t.Fatalf("second error %v, first %v", err, first)
	}
}
