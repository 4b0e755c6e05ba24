// Package cpio writes deterministic SVR4 "newc" cpio archives, the format
// of Linux initramfs images and of every ramdisk in an enclave image.
//
// The Writer reproduces, byte for byte, the archives that AWS's patched
// linuxkit writes for nitro-cli (linuxkit v1.5.2, vendored
// github.com/surma/gocpio writer.go; ../../shared/notes/eif-format.md §6.1):
// inode numbers start at 721 and count every header including the trailer,
// the device of every entry is 3:1, directories have two links and
// everything else one, names and data are zero-padded to four bytes counted
// from the start of the archive, and the archive ends with a TRAILER!!!
// entry and zero padding to a multiple of 512 bytes. That is what makes
// nitro-cli's PCR1 reproducible without Docker.
//
// WriteArchive adds the rules that make a whole archive a function of its
// inputs only: entries sorted by name, uid and gid 0, one fixed mtime,
// parents before children.
package cpio

import (
	"cmp"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"
)

// Constants of the layout linuxkit writes.
const (
	// Magic starts every newc header.
	Magic = "070701"
	// HeaderSize is the length of a newc header before the name.
	HeaderSize = 110
	// FirstInode is gocpio's first inode number.
	FirstInode = 721
	// LinuxkitModTime is linuxkit's defaultModTime, 2017-04-18T16:30:00Z:
	// the mtime of every file it adds from a yaml "files:" list.
	LinuxkitModTime = 1492533000
	// Trailer is the name of the entry that ends an archive.
	Trailer = "TRAILER!!!"
	// MaxNameLen bounds entry names (Linux PATH_MAX including the NUL);
	// the kernel's initramfs unpacker rejects longer names.
	MaxNameLen = 4095
	// MaxFileSize is the largest size a newc header can state.
	MaxFileSize = 1<<32 - 1
)

// File type bits of the newc mode field (st_mode).
const (
	TypeReg     = 0o100000
	TypeDir     = 0o040000
	TypeSymlink = 0o120000
)

// Header is one newc header. The inode, link count, device and check fields
// are filled in by the Writer, as gocpio does.
type Header struct {
	Name      string
	Mode      uint32 // type bits | permission bits, as in st_mode
	UID, GID  uint32
	Mtime     uint32 // seconds since the Unix epoch
	Size      int64  // data bytes that follow (for a symlink: the target)
	RdevMajor uint32
	RdevMinor uint32
}

// Writer writes a newc archive sequentially: WriteHeader, then exactly
// Size bytes through Write, then the next header; Close writes the trailer.
type Writer struct {
	w         io.Writer
	ino       uint32
	n         int64 // bytes written so far: padding is relative to this
	remaining int64 // data bytes the current entry still needs
	name      string
	closed    bool
	err       error // sticky: a broken archive stays broken
}

// NewWriter returns a Writer that writes to w.
func NewWriter(w io.Writer) *Writer {
	return &Writer{w: w, ino: FirstInode}
}

// WriteHeader finishes the previous entry and starts a new one.
func (w *Writer) WriteHeader(h *Header) error {
	if err := w.finishEntry(); err != nil {
		return err
	}
	if h.Name == "" || len(h.Name) > MaxNameLen || strings.IndexByte(h.Name, 0) >= 0 {
		return w.fail(fmt.Errorf("cpio: entry name %q: want 1 to %d bytes without NUL", h.Name, MaxNameLen))
	}
	if h.Size < 0 || h.Size > MaxFileSize {
		return w.fail(fmt.Errorf("cpio: entry %q: size %d does not fit a newc header (max %d)", h.Name, h.Size, int64(MaxFileSize)))
	}
	nlink := uint32(1)
	if h.Mode&0o170000 == TypeDir {
		nlink = 2
	}
	hdr := fmt.Sprintf("%s%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		Magic, w.ino, h.Mode, h.UID, h.GID, nlink, h.Mtime, h.Size,
		3, 1, // devmajor, devminor: hard-coded by gocpio
		h.RdevMajor, h.RdevMinor, len(h.Name)+1, 0)
	if err := w.write([]byte(hdr)); err != nil {
		return err
	}
	if err := w.write(append([]byte(h.Name), 0)); err != nil {
		return err
	}
	if err := w.pad(4); err != nil {
		return err
	}
	w.ino++
	w.remaining = h.Size
	w.name = h.Name
	return nil
}

// Write writes data of the current entry. Writing more than the header's
// Size is an error.
func (w *Writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if int64(len(p)) > w.remaining {
		return 0, w.fail(fmt.Errorf("cpio: entry %q: write of %d bytes exceeds the %d bytes left of its declared size", w.name, len(p), w.remaining))
	}
	if err := w.write(p); err != nil {
		return 0, err
	}
	w.remaining -= int64(len(p))
	return len(p), nil
}

// Close writes the trailer and pads the archive to 512 bytes. It does not
// close the underlying writer.
func (w *Writer) Close() error {
	if w.closed {
		return w.err
	}
	if err := w.WriteHeader(&Header{Name: Trailer}); err != nil {
		return err
	}
	w.closed = true
	return w.pad(512)
}

// Len reports the number of bytes written so far.
func (w *Writer) Len() int64 { return w.n }

