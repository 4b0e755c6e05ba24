package main

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sealsign/sealsign/enclave/api"
	"github.com/sealsign/sealsign/governance/keys"
	"github.com/sealsign/sealsign/governance/request"
	"github.com/sealsign/sealsign/governance/tx"
	"github.com/sealsign/sealsign/host/server"
)

// eip155Payload is the unsigned transaction of the EIP-155 worked example
// (governance/tx/testdata/eip155-example.txt): 1 ETH to 0x3535…35 on
// chain 1, gas price 20 gwei, gas 21000.
const eip155Payload = "ec098504a817c800825208943535353535353535353535353535353535353535880de0b6b3a764000080018080"

// runSealsign runs the CLI as main would, with stdin injected.
func runSealsign(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	old := approveStdin
	approveStdin = strings.NewReader(stdin)
	defer func() { approveStdin = old }()
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func wantSealsign(t *testing.T, wantCode int, args ...string) (string, string) {
	t.Helper()
	return wantSealsignIn(t, wantCode, "", args...)
}

func wantSealsignIn(t *testing.T, wantCode int, stdin string, args ...string) (string, string) {
	t.Helper()
	code, out, errs := runSealsign(t, stdin, args...)
	if code != wantCode {
		t.Fatalf("sealsign %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, wantCode, out, errs)
	}
	return out, errs
}

func mustContain(t *testing.T, what, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, got)
		}
	}
}

// govKey generates a governance key and writes its file in dir.
func govKey(t *testing.T, dir, id, owner, alg string) (*keys.PrivateKey, string) {
	t.Helper()
	k, err := keys.Generate(id, owner, alg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, id+".key")
	if err := k.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	return k, path
}

// writeManifest writes a valid manifest of cluster "demo" with the given
// clients and approvers (all in group "treasury") and returns its path.
func writeManifest(t *testing.T, dir string, clients, approvers []keys.PublicKey) string {
	t.Helper()
	a1, _ := keys.Generate("admin-1", "alice", keys.Ed25519)
	a2, _ := keys.Generate("admin-2", "bob", keys.Ed25519)
	return writeManifestAdmins(t, dir, []keys.PublicKey{a1.Public, a2.Public}, clients, approvers)
}

// writeManifestAdmins is writeManifest with the given admins (quorum 2).
func writeManifestAdmins(t *testing.T, dir string, admins, clients, approvers []keys.PublicKey) string {
	t.Helper()
	g := &api.Governance{
		Admins: admins, AdminQuorum: 2,
		Approvers: approvers, Clients: clients, Policy: []byte{1},
	}
	if len(approvers) > 0 {
		g.Groups = map[string][]string{}
		for _, a := range approvers {
			g.Groups["treasury"] = append(g.Groups["treasury"], a.ID)
		}
	}
	pcr := strings.Repeat("ab", 48)
	m := api.Manifest{Version: 1, ClusterID: "demo", Threshold: 1, Governance: g, Parties: []api.ManifestParty{
		{ID: "a", Kind: "dev", PCRs: map[string]string{"0": pcr}},
		{ID: "b", Kind: "dev", PCRs: map[string]string{"0": pcr}},
	}}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := api.ParseManifest(data); err != nil {
		t.Fatalf("test manifest invalid: %v", err)
	}
	path := filepath.Join(dir, "manifest.json")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// fakeHost is the HTTP layer of a host: it checks each posted request
// the way an enclave does (request.Verify against the client keys) and
// answers with the status answer gives it.
type fakeHost struct {
	t       *testing.T
	clients keys.Set
	answer  func(r *request.Request, signed []byte) (int, *server.RequestStatus)

	mu   sync.Mutex
	got  []*request.Request
	errs []string
}

func (f *fakeHost) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/requests" {
		http.Error(w, `{"error":"not found"}`, http.StatusNotFound)
		return
	}
	var body server.SubmitRequest
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
		return
	}
	req, err := request.Verify(body.Request, f.clients, "demo", time.Now(), 0)
	f.mu.Lock()
	defer f.mu.Unlock()
	if err != nil {
		f.errs = append(f.errs, err.Error())
		w.WriteHeader(http.StatusBadRequest)
		json.NewEncoder(w).Encode(map[string]string{"error": err.Error(), "code": "bad_request"})
		return
	}
	f.got = append(f.got, req)
	code, st := f.answer(req, body.Request)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(st)
}

