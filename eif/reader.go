package eif

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
)

// Reader reads an image sequentially from an io.Reader, the way archive/tar
// does: Next advances to the next section and Read reads its data. While
// the bytes go by it checks the layout and the CRC and computes the
// measurements, so an image of any size is validated and measured in
// constant memory: a small copy buffer, the hash states, and the sections
// it must keep (the cmdline, the metadata and the signature), each checked
// against its Max… limit before any of it is read.
//
// Checks, each failing with an error that says what was expected and what
// was found: the header (see Header.UnmarshalBinary); that every section
// header sits at the offset the EIF header names, has flags 0, a known type
// allowed in this version, and the size the EIF header names; the section
// counts and order (sectionRules); that the file ends right after the last
// section; and the CRC-32 over the header and every section. Next returns
// io.EOF only after all of them have passed; until then no result is
// final. Errors are sticky.
type Reader struct {
	r         io.Reader
	hdr       Header
	size      int64 // total size if the source knows it, else -1
	pos       int64 // bytes consumed from r
	crc       uint32
	index     int // current section, -1 before the first
	cur       Section
	remaining int64 // unread data bytes of the current section
	rules     sectionRules
	m         *measurer
	kept      map[SectionType][]byte
	keep      *bytes.Buffer // collects the current section if it is kept
	sections  []Section
	meas      *Measurements
	sig       *Signature // parsed at the end, for PCR8
	err       error
}

// NewReader reads and checks the header; r must be at the start of the
// image. If r has a Size() int64 method
// (bytes.Reader, io.SectionReader) or is an *os.File, the header's image
// size is also checked against the real size up front, so a truncated file
// is reported before any section is read.
func NewReader(r io.Reader) (*Reader, error) {
	var buf [HeaderSize]byte
	n, err := io.ReadFull(r, buf[:])
	if err != nil {
		if n >= 4 && string(buf[:4]) != Magic {
			return nil, fmt.Errorf("eif: bad magic: want %x (%q), found %x", Magic, Magic, buf[:4])
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("eif: truncated: file ends after %d bytes, inside the %d-byte header", n, HeaderSize)
		}
		return nil, fmt.Errorf("eif: read header: %w", err)
	}
	rd := &Reader{r: r, size: sizeOf(r), pos: HeaderSize, index: -1, m: newMeasurer(), kept: map[SectionType][]byte{}}
	if err := rd.hdr.UnmarshalBinary(buf[:]); err != nil {
		return nil, err
	}
	rd.rules.version = rd.hdr.Version
	if want := rd.hdr.ImageSize(); rd.size >= 0 && rd.size != want {
		if rd.size < want {
			return nil, fmt.Errorf("eif: truncated: the header's %d sections end at byte %d, the file has %d bytes", rd.hdr.NumSections, want, rd.size)
		}
		return nil, fmt.Errorf("eif: %d trailing bytes: the header's last section ends at byte %d, the file has %d bytes", rd.size-want, want, rd.size)
	}
	rd.crc = crc32.Update(0, crc32.IEEETable, buf[:crcOffset])
	return rd, nil
}

func sizeOf(r io.Reader) int64 {
	switch s := r.(type) {
	case interface{ Size() int64 }:
		return s.Size()
	case *os.File:
		// Only a regular file at offset 0 has a size that means anything.
		fi, err := s.Stat()
		if err != nil || !fi.Mode().IsRegular() {
			return -1
		}
		if off, err := s.Seek(0, io.SeekCurrent); err != nil || off != HeaderSize {
			return -1
		}
		return fi.Size()
	case fs.File:
		fi, err := s.Stat()
		if err != nil || !fi.Mode().IsRegular() {
			return -1
		}
		return fi.Size()
	}
	return -1
}

// Header returns the checked EIF header.
func (r *Reader) Header() Header { return r.hdr }

// Next skips what is left of the current section and returns the next
// one. After the last section it checks the end of the file and the CRC and
// returns io.EOF.
func (r *Reader) Next() (*Section, error) {
	if r.err != nil {
		return nil, r.err
	}
	if r.remaining > 0 {
		if _, err := io.Copy(io.Discard, onlyReader{r}); err != nil {
			return nil, r.fail(err)
		}
	}
	r.endSection()
	if r.index+1 == int(r.hdr.NumSections) {
		return nil, r.fail(r.finish())
	}
	r.index++
	i := r.index
	off := int64(r.hdr.SectionOffsets[i])
	// Header.check made the offsets contiguous, so this holds by
	// construction; it is the sequential walk and the offset walk agreeing.
	if r.pos != off {
		return nil, r.fail(fmt.Errorf("eif: section %d: reader is at byte %d, header offset is %d", i, r.pos, off))
	}
	var sh [SectionHeaderSize]byte
	n, err := io.ReadFull(r.r, sh[:])
	r.pos += int64(n)
	if err != nil {
		return nil, r.fail(r.readErr(err, fmt.Sprintf("section %d header at byte %d", i, off), SectionHeaderSize, int64(n)))
	}
	r.crc = crc32.Update(r.crc, crc32.IEEETable, sh[:])
	s := parseSectionHeader(sh[:])
	if err := r.rules.add(i, s.Type, s.Size); err != nil {
		return nil, r.fail(err)
	}
	if s.Flags != 0 {
		return nil, r.fail(fmt.Errorf("eif: section %d (%v) has flags %#04x, want 0", i, s.Type, s.Flags))
	}
	if s.Size != r.hdr.SectionSizes[i] {
		return nil, r.fail(fmt.Errorf("eif: section %d (%v) size mismatch: section header says %d bytes, EIF header says %d", i, s.Type, s.Size, r.hdr.SectionSizes[i]))
	}
	r.cur = Section{Index: i, Type: s.Type, Offset: off, Size: int64(s.Size)}
	r.remaining = r.cur.Size
	r.sections = append(r.sections, r.cur)
	r.m.begin(s.Type)
	r.keep = nil
	switch s.Type {
	case SectionCmdline, SectionMetadata, SectionSignature:
		// Kept sections are bounded by sectionRules; the buffer grows with
		// the bytes that actually arrive, not with the declared size.
		r.keep = new(bytes.Buffer)
	}
	sec := r.cur
	return &sec, nil
}

