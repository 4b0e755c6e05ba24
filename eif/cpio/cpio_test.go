package cpio

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"testing"
)

// newcEntry is one header as parseNewc decodes it.
type newcEntry struct {
	ino, mode, uid, gid, nlink, mtime, size, devMajor, devMinor, rdevMajor, rdevMinor, nameSize, check uint64
	name                                                                                               string
	data                                                                                               []byte
}

// parseNewc is an independent newc reader written from the format
// description (man 5 cpio, "New ASCII Format"): 6-byte magic, 13 fields
// of 8 hex digits, name with NUL padded to 4, data padded to 4. It also
// checks that everything after the trailer is zero padding to 512.
func parseNewc(b []byte) ([]newcEntry, error) {
	var out []newcEntry
	pos := 0
	pad := func(n int) int { return (n + 3) &^ 3 }
	for {
		if pos+110 > len(b) {
			return nil, fmt.Errorf("header at %d runs past the end", pos)
		}
		if string(b[pos:pos+6]) != "070701" {
			return nil, fmt.Errorf("bad magic %q at %d", b[pos:pos+6], pos)
		}
		var f [13]uint64
		for i := range f {
			v, err := strconv.ParseUint(string(b[pos+6+8*i:pos+14+8*i]), 16, 32)
			if err != nil {
				return nil, err
			}
			f[i] = v
		}
		e := newcEntry{ino: f[0], mode: f[1], uid: f[2], gid: f[3], nlink: f[4], mtime: f[5], size: f[6],
			devMajor: f[7], devMinor: f[8], rdevMajor: f[9], rdevMinor: f[10], nameSize: f[11], check: f[12]}
		nameEnd := pos + 110 + int(e.nameSize)
		if nameEnd > len(b) || e.nameSize == 0 || b[nameEnd-1] != 0 {
			return nil, fmt.Errorf("bad name at %d", pos)
		}
		e.name = string(b[pos+110 : nameEnd-1])
		dataStart := pad(nameEnd)
		dataEnd := dataStart + int(e.size)
		if dataEnd > len(b) {
			return nil, fmt.Errorf("data of %q runs past the end", e.name)
		}
		e.data = b[dataStart:dataEnd]
		out = append(out, e)
		pos = pad(dataEnd)
		if e.name == "TRAILER!!!" {
			if len(b)%512 != 0 {
				return nil, fmt.Errorf("archive is %d bytes, not a multiple of 512", len(b))
			}
			if strings.Trim(string(b[dataEnd:]), "\x00") != "" {
				return nil, fmt.Errorf("non-zero bytes after the trailer")
			}
			return out, nil
		}
	}
}

func content(b []byte) Content { return bytes.NewReader(b) }

// TestLinuxkitBootstrapLayout builds the bootstrap ramdisk shape with
// stand-ins of the real blob sizes (init 742968 bytes, nsm.ko 20504) and
// checks the values the notes derived for AWS's archive (§6.1): total size
// 764416, the first header's bytes, and every field of every entry.
func TestLinuxkitBootstrapLayout(t *testing.T) {
	initData := bytes.Repeat([]byte{0x7f}, 742968)
	nsm := bytes.Repeat([]byte{0x01}, 20504)
	var buf bytes.Buffer
	err := WriteArchive(&buf, []Entry{
		{Name: "nsm.ko", Mode: 0o755, Data: content(nsm)}, // unsorted on purpose
		{Name: "dev", Mode: fs.ModeDir | 0o755},
		{Name: "init", Mode: 0o755, Data: content(initData)},
	}, LinuxkitModTime)
	if err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	if len(b) != 764416 {
		t.Fatalf("archive is %d bytes, the notes derive 764416 for these sizes", len(b))
	}
	first := "070701" + "000002d1" + "000041ed" + "00000000" + "00000000" + "00000002" + "58f63f08" + "00000000" +
		"00000003" + "00000001" + "00000000" + "00000000" + "00000004" + "00000000"
	if got := string(b[:110]); got != first {
		t.Fatalf("first header\n %s\nwant %s", got, first)
	}
	if got := hex.EncodeToString(b[110:116]); got != "646576000000" {
		t.Fatalf("dev name and padding %s, want 646576000000", got)
	}
	if got := string(b[116:138]); got != "070701000002d2000081ed" {
		t.Fatalf("second header starts %s", got)
	}
	entries, err := parseNewc(b)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		name        string
		mode, nlink uint64
		mtime, size uint64
		ino         uint64
		data        []byte
		nameSize    uint64
	}{
		{"dev", 0o40755, 2, LinuxkitModTime, 0, 721, nil, 4},
		{"init", 0o100755, 1, LinuxkitModTime, 742968, 722, initData, 5},
		{"nsm.ko", 0o100755, 1, LinuxkitModTime, 20504, 723, nsm, 7},
		{"TRAILER!!!", 0, 1, 0, 0, 724, nil, 11},
	}
	if len(entries) != len(want) {
		t.Fatalf("%d entries, want %d", len(entries), len(want))
	}
	for i, w := range want {
		e := entries[i]
		if e.name != w.name || e.mode != w.mode || e.nlink != w.nlink || e.mtime != w.mtime || e.size != w.size ||
			e.ino != w.ino || e.nameSize != w.nameSize || e.uid != 0 || e.gid != 0 || e.devMajor != 3 || e.devMinor != 1 ||
			e.rdevMajor != 0 || e.rdevMinor != 0 || e.check != 0 || !bytes.Equal(e.data, w.data) {
			t.Errorf("entry %d = %+v (data %d bytes), want %+v", i, e, len(e.data), w)
		}
	}
}

