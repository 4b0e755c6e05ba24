package eif

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"strings"
)

// Content is section data the writer may read more than once (measure,
// checksum, write). bytes.Reader, strings.Reader and io.SectionReader are
// Contents; FileContent wraps a file.
type Content interface {
	io.ReaderAt
	Size() int64
}

// FileContent returns the whole file f as a Content.
func FileContent(f *os.File) (Content, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("eif: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("eif: %s is not a regular file", f.Name())
	}
	return io.NewSectionReader(f, 0, fi.Size()), nil
}

// SectionData is one section to write.
type SectionData struct {
	Type    SectionType
	Content Content
}

// Write writes an image with the given sections in the given order. Of h
// it uses Version, Flags, DefaultMem and DefaultCPUs; it computes the
// section count, offsets, sizes (in both the EIF header and the section
// headers) and the CRC, and returns the header it wrote. The sections must
// form an image Read accepts. Each Content is read twice, once for the
// CRC and once to write; if it changes in between, Write fails.
func Write(w io.Writer, h Header, sections []SectionData) (Header, error) {
	hdr := Header{Version: h.Version, Flags: h.Flags, DefaultMem: h.DefaultMem, DefaultCPUs: h.DefaultCPUs}
	if len(sections) > MaxSections {
		return Header{}, fmt.Errorf("eif: %d sections, want at most %d", len(sections), MaxSections)
	}
	hdr.NumSections = uint16(len(sections))
	rules := sectionRules{version: h.Version}
	off := uint64(HeaderSize)
	for i, s := range sections {
		if s.Content == nil {
			return Header{}, fmt.Errorf("eif: section %d (%v) has no content", i, s.Type)
		}
		size := s.Content.Size()
		if size < 0 {
			return Header{}, fmt.Errorf("eif: section %d (%v) has negative size %d", i, s.Type, size)
		}
		if err := rules.add(i, s.Type, uint64(size)); err != nil {
			return Header{}, err
		}
		hdr.SectionOffsets[i] = off
		hdr.SectionSizes[i] = uint64(size)
		off += SectionHeaderSize + uint64(size)
	}
	if err := rules.done(); err != nil {
		return Header{}, err
	}
	if err := hdr.check(); err != nil {
		return Header{}, err
	}

	crc, err := writeSections(io.Discard, &hdr, sections)
	if err != nil {
		return Header{}, err
	}
	hdr.CRC32 = crc
	got, err := writeSections(w, &hdr, sections)
	if err != nil {
		return Header{}, err
	}
	if got != crc {
		return Header{}, errors.New("eif: section content changed while the image was written (crc32 differs between the two passes)")
	}
	return hdr, nil
}

// writeSections writes the header and the sections to w and returns the
// CRC-32 over header[0:544] and every section header and data.
func writeSections(w io.Writer, hdr *Header, sections []SectionData) (uint32, error) {
	hb, _ := hdr.MarshalBinary()
	if _, err := w.Write(hb); err != nil {
		return 0, fmt.Errorf("eif: write header: %w", err)
	}
	crc := crc32.Update(0, crc32.IEEETable, hb[:crcOffset])
	cw := &crcWriter{w: w, crc: crc}
	for i, s := range sections {
		size := int64(hdr.SectionSizes[i])
		sh := SectionHeader{Type: s.Type, Size: uint64(size)}.appendBinary(nil)
		if _, err := cw.Write(sh); err != nil {
			return 0, fmt.Errorf("eif: write section %d header: %w", i, err)
		}
		n, err := io.Copy(cw, io.NewSectionReader(s.Content, 0, size))
		if err != nil {
			return 0, fmt.Errorf("eif: write section %d (%v): %w", i, s.Type, err)
		}
		if n != size {
			return 0, fmt.Errorf("eif: section %d (%v): read %d of its %d bytes", i, s.Type, n, size)
		}
	}
	return cw.crc, nil
}

type crcWriter struct {
	w   io.Writer
	crc uint32
}

func (c *crcWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.crc = crc32.Update(c.crc, crc32.IEEETable, p[:n])
	return n, err
}

// Spec is what Build makes an image from.
type Spec struct {
	Arch     Arch
	Kernel   Content
	Cmdline  string // written verbatim: nitro-cli trims the blob's trailing newline first
	Ramdisks []Content
	Metadata Metadata
	Signer   *Signer // nil for an unsigned image
}

