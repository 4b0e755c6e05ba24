package eif

import (
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"

	"github.com/sealsign/sealsign/eif/cpio"
)

// WriteBootstrapRamdisk writes the first ramdisk exactly as nitro-cli's
// linuxkit writes it from the boot blobs (notes §6.1): an uncompressed newc
// archive of dev/ (0755), init (0755) and nsm.ko (0755), mtime
// 2017-04-18T16:30:00Z, uid and gid 0. With AWS's kernel, cmdline, init and
// nsm.ko this reproduces nitro-cli's PCR1.
func WriteBootstrapRamdisk(w io.Writer, init, nsm Content) error {
	return cpio.WriteArchive(w, []cpio.Entry{
		{Name: "dev", Mode: fs.ModeDir | 0o755},
		{Name: "init", Mode: 0o755, Data: init},
		{Name: "nsm.ko", Mode: 0o755, Data: nsm},
	}, cpio.LinuxkitModTime)
}

// App is an application for the second ramdisk. AWS's init (the "init"
// blob; aws-nitro-enclaves-sdk-bootstrap init/init.c) reads /cmd and /env,
// one item a line, deletes them, chroots into /rootfs, mounts /proc, /run,
// /tmp, /sys and /dev there, and execs the command.
type App struct {
	// Path is where the binary lives inside the enclave's root, absolute
	// ("/bin/sealsign-enclave").
	Path string
	// Binary is the executable. It must be static: the ramdisk holds
	// nothing else.
	Binary Content
	// Args is the argv; empty means just Path.
	Args []string
	// Env holds "KEY=value" items; empty means init's default PATH only.
	Env []string
}

// mountpoints are the directories init mounts inside /rootfs.
var mountpoints = []string{"dev", "proc", "run", "sys", "tmp"}

// WriteAppRamdisk writes the application ramdisk for app: cmd and env
// (0644), rootfs/ with init's mount points and the binary's parent
// directories (0755), and the binary (0755). Like the bootstrap ramdisk it
// is a deterministic newc archive (sorted, uid/gid 0, linuxkit's mtime), so
// PCR2 is a function of the binary, its path, Args and Env alone.
func WriteAppRamdisk(w io.Writer, app *App) error {
	if !path.IsAbs(app.Path) || path.Clean(app.Path) != app.Path || app.Path == "/" {
		return fmt.Errorf("eif: app path %q: want a clean absolute path to a file", app.Path)
	}
	if app.Binary == nil {
		return fmt.Errorf("eif: app %s has no binary", app.Path)
	}
	args := app.Args
	if len(args) == 0 {
		args = []string{app.Path}
	}
	for _, line := range append(append([]string{}, args...), app.Env...) {
		if strings.ContainsAny(line, "\n\x00") {
			return fmt.Errorf("eif: app argument or environment item %q contains a newline or NUL, which /cmd and /env cannot hold", line)
		}
	}
	for _, kv := range app.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return fmt.Errorf("eif: app environment item %q: want KEY=value", kv)
		}
	}
	entries := []cpio.Entry{
		{Name: "cmd", Mode: 0o644, Data: strings.NewReader(lines(args))},
		{Name: "env", Mode: 0o644, Data: strings.NewReader(lines(app.Env))},
		{Name: "rootfs", Mode: fs.ModeDir | 0o755},
		{Name: "rootfs" + app.Path, Mode: 0o755, Data: app.Binary},
	}
	dirs := map[string]bool{"rootfs": true}
	for _, m := range mountpoints {
		dirs["rootfs/"+m] = true
	}
	for d := path.Dir("rootfs" + app.Path); d != "rootfs"; d = path.Dir(d) {
		dirs[d] = true
	}
	if dirs["rootfs"+app.Path] {
		return fmt.Errorf("eif: app path %q is one of init's mount points", app.Path)
	}
	for d := range dirs {
		if d != "rootfs" {
			entries = append(entries, cpio.Entry{Name: d, Mode: fs.ModeDir | 0o755})
		}
	}
	return cpio.WriteArchive(w, entries, cpio.LinuxkitModTime)
}

func lines(items []string) string {
	if len(items) == 0 {
		return ""
	}
	return strings.Join(items, "\n") + "\n"
}
