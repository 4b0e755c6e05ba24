package eif

import (
	"encoding/binary"
	"fmt"
)

// Layout constants (notes §1.1–1.3; IMGFMT src/defs/mod.rs).
const (
	// Magic starts every image.
	Magic = ".eif"
	// HeaderSize is the size of the EIF header.
	HeaderSize = 548
	// SectionHeaderSize is the size of the header before each section.
	SectionHeaderSize = 12
	// MaxSections is the number of offset and size slots in the header.
	MaxSections = 32
	// CurrentVersion is the version this package writes.
	CurrentVersion = 4
	// MinVersion is the oldest version this package reads (the first
	// public one, with a CRC).
	MinVersion = 2

	// DefaultMem and DefaultCPUs are the values AWS's builder writes into
	// the header; no tool or hypervisor uses them.
	DefaultMem  = 1 << 30
	DefaultCPUs = 2

	crcOffset = 544 // the CRC is the last header field and not covered by itself
)

// Limits on untrusted sizes. A section the reader keeps in memory must fit
// its limit before a byte of it is read; every other section is streamed.
const (
	// MaxSignatureSize is the spec's SIGNATURE_MAX_SIZE (IMGFMT README).
	MaxSignatureSize = 32 << 10
	// MaxMetadataSize bounds the metadata JSON. nitro-cli limits custom
	// metadata to 4 KiB; the rest is docker inspect output.
	MaxMetadataSize = 1 << 20
	// MaxCmdlineSize bounds the kernel command line (Linux allows 2 KiB on
	// x86_64 and 4 KiB on arm64).
	MaxCmdlineSize = 64 << 10
	// MaxImageSize bounds the end of the last section: larger than any
	// enclave's memory, small enough that offset arithmetic cannot overflow.
	MaxImageSize = 1 << 40
)

// SectionType is the type field of a section header.
type SectionType uint16

// Section types (notes §1.3).
const (
	SectionInvalid   SectionType = 0
	SectionKernel    SectionType = 1
	SectionCmdline   SectionType = 2
	SectionRamdisk   SectionType = 3
	SectionSignature SectionType = 4 // version 3 and later
	SectionMetadata  SectionType = 5 // version 4 and later, mandatory there
)

func (t SectionType) String() string {
	switch t {
	case SectionInvalid:
		return "invalid"
	case SectionKernel:
		return "kernel"
	case SectionCmdline:
		return "cmdline"
	case SectionRamdisk:
		return "ramdisk"
	case SectionSignature:
		return "signature"
	case SectionMetadata:
		return "metadata"
	}
	return fmt.Sprintf("unknown(%d)", uint16(t))
}

// Arch is the CPU architecture recorded in bit 0 of the header flags.
type Arch uint16

// Architectures.
const (
	ArchX86_64  Arch = 0
	ArchAarch64 Arch = 1 // EIF_HDR_ARCH_ARM64
)

func (a Arch) String() string {
	switch a {
	case ArchX86_64:
		return "x86_64"
	case ArchAarch64:
		return "aarch64"
	}
	return fmt.Sprintf("arch(%d)", uint16(a))
}

// ParseArch parses "x86_64" or "aarch64" (also "amd64" and "arm64").
func ParseArch(s string) (Arch, error) {
	switch s {
	case "x86_64", "amd64":
		return ArchX86_64, nil
	case "aarch64", "arm64":
		return ArchAarch64, nil
	}
	return 0, fmt.Errorf("eif: unknown architecture %q: want x86_64 or aarch64", s)
}

const flagArchMask = 0x1

// Header is the 548-byte EIF header. All fields are big-endian on disk.
type Header struct {
	Version        uint16
	Flags          uint16
	DefaultMem     uint64
	DefaultCPUs    uint64
	Reserved       uint16
	NumSections    uint16
	SectionOffsets [MaxSections]uint64 // file offset of each section header
	SectionSizes   [MaxSections]uint64 // data size of each section, without its header
	Unused         uint32
	CRC32          uint32
}

// Arch returns the architecture recorded in the flags.
func (h *Header) Arch() Arch { return Arch(h.Flags & flagArchMask) }

