package devcluster

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/sealsign/sealsign/enclave/api"
	"github.com/sealsign/sealsign/governance/approval"
	"github.com/sealsign/sealsign/governance/canon"
	"github.com/sealsign/sealsign/governance/keys"
	"github.com/sealsign/sealsign/governance/policy"
	"github.com/sealsign/sealsign/governance/request"
	"github.com/sealsign/sealsign/governance/tx"
	"github.com/sealsign/sealsign/host/client"
	"github.com/sealsign/sealsign/host/server"
)

// GovernanceResult is what the demo's governance story showed.
type GovernanceResult struct {
	ClusterID string `json:"cluster_id"`
	Client    string `json:"client"` // the client key every request was signed with
	// InLimit: a transfer within limits to an allowlisted address.
	InLimit SignedTransfer `json:"in_limit"`
	// OverLimit: the same transfer over eth-small's limit, pending until
	// two treasury approvers approved. NeededFirst and NeededAfterOne are
	// the approvals still needed before any and after the first.
	OverLimit struct {
		SignedTransfer
		PendingRule    string   `json:"pending_rule"`
		NeededFirst    int      `json:"needed_first"`
		NeededAfterOne int      `json:"needed_after_one"`
		Approvers      []string `json:"approvers"`
	} `json:"over_limit"`
	// NotAllowlisted and RawOnECDSA were denied by policy.
	NotAllowlisted Denied `json:"not_allowlisted"`
	RawOnECDSA     Denied `json:"raw_on_ecdsa"`
	// Velocity: eth-small's key-rate limit (MaxCount per Window seconds)
	// had SignedBefore eth-small signatures in the window when the step
	// began; it signed SignedInStep more, and the next one (the
	// TrippedAt-th in the window, MaxCount+1) was denied.
	Velocity struct {
		Rule         string `json:"rule"`
		Limit        string `json:"limit"`
		MaxCount     uint64 `json:"max_count"`
		Window       uint64 `json:"window"`
		SignedBefore int    `json:"signed_before"`
		SignedInStep int    `json:"signed_in_step"`
		TrippedAt    int    `json:"tripped_at"`
		Denied
	} `json:"velocity"`
	// ForeignKey is a request signed by a key that is not the manifest's
	// (though it has the same id); Tampered is a properly signed request
	// whose payload was changed afterwards. Both were refused.
	ForeignKey Refused `json:"foreign_key"`
	Tampered   Refused `json:"tampered_payload"`
	Policy     struct {
		// OneAdmin (v2 signed by one admin) and Rollback (v1 pushed again)
		// map each party to its refusal.
		OneAdmin map[string]string `json:"one_admin_refusals"`
		Rollback map[string]string `json:"rollback_refusals"`
		// Accepted maps each party to the version it accepted and has in
		// effect after v2 signed by two admins; Status to the
		// policy_version its status reports afterwards.
		Accepted map[string]uint64 `json:"accepted"`
		Status   map[string]uint64 `json:"status_policy_version"`
	} `json:"policy"`
}

// SignedTransfer is a signed Ethereum transfer and its check.
type SignedTransfer struct {
	RequestID   string `json:"request_id"`
	RuleID      string `json:"rule_id"`
	Transaction string `json:"transaction"`
	Sender      string `json:"sender"` // recovered by go-ethereum; the key's address
}

// Denied is a request the policy denied, with every party's reasons.
type Denied struct {
	RequestID string       `json:"request_id"`
	State     string       `json:"state"`
	Message   string       `json:"message"`
	Denials   []api.Denial `json:"denials"` // the coordinating party's
}

// Refused is a request refused before any policy looked at it.
type Refused struct {
	Refused bool   `json:"refused"`
	Message string `json:"message"`
}

