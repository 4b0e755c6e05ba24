package policy

import (
	"bytes"
	"strings"
	"testing"
)

func TestParseJSONDefaultRoundTrip(t *testing.T) {
	p := defaultPolicy(t)
	enc, err := p.Encode()
	if err != nil {
		t.Fatal(err)
	}
	q, err := DecodePolicy(enc)
	if err != nil {
		t.Fatal(err)
	}
	enc2, err := q.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(enc, enc2) {
		t.Fatal("encoding does not round-trip")
	}
	if len(q.Rules) != 4 || q.Rules[2].Approvals == nil || q.Rules[2].Approvals.Groups[0].Threshold != 2 {
		t.Fatalf("decoded rules wrong: %+v", q.Rules)
	}
}

func TestValidateRefuses(t *testing.T) {
	const head = `{"format":1,"cluster_id":"demo","version":1,"issued_at":100,"not_before":100,"update_time_lock":0,"rules":[`
	rule := func(body string) string { return head + body + `]}` }
	tests := []struct {
		name, json, want string
	}{
		{"unknown field", `{"format":1,"cluster_id":"demo","version":1,"issued_at":100,"not_before":100,"update_time_lock":0,"rules":[],"extra":1}`, `unknown field "extra"`},
		{"trailing data", head + `]} {}`, "trailing data"},
		{"format 2", `{"format":2,"cluster_id":"demo","version":1,"issued_at":100,"not_before":100,"update_time_lock":0,"rules":[]}`, "format 2 unsupported"},
		{"version 0", `{"format":1,"cluster_id":"demo","version":0,"issued_at":100,"not_before":100,"update_time_lock":0,"rules":[]}`, "version is 0"},
		{"not_before before issued_at", `{"format":1,"cluster_id":"demo","version":1,"issued_at":100,"not_before":99,"update_time_lock":0,"rules":[]}`, "not_before 99 is before issued_at 100"},
		{"bad cluster", `{"format":1,"cluster_id":"a b","version":1,"issued_at":100,"not_before":100,"update_time_lock":0,"rules":[]}`, `cluster_id "a b" invalid`},
		{"bad rule id", rule(`{"id":"Bad ID","effect":"allow","condition":"true"}`), "id invalid"},
		{"duplicate rule id", rule(`{"id":"a","effect":"allow","condition":"true"},{"id":"a","effect":"deny","condition":"false"}`), "id used twice"},
		{"bad effect", rule(`{"id":"a","effect":"permit","condition":"true"}`), `effect "permit" invalid`},
		{"empty condition", rule(`{"id":"a","effect":"allow","condition":"  "}`), "condition is empty"},
		{"non-bool condition", rule(`{"id":"a","effect":"allow","condition":"request.method"}`), "want bool"},
		{"unknown variable", rule(`{"id":"a","effect":"allow","condition":"wallet.id == 'x'"}`), "undeclared reference"},
		{"unknown field of request", rule(`{"id":"a","effect":"allow","condition":"request.value == 1"}`), "undefined field"},
		{"syntax error", rule(`{"id":"a","effect":"allow","condition":"request.method =="}`), "Syntax error"},
		{"double amount comparison", rule(`{"id":"a","effect":"allow","condition":"request.fee < 1.5"}`), "found no matching overload"},
		{"lowercase evm literal", rule(`{"id":"a","effect":"allow","condition":"request.transfers.all(t, t.to in ['0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed'])"}`), `write "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"`},
		{"bad checksum", rule(`{"id":"a","effect":"allow","condition":"request.transfers.all(t, t.to == '0x5AAeb6053F3E94C9b9A09f33669435E7Ef1BeAed')"}`), "not EIP-55"},
		{"uppercase bech32", rule(`{"id":"a","effect":"allow","condition":"request.transfers.all(t, t.to == 'BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4')"}`), "must be lower case"},
		{"uppercase erc20 asset", rule(`{"id":"a","effect":"allow","condition":"request.transfers.all(t, t.asset == 'erc20:0xA0b86991c6218b36c1d19d4a2e9eb0ce3606eb48')"}`), "must be lower case"},
		{"units non-numeric", rule(`{"id":"a","effect":"allow","condition":"request.fee < units('1e18')"}`), "not a non-negative decimal"},
		{"units negative string", rule(`{"id":"a","effect":"allow","condition":"request.fee < units('-1')"}`), "not a non-negative decimal"},
		{"units negative int", rule(`{"id":"a","effect":"allow","condition":"request.fee < units(-1)"}`), "negative"},
		{"units leading zero", rule(`{"id":"a","effect":"allow","condition":"request.fee < units('01')"}`), "leading zero"},
		{"units too long", rule(`{"id":"a","effect":"allow","condition":"request.fee < units('` + strings.Repeat("9", 81) + `')"}`), "digits"},
		{"condition too long", rule(`{"id":"a","effect":"allow","condition":"` + strings.Repeat("true && ", 600) + `true"}`), "bytes, more than"},
		{"deny with velocity", rule(`{"id":"a","effect":"deny","condition":"true","velocity":[{"id":"v","window":60,"scope":"key","max_count":1}]}`), "deny rule takes no velocity"},
		{"window zero", rule(`{"id":"a","effect":"allow","condition":"true","velocity":[{"id":"v","window":0,"scope":"key","max_count":1}]}`), "window 0 s outside"},
		{"window 32 days", rule(`{"id":"a","effect":"allow","condition":"true","velocity":[{"id":"v","window":2764800,"scope":"key","max_count":1}]}`), "outside"},
		{"bad scope", rule(`{"id":"a","effect":"allow","condition":"true","velocity":[{"id":"v","window":60,"scope":"wallet","max_count":1}]}`), `scope "wallet" invalid`},
		{"no max", rule(`{"id":"a","effect":"allow","condition":"true","velocity":[{"id":"v","window":60,"scope":"key"}]}`), "set max_amount, max_count or both"},
		{"max_amount without asset", rule(`{"id":"a","effect":"allow","condition":"true","velocity":[{"id":"v","window":60,"scope":"key","max_amount":"5"}]}`), "needs an asset"},
		{"max_amount bad", rule(`{"id":"a","effect":"allow","condition":"true","velocity":[{"id":"v","window":60,"scope":"key","asset":"ETH","max_amount":"1.5"}]}`), "max_amount"},
		{"duplicate limit id", rule(`{"id":"a","effect":"allow","condition":"true","velocity":[{"id":"v","window":60,"scope":"key","max_count":1},{"id":"v","window":60,"scope":"key","max_count":2}]}`), "id used twice"},
		{"approvals bad logic", rule(`{"id":"a","effect":"allow","condition":"true","approvals":{"logic":"xor","groups":[{"group":"g","threshold":1}]}}`), `logic "xor" invalid`},
		{"approvals no groups", rule(`{"id":"a","effect":"allow","condition":"true","approvals":{"logic":"and","groups":[]}}`), "name 0 groups"},
		{"approvals threshold 0", rule(`{"id":"a","effect":"allow","condition":"true","approvals":{"logic":"and","groups":[{"group":"g","threshold":0}]}}`), "threshold 0 outside"},
		{"approvals group twice", rule(`{"id":"a","effect":"allow","condition":"true","approvals":{"logic":"or","groups":[{"group":"g","threshold":1},{"group":"g","threshold":2}]}}`), "listed twice"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseJSON([]byte(tc.json))
			if err == nil {
				t.Fatalf("accepted, want error containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "policy: ") {
				t.Fatalf("error %q, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestValidateTooManyRules(t *testing.T) {
	p := &Policy{Format: 1, ClusterID: "demo", Version: 1, IssuedAt: 1, NotBefore: 1}
	for i := 0; i <= MaxRules; i++ {
		p.Rules = append(p.Rules, Rule{ID: "r" + strings.Repeat("x", i%10) + string(rune('a'+i%26)), Effect: "allow", Condition: "true"})
	}
	if err := p.Validate(); err == nil || !strings.Contains(err.Error(), "257 rules") {
		t.Fatalf("got %v, want too many rules", err)
	}
}

func TestDecodePolicyRefusesNonCanonical(t *testing.T) {
	p := defaultPolicy(t)
	enc, err := p.Encode()
	if err != nil {
		t.Fatal(err)
	}
	// 0xb9 0x00 0x07: the same 7-pair map header in a longer form.
	if enc[0] != 0xa7 {
		t.Fatalf("unexpected header %x", enc[0])
	}
	long := append([]byte{0xb9, 0x00, 0x07}, enc[1:]...)
	if _, err := DecodePolicy(long); err == nil {
		t.Fatal("non-canonical encoding accepted")
	}
	if _, err := DecodePolicy(enc[:len(enc)-1]); err == nil {
		t.Fatal("truncated encoding accepted")
	}
}
