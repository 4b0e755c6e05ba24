package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sealsign/sealsign/attestation/devnsm"
	"github.com/sealsign/sealsign/enclave/audit"
	"github.com/sealsign/sealsign/governance/canon"
	"github.com/sealsign/sealsign/host/auditlog"
	"github.com/sealsign/sealsign/host/auditlog/auditlogtest"
	"github.com/sealsign/sealsign/host/devcluster"
	"github.com/sealsign/sealsign/host/server"
)

// auditFixture writes a cluster's manifest and raw logs into a directory.
func auditFixture(t *testing.T) (*auditlogtest.Cluster, string) {
	t.Helper()
	c := auditlogtest.New(t)
	c.Demo()
	dir := t.TempDir()
	c.WriteDir(dir)
	return c, dir
}

func fileArgs(dir string, ids ...string) []string {
	args := []string{"--manifest", filepath.Join(dir, "manifest.json")}
	for _, id := range ids {
		args = append(args, "--file", filepath.Join(dir, id+".cbor-seq"))
	}
	return args
}

func TestAuditVerifyFiles(t *testing.T) {
	c, dir := auditFixture(t)
	out, _ := wantSealsign(t, 0, append([]string{"audit", "verify"}, fileArgs(dir, "a", "b", "c")...)...)
	head := c.Party("a").Head()
	mustContain(t, "verify", out,
		"party a ("+filepath.Join(dir, "a.cbor-seq")+"): verified",
		fmt.Sprintf("entries      %d (seq 1..%d)", head.Seq, head.Seq),
		fmt.Sprintf("head         seq %d  %x", head.Seq, head.Hash),
		fmt.Sprintf("dev pcr0 %x  module party-a", c.PCR0),
		"party b (", "boots        2",
		"checkpoints  1 checked",
		"cross-party: ok: 4 requests with sessions compared across a, b, c (4 signed), 1 keygens, 0 reshared epochs")

	out, _ = wantSealsign(t, 0, append([]string{"audit", "verify", "--json"}, fileArgs(dir, "a", "b", "c")...)...)
	var rep auditVerifyJSON
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if !rep.OK || len(rep.Parties) != 3 || rep.Parties[1].Party != "b" || len(rep.Parties[1].Boots) != 2 || rep.Cross.Signed != 4 || rep.ClusterID != "test" {
		t.Fatalf("json %s", out)
	}

	// One party alone verifies; the cross-party check says what it could
	// not compare.
	out, _ = wantSealsign(t, 0, append([]string{"audit", "verify", "--party", "a"}, fileArgs(dir, "a")...)...)
	mustContain(t, "one party", out, "party a (", "not checked: request req-1: signer b's log was not given")
	_, errs := wantSealsign(t, 1, append([]string{"audit", "verify", "--party", "b"}, fileArgs(dir, "a")...)...)
	mustContain(t, "wrong party", errs, `entry names party "a", want "b"`, "at entry 0 (seq 1)")
}

