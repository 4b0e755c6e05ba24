package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/sealsign/sealsign/governance/keys"
	"github.com/sealsign/sealsign/host/server"
)

// TestKeyDerive: key derive asks the host for the child at --path and
// prints key, path, public key, address and xpub (or the JSON answer);
// hardened and malformed paths are usage errors that never reach the host.
func TestKeyDerive(t *testing.T) {
	var asked []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked = append(asked, r.Method+" "+r.URL.Path+"?"+r.URL.RawQuery)
		json.NewEncoder(w).Encode(server.DeriveJSON{PartyID: "a", KeyID: strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/v1/keys/"), "/derive"), Path: r.URL.Query().Get("path"),
			PublicKey: "02" + strings.Repeat("ab", 32), ChainCode: strings.Repeat("cd", 32), XPub: "xpub6Test\x1b[2J", Address: "0x00000000000000000000000000000000000000Aa"})
	}))
	defer srv.Close()

	out, _ := wantSealsign(t, 0, "key", "derive", "k1", "--path", "m/0/5", "--host", srv.URL)
	mustContain(t, "derive output", out, "key         k1", "path        m/0/5", "public key  02abab", "address     0x00000000000000000000000000000000000000Aa", "xpub        xpub6Test")
	if strings.Contains(out, "\x1b") {
		t.Errorf("a terminal escape from the host reached the terminal: %q", out)
	}
	if want := []string{"GET /v1/keys/k1/derive?path=m%2F0%2F5"}; !slices.Equal(asked, want) {
		t.Errorf("host asked %v, want %v", asked, want)
	}
	out, _ = wantSealsign(t, 0, "key", "derive", "--host", srv.URL, "--json", "k1")
	mustContain(t, "derive --json", out, `"path": "m"`, `"xpub": "xpub6Test`)

	asked = nil
	_, errs := wantSealsign(t, 2, "key", "derive", "k1", "--path", "m/44'/60'", "--host", srv.URL)
	mustContain(t, "hardened", errs, "hardened derivation needs the private key")
	_, errs = wantSealsign(t, 2, "key", "derive", "k1", "--path", "0/1", "--host", srv.URL)
	mustContain(t, "no m", errs, `want "m"`)
	_, errs = wantSealsign(t, 2, "key", "derive", "--host", srv.URL)
	mustContain(t, "no key", errs, "want one KEYID")
	if len(asked) != 0 {
		t.Errorf("bad paths reached the host: %v", asked)
	}
}

// TestRequestPath: request --path puts the parsed path in the signed
// request; a hardened one is a usage error.
func TestRequestPath(t *testing.T) {
	fx := newRequestFixture(t, keys.Ed25519)
	fx.host.answer = signedAnswer
	wantSealsign(t, 0, fx.args("--raw-digest", strings.Repeat("9f", 32), "--path", "m/0/5")...)
	if r := fx.host.last(t); r.Path.String() != "m/0/5" {
		t.Errorf("request path %v, want m/0/5", r.Path)
	}
	wantSealsign(t, 0, fx.args("--raw-digest", strings.Repeat("9f", 32))...)
	if r := fx.host.last(t); r.Path != nil {
		t.Errorf("request without --path has path %v", r.Path)
	}
	_, errs := wantSealsign(t, 2, fx.args("--raw-digest", strings.Repeat("9f", 32), "--path", "m/0h")...)
	mustContain(t, "hardened", errs, "--path: ", "hardened")
}
