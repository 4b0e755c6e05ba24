package main

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"

	"github.com/sealsign/sealsign/governance/approval"
	"github.com/sealsign/sealsign/governance/keys"
	"github.com/sealsign/sealsign/governance/request"
	"github.com/sealsign/sealsign/governance/tx"
	"github.com/sealsign/sealsign/host/client"
	"github.com/sealsign/sealsign/host/server"
)

// approveHost fakes the HTTP layer of a host holding one pending request:
// it serves the request and the threshold key, and verifies posted
// approvals as an enclave would (approval.Verify against the approver keys
// and the subject computed from the request itself, not from the status).
type approveHost struct {
	t         *testing.T
	approvers keys.Set
	key       server.KeyJSON
	signed    []byte           // the request the client signed
	req       *request.Request // and as verified
	// status is what GET /v1/requests/{id} answers; tests make it lie.
	status func() (int, *server.RequestStatus)

	mu        sync.Mutex
	approvals []*approval.Approval
	errs      []string
}

func (h *approveHost) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := h.req.ID
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/v1/requests/"+id:
		code, st := h.status()
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(st)
	case r.Method == http.MethodGet && r.URL.Path == "/v1/keys/"+h.key.ID:
		json.NewEncoder(w).Encode(h.key)
	case r.Method == http.MethodPost && r.URL.Path == "/v1/requests/"+id+"/approvals":
		var body server.ApprovalSubmit
		json.NewDecoder(r.Body).Decode(&body)
		subject := approval.Subject{ClusterID: "demo", RequestID: id, RequestDigest: request.Digest(h.signed), PayloadHash: h.req.PayloadHash(), PolicyVersion: 1}
		a, err := approval.Verify(body.Approval, h.approvers, subject, time.Now())
		h.mu.Lock()
		defer h.mu.Unlock()
		if err != nil {
			h.errs = append(h.errs, err.Error())
			w.WriteHeader(http.StatusBadRequest)
			json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
			return
		}
		h.approvals = append(h.approvals, a)
		if a.Decision == approval.Reject {
			st := baseStatus(h.req, h.signed, server.StateRejected)
			st.Error = "rejected by " + a.ApproverKeyID + ": " + a.Reason
			w.WriteHeader(http.StatusForbidden)
			json.NewEncoder(w).Encode(st)
			return
		}
		_, st := signedAnswer(h.req, h.signed)
		json.NewEncoder(w).Encode(st)
	default:
		w.WriteHeader(http.StatusNotFound)
		json.NewEncoder(w).Encode(map[string]string{"error": "not found: " + r.URL.Path})
	}
}

func (h *approveHost) decisions() []*approval.Approval {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]*approval.Approval(nil), h.approvals...)
}

type approveFixture struct {
	host                         *approveHost
	url, manifest, approver, dir string
	client                       *keys.PrivateKey
	approverKey                  *keys.PrivateKey
	stranger, strangerKeyFile    string
	otherClientKey               *keys.PrivateKey
}

