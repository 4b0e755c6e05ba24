package eif

import (
	"bytes"
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"hash"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// synthetic describes a large image whose bytes come from a generator, so
// neither the test nor the reader ever holds the image in memory.
type synthetic struct {
	block    []byte  // 1 MiB of ChaCha8 output, repeated as section content
	sections []int64 // data sizes: kernel, cmdline, metadata, ramdisk…
	types    []SectionType
	header   []byte // 548 bytes, CRC filled in by newSynthetic
}

func newSynthetic(kernel, ramdisk0, ramdisk1 int64) *synthetic {
	block := make([]byte, 1<<20)
	rng := rand.NewChaCha8([32]byte{'e', 'i', 'f'})
	rng.Read(block)
	s := &synthetic{
		block:    block,
		sections: []int64{kernel, int64(len("console=ttyS0")), int64(len(miniMetadata)), ramdisk0, ramdisk1},
		types:    []SectionType{SectionKernel, SectionCmdline, SectionMetadata, SectionRamdisk, SectionRamdisk},
	}
	h := make([]byte, HeaderSize)
	copy(h, Magic)
	be := binary.BigEndian
	be.PutUint16(h[4:], 4)
	be.PutUint16(h[26:], uint16(len(s.sections)))
	off := int64(HeaderSize)
	for i, n := range s.sections {
		be.PutUint64(h[28+8*i:], uint64(off))
		be.PutUint64(h[284+8*i:], uint64(n))
		off += SectionHeaderSize + n
	}
	s.header = h
	crc := crc32.NewIEEE()
	crc.Write(h[:crcOffset])
	io.Copy(crc, s.body(nil))
	be.PutUint32(h[crcOffset:], crc.Sum32())
	return s
}

// size is the image's total size.
func (s *synthetic) size() int64 {
	n := int64(HeaderSize)
	for _, sz := range s.sections {
		n += SectionHeaderSize + sz
	}
	return n
}

// image streams the whole image.
func (s *synthetic) image() io.Reader {
	return io.MultiReader(bytes.NewReader(s.header), s.body(nil))
}

// body streams the sections; content, if set, also receives each
// section's data (for the independent PCR derivation).
func (s *synthetic) body(content func(i int) io.Writer) io.Reader {
	var parts []io.Reader
	for i, n := range s.sections {
		var sh [SectionHeaderSize]byte
		binary.BigEndian.PutUint16(sh[0:], uint16(s.types[i]))
		binary.BigEndian.PutUint64(sh[4:], uint64(n))
		parts = append(parts, bytes.NewReader(sh[:]))
		var data io.Reader
		switch s.types[i] {
		case SectionCmdline:
			data = bytes.NewReader([]byte("console=ttyS0"))
		case SectionMetadata:
			data = bytes.NewReader([]byte(miniMetadata))
		default:
			data = &repeatReader{block: s.block, left: n}
		}
		if content != nil {
			data = io.TeeReader(data, content(i))
		}
		parts = append(parts, data)
	}
	return io.MultiReader(parts...)
}

// repeatReader yields left bytes of block, repeated.
type repeatReader struct {
	block []byte
	off   int
	left  int64
}

func (r *repeatReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n := copy(p, r.block[r.off:])
	r.off = (r.off + n) % len(r.block)
	r.left -= int64(n)
	return n, nil
}

// heapCeiling is the stated bound on what Read may allocate while it
// streams and measures an image of any size: copy buffers, the kept
// metadata and cmdline, the hash states and the result.
const heapCeiling = 256 << 10

// TestMeasureLargeImageBoundedMemory streams a 264 MiB image from an
// io.Reader and checks that Read's total allocation stays under
// heapCeiling (cumulative bytes allocated, runtime.MemStats.TotalAlloc,
// which bounds any peak), and that the PCRs equal a direct crypto/sha512
// derivation over the same bytes.
func TestMeasureLargeImageBoundedMemory(t *testing.T) {
	const mib = 1 << 20
	s := newSynthetic(8*mib, 16*mib, 240*mib)
	if s.size() < 256*mib {
		t.Fatalf("synthetic image is %d bytes, want at least 256 MiB", s.size())
	}
	// Independent derivation: SHA-384 of each PCR's content, straight
	// from the generator.
	image, boot, app := sha512.New384(), sha512.New384(), sha512.New384()
	io.Copy(io.Discard, s.body(func(i int) io.Writer {
		switch i {
		case 0, 1:
			return io.MultiWriter(image, boot)
		case 3:
			return io.MultiWriter(image, boot)
		case 4:
			return io.MultiWriter(image, app)
		}
		return io.Discard
	}))
	extend := func(h hash.Hash) string {
		outer := sha512.New384()
		outer.Write(make([]byte, 48))
		outer.Write(h.Sum(nil))
		return hex.EncodeToString(outer.Sum(nil))
	}

	stream := streamOnly{s.image()}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	img, err := Read(stream)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	allocated := after.TotalAlloc - before.TotalAlloc
	t.Logf("measured a %d-byte image: Read allocated %d bytes in total (ceiling %d); heap in use after: %d bytes",
		s.size(), allocated, heapCeiling, after.HeapInuse)
	if allocated > heapCeiling {
		t.Fatalf("Read allocated %d bytes for a %d-byte image, over the %d-byte ceiling", allocated, s.size(), heapCeiling)
	}
	for _, c := range []struct{ name, got, want string }{
		{"PCR0", img.Measurements.PCR0.String(), extend(image)},
		{"PCR1", img.Measurements.PCR1.String(), extend(boot)},
		{"PCR2", img.Measurements.PCR2.String(), extend(app)},
	} {
		if c.got != c.want {
			t.Errorf("%s = %s, want %s", c.name, c.got, c.want)
		}
	}
}

// benchImage is a 64 MiB image: 8 MiB kernel, 1 MiB bootstrap ramdisk,
// 55 MiB application ramdisk, roughly the sealsign enclave's shape.
func benchImage(b *testing.B) []byte {
	var buf bytes.Buffer
	io.Copy(&buf, newSynthetic(8<<20, 1<<20, 55<<20).image())
	return buf.Bytes()
}

// BenchmarkMeasure reports Read's throughput in MB/s of image bytes.
// Every byte goes through CRC-32 and SHA-384 for PCR0, and the bytes of
// the ramdisks after the first through SHA-384 a second time for PCR2, so
// expect a bit under half of BenchmarkSHA384Sum's figure.
func BenchmarkMeasure(b *testing.B) {
	img := benchImage(b)
	b.SetBytes(int64(len(img)))
	for b.Loop() {
		if _, err := Read(bytes.NewReader(img)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSHA384 is one SHA-384 pass over the same bytes in-process.
func BenchmarkSHA384(b *testing.B) {
	img := benchImage(b)
	b.SetBytes(int64(len(img)))
	for b.Loop() {
		sha512.Sum384(img)
	}
}

// BenchmarkSHA384Sum runs coreutils' sha384sum over the same bytes in a
// file, for comparison with BenchmarkMeasure.
func BenchmarkSHA384Sum(b *testing.B) {
	path, err := exec.LookPath("sha384sum")
	if err != nil {
		b.Fatalf("sha384sum not found (install coreutils): %v", err)
	}
	img := benchImage(b)
	file := filepath.Join(b.TempDir(), "bench.eif")
	if err := os.WriteFile(file, img, 0o644); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(img)))
	for b.Loop() {
		if out, err := exec.Command(path, file).CombinedOutput(); err != nil {
			b.Fatalf("sha384sum: %v: %s", err, out)
		}
	}
}
