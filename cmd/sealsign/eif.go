package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sealsign/sealsign/eif"
)

func init() {
	commands["eif"] = eifMain
}

const eifUsage = `sealsign eif — build, inspect and measure AWS Nitro Enclave image files

Usage:
  sealsign eif describe FILE [--json]
  sealsign eif pcrs FILE [--json]
  sealsign eif build --kernel F --cmdline STR --ramdisk F [--ramdisk F…] -o OUT
                     [--kernel-config F] [--arch x86_64|aarch64] [--name N] [--version V]
                     [--build-time T] [--sign-key KEY --sign-cert CERT] [--json]
  sealsign eif sign FILE --sign-key KEY --sign-cert CERT [-o OUT] [--json]
  sealsign eif build-enclave [--blobs DIR] [--enclave-binary PATH] [-o OUT]
                     [--version V] [--build-time T] [--sign-key KEY --sign-cert CERT] [--json]

describe      print what nitro-cli describe-eif prints (same field names with --json)
pcrs          print PCR0, PCR1, PCR2 (and PCR8 if signed)
build         write a version 4 image in nitro-cli's section order
sign          add or replace the signature section (ECDSA P-256/P-384/P-521 key + PEM certificate)
build-enclave build the sealsign enclave image from AWS's boot blobs and print its PCRs

--blobs defaults to $NITRO_BLOBS, then ` + eif.DefaultBlobsDir + `; it must hold
bzImage, bzImage.config, cmdline, init and nsm.ko (aws-nitro-enclaves-cli-devel
package, or blobs/x86_64 of github.com/aws/aws-nitro-enclaves-cli).
--enclave-binary defaults to bin/sealsign-enclave and must be static (CGO_ENABLED=0).
--build-time (RFC 3339) defaults to $SOURCE_DATE_EPOCH, then 1970-01-01T00:00:00+00:00,
so two builds of the same inputs are byte-identical. It is not measured.

Examples:
  sealsign eif describe bin/sealsign.eif --json
  sealsign eif pcrs bin/sealsign.eif
  sealsign eif build --kernel bzImage --cmdline "console=ttyS0" --ramdisk boot.cpio --ramdisk app.cpio -o app.eif
  sealsign eif sign app.eif --sign-key key.pem --sign-cert cert.pem -o app-signed.eif
  NITRO_BLOBS=./blobs/x86_64 sealsign eif build-enclave -o bin/sealsign.eif

Exit codes: 0 ok, 1 failed, 2 usage.
`

// eifNow is the clock describe checks certificate validity against.
var eifNow = time.Now

func eifMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, eifUsage)
		return 2
	}
	verbs := map[string]func([]string, io.Writer, io.Writer) int{
		"describe":      eifDescribe,
		"pcrs":          eifPCRs,
		"build":         eifBuild,
		"sign":          eifSign,
		"build-enclave": eifBuildEnclave,
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprint(stdout, eifUsage)
		return 0
	}
	verb, ok := verbs[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "sealsign: eif: unknown verb %q\n\n%s", args[0], eifUsage)
		return 2
	}
	return verb(args[1:], stdout, stderr)
}

// usageError marks a command-line mistake (exit 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

// finish prints err the sealsign way and returns the exit code.
func finish(err error, stdout, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, eifUsage)
		return 0
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "sealsign: eif: %s\nRun \"sealsign eif -h\" for usage.\n", ue.msg)
		return 2
	}
	fmt.Fprintf(stderr, "sealsign: %v\n", err)
	return 1
}

// parseFlags parses flags that may come before or after the positional
// arguments ("describe FILE --json" and "describe --json FILE").
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(io.Discard)
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usagef("%v", err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return positional, nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}

func eifDescribe(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("describe", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print nitro-cli's JSON")
	return finish(func() error {
		pos, err := parseFlags(fs, args)
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return usagef("describe takes one FILE, got %d arguments", len(pos))
		}
		img, err := eif.ReadFile(pos[0])
		if err != nil {
			return err
		}
		d := eif.Describe(img, eifNow())
		if *asJSON {
			out, err := eif.MarshalIndent(d)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%s\n", out)
			return nil
		}
		printDescription(stdout, d)
		return nil
	}(), stdout, stderr)
}