func (w *Writer) finishEntry() error {
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return w.fail(fmt.Errorf("cpio: archive already closed"))
	}
	if w.remaining != 0 {
		return w.fail(fmt.Errorf("cpio: entry %q: %d bytes of its declared size were not written", w.name, w.remaining))
	}
	return w.pad(4)
}

func (w *Writer) pad(mod int64) error {
	var zeros [512]byte
	return w.write(zeros[:(mod-w.n%mod)%mod])
}

func (w *Writer) write(p []byte) error {
	if w.err != nil {
		return w.err
	}
	n, err := w.w.Write(p)
	w.n += int64(n)
	if err == nil && n != len(p) {
		err = io.ErrShortWrite
	}
	if err != nil {
		return w.fail(fmt.Errorf("cpio: write: %w", err))
	}
	return nil
}

func (w *Writer) fail(err error) error {
	if w.err == nil {
		w.err = err
	}
	return w.err
}

// Content is file data that an archive copies from.
type Content interface {
	io.ReaderAt
	Size() int64
}

// Entry is one file, directory or symlink of an archive.
type Entry struct {
	// Name is a slash-separated relative path ("rootfs/bin/app"): no leading
	// "/" or "./", no trailing "/", no "." or ".." elements.
	Name string
	// Mode is fs.ModeDir, fs.ModeSymlink or 0 (a regular file), plus the
	// permission bits. Set-id and sticky bits are refused.
	Mode fs.FileMode
	// Data is a regular file's content; nil means empty.
	Data Content
	// Linkname is a symlink's target.
	Linkname string
}

// WriteArchive writes entries as one deterministic archive: sorted by name
// (bytewise, so a directory precedes its contents), uid and gid 0, every
// mtime set to mtime. Every parent directory must itself be an entry, or
// the kernel could not create the files below it. Duplicate names are
// refused.
func WriteArchive(w io.Writer, entries []Entry, mtime uint32) error {
	sorted := slices.Clone(entries)
	slices.SortFunc(sorted, func(a, b Entry) int { return cmp.Compare(a.Name, b.Name) })
	kinds := make(map[string]fs.FileMode, len(sorted))
	for i, e := range sorted {
		if err := checkName(e.Name); err != nil {
			return err
		}
		if i > 0 && sorted[i-1].Name == e.Name {
			return fmt.Errorf("cpio: duplicate entry %q", e.Name)
		}
		if j := strings.LastIndexByte(e.Name, '/'); j >= 0 {
			parent := e.Name[:j]
			if kind, ok := kinds[parent]; !ok || kind != fs.ModeDir {
				return fmt.Errorf("cpio: entry %q: parent directory %q is not in the archive", e.Name, parent)
			}
		}
		kinds[e.Name] = e.Mode.Type()
	}
	cw := NewWriter(w)
	for _, e := range sorted {
		if err := writeEntry(cw, e, mtime); err != nil {
			return err
		}
	}
	return cw.Close()
}

func writeEntry(cw *Writer, e Entry, mtime uint32) error {
	if e.Mode&^(fs.ModeType|fs.ModePerm) != 0 {
		return fmt.Errorf("cpio: entry %q: mode %v has bits other than the file type and permissions", e.Name, e.Mode)
	}
	h := &Header{Name: e.Name, Mtime: mtime, Mode: uint32(e.Mode.Perm())}
	switch e.Mode.Type() {
	case 0:
		h.Mode |= TypeReg
		if e.Data != nil {
			h.Size = e.Data.Size()
		}
	case fs.ModeDir:
		h.Mode |= TypeDir
	case fs.ModeSymlink:
		h.Mode |= TypeSymlink
		h.Size = int64(len(e.Linkname))
		if e.Linkname == "" {
			return fmt.Errorf("cpio: symlink %q has no target", e.Name)
		}
	default:
		return fmt.Errorf("cpio: entry %q: file type %v is not supported (want a regular file, directory or symlink)", e.Name, e.Mode.Type())
	}
	if e.Mode.Type() != 0 && e.Data != nil {
		return fmt.Errorf("cpio: entry %q: only regular files have data", e.Name)
	}
	if err := cw.WriteHeader(h); err != nil {
		return err
	}
	switch {
	case e.Mode.Type() == fs.ModeSymlink:
		_, err := io.WriteString(cw, e.Linkname)
		return err
	case e.Data != nil:
		n, err := io.Copy(cw, io.NewSectionReader(e.Data, 0, h.Size))
		if err != nil {
			return err
		}
		if n != h.Size {
			return fmt.Errorf("cpio: entry %q: read %d bytes of its %d", e.Name, n, h.Size)
		}
	}
	return nil
}

func checkName(name string) error {
	if name == "" || strings.HasPrefix(name, "/") || strings.HasSuffix(name, "/") {
		return fmt.Errorf("cpio: entry name %q: want a relative path without leading or trailing \"/\"", name)
	}
	for elem := range strings.SplitSeq(name, "/") {
		if elem == "" || elem == "." || elem == ".." {
			return fmt.Errorf("cpio: entry name %q: empty, \".\" or \"..\" path element", name)
		}
	}
	if name == Trailer {
		return fmt.Errorf("cpio: entry name %q is reserved for the archive trailer", name)
	}
	return nil
}
