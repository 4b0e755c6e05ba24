// Package e2e runs the appliance as a user would: real sealsign-host and
// sealsign-enclave processes, real SoftHSM tokens, real sockets, real
// tss-lib protocol runs. It needs the binaries built by `make build`
// (SEALSIGN_BIN) and uses the committed pre-parameter fixture
// (SEALSIGN_PREPARAMS_FIXTURE) so keygen does not wait for safe primes.
package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sealsign/sealsign/enclave/api"
	"github.com/sealsign/sealsign/governance/tx"
	"github.com/sealsign/sealsign/host/client"
	"github.com/sealsign/sealsign/host/devcluster"
	"github.com/sealsign/sealsign/host/server"
	"github.com/sealsign/sealsign/host/store"
)

func binDir(t *testing.T) string {
	t.Helper()
	d := os.Getenv("SEALSIGN_BIN")
	if d == "" {
		d, _ = filepath.Abs("../../bin")
	}
	for _, b := range []string{"sealsign", "sealsign-host", "sealsign-enclave"} {
		if _, err := os.Stat(filepath.Join(d, b)); err != nil {
			t.Fatalf("%s not built in %s: run 'make build' (or 'make test', which builds first)", b, d)
		}
	}
	return d
}

func fixture(t *testing.T) string {
	if f := os.Getenv("SEALSIGN_PREPARAMS_FIXTURE"); f != "" {
		return f
	}
	f, _ := filepath.Abs("../testdata/preparams.json")
	return f
}

// shortDir returns a directory short enough for unix socket paths.
func shortDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "ss-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// permissivePolicy lets every key sign raw digests: these tests are about
// keys, shares, sealing and attestation, not policy (TestDemoJSON covers
// the dev cluster's policy).
const permissivePolicy = `{
  "format": 1,
  "version": 1,
  "rules": [
    {"id": "allow-raw", "description": "e2e: any raw digest on any key", "effect": "allow", "condition": "request.kind == 'raw-digest'"}
  ]
}`

func up(t *testing.T, dir string) *devcluster.Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := devcluster.Up(ctx, devcluster.Options{Dir: dir, BinDir: binDir(t), PreParamsPool: 1, PreParamsNoRefill: true, InsecurePreParamsFixture: fixture(t),
		PolicyJSON: []byte(permissivePolicy)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Down() })
	return c
}

// signRaw has cl sign payload with keyID through a raw-digest request from
// the dev cluster's treasury-app client. An error carries every reason the
// host and the parties gave.
func signRaw(t *testing.T, c *devcluster.Cluster, cl *client.Client, keyID string, payload []byte, signers ...string) (*server.SignResult, error) {
	t.Helper()
	k, err := c.GovernanceKey("treasury-app")
	if err != nil {
		t.Fatal(err)
	}
	req, err := client.NewRequest(k, c.ClusterID(), keyID, tx.KindRaw, payload, 5*time.Minute, signers...)
	if err != nil {
		t.Fatal(err)
	}
	st, err := cl.Submit(context.Background(), req)
	if err != nil {
		return nil, &requestFailure{err: err, text: failureText(st, err)}
	}
	if st.State != server.StateSigned || st.Result == nil || len(st.Result.Signatures) != 1 {
		return nil, &requestFailure{err: fmt.Errorf("request %s is %s, want signed", st.RequestID, st.State), text: failureText(st, nil)}
	}
	return st.Result, nil
}

// requestFailure keeps the original error (for errors.As) and says
// everything the answer explained.
type requestFailure struct {
	err  error
	text string
}

func (e *requestFailure) Error() string { return e.text }
func (e *requestFailure) Unwrap() error { return e.err }

func failureText(st *server.RequestStatus, err error) string {
	var parts []string
	if err != nil {
		parts = append(parts, err.Error())
	}
	if st != nil {
		if st.Error != "" && (err == nil || !strings.Contains(err.Error(), st.Error)) {
			parts = append(parts, st.Error)
		}
		for _, v := range st.Verdicts {
			for _, d := range v.Denials {
				parts = append(parts, fmt.Sprintf("party %s: %s %s %s %s", v.PartyID, d.Code, d.RuleID, d.Clause, d.Detail))
			}
		}
	}
	return strings.Join(parts, "; ")
}