// governanceStory runs the governance steps; every party is up and runs
// the approved build.
func (d *demo) governanceStory() error {
	g := &d.res.Governance
	g.ClusterID, g.Client = d.c.ClusterID(), demoClient
	_, genesis, err := d.c.GenesisPolicy()
	if err != nil {
		return err
	}

	if err := d.step("gov_in_limit", fmt.Sprintf("governance: 0.05 ETH to %s, on the treasury allowlist (within eth-small's limits)", allowlisted), func() error {
		t, st, err := d.transfer(smallTransfer, true)
		if st, err = wantSigned(st, err); err != nil {
			return err
		}
		from, err := d.checkTransfer(t, st)
		if err != nil {
			return err
		}
		if st.Result.RuleID != "eth-small" {
			return fmt.Errorf("request %s allowed by rule %q, want eth-small", st.RequestID, st.Result.RuleID)
		}
		g.InLimit = SignedTransfer{st.RequestID, st.Result.RuleID, st.Result.Transaction, from}
		fmt.Fprintf(d.out, "  signed under rule %s by %s; go-ethereum recovers sender %s, the key's address\n", st.Result.RuleID, strings.Join(st.Result.Signers, ","), from)
		return nil
	}); err != nil {
		return err
	}

	if err := d.step("gov_over_limit", fmt.Sprintf("governance: 2 ETH to %s (over eth-small's 1 ETH: rule eth-large, which needs approvals)", allowlisted), func() error {
		return d.overLimit(g)
	}); err != nil {
		return err
	}

	if err := d.step("gov_not_allowlisted", fmt.Sprintf("governance: 0.05 ETH to %s, not on the allowlist", notAllowlisted), func() error {
		_, st, err := d.transfer(smallTransfer, false)
		dn, err := wantDenied(st, err, policy.ConditionFalse, "eth-small", "", "t.to in")
		if err != nil {
			return err
		}
		g.NotAllowlisted = dn
		d.printDenials(st)
		return nil
	}); err != nil {
		return err
	}

	if err := d.step("gov_raw_ecdsa", "governance: a raw 32-byte digest on the ECDSA key (it could be any transaction; nothing can be checked)", func() error {
		digest := bytes.Repeat([]byte{0x5e}, 32)
		st, err := d.submit(d.ecKey.ID, tx.KindRaw, digest)
		dn, err := wantDenied(st, err, policy.DenyRuleMatched, "deny-raw", "", "")
		if err != nil {
			return err
		}
		g.RawOnECDSA = dn
		d.printDenials(st)
		return nil
	}); err != nil {
		return err
	}

	if err := d.velocity(g, genesis); err != nil {
		return err
	}

	if err := d.step("gov_bad_signatures", "governance: requests the manifest's client key did not sign as sent", func() error {
		return d.badSignatures(g)
	}); err != nil {
		return err
	}

	return d.step("gov_policy_update", "governance: policy updates, pushed to every party", func() error {
		return d.policyUpdates(g, genesis)
	})
}

// overLimit submits a transfer over eth-small's limit, which waits for two
// treasury approvals, and approves it as alice, then bob.
func (d *demo) overLimit(g *GovernanceResult) error {
	t, st, err := d.transfer(largeTransfer, true)
	if err != nil {
		return fmt.Errorf("%w%s", err, reasons(st))
	}
	need, err := pendingNeeds(st, "eth-large")
	if err != nil {
		return err
	}
	g.OverLimit.PendingRule, g.OverLimit.NeededFirst = "eth-large", need
	fmt.Fprintf(d.out, "  request %s pending: %s\n", st.RequestID, needsText(st))
	for i, name := range []string{"approver-alice", "approver-bob"} {
		k, err := d.c.GovernanceKey(name)
		if err != nil {
			return err
		}
		ap, err := client.NewApproval(k, d.c.ClusterID(), st, approval.Approve, "demo: treasury payout", requestTTL)
		if err != nil {
			return err
		}
		if st, err = d.a().Approve(d.ctx, st.RequestID, ap); err != nil {
			return fmt.Errorf("approval by %s: %w%s", name, err, reasons(st))
		}
		g.OverLimit.Approvers = append(g.OverLimit.Approvers, name)
		if i == 0 {
			if g.OverLimit.NeededAfterOne, err = pendingNeeds(st, "eth-large"); err != nil {
				return fmt.Errorf("after %s approved: %w", name, err)
			}
			fmt.Fprintf(d.out, "  %s (owner %s) approves: still pending: %s\n", name, k.Public.Owner, needsText(st))
			continue
		}
		if st, err = wantSigned(st, nil); err != nil {
			return fmt.Errorf("after %s approved: %w", name, err)
		}
		from, err := d.checkTransfer(t, st)
		if err != nil {
			return err
		}
		if st.Result.RuleID != "eth-large" {
			return fmt.Errorf("request %s allowed by rule %q, want eth-large", st.RequestID, st.Result.RuleID)
		}
		g.OverLimit.SignedTransfer = SignedTransfer{st.RequestID, st.Result.RuleID, st.Result.Transaction, from}
		fmt.Fprintf(d.out, "  %s (owner %s) approves: signed under rule %s by %s; go-ethereum recovers sender %s, the key's address\n",
			name, k.Public.Owner, st.Result.RuleID, strings.Join(st.Result.Signers, ","), from)
	}
	if g.OverLimit.NeededFirst != 2 || g.OverLimit.NeededAfterOne != 1 {
		return fmt.Errorf("approvals needed: %d, then %d after one; want 2, then 1", g.OverLimit.NeededFirst, g.OverLimit.NeededAfterOne)
	}
	return nil
}

