package tpm

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// Seed file format, one line: the header, 16 lowercase hex digits (the
// simulator's 64-bit seed), a newline. Nothing else is accepted.
const (
	seedHeader  = "sealsign-tpm-simulator-seed-v1 "
	seedFileLen = len(seedHeader) + 16 + 1
)

// loadOrCreateSeed returns the seed kept in path, creating the file with a
// fresh random seed if it does not exist. Creation is atomic and never
// overwrites: the seed is written to a temporary file in the same
// directory, synced, and linked into place (a rename that fails instead of
// replacing a file another process created meanwhile); the directory is
// synced afterwards. The file must be readable by its owner only.
func loadOrCreateSeed(path string) (int64, error) {
	if path == "" {
		return 0, classErrorf(ErrSeedFile, nil, "no seed file given: pass a path such as /var/lib/sealsign/party-a/tpm-sim.seed")
	}
	seed, err := readSeed(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return seed, err
	}
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return 0, classErrorf(ErrSeedFile, err, "generate seed for %q", path)
	}
	content := []byte(seedHeader + hex.EncodeToString(b[:]) + "\n")
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".tpm-sim-seed-*")
	if err != nil {
		return 0, classErrorf(ErrSeedFile, err, "create seed file %q", path)
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName)
	// CreateTemp makes the file 0600; say so explicitly all the same.
	err = tmp.Chmod(0o600)
	if err == nil {
		_, err = tmp.Write(content)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, classErrorf(ErrSeedFile, err, "write seed file %q", path)
	}
	if err := os.Link(tmpName, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			// Another process created it first; everyone uses that seed.
			return readSeed(path)
		}
		return 0, classErrorf(ErrSeedFile, err, "install seed file %q", path)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return int64(binary.BigEndian.Uint64(b[:])), nil
}

// readSeed reads and strictly parses an existing seed file. Errors wrap
// fs.ErrNotExist when the file is absent.
func readSeed(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return 0, err
		}
		return 0, classErrorf(ErrSeedFile, err, "open seed file %q", path)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, classErrorf(ErrSeedFile, err, "stat seed file %q", path)
	}
	if !fi.Mode().IsRegular() {
		return 0, classErrorf(ErrSeedFile, nil, "seed file %q is not a regular file (mode %v)", path, fi.Mode())
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return 0, classErrorf(ErrSeedFile, nil, "seed file %q has mode %#o, want 0600: it stands for every key of the simulated TPM; chmod 600 it", path, perm)
	}
	buf, err := io.ReadAll(io.LimitReader(f, int64(seedFileLen)+1))
	if err != nil {
		return 0, classErrorf(ErrSeedFile, err, "read seed file %q", path)
	}
	n := len(buf)
	if n != seedFileLen || !bytes.HasPrefix(buf, []byte(seedHeader)) || buf[n-1] != '\n' {
		return 0, classErrorf(ErrSeedFile, nil, "seed file %q is malformed: want one line %q followed by 16 hex digits", path, seedHeader)
	}
	hexSeed := buf[len(seedHeader) : n-1]
	var b [8]byte
	if _, err := hex.Decode(b[:], hexSeed); err != nil || hex.EncodeToString(b[:]) != string(hexSeed) {
		return 0, classErrorf(ErrSeedFile, nil, "seed file %q is malformed: want 16 lowercase hex digits after %q", path, seedHeader)
	}
	return int64(binary.BigEndian.Uint64(b[:])), nil
}