// TestAuditVerifyTamper: each kind of tampering with an exported raw file
// makes "audit verify" exit 1 naming the position and the kind.
func TestAuditVerifyTamper(t *testing.T) {
	c, dir := auditFixture(t)
	a := c.Party("a").Entries
	n := len(a)
	head := c.Party("a").Head()
	otherCA, err := devnsm.NewCA(rand.Reader, c.Now)
	if err != nil {
		t.Fatal(err)
	}
	// a's log continued by a boot entry under another root or PCR0.
	foreignBoot := func(ca *devnsm.CA, pcr0 []byte) [][]byte {
		_, k, _ := ed25519.GenerateKey(rand.Reader)
		doc := c.Attest("a", k.Public().(ed25519.PublicKey), ca, pcr0)
		return append(slices.Clone(a), forgeBoot(t, k, head, "a", doc, c.Now))
	}
	flip := func(i, at int) [][]byte {
		out := slices.Clone(a)
		out[i] = slices.Clone(a[i])
		out[i][at] ^= 0x01
		return out
	}
	tests := []struct {
		name       string
		entries    [][]byte
		extra      []string
		index, seq int
		kind       string
	}{
		{"delete", slices.Delete(slices.Clone(a), 6, 7), nil, 6, 7, "sequence"},
		{"reorder", func() [][]byte { e := slices.Clone(a); e[3], e[4] = e[4], e[3]; return e }(), nil, 3, 4, "sequence"},
		{"alter one byte", flip(5, 40), nil, 5, 6, "bad-signature"},
		{"truncate", a[:n-2], []string{"--anchor", fmt.Sprintf("a:%d:%x", head.Seq, head.Hash)}, n - 2, n - 1, "truncated"},
		{"replace with another party's entry", func() [][]byte { e := slices.Clone(a); e[4] = c.Party("b").Entries[4]; return e }(), nil, 4, 5, "party"},
		{"boot under another dev root", foreignBoot(otherCA, nil), nil, n, n + 1, "untrusted"},
		{"boot with another pcr0", foreignBoot(nil, bytes.Repeat([]byte{7}, 48)), nil, n, n + 1, "untrusted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "a.cbor-seq")
			auditlogtest.WriteRaw(t, path, tt.entries)
			args := append([]string{"audit", "verify", "--manifest", filepath.Join(dir, "manifest.json"), "--file", path}, tt.extra...)
			out, errs := wantSealsign(t, 1, args...)
			mustContain(t, "stdout", out, fmt.Sprintf("FAILED at entry %d (seq %d): %s", tt.index, tt.seq, tt.kind))
			mustContain(t, "stderr", errs, "sealsign: audit verify: party a ("+path+"): audit: ", fmt.Sprintf("at entry %d (seq %d)", tt.index, tt.seq))
		})
	}
	// A log cut inside an entry.
	path := filepath.Join(t.TempDir(), "a.cbor-seq")
	raw := bytes.Join(a, nil)
	os.WriteFile(path, raw[:len(raw)-5], 0o644)
	out, errs := wantSealsign(t, 1, "audit", "verify", "--manifest", filepath.Join(dir, "manifest.json"), "--file", path, "--json")
	var rep auditVerifyJSON
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if e := rep.Parties[0].Error; rep.OK || e == nil || *e.Index != n-1 || *e.Seq != uint64(n) || e.Kind != "malformed" || !strings.Contains(e.Message, "file ends inside entry") {
		t.Fatalf("cut file: %s", out)
	}
	mustContain(t, "cut file stderr", errs, fmt.Sprintf("at entry %d (seq %d)", n-1, n))
}

// forgeBoot continues a log after head with a boot entry signed by k
// carrying doc.
func forgeBoot(t *testing.T, k ed25519.PrivateKey, head audit.Head, party string, doc []byte, at time.Time) []byte {
	t.Helper()
	ch, err := audit.NewChain(party, k, head)
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := ch.Append(audit.TypeBoot, audit.Boot{AttestationDocument: doc}, at)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestAuditVerifyCrossParty(t *testing.T) {
	c := auditlogtest.New(t)
	r := c.NewRequest("req-x", "k", []string{"a", "b"}, auditlogtest.SignOptions{})
	r.Record(c.Party("a"))
	rb := *r
	rb.PolicyVersion = 9
	b := c.Party("b")
	b.Append(audit.TypeVerdict, rb.VerdictBody()) // no request entry, another policy version
	b.Append(audit.TypeSession, rb.SessionBody(0))
	b.Append(audit.TypeResult, rb.ResultBody())
	dir := t.TempDir()
	c.WriteDir(dir)
	out, errs := wantSealsign(t, 1, append([]string{"audit", "verify"}, fileArgs(dir, "a", "b", "c")...)...)
	mustContain(t, "stdout", out, "party a (", "verified", "cross-party: FAILED (2 findings)")
	mustContain(t, "stderr", errs,
		"sealsign: audit verify: cross-party: request req-x: request: party b is a signer (per party a's session entry) but its log has no request entry for it (a seq 4)",
		"sealsign: audit verify: cross-party: request req-x: policy_version: party b allowed under policy v9, party a under v1 (a seq 3, b seq 2)")
}

// auditHost serves a party's log as GET /v1/audit does, three entries a
// page.
func auditHost(t *testing.T, party string, entries [][]byte) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/audit" {
			http.NotFound(w, r)
			return
		}
		from, _ := strconv.ParseUint(r.URL.Query().Get("from"), 10, 64)
		page := [][]byte{}
		for _, e := range entries {
			var se audit.SignedEntry
			var en audit.Entry
			canon.Unmarshal(e, &se)
			canon.Unmarshal(se.Entry, &en)
			if en.Seq >= from && len(page) < 3 {
				page = append(page, e)
			}
		}
		json.NewEncoder(w).Encode(server.AuditEntries{PartyID: party, Entries: page})
	}))
	t.Cleanup(s.Close)
	return s
}

