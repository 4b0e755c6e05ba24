package e2e

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sealsign/sealsign/enclave/api"
	"github.com/sealsign/sealsign/host/devcluster"
	"github.com/sealsign/sealsign/hsm/pkcs11/softhsm"
)

// TestBackupRecover is the backup acceptance story on real processes:
// keygen; every party backs up through the CLI; party c loses its HSM
// token and its host's store; it is restarted on a new, empty token and
// restored from its backup with sealsign recover; {a, c} sign; and
// break-glass rebuilds a private key matching the public key.
func TestBackupRecover(t *testing.T) {
	dir := shortDir(t)
	c := up(t, dir)
	ctx := context.Background()
	bin := filepath.Join(binDir(t), "sealsign")
	sealsign := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(bin, append(args, "--dir", dir)...).CombinedOutput()
		if err != nil {
			t.Fatalf("sealsign %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	key, err := c.CreateKey(ctx, api.AlgEdDSAEd25519)
	if err != nil {
		t.Fatal(err)
	}
	backups := filepath.Join(dir, "backups")
	sealsign("backup", "create", "--key", key.ID, "--out-dir", backups)
	for _, p := range []string{"a", "b", "c"} {
		out := sealsign("backup", "verify", filepath.Join(backups, p+".backup"), "--json")
		if !strings.Contains(out, `"valid": true`) || !strings.Contains(out, `"party": "`+p+`"`) {
			t.Fatalf("backup verify %s: %s", p, out)
		}
	}

	// Party c loses its token and its host's store.
	ps, _ := c.Party("c")
	if err := c.Stop("c"); err != nil {
		t.Fatal(err)
	}
	hsmDir := filepath.Dir(ps.SoftHSM)
	if err := os.RemoveAll(filepath.Join(hsmDir, "tokens")); err != nil {
		t.Fatal(err)
	}
	os.Remove(ps.Store)
	env, err := softhsm.Setup(hsmDir)
	if err != nil {
		t.Fatal(err)
	}
	pin, err := os.ReadFile(filepath.Join(hsmDir, "user.pin"))
	if err != nil {
		t.Fatal(err)
	}
	if err := env.InitToken(ps.TokenLbl, "87654321", strings.TrimSpace(string(pin))); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := c.Restart(rctx, "c", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client("c").Key(ctx, key.ID); err == nil {
		t.Fatal("party c knows the key after losing its token and store")
	}
	if _, err := signRaw(t, c, c.Client("a"), key.ID, []byte("before recovery"), "a", "c"); err == nil {
		t.Fatal("{a, c} signed before c was recovered")
	}

	// A backup opens only with every recipient's recovery key: one of the
	// two dev keys is refused, naming the one missing.
	rk1, rk2 := devcluster.RecoveryKeyPath(dir, "recovery-1"), devcluster.RecoveryKeyPath(dir, "recovery-2")
	one := exec.Command(bin, "recover", "--dir", dir, "--backup", filepath.Join(backups, "c.backup"), "--recovery-key", rk1)
	if b, err := one.CombinedOutput(); err == nil || !strings.Contains(string(b), "missing recovery-2") {
		t.Fatalf("recover with one of two recovery keys: %v\n%s", err, b)
	}
	out := sealsign("recover", "--backup", filepath.Join(backups, "c.backup"), "--recovery-key", rk1, "--recovery-key", rk2)
	if !strings.Contains(out, "party c holds its share of key "+key.ID) {
		t.Fatalf("recover: %s", out)
	}
	msg := []byte("after recovery")
	r, err := signRaw(t, c, c.Client("a"), key.ID, msg, "a", "c")
	if err != nil {
		t.Fatal(err)
	}
	if err := devcluster.VerifyEd25519(key.PublicKey, msg, r.Signatures[0]); err != nil {
		t.Fatal(err)
	}

	keyFile := filepath.Join(dir, "break-glass.json")
	sealsign("recover", "--break-glass", "--i-understand-this-reconstructs-the-private-key",
		"--backup", filepath.Join(backups, "a.backup"), "--backup", filepath.Join(backups, "b.backup"),
		"--recovery-key", rk2, "--recovery-key", rk1, "--out", keyFile)
	b, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		PublicKey  string `json:"public_key"`
		PrivateKey string `json:"private_key"`
	}
	if err := json.Unmarshal(b, &k); err != nil || k.PublicKey != key.PublicKey || len(k.PrivateKey) != 64 {
		t.Fatalf("break-glass key file: public key %s (want %s), %v", k.PublicKey, key.PublicKey, err)
	}
	if _, err := hex.DecodeString(k.PrivateKey); err != nil {
		t.Fatal(err)
	}
}
