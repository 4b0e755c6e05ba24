package eif

import (
	"bytes"
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// testNow is the fixed clock of every test that checks a certificate's
// validity; the test certificates are valid from 2026-11-22 to 2046-11-22.
var testNow = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// hsec is one section of a hand-built image.
type hsec struct {
	typ   uint16
	flags uint16
	data  []byte
}

// handImage lays out an image directly with encoding/binary and hash/crc32,
// following notes §1 and not this package's writer, so that tests compare
// the package against an independent derivation. It returns the bytes and
// lets mutate change the header fields before the CRC is computed.
func handImage(version, flags uint16, secs []hsec, mutate func(h []byte)) []byte {
	h := make([]byte, 548)
	copy(h, ".eif")
	be := binary.BigEndian
	be.PutUint16(h[4:], version)
	be.PutUint16(h[6:], flags)
	be.PutUint64(h[8:], 1<<30)
	be.PutUint64(h[16:], 2)
	be.PutUint16(h[26:], uint16(len(secs)))
	off := uint64(548)
	var body []byte
	for i, s := range secs {
		be.PutUint64(h[28+8*i:], off)
		be.PutUint64(h[284+8*i:], uint64(len(s.data)))
		var sh [12]byte
		be.PutUint16(sh[0:], s.typ)
		be.PutUint16(sh[2:], s.flags)
		be.PutUint64(sh[4:], uint64(len(s.data)))
		body = append(body, sh[:]...)
		body = append(body, s.data...)
		off += 12 + uint64(len(s.data))
	}
	if mutate != nil {
		mutate(h)
	}
	crc := crc32.ChecksumIEEE(append(append([]byte{}, h[:544]...), body...))
	be.PutUint32(h[544:], crc)
	return append(h, body...)
}

// refixCRC recomputes the CRC of a contiguous image after a test changed it.
func refixCRC(img []byte) []byte {
	out := bytes.Clone(img)
	crc := crc32.ChecksumIEEE(append(append([]byte{}, out[:544]...), out[548:]...))
	binary.BigEndian.PutUint32(out[544:], crc)
	return out
}

// pcrOf is the notes' formula computed directly: SHA-384(0^48 ‖ SHA-384(content)).
func pcrOf(content ...[]byte) string {
	inner := sha512.New384()
	for _, c := range content {
		inner.Write(c)
	}
	outer := sha512.New384()
	outer.Write(make([]byte, 48))
	outer.Write(inner.Sum(nil))
	return hex.EncodeToString(outer.Sum(nil))
}

const miniMetadata = `{"ImageName":"test","ImageVersion":"1.0","BuildMetadata":{"BuildTime":"1970-01-01T00:00:00+00:00","BuildTool":"eif_build","BuildToolVersion":"0.0.0","OperatingSystem":"Linux","KernelVersion":"0.0.0"},"DockerInfo":null,"CustomMetadata":null}`

// miniSections are the sections of testdata/mini-v4.eif.
func miniSections() []hsec {
	return []hsec{
		{1, 0, []byte("KERNEL")},
		{2, 0, []byte("console=ttyS0")},
		{5, 0, []byte(miniMetadata)},
		{3, 0, []byte("RAMDISK0")},
		{3, 0, []byte("RAMDISK1")},
	}
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func testSigner(t testing.TB, curve string) *Signer {
	t.Helper()
	s, err := ParseSigner(readTestdata(t, "signer-"+curve+".key"), readTestdata(t, "signer-"+curve+".crt"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// streamOnly hides Size and ReadAt, so Read sees a pure stream whose
// length it cannot know in advance.
type streamOnly struct{ r io.Reader }

func (s streamOnly) Read(p []byte) (int, error) { return s.r.Read(p) }

func wantErr(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one containing %q", want)
	}
	if !strings.HasPrefix(err.Error(), "eif: ") {
		t.Errorf("error %q lacks the \"eif: \" prefix", err)
	}
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q, want it to contain %q", err, want)
	}
}

// handNewc writes a newc archive the way the notes (§6.1) describe
// linuxkit's, independently of package cpio: entries in the given order,
// inodes from 721, dev 3:1, uid/gid 0, 4-byte padding from the archive
// start, a TRAILER!!! entry with mtime 0, zero padding to 512.
type handEntry struct {
	name string
	mode uint32
	data []byte
}

func handNewc(mtime uint32, entries []handEntry) []byte {
	var b []byte
	pad := func(n int) {
		for len(b)%n != 0 {
			b = append(b, 0)
		}
	}
	all := append(entries, handEntry{name: "TRAILER!!!"})
	for i, e := range all {
		nlink, mt := 1, mtime
		if e.mode&0o170000 == 0o040000 {
			nlink = 2
		}
		if e.name == "TRAILER!!!" {
			mt = 0
		}
		b = append(b, fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
			721+i, e.mode, 0, 0, nlink, mt, len(e.data), 3, 1, 0, 0, len(e.name)+1, 0)...)
		b = append(b, e.name...)
		b = append(b, 0)
		pad(4)
		b = append(b, e.data...)
		pad(4)
	}
	pad(512)
	return b
}

// listNewc returns name → (mode, data) of a newc archive, independently
// of package cpio.
func listNewc(t *testing.T, b []byte) ([]string, map[string]handEntry) {
	t.Helper()
	var names []string
	m := map[string]handEntry{}
	pos := 0
	for {
		field := func(i int) int {
			v, err := strconv.ParseUint(string(b[pos+6+8*i:pos+14+8*i]), 16, 32)
			if err != nil {
				t.Fatal(err)
			}
			return int(v)
		}
		mode, size, nameSize := field(1), field(6), field(11)
		name := string(b[pos+110 : pos+110+nameSize-1])
		start := (pos + 110 + nameSize + 3) &^ 3
		if name == "TRAILER!!!" {
			return names, m
		}
		names = append(names, name)
		m[name] = handEntry{name, uint32(mode), b[start : start+size]}
		pos = (start + size + 3) &^ 3
	}
}