// newApproveFixture holds a pending request of client-1 to send 1 ETH
// (the EIP-155 example) with threshold key key-1, and a manifest listing
// client-1 and approver treasury-1.
func newApproveFixture(t *testing.T) *approveFixture {
	t.Helper()
	dir := t.TempDir()
	ck, _ := govKey(t, dir, "client-1", "payments", keys.Ed25519)
	ak, akFile := govKey(t, dir, "treasury-1", "carol", keys.ECDSAP256)
	sk, skFile := govKey(t, dir, "treasury-9", "mallory", keys.Ed25519)
	other, err := keys.Generate("client-2", "payments", keys.Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	manifest := writeManifest(t, dir, []keys.PublicKey{ck.Public}, []keys.PublicKey{ak.Public})

	payload, _ := hex.DecodeString(eip155Payload)
	signed, err := client.NewRequest(ck, "demo", "key-1", tx.KindEVM, payload, 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	r, err := request.Verify(signed, keys.Set{ck.Public.ID: ck.Public}, "demo", time.Now(), 0)
	if err != nil {
		t.Fatal(err)
	}
	seed := bytes.Repeat([]byte{0x46}, 32)
	pub := secp256k1.PrivKeyFromBytes(seed).PubKey().SerializeCompressed()
	h := &approveHost{
		t: t, approvers: keys.Set{ak.Public.ID: ak.Public, sk.Public.ID: sk.Public}, signed: signed, req: r,
		key: server.KeyJSON{ID: "key-1", Algorithm: tx.AlgorithmECDSASecp256k1, PublicKey: hex.EncodeToString(pub), Threshold: 1, Parties: []string{"a", "b"}},
	}
	h.status = func() (int, *server.RequestStatus) { return pendingAnswer(h.req, h.signed) }
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &approveFixture{host: h, url: srv.URL, manifest: manifest, approver: akFile, dir: dir, client: ck, approverKey: ak,
		stranger: sk.Public.ID, strangerKeyFile: skFile, otherClientKey: other}
}

func (fx *approveFixture) args(verb string, extra ...string) []string {
	return append([]string{verb, fx.host.req.ID, "--host", fx.url, "--manifest", fx.manifest, "--approver-key", fx.approver}, extra...)
}

func TestApproveShowsLocalSummary(t *testing.T) {
	fx := newApproveFixture(t)
	out, errs := wantSealsign(t, 0, fx.args("approve", "--yes", "--reason", "payroll", "--ttl", "30m")...)
	ph := fx.host.req.PayloadHash()
	mustContain(t, "approve output", out,
		"request "+fx.host.req.ID+"\n",
		"cluster       demo",
		"client        client-1 (signature verified against "+fx.manifest+")",
		"key           key-1 (ecdsa-secp256k1 "+fx.host.key.PublicKey+")",
		"chain         eip155:1 (Ethereum mainnet)",
		"method        native",
		"transfer 1    1 ETH (1000000000000000000 wei) to 0x3535353535353535353535353535353535353535",
		"fee           at most 420000000000000 wei (0.00042 ETH)",
		"payload hash  "+hex.EncodeToString(ph[:]),
		"policy        version 1 (as the host reports it",
		"needs         rule eth-large: treasury 1 of 2 (1 more) (party a, as the host reports it)",
		"request "+fx.host.req.ID+": signed")
	if strings.Contains(errs, "warning") {
		t.Errorf("unexpected warning with a manifest: %s", errs)
	}
	ds := fx.host.decisions()
	if len(ds) != 1 {
		t.Fatalf("host verified %d approvals (refused: %v), want 1", len(ds), fx.host.errs)
	}
	a := ds[0]
	if a.Decision != approval.Approve || a.ApproverKeyID != "treasury-1" || a.Reason != "payroll" || a.ExpiresAt-a.IssuedAt != 1800 {
		t.Fatalf("approval %+v", a)
	}

	// --json: the locally decoded summary and the final status; the human
	// summary goes to stderr.
	out, errs = wantSealsign(t, 0, fx.args("approve", "--yes", "--json")...)
	var rep approveReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("--json: %v\n%s", err, out)
	}
	if !rep.Verified || rep.ClusterID != "demo" || rep.Summary.Chain != "eip155:1" || len(rep.Summary.Transfers) != 1 ||
		rep.Summary.Transfers[0].Amount != "1000000000000000000" || rep.Summary.Fee != "420000000000000" ||
		rep.PayloadHash != hex.EncodeToString(ph[:]) || rep.Status == nil || rep.Status.State != server.StateSigned {
		t.Fatalf("--json report %+v", rep)
	}
	mustContain(t, "stderr with --json", errs, "transfer 1    1 ETH")
}

func TestApproveConfirmation(t *testing.T) {
	fx := newApproveFixture(t)
	for _, tt := range []struct {
		stdin string
		code  int
		msg   string
	}{
		{"n\n", 1, `sealsign: approve: not approved (answer "n")`},
		{"", 1, "sealsign: hint: pass --yes to approve without asking"},
		{"maybe\n", 1, `not approved (answer "maybe")`},
		{"y\n", 0, "Approve request " + fx.host.req.ID + " as treasury-1 (owner carol)? [y/N]"},
		{"YES\n", 0, "[y/N]"},
	} {
		before := len(fx.host.decisions())
		_, errs := wantSealsignIn(t, tt.code, tt.stdin, fx.args("approve")...)
		mustContain(t, "stderr for "+strings.TrimSpace(tt.stdin), errs, tt.msg)
		sent := len(fx.host.decisions()) - before
		if (tt.code == 0) != (sent == 1) {
			t.Errorf("answer %q: %d approvals sent", tt.stdin, sent)
		}
	}
}

// Whatever the host says about the request, the approval is only made for
// what the approver was shown.
func TestApproveRefusesHostLies(t *testing.T) {
	fx := newApproveFixture(t)
	h := fx.host
	payload, _ := hex.DecodeString(eip155Payload)
	foreign, err := client.NewRequest(fx.otherClientKey, "demo", "key-1", tx.KindEVM, payload, 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	otherCluster, _ := client.NewRequest(fx.client, "prod", "key-1", tx.KindEVM, payload, 10*time.Minute)
	// The same request id, validly signed by client-1, with a payload that
	// is no transaction.
	g := *h.req
	g.Payload = []byte{0xc0}
	garbage, err := request.New(g, fx.client.Signer)
	if err != nil {
		t.Fatal(err)
	}
	gr, _ := request.Verify(garbage, keys.Set{fx.client.Public.ID: fx.client.Public}, "demo", time.Now(), 0)
	pending := func(mutate func(st *server.RequestStatus)) func() (int, *server.RequestStatus) {
		return func() (int, *server.RequestStatus) {
			code, st := pendingAnswer(h.req, h.signed)
			mutate(st)
			return code, st
		}
	}
	for _, tt := range []struct {
		name   string
		status func() (int, *server.RequestStatus)
		args   []string
		msg    string
	}{
		{"payload hash", pending(func(st *server.RequestStatus) { st.PayloadHash = strings.Repeat("00", 32) }), nil,
			"the host reports payload hash 0000"},
		{"request digest", pending(func(st *server.RequestStatus) { st.RequestDigest = strings.Repeat("11", 32) }), nil,
			"the host reports request digest 1111"},
		{"key id", pending(func(st *server.RequestStatus) { st.KeyID = "key-2" }), nil,
			"the host describes request " + h.req.ID + " (key key-2"},
		{"unknown client", pending(func(st *server.RequestStatus) { st.Request = foreign }), nil,
			`refusing to approve: request: unknown client key: "client-2"`},
		{"other cluster", pending(func(st *server.RequestStatus) { st.Request = otherCluster }), nil,
			"request: wrong cluster"},
		{"undecodable payload", func() (int, *server.RequestStatus) {
			_, st := pendingAnswer(gr, garbage)
			return http.StatusAccepted, st
		}, nil, "refusing to approve what cannot be read: tx: "},
		{"not pending", func() (int, *server.RequestStatus) { return deniedAnswer(h.req, h.signed) }, nil,
			"sealsign: approve: request " + h.req.ID + " is denied: nothing to approve"},
		{"cluster disagrees with manifest", pending(func(*server.RequestStatus) {}), []string{"--cluster", "prod"},
			`--cluster "prod", but the manifest is of cluster "demo"`},
		{"approver not in manifest", pending(func(*server.RequestStatus) {}), []string{"--approver-key", fx.strangerKeyFile},
			`"treasury-9" is not an approver key of cluster "demo"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h.status = tt.status
			_, errs := wantSealsign(t, 1, fx.args("approve", append([]string{"--yes"}, tt.args...)...)...)
			mustContain(t, "stderr", errs, tt.msg)
		})
	}
	if n := len(h.decisions()); n != 0 {
		t.Fatalf("%d approvals sent for requests the approver could not check", n)
	}
}

func TestApproveWithoutManifest(t *testing.T) {
	fx := newApproveFixture(t)
	out, errs := wantSealsign(t, 0, "approve", fx.host.req.ID, "--host", fx.url, "--approver-key", fx.approver, "--yes")
	mustContain(t, "stderr", errs, "sealsign: warning: request "+fx.host.req.ID+"'s client signature is not verified: no manifest at hand")
	mustContain(t, "stdout", out, "(signature not verified (no manifest))", "1 ETH (1000000000000000000 wei)")
	if len(fx.host.decisions()) != 1 {
		t.Fatalf("approval not sent (host refused: %v)", fx.host.errs)
	}
	// The unverified request still has to be for --cluster.
	_, errs = wantSealsign(t, 1, "approve", fx.host.req.ID, "--host", fx.url, "--approver-key", fx.approver, "--yes", "--cluster", "prod")
	mustContain(t, "stderr", errs, `is for cluster "demo", not --cluster "prod"`)
}

func TestReject(t *testing.T) {
	fx := newApproveFixture(t)
	out, errs := wantSealsign(t, 0, fx.args("reject", "--reason", "unknown destination")...)
	mustContain(t, "stdout", out, "request "+fx.host.req.ID+": rejected")
	if strings.Contains(errs, "[y/N]") {
		t.Errorf("reject asked for confirmation: %s", errs)
	}
	ds := fx.host.decisions()
	if len(ds) != 1 || ds[0].Decision != approval.Reject || ds[0].Reason != "unknown destination" {
		t.Fatalf("decisions %+v (refused: %v)", ds, fx.host.errs)
	}
}

func TestApproveUsage(t *testing.T) {
	fx := newApproveFixture(t)
	id := fx.host.req.ID
	for _, tt := range []struct {
		args []string
		msg  string
	}{
		{[]string{"approve", "--approver-key", fx.approver}, "sealsign: approve: approve takes one request ID, got 0 arguments"},
		{[]string{"approve", id, id, "--approver-key", fx.approver}, "got 2 arguments"},
		{[]string{"approve", "short", "--approver-key", fx.approver}, `"short" is not a request id`},
		{[]string{"approve", id}, "--approver-key FILE is required"},
		{[]string{"reject", id, "--approver-key", fx.approver}, "sealsign: reject: reject needs --reason TEXT"},
		{[]string{"reject", id, "--approver-key", fx.approver, "--reason", "x", "--yes"}, "--yes is for approve"},
		{[]string{"approve", id, "--approver-key", fx.approver, "--reason", strings.Repeat("x", 257)}, "--reason is 257 bytes, at most 256"},
		{[]string{"approve", id, "--approver-key", fx.approver, "--ttl", "0s"}, "--ttl 0s must be positive and at most 168h0m0s"},
		{[]string{"approve", id, "--approver-key", fx.approver, "--ttl", "200h"}, "--ttl 200h0m0s"},
		{[]string{"approve", id, "--approver-key", fx.approver, "--nope"}, "flag provided but not defined: -nope"},
	} {
		_, errs := wantSealsign(t, 2, append(tt.args, "--host", fx.url)...)
		if !strings.Contains(errs, tt.msg) || !strings.Contains(errs, "-h\" for usage") {
			t.Errorf("%v: stderr %q, want %q", tt.args, errs, tt.msg)
		}
	}
	for _, verb := range []string{"approve", "reject"} {
		out, _ := wantSealsign(t, 0, verb, "-h")
		mustContain(t, verb+" -h", out, "sealsign approve ID --approver-key FILE", "sealsign reject ID", "Examples:", "Exit codes:")
	}
	if n := len(fx.host.decisions()); n != 0 {
		t.Fatalf("usage errors sent %d approvals", n)
	}
}

func TestUnits(t *testing.T) {
	for _, tt := range []struct {
		v    int64
		dec  int
		want string
	}{
		{0, 18, "0"}, {1, 8, "0.00000001"}, {100000000, 8, "1"}, {150000000, 8, "1.5"},
		{420000000000000, 18, "0.00042"}, {-5, 1, "-0.5"}, {12345, 0, "12345"},
	} {
		if got := units(big.NewInt(tt.v), tt.dec); got != tt.want {
			t.Errorf("units(%d, %d) = %q, want %q", tt.v, tt.dec, got, tt.want)
		}
	}
}
