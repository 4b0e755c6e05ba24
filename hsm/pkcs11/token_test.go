//go:build cgo && !nopkcs11

package pkcs11

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	p11 "github.com/miekg/pkcs11"

	"github.com/sealsign/sealsign/hsm"
	"github.com/sealsign/sealsign/hsm/pkcs11/softhsm"
)

// These tests run against real SoftHSM2 tokens created in t.TempDir(). When
// SoftHSM2 is missing they fail with the install hint; they never skip.

const (
	testSOPIN   = "so-pin-0000"
	testUserPIN = "user-pin-4242"
)

// newEnv makes a SoftHSM2 config in a temp dir and points this process at it
// (SoftHSM reads SOFTHSM2_CONF when the module is initialised). Its cleanup
// runs after every token of the test is closed and checks nothing leaked.
func newEnv(t *testing.T) *softhsm.Env {
	t.Helper()
	env, err := softhsm.Setup(t.TempDir())
	if err != nil {
		t.Fatalf("%v\nthese tests need SoftHSM2: %s", err, softhsm.InstallHint)
	}
	t.Setenv("SOFTHSM2_CONF", env.ConfPath)
	t.Cleanup(func() {
		registry.Lock()
		defer registry.Unlock()
		if m := registry.modules[env.Module]; m != nil && (m.refs != 0 || m.initialized || len(m.logins) != 0) {
			t.Errorf("module left open after the test: refs=%d initialized=%t logins=%d", m.refs, m.initialized, len(m.logins))
		}
	})
	return env
}