func TestWriterRejects(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	if err := w.WriteHeader(&Header{Name: "a", Mode: TypeReg | 0o644, Size: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("abc")); err == nil || !strings.Contains(err.Error(), `cpio: entry "a": write of 3 bytes exceeds the 2 bytes left`) {
		t.Fatalf("over-long write: %v", err)
	}
	w = NewWriter(&buf)
	w.WriteHeader(&Header{Name: "a", Mode: TypeReg | 0o644, Size: 2})
	w.Write([]byte("a"))
	if err := w.Close(); err == nil || !strings.Contains(err.Error(), `cpio: entry "a": 1 bytes of its declared size were not written`) {
		t.Fatalf("short entry: %v", err)
	}
	for _, h := range []Header{{Name: ""}, {Name: "a\x00b"}, {Name: strings.Repeat("a", MaxNameLen+1)}, {Name: "big", Size: MaxFileSize + 1}, {Name: "neg", Size: -1}} {
		if err := NewWriter(&buf).WriteHeader(&h); err == nil {
			t.Errorf("header %q size %d accepted", h.Name, h.Size)
		}
	}
	w = NewWriter(&buf)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := w.WriteHeader(&Header{Name: "late"}); err == nil {
		t.Fatal("WriteHeader after Close accepted")
	}
}

func TestWriteArchiveRules(t *testing.T) {
	dir := func(n string) Entry { return Entry{Name: n, Mode: fs.ModeDir | 0o755} }
	file := func(n string) Entry { return Entry{Name: n, Mode: 0o644, Data: content([]byte(n))} }
	cases := []struct {
		name    string
		entries []Entry
		want    string
	}{
		{"duplicate", []Entry{file("a"), file("a")}, `cpio: duplicate entry "a"`},
		{"missing parent", []Entry{file("a/b")}, `cpio: entry "a/b": parent directory "a" is not in the archive`},
		{"parent is a file", []Entry{file("a"), file("a/b")}, `parent directory "a" is not in the archive`},
		{"leading slash", []Entry{file("/a")}, `without leading or trailing "/"`},
		{"trailing slash", []Entry{dir("a/")}, `without leading or trailing "/"`},
		{"dot dot", []Entry{dir("a"), file("a/../b")}, `empty, "." or ".." path element`},
		{"double slash", []Entry{dir("a"), file("a//b")}, `empty, "." or ".." path element`},
		{"trailer name", []Entry{file(Trailer)}, "reserved for the archive trailer"},
		{"setuid", []Entry{{Name: "s", Mode: fs.ModeSetuid | 0o755}}, "has bits other than the file type and permissions"},
		{"device", []Entry{{Name: "d", Mode: fs.ModeDevice | 0o600}}, "is not supported"},
		{"symlink without target", []Entry{{Name: "l", Mode: fs.ModeSymlink | 0o777}}, `cpio: symlink "l" has no target`},
		{"directory with data", []Entry{{Name: "d", Mode: fs.ModeDir | 0o755, Data: content([]byte("x"))}}, "only regular files have data"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := WriteArchive(&bytes.Buffer{}, tc.entries, 0)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
	// Sorted output, symlinks, empty files; parents precede children even
	// when a sibling sorts between them ("a-b" < "a/b").
	var buf bytes.Buffer
	err := WriteArchive(&buf, []Entry{
		file("a/b"), {Name: "a-b", Mode: fs.ModeSymlink | 0o777, Linkname: "a/b"}, dir("a"), {Name: "e", Mode: 0o600},
	}, 1)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := parseNewc(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.name)
	}
	if got := strings.Join(names, ","); got != "a,a-b,a/b,e,TRAILER!!!" {
		t.Fatalf("order %s", got)
	}
	if e := entries[1]; e.mode != 0o120777 || string(e.data) != "a/b" {
		t.Fatalf("symlink %+v", e)
	}
}

// FuzzWriteArchive: any archive WriteArchive accepts parses back, with an
// independent reader, to the sorted entries with their data, and is
// padded to 512 bytes.
func FuzzWriteArchive(f *testing.F) {
	f.Add("dev", "init", []byte("\x7fELF"), "nsm.ko", []byte("mod"))
	f.Add("rootfs", "rootfs/bin", []byte{}, "cmd", []byte("/bin/app\n"))
	f.Add("a", "a/b/c", []byte("x"), "b", bytes.Repeat([]byte{0}, 513))
	f.Fuzz(func(t *testing.T, dirName, name1 string, data1 []byte, name2 string, data2 []byte) {
		entries := []Entry{
			{Name: dirName, Mode: fs.ModeDir | 0o755},
			{Name: name1, Mode: 0o755, Data: content(data1)},
			{Name: name2, Mode: 0o644, Data: content(data2)},
		}
		var buf bytes.Buffer
		if err := WriteArchive(&buf, entries, LinuxkitModTime); err != nil {
			return
		}
		got, err := parseNewc(buf.Bytes())
		if err != nil {
			t.Fatalf("written archive does not parse: %v", err)
		}
		if len(got) != 4 {
			t.Fatalf("%d entries, want 4", len(got))
		}
		byName := map[string][]byte{name1: data1, name2: data2, dirName: nil}
		for i, e := range got[:3] {
			if i > 0 && got[i-1].name >= e.name {
				t.Fatalf("entries not sorted: %q then %q", got[i-1].name, e.name)
			}
			if !bytes.Equal(e.data, byName[e.name]) || e.ino != uint64(FirstInode+i) {
				t.Fatalf("entry %q: data %q ino %d", e.name, e.data, e.ino)
			}
		}
	})
}