// velocity sends in-limit transfers until eth-small's key-rate limit
// trips, and checks it trips exactly when the demo's own count of
// eth-small signatures in the window says it must: each signed eth-small
// request counts once; denied, pending and failed ones do not.
func (d *demo) velocity(g *GovernanceResult, genesis *policy.Policy) error {
	v := &g.Velocity
	v.Rule, v.Limit = "eth-small", "key-rate"
	lim, ok := velocityLimit(genesis, v.Rule, v.Limit)
	if !ok || lim.MaxCount == 0 {
		return fmt.Errorf("the genesis policy has no count limit %s/%s", v.Rule, v.Limit)
	}
	v.MaxCount, v.Window = lim.MaxCount, lim.Window
	window := time.Duration(lim.Window) * time.Second
	for _, t := range d.ethSmall {
		if time.Since(t) < window {
			v.SignedBefore++
		}
	}
	label := fmt.Sprintf("governance: velocity: rule %s allows %d signatures per key per %s (limit %s); the demo has had %d signed in the window so far",
		v.Rule, lim.MaxCount, window, v.Limit, v.SignedBefore)
	return d.step("gov_velocity", label, func() error {
		if uint64(v.SignedBefore) > lim.MaxCount {
			return fmt.Errorf("%d eth-small signatures in the window, more than the limit %d allows", v.SignedBefore, lim.MaxCount)
		}
		for n := v.SignedBefore + 1; ; n++ {
			t, st, err := d.transfer(smallTransfer, true)
			if uint64(n) <= lim.MaxCount {
				if st, err = wantSigned(st, err); err != nil {
					return fmt.Errorf("eth-small transfer %d of %d in the window: %w", n, lim.MaxCount, err)
				}
				if _, err := d.checkTransfer(t, st); err != nil {
					return err
				}
				v.SignedInStep++
				fmt.Fprintf(d.out, "  transfer %d/%d in the window: signed (%s)\n", n, lim.MaxCount, st.RequestID)
				continue
			}
			if err == nil && st.State == server.StateSigned {
				return fmt.Errorf("transfer %d in the window was signed: the %s limit of %d did not trip (did the parties lose their velocity state, e.g. across the restart?)", n, v.Limit, lim.MaxCount)
			}
			dn, err := wantDenied(st, err, policy.VelocityExceeded, v.Rule, v.Limit, "")
			if err != nil {
				return fmt.Errorf("transfer %d in the window: %w", n, err)
			}
			v.TrippedAt, v.Denied = n, dn
			fmt.Fprintf(d.out, "  transfer %d/%d in the window: denied, exactly as counted:\n", n, lim.MaxCount)
			d.printDenials(st)
			return nil
		}
	})
}

func velocityLimit(p *policy.Policy, rule, limit string) (policy.VelocityLimit, bool) {
	for _, r := range p.Rules {
		if r.ID != rule {
			continue
		}
		for _, l := range r.Velocity {
			if l.ID == limit {
				return l, true
			}
		}
	}
	return policy.VelocityLimit{}, false
}