func (f *fakeHost) last(t *testing.T) *request.Request {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.got) == 0 {
		t.Fatalf("the host got no verified request (refused: %v)", f.errs)
	}
	return f.got[len(f.got)-1]
}

// baseStatus is what the host reports for any state.
func baseStatus(r *request.Request, signed []byte, state string) *server.RequestStatus {
	rd, ph := request.Digest(signed), r.PayloadHash()
	return &server.RequestStatus{
		RequestID: r.ID, State: state, KeyID: r.KeyID, ClientKeyID: r.ClientKeyID, Request: signed,
		RequestDigest: hex.EncodeToString(rd[:]), PayloadHash: hex.EncodeToString(ph[:]),
		PolicyVersion: 1, ExpiresAt: r.ExpiresAt, Updated: time.Now(),
	}
}

var (
	testSig = strings.Repeat("ab", 64)
	testTx  = "f86c098504a817c800825208943535353535353535353535353535353535353535880de0b6b3a76400008025a0"
)

func signedAnswer(r *request.Request, signed []byte) (int, *server.RequestStatus) {
	st := baseStatus(r, signed, server.StateSigned)
	st.Verdicts = []api.Verdict{{PartyID: "a", RequestID: r.ID, PolicyVersion: 1, Outcome: api.OutcomeAllow, RuleID: "eth-small"}}
	st.Result = &server.SignResult{
		Algorithm: tx.AlgorithmECDSASecp256k1, Signers: []string{"a", "b"}, RuleID: "eth-small",
		Digests: []string{"daf5a779ae972f972197303d7b574746c7ef83eadac0f2791ad23db92e4c8e53"}, Signatures: []string{testSig},
		RecoveryIDs: []int{1}, Transaction: testTx,
	}
	return http.StatusOK, st
}

func pendingAnswer(r *request.Request, signed []byte) (int, *server.RequestStatus) {
	st := baseStatus(r, signed, server.StatePending)
	st.Verdicts = []api.Verdict{{PartyID: "a", RequestID: r.ID, PolicyVersion: 1, Outcome: api.OutcomeNeedsApproval,
		Denials:   []api.Denial{{Code: "approvals-missing", RuleID: "eth-large"}},
		Pending:   []api.PendingRule{{RuleID: "eth-large", Logic: "and", Groups: []api.GroupNeeds{{Group: "treasury", Threshold: 2, Have: 1, Need: 1}}}},
		Approvals: []api.ApprovalSeen{{ApproverKeyID: "treasury-1", Decision: "approve"}},
	}}
	return http.StatusAccepted, st
}

func deniedAnswer(r *request.Request, signed []byte) (int, *server.RequestStatus) {
	st := baseStatus(r, signed, server.StateDenied)
	small := api.Denial{Code: "condition-false", RuleID: "eth-small", Clause: "request.chain == 'eip155:1'"}
	rate := api.Denial{Code: "velocity-exceeded", RuleID: "eth-large", LimitID: "key-rate", Detail: "6 requests in 600 s, limit 5"}
	escape := api.Denial{Code: "no-allow-rule", Detail: "\x1b[2Jcleared"}
	st.Verdicts = []api.Verdict{
		{PartyID: "a", RequestID: r.ID, PolicyVersion: 1, Outcome: api.OutcomeDeny, Denials: []api.Denial{small, rate}},
		{PartyID: "b", RequestID: r.ID, PolicyVersion: 1, Outcome: api.OutcomeDeny, Denials: []api.Denial{small, escape}},
	}
	st.Error = "denied by policy"
	return http.StatusForbidden, st
}

// requestFixture is a fake host and a client key it knows.
type requestFixture struct {
	dir, keyFile, url string
	host              *fakeHost
	key               *keys.PrivateKey
}

func newRequestFixture(t *testing.T, alg string) *requestFixture {
	t.Helper()
	dir := t.TempDir()
	k, path := govKey(t, dir, "client-1", "payments", alg)
	f := &fakeHost{t: t, clients: keys.Set{k.Public.ID: k.Public}, answer: signedAnswer}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return &requestFixture{dir: dir, keyFile: path, url: srv.URL, host: f, key: k}
}