// newToken initialises a token and returns its URI (PIN in a 0600 file).
func newToken(t *testing.T, env *softhsm.Env, label string) string {
	t.Helper()
	if err := env.InitToken(label, testSOPIN, testUserPIN); err != nil {
		t.Fatal(err)
	}
	pinFile := filepath.Join(env.Dir, label+".pin")
	if err := os.WriteFile(pinFile, []byte(testUserPIN+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return env.URI(label, pinFile)
}

func openToken(t *testing.T, uri string) *Token {
	t.Helper()
	tok, err := Open(uri)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := tok.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return tok
}

func newSealer(t *testing.T, tok *Token, label string) *Sealer {
	t.Helper()
	s, err := tok.Sealer(label, true)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var (
	bindA = hsm.Binding{PartyID: "a", KeyID: "key-1", Epoch: 1, Kind: "share/ecdsa-secp256k1"}
	bindB = hsm.Binding{PartyID: "b", KeyID: "key-1", Epoch: 1, Kind: "share/ecdsa-secp256k1"}
)

func TestSealUnsealRoundTrip(t *testing.T) {
	env := newEnv(t)
	tok := openToken(t, newToken(t, env, "party-a"))
	s := newSealer(t, tok, "seal")
	for _, tc := range []struct {
		name string
		pt   []byte
	}{
		{"empty", nil},
		{"one byte", []byte{0}},
		{"share-sized", bytes.Repeat([]byte("share"), 400)},
		{"1 MiB", bytes.Repeat([]byte{0xa5}, 1<<20)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sealed, err := s.Seal([]byte("aad"), tc.pt)
			if err != nil {
				t.Fatal(err)
			}
			if len(sealed) != sealOverhead+len(tc.pt) || sealed[0] != sealVersion {
				t.Fatalf("layout: %d bytes, version %d; want %d bytes, version %d", len(sealed), sealed[0], sealOverhead+len(tc.pt), sealVersion)
			}
			if len(tc.pt) >= 16 && bytes.Contains(sealed, tc.pt[:16]) {
				t.Fatal("plaintext appears in the sealed output")
			}
			got, err := s.Unseal([]byte("aad"), sealed)
			if err != nil || !bytes.Equal(got, tc.pt) {
				t.Fatalf("Unseal: %d bytes, %v", len(got), err)
			}
			blob, err := hsm.SealBlob(s, bindA, tc.pt)
			if err != nil {
				t.Fatal(err)
			}
			got, err = hsm.OpenBlob(s, bindA, blob)
			if err != nil || !bytes.Equal(got, tc.pt) {
				t.Fatalf("OpenBlob: %d bytes, %v", len(got), err)
			}
		})
	}
	// Every seal draws a fresh IV from the token.
	a, _ := s.Seal([]byte("aad"), []byte("same"))
	b, _ := s.Seal([]byte("aad"), []byte("same"))
	if bytes.Equal(a[1:1+ivSize], b[1:1+ivSize]) {
		t.Fatal("two seals used the same IV")
	}
}

// TestSealFormatIsStandardGCM checks the wire format against Go's AES-GCM,
// using a deliberately extractable session key that only this test creates
// (Token.Sealer would refuse it).
func TestSealFormatIsStandardGCM(t *testing.T) {
	env := newEnv(t)
	tok := openToken(t, newToken(t, env, "party-a"))
	var key p11.ObjectHandle
	var raw []byte
	err := tok.do(func(sh p11.SessionHandle) error {
		var err error
		key, err = tok.mod.ctx.GenerateKey(sh, []*p11.Mechanism{p11.NewMechanism(p11.CKM_AES_KEY_GEN, nil)}, []*p11.Attribute{
			p11.NewAttribute(p11.CKA_CLASS, p11.CKO_SECRET_KEY),
			p11.NewAttribute(p11.CKA_KEY_TYPE, p11.CKK_AES),
			p11.NewAttribute(p11.CKA_VALUE_LEN, 32),
			p11.NewAttribute(p11.CKA_TOKEN, false),
			p11.NewAttribute(p11.CKA_SENSITIVE, false),
			p11.NewAttribute(p11.CKA_EXTRACTABLE, true),
			p11.NewAttribute(p11.CKA_ENCRYPT, true),
			p11.NewAttribute(p11.CKA_DECRYPT, true),
		})
		if err != nil {
			return err
		}
		attrs, err := tok.mod.ctx.GetAttributeValue(sh, key, []*p11.Attribute{p11.NewAttribute(p11.CKA_VALUE, nil)})
		if err != nil {
			return err
		}
		raw = attrs[0].Value
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	s := &Sealer{tok: tok, key: key, label: "test-extractable"}
	block, err := aes.NewCipher(raw)
	if err != nil {
		t.Fatal(err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	aad, pt := []byte("binding"), []byte("share bytes")

	sealed, err := s.Seal(aad, pt)
	if err != nil {
		t.Fatal(err)
	}
	got, err := gcm.Open(nil, sealed[1:1+ivSize], sealed[1+ivSize:], append([]byte{sealVersion}, aad...))
	if err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("Go AES-GCM cannot open the token's output: %q, %v", got, err)
	}

	iv := bytes.Repeat([]byte{9}, ivSize)
	goSealed := append(append([]byte{sealVersion}, iv...), gcm.Seal(nil, iv, pt, append([]byte{sealVersion}, aad...))...)
	got, err = s.Unseal(aad, goSealed)
	if err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("token cannot open Go AES-GCM output: %q, %v", got, err)
	}
}

func TestUnsealRejects(t *testing.T) {
	env := newEnv(t)
	tok := openToken(t, newToken(t, env, "party-a"))
	s := newSealer(t, tok, "seal")
	other := newSealer(t, tok, "other-seal")
	aad := []byte("party a, key 1")
	sealed, err := s.Seal(aad, []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) []byte { b := bytes.Clone(sealed); b[i] ^= 0x01; return b }
	withVersion := bytes.Clone(sealed)
	withVersion[0] = 2
	for _, tc := range []struct {
		name    string
		s       *Sealer
		aad     []byte
		sealed  []byte
		wantErr error
	}{
		{"aad mismatch", s, []byte("party b, key 1"), sealed, hsm.ErrTampered},
		{"empty aad", s, nil, sealed, hsm.ErrAADRequired},
		{"flipped iv byte", s, aad, flip(1), hsm.ErrTampered},
		{"flipped ciphertext byte", s, aad, flip(1 + ivSize), hsm.ErrTampered},
		{"flipped tag byte", s, aad, flip(len(sealed) - 1), hsm.ErrTampered},
		{"truncated tag", s, aad, sealed[:len(sealed)-1], hsm.ErrTampered},
		{"too short", s, aad, sealed[:sealOverhead-1], hsm.ErrTampered},
		{"unknown version", s, aad, withVersion, hsm.ErrUnknownVersion},
		{"other key", other, aad, sealed, hsm.ErrTampered},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pt, err := tc.s.Unseal(tc.aad, tc.sealed)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("got (%q, %v), want %v", pt, err, tc.wantErr)
			}
			if !strings.HasPrefix(err.Error(), "pkcs11: ") {
				t.Fatalf("error lacks package prefix: %v", err)
			}
		})
	}
	if _, err := s.Seal(nil, []byte("x")); !errors.Is(err, hsm.ErrAADRequired) {
		t.Fatalf("Seal with empty aad: %v", err)
	}
	// The session that saw the failures is replaced; the sealer still works.
	if got, err := s.Unseal(aad, sealed); err != nil || string(got) != "secret" {
		t.Fatalf("after failures: %q, %v", got, err)
	}
}

func TestOpenBlobWithToken(t *testing.T) {
	env := newEnv(t)
	uriB := newToken(t, env, "party-b") // before any Open: SoftHSM lists tokens at initialisation
	tok := openToken(t, newToken(t, env, "party-a"))
	s := newSealer(t, tok, "seal")
	blobA, err := hsm.SealBlob(s, bindA, []byte("share of a"))
	if err != nil {
		t.Fatal(err)
	}
	w, err := hsm.BlobBinding(blobA)
	if err != nil || w != bindA {
		t.Fatalf("BlobBinding: %+v, %v", w, err)
	}

	t.Run("party A's blob opened as party B", func(t *testing.T) {
		_, err := hsm.OpenBlob(s, bindB, blobA)
		if !errors.Is(err, hsm.ErrBindingMismatch) {
			t.Fatalf("got %v, want ErrBindingMismatch", err)
		}
		if want := `hsm: sealed blob belongs to party "a", want party "b"`; err.Error() != want {
			t.Fatalf("got %q, want %q", err, want)
		}
	})

	t.Run("swapped header with correct-looking binding", func(t *testing.T) {
		// The host rewrites A's header to say B: the header check passes,
		// the token's authentication of the binding does not.
		forged := bytes.Replace(blobA, []byte{0x61, 'a'}, []byte{0x61, 'b'}, 1)
		if got, err := hsm.BlobBinding(forged); err != nil || got != bindB {
			t.Fatalf("forgery did not produce B's header: %+v, %v", got, err)
		}
		_, err := hsm.OpenBlob(s, bindB, forged)
		if !errors.Is(err, hsm.ErrTampered) {
			t.Fatalf("got %v, want ErrTampered", err)
		}
		if !strings.HasPrefix(err.Error(), "hsm: sealed blob failed authentication: tampered, or sealed under a different key") {
			t.Fatalf("message: %v", err)
		}
	})

	t.Run("flipped byte", func(t *testing.T) {
		// Bytes of the sealed part (after the CBOR header for it) fail
		// authentication; any flipped byte anywhere fails somehow.
		sealedStart := len(blobA) - (sealOverhead + len("share of a"))
		for i := range blobA {
			b := bytes.Clone(blobA)
			b[i] ^= 0x20
			pt, err := hsm.OpenBlob(s, bindA, b)
			if err == nil {
				t.Fatalf("byte %d flipped: opened to %q", i, pt)
			}
			if i > sealedStart && !errors.Is(err, hsm.ErrTampered) {
				t.Fatalf("byte %d (sealed part) flipped: got %v, want ErrTampered", i, err)
			}
		}
	})

	t.Run("blob of another token", func(t *testing.T) {
		tokB := openToken(t, uriB)
		sB := newSealer(t, tokB, "seal")
		if _, err := hsm.OpenBlob(sB, bindA, blobA); !errors.Is(err, hsm.ErrTampered) {
			t.Fatalf("got %v, want ErrTampered", err)
		}
	})
}

func TestOpenErrors(t *testing.T) {
	env := newEnv(t)
	good := newToken(t, env, "party-a")
	newToken(t, env, "party-b")
	dir := t.TempDir()
	wrongPIN := filepath.Join(dir, "wrong.pin")
	if err := os.WriteFile(wrongPIN, []byte("not-the-pin-777\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	notALib := filepath.Join(dir, "libfake.so")
	if err := os.WriteFile(notALib, []byte("not an ELF file"), 0o600); err != nil {
		t.Fatal(err)
	}
	missingModule := filepath.Join(dir, "no", "libsofthsm2.so")
	goodPIN := strings.SplitN(good, "pin-source=file:", 2)[1]
	for _, tc := range []struct {
		name     string
		uri      string
		wantErr  error
		wantMsgs []string
	}{
		{
			"wrong PIN", env.URI("party-a", wrongPIN), ErrPINIncorrect,
			[]string{`pkcs11: wrong PIN for token "party-a"`, "C_Login returned CKR_PIN_INCORRECT"},
		},
		{
			"wrong pin-value", "pkcs11:token=party-a?module-path=" + env.Module + "&pin-value=not-the-pin-777", ErrPINIncorrect,
			[]string{"wrong PIN", "CKR_PIN_INCORRECT"},
		},
		{
			"token not found", env.URI("party-x", goodPIN), ErrTokenNotFound,
			[]string{`token with label "party-x" not found in module`, `tokens present: "party-a" (serial `, `, "party-b" (serial `},
		},
		{
			"serial not found", "pkcs11:token=party-a;serial=0000?module-path=" + env.Module + "&pin-source=" + goodPIN, ErrTokenNotFound,
			[]string{`token with label "party-a" and serial "0000" not found`},
		},
		{
			"module path missing", "pkcs11:token=party-a?module-path=" + missingModule + "&pin-source=" + goodPIN, ErrModuleNotFound,
			[]string{`module "` + missingModule + `" not found`, "apt-get install softhsm2"},
		},
		{
			"module not loadable", "pkcs11:token=party-a?module-path=" + notALib + "&pin-source=" + goodPIN, ErrModuleNotFound,
			[]string{`module "` + notALib + `" could not be loaded`, "apt-get install softhsm2"},
		},
		{
			"no module-path", "pkcs11:token=party-a?pin-source=" + goodPIN, ErrModuleNotFound,
			[]string{"uri names no module-path", "apt-get install softhsm2"},
		},
		{
			"no PIN", "pkcs11:token=party-a?module-path=" + env.Module, ErrInvalidURI,
			[]string{"uri has no pin-value or pin-source"},
		},
		{
			"pin file missing", env.URI("party-a", filepath.Join(dir, "absent.pin")), ErrInvalidURI,
			[]string{"pin-source", "absent.pin", "no such file"},
		},
		{
			"no token selector", "pkcs11:object=seal?module-path=" + env.Module + "&pin-source=" + goodPIN, ErrInvalidURI,
			[]string{"uri selects no token"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := Open(tc.uri)
			if err == nil {
				tok.Close()
				t.Fatal("Open succeeded")
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("got %v, want %v", err, tc.wantErr)
			}
			t.Logf("%v", err)
			for _, m := range tc.wantMsgs {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not contain %q", err, m)
				}
			}
			for _, secret := range []string{testUserPIN, testSOPIN, "not-the-pin-777"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error contains a PIN: %v", err)
				}
			}
		})
	}
	// After all those failures the module is released and a good Open works.
	tok := openToken(t, good)
	if tok.Label() != "party-a" {
		t.Fatalf("label %q", tok.Label())
	}
}

func TestOpenWithBrokenSoftHSMConf(t *testing.T) {
	env := newEnv(t)
	uri := newToken(t, env, "party-a")
	t.Setenv("SOFTHSM2_CONF", filepath.Join(t.TempDir(), "missing.conf"))
	tok, err := Open(uri)
	if err == nil {
		tok.Close()
		t.Fatal("Open succeeded without a SoftHSM config")
	}
	if !errors.Is(err, ErrModuleNotFound) || !strings.Contains(err.Error(), "failed to initialize") || !strings.Contains(err.Error(), "SOFTHSM2_CONF") {
		t.Fatalf("got %v", err)
	}
	t.Logf("%v", err)
}

func TestOpenTwiceInOneProcess(t *testing.T) {
	env := newEnv(t)
	uri := newToken(t, env, "party-a")
	tok1, err := Open(uri)
	if err != nil {
		t.Fatal(err)
	}
	tok2 := openToken(t, uri)
	s1, err := tok1.Sealer("seal", true)
	if err != nil {
		t.Fatal(err)
	}
	blob, err := hsm.SealBlob(s1, bindA, []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	// A second Open with a wrong PIN is refused even though the token is
	// already logged in.
	wrong := "pkcs11:token=party-a?module-path=" + env.Module + "&pin-value=wrong-pin-1"
	if tok, err := Open(wrong); !errors.Is(err, ErrPINIncorrect) {
		if tok != nil {
			tok.Close()
		}
		t.Fatalf("wrong PIN while open: %v", err)
	}
	// Closing one Token keeps the login of the other.
	if err := tok1.Close(); err != nil {
		t.Fatal(err)
	}
	if err := tok1.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := s1.Seal([]byte("aad"), []byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Seal after Close: %v", err)
	}
	if _, err := tok1.Read(make([]byte, 8)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Read after Close: %v", err)
	}
	s2, err := tok2.Sealer("seal", false)
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := hsm.OpenBlob(s2, bindA, blob); err != nil || string(pt) != "x" {
		t.Fatalf("OpenBlob on the second Token: %q, %v", pt, err)
	}
}

func TestKeyLifecycle(t *testing.T) {
	env := newEnv(t)
	tok := openToken(t, newToken(t, env, "party-a"))

	_, err := tok.Sealer("seal", false)
	if !errors.Is(err, ErrKeyMissing) {
		t.Fatalf("got %v, want ErrKeyMissing", err)
	}
	if want := `pkcs11: key missing: no AES key labelled "seal" on token "party-a"`; !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("got %q, want prefix %q", err, want)
	}

	s := newSealer(t, tok, "seal")
	again, err := tok.Sealer("seal", false)
	if err != nil || again.key != s.key {
		t.Fatalf("Sealer(create=false) after create: %v (handle %d vs %d)", err, again.key, s.key)
	}
	blob, err := hsm.SealBlob(s, bindA, []byte("old epoch share"))
	if err != nil {
		t.Fatal(err)
	}

	// Crypto-shredding: once the key is destroyed, nothing sealed under it
	// opens, not even under a new key with the same label.
	if err := tok.DestroyKey("seal"); err != nil {
		t.Fatal(err)
	}
	if _, err := hsm.OpenBlob(s, bindA, blob); !errors.Is(err, ErrKeyMissing) {
		t.Fatalf("stale Sealer after DestroyKey: %v", err)
	}
	if _, err := tok.Sealer("seal", false); !errors.Is(err, ErrKeyMissing) {
		t.Fatalf("Sealer after DestroyKey: %v", err)
	}
	if err := tok.DestroyKey("seal"); !errors.Is(err, ErrKeyMissing) {
		t.Fatalf("second DestroyKey: %v", err)
	}
	fresh := newSealer(t, tok, "seal")
	if _, err := hsm.OpenBlob(fresh, bindA, blob); !errors.Is(err, hsm.ErrTampered) {
		t.Fatalf("blob of the destroyed key under a new key: %v", err)
	}

	// The key persists on the token across Close and Open.
	s2 := newSealer(t, tok, "persistent")
	blob2, err := hsm.SealBlob(s2, bindA, []byte("kept"))
	if err != nil {
		t.Fatal(err)
	}
	tokURI := env.URI("party-a", filepath.Join(env.Dir, "party-a.pin"))
	if err := tok.Close(); err != nil {
		t.Fatal(err)
	}
	reopened := openToken(t, tokURI)
	s3, err := reopened.Sealer("persistent", false)
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := hsm.OpenBlob(s3, bindA, blob2); err != nil || string(pt) != "kept" {
		t.Fatalf("after reopen: %q, %v", pt, err)
	}
}

func TestUnsafeExistingKeyRefused(t *testing.T) {
	env := newEnv(t)
	tok := openToken(t, newToken(t, env, "party-a"))
	// Session objects keep this test off the (slow) token store; every case
	// but the first is a token object in the template sealsign would make,
	// with one property changed.
	safe := func(changes ...*p11.Attribute) []*p11.Attribute {
		base := map[uint]*p11.Attribute{
			p11.CKA_VALUE_LEN:   p11.NewAttribute(p11.CKA_VALUE_LEN, 32),
			p11.CKA_TOKEN:       p11.NewAttribute(p11.CKA_TOKEN, false),
			p11.CKA_PRIVATE:     p11.NewAttribute(p11.CKA_PRIVATE, true),
			p11.CKA_SENSITIVE:   p11.NewAttribute(p11.CKA_SENSITIVE, true),
			p11.CKA_EXTRACTABLE: p11.NewAttribute(p11.CKA_EXTRACTABLE, false),
			p11.CKA_ENCRYPT:     p11.NewAttribute(p11.CKA_ENCRYPT, true),
			p11.CKA_DECRYPT:     p11.NewAttribute(p11.CKA_DECRYPT, true),
		}
		for _, c := range changes {
			base[c.Type] = c
		}
		var out []*p11.Attribute
		for _, a := range base {
			out = append(out, a)
		}
		return out
	}
	for _, tc := range []struct {
		name  string
		attrs []*p11.Attribute
		want  []string
	}{
		{"session object", safe(), []string{"CKA_TOKEN=false, want true"}},
		{"public", safe(p11.NewAttribute(p11.CKA_PRIVATE, false)), []string{"CKA_PRIVATE=false, want true"}},
		{"extractable", safe(p11.NewAttribute(p11.CKA_EXTRACTABLE, true)), []string{"CKA_EXTRACTABLE=true, want false", "CKA_NEVER_EXTRACTABLE=false, want true"}},
		{"not sensitive", safe(p11.NewAttribute(p11.CKA_SENSITIVE, false)), []string{"CKA_SENSITIVE=false, want true", "CKA_ALWAYS_SENSITIVE=false, want true"}},
		{"AES-128", safe(p11.NewAttribute(p11.CKA_VALUE_LEN, 16)), []string{"it is 128 bits, want 256"}},
		{"no decrypt", safe(p11.NewAttribute(p11.CKA_DECRYPT, false)), []string{"CKA_DECRYPT=false, want true"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			label := "unsafe-" + strings.ReplaceAll(tc.name, " ", "-")
			err := tok.do(func(sh p11.SessionHandle) error {
				_, err := tok.mod.ctx.GenerateKey(sh, []*p11.Mechanism{p11.NewMechanism(p11.CKM_AES_KEY_GEN, nil)}, append([]*p11.Attribute{
					p11.NewAttribute(p11.CKA_CLASS, p11.CKO_SECRET_KEY),
					p11.NewAttribute(p11.CKA_KEY_TYPE, p11.CKK_AES),
					p11.NewAttribute(p11.CKA_LABEL, label),
				}, tc.attrs...))
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			_, err = tok.Sealer(label, true)
			if !errors.Is(err, ErrKeyUnsafe) {
				t.Fatalf("got %v, want ErrKeyUnsafe", err)
			}
			for _, m := range tc.want {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not contain %q", err, m)
				}
			}
		})
	}
}

// TestKeyValueCannotBeReadOut proves the sealing key stays in the token: its
// value cannot be read, it cannot be wrapped out by another key, it cannot be
// used to wrap, and its protections cannot be lifted or copied away.
func TestKeyValueCannotBeReadOut(t *testing.T) {
	env := newEnv(t)
	tok := openToken(t, newToken(t, env, "party-a"))
	s := newSealer(t, tok, "seal")
	ctx := tok.mod.ctx
	isCKR := func(err error, rv uint) bool { return errors.Is(err, p11.Error(rv)) }

	sh, err := tok.session()
	if err != nil {
		t.Fatal(err)
	}
	defer tok.release(sh, true)

	t.Run("CKA_VALUE is sensitive", func(t *testing.T) {
		attrs, err := ctx.GetAttributeValue(sh, s.key, []*p11.Attribute{p11.NewAttribute(p11.CKA_VALUE, nil)})
		if !isCKR(err, p11.CKR_ATTRIBUTE_SENSITIVE) {
			t.Fatalf("C_GetAttributeValue(CKA_VALUE): got %v (%d attrs), want CKR_ATTRIBUTE_SENSITIVE", err, len(attrs))
		}
		t.Logf("%v", call("C_GetAttributeValue(CKA_VALUE)", err))
	})

	t.Run("attributes", func(t *testing.T) {
		want := []struct {
			name string
			attr uint
			v    bool
		}{
			{"CKA_TOKEN", p11.CKA_TOKEN, true},
			{"CKA_PRIVATE", p11.CKA_PRIVATE, true},
			{"CKA_SENSITIVE", p11.CKA_SENSITIVE, true},
			{"CKA_ALWAYS_SENSITIVE", p11.CKA_ALWAYS_SENSITIVE, true},
			{"CKA_EXTRACTABLE", p11.CKA_EXTRACTABLE, false},
			{"CKA_NEVER_EXTRACTABLE", p11.CKA_NEVER_EXTRACTABLE, true},
			{"CKA_ENCRYPT", p11.CKA_ENCRYPT, true},
			{"CKA_DECRYPT", p11.CKA_DECRYPT, true},
			{"CKA_WRAP", p11.CKA_WRAP, false},
			{"CKA_UNWRAP", p11.CKA_UNWRAP, false},
			{"CKA_DERIVE", p11.CKA_DERIVE, false},
			{"CKA_MODIFIABLE", p11.CKA_MODIFIABLE, false},
		}
		var q []*p11.Attribute
		for _, w := range want {
			q = append(q, p11.NewAttribute(w.attr, nil))
		}
		attrs, err := ctx.GetAttributeValue(sh, s.key, q)
		if err != nil {
			t.Fatal(err)
		}
		for i, w := range want {
			v := attrs[i].Value
			if got := len(v) == 1 && v[0] != 0; got != w.v {
				t.Errorf("%s = %t, want %t", w.name, got, w.v)
			}
		}
		a, err := ctx.GetAttributeValue(sh, s.key, []*p11.Attribute{p11.NewAttribute(p11.CKA_VALUE_LEN, nil)})
		if err != nil || ulong(a[0].Value) != 32 {
			t.Errorf("CKA_VALUE_LEN: %v, %v", a, err)
		}
	})

	// A session key that may wrap, as an attacker holding the PIN would make.
	wrapper, err := ctx.GenerateKey(sh, []*p11.Mechanism{p11.NewMechanism(p11.CKM_AES_KEY_GEN, nil)}, []*p11.Attribute{
		p11.NewAttribute(p11.CKA_CLASS, p11.CKO_SECRET_KEY),
		p11.NewAttribute(p11.CKA_KEY_TYPE, p11.CKK_AES),
		p11.NewAttribute(p11.CKA_VALUE_LEN, 32),
		p11.NewAttribute(p11.CKA_TOKEN, false),
		p11.NewAttribute(p11.CKA_WRAP, true),
		p11.NewAttribute(p11.CKA_UNWRAP, true),
		p11.NewAttribute(p11.CKA_ENCRYPT, true),
		p11.NewAttribute(p11.CKA_EXTRACTABLE, true),
		p11.NewAttribute(p11.CKA_SENSITIVE, false),
	})
	if err != nil {
		t.Fatal(err)
	}

	// And an RSA key pair, since SoftHSM also wraps secret keys with RSA.
	rsaPub, _, err := ctx.GenerateKeyPair(sh, []*p11.Mechanism{p11.NewMechanism(p11.CKM_RSA_PKCS_KEY_PAIR_GEN, nil)},
		[]*p11.Attribute{
			p11.NewAttribute(p11.CKA_TOKEN, false),
			p11.NewAttribute(p11.CKA_WRAP, true),
			p11.NewAttribute(p11.CKA_ENCRYPT, true),
			p11.NewAttribute(p11.CKA_MODULUS_BITS, 1024),
			p11.NewAttribute(p11.CKA_PUBLIC_EXPONENT, []byte{1, 0, 1}),
		},
		[]*p11.Attribute{
			p11.NewAttribute(p11.CKA_TOKEN, false),
			p11.NewAttribute(p11.CKA_UNWRAP, true),
		})
	if err != nil {
		t.Fatal(err)
	}

	// Every wrapping mechanism SoftHSM offers must refuse the sealing key
	// because it is unextractable, not for some incidental reason.
	for _, tc := range []struct {
		name    string
		m       *p11.Mechanism
		wrapper p11.ObjectHandle
	}{
		{"CKM_AES_KEY_WRAP", p11.NewMechanism(p11.CKM_AES_KEY_WRAP, nil), wrapper},
		{"CKM_AES_KEY_WRAP_PAD", p11.NewMechanism(p11.CKM_AES_KEY_WRAP_PAD, nil), wrapper},
		{"CKM_RSA_PKCS", p11.NewMechanism(p11.CKM_RSA_PKCS, nil), rsaPub},
	} {
		t.Run("C_WrapKey of the sealing key with "+tc.name, func(t *testing.T) {
			wrapped, err := ctx.WrapKey(sh, []*p11.Mechanism{tc.m}, tc.wrapper, s.key)
			if err == nil {
				t.Fatalf("wrapped the sealing key: %d bytes out", len(wrapped))
			}
			if !isCKR(err, p11.CKR_KEY_UNEXTRACTABLE) {
				t.Fatalf("got %v, want CKR_KEY_UNEXTRACTABLE", err)
			}
			t.Logf("%v", call("C_WrapKey", err))
		})
	}

	t.Run("sealing key cannot wrap", func(t *testing.T) {
		_, err := ctx.WrapKey(sh, []*p11.Mechanism{p11.NewMechanism(p11.CKM_AES_KEY_WRAP, nil)}, s.key, wrapper)
		if err == nil {
			t.Fatal("the sealing key wrapped another key")
		}
		if !isCKR(err, p11.CKR_KEY_FUNCTION_NOT_PERMITTED) {
			t.Fatalf("got %v, want CKR_KEY_FUNCTION_NOT_PERMITTED", err)
		}
	})

	t.Run("protections cannot be lifted", func(t *testing.T) {
		for _, a := range []*p11.Attribute{
			p11.NewAttribute(p11.CKA_EXTRACTABLE, true),
			p11.NewAttribute(p11.CKA_SENSITIVE, false),
			p11.NewAttribute(p11.CKA_WRAP, true),
			p11.NewAttribute(p11.CKA_DERIVE, true),
		} {
			if err := ctx.SetAttributeValue(sh, s.key, []*p11.Attribute{a}); err == nil {
				t.Errorf("C_SetAttributeValue(0x%x) succeeded", a.Type)
			} else {
				t.Logf("C_SetAttributeValue(0x%x): %v", a.Type, call("C_SetAttributeValue", err))
			}
		}
	})

	t.Run("copies stay protected", func(t *testing.T) {
		cp, err := ctx.CopyObject(sh, s.key, []*p11.Attribute{
			p11.NewAttribute(p11.CKA_TOKEN, false),
			p11.NewAttribute(p11.CKA_EXTRACTABLE, true),
			p11.NewAttribute(p11.CKA_SENSITIVE, false),
		})
		if err != nil {
			t.Logf("C_CopyObject refused: %v", call("C_CopyObject", err))
			return // refusing the copy is the strongest answer
		}
		t.Logf("C_CopyObject allowed; checking the copy")
		defer ctx.DestroyObject(sh, cp)
		if _, err := ctx.GetAttributeValue(sh, cp, []*p11.Attribute{p11.NewAttribute(p11.CKA_VALUE, nil)}); !isCKR(err, p11.CKR_ATTRIBUTE_SENSITIVE) {
			t.Fatalf("copy's CKA_VALUE readable: %v", err)
		}
		if _, err := ctx.WrapKey(sh, []*p11.Mechanism{p11.NewMechanism(p11.CKM_AES_KEY_WRAP, nil)}, wrapper, cp); err == nil {
			t.Fatal("copy could be wrapped out")
		}
	})
}

func TestRandomReader(t *testing.T) {
	env := newEnv(t)
	tok := openToken(t, newToken(t, env, "party-a"))
	var r io.Reader = tok
	for _, n := range []int{0, 1, 32, randomChunk, 3*randomChunk + 7} {
		t.Run(fmt.Sprintf("%d bytes", n), func(t *testing.T) {
			a, b := make([]byte, n), make([]byte, n)
			if got, err := r.Read(a); got != n || err != nil {
				t.Fatalf("Read = %d, %v", got, err)
			}
			if _, err := io.ReadFull(r, b); err != nil {
				t.Fatal(err)
			}
			if n >= 32 && bytes.Equal(a, b) {
				t.Fatal("two reads returned the same bytes")
			}
			if n >= 32 && (bytes.Equal(a, make([]byte, n)) || bytes.Count(a, []byte{0}) > n/16+8) {
				t.Fatalf("output looks non-random: %d zero bytes of %d", bytes.Count(a, []byte{0}), n)
			}
		})
	}
}

// TestConcurrent runs Seal, Unseal, Read, key lookup and blob sealing from
// many goroutines on one Token; run it with -race.
func TestConcurrent(t *testing.T) {
	env := newEnv(t)
	tok := openToken(t, newToken(t, env, "party-a"))
	const workers, rounds = 16, 25
	var wg sync.WaitGroup
	errc := make(chan error, workers)
	sealers := make([]*Sealer, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fail := func(format string, args ...any) {
				errc <- fmt.Errorf("worker %d: "+format, append([]any{w}, args...)...)
			}
			// All workers race to create the same key; exactly one is made.
			s, err := tok.Sealer("shared", true)
			if err != nil {
				fail("Sealer: %v", err)
				return
			}
			sealers[w] = s
			b := hsm.Binding{PartyID: "a", KeyID: fmt.Sprintf("key-%d", w), Epoch: 1, Kind: "share/eddsa-ed25519"}
			for i := range rounds {
				pt := []byte(fmt.Sprintf("worker %d round %d", w, i))
				blob, err := hsm.SealBlob(s, b, pt)
				if err != nil {
					fail("SealBlob: %v", err)
					return
				}
				got, err := hsm.OpenBlob(s, b, blob)
				if err != nil || !bytes.Equal(got, pt) {
					fail("OpenBlob: %q, %v", got, err)
					return
				}
				rnd := make([]byte, 64)
				if _, err := tok.Read(rnd); err != nil {
					fail("Read: %v", err)
					return
				}
				if i%5 == 0 {
					if _, err := hsm.OpenBlob(s, bindB, blob); !errors.Is(err, hsm.ErrBindingMismatch) {
						fail("mismatch: %v", err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	for _, s := range sealers[1:] {
		if s != nil && sealers[0] != nil && s.key != sealers[0].key {
			t.Fatalf("concurrent Sealer(create) made more than one key: handles %d and %d", sealers[0].key, s.key)
		}
	}
	tok.mu.Lock()
	open := tok.open
	tok.mu.Unlock()
	if open > maxSessions {
		t.Fatalf("pool opened %d sessions, limit %d", open, maxSessions)
	}
}