// badSignatures sends a request signed by a key the manifest does not
// know, under the id of one it does, and a request whose destination a
// relay changed after the client signed it.
func (d *demo) badSignatures(g *GovernanceResult) error {
	impostor, err := keys.Generate(demoClient, d.app.Public.Owner, d.app.Public.Algorithm)
	if err != nil {
		return err
	}
	_, payload, err := ethTransfer(d.nonce, allowlisted, smallTransfer)
	if err != nil {
		return err
	}
	st, err := d.submitAs(impostor, d.ecKey.ID, tx.KindEVM, payload)
	if g.ForeignKey, err = wantRefused(st, err, "signature"); err != nil {
		return fmt.Errorf("request signed by a foreign key named %s: %w", demoClient, err)
	}
	fmt.Fprintf(d.out, "  signed by a fresh key that calls itself %s: refused: %s\n", demoClient, g.ForeignKey.Message)

	signed, err := client.NewRequest(d.app, d.c.ClusterID(), d.ecKey.ID, tx.KindEVM, payload, requestTTL)
	if err != nil {
		return err
	}
	tampered, err := redirect(signed, allowlisted.Bytes())
	if err != nil {
		return err
	}
	st, err = d.a().Submit(d.ctx, tampered)
	if g.Tampered, err = wantRefused(st, err, "signature"); err != nil {
		return fmt.Errorf("request with a changed destination: %w", err)
	}
	fmt.Fprintf(d.out, "  properly signed, then one byte of the destination changed: refused: %s\n", g.Tampered.Message)
	return nil
}

// redirect flips the last byte of the destination address in a signed
// request's payload, keeping the client's signature: what a compromised
// host or proxy would try.
func redirect(signed, to []byte) ([]byte, error) {
	var s request.Signed
	if err := canon.Unmarshal(signed, &s); err != nil {
		return nil, err
	}
	var r request.Request
	if err := canon.Unmarshal(s.Request, &r); err != nil {
		return nil, err
	}
	i := bytes.Index(r.Payload, to)
	if i < 0 {
		return nil, errors.New("destination not found in the payload")
	}
	r.Payload[i+len(to)-1] ^= 0x01
	body, err := canon.Marshal(&r)
	if err != nil {
		return nil, err
	}
	return canon.Marshal(&request.Signed{Request: body, Signature: s.Signature})
}

// policyUpdates pushes a v2 signed by one admin (refused), the v1 genesis
// again (a rollback, refused) and v2 signed by two admins (accepted, and in
// force at once: the dev template's update_time_lock is 0).
func (d *demo) policyUpdates(g *GovernanceResult, genesis *policy.Policy) error {
	v1, _, err := d.c.GenesisPolicy()
	if err != nil {
		return err
	}
	next := *genesis
	next.Version = genesis.Version + 1
	next.IssuedAt = time.Now().Add(-genesisBackdate).Unix()
	next.NotBefore = next.IssuedAt + int64(genesis.UpdateTimeLock)
	enc, err := next.Encode()
	if err != nil {
		return err
	}
	sign := func(ids ...string) ([]byte, error) {
		sp := policy.SignedPolicy{Policy: enc}
		for _, id := range ids {
			k, err := d.c.GovernanceKey(id)
			if err != nil {
				return nil, err
			}
			sig, err := policy.SignPolicy(enc, id, k.Signer)
			if err != nil {
				return nil, err
			}
			sp.Signatures = append(sp.Signatures, sig)
		}
		return sp.Encode()
	}

	oneAdmin, err := sign("admin-1")
	if err != nil {
		return err
	}
	if g.Policy.OneAdmin, err = d.wantPolicyRefused(oneAdmin, "admin signatures"); err != nil {
		return fmt.Errorf("v%d signed by admin-1 alone: %w", next.Version, err)
	}
	fmt.Fprintf(d.out, "  v%d signed by admin-1 alone: refused by every party:\n", next.Version)
	printRefusals(d, g.Policy.OneAdmin)

	if g.Policy.Rollback, err = d.wantPolicyRefused(v1, "not newer"); err != nil {
		return fmt.Errorf("v1 pushed again: %w", err)
	}
	fmt.Fprintln(d.out, "  v1 pushed again (a rollback to the genesis): refused by every party:")
	printRefusals(d, g.Policy.Rollback)

	quorum, err := sign("admin-1", "admin-3")
	if err != nil {
		return err
	}
	r, err := d.a().PushPolicy(d.ctx, quorum)
	if err != nil {
		return fmt.Errorf("v%d signed by admin-1 and admin-3: %w%s", next.Version, err, policyRefusals(r))
	}
	g.Policy.Accepted, g.Policy.Status = map[string]uint64{}, map[string]uint64{}
	for _, p := range r.Parties {
		if p.Error != "" || p.Accepted != next.Version || p.Effective != next.Version {
			return fmt.Errorf("party %s: accepted v%d, effective v%d (error %q); want v%d in effect", p.PartyID, p.Accepted, p.Effective, p.Error, next.Version)
		}
		g.Policy.Accepted[p.PartyID] = p.Effective
	}
	for _, p := range d.c.Parties {
		if _, ok := g.Policy.Accepted[p.ID]; !ok {
			return fmt.Errorf("party %s did not answer the policy update", p.ID)
		}
		h, err := d.c.Client(p.ID).Health(d.ctx)
		if err != nil {
			return err
		}
		if h.Enclave.PolicyVersion != next.Version {
			return fmt.Errorf("party %s status reports policy_version %d after accepting v%d", p.ID, h.Enclave.PolicyVersion, next.Version)
		}
		g.Policy.Status[p.ID] = h.Enclave.PolicyVersion
	}
	fmt.Fprintf(d.out, "  v%d signed by admin-1 (ed25519) and admin-3 (ecdsa-p256): accepted by %s, in force at once (update_time_lock 0 in the dev template); every party's status shows policy_version %d\n",
		next.Version, strings.Join(slices.Sorted(maps.Keys(g.Policy.Accepted)), ", "), next.Version)
	return nil
}

