package eif

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// DefaultBlobsDir is where the aws-nitro-enclaves-cli(-devel) package
// installs the boot blobs.
const DefaultBlobsDir = "/usr/share/nitro_enclaves/blobs"

// BlobsHint says where the boot blobs come from.
const BlobsHint = "get them from the aws-nitro-enclaves-cli-devel package (it installs them to " + DefaultBlobsDir + ") " +
	"or from blobs/x86_64 (blobs/aarch64 for Graviton) in github.com/aws/aws-nitro-enclaves-cli, " +
	"and point NITRO_BLOBS or --blobs at that directory"

// ErrNoBlobs is wrapped by FindBlobs when the directory lacks a blob.
var ErrNoBlobs = errors.New("eif: boot blobs not found")

// Blobs are AWS's Nitro Enclaves boot blobs: the kernel, its config, the
// kernel command line, init and the NSM driver (CLI blobs/<arch>).
type Blobs struct {
	Dir          string
	Arch         Arch
	Kernel       string // bzImage (x86_64) or Image (aarch64)
	KernelConfig string
	Cmdline      string
	Init         string
	NSM          string
}

// FindBlobs locates the blobs in dir. The architecture follows the kernel
// file: bzImage is x86_64, Image is aarch64.
func FindBlobs(dir string) (*Blobs, error) {
	b := &Blobs{Dir: dir}
	kernel := "bzImage"
	if !isFile(filepath.Join(dir, kernel)) && isFile(filepath.Join(dir, "Image")) {
		kernel, b.Arch = "Image", ArchAarch64
	}
	b.Kernel = filepath.Join(dir, kernel)
	b.KernelConfig = filepath.Join(dir, kernel+".config")
	b.Cmdline = filepath.Join(dir, "cmdline")
	b.Init = filepath.Join(dir, "init")
	b.NSM = filepath.Join(dir, "nsm.ko")
	var missing []string
	for _, p := range []string{b.Kernel, b.KernelConfig, b.Cmdline, b.Init, b.NSM} {
		if !isFile(p) {
			missing = append(missing, filepath.Base(p))
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%w in %s: missing %s; %s", ErrNoBlobs, dir, strings.Join(missing, ", "), BlobsHint)
	}
	return b, nil
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// Spec reads the blobs and returns the Spec of an enclave image running
// app: AWS's kernel and trimmed cmdline (as nitro-cli trims it), the
// bootstrap ramdisk rebuilt byte-exactly, and app's ramdisk. md's
// OperatingSystem and KernelVersion are filled from the kernel config as
// nitro-cli does. The binary must be a static ELF for the blobs'
// architecture.
func (b *Blobs) Spec(app *App, md Metadata) (*Spec, error) {
	read := func(p string) ([]byte, error) {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("eif: boot blob: %w", err)
		}
		return data, nil
	}
	kernel, err := read(b.Kernel)
	if err != nil {
		return nil, err
	}
	cmdline, err := read(b.Cmdline)
	if err != nil {
		return nil, err
	}
	config, err := read(b.KernelConfig)
	if err != nil {
		return nil, err
	}
	init, err := read(b.Init)
	if err != nil {
		return nil, err
	}
	nsm, err := read(b.NSM)
	if err != nil {
		return nil, err
	}
	md.OperatingSystem, md.KernelVersion, err = ParseKernelConfig(bytes.NewReader(config))
	if err != nil {
		return nil, err
	}
	if err := CheckEnclaveBinary(app.Binary, b.Arch); err != nil {
		return nil, err
	}
	var boot, appRD bytes.Buffer
	if err := WriteBootstrapRamdisk(&boot, bytes.NewReader(init), bytes.NewReader(nsm)); err != nil {
		return nil, err
	}
	if err := WriteAppRamdisk(&appRD, app); err != nil {
		return nil, err
	}
	return &Spec{
		Arch:     b.Arch,
		Kernel:   bytes.NewReader(kernel),
		Cmdline:  strings.TrimSpace(string(cmdline)), // Rust's str::trim, as nitro-cli does
		Ramdisks: []Content{bytes.NewReader(boot.Bytes()), bytes.NewReader(appRD.Bytes())},
		Metadata: md,
	}, nil
}

// CheckEnclaveBinary checks that bin is an ELF executable for arch with no
// program interpreter: the enclave has no dynamic loader or libc, so a
// dynamically linked binary would fail to start, long after the build.
func CheckEnclaveBinary(bin Content, arch Arch) error {
	f, err := elf.NewFile(bin)
	if err != nil {
		return fmt.Errorf("eif: enclave binary is not an ELF file: %w", err)
	}
	defer f.Close()
	want := elf.EM_X86_64
	if arch == ArchAarch64 {
		want = elf.EM_AARCH64
	}
	if f.Machine != want {
		return fmt.Errorf("eif: enclave binary is for %v, want %v to match the %v boot blobs (set GOARCH)", f.Machine, want, arch)
	}
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return fmt.Errorf("eif: enclave binary is an ELF %v, want an executable", f.Type)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return errors.New("eif: enclave binary is dynamically linked (it has a PT_INTERP program header), but the enclave has no dynamic loader: build it with CGO_ENABLED=0")
		}
	}
	return nil
}