// Read reads data of the current section; it returns io.EOF at the end of
// the section.
func (r *Reader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if r.index < 0 {
		return 0, r.fail(errors.New("eif: Read called before Next"))
	}
	if r.remaining == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.remaining {
		p = p[:r.remaining]
	}
	n, err := r.r.Read(p)
	r.pos += int64(n)
	r.remaining -= int64(n)
	r.crc = crc32.Update(r.crc, crc32.IEEETable, p[:n])
	r.m.Write(p[:n])
	if r.keep != nil {
		r.keep.Write(p[:n])
	}
	if err == io.EOF && r.remaining > 0 {
		err = io.ErrUnexpectedEOF
	}
	if err != nil && err != io.EOF {
		done := r.cur.Size - r.remaining
		return n, r.fail(r.readErr(err, fmt.Sprintf("section %d (%v) data at byte %d", r.cur.Index, r.cur.Type, r.cur.DataOffset()), r.cur.Size, done))
	}
	return n, nil
}

// onlyReader hides Reader's other methods from io.Copy.
type onlyReader struct{ r *Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

func (r *Reader) readErr(err error, what string, want, got int64) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("eif: truncated: %s: want %d bytes, file ends after %d of them (at byte %d)", what, want, got, r.pos)
	}
	return fmt.Errorf("eif: read %s: %w", what, err)
}

func (r *Reader) endSection() {
	if r.index < 0 {
		return
	}
	if r.keep != nil {
		r.kept[r.cur.Type] = r.keep.Bytes()
		r.keep = nil
	}
	r.m.endSection()
}

func (r *Reader) finish() error {
	if err := r.rules.done(); err != nil {
		return err
	}
	var one [1]byte
	n, err := io.ReadFull(r.r, one[:])
	if n > 0 {
		return fmt.Errorf("eif: trailing data after the last section, which ends at byte %d", r.pos)
	}
	if err != io.EOF {
		return fmt.Errorf("eif: read past the last section: %w", err)
	}
	if r.crc != r.hdr.CRC32 {
		return fmt.Errorf("eif: crc32 mismatch: header says %08x, computed %08x over the header and all sections", r.hdr.CRC32, r.crc)
	}
	m := r.m.result()
	if sig, ok := r.kept[SectionSignature]; ok {
		ps, err := parseSignatureSection(sig)
		if err != nil {
			return err
		}
		pcr8, err := CertificatePCR(ps.CertificatePEM)
		if err != nil {
			return err
		}
		m.PCR8 = &pcr8
		r.sig = ps
	}
	r.meas = &m
	return io.EOF
}

func (r *Reader) fail(err error) error {
	if r.err == nil {
		r.err = err
	}
	return r.err
}

// Measurements returns the PCRs once Next has returned io.EOF.
func (r *Reader) Measurements() (Measurements, error) {
	if r.meas == nil {
		if r.err != nil && r.err != io.EOF {
			return Measurements{}, r.err
		}
		return Measurements{}, errors.New("eif: measurements are final only after Next returns io.EOF")
	}
	return *r.meas, nil
}

// Image is a checked and measured image: everything but the kernel and
// ramdisk bytes, which are only streamed.
type Image struct {
	Header       Header
	Sections     []Section // in file order
	Cmdline      string
	Metadata     *Metadata  // nil before version 4
	Signature    *Signature // nil if unsigned
	Measurements Measurements
}

// Arch returns the architecture recorded in the header.
func (img *Image) Arch() Arch { return img.Header.Arch() }

// Read reads, checks and measures a whole image from r. See Reader for the
// checks; any failure is an error, so a returned Image has passed them all,
// including the CRC (describe's CheckCRC is therefore always true).
func Read(r io.Reader) (img *Image, err error) {
	// Untrusted input must not panic; if a bug lets it, report it as an
	// error rather than taking the caller down.
	defer func() {
		if p := recover(); p != nil {
			img, err = nil, fmt.Errorf("eif: internal error reading image: %v", p)
		}
	}()
	rd, err := NewReader(r)
	if err != nil {
		return nil, err
	}
	for {
		_, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	return rd.image()
}

// ReadFile reads, checks and measures the image in a file.
func ReadFile(name string) (*Image, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("eif: %w", err)
	}
	defer f.Close()
	return Read(f)
}

func (r *Reader) image() (*Image, error) {
	m, err := r.Measurements()
	if err != nil {
		return nil, err
	}
	img := &Image{Header: r.hdr, Sections: r.sections, Cmdline: string(r.kept[SectionCmdline]), Measurements: m}
	if b, ok := r.kept[SectionMetadata]; ok {
		md, err := ParseMetadata(b)
		if err != nil {
			return nil, err
		}
		img.Metadata = md
	}
	img.Signature = r.sig
	return img, nil
}