// TestAppliance is the acceptance story: keygen, sign, verify independently,
// restart from sealed shares, tamper and swap sealed blobs, sign 2-of-3.
func TestAppliance(t *testing.T) {
	dir := shortDir(t)
	c := up(t, dir)
	ctx := context.Background()
	a := c.Client("a")

	waitPreParams(t, c)
	ec, err := c.CreateKey(ctx, api.AlgECDSASecp256k1)
	if err != nil {
		t.Fatal(err)
	}
	ed, err := c.CreateKey(ctx, api.AlgEdDSAEd25519)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"b", "c"} {
		k, err := c.Client(p).Key(ctx, ec.ID)
		if err != nil || k.PublicKey != ec.PublicKey {
			t.Fatalf("party %s key = %+v, %v; want public key %s", p, k, err, ec.PublicKey)
		}
	}
	digest := sha256.Sum256([]byte("e2e"))
	msg := []byte("e2e eddsa message")
	signBoth := func(c *devcluster.Cluster, cl *client.Client, signers ...string) {
		t.Helper()
		r, err := signRaw(t, c, cl, ec.ID, digest[:], signers...)
		if err != nil {
			t.Fatalf("ecdsa sign %v: %v", signers, err)
		}
		if len(r.RecoveryIDs) != 1 {
			t.Fatalf("ecdsa result has recovery ids %v, want one", r.RecoveryIDs)
		}
		if err := devcluster.VerifyECDSA(ec.PublicKey, digest[:], r.Signatures[0], r.RecoveryIDs[0]); err != nil {
			t.Fatal(err)
		}
		r2, err := signRaw(t, c, cl, ed.ID, msg, signers...)
		if err != nil {
			t.Fatalf("eddsa sign %v: %v", signers, err)
		}
		if err := devcluster.VerifyEd25519(ed.PublicKey, msg, r2.Signatures[0]); err != nil {
			t.Fatal(err)
		}
	}
	signBoth(c, a)
	signBoth(c, c.Client("c"), "b", "c")

	// The keyed hash an auditor searches a log with: stable for a value,
	// different for another, through the CLI as through the API.
	h1, err := a.AuditHash(ctx, "unknown destination")
	if err != nil || len(h1.MAC) != 64 {
		t.Fatalf("audit hash: %+v %v", h1, err)
	}
	if h2, _ := a.AuditHash(ctx, "unknown destination"); h2.MAC != h1.MAC {
		t.Fatalf("audit hash not stable: %s, then %s", h1.MAC, h2.MAC)
	}
	if h3, _ := a.AuditHash(ctx, "unknown destination."); h3.MAC == h1.MAC {
		t.Fatal("different values hash alike")
	}
	if out, err := exec.Command(filepath.Join(binDir(t), "sealsign"), "audit", "hash", "unknown destination", "--host", a.BaseURL).CombinedOutput(); err != nil || !strings.Contains(string(out), h1.MAC) {
		t.Fatalf("sealsign audit hash: %s %v", out, err)
	}

	// Wrong requests get precise errors.
	if _, err := signRaw(t, c, a, ec.ID, []byte{1, 2, 3}); err == nil || !strings.Contains(err.Error(), "32-byte digest") {
		t.Fatalf("short digest: %v", err)
	}
	if _, err := signRaw(t, c, a, "nope", digest[:]); !isAPIError(err, 404, "") {
		t.Fatalf("unknown key: %v", err)
	}
	if _, err := signRaw(t, c, a, ec.ID, digest[:], "a", "b", "c"); !isAPIError(err, 400, "exactly 2 signers") {
		t.Fatalf("three signers: %v", err)
	}
	if _, err := c.CreateKey(ctx, "rsa-4096"); !isAPIError(err, 400, "unsupported") {
		t.Fatalf("unknown algorithm: %v", err)
	}
	// Key creation is an admin ceremony: the host alone cannot start one,
	// nor can one admin.
	if _, err := a.CreateKey(ctx, api.AlgEdDSAEd25519, nil); err == nil || !strings.Contains(err.Error(), "no ceremony") {
		t.Fatalf("keygen without a ceremony: %v", err)
	}
	if one, err := c.KeygenCeremony(api.AlgEdDSAEd25519, time.Minute, "admin-1"); err != nil {
		t.Fatal(err)
	} else if _, err := a.CreateKey(ctx, api.AlgEdDSAEd25519, one); err == nil || !strings.Contains(err.Error(), "1 valid admin signatures of 2 needed") {
		t.Fatalf("keygen authorised by one admin: %v", err)
	}

	// Restart everything: shares come back from sealed blobs only.
	c.Down()
	c = up(t, dir)
	for _, p := range c.Parties {
		h, err := c.Client(p.ID).Health(ctx)
		if err != nil || len(h.Refused) != 0 || len(h.Enclave.Keys) != 2 {
			t.Fatalf("party %s after restart: %+v, %v", p.ID, h, err)
		}
	}
	signBoth(c, c.Client("a"), "a", "c")

	// One party down: the other two sign.
	if err := c.Stop("c"); err != nil {
		t.Fatal(err)
	}
	signBoth(c, c.Client("a"))
	if _, err := signRaw(t, c, c.Client("a"), ec.ID, digest[:], "a", "c"); err == nil || !strings.Contains(err.Error(), "c") {
		t.Fatalf("signing with a stopped party: %v", err)
	}
	c.Down()

	// Tamper: flip one byte of a's sealed share; swap b's share into a's store.
	tamper(t, c, "a", "share/"+ec.ID+"/0", func(b []byte) []byte { b[len(b)-5] ^= 1; return b })
	bShare := readBlob(t, c, "b", "share/"+ed.ID+"/0")
	tamper(t, c, "a", "share/"+ed.ID+"/0", func([]byte) []byte { return bShare })
	c = up(t, dir)
	h, err := c.Client("a").Health(ctx)
	if err != nil {
		t.Fatal(err)
	}
	refused := map[string]string{}
	for _, f := range h.Refused {
		refused[f.Name] = f.Error
	}
	if e := refused["share/"+ec.ID+"/0"]; !strings.Contains(e, "failed authentication") {
		t.Fatalf("flipped blob: refusal %q, want an authentication failure", e)
	}
	if e := refused["share/"+ed.ID+"/0"]; !strings.Contains(e, `"b"`) || !strings.Contains(e, `"a"`) {
		t.Fatalf("swapped blob: refusal %q, want it to name parties b and a", e)
	}
	if _, err := signRaw(t, c, c.Client("a"), ec.ID, digest[:], "a", "b"); err == nil || !strings.Contains(err.Error(), "not usable on party") {
		t.Fatalf("signing with a tampered share: %v, want a refusal", err)
	}
	// b and c still hold good shares.
	signBoth(c, c.Client("b"), "b", "c")
}