func printDescription(w io.Writer, d *eif.Description) {
	fmt.Fprintf(w, "EifVersion: %d\n", d.EifVersion)
	fmt.Fprintf(w, "Arch: %v\n", d.Arch)
	printMeasurements(w, d.Measurements, true)
	fmt.Fprintf(w, "IsSigned: %v\n", d.IsSigned)
	if c := d.SigningCertificate; c != nil {
		fmt.Fprintf(w, "SigningCertificate:\n  IssuerName:\n")
		keys := make([]string, 0, len(c.IssuerName))
		for k := range c.IssuerName {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			fmt.Fprintf(w, "    %s: %s\n", k, c.IssuerName[k])
		}
		fmt.Fprintf(w, "  Algorithm: %s\n  NotBefore: %s\n  NotAfter: %s\n  Signature: %s\n", c.Algorithm, c.NotBefore, c.NotAfter, c.Signature)
	}
	fmt.Fprintf(w, "CheckCRC: %v\n", d.CheckCRC)
	if d.IsSigned {
		if d.SignatureCheck {
			fmt.Fprintf(w, "SignatureCheck: true\n")
		} else {
			fmt.Fprintf(w, "SignatureCheck: false (%s)\n", d.SignatureError)
		}
	}
	if md := d.Metadata; md != nil {
		fmt.Fprintf(w, "ImageName: %s\nImageVersion: %s\nMetadata:\n", md.ImageName, md.ImageVersion)
		fmt.Fprintf(w, "  BuildTime: %s\n  BuildTool: %s\n  BuildToolVersion: %s\n  OperatingSystem: %s\n  KernelVersion: %s\n",
			md.BuildTime, md.BuildTool, md.BuildToolVersion, md.OperatingSystem, md.KernelVersion)
		if md.DockerInfo != nil {
			fmt.Fprintf(w, "  DockerInfo: %s\n", oneLine(md.DockerInfo))
		}
		if md.CustomMetadata != nil {
			fmt.Fprintf(w, "  CustomMetadata: %s\n", oneLine(md.CustomMetadata))
		}
	}
	fmt.Fprintf(w, "Sections:\n")
	for _, s := range d.Sections {
		fmt.Fprintf(w, "  %2d %-9v offset %-10d size %d\n", s.Index, s.Type, s.Offset, s.Size)
	}
}

func oneLine(b []byte) string {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return string(b)
	}
	return buf.String()
}

func printMeasurements(w io.Writer, m eif.Measurements, withAlgorithm bool) {
	fmt.Fprintf(w, "Measurements:\n")
	if withAlgorithm {
		fmt.Fprintf(w, "  HashAlgorithm: %s\n", eif.HashAlgorithm)
	}
	fmt.Fprintf(w, "  PCR0: %s\n  PCR1: %s\n  PCR2: %s\n", m.PCR0, m.PCR1, m.PCR2)
	if m.PCR8 != nil {
		fmt.Fprintf(w, "  PCR8: %s\n", m.PCR8)
	}
}

// printPCRs prints measurements as text or as nitro-cli's
// {"Measurements": …}.
func printPCRs(w io.Writer, m eif.Measurements, asJSON bool) error {
	if asJSON {
		out, err := eif.MeasurementsJSON(m)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "%s\n", out)
		return nil
	}
	fmt.Fprintf(w, "PCR0 %s\nPCR1 %s\nPCR2 %s\n", m.PCR0, m.PCR1, m.PCR2)
	if m.PCR8 != nil {
		fmt.Fprintf(w, "PCR8 %s\n", m.PCR8)
	}
	return nil
}

func eifPCRs(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("pcrs", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, `print {"Measurements": …} as nitro-cli does`)
	return finish(func() error {
		pos, err := parseFlags(fs, args)
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return usagef("pcrs takes one FILE, got %d arguments", len(pos))
		}
		img, err := eif.ReadFile(pos[0])
		if err != nil {
			return err
		}
		return printPCRs(stdout, img.Measurements, *asJSON)
	}(), stdout, stderr)
}

// listFlag collects a repeatable flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// signFlags are --sign-key and --sign-cert.
type signFlags struct{ key, cert *string }

func addSignFlags(fs *flag.FlagSet) signFlags {
	return signFlags{
		key:  fs.String("sign-key", "", "PEM ECDSA private key (P-256, P-384 or P-521)"),
		cert: fs.String("sign-cert", "", "PEM certificate of the key; its DER gives PCR8"),
	}
}

