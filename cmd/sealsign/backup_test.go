package main

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/decred/dcrd/dcrec/edwards/v2"
	"github.com/decred/dcrd/dcrec/secp256k1/v4"

	"github.com/sealsign/sealsign/enclave/api"
	"github.com/sealsign/sealsign/enclave/backup"
	"github.com/sealsign/sealsign/enclave/backup/backuptest"
)

func runCLI(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

// writeFixture writes the fixture's manifest, its recovery keys and the
// backups of parties to dir.
func writeFixture(t *testing.T, f *backuptest.Fixture, dir string, parties ...string) (manifest string, rks []string, files map[string]string) {
	t.Helper()
	manifest = filepath.Join(dir, "manifest.json")
	if err := os.WriteFile(manifest, f.Manifest, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, k := range f.RecoveryKeys {
		b, err := k.MarshalPEM()
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, k.ID+".key")
		if err := backup.WriteFileAtomic(p, b, 0o600, true); err != nil {
			t.Fatal(err)
		}
		rks = append(rks, p)
	}
	files = map[string]string{}
	for _, p := range parties {
		files[p] = filepath.Join(dir, p+".backup")
		if err := os.WriteFile(files[p], f.Backup(p), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return manifest, rks, files
}

func TestRecoveryKeyCreateCLI(t *testing.T) {
	dir := t.TempDir()
	for _, kem := range []string{api.KEMX25519, api.KEMMLKEM768X25519} {
		out := filepath.Join(dir, kem+".key")
		code, stdout, stderr := runCLI("recovery-key", "create", "--id", "rk-"+kem, "--kem", kem, "--out", out)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", kem, code, stderr)
		}
		var pub api.RecoveryKey
		if err := json.Unmarshal([]byte(stdout), &pub); err != nil || pub.Validate() != nil || pub.KEM != kem {
			t.Fatalf("%s: printed %q (%v)", kem, stdout, err)
		}
		st, err := os.Stat(out)
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: key file %v mode %v", kem, err, st.Mode())
		}
		k, err := backup.LoadRecoveryKey(out)
		if err != nil || hex.EncodeToString(k.Public().PublicKey) != hex.EncodeToString(pub.PublicKey) {
			t.Fatalf("%s: written key does not match the printed one: %v", kem, err)
		}
		if code, _, stderr := runCLI("recovery-key", "create", "--id", "x", "--out", out); code != 1 || !strings.Contains(stderr, "exists") {
			t.Fatalf("%s: overwrote an existing key file: exit %d %s", kem, code, stderr)
		}
	}
	if code, _, stderr := runCLI("recovery-key", "create", "--id", "x", "--kem", "rsa", "--out", filepath.Join(dir, "r")); code != 1 || !strings.Contains(stderr, `kem "rsa" unknown`) {
		t.Fatalf("unknown kem: exit %d %s", code, stderr)
	}
}

func TestBackupVerifyCLI(t *testing.T) {
	f := backuptest.New(t, api.AlgEdDSAEd25519)
	dir := t.TempDir()
	manifest, _, files := writeFixture(t, f, dir, "b")
	code, stdout, stderr := runCLI("backup", "verify", files["b"], "--manifest", manifest, "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var rep backupReport
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil || !rep.Valid || rep.Party != "b" || rep.PublicKey != hex.EncodeToString(f.PublicKey) || rep.Module != "test-b" {
		t.Fatalf("report %+v (%v)", rep, err)
	}

	good, _ := os.ReadFile(files["b"])
	other := backuptest.New(t, api.AlgEdDSAEd25519)
	otherManifest := filepath.Join(dir, "other.json")
	os.WriteFile(otherManifest, other.Manifest, 0o644)
	for _, tc := range []struct {
		name     string
		edit     func(*backup.File)
		manifest string
		want     string
	}{
		{"signature", func(b *backup.File) { b.Signature[0] ^= 1 }, manifest, "backup: signature invalid"},
		{"ciphertext", func(b *backup.File) { b.Ciphertexts[0].Ciphertext[20] ^= 1 }, manifest, "backup: signature invalid"},
		{"attestation", func(b *backup.File) { b.Attestation[len(b.Attestation)-2] ^= 1 }, manifest, "backup: attestation invalid"},
		{"recipient dropped", func(b *backup.File) { b.Ciphertexts = b.Ciphertexts[1:] }, manifest, "backup: recipients: 1 ciphertexts for 2 recipients"},
		{"other manifest", nil, otherManifest, "backup: not of this manifest"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := good
			if tc.edit != nil {
				file, _, err := backup.Parse(good)
				if err != nil {
					t.Fatal(err)
				}
				tc.edit(file)
				if b, err = file.Encode(); err != nil {
					t.Fatal(err)
				}
			}
			p := filepath.Join(t.TempDir(), "x.backup")
			os.WriteFile(p, b, 0o600)
			code, _, stderr := runCLI("backup", "verify", p, "--manifest", tc.manifest)
			if code != 1 || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d, stderr %q, want %q", code, stderr, tc.want)
			}
		})
	}
}