func isAPIError(err error, status int, contains string) bool {
	var e *client.Error
	return errors.As(err, &e) && e.Status == status && strings.Contains(e.Message, contains)
}

func waitPreParams(t *testing.T, c *devcluster.Cluster) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for _, p := range c.Parties {
		for {
			h, err := c.Client(p.ID).Health(context.Background())
			if err == nil && h.Enclave.PreParamsReady > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("party %s has no pre-params: %+v %v", p.ID, h, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

func openStore(t *testing.T, c *devcluster.Cluster, party string) *store.Store {
	t.Helper()
	p, _ := c.Party(party)
	s, err := store.Open(p.Store)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func readBlob(t *testing.T, c *devcluster.Cluster, party, name string) []byte {
	s := openStore(t, c, party)
	defer s.Close()
	b, err := s.Blob(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func tamper(t *testing.T, c *devcluster.Cluster, party, name string, f func([]byte) []byte) {
	s := openStore(t, c, party)
	defer s.Close()
	b, err := s.Blob(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutBlob(name, f(bytes.Clone(b))); err != nil {
		t.Fatal(err)
	}
}

// TestEnclaveStartupErrors: hardware misconfiguration stops the enclave with
// a precise message (its documented exit), and the host reports it.
func TestEnclaveStartupErrors(t *testing.T) {
	bin := binDir(t)
	dir := shortDir(t)
	c := up(t, dir)
	c.Down()
	p, _ := c.Party("a")
	caCert, caKey := filepath.Join(dir, "ca", "root.pem"), filepath.Join(dir, "ca", "root.key")
	pinFile := filepath.Join(dir, "party-a", "user.pin")
	wrongPin := filepath.Join(dir, "wrong.pin")
	os.WriteFile(wrongPin, []byte("000000\n"), 0o600)
	tests := []struct {
		name, uri, want string
	}{
		{"wrong pin", strings.Replace(p.HSMURI, pinFile, wrongPin, 1), "PIN"},
		{"missing token", strings.Replace(p.HSMURI, "token=sealsign-a", "token=no-such-token", 1), "no-such-token"},
		{"missing module", strings.Replace(p.HSMURI, "/usr/lib/softhsm/libsofthsm2.so", "/nonexistent/libsofthsm2.so", 1), "/nonexistent/libsofthsm2.so"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.uri == p.HSMURI {
				t.Fatalf("test did not change the URI %q", p.HSMURI)
			}
			cmd := exec.Command(filepath.Join(bin, "sealsign-enclave"), "--listen", "unix:"+filepath.Join(dir, "t.sock"),
				"--hsm", tc.uri, "--dev-ca-cert", caCert, "--dev-ca-key", caKey)
			cmd.Env = append(os.Environ(), "SOFTHSM2_CONF="+p.SoftHSM)
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Fatalf("exit = %v, want status 1; output:\n%s", err, out)
			}
			if !strings.Contains(string(out), tc.want) || strings.Contains(string(out), "panic") {
				t.Fatalf("output does not name %q (or panicked):\n%s", tc.want, out)
			}
			pin, _ := os.ReadFile(pinFile)
			if strings.Contains(string(out), strings.TrimSpace(string(pin))) {
				t.Fatal("the PIN leaked into the error output")
			}
		})
	}
}

// TestMalformedFrames talks to a live enclave socket directly, as a
// hostile host would: malformed and oversized frames get errors, the
// enclave keeps running, and a fresh connection works.
func TestMalformedFrames(t *testing.T) {
	dir := shortDir(t)
	c := up(t, dir)
	p, _ := c.Party("a")
	sock := strings.TrimPrefix(p.Enclave, "unix:")
	// The host holds the enclave's one connection; a second connection
	// waits until it ends. Stop a's host but keep a's enclave? The enclave
	// is the host's child, so test through a standalone enclave instead.
	c.Down()
	caCert, caKey := filepath.Join(dir, "ca", "root.pem"), filepath.Join(dir, "ca", "root.key")
	cmd := exec.Command(filepath.Join(binDir(t), "sealsign-enclave"), "--listen", "unix:"+sock, "--hsm", p.HSMURI,
		"--dev-ca-cert", caCert, "--dev-ca-key", caKey, "--preparams-pool", "0")
	cmd.Env = append(os.Environ(), "SOFTHSM2_CONF="+p.SoftHSM)
	var logs bytes.Buffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	dial := func() net.Conn {
		for i := 0; i < 100; i++ {
			conn, err := net.Dial("unix", sock)
			if err == nil {
				conn.SetDeadline(time.Now().Add(10 * time.Second))
				return conn
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("enclave never listened:\n%s", logs.String())
		return nil
	}
	conn := dial()
	// malformed CBOR in a well-formed frame
	conn.Write([]byte{0, 0, 0, 3, 0xff, 0xfe, 0xfd})
	f, err := api.ReadFrame(conn)
	if err != nil || f.Error == nil || f.Error.Code != api.CodeMalformed {
		t.Fatalf("malformed frame reply = %+v, %v", f, err)
	}
	// a request the enclave cannot serve yet
	api.WriteFrame(conn, &api.Frame{ID: 5, Method: api.MethodRun, Body: []byte{0xa1, 0x01, 0x40}})
	f, err = api.ReadFrame(conn)
	if err != nil || f.Error == nil || f.Error.Code != api.CodeUnavailable {
		t.Fatalf("run before init = %+v, %v", f, err)
	}
	// oversized: the enclave answers and closes this connection
	conn.Write([]byte{0x7f, 0, 0, 0})
	f, err = api.ReadFrame(conn)
	if err != nil || f.Error == nil || !strings.Contains(f.Error.Message, "too large") {
		t.Fatalf("oversized frame reply = %+v, %v", f, err)
	}
	conn.Close()
	conn = dial()
	defer conn.Close()
	api.WriteFrame(conn, &api.Frame{ID: 6, Method: api.MethodStatus, Body: []byte{0xf6}})
	f, err = api.ReadFrame(conn)
	if err != nil || f.Error != nil {
		t.Fatalf("status after bad frames = %+v, %v\n%s", f, err, logs.String())
	}
	if cmd.ProcessState != nil {
		t.Fatalf("enclave exited:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), "panic") {
		t.Fatalf("enclave panicked:\n%s", logs.String())
	}
}
