package auditlog

import (
	"strings"
	"testing"

	"github.com/sealsign/sealsign/enclave/audit"
)

// ceremonyLog is a verified log holding the given ceremony entries.
func ceremonyLog(party string, cs ...*audit.Ceremony) *Log {
	l := &Log{PartyID: party}
	for i, c := range cs {
		l.Records = append(l.Records, Record{Index: i, Seq: uint64(i + 1), Type: audit.TypeCeremony, Body: c})
	}
	return l
}

func TestCrossCheckReshares(t *testing.T) {
	pub, other := []byte{2, 1, 1}, []byte{2, 9, 9}
	keygen := func() *audit.Ceremony {
		return &audit.Ceremony{Kind: "keygen", KeyID: "k", Parties: []string{"a", "b", "c"}, Threshold: 1, PublicKey: pub, Outcome: "done"}
	}
	commit := func(pid string, key []byte) *audit.Ceremony {
		return &audit.Ceremony{Kind: "reshare-commit", KeyID: "k", Epoch: 1, Parties: []string{"a", "b", "c"}, Threshold: 1, PublicKey: key,
			Outcome: "committed", Detail: map[string]string{"proposal_id": pid}}
	}
	for _, tc := range []struct {
		name          string
		logs          []*Log
		want, note    string
		reshares      int
		findingsWant0 bool
	}{
		{"alike", []*Log{ceremonyLog("a", keygen(), commit("p1", pub)), ceremonyLog("b", keygen(), commit("p1", pub)), ceremonyLog("c", keygen(), commit("p1", pub))}, "", "", 1, true},
		{"commit not reached c yet", []*Log{ceremonyLog("a", keygen(), commit("p1", pub)), ceremonyLog("b", keygen(), commit("p1", pub)), ceremonyLog("c", keygen())}, "", "no commit yet", 1, true},
		{"two reshares as one epoch", []*Log{ceremonyLog("a", keygen(), commit("p1", pub)), ceremonyLog("b", keygen(), commit("p2", pub)), ceremonyLog("c", keygen(), commit("p1", pub))}, "committed different reshares as epoch 1", "", 1, false},
		{"public key changed", []*Log{ceremonyLog("a", keygen(), commit("p1", other)), ceremonyLog("b", keygen(), commit("p1", other)), ceremonyLog("c", keygen(), commit("p1", other))}, "the key's keygen made", "", 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := CrossCheck(tc.logs)
			if c.Reshares != tc.reshares {
				t.Fatalf("reshares = %d, want %d", c.Reshares, tc.reshares)
			}
			var got, notes []string
			for _, f := range c.Findings {
				got = append(got, f.Detail)
			}
			for _, f := range c.Notes {
				notes = append(notes, f.Detail)
			}
			if tc.findingsWant0 != (len(got) == 0) || (tc.want != "" && !strings.Contains(strings.Join(got, "\n"), tc.want)) {
				t.Fatalf("findings %q, want %q", got, tc.want)
			}
			if tc.note != "" && !strings.Contains(strings.Join(notes, "\n"), tc.note) {
				t.Fatalf("notes %q, want %q", notes, tc.note)
			}
		})
	}
}