// AppendBinary appends the 548-byte encoding of h.
func (h *Header) AppendBinary(b []byte) ([]byte, error) {
	be := binary.BigEndian
	b = append(b, Magic...)
	b = be.AppendUint16(b, h.Version)
	b = be.AppendUint16(b, h.Flags)
	b = be.AppendUint64(b, h.DefaultMem)
	b = be.AppendUint64(b, h.DefaultCPUs)
	b = be.AppendUint16(b, h.Reserved)
	b = be.AppendUint16(b, h.NumSections)
	for _, o := range h.SectionOffsets {
		b = be.AppendUint64(b, o)
	}
	for _, s := range h.SectionSizes {
		b = be.AppendUint64(b, s)
	}
	b = be.AppendUint32(b, h.Unused)
	b = be.AppendUint32(b, h.CRC32)
	return b, nil
}

// MarshalBinary returns the 548-byte encoding of h.
func (h *Header) MarshalBinary() ([]byte, error) {
	return h.AppendBinary(make([]byte, 0, HeaderSize))
}

// UnmarshalBinary decodes a header and checks it on its own: magic,
// version, flags, reserved fields, section count, unused slots, and that
// the offsets lay the sections out back to back in slot order (which is
// what makes reading by offsets, as the hypervisor does, and reading
// sequentially, as nitro-cli does, agree). It cannot check the section
// headers or the CRC; Reader does.
func (h *Header) UnmarshalBinary(b []byte) error {
	if len(b) != HeaderSize {
		return fmt.Errorf("eif: header is %d bytes, want %d", len(b), HeaderSize)
	}
	if string(b[:4]) != Magic {
		return fmt.Errorf("eif: bad magic: want %x (%q), found %x", Magic, Magic, b[:4])
	}
	be := binary.BigEndian
	var d Header
	d.Version = be.Uint16(b[4:])
	d.Flags = be.Uint16(b[6:])
	d.DefaultMem = be.Uint64(b[8:])
	d.DefaultCPUs = be.Uint64(b[16:])
	d.Reserved = be.Uint16(b[24:])
	d.NumSections = be.Uint16(b[26:])
	for i := range MaxSections {
		d.SectionOffsets[i] = be.Uint64(b[28+8*i:])
		d.SectionSizes[i] = be.Uint64(b[284+8*i:])
	}
	d.Unused = be.Uint32(b[540:])
	d.CRC32 = be.Uint32(b[544:])
	if err := d.check(); err != nil {
		return err
	}
	*h = d
	return nil
}

func (h *Header) check() error {
	if h.Version < MinVersion || h.Version > CurrentVersion {
		return fmt.Errorf("eif: unsupported version %d: want %d to %d", h.Version, MinVersion, CurrentVersion)
	}
	if h.Flags&^flagArchMask != 0 {
		return fmt.Errorf("eif: unknown header flags %#04x: only bit 0 (aarch64) is defined", h.Flags)
	}
	if h.Reserved != 0 {
		return fmt.Errorf("eif: reserved header field is %#x, want 0", h.Reserved)
	}
	if h.Unused != 0 {
		return fmt.Errorf("eif: unused header field is %#x, want 0", h.Unused)
	}
	if h.NumSections < 3 || h.NumSections > MaxSections {
		return fmt.Errorf("eif: header declares %d sections, want 3 to %d (a kernel, a cmdline and at least one ramdisk)", h.NumSections, MaxSections)
	}
	want := uint64(HeaderSize)
	for i := range int(h.NumSections) {
		off, size := h.SectionOffsets[i], h.SectionSizes[i]
		if off != want {
			if i == 0 {
				return fmt.Errorf("eif: section 0 offset is %d, want %d (right after the header)", off, want)
			}
			return fmt.Errorf("eif: section %d offset is %d, want %d (section %d at %d + %d-byte section header + %d data bytes): sections must be contiguous and in header order",
				i, off, want, i-1, h.SectionOffsets[i-1], SectionHeaderSize, h.SectionSizes[i-1])
		}
		// off <= MaxImageSize here, so neither sum can overflow.
		if size > MaxImageSize || off+SectionHeaderSize+size > MaxImageSize {
			return fmt.Errorf("eif: section %d size %d at offset %d ends beyond the %d-byte image limit", i, size, off, uint64(MaxImageSize))
		}
		want = off + SectionHeaderSize + size
	}
	for i := int(h.NumSections); i < MaxSections; i++ {
		if h.SectionOffsets[i] != 0 || h.SectionSizes[i] != 0 {
			return fmt.Errorf("eif: header slot %d is beyond the %d sections but holds offset %d and size %d, want 0 and 0",
				i, h.NumSections, h.SectionOffsets[i], h.SectionSizes[i])
		}
	}
	return nil
}

