package approval

import "testing"

// FuzzVerifyApproval: Verify never panics, and whatever it accepts is a
// valid approval about the subject.
func FuzzVerifyApproval(f *testing.F) {
	a := base("alice-approver", Approve)
	f.Add(mustNew(f, a, aliceKey))
	r := base("carol-approver", Reject)
	r.Reason = "not on the list"
	good := mustNew(f, r, carolKey)
	f.Add(good)
	f.Add(good[:len(good)-1])
	f.Add(signRaw(f, Approval{Format: 1, ApproverKeyID: "alice-approver"}, aliceKey, Domain))
	f.Add([]byte{0xa2, 0x01, 0x40, 0x02, 0x40})
	as := approvers(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := Verify(data, as, subject, now)
		if err != nil {
			return
		}
		if err := got.Validate(); err != nil {
			t.Fatalf("accepted an invalid approval: %v", err)
		}
		if err := got.Matches(subject); err != nil {
			t.Fatalf("accepted an approval about something else: %v", err)
		}
	})
}