func TestAuditVerifyHosts(t *testing.T) {
	c, dir := auditFixture(t)
	cl := devcluster.Cluster{Dir: dir, Manifest: filepath.Join(dir, "manifest.json")}
	for _, id := range c.IDs {
		s := auditHost(t, id, c.Party(id).Entries)
		cl.Parties = append(cl.Parties, devcluster.PartyState{ID: id, URL: s.URL})
	}
	b, _ := json.Marshal(cl)
	os.WriteFile(filepath.Join(dir, "cluster.json"), b, 0o600)

	t.Setenv("SEALSIGN_DEV_DIR", dir)
	out, _ := wantSealsign(t, 0, "audit", "verify")
	mustContain(t, "default dev appliance", out, "party a ("+cl.Parties[0].URL+"): verified")
	out, _ = wantSealsign(t, 0, "audit", "verify", "--dir", dir, "--party", "c")
	if !strings.Contains(out, "party c (") || strings.Contains(out, "party a (") {
		t.Fatalf("--dir --party c:\n%s", out)
	}
	out, _ = wantSealsign(t, 0, "audit", "verify", "--dir", dir)
	mustContain(t, "--dir", out, "party a ("+cl.Parties[0].URL+"): verified", "party c (", "cross-party: ok: 4 requests")
	out, _ = wantSealsign(t, 0, "audit", "verify", "--host", cl.Parties[1].URL, "--manifest", cl.Manifest)
	mustContain(t, "--host", out, "party b ("+cl.Parties[1].URL+"): verified", "boots        2")
	_, errs := wantSealsign(t, 1, "audit", "verify", "--host", cl.Parties[1].URL, "--party", "a", "--manifest", cl.Manifest)
	mustContain(t, "--host --party", errs, `fronts party "b", want "a"`)

	// A host that lost an entry.
	holed := slices.Delete(slices.Clone(c.Party("c").Entries), 2, 3)
	s := auditHost(t, "c", holed)
	out, errs = wantSealsign(t, 1, "audit", "verify", "--host", s.URL, "--manifest", cl.Manifest)
	mustContain(t, "holed host", out, "FAILED at entry 2 (seq 3): sequence")
	mustContain(t, "holed host stderr", errs, "entry 3 missing")

	out, _ = wantSealsign(t, 0, "audit", "report", "--dir", dir)
	mustContain(t, "report", out, "ceremony report for cluster test (logs of a, b, c)", "ceremony 1: keygen of key key-1",
		"ceremony 2: policy-update to policy v2", "authorised by  admin-1, admin-2", "transcript     ")
	out, _ = wantSealsign(t, 0, "audit", "report", "--dir", dir, "--key", "key-1", "--json")
	var rep struct {
		OK         bool
		Ceremonies []auditlog.Ceremony
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || !rep.OK || len(rep.Ceremonies) != 1 || len(rep.Ceremonies[0].Entries) != 3 {
		t.Fatalf("report --json: %v %s", err, out)
	}
}

func TestAuditExport(t *testing.T) {
	for _, format := range []string{"jsonl", "csv"} {
		t.Run(format, func(t *testing.T) {
			c, dir := auditFixture(t)
			keyFile := filepath.Join(dir, "admin-1.key")
			if err := c.Admins[0].WriteFile(keyFile); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(dir, "export")
			args := append([]string{"audit", "export", "--format", format, "--out", out, "--client", "client-2", "--sign-key", keyFile}, fileArgs(dir, "a", "b", "c")...)
			stdout, _ := wantSealsign(t, 0, args...)
			mustContain(t, "export", stdout, "party a: head seq", "a."+format, "a.cbor-seq", "signed by admin-1 (ed25519)")
			mustContain(t, "export rows", stdout, "     4 entries") // req-4 on a: request, verdict, session, result

			stdout, _ = wantSealsign(t, 0, "audit", "verify-export", out, "--manifest", filepath.Join(dir, "manifest.json"))
			mustContain(t, "verify-export", stdout, "signed by admin-1", "files        6 match", "raw log verified to this head", "cross-party: ok")
			pub, _ := json.Marshal(c.Admins[0].Public)
			os.WriteFile(filepath.Join(dir, "admin-1.pub"), pub, 0o644)
			wantSealsign(t, 0, "audit", "verify-export", out, "--pubkey", filepath.Join(dir, "admin-1.pub"))

			// The raw export verifies as a log of its own.
			stdout, _ = wantSealsign(t, 0, "audit", "verify", "--manifest", filepath.Join(dir, "manifest.json"), "--file", filepath.Join(out, "b.cbor-seq"))
			mustContain(t, "raw export", stdout, "party b (", "verified")

			// Tampering with an exported file.
			raw := filepath.Join(out, "c.cbor-seq")
			data, _ := os.ReadFile(raw)
			data[len(data)/2] ^= 1
			os.WriteFile(raw, data, 0o644)
			_, errs := wantSealsign(t, 1, "audit", "verify-export", out, "--manifest", filepath.Join(dir, "manifest.json"))
			mustContain(t, "tampered export", errs, "sealsign: audit verify-export: auditlog: c.cbor-seq is", "the file was changed")
			_, errs = wantSealsign(t, 1, "audit", "verify", "--manifest", filepath.Join(dir, "manifest.json"), "--file", raw)
			mustContain(t, "tampered raw export", errs, "sealsign: audit verify: party c (", "at entry ")

			// No second export into the same directory.
			_, errs = wantSealsign(t, 1, args...)
			mustContain(t, "export again", errs, "already holds an export")
		})
	}
}

func TestAuditExportRefusesTampered(t *testing.T) {
	c, dir := auditFixture(t)
	a := c.Party("a").Entries
	auditlogtest.WriteRaw(t, filepath.Join(dir, "a.cbor-seq"), slices.Delete(slices.Clone(a), 2, 3))
	out := filepath.Join(dir, "export")
	_, errs := wantSealsign(t, 1, append([]string{"audit", "export", "--format", "jsonl", "--out", out}, fileArgs(dir, "a", "b")...)...)
	mustContain(t, "export", errs, "party a (", "does not verify, refusing to export", "at entry 2 (seq 3)")
	if _, err := os.Stat(out); err == nil {
		t.Fatal("a refused export created its directory")
	}
	// Unsigned exports are refused by verify-export unless allowed.
	wantSealsign(t, 0, append([]string{"audit", "export", "--format", "jsonl", "--out", out}, fileArgs(dir, "b")...)...)
	_, errs = wantSealsign(t, 1, "audit", "verify-export", out, "--manifest", filepath.Join(dir, "manifest.json"))
	mustContain(t, "unsigned", errs, "the export is not signed")
	stdout, _ := wantSealsign(t, 0, "audit", "verify-export", out, "--manifest", filepath.Join(dir, "manifest.json"), "--allow-unsigned")
	mustContain(t, "unsigned allowed", stdout, "UNSIGNED (accepted with --allow-unsigned)")
}

func TestAuditUsage(t *testing.T) {
	_, dir := auditFixture(t)
	m := filepath.Join(dir, "manifest.json")
	tests := []struct {
		args []string
		msg  string
	}{
		{[]string{"audit"}, "Usage:"},
		{[]string{"audit", "frobnicate"}, `unknown verb "frobnicate"`},
		{[]string{"audit", "verify", "--file", "x"}, "--manifest FILE is required"},
		{[]string{"audit", "verify", "--file", "x", "--host", "http://h", "--manifest", m}, "one kind of source"},
		{[]string{"audit", "verify", "--file", "x", "--file", "y", "--party", "a", "--manifest", m}, "--party names the party of one"},
		{[]string{"audit", "verify", "--anchor", "a:0:00", "--file", "x", "--manifest", m}, "is not a number from 1"},
		{[]string{"audit", "verify", "extra"}, "takes no arguments"},
		{[]string{"audit", "export", "--format", "xml", "--out", "d"}, "--format must be jsonl or csv"},
		{[]string{"audit", "export", "--format", "csv"}, "--out DIR is required"},
		{[]string{"audit", "export", "--format", "csv", "--out", "d", "--from", "yesterday"}, "is not an RFC 3339 time"},
		{[]string{"audit", "export", "--format", "csv", "--out", "d", "--from", "2026-01-02T00:00:00Z", "--to", "2026-01-01T00:00:00Z"}, "is not after --from"},
		{[]string{"audit", "verify-export"}, "takes one DIR"},
		{[]string{"audit", "verify-export", "d"}, "give --manifest FILE"},
	}
	for _, tt := range tests {
		_, errs := wantSealsign(t, 2, tt.args...)
		mustContain(t, strings.Join(tt.args, " "), errs, tt.msg)
	}
	out, _ := wantSealsign(t, 0, "audit", "-h")
	mustContain(t, "help", out, "sealsign audit verify", "Exit codes:")
	_, errs := wantSealsign(t, 1, "audit", "verify", "--file", filepath.Join(dir, "missing"), "--manifest", m)
	mustContain(t, "missing file", errs, "no such file")
}
