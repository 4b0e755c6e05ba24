// Package softhsm creates real SoftHSM2 tokens in a directory of their own,
// for tests and for `sealsign dev up`. It runs softhsm2-util and writes a
// softhsm2.conf; it does not load the module (hsm/pkcs11 does).
//
// SoftHSM finds its tokens through the SOFTHSM2_CONF environment variable,
// read by the module when it is initialised. So a process that will open the
// tokens made here must have that variable set before hsm/pkcs11.Open:
//
//	t.Setenv("SOFTHSM2_CONF", env.ConfPath)          // in a test
//	cmd.Env = append(os.Environ(), env.Environ()...) // for a child process
//
// This package never sets it in its own process.
//
// PINs are passed to softhsm2-util as arguments, as its interface requires;
// other local users can see a process's arguments while it runs, so use this
// for development tokens only. PINs never appear in errors.
package softhsm

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// ModulePaths are where distributions install libsofthsm2.so, in the order
// FindModule tries them.
var ModulePaths = []string{
	"/usr/lib/softhsm/libsofthsm2.so",                   // Debian, Ubuntu
	"/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",  // Debian multiarch
	"/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so", // Debian multiarch
	"/usr/lib64/pkcs11/libsofthsm2.so",                  // Fedora, RHEL
	"/usr/lib/pkcs11/libsofthsm2.so",                    // Arch
	"/usr/local/lib/softhsm/libsofthsm2.so",             // source build
	"/opt/homebrew/lib/softhsm/libsofthsm2.so",          // macOS Homebrew
}

// InstallHint is how to get SoftHSM2 on Debian and Ubuntu.
const InstallHint = "apt-get install softhsm2"

// ErrNotInstalled: the SoftHSM2 module or softhsm2-util is missing.
var ErrNotInstalled = errors.New("softhsm: SoftHSM2 not installed (" + InstallHint + ")")

// FindModule returns the path of libsofthsm2.so.
func FindModule() (string, error) {
	for _, p := range ModulePaths {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w: libsofthsm2.so not found in %s", ErrNotInstalled, strings.Join(ModulePaths, ", "))
}

func findUtil() (string, error) {
	p, err := exec.LookPath("softhsm2-util")
	if err != nil {
		return "", fmt.Errorf("%w: softhsm2-util not found in PATH", ErrNotInstalled)
	}
	return p, nil
}

// Env is a SoftHSM2 configuration whose tokens live under one directory.
type Env struct {
	Dir      string // the directory given to Setup
	ConfPath string // Dir/softhsm2.conf
	TokenDir string // Dir/tokens
	Module   string // path of libsofthsm2.so
}

// Setup prepares dir (created if missing) for SoftHSM2 tokens: a tokens
// directory (mode 0700) and a softhsm2.conf (0600) pointing at it. Calling
// it again on the same dir keeps existing tokens. It fails with
// ErrNotInstalled when the module or softhsm2-util is missing.
func Setup(dir string) (*Env, error) {
	module, err := FindModule()
	if err != nil {
		return nil, err
	}
	if _, err := findUtil(); err != nil {
		return nil, err
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("softhsm: %w", err)
	}
	tokens := filepath.Join(dir, "tokens")
	if err := os.MkdirAll(tokens, 0o700); err != nil {
		return nil, fmt.Errorf("softhsm: create token directory: %w", err)
	}
	if err := os.Chmod(tokens, 0o700); err != nil {
		return nil, fmt.Errorf("softhsm: %w", err)
	}
	// The config format has no quoting; a newline in a path would inject
	// directives.
	if strings.ContainsAny(tokens, "\r\n") {
		return nil, fmt.Errorf("softhsm: token directory %q contains a newline", tokens)
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	body := "# written by sealsign (hsm/pkcs11/softhsm)\n" +
		"directories.tokendir = " + tokens + "\n" +
		"objectstore.backend = file\n" +
		"log.level = ERROR\n" +
		"slots.removable = false\n" +
		"slots.mechanisms = ALL\n" +
		"library.reset_on_fork = false\n"
	if err := writeFile(conf, []byte(body)); err != nil {
		return nil, fmt.Errorf("softhsm: write %s: %w", conf, err)
	}
	return &Env{Dir: dir, ConfPath: conf, TokenDir: tokens, Module: module}, nil
}

func writeFile(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Environ returns the environment a process needs to see this Env's tokens:
// append it to exec.Cmd.Env, or t.Setenv each entry in a test.
func (e *Env) Environ() []string { return []string{"SOFTHSM2_CONF=" + e.ConfPath} }

// InitToken initialises a new token labelled label in the first free slot,
// with the given security-officer and user PINs (4 to 255 bytes each, as
// SoftHSM requires). The variable SOFTHSM2_CONF is set for the child only.
func (e *Env) InitToken(label, soPIN, userPIN string) error {
	if label == "" || len(label) > 32 {
		return fmt.Errorf("softhsm: token label %q must be 1 to 32 bytes", label)
	}
	for _, p := range []struct{ name, v string }{{"security-officer PIN", soPIN}, {"user PIN", userPIN}} {
		if len(p.v) < 4 || len(p.v) > 255 {
			return fmt.Errorf("softhsm: %s must be 4 to 255 bytes, got %d", p.name, len(p.v))
		}
	}
	util, err := findUtil()
	if err != nil {
		return err
	}
	cmd := exec.Command(util, "--init-token", "--free", "--label", label, "--so-pin", soPIN, "--pin", userPIN)
	cmd.Env = append(withoutVar(os.Environ(), "SOFTHSM2_CONF"), e.Environ()...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		msg := redact(strings.TrimSpace(out.String()), soPIN, userPIN)
		return fmt.Errorf("softhsm: softhsm2-util --init-token --free --label %q --so-pin <redacted> --pin <redacted> (SOFTHSM2_CONF=%s): %v: %s", label, e.ConfPath, err, msg)
	}
	return nil
}

// URI returns the RFC 7512 URI hsm/pkcs11.Open takes for the token labelled
// label, reading its user PIN from pinFile.
func (e *Env) URI(label, pinFile string) string {
	return "pkcs11:token=" + escape(label, "-._~:[]@!$'()*+,=&") +
		"?module-path=" + escape(e.Module, "-._~:[]@!$'()*+,=/?|") +
		"&pin-source=file:" + escape(pinFile, "-._~:[]@!$'()*+,=/?|")
}

// escape percent-encodes bytes outside allowed and the alphanumerics
// (RFC 7512 pk11-pchar for the path, pk11-qchar for the query).
func escape(s, allowed string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte(allowed, c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func withoutVar(env []string, name string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, name+"=") {
			out = append(out, kv)
		}
	}
	return out
}

// redact removes every secret from s, longest first so that a PIN that
// contains the other is fully hidden.
func redact(s string, secrets ...string) string {
	if len(secrets) == 2 && len(secrets[1]) > len(secrets[0]) {
		secrets[0], secrets[1] = secrets[1], secrets[0]
	}
	for _, p := range secrets {
		if p != "" {
			s = strings.ReplaceAll(s, p, "<redacted>")
		}
	}
	return s
}
