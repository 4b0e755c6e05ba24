package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sealsign/sealsign/enclave/api"
	"github.com/sealsign/sealsign/governance/keys"
	"github.com/sealsign/sealsign/governance/policy"
	"github.com/sealsign/sealsign/host/server"
)

// defaultPolicy is the demo cluster's example policy (cluster "demo",
// version 1; provenance in its directory's README.md).
const defaultPolicy = "../../governance/policy/testdata/default-policy.json"

// createGovKey runs "sealsign gov-key create" and returns the public key it
// prints and the key file.
func createGovKey(t *testing.T, dir, id, owner, alg string) (keys.PublicKey, string) {
	t.Helper()
	path := filepath.Join(dir, id+".key")
	out, errs := wantSealsign(t, 0, "gov-key", "create", "--id", id, "--owner", owner, "--alg", alg, "--out", path)
	mustContain(t, "gov-key create stderr", errs, "wrote private key \""+id+"\" to "+path)
	var pub keys.PublicKey
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&pub); err != nil {
		t.Fatalf("gov-key create printed %q: %v", out, err)
	}
	if err := pub.Validate(); err != nil || pub.ID != id || pub.Owner != owner || pub.Algorithm != alg {
		t.Fatalf("printed public key %+v: %v", pub, err)
	}
	return pub, path
}

func TestGovKeyCreate(t *testing.T) {
	dir := t.TempDir()
	for _, alg := range []string{keys.Ed25519, keys.ECDSAP256} {
		pub, path := createGovKey(t, dir, "approver-"+alg, "carol", alg)
		k, err := keys.LoadPrivate(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(k.Public.Key, pub.Key) {
			t.Fatalf("%s: printed public key is not the file's", alg)
		}
		if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: key file mode %v, want 0600", alg, fi.Mode().Perm())
		}
	}
	// The default algorithm is ed25519.
	out, _ := wantSealsign(t, 0, "gov-key", "create", "--id", "c1", "--owner", "ops", "--out", filepath.Join(dir, "c1.key"))
	mustContain(t, "default algorithm", out, `"algorithm": "ed25519"`)
	before, _ := os.ReadFile(filepath.Join(dir, "c1.key"))
	_, errs := wantSealsign(t, 1, "gov-key", "create", "--id", "c1", "--owner", "ops", "--out", filepath.Join(dir, "c1.key"))
	mustContain(t, "overwrite", errs, "sealsign: gov-key create: keys: ", "refusing to overwrite a key file")
	if after, _ := os.ReadFile(filepath.Join(dir, "c1.key")); !bytes.Equal(before, after) {
		t.Fatal("a refused gov-key create changed the existing key file")
	}
}