// signer returns nil when neither flag is set.
func (s signFlags) signer(required bool) (*eif.Signer, error) {
	if *s.key == "" && *s.cert == "" {
		if required {
			return nil, usagef("--sign-key and --sign-cert are required")
		}
		return nil, nil
	}
	if *s.key == "" || *s.cert == "" {
		return nil, usagef("--sign-key and --sign-cert go together")
	}
	key, err := os.ReadFile(*s.key)
	if err != nil {
		return nil, err
	}
	cert, err := os.ReadFile(*s.cert)
	if err != nil {
		return nil, err
	}
	return eif.ParseSigner(key, cert)
}

// buildTime returns --build-time, else $SOURCE_DATE_EPOCH, else the epoch.
func buildTime(flagValue string) (string, error) {
	if flagValue != "" {
		if _, err := time.Parse(time.RFC3339Nano, flagValue); err != nil {
			return "", usagef("--build-time %q is not an RFC 3339 time (e.g. 2025-01-02T03:04:05+00:00)", flagValue)
		}
		return flagValue, nil
	}
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return "", usagef("SOURCE_DATE_EPOCH %q is not a number of seconds", s)
		}
		return eif.FormatBuildTime(time.Unix(n, 0)), nil
	}
	return eif.EpochBuildTime, nil
}

// toolVersion is sealsign's module version, "(devel)" for a source build.
func toolVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

// writeAtomically writes name (mode 0644) through a temporary file in the
// same directory: written, synced, renamed over name, and the directory
// synced, so a crash or a failed write leaves the old file or the new one,
// never a torn one (an image can be signed in place; a policy file signed
// again).
func writeAtomically(name string, write func(io.Writer) error) error {
	dir := filepath.Dir(name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(name)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := write(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), name); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

func openContent(name string) (eif.Content, func(), error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, nil, err
	}
	c, err := eif.FileContent(f)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return c, func() { f.Close() }, nil
}