func (fx *requestFixture) args(extra ...string) []string {
	return append([]string{"request", "--host", fx.url, "--cluster", "demo", "--key", "key-1", "--client-key", fx.keyFile}, extra...)
}

func TestRequestStates(t *testing.T) {
	fx := newRequestFixture(t, keys.Ed25519)

	fx.host.answer = signedAnswer
	out, _ := wantSealsign(t, 0, fx.args("--evm", "0x"+eip155Payload, "--signers", "b,a")...)
	r := fx.host.last(t)
	if r.Kind != tx.KindEVM || hex.EncodeToString(r.Payload) != eip155Payload || r.KeyID != "key-1" || r.ClientKeyID != "client-1" {
		t.Fatalf("host got request %+v", r)
	}
	if strings.Join(r.Signers, ",") != "a,b" {
		t.Errorf("signers %v, want sorted [a b]", r.Signers)
	}
	if life := r.ExpiresAt - r.IssuedAt; life != 600 {
		t.Errorf("request lives %d s, want the default 600", life)
	}
	mustContain(t, "signed output", out, "request "+r.ID+": signed", "version 1, rule eth-small", "signers", "a, b",
		"signature", testSig+" (recovery id 1)", "transaction", testTx, "daf5a779")

	fx.host.answer = pendingAnswer
	out, _ = wantSealsign(t, 0, fx.args("--evm", eip155Payload, "--ttl", "5m")...)
	r = fx.host.last(t)
	if life := r.ExpiresAt - r.IssuedAt; life != 300 {
		t.Errorf("--ttl 5m: request lives %d s", life)
	}
	mustContain(t, "pending output", out, ": pending", "rule eth-large: treasury 1 of 2 (1 more) (party a)",
		"treasury-1: approve", "sealsign approve "+r.ID+" --approver-key FILE")

	fx.host.answer = deniedAnswer
	out, errs := wantSealsign(t, 1, fx.args("--evm", eip155Payload)...)
	r = fx.host.last(t)
	mustContain(t, "denied output", out, "request "+r.ID+": denied")
	mustContain(t, "denied reasons", errs,
		"sealsign: denied by policy v1 on parties a, b: rule eth-small: condition-false: request.chain == 'eip155:1'\n",
		"sealsign: denied by policy v1 on party a: rule eth-large: limit key-rate: velocity-exceeded (6 requests in 600 s, limit 5)\n",
		`sealsign: denied by policy v1 on party b: no-allow-rule (\x1b[2Jcleared)`,
		"sealsign: request "+r.ID+" denied: denied by policy\n")
	if strings.Contains(errs, "\x1b") {
		t.Errorf("a terminal escape from the host reached the terminal: %q", errs)
	}

	// --json prints the host's status as is, and exit codes still follow
	// the state.
	out, errs = wantSealsign(t, 1, fx.args("--evm", eip155Payload, "--json")...)
	var st server.RequestStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil || st.State != server.StateDenied || len(st.Verdicts) != 2 {
		t.Fatalf("--json output %q: %v", out, err)
	}
	mustContain(t, "denied reasons with --json", errs, "rule eth-small: condition-false")
	fx.host.answer = signedAnswer
	out, _ = wantSealsign(t, 0, fx.args("--evm", eip155Payload, "--json")...)
	if err := json.Unmarshal([]byte(out), &st); err != nil || st.Result == nil || st.Result.Transaction != testTx {
		t.Fatalf("--json output %q: %v", out, err)
	}
}

