package devnsm_test

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sealsign/sealsign/attestation"
	"github.com/sealsign/sealsign/attestation/devnsm"
)

func TestCAFiles(t *testing.T) {
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "dev-root.pem"), filepath.Join(dir, "dev-root.key")
	ca, err := devnsm.NewCA(rand.Reader, t0)
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.WriteFiles(certPath, keyPath); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %04o, want 0600", fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("directory holds %d entries, want 2 (temporary files left?)", len(entries))
	}
	certPEM, _ := os.ReadFile(certPath)
	if !bytes.Equal(certPEM, ca.CertPEM()) {
		t.Error("certificate file differs from CertPEM")
	}

	loaded, err := devnsm.LoadCA(certPath, keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if !loaded.Cert().Equal(ca.Cert()) {
		t.Error("loaded certificate differs")
	}
	root, err := devnsm.LoadRootCert(certPath)
	if err != nil {
		t.Fatal(err)
	}
	// A document from the reloaded CA verifies under the root file alone
	// (AllowDebug: this NSM is given no PCR0, so it reports zeros).
	n, err := devnsm.New(loaded, "party-b", nil, nil, func() time.Time { return t0 })
	if err != nil {
		t.Fatal(err)
	}
	raw, err := n.Attest(nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := attestation.Verify(raw, attestation.VerifyOptions{Roots: roots(root), Time: t0, AllowDebug: true}); err != nil {
		t.Fatal(err)
	}

	// Overwrite is atomic and keeps modes.
	ca2, _ := devnsm.NewCA(nil, t0)
	if err := ca2.WriteFiles(certPath, keyPath); err != nil {
		t.Fatal(err)
	}
	if l, err := devnsm.LoadCA(certPath, keyPath); err != nil || !l.Cert().Equal(ca2.Cert()) {
		t.Errorf("reload after overwrite: %v", err)
	}

	t.Run("key of another CA", func(t *testing.T) {
		other := filepath.Join(t.TempDir(), "k")
		if err := ca.WriteFiles(filepath.Join(filepath.Dir(other), "c"), other); err != nil {
			t.Fatal(err)
		}
		_, err := devnsm.LoadCA(certPath, other)
		if err == nil || !strings.Contains(err.Error(), "does not belong") {
			t.Errorf("mismatched key: %v", err)
		}
	})
	t.Run("key readable by others", func(t *testing.T) {
		if err := os.Chmod(keyPath, 0o644); err != nil {
			t.Fatal(err)
		}
		defer os.Chmod(keyPath, 0o600)
		_, err := devnsm.LoadCA(certPath, keyPath)
		if err == nil || !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("world-readable key: %v", err)
		}
	})
	t.Run("bad files", func(t *testing.T) {
		junk := filepath.Join(t.TempDir(), "junk")
		os.WriteFile(junk, []byte("not pem"), 0o600)
		for _, tt := range []struct {
			name string
			err  error
		}{
			{"LoadRootCert junk", func() error { _, err := devnsm.LoadRootCert(junk); return err }()},
			{"LoadRootCert missing", func() error { _, err := devnsm.LoadRootCert(junk + ".missing"); return err }()},
			{"LoadCA junk key", func() error { _, err := devnsm.LoadCA(certPath, junk); return err }()},
			{"LoadCA key as cert", func() error { _, err := devnsm.LoadCA(keyPath, keyPath); return err }()},
			{"ParseRootCert leaf-less", func() error { _, err := devnsm.ParseRootCert(nil); return err }()},
		} {
			if tt.err == nil || !strings.HasPrefix(tt.err.Error(), "devnsm: ") {
				t.Errorf("%s: error %v", tt.name, tt.err)
			}
		}
	})
}