// wantPolicyRefused pushes signed and wants every party to refuse it with
// an error containing want.
func (d *demo) wantPolicyRefused(signed []byte, want string) (map[string]string, error) {
	r, err := d.a().PushPolicy(d.ctx, signed)
	if err == nil {
		return nil, fmt.Errorf("accepted%s", policyRefusals(r))
	}
	if r == nil {
		return nil, fmt.Errorf("the host refused it without each party's answer: %w", err)
	}
	out := map[string]string{}
	for _, p := range r.Parties {
		out[p.PartyID] = p.Error
	}
	for _, p := range d.c.Parties {
		e, ok := out[p.ID]
		switch {
		case !ok:
			return nil, fmt.Errorf("party %s did not answer (answers: %v)", p.ID, out)
		case e == "":
			return nil, fmt.Errorf("party %s accepted it (v%d)", p.ID, p.acceptedIn(r))
		case !strings.Contains(e, want):
			return nil, fmt.Errorf("party %s refused it with %q, which does not say %q", p.ID, e, want)
		}
	}
	return out, nil
}

func (p PartyState) acceptedIn(r *server.PolicyPushResponse) uint64 {
	for _, q := range r.Parties {
		if q.PartyID == p.ID {
			return q.Accepted
		}
	}
	return 0
}

func policyRefusals(r *server.PolicyPushResponse) string {
	if r == nil {
		return ""
	}
	var parts []string
	for _, p := range r.Parties {
		if p.Error != "" {
			parts = append(parts, named(p.PartyID, p.Error))
		} else {
			parts = append(parts, fmt.Sprintf("party %s: accepted v%d, effective v%d", p.PartyID, p.Accepted, p.Effective))
		}
	}
	return " (" + strings.Join(parts, "; ") + ")"
}

func printRefusals(d *demo, m map[string]string) {
	for _, id := range slices.Sorted(maps.Keys(m)) {
		fmt.Fprintf(d.out, "    %s\n", named(id, m[id]))
	}
}

// named prefixes a party's message with its id unless the enclave did.
func named(id, msg string) string {
	if strings.HasPrefix(msg, "party "+id+":") {
		return msg
	}
	return "party " + id + ": " + msg
}

// wantDenied checks that a request was denied with a reason of code (for
// rule and limit, when given, and a clause containing clause).
func wantDenied(st *server.RequestStatus, err error, code policy.Code, rule, limit, clause string) (Denied, error) {
	if st == nil {
		if err == nil {
			err = errors.New("no answer")
		}
		return Denied{}, fmt.Errorf("want a denial with %s, got %w", code, err)
	}
	if st.State != server.StateDenied {
		return Denied{}, fmt.Errorf("request %s is %s (%v), want denied with %s%s", st.RequestID, st.State, err, code, reasons(st))
	}
	if len(st.Verdicts) == 0 {
		return Denied{}, fmt.Errorf("request %s denied without a verdict", st.RequestID)
	}
	dn := Denied{RequestID: st.RequestID, State: st.State, Denials: st.Verdicts[0].Denials}
	if err != nil {
		dn.Message = err.Error()
	}
	for _, x := range dn.Denials {
		if x.Code == string(code) && (rule == "" || x.RuleID == rule) && (limit == "" || x.LimitID == limit) && strings.Contains(x.Clause, clause) {
			return dn, nil
		}
	}
	return Denied{}, fmt.Errorf("request %s denied, but not with %s rule %q limit %q clause containing %q%s", st.RequestID, code, rule, limit, clause, reasons(st))
}