func TestRequestPayloads(t *testing.T) {
	fx := newRequestFixture(t, keys.ECDSAP256)
	raw, _ := hex.DecodeString(eip155Payload)
	psbt := append([]byte("psbt\xff"), 1, 2, 3)
	digest := strings.Repeat("9f", 32)
	for _, tt := range []struct {
		name    string
		flag    string
		content []byte // file content; nil for a flag value
		value   string
		kind    tx.Kind
		payload []byte
	}{
		{"evm hex", "--evm", nil, eip155Payload, tx.KindEVM, raw},
		{"evm file raw", "--evm-file", raw, "", tx.KindEVM, raw},
		{"evm file hex", "--evm-file", []byte("0x" + eip155Payload + "\n"), "", tx.KindEVM, raw},
		{"psbt raw", "--psbt-file", psbt, "", tx.KindPSBT, psbt},
		{"psbt base64", "--psbt-file", []byte(base64.StdEncoding.EncodeToString(psbt) + "\n"), "", tx.KindPSBT, psbt},
		{"psbt hex", "--psbt-file", []byte(hex.EncodeToString(psbt)), "", tx.KindPSBT, psbt},
		{"raw digest", "--raw-digest", nil, digest, tx.KindRaw, bytes.Repeat([]byte{0x9f}, 32)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v := tt.value
			if tt.content != nil {
				v = filepath.Join(t.TempDir(), "payload")
				os.WriteFile(v, tt.content, 0o644)
			}
			wantSealsign(t, 0, fx.args(tt.flag, v)...)
			r := fx.host.last(t)
			if r.Kind != tt.kind || !bytes.Equal(r.Payload, tt.payload) {
				t.Fatalf("host got kind %s payload %x, want %s %x", r.Kind, r.Payload, tt.kind, tt.payload)
			}
		})
	}
	// A payload file that is no PSBT fails (exit 1) and nothing is sent.
	bad := filepath.Join(t.TempDir(), "bad.psbt")
	os.WriteFile(bad, []byte("hello world"), 0o644)
	n := len(fx.host.got)
	_, errs := wantSealsign(t, 1, fx.args("--psbt-file", bad)...)
	mustContain(t, "stderr", errs, "sealsign: request: "+bad+": not a PSBT")
	_, errs = wantSealsign(t, 1, fx.args("--evm-file", filepath.Join(t.TempDir(), "missing"))...)
	mustContain(t, "stderr", errs, "no such file")
	if len(fx.host.got) != n {
		t.Fatal("a request was sent for an unreadable payload")
	}
}

// The cluster id comes from the manifest in --dir, and a request for
// another cluster is refused by the (fake) host's verification.
func TestRequestCluster(t *testing.T) {
	fx := newRequestFixture(t, keys.Ed25519)
	writeManifest(t, fx.dir, []keys.PublicKey{fx.key.Public}, nil)
	wantSealsign(t, 0, "request", "--host", fx.url, "--dir", fx.dir, "--key", "key-1", "--client-key", fx.keyFile, "--evm", eip155Payload)
	if r := fx.host.last(t); r.ClusterID != "demo" {
		t.Fatalf("cluster %q, want the manifest's", r.ClusterID)
	}
	_, errs := wantSealsign(t, 1, "request", "--host", fx.url, "--cluster", "other", "--key", "key-1", "--client-key", fx.keyFile, "--evm", eip155Payload)
	mustContain(t, "stderr", errs, `sealsign: request: request: wrong cluster: request "req-`, `is for cluster "other", want "demo"`)

	// Another client's key is refused by the host's verification.
	_, otherFile := govKey(t, t.TempDir(), "client-2", "payments", keys.Ed25519)
	_, errs = wantSealsign(t, 1, "request", "--host", fx.url, "--cluster", "demo", "--key", "key-1", "--client-key", otherFile, "--evm", eip155Payload)
	mustContain(t, "stderr", errs, `unknown client key: "client-2"`)
}

