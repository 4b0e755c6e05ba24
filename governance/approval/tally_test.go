package approval

import (
	"crypto"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sealsign/sealsign/governance/keys"
)

type step struct {
	key      string
	priv     crypto.Signer
	decision string
	reason   string
	err      error // wanted from Add
}

func signedBy(t testing.TB, s step) []byte {
	a := base(s.key, s.decision)
	a.Reason = s.reason
	return mustNew(t, a, s.priv)
}

func TestTally(t *testing.T) {
	alice := func(d string) step { return step{key: "alice-approver", priv: aliceKey, decision: d} }
	bob := func(d string) step { return step{key: "bob-approver", priv: bobKey, decision: d} }
	carol := func(d string) step { return step{key: "carol-approver", priv: carolKey, decision: d} }
	withErr := func(s step, err error) step { s.err = err; return s }
	withReason := func(s step, r string) step { s.reason = r; return s }

	tests := []struct {
		name       string
		steps      []step
		approvers  []string
		rejected   bool
		rejectedBy string
		reason     string
	}{
		{"none", nil, []string{}, false, "", ""},
		{"two approve", []step{alice(Approve), carol(Approve)}, []string{"alice-approver", "carol-approver"}, false, "", ""},
		{"duplicate counted once", []step{alice(Approve), alice(Approve), alice(Approve)}, []string{"alice-approver"}, false, "", ""},
		{"one rejection aborts", []step{alice(Approve), withReason(bob(Reject), "no")}, []string{"alice-approver"}, true, "bob-approver", "no"},
		{"approve then reject", []step{alice(Approve), withErr(withReason(alice(Reject), "changed my mind"), ErrConflicting)}, []string{}, true, "alice-approver", "changed my mind"},
		{"reject then approve", []step{withReason(alice(Reject), "no"), withErr(alice(Approve), ErrConflicting)}, []string{}, true, "alice-approver", "no"},
		{"lowest rejecting key reported", []step{withReason(carol(Reject), "c"), withReason(bob(Reject), "b")}, []string{}, true, "bob-approver", "b"},
		{"invalid approval not counted", []step{withErr(step{key: "alice-approver", priv: bobKey, decision: Approve}, ErrBadSignature)}, []string{}, false, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tl := NewTally(approvers(t), subject)
			for i, s := range tt.steps {
				_, err := tl.Add(signedBy(t, s), now)
				if s.err == nil && err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				if s.err != nil && !errors.Is(err, s.err) {
					t.Fatalf("step %d: error %v, want %v", i, err, s.err)
				}
			}
			var got []string
			for _, k := range tl.Approvers() {
				got = append(got, k.ID)
			}
			if got == nil {
				got = []string{}
			}
			if !reflect.DeepEqual(got, tt.approvers) {
				t.Fatalf("Approvers = %v, want %v", got, tt.approvers)
			}
			rej, by, reason := tl.Rejected()
			if rej != tt.rejected || by != tt.rejectedBy || reason != tt.reason {
				t.Fatalf("Rejected = %v %q %q, want %v %q %q", rej, by, reason, tt.rejected, tt.rejectedBy, tt.reason)
			}
		})
	}
}

func TestTallyConflictMessage(t *testing.T) {
	tl := NewTally(approvers(t), subject)
	if _, err := tl.Add(mustNew(t, base("alice-approver", Approve), aliceKey), now); err != nil {
		t.Fatal(err)
	}
	_, err := tl.Add(mustNew(t, base("alice-approver", Reject), aliceKey), now)
	if err == nil || !strings.Contains(err.Error(), "conflicting") || !strings.Contains(err.Error(), `key "alice-approver" rejected request`) {
		t.Fatalf("error %v", err)
	}
	if d := tl.Decisions(); len(d) != 1 || d[0].Decision != Reject {
		t.Fatalf("Decisions = %+v, want the rejection only", d)
	}
}

func TestTallyVerifiedGroups(t *testing.T) {
	as := approvers(t)
	groups := Groups{
		"finance":  {"alice-approver", "carol-approver"},
		"security": {"carol-approver"},
		"ops":      {"bob-approver"},
	}
	if err := groups.Validate(as); err != nil {
		t.Fatal(err)
	}
	tl := NewTally(as, subject)
	for _, s := range []step{{key: "carol-approver", priv: carolKey, decision: Approve}, {key: "alice-approver", priv: aliceKey, decision: Approve}} {
		if _, err := tl.Add(signedBy(t, s), now); err != nil {
			t.Fatal(err)
		}
	}
	want := []Approver{
		{KeyID: "alice-approver", Owner: "alice", Groups: []string{"finance"}},
		{KeyID: "carol-approver", Owner: "carol", Groups: []string{"finance", "security"}},
	}
	if got := tl.Verified(groups); !reflect.DeepEqual(got, want) {
		t.Fatalf("Verified = %+v, want %+v", got, want)
	}
	if got := groups.Of("nobody"); got != nil {
		t.Fatalf("Of(nobody) = %v", got)
	}
}

func TestTallyConcurrent(t *testing.T) {
	tl := NewTally(approvers(t), subject)
	signed := []([]byte){
		mustNew(t, base("alice-approver", Approve), aliceKey),
		mustNew(t, base("bob-approver", Approve), bobKey),
		mustNew(t, base("carol-approver", Approve), carolKey),
	}
	var wg sync.WaitGroup
	for i := 0; i < 30; i++ {
		wg.Add(1)
		go func(b []byte) {
			defer wg.Done()
			if _, err := tl.Add(b, now); err != nil {
				t.Error(err)
			}
			tl.Approvers()
			tl.Rejected()
		}(signed[i%3])
	}
	wg.Wait()
	if n := len(tl.Approvers()); n != 3 {
		t.Fatalf("%d approvers, want 3", n)
	}
}

func TestGroupsValidate(t *testing.T) {
	as := approvers(t)
	tests := []struct {
		name   string
		groups Groups
		msg    string
	}{
		{"bad name", Groups{"Finance Team": {"alice-approver"}}, `group name "Finance Team" invalid`},
		{"empty", Groups{"finance": nil}, `group "finance" has no members`},
		{"duplicate member", Groups{"finance": {"alice-approver", "alice-approver"}}, `lists key "alice-approver" twice`},
		{"unknown member", Groups{"finance": {"mallory"}}, `lists key "mallory", which is not an approver key`},
		{"too many", Groups{"finance": make([]string, MaxGroupMembers+1)}, "257 members, limit 256"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.groups.Validate(as)
			if err == nil || !strings.Contains(err.Error(), tt.msg) || !strings.HasPrefix(err.Error(), "approval: ") {
				t.Fatalf("error %v, want one containing %q", err, tt.msg)
			}
		})
	}
	if err := (Groups{}).Validate(keys.Set{}); err != nil {
		t.Fatalf("empty groups: %v", err)
	}
}

func TestTallyRefusesOtherSubject(t *testing.T) {
	s := subject
	s.PolicyVersion = 99
	tl := NewTally(approvers(t), s)
	if _, err := tl.Add(mustNew(t, base("alice-approver", Approve), aliceKey), now.Add(time.Second)); !errors.Is(err, ErrMismatch) {
		t.Fatalf("error %v, want ErrMismatch", err)
	}
	if len(tl.Approvers()) != 0 {
		t.Fatal("mismatched approval counted")
	}
}
