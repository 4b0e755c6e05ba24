package softhsm

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sealsign/sealsign/hsm/pkcs11"
)

// These tests need SoftHSM2 installed; without it they fail with the install
// hint rather than skip.

func setup(t *testing.T) *Env {
	t.Helper()
	env, err := Setup(filepath.Join(t.TempDir(), "softhsm"))
	if err != nil {
		t.Fatalf("%v\nthese tests need SoftHSM2: %s", err, InstallHint)
	}
	return env
}

func TestSetup(t *testing.T) {
	env := setup(t)
	fi, err := os.Stat(env.TokenDir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("token dir: %v, mode %v; want 0700", err, fi.Mode().Perm())
	}
	conf, err := os.ReadFile(env.ConfPath)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(conf), "directories.tokendir = "+env.TokenDir+"\n") {
		t.Fatalf("conf does not point at %s:\n%s", env.TokenDir, conf)
	}
	if fi, _ := os.Stat(env.ConfPath); fi.Mode().Perm() != 0o600 {
		t.Fatalf("conf mode %v, want 0600", fi.Mode().Perm())
	}
	if _, err := os.Stat(env.Module); err != nil {
		t.Fatalf("module: %v", err)
	}
	if got := env.Environ(); len(got) != 1 || got[0] != "SOFTHSM2_CONF="+env.ConfPath {
		t.Fatalf("Environ() = %q", got)
	}

	// Tokens survive a second Setup of the same directory.
	if err := env.InitToken("keep-me", "so-pin-1", "user-pin-1"); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadDir(env.TokenDir)
	if _, err := Setup(env.Dir); err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadDir(env.TokenDir)
	if len(before) != 1 || len(after) != 1 {
		t.Fatalf("token directories before/after second Setup: %d/%d, want 1/1", len(before), len(after))
	}
}

func TestInitTokenLeavesProcessEnvAlone(t *testing.T) {
	env := setup(t)
	t.Setenv("SOFTHSM2_CONF", "/nonexistent/softhsm2.conf")
	if err := env.InitToken("party-a", "so-pin-1", "user-pin-1"); err != nil {
		t.Fatalf("InitToken used the process SOFTHSM2_CONF instead of its own: %v", err)
	}
	if got := os.Getenv("SOFTHSM2_CONF"); got != "/nonexistent/softhsm2.conf" {
		t.Fatalf("process SOFTHSM2_CONF changed to %q", got)
	}
}

func TestInitTokenErrors(t *testing.T) {
	const soPIN, userPIN = "so-secret-9876", "user-secret-5432"
	env := setup(t)
	broken := *env
	broken.ConfPath = filepath.Join(t.TempDir(), "missing.conf")
	for _, tc := range []struct {
		name            string
		env             *Env
		label, so, user string
		want            string
	}{
		{"label too long", env, strings.Repeat("x", 33), soPIN, userPIN, "token label"},
		{"empty label", env, "", soPIN, userPIN, "must be 1 to 32 bytes"},
		{"short SO PIN", env, "a", "123", userPIN, "security-officer PIN must be 4 to 255 bytes, got 3"},
		{"short user PIN", env, "a", soPIN, "1", "user PIN must be 4 to 255 bytes, got 1"},
		{"softhsm2-util fails", &broken, "a", soPIN, userPIN, "softhsm: softhsm2-util --init-token --free --label \"a\" --so-pin <redacted> --pin <redacted>"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.env.InitToken(tc.label, tc.so, tc.user)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want error containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), soPIN) || strings.Contains(err.Error(), userPIN) {
				t.Fatalf("error contains a PIN: %v", err)
			}
		})
	}
}

func TestRedact(t *testing.T) {
	got := redact("bad pin abcd1234 and abcd", "abcd", "abcd1234")
	if strings.Contains(got, "abcd") {
		t.Fatalf("redact left a PIN: %q", got)
	}
}

func TestNotInstalled(t *testing.T) {
	saved := ModulePaths
	t.Cleanup(func() { ModulePaths = saved })
	ModulePaths = []string{filepath.Join(t.TempDir(), "libsofthsm2.so")}
	for name, f := range map[string]func() error{
		"FindModule": func() error { _, err := FindModule(); return err },
		"Setup":      func() error { _, err := Setup(t.TempDir()); return err },
	} {
		err := f()
		if !errors.Is(err, ErrNotInstalled) || !strings.Contains(err.Error(), "apt-get install softhsm2") {
			t.Errorf("%s: got %v, want ErrNotInstalled with the install hint", name, err)
		}
	}
}

func TestURI(t *testing.T) {
	env := &Env{Module: "/usr/lib/softhsm/libsofthsm2.so"}
	for _, tc := range []struct {
		name, label, pinFile, want string
	}{
		{"plain", "party-a", "/run/a.pin", "pkcs11:token=party-a?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/a.pin"},
		{"escaped", "party a;b/c", "/tmp/my pins/a&b.pin", "pkcs11:token=party%20a%3Bb%2Fc?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/tmp/my%20pins/a%26b.pin"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := env.URI(tc.label, tc.pinFile)
			if got != tc.want {
				t.Fatalf("got %s\nwant %s", got, tc.want)
			}
			u, err := pkcs11.ParseURI(got)
			if err != nil {
				t.Fatal(err)
			}
			if u.Token != tc.label || u.PINSource != tc.pinFile || u.ModulePath != env.Module {
				t.Fatalf("parsed back to %+v", u)
			}
		})
	}
}