func TestRequestUsage(t *testing.T) {
	fx := newRequestFixture(t, keys.Ed25519)
	base := []string{"request", "--host", fx.url, "--cluster", "demo"}
	with := func(a ...string) []string { return append(append([]string(nil), base...), a...) }
	kc := []string{"--key", "key-1", "--client-key", fx.keyFile}
	for _, tt := range []struct {
		args []string
		msg  string
	}{
		{with("--client-key", fx.keyFile, "--evm", eip155Payload), "--key KEYID is required"},
		{with("--key", "key-1", "--evm", eip155Payload), "--client-key FILE is required"},
		{with(kc...), "give exactly one payload: --evm, --evm-file, --psbt-file or --raw-digest (got 0)"},
		{with(append(kc, "--evm", eip155Payload, "--raw-digest", "00")...), "(got 2)"},
		{with(append(kc, "--evm", "zz")...), "--evm: not hex"},
		{with(append(kc, "--raw-digest", "abc")...), "--raw-digest: not hex"},
		{with(append(kc, "--evm", eip155Payload, "--ttl", "0s")...), "--ttl 0s must be positive"},
		{with(append(kc, "--evm", eip155Payload, "--ttl", "1h")...), "--ttl 1h0m0s is longer than the 15m0s enclaves accept"},
		{with(append(kc, "--evm", eip155Payload, "--ttl", "soon")...), `invalid value "soon" for flag -ttl`},
		{with(append(kc, "--evm", eip155Payload, "--signers", "a,b,a")...), `--signers names party "a" twice`},
		{with(append(kc, "--evm", eip155Payload, "extra")...), `unexpected arguments ["extra"]`},
		{with(append(kc, "--evm", eip155Payload, "--bogus")...), "flag provided but not defined: -bogus"},
		{with(append(kc, "--evm", eip155Payload, "--cluster", "bad cluster")...), `--cluster "bad cluster" is not a cluster id`},
		{append([]string{"request", "--host", fx.url}, append(kc, "--evm", eip155Payload)...), "with --host, pass --cluster ID"},
	} {
		_, errs := wantSealsign(t, 2, tt.args...)
		if !strings.HasPrefix(errs, "sealsign: request: ") || !strings.Contains(errs, tt.msg) || !strings.Contains(errs, `Run "sealsign request -h"`) {
			t.Errorf("%v: stderr %q, want %q", tt.args[4:], errs, tt.msg)
		}
	}
	if len(fx.host.got) != 0 {
		t.Fatalf("usage errors sent %d requests", len(fx.host.got))
	}
	_, errs := wantSealsign(t, 2, "request")
	mustContain(t, "no arguments", errs, "Usage: sealsign request")
	out, _ := wantSealsign(t, 0, "request", "-h")
	mustContain(t, "help", out, "Usage: sealsign request --key KEYID --client-key FILE", "Examples:", "Exit codes: 0 signed or pending, 1 denied")
	out, _ = wantSealsign(t, 0, "requests", "--help")
	mustContain(t, "help", out, "Usage: sealsign requests")
	_, errs = wantSealsign(t, 2, "requests", "--state", "done", "--host", fx.url)
	mustContain(t, "stderr", errs, `sealsign: requests: --state "done" unknown`)
	_, errs = wantSealsign(t, 2, "sign", "--key", "k")
	mustContain(t, "stderr", errs, `sealsign: unknown command "sign"`)
}

func TestRequestsList(t *testing.T) {
	var gotQuery string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/requests" || r.Method != http.MethodGet {
			http.NotFound(w, r)
			return
		}
		gotQuery = r.URL.RawQuery
		pend := &request.Request{ID: "req-0123456789abcdef", KeyID: "key-1", ClientKeyID: "client-1", Kind: tx.KindEVM, Payload: []byte{1}}
		_, p := pendingAnswer(pend, []byte{0xa0})
		done := &request.Request{ID: "req-fedcba9876543210", KeyID: "key-2", ClientKeyID: "client-2", Kind: tx.KindRaw, Payload: []byte{1}}
		_, s := signedAnswer(done, []byte{0xa0})
		json.NewEncoder(w).Encode(server.RequestList{Requests: []server.RequestStatus{*p, *s}})
	}))
	defer srv.Close()
	out, _ := wantSealsign(t, 0, "requests", "--host", srv.URL, "--state", "pending")
	if gotQuery != "state=pending" {
		t.Errorf("query %q, want state=pending", gotQuery)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "REQUEST") {
		t.Fatalf("list:\n%s", out)
	}
	if f := strings.Fields(lines[1]); len(f) < 5 || f[0] != "req-0123456789abcdef" || f[1] != "pending" || f[2] != "key-1" || f[3] != "client-1" ||
		!strings.Contains(lines[1], "rule eth-large: treasury 1 of 2 (1 more)") {
		t.Errorf("pending row %q", lines[1])
	}
	if f := strings.Fields(lines[2]); len(f) != 4 || f[1] != "signed" {
		t.Errorf("signed row %q", lines[2])
	}
	out, _ = wantSealsign(t, 0, "requests", "--host", srv.URL, "--json")
	var list []server.RequestStatus
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list) != 2 {
		t.Fatalf("--json: %v\n%s", err, out)
	}
}