// Build writes a version 4 image in the section order nitro-cli has used
// since v1.2.0 (kernel, cmdline, metadata, ramdisks, signature; notes §1.4)
// and returns it as Read would. Its bytes depend only on the Spec, so two
// builds of the same Spec are byte-identical (with a software key, even
// when signed; see NewSigner).
func Build(w io.Writer, spec *Spec) (*Image, error) {
	if spec.Kernel == nil {
		return nil, errors.New("eif: no kernel")
	}
	if len(spec.Ramdisks) == 0 {
		return nil, errors.New("eif: no ramdisk, want at least one")
	}
	if spec.Arch != ArchX86_64 && spec.Arch != ArchAarch64 {
		return nil, fmt.Errorf("eif: unknown architecture %d", spec.Arch)
	}
	md := spec.Metadata
	mdJSON, err := md.MarshalJSON()
	if err != nil {
		return nil, err
	}
	cmdline := strings.NewReader(spec.Cmdline)
	sections := []SectionData{
		{SectionKernel, spec.Kernel},
		{SectionCmdline, cmdline},
		{SectionMetadata, bytes.NewReader(mdJSON)},
	}
	for _, r := range spec.Ramdisks {
		sections = append(sections, SectionData{SectionRamdisk, r})
	}
	m, err := measureSections(sections)
	if err != nil {
		return nil, err
	}
	var sig *Signature
	if spec.Signer != nil {
		section, err := spec.Signer.signatureSection(m.PCR0)
		if err != nil {
			return nil, err
		}
		if sig, err = parseSignatureSection(section); err != nil {
			return nil, err
		}
		pcr8, err := CertificatePCR(sig.CertificatePEM)
		if err != nil {
			return nil, err
		}
		m.PCR8 = &pcr8
		sections = append(sections, SectionData{SectionSignature, bytes.NewReader(section)})
	}
	hdr, err := Write(w, Header{Version: CurrentVersion, Flags: uint16(spec.Arch), DefaultMem: DefaultMem, DefaultCPUs: DefaultCPUs}, sections)
	if err != nil {
		return nil, err
	}
	parsed, err := ParseMetadata(mdJSON)
	if err != nil {
		return nil, err
	}
	return &Image{Header: hdr, Sections: sectionsOf(&hdr, sections), Cmdline: spec.Cmdline, Metadata: parsed, Signature: sig, Measurements: m}, nil
}

func sectionsOf(h *Header, data []SectionData) []Section {
	out := make([]Section, len(data))
	for i, d := range data {
		out[i] = Section{Index: i, Type: d.Type, Offset: int64(h.SectionOffsets[i]), Size: int64(h.SectionSizes[i])}
	}
	return out
}

// measureSections computes PCR0–2 over sections in order.
func measureSections(sections []SectionData) (Measurements, error) {
	m := newMeasurer()
	for i, s := range sections {
		m.begin(s.Type)
		size := s.Content.Size()
		n, err := io.Copy(m, io.NewSectionReader(s.Content, 0, size))
		if err != nil {
			return Measurements{}, fmt.Errorf("eif: measure section %d (%v): %w", i, s.Type, err)
		}
		if n != size {
			return Measurements{}, fmt.Errorf("eif: measure section %d (%v): read %d of its %d bytes", i, s.Type, n, size)
		}
	}
	return m.result(), nil
}

// Sign writes a signed copy of the image in src: every section in its
// original order, any existing signature dropped and the new one appended
// last, as nitro-cli sign-eif appends it. The source is fully read and
// checked first; a version 2 image cannot hold a signature.
func Sign(w io.Writer, src Content, signer *Signer) (*Image, error) {
	img, err := Read(io.NewSectionReader(src, 0, src.Size()))
	if err != nil {
		return nil, err
	}
	if img.Header.Version < 3 {
		return nil, fmt.Errorf("eif: cannot sign a version %d image: signatures need version 3 or later (rebuild it)", img.Header.Version)
	}
	var sections []SectionData
	for _, s := range img.Sections {
		if s.Type == SectionSignature {
			continue
		}
		sections = append(sections, SectionData{s.Type, io.NewSectionReader(src, s.DataOffset(), s.Size)})
	}
	section, err := signer.signatureSection(img.Measurements.PCR0)
	if err != nil {
		return nil, err
	}
	sig, err := parseSignatureSection(section)
	if err != nil {
		return nil, err
	}
	pcr8, err := CertificatePCR(sig.CertificatePEM)
	if err != nil {
		return nil, err
	}
	sections = append(sections, SectionData{SectionSignature, bytes.NewReader(section)})
	hdr, err := Write(w, img.Header, sections)
	if err != nil {
		return nil, err
	}
	out := *img
	out.Header = hdr
	out.Sections = sectionsOf(&hdr, sections)
	out.Signature = sig
	out.Measurements.PCR8 = &pcr8
	return &out, nil
}