func TestPolicySignShowAccept(t *testing.T) {
	dir := t.TempDir()
	pub1, key1 := createGovKey(t, dir, "admin-1", "alice", keys.Ed25519)
	pub2, key2 := createGovKey(t, dir, "admin-2", "bob", keys.ECDSAP256)
	set, err := keys.NewSet([]keys.PublicKey{pub1, pub2})
	if err != nil {
		t.Fatal(err)
	}
	admins := policy.Admins{Keys: set, Quorum: 2}
	signed := filepath.Join(dir, "policy.signed")
	now := time.Now()

	// admin-2 signs first; the file lists signatures by key id anyway.
	out, _ := wantSealsign(t, 0, "policy", "sign", "--key", key2, "--json", defaultPolicy, "--out", signed)
	mustContain(t, "first sign", out, "signed policy v1 for cluster demo as admin-2 (owner bob): 1 signature(s): admin-2", "wrote "+signed)
	one, _ := os.ReadFile(signed)
	if _, err := policy.Accept(nil, one, admins, "demo", now); err == nil || !strings.Contains(err.Error(), "1 valid admin signatures of 2 needed") {
		t.Fatalf("one signature accepted at quorum 2: %v", err)
	}

	// admin-1 adds its signature in place.
	out, _ = wantSealsign(t, 0, "policy", "sign", "--key", key1, "--signed", signed, "--out", signed)
	mustContain(t, "second sign", out, "as admin-1 (owner alice): 2 signature(s): admin-1, admin-2")
	two, _ := os.ReadFile(signed)
	p, err := policy.Accept(nil, two, admins, "demo", now)
	if err != nil {
		t.Fatalf("policy.Accept of the CLI's output: %v", err)
	}
	if p.Version != 1 || p.ClusterID != "demo" || len(p.Rules) != 4 {
		t.Fatalf("accepted policy v%d of %q with %d rules", p.Version, p.ClusterID, len(p.Rules))
	}
	if _, err := policy.Accept(nil, two, admins, "prod", now); err == nil {
		t.Fatal("accepted for another cluster")
	}
	sp, err := policy.DecodeSigned(two)
	if err != nil {
		t.Fatal(err)
	}
	if ids := strings.Join(signerIDs(sp), ","); ids != "admin-1,admin-2" {
		t.Errorf("signatures by %s, want admin-1,admin-2 (sorted)", ids)
	}
	// What was signed is the canonical encoding of the JSON policy.
	src, _ := os.ReadFile(defaultPolicy)
	want, _ := policy.ParseJSON(src)
	enc, _ := want.Encode()
	if !bytes.Equal(sp.Policy, enc) {
		t.Error("signed bytes are not the policy's canonical encoding")
	}
	// No temporary files are left next to the output.
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("left %s behind", e.Name())
		}
	}

	// A key signs once: the file is left as it was.
	_, errs := wantSealsign(t, 1, "policy", "sign", "--key", key1, "--signed", signed, "--out", signed)
	mustContain(t, "duplicate", errs, `sealsign: policy sign: `+signed+` is already signed by key "admin-1"; a key signs a policy once`)
	if again, _ := os.ReadFile(signed); !bytes.Equal(again, two) {
		t.Fatal("a refused signature changed the signed policy")
	}

	// Only the --signed input is replaced.
	_, errs = wantSealsign(t, 1, "policy", "sign", "--key", key1, "--json", defaultPolicy, "--out", signed)
	mustContain(t, "overwrite", errs, signed+" exists and is not the --signed input; refusing to replace it")
	copyPath := filepath.Join(t.TempDir(), "copy.signed")
	os.WriteFile(copyPath, one, 0o644)
	_, errs = wantSealsign(t, 1, "policy", "sign", "--key", key1, "--signed", copyPath, "--out", signed)
	mustContain(t, "overwrite", errs, "refusing to replace it")
	if again, _ := os.ReadFile(signed); !bytes.Equal(again, two) {
		t.Fatal("a refused sign replaced the signed policy")
	}

	out, _ = wantSealsign(t, 0, "policy", "show", signed)
	mustContain(t, "show", out,
		"policy v1 for cluster demo\n",
		"issued_at         2026-01-01T00:00:00Z (1767225600)",
		"not_before        2026-01-01T00:00:00Z (1767225600)",
		"update_time_lock  172800 s (48h0m0s)",
		"rules (4):",
		"deny-raw   deny",
		"eth-small  allow  limit key-rate",
		"eth-large  allow  approvals: 2 of treasury; limit key-rate",
		"btc-small  allow  limit key-rate; limit key-daily",
		"signatures (2, not verified here): admin-1, admin-2")

	// With the manifest, show checks the signatures; against other admins
	// it fails.
	client, _ := keys.Generate("client-1", "payments", keys.Ed25519)
	mdir := t.TempDir()
	manifest := writeManifestAdmins(t, mdir, []keys.PublicKey{pub1, pub2}, []keys.PublicKey{client.Public}, nil)
	out, _ = wantSealsign(t, 0, "policy", "show", signed, "--manifest", manifest)
	mustContain(t, "show --manifest", out, "signatures (2, admin quorum of "+manifest+" met): admin-1, admin-2")
	out, _ = wantSealsign(t, 0, "policy", "show", "--json", "--manifest", manifest, signed)
	var rep struct {
		Policy   struct{ Version uint64 } `json:"policy"`
		Signers  []string                 `json:"signers"`
		Verified *bool                    `json:"verified"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.Policy.Version != 1 || len(rep.Signers) != 2 || rep.Verified == nil || !*rep.Verified {
		t.Fatalf("show --json: %v\n%s", err, out)
	}
	strangers := writeManifest(t, t.TempDir(), []keys.PublicKey{client.Public}, nil)
	out, errs = wantSealsign(t, 1, "policy", "show", signed, "--manifest", strangers)
	mustContain(t, "show against other admins", out, "INVALID under "+strangers)
	mustContain(t, "show against other admins", errs, "policy: 0 valid admin signatures of 2 needed", `signature 0 by "admin-1": does not verify`)

	// A file that is not a signed policy.
	junk := filepath.Join(dir, "junk")
	os.WriteFile(junk, []byte("not cbor"), 0o644)
	_, errs = wantSealsign(t, 1, "policy", "show", junk)
	mustContain(t, "junk", errs, "sealsign: policy show: "+junk+": policy: decode signed policy")
	_, errs = wantSealsign(t, 1, "policy", "sign", "--key", key1, "--signed", junk, "--out", filepath.Join(dir, "x"))
	mustContain(t, "junk", errs, "policy: decode signed policy")
	// An invalid policy is never signed.
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, bytes.Replace(src, []byte(`"effect": "deny"`), []byte(`"effect": "maybe"`), 1), 0o644)
	_, errs = wantSealsign(t, 1, "policy", "sign", "--key", key1, "--json", bad, "--out", filepath.Join(dir, "bad.signed"))
	mustContain(t, "invalid policy", errs, "sealsign: policy sign: "+bad+": policy:")
	if _, err := os.Stat(filepath.Join(dir, "bad.signed")); err == nil {
		t.Error("an invalid policy was written")
	}
}

func TestPolicyPush(t *testing.T) {
	dir := t.TempDir()
	_, key1 := createGovKey(t, dir, "admin-1", "alice", keys.Ed25519)
	_, key2 := createGovKey(t, dir, "admin-2", "bob", keys.Ed25519)
	signed := filepath.Join(dir, "policy.signed")
	wantSealsign(t, 0, "policy", "sign", "--key", key1, "--json", defaultPolicy, "--out", signed)
	wantSealsign(t, 0, "policy", "sign", "--key", key2, "--signed", signed, "--out", signed)
	file, _ := os.ReadFile(signed)

	ok := func(id string) server.PolicyPartyResult {
		return server.PolicyPartyResult{PolicyUpdateResponse: api.PolicyUpdateResponse{PartyID: id, Accepted: 1, NotBefore: 1767225600, Effective: 1}}
	}
	var (
		code   int
		answer any
		got    []byte
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/policy" {
			http.NotFound(w, r)
			return
		}
		var body server.PolicyPush
		json.NewDecoder(r.Body).Decode(&body)
		got = body.Policy
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(answer)
	}))
	defer srv.Close()

	code, answer = http.StatusOK, server.PolicyPushResponse{Parties: []server.PolicyPartyResult{ok("a"), ok("b"), ok("c")}}
	out, _ := wantSealsign(t, 0, "policy", "push", signed, "--host", srv.URL)
	if !bytes.Equal(got, file) {
		t.Fatal("the host did not get the signed policy file's bytes")
	}
	mustContain(t, "push", out, "pushing policy v1 for cluster demo (2 signatures: admin-1, admin-2)",
		"party a: accepted v1, effective v1", "party c: accepted v1, effective v1")

	refused := server.PolicyPartyResult{Error: "policy: policy version 1 is not newer than the sealed version 1"}
	refused.PartyID = "b"
	code, answer = http.StatusConflict, struct {
		server.PolicyPushResponse
		Error string `json:"error"`
	}{server.PolicyPushResponse{Parties: []server.PolicyPartyResult{ok("a"), refused}}, "party b refused the policy"}
	out, errs := wantSealsign(t, 1, "policy", "push", "--host", srv.URL, signed)
	mustContain(t, "partial push", out, "party a: accepted v1", "party b: refused: policy: policy version 1 is not newer than the sealed version 1")
	mustContain(t, "partial push", errs, "sealsign: policy push: 1 of 2 parties refused policy v1")

	out, _ = wantSealsign(t, 1, "policy", "push", "--host", srv.URL, "--json", signed)
	var r server.PolicyPushResponse
	if err := json.Unmarshal([]byte(out), &r); err != nil || len(r.Parties) != 2 || r.Parties[1].Error == "" {
		t.Fatalf("push --json: %v\n%s", err, out)
	}

	code, answer = http.StatusBadGateway, map[string]string{"error": "no party reachable"}
	_, errs = wantSealsign(t, 1, "policy", "push", "--host", srv.URL, signed)
	mustContain(t, "failed push", errs, "sealsign: policy push: no party reachable")
}

func TestPolicyUsage(t *testing.T) {
	dir := t.TempDir()
	_, key := createGovKey(t, dir, "admin-1", "alice", keys.Ed25519)
	_, errs := wantSealsign(t, 2, "policy")
	mustContain(t, "policy", errs, "Usage:", "sealsign policy sign --key ADMINFILE", "Examples:", "Exit codes:")
	out, _ := wantSealsign(t, 0, "policy", "-h")
	mustContain(t, "policy -h", out, "sealsign policy show FILE")
	for _, verb := range []string{"sign", "show", "push"} {
		out, _ := wantSealsign(t, 0, "policy", verb, "-h")
		mustContain(t, "policy "+verb+" -h", out, "sealsign policy "+verb)
	}
	out, _ = wantSealsign(t, 0, "gov-key", "create", "-h")
	mustContain(t, "gov-key create -h", out, "Usage: sealsign gov-key create --id ID --owner OWNER")
	for _, tt := range []struct {
		args []string
		msg  string
	}{
		{[]string{"policy", "frob"}, `sealsign: policy: unknown verb "frob"`},
		{[]string{"policy", "sign", "--json", defaultPolicy, "--out", "x"}, "sealsign: policy sign: --key ADMINFILE is required"},
		{[]string{"policy", "sign", "--key", key, "--out", "x"}, "give exactly one of --json POLICY.json and --signed FILE"},
		{[]string{"policy", "sign", "--key", key, "--json", defaultPolicy, "--signed", "s", "--out", "x"}, "give exactly one of"},
		{[]string{"policy", "sign", "--key", key, "--json", defaultPolicy}, "--out FILE is required"},
		{[]string{"policy", "sign", "--key", key, "--json", defaultPolicy, "--out", "x", "extra"}, `sign takes no arguments, got ["extra"]`},
		{[]string{"policy", "sign", "--json"}, "flag needs an argument: -json"},
		{[]string{"policy", "show"}, "sealsign: policy show: show takes one FILE, got 0 arguments"},
		{[]string{"policy", "show", "a", "b"}, "got 2 arguments"},
		{[]string{"policy", "push"}, "sealsign: policy push: push takes one FILE, got 0 arguments"},
		{[]string{"gov-key"}, "Usage: sealsign gov-key create"},
		{[]string{"gov-key", "delete"}, `sealsign: gov-key: unknown verb "delete"`},
		{[]string{"gov-key", "create", "--owner", "o", "--out", "x"}, `sealsign: gov-key create: --id "" is not a key id`},
		{[]string{"gov-key", "create", "--id", "k", "--owner", "two words", "--out", "x"}, `--owner "two words" is not an owner name`},
		{[]string{"gov-key", "create", "--id", "k", "--owner", "o", "--alg", "rsa", "--out", "x"}, `--alg "rsa" unsupported (want ed25519 or ecdsa-p256)`},
		{[]string{"gov-key", "create", "--id", "k", "--owner", "o"}, "--out FILE is required"},
	} {
		_, errs := wantSealsign(t, 2, tt.args...)
		if !strings.Contains(errs, tt.msg) {
			t.Errorf("%v: stderr %q, want %q", tt.args, errs, tt.msg)
		}
	}
	if _, err := os.Stat("x"); err == nil {
		t.Error("a usage error wrote x")
	}
}