// ImageSize returns the file size the header describes: the end of the
// last section.
func (h *Header) ImageSize() int64 {
	if h.NumSections == 0 {
		return HeaderSize
	}
	last := int(h.NumSections) - 1
	return int64(h.SectionOffsets[last] + SectionHeaderSize + h.SectionSizes[last])
}

// SectionHeader is the 12-byte header before each section's data.
type SectionHeader struct {
	Type  SectionType
	Flags uint16
	Size  uint64
}

func (s SectionHeader) appendBinary(b []byte) []byte {
	be := binary.BigEndian
	b = be.AppendUint16(b, uint16(s.Type))
	b = be.AppendUint16(b, s.Flags)
	return be.AppendUint64(b, s.Size)
}

func parseSectionHeader(b []byte) SectionHeader {
	be := binary.BigEndian
	return SectionHeader{Type: SectionType(be.Uint16(b)), Flags: be.Uint16(b[2:]), Size: be.Uint64(b[4:])}
}

// Section locates one section of an image.
type Section struct {
	Index  int         // position in the header and in the file
	Type   SectionType //
	Offset int64       // file offset of the section header
	Size   int64       // data bytes after the section header
}

// DataOffset returns the file offset of the section's data.
func (s Section) DataOffset() int64 { return s.Offset + SectionHeaderSize }

// sectionRules checks the section types of an image in file order: one
// kernel and one cmdline, both before the first ramdisk, at least one
// ramdisk, at most one signature (v3+) and one metadata section (v4+, and
// mandatory there). It is shared by the reader and the writer so that the
// writer cannot produce what the reader refuses.
type sectionRules struct {
	version                             uint16
	kernel, cmdline, ramdisk, sig, meta int
}

func (r *sectionRules) add(i int, t SectionType, size uint64) error {
	switch t {
	case SectionKernel:
		if r.kernel++; r.kernel > 1 {
			return fmt.Errorf("eif: section %d is a second kernel section, want exactly one", i)
		}
	case SectionCmdline:
		if r.cmdline++; r.cmdline > 1 {
			return fmt.Errorf("eif: section %d is a second cmdline section, want exactly one", i)
		}
		if size > MaxCmdlineSize {
			return fmt.Errorf("eif: section %d (cmdline) is %d bytes, want at most %d", i, size, MaxCmdlineSize)
		}
	case SectionRamdisk:
		// PCR1 is kernel ‖ cmdline ‖ first ramdisk; with a ramdisk first,
		// readers disagree on what it measures.
		if r.kernel == 0 || r.cmdline == 0 {
			return fmt.Errorf("eif: section %d is a ramdisk before the kernel and cmdline sections, want kernel and cmdline first", i)
		}
		r.ramdisk++
	case SectionSignature:
		if r.version < 3 {
			return fmt.Errorf("eif: section %d is a signature section, which needs version 3 or later, found version %d", i, r.version)
		}
		if r.sig++; r.sig > 1 {
			return fmt.Errorf("eif: section %d is a second signature section, want at most one", i)
		}
		if size > MaxSignatureSize {
			return fmt.Errorf("eif: section %d (signature) is %d bytes, want at most %d", i, size, MaxSignatureSize)
		}
	case SectionMetadata:
		if r.version < 4 {
			return fmt.Errorf("eif: section %d is a metadata section, which needs version 4, found version %d", i, r.version)
		}
		if r.meta++; r.meta > 1 {
			return fmt.Errorf("eif: section %d is a second metadata section, want at most one", i)
		}
		if size > MaxMetadataSize {
			return fmt.Errorf("eif: section %d (metadata) is %d bytes, want at most %d", i, size, MaxMetadataSize)
		}
	case SectionInvalid:
		return fmt.Errorf("eif: section %d has the invalid type 0, want 1 to 5 (kernel, cmdline, ramdisk, signature, metadata)", i)
	default:
		return fmt.Errorf("eif: section %d has unknown type %d, want 1 to 5 (kernel, cmdline, ramdisk, signature, metadata)", i, uint16(t))
	}
	return nil
}

func (r *sectionRules) done() error {
	switch {
	case r.kernel == 0:
		return fmt.Errorf("eif: no kernel section, want exactly one")
	case r.cmdline == 0:
		return fmt.Errorf("eif: no cmdline section, want exactly one")
	case r.ramdisk == 0:
		return fmt.Errorf("eif: no ramdisk section, want at least one")
	case r.version >= 4 && r.meta == 0:
		return fmt.Errorf("eif: no metadata section, which version %d requires", r.version)
	}
	return nil
}
