package eif

import (
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
)

// PCR is a SHA-384 platform configuration register value.
type PCR [sha512.Size384]byte

// String returns the lowercase hex form nitro-cli prints.
func (p PCR) String() string { return hex.EncodeToString(p[:]) }

// MarshalText returns the lowercase hex form.
func (p PCR) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText parses 96 hex digits.
func (p *PCR) UnmarshalText(b []byte) error {
	if len(b) != 2*len(p) {
		return fmt.Errorf("eif: pcr is %d hex digits, want %d", len(b), 2*len(p))
	}
	_, err := hex.Decode(p[:], b)
	if err != nil {
		return fmt.Errorf("eif: pcr: %w", err)
	}
	return nil
}

// Measurements are the PCRs that the Nitro hypervisor computes from an
// image (notes §2.2).
type Measurements struct {
	PCR0 PCR  // kernel ‖ cmdline ‖ every ramdisk, in file order
	PCR1 PCR  // kernel ‖ cmdline ‖ the first ramdisk
	PCR2 PCR  // the ramdisks after the first (empty content with one ramdisk)
	PCR8 *PCR // the DER of the signing certificate; nil for an unsigned image
}

// Extend returns the PCR that a single TPM-style extend from an all-zero
// register produces for a content digest: SHA-384(0⁴⁸ ‖ digest). This is
// what EifHasher's tpm_extend_finalize_reset does (notes §2.1).
func Extend(contentDigest [sha512.Size384]byte) PCR {
	h := sha512.New384()
	var zero PCR
	h.Write(zero[:])
	h.Write(contentDigest[:])
	var p PCR
	h.Sum(p[:0])
	return p
}

// MeasureContent returns Extend(SHA-384(r)), what `nitro-cli pcr --input`
// prints for a file.
func MeasureContent(r io.Reader) (PCR, error) {
	h := sha512.New384()
	if _, err := io.Copy(h, r); err != nil {
		return PCR{}, fmt.Errorf("eif: measure: %w", err)
	}
	return finish(h), nil
}

// MeasureBytes returns Extend(SHA-384(b)).
func MeasureBytes(b []byte) PCR { return Extend(sha512.Sum384(b)) }

func finish(h hash.Hash) PCR {
	var d [sha512.Size384]byte
	h.Sum(d[:0])
	return Extend(d)
}

// measurer computes PCR0–2 in one pass over section data in file order.
// PCR1's content is a prefix of PCR0's (kernel and cmdline precede every
// ramdisk, which sectionRules enforces), so PCR1 is PCR0's running digest
// taken at the end of the first ramdisk: every byte is hashed once for
// PCR0 and the bytes of later ramdisks once more for PCR2.
type measurer struct {
	image    hash.Hash // PCR0
	app      hash.Hash // PCR2
	ramdisks int       // ramdisk sections started
	boot     PCR       // PCR1, once the first ramdisk has ended
	bootDone bool
	cur      SectionType
}

func newMeasurer() *measurer {
	return &measurer{image: sha512.New384(), app: sha512.New384()}
}

// begin starts a section; it must be called in file order.
func (m *measurer) begin(t SectionType) {
	m.endSection()
	m.cur = t
	if t == SectionRamdisk {
		m.ramdisks++
	}
}

func (m *measurer) Write(p []byte) (int, error) {
	switch m.cur {
	case SectionKernel, SectionCmdline:
		m.image.Write(p)
	case SectionRamdisk:
		m.image.Write(p)
		if m.ramdisks > 1 {
			m.app.Write(p)
		}
	}
	return len(p), nil
}

func (m *measurer) endSection() {
	if m.cur == SectionRamdisk && m.ramdisks == 1 && !m.bootDone {
		m.boot = finish(m.image) // Sum does not disturb the running hash
		m.bootDone = true
	}
	m.cur = SectionInvalid
}

// result returns the measurements after the last section.
func (m *measurer) result() Measurements {
	m.endSection()
	return Measurements{PCR0: finish(m.image), PCR1: m.boot, PCR2: finish(m.app)}
}