func TestRecoverBreakGlassCLI(t *testing.T) {
	for _, alg := range []string{api.AlgECDSASecp256k1, api.AlgEdDSAEd25519} {
		t.Run(alg, func(t *testing.T) {
			f := backuptest.New(t, alg)
			dir := t.TempDir()
			manifest, rks, files := writeFixture(t, f, dir, "a", "c")
			out := filepath.Join(dir, "key.json")
			base := []string{"recover", "--backup", files["a"], "--backup", files["c"], "--recovery-key", rks[1], "--recovery-key", rks[0], "--manifest", manifest}

			// One recovery key of the two opens nothing, so its holder alone
			// cannot break the glass with every backup in hand.
			for i, rk := range rks {
				code, _, stderr := runCLI("recover", "--break-glass", "--i-understand-this-reconstructs-the-private-key", "--backup", files["a"], "--backup", files["c"],
					"--recovery-key", rk, "--manifest", manifest, "--out", filepath.Join(dir, "one.json"))
				missing := []string{"recovery-2", "recovery-1"}[i]
				if code != 1 || !strings.Contains(stderr, "needs the recovery key of every one of its recipients (recovery-1, recovery-2); missing "+missing) || !strings.Contains(stderr, "--recovery-key once per recipient") {
					t.Fatalf("break-glass with only %s: exit %d %s", rk, code, stderr)
				}
				if _, err := os.Stat(filepath.Join(dir, "one.json")); err == nil {
					t.Fatal("a key file was written with one recovery key")
				}
			}

			code, _, stderr := runCLI(append(base, "--break-glass", "--out", out)...)
			if code != 2 || !strings.Contains(stderr, "--i-understand-this-reconstructs-the-private-key") || !strings.Contains(stderr, "whole private key") {
				t.Fatalf("without the flag: exit %d %s", code, stderr)
			}
			if _, err := os.Stat(out); err == nil {
				t.Fatal("a key file was written without the flag")
			}
			code, _, stderr = runCLI(append(base, "--break-glass", "--i-understand-this-reconstructs-the-private-key", "--out", out, "--host", "http://127.0.0.1:1")...)
			if code != 2 || !strings.Contains(stderr, "offline only") {
				t.Fatalf("with --host: exit %d %s", code, stderr)
			}
			code, stdout, stderr := runCLI(append(base, "--break-glass", "--i-understand-this-reconstructs-the-private-key", "--out", out)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			st, err := os.Stat(out)
			if err != nil || st.Mode().Perm() != 0o600 {
				t.Fatalf("key file %v mode %v", err, st.Mode())
			}
			b, _ := os.ReadFile(out)
			var k breakGlassKey
			if err := json.Unmarshal(b, &k); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(stdout+stderr, k.PrivateKey) {
				t.Fatal("the private key was printed")
			}
			scalar, _ := hex.DecodeString(k.PrivateKey)
			var pub []byte
			if alg == api.AlgECDSASecp256k1 {
				pub = secp256k1.PrivKeyFromBytes(scalar).PubKey().SerializeCompressed()
			} else {
				_, edPub, err := edwards.PrivKeyFromScalar(scalar)
				if err != nil {
					t.Fatal(err)
				}
				pub = edPub.Serialize()
			}
			if hex.EncodeToString(pub) != hex.EncodeToString(f.PublicKey) || k.PublicKey != hex.EncodeToString(f.PublicKey) {
				t.Fatalf("reconstructed public key %x, want %x", pub, f.PublicKey)
			}

			code, _, stderr = runCLI("recover", "--break-glass", "--i-understand-this-reconstructs-the-private-key", "--backup", files["a"],
				"--recovery-key", rks[0], "--recovery-key", rks[1], "--manifest", manifest, "--out", filepath.Join(dir, "k2.json"))
			if code != 1 || !strings.Contains(stderr, "needs t+1 = 2") {
				t.Fatalf("one backup: exit %d %s", code, stderr)
			}
			wrong, _ := backup.GenerateRecoveryKey("recovery-3", api.KEMX25519)
			wb, _ := wrong.MarshalPEM()
			wp := filepath.Join(dir, "wrong.key")
			backup.WriteFileAtomic(wp, wb, 0o600, true)
			code, _, stderr = runCLI("recover", "--break-glass", "--i-understand-this-reconstructs-the-private-key", "--backup", files["a"], "--backup", files["c"],
				"--recovery-key", wp, "--manifest", manifest, "--out", filepath.Join(dir, "k3.json"))
			if code != 1 || !strings.Contains(stderr, "missing recovery-1, recovery-2 (given recovery-3)") {
				t.Fatalf("wrong recovery key: exit %d %s", code, stderr)
			}
		})
	}
}
