package approval

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/sealsign/sealsign/governance/keys"
)

// Tally collects the verified decisions about one request. Each approver
// key counts once: a repeated identical decision is ignored, and a key that
// sends both decisions is counted as rejecting (fail closed: an approver
// who changed their mind to reject must be able to stop the request, and
// one who rejected cannot be overridden by a later approval from the same
// key).
//
// Keys are counted, not owners: one person may hold several approver keys,
// and rules such as "two different people" are the policy engine's to
// apply using Approver.Owner.
//
// A Tally is safe for concurrent use.
type Tally struct {
	mu        sync.Mutex
	approvers keys.Set
	want      Subject
	approved  map[string]*Approval
	rejected  map[string]*Approval
}

// Approver is a verified approving key, as the policy engine consumes it.
type Approver struct {
	KeyID  string
	Owner  string
	Groups []string // sorted names of the groups listing KeyID
}

// NewTally returns an empty tally of decisions about want, verified
// against approvers.
func NewTally(approvers keys.Set, want Subject) *Tally {
	return &Tally{approvers: approvers, want: want, approved: map[string]*Approval{}, rejected: map[string]*Approval{}}
}

// Add verifies a signed approval (see Verify) and records its decision. It
// returns the verified approval. A second, different decision from the same
// key returns ErrConflicting and leaves the key recorded as rejecting.
func (t *Tally) Add(signed []byte, now time.Time) (*Approval, error) {
	a, err := Verify(signed, t.approvers, t.want, now)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	id := a.ApproverKeyID
	prevA, approved := t.approved[id]
	_, rejected := t.rejected[id]
	switch {
	case a.Decision == Approve && rejected:
		return a, fmt.Errorf("%w: key %q approved request %q after rejecting it; the rejection stands", ErrConflicting, id, a.RequestID)
	case a.Decision == Reject && approved:
		delete(t.approved, id)
		t.rejected[id] = a
		return a, fmt.Errorf("%w: key %q rejected request %q after approving it (approval %x); counted as a rejection",
			ErrConflicting, id, a.RequestID, prevA.digest[:8])
	case a.Decision == Approve:
		if !approved {
			t.approved[id] = a
		}
	default:
		if !rejected {
			t.rejected[id] = a
		}
	}
	return a, nil
}

// Approvers returns the keys that approved (and did not also reject),
// sorted by key id.
func (t *Tally) Approvers() []keys.PublicKey {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]keys.PublicKey, 0, len(t.approved))
	for id := range t.approved {
		out = append(out, t.approvers[id])
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Rejected reports whether any key rejected the request and, if so, the
// lowest rejecting key id and its reason (so every party reports the same
// rejection whatever order approvals arrived in).
func (t *Tally) Rejected() (rejected bool, keyID, reason string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for id, a := range t.rejected {
		if !rejected || id < keyID {
			rejected, keyID, reason = true, id, a.Reason
		}
	}
	return rejected, keyID, reason
}

// Decisions returns every recorded decision (approvals and rejections),
// sorted by approver key id, for audit records.
func (t *Tally) Decisions() []*Approval {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]*Approval, 0, len(t.approved)+len(t.rejected))
	for _, a := range t.approved {
		out = append(out, a)
	}
	for _, a := range t.rejected {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ApproverKeyID < out[j].ApproverKeyID })
	return out
}

// Verified returns the approving keys with their owners and groups, sorted
// by key id, for the policy engine.
func (t *Tally) Verified(groups Groups) []Approver {
	ks := t.Approvers()
	out := make([]Approver, len(ks))
	for i, k := range ks {
		out[i] = Approver{KeyID: k.ID, Owner: k.Owner, Groups: groups.Of(k.ID)}
	}
	return out
}

// Groups names sets of approver keys: group name → member key ids.
type Groups map[string][]string

// MaxGroupMembers bounds one group.
const MaxGroupMembers = 256

var groupPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// Validate checks group names and members: every member must be a key in
// approvers, listed once per group, and no group may be empty.
func (g Groups) Validate(approvers keys.Set) error {
	names := make([]string, 0, len(g))
	for name := range g {
		names = append(names, name)
	}
	sort.Strings(names) // report the same first error every time
	for _, name := range names {
		members := g[name]
		if !groupPattern.MatchString(name) {
			return fmt.Errorf("approval: group name %q invalid (want 1-64 of lowercase letters, digits, '.', '_', '-')", name)
		}
		if len(members) == 0 {
			return fmt.Errorf("approval: group %q has no members", name)
		}
		if len(members) > MaxGroupMembers {
			return fmt.Errorf("approval: group %q has %d members, limit %d", name, len(members), MaxGroupMembers)
		}
		seen := make(map[string]bool, len(members))
		for _, m := range members {
			if seen[m] {
				return fmt.Errorf("approval: group %q lists key %q twice", name, m)
			}
			seen[m] = true
			if _, ok := approvers[m]; !ok {
				return fmt.Errorf("approval: group %q lists key %q, which is not an approver key", name, m)
			}
		}
	}
	return nil
}

// Of returns the sorted names of the groups that list keyID.
func (g Groups) Of(keyID string) []string {
	var out []string
	for name, members := range g {
		if slices.Contains(members, keyID) {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}
