package eif

import (
	"bytes"
	"strings"
	"testing"
)

// TestBootstrapRamdiskLayout: the bootstrap ramdisk equals the archive
// written by hand from the notes' description of linuxkit's output, and
// for the real blobs' sizes has the size the notes derived (764416).
func TestBootstrapRamdiskLayout(t *testing.T) {
	init := bytes.Repeat([]byte("i"), 742968)
	nsm := bytes.Repeat([]byte("n"), 20504)
	var buf bytes.Buffer
	if err := WriteBootstrapRamdisk(&buf, bytes.NewReader(init), bytes.NewReader(nsm)); err != nil {
		t.Fatal(err)
	}
	want := handNewc(1492533000, []handEntry{{"dev", 0o40755, nil}, {"init", 0o100755, init}, {"nsm.ko", 0o100755, nsm}})
	if !bytes.Equal(buf.Bytes(), want) {
		t.Fatal("bootstrap ramdisk differs from the hand-built linuxkit layout")
	}
	if buf.Len() != 764416 {
		t.Fatalf("bootstrap ramdisk is %d bytes, want 764416", buf.Len())
	}
}

func TestAppRamdisk(t *testing.T) {
	bin := []byte("\x7fELF binary")
	var buf bytes.Buffer
	err := WriteAppRamdisk(&buf, &App{
		Path:   "/usr/bin/sealsign-enclave",
		Binary: bytes.NewReader(bin),
		Args:   []string{"/usr/bin/sealsign-enclave", "--vsock-port", "5000"},
		Env:    []string{"PATH=/usr/bin", "SEALSIGN_MODE=nitro"},
	})
	if err != nil {
		t.Fatal(err)
	}
	names, entries := listNewc(t, buf.Bytes())
	wantNames := "cmd env rootfs rootfs/dev rootfs/proc rootfs/run rootfs/sys rootfs/tmp rootfs/usr rootfs/usr/bin rootfs/usr/bin/sealsign-enclave"
	if got := strings.Join(names, " "); got != wantNames {
		t.Fatalf("entries\n %s\nwant %s", got, wantNames)
	}
	for name, want := range map[string]handEntry{
		"cmd":                             {mode: 0o100644, data: []byte("/usr/bin/sealsign-enclave\n--vsock-port\n5000\n")},
		"env":                             {mode: 0o100644, data: []byte("PATH=/usr/bin\nSEALSIGN_MODE=nitro\n")},
		"rootfs/usr/bin":                  {mode: 0o40755},
		"rootfs/usr/bin/sealsign-enclave": {mode: 0o100755, data: bin},
	} {
		if got := entries[name]; got.mode != want.mode || !bytes.Equal(got.data, want.data) {
			t.Errorf("%s: mode %o data %q, want %o %q", name, got.mode, got.data, want.mode, want.data)
		}
	}
	// Same input, same bytes (map iteration must not leak into the order).
	var again bytes.Buffer
	WriteAppRamdisk(&again, &App{Path: "/usr/bin/sealsign-enclave", Binary: bytes.NewReader(bin),
		Args: []string{"/usr/bin/sealsign-enclave", "--vsock-port", "5000"}, Env: []string{"PATH=/usr/bin", "SEALSIGN_MODE=nitro"}})
	if !bytes.Equal(buf.Bytes(), again.Bytes()) {
		t.Fatal("two app ramdisks of one input differ")
	}
	// Defaults: argv is the path, env is empty.
	buf.Reset()
	if err := WriteAppRamdisk(&buf, &App{Path: "/app", Binary: bytes.NewReader(bin)}); err != nil {
		t.Fatal(err)
	}
	_, entries = listNewc(t, buf.Bytes())
	if string(entries["cmd"].data) != "/app\n" || len(entries["env"].data) != 0 {
		t.Fatalf("defaults: cmd %q env %q", entries["cmd"].data, entries["env"].data)
	}
}

func TestAppRamdiskRejects(t *testing.T) {
	bin := bytes.NewReader([]byte("x"))
	for _, tc := range []struct {
		app  App
		want string
	}{
		{App{Path: "app", Binary: bin}, `app path "app": want a clean absolute path`},
		{App{Path: "/a/../b", Binary: bin}, "want a clean absolute path"},
		{App{Path: "/", Binary: bin}, "want a clean absolute path"},
		{App{Path: "/proc", Binary: bin}, "is one of init's mount points"},
		{App{Path: "/app"}, "has no binary"},
		{App{Path: "/app", Binary: bin, Args: []string{"a\nb"}}, "contains a newline or NUL"},
		{App{Path: "/app", Binary: bin, Env: []string{"NOEQUALS"}}, `environment item "NOEQUALS": want KEY=value`},
	} {
		wantErr(t, WriteAppRamdisk(&bytes.Buffer{}, &tc.app), tc.want)
	}
}