func eifBuild(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("build", flag.ContinueOnError)
	kernel := fs.String("kernel", "", "kernel image (bzImage or arm64 Image)")
	kernelConfig := fs.String("kernel-config", "", "kernel .config, for the metadata's OperatingSystem and KernelVersion")
	cmdline := fs.String("cmdline", "", "kernel command line, written verbatim")
	var ramdisks listFlag
	fs.Var(&ramdisks, "ramdisk", "ramdisk file, in order (repeat)")
	arch := fs.String("arch", "x86_64", "x86_64 or aarch64")
	name := fs.String("name", "", "metadata ImageName (default: the kernel file name)")
	version := fs.String("version", "1.0", "metadata ImageVersion")
	bt := fs.String("build-time", "", "metadata BuildTime, RFC 3339")
	out := fs.String("o", "", "output file")
	asJSON := fs.Bool("json", false, `print {"Measurements": …}`)
	sf := addSignFlags(fs)
	return finish(func() error {
		pos, err := parseFlags(fs, args)
		if err != nil {
			return err
		}
		switch {
		case len(pos) != 0:
			return usagef("build takes no arguments, got %q", pos)
		case *kernel == "":
			return usagef("--kernel is required")
		case len(ramdisks) == 0:
			return usagef("at least one --ramdisk is required")
		case *out == "":
			return usagef("-o is required")
		}
		a, err := eif.ParseArch(*arch)
		if err != nil {
			return usagef("--arch: %v", err)
		}
		when, err := buildTime(*bt)
		if err != nil {
			return err
		}
		signer, err := sf.signer(false)
		if err != nil {
			return err
		}
		md := eif.Metadata{ImageName: *name, ImageVersion: *version, BuildTime: when, BuildTool: "sealsign", BuildToolVersion: toolVersion(), OperatingSystem: "Linux", KernelVersion: "unknown"}
		if md.ImageName == "" {
			md.ImageName = filepath.Base(*kernel)
		}
		if *kernelConfig != "" {
			f, err := os.Open(*kernelConfig)
			if err != nil {
				return err
			}
			md.OperatingSystem, md.KernelVersion, err = eif.ParseKernelConfig(f)
			f.Close()
			if err != nil {
				return err
			}
		}
		spec := &eif.Spec{Arch: a, Cmdline: *cmdline, Metadata: md, Signer: signer}
		var closers []func()
		defer func() {
			for _, c := range closers {
				c()
			}
		}()
		for i, p := range append([]string{*kernel}, ramdisks...) {
			c, closeFn, err := openContent(p)
			if err != nil {
				return err
			}
			closers = append(closers, closeFn)
			if i == 0 {
				spec.Kernel = c
			} else {
				spec.Ramdisks = append(spec.Ramdisks, c)
			}
		}
		var img *eif.Image
		err = writeAtomically(*out, func(w io.Writer) error {
			img, err = eif.Build(w, spec)
			return err
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "wrote %s\n", *out)
		return printPCRs(stdout, img.Measurements, *asJSON)
	}(), stdout, stderr)
}

func eifSign(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sign", flag.ContinueOnError)
	out := fs.String("o", "", "output file (default: sign FILE in place)")
	asJSON := fs.Bool("json", false, `print {"Measurements": …}`)
	sf := addSignFlags(fs)
	return finish(func() error {
		pos, err := parseFlags(fs, args)
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return usagef("sign takes one FILE, got %d arguments", len(pos))
		}
		signer, err := sf.signer(true)
		if err != nil {
			return err
		}
		dst := *out
		if dst == "" {
			dst = pos[0]
		}
		src, closeSrc, err := openContent(pos[0])
		if err != nil {
			return err
		}
		defer closeSrc()
		var img *eif.Image
		err = writeAtomically(dst, func(w io.Writer) error {
			img, err = eif.Sign(w, src, signer)
			return err
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "wrote %s\n", dst)
		return printPCRs(stdout, img.Measurements, *asJSON)
	}(), stdout, stderr)
}

// enclaveBinaryPath is where sealsign-enclave runs inside the enclave.
const enclaveBinaryPath = "/bin/sealsign-enclave"

func eifBuildEnclave(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("build-enclave", flag.ContinueOnError)
	defaultBlobs := os.Getenv("NITRO_BLOBS")
	if defaultBlobs == "" {
		defaultBlobs = eif.DefaultBlobsDir
	}
	blobsDir := fs.String("blobs", defaultBlobs, "directory of AWS's boot blobs")
	binary := fs.String("enclave-binary", "bin/sealsign-enclave", "static sealsign-enclave binary")
	out := fs.String("o", "bin/sealsign.eif", "output file")
	version := fs.String("version", toolVersion(), "metadata ImageVersion")
	bt := fs.String("build-time", "", "metadata BuildTime, RFC 3339")
	asJSON := fs.Bool("json", false, `print {"Measurements": …}`)
	sf := addSignFlags(fs)
	return finish(func() error {
		pos, err := parseFlags(fs, args)
		if err != nil {
			return err
		}
		if len(pos) != 0 {
			return usagef("build-enclave takes no arguments, got %q", pos)
		}
		when, err := buildTime(*bt)
		if err != nil {
			return err
		}
		signer, err := sf.signer(false)
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "reading boot blobs from %s\n", *blobsDir)
		blobs, err := eif.FindBlobs(*blobsDir)
		if err != nil {
			return err
		}
		bin, closeBin, err := openContent(*binary)
		if err != nil {
			return fmt.Errorf("%w (build it with: CGO_ENABLED=0 go build -trimpath -o %s ./cmd/sealsign-enclave)", err, *binary)
		}
		defer closeBin()
		fmt.Fprintf(stderr, "building the bootstrap ramdisk (init, nsm.ko) and the application ramdisk (%s, %d bytes)\n", *binary, bin.Size())
		spec, err := blobs.Spec(&eif.App{Path: enclaveBinaryPath, Binary: bin}, eif.Metadata{
			ImageName: "sealsign-enclave", ImageVersion: *version, BuildTime: when,
			BuildTool: "sealsign", BuildToolVersion: toolVersion(),
		})
		if err != nil {
			return err
		}
		spec.Signer = signer
		fmt.Fprintf(stderr, "measuring and writing %s\n", *out)
		var img *eif.Image
		err = writeAtomically(*out, func(w io.Writer) error {
			img, err = eif.Build(w, spec)
			return err
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "wrote %s (%v, %d bytes)\n", *out, blobs.Arch, img.Header.ImageSize())
		return printPCRs(stdout, img.Measurements, *asJSON)
	}(), stdout, stderr)
}