// wantRefused checks that a request was refused with an error containing
// want.
func wantRefused(st *server.RequestStatus, err error, want string) (Refused, error) {
	if err == nil {
		state := "no answer"
		if st != nil {
			state = st.RequestID + " " + st.State
		}
		return Refused{}, fmt.Errorf("not refused: %s", state)
	}
	msg := err.Error()
	if st != nil && st.Error != "" && !strings.Contains(msg, st.Error) {
		msg += ": " + st.Error
	}
	if !strings.Contains(msg, want) {
		return Refused{}, fmt.Errorf("refused with %q, which does not say %q", msg, want)
	}
	return Refused{Refused: true, Message: msg}, nil
}

// pendingNeeds is how many approvals rule still needs, summed over its
// groups, by the coordinating party's verdict.
func pendingNeeds(st *server.RequestStatus, rule string) (int, error) {
	if st == nil || st.State != server.StatePending || len(st.Verdicts) == 0 {
		state := "no answer"
		if st != nil {
			state = st.State
		}
		return 0, fmt.Errorf("request is %s, want pending on rule %s%s", state, rule, reasons(st))
	}
	for _, p := range st.Verdicts[0].Pending {
		if p.RuleID == rule {
			n := 0
			for _, g := range p.Groups {
				n += g.Need
			}
			return n, nil
		}
	}
	return 0, fmt.Errorf("request %s is pending, but not on rule %s%s", st.RequestID, rule, reasons(st))
}

// needsText says what a pending request still needs, per party.
func needsText(st *server.RequestStatus) string {
	var parts []string
	for _, v := range st.Verdicts {
		for _, p := range v.Pending {
			for _, g := range p.Groups {
				parts = append(parts, fmt.Sprintf("party %s: rule %s needs %d more approval(s) from group %s (%d of %d)", v.PartyID, p.RuleID, g.Need, g.Group, g.Have, g.Threshold))
			}
		}
	}
	if len(parts) == 0 {
		return "(no verdict says what it needs)"
	}
	return strings.Join(parts, "; ")
}

// printDenials prints the coordinating party's reasons, one a line, and
// which other parties denied too.
func (d *demo) printDenials(st *server.RequestStatus) {
	if len(st.Verdicts) == 0 {
		return
	}
	v := st.Verdicts[0]
	var others []string
	for _, o := range st.Verdicts[1:] {
		others = append(others, fmt.Sprintf("%s (%s)", o.PartyID, o.Outcome))
	}
	also := ""
	if len(others) > 0 {
		also = "; verdicts of " + strings.Join(others, ", ")
	}
	fmt.Fprintf(d.out, "  request %s denied by party %s under policy v%d%s:\n", st.RequestID, v.PartyID, v.PolicyVersion, also)
	for _, x := range v.Denials {
		fmt.Fprintf(d.out, "    %s\n", denialText(x))
	}
}

func denialText(x api.Denial) string {
	return policy.Denial{Code: policy.Code(x.Code), RuleID: x.RuleID, LimitID: x.LimitID, Clause: shortClause(x.Clause), Detail: x.Detail}.String()
}

// longList is a list literal too long to print in a clause.
var longList = regexp.MustCompile(`\[[^\[\]]{48,}\]`)

// shortClause abbreviates a clause's long list literals (allowlists) to
// their size, then cuts it at 160 characters.
func shortClause(s string) string {
	s = longList.ReplaceAllStringFunc(s, func(l string) string {
		return fmt.Sprintf("[%d entries]", strings.Count(l, ",")+1)
	})
	if r := []rune(s); len(r) > 160 {
		return string(r[:160]) + "…"
	}
	return s
}

// reasons is every party's reasons for st, for error messages.
func reasons(st *server.RequestStatus) string {
	if st == nil {
		return ""
	}
	var parts []string
	if st.Error != "" {
		parts = append(parts, st.Error)
	}
	for _, v := range st.Verdicts {
		var ds []string
		for _, x := range v.Denials {
			ds = append(ds, denialText(x))
		}
		for _, p := range v.Pending {
			ds = append(ds, "pending on rule "+p.RuleID)
		}
		parts = append(parts, fmt.Sprintf("party %s: %s %s", v.PartyID, v.Outcome, strings.Join(ds, "; ")))
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, " | ") + ")"
}
