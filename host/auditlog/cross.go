package auditlog

import (
	"bytes"
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/sealsign/sealsign/enclave/audit"
	"github.com/sealsign/sealsign/governance/policy"
)

// Finding is one way the logs of several parties disagree.
type Finding struct {
	// RequestID is the signing request concerned; KeyID a key ceremony.
	RequestID string `json:"request_id,omitempty"`
	KeyID     string `json:"key_id,omitempty"`
	// Parties are the parties concerned: the one found wanting first,
	// then the one it was compared with, if any.
	Parties []string `json:"parties"`
	// Field names what differs or is missing ("request", "payload_hash",
	// "policy_version", "session", "signatures", …).
	Field  string `json:"field"`
	Detail string `json:"detail"`
	// Seqs locate the entries compared, by party.
	Seqs map[string]uint64 `json:"seqs,omitempty"`
}

func (f Finding) String() string {
	var b strings.Builder
	switch {
	case f.RequestID != "":
		fmt.Fprintf(&b, "request %s: ", f.RequestID)
	case f.KeyID != "":
		fmt.Fprintf(&b, "key %s: ", f.KeyID)
	}
	fmt.Fprintf(&b, "%s: %s", f.Field, f.Detail)
	if len(f.Seqs) > 0 {
		var at []string
		for _, p := range slices.Sorted(maps.Keys(f.Seqs)) {
			at = append(at, fmt.Sprintf("%s seq %d", p, f.Seqs[p]))
		}
		fmt.Fprintf(&b, " (%s)", strings.Join(at, ", "))
	}
	return b.String()
}

// Cross is the outcome of CrossCheck.
type Cross struct {
	// Requests is the number of request ids with session entries; Signed
	// those a signer recorded as signed.
	Requests int `json:"requests"`
	Signed   int `json:"signed"`
	// Keys is the number of keygen ceremonies compared; Reshares the
	// number of committed reshared epochs (refresh or committee change).
	Keys     int       `json:"keys"`
	Reshares int       `json:"reshares"`
	Findings []Finding `json:"findings"`
	// Notes are differences that are legitimate (see CrossCheck).
	Notes []Finding `json:"notes,omitempty"`
	// Unchecked says what could not be checked because a party's log was
	// not given or did not verify.
	Unchecked []string `json:"unchecked,omitempty"`
}

// OK reports whether the logs agree wherever they could be compared.
func (c *Cross) OK() bool { return len(c.Findings) == 0 }

// requestView is one party's entries about one request.
type requestView struct {
	requests  []*Record
	approvals []*Record
	verdicts  []*Record
	sessions  []*Record
	results   []*Record
}

func indexRequests(l *Log) map[string]*requestView {
	out := map[string]*requestView{}
	get := func(id string) *requestView {
		v := out[id]
		if v == nil {
			v = &requestView{}
			out[id] = v
		}
		return v
	}
	for i := range l.Records {
		r := &l.Records[i]
		switch b := r.Body.(type) {
		case *audit.Request:
			v := get(b.RequestID)
			v.requests = append(v.requests, r)
		case *audit.Approval:
			v := get(b.RequestID)
			v.approvals = append(v.approvals, r)
		case *audit.Verdict:
			v := get(b.RequestID)
			v.verdicts = append(v.verdicts, r)
		case *audit.Session:
			v := get(b.RequestID)
			v.sessions = append(v.sessions, r)
		case *audit.Result:
			v := get(b.RequestID)
			v.results = append(v.results, r)
		}
	}
	return out
}

// CrossCheck holds verified logs of several parties to each other. For
// every request id with a session entry in any log, each party named as a
// signer there must have, in its own log:
//
//   - a request entry with the same request digest and payload hash (and,
//     if the client named signers, the same signers);
//   - an allow verdict for that payload hash under the same policy version,
//     whose decision digest is the one governance/policy computes from the
//     verdict's own fields;
//   - session entries for the same runs: proposal ids, session ids, key,
//     epoch, signers and digests;
//   - if any signer recorded the request as signed, a "signed" result with
//     the same digests and signatures (and digests those of the sessions).
//
// Decision digests are compared across parties only when the allowing
// rules agree: the digest covers the allowing rule, and parties may
// legitimately allow one request by different rules — velocity state is
// per party (each counts only what it signed), so a rule over its limit on
// one party is within it on another. A different rule is a Note; a
// different digest under the same rule and version is a Finding.
//
// Approvals counted (approver, decision, approval digest) are compared
// too, as a Note: each signer checks an approval's expiry on its own
// clock, so one may legitimately count an approval another found expired.
//
// Keygen ceremonies: every party named in a keygen entry must record the
// same key with the same public key, threshold and parties.
//
// Logs that did not verify, or parties whose logs are not given, are
// listed in Unchecked rather than trusted.
func CrossCheck(logs []*Log) *Cross {
	c := &Cross{Findings: []Finding{}}
	byParty := map[string]*Log{}
	views := map[string]map[string]*requestView{}
	for _, l := range logs {
		if l == nil || l.PartyID == "" {
			continue
		}
		byParty[l.PartyID] = l
		if l.Verified() {
			views[l.PartyID] = indexRequests(l)
		}
	}
	parties := slices.Sorted(maps.Keys(views))
	ids := map[string]bool{}
	for _, p := range parties {
		for id, v := range views[p] {
			if len(v.sessions) > 0 {
				ids[id] = true
			}
		}
	}
	for _, id := range slices.Sorted(maps.Keys(ids)) {
		c.Requests++
		c.checkRequest(id, parties, byParty, views)
	}
	c.checkKeygens(parties, byParty)
	c.checkReshares(parties, byParty)
	return c
}

func (c *Cross) find(f Finding) { c.Findings = append(c.Findings, f) }

func (c *Cross) checkRequest(id string, parties []string, byParty map[string]*Log, views map[string]map[string]*requestView) {
	// The signers, as every session entry names them.
	var signers []string
	var signersFrom string
	var signersSeq uint64
	for _, p := range parties {
		v := views[p][id]
		if v == nil {
			continue
		}
		for _, r := range v.sessions {
			s := r.Body.(*audit.Session)
			if signers == nil {
				signers, signersFrom, signersSeq = s.Signers, p, r.Seq
			} else if !slices.Equal(s.Signers, signers) {
				c.find(Finding{RequestID: id, Parties: []string{p, signersFrom}, Field: "signers",
					Detail: fmt.Sprintf("party %s's session names signers [%s], party %s's [%s]", p, strings.Join(s.Signers, ","), signersFrom, strings.Join(signers, ",")),
					Seqs:   map[string]uint64{p: r.Seq, signersFrom: signersSeq}})
			}
			if !slices.Contains(s.Signers, p) {
				c.find(Finding{RequestID: id, Parties: []string{p}, Field: "signers",
					Detail: fmt.Sprintf("party %s recorded a session whose signers [%s] do not include it", p, strings.Join(s.Signers, ",")), Seqs: map[string]uint64{p: r.Seq}})
			}
		}
	}
	type party struct {
		id string
		v  *requestView
	}
	var present []party
	for _, s := range signers {
		l := byParty[s]
		switch {
		case l == nil:
			c.Unchecked = append(c.Unchecked, fmt.Sprintf("request %s: signer %s's log was not given", id, s))
			continue
		case !l.Verified():
			c.Unchecked = append(c.Unchecked, fmt.Sprintf("request %s: signer %s's log did not verify", id, s))
			continue
		}
		v := views[s][id]
		if v == nil {
			v = &requestView{}
		}
		present = append(present, party{s, v})
	}

	// The admission on each signer: its allow verdict and the request
	// entry before it. A party may have refused the request before (a
	// request entry with a deny verdict) and admitted it on a retry.
	type admission struct {
		req, verdict *Record
	}
	adm := map[string]admission{}
	for _, p := range present {
		var a admission
		allows := 0
		for _, r := range p.v.verdicts {
			if r.Body.(*audit.Verdict).Outcome == audit.OutcomeAllow {
				a.verdict = r
				allows++
			}
		}
		if allows > 1 {
			c.find(Finding{RequestID: id, Parties: []string{p.id}, Field: "verdict",
				Detail: fmt.Sprintf("party %s admitted the request %d times", p.id, allows), Seqs: map[string]uint64{p.id: a.verdict.Seq}})
		}
		for _, r := range p.v.requests {
			if a.verdict == nil || r.Seq < a.verdict.Seq {
				a.req = r
			}
		}
		switch {
		case a.req == nil:
			c.find(Finding{RequestID: id, Parties: []string{p.id, signersFrom}, Field: "request",
				Detail: fmt.Sprintf("party %s is a signer (per party %s's session entry) but its log has no request entry for it", p.id, signersFrom),
				Seqs:   map[string]uint64{signersFrom: signersSeq}})
		case a.verdict == nil:
			detail := fmt.Sprintf("party %s is a signer (per party %s's session entry) but has no allow verdict for it", p.id, signersFrom)
			if n := len(p.v.verdicts); n > 0 {
				detail += fmt.Sprintf(" (its last verdict: %s)", p.v.verdicts[n-1].Body.(*audit.Verdict).Outcome)
			}
			c.find(Finding{RequestID: id, Parties: []string{p.id, signersFrom}, Field: "verdict", Detail: detail, Seqs: map[string]uint64{signersFrom: signersSeq}})
		}
		adm[p.id] = a
	}

	// Request entries.
	var ref *audit.Request
	var refP string
	var refSeq uint64
	for _, p := range present {
		r := adm[p.id].req
		if r == nil {
			continue
		}
		rq := r.Body.(*audit.Request)
		if len(rq.Signers) > 0 && !slices.Equal(rq.Signers, signers) {
			c.find(Finding{RequestID: id, Parties: []string{p.id}, Field: "signers",
				Detail: fmt.Sprintf("the request asked for signers [%s], the sessions ran with [%s]", strings.Join(rq.Signers, ","), strings.Join(signers, ",")), Seqs: map[string]uint64{p.id: r.Seq}})
		}
		if ref == nil {
			ref, refP, refSeq = rq, p.id, r.Seq
			continue
		}
		seqs := map[string]uint64{p.id: r.Seq, refP: refSeq}
		if rq.RequestDigest != ref.RequestDigest {
			c.find(Finding{RequestID: id, Parties: []string{p.id, refP}, Field: "request_digest",
				Detail: fmt.Sprintf("party %s admitted request %x, party %s %x", p.id, rq.RequestDigest[:8], refP, ref.RequestDigest[:8]), Seqs: seqs})
		}
		if rq.PayloadHash != ref.PayloadHash {
			c.find(Finding{RequestID: id, Parties: []string{p.id, refP}, Field: "payload_hash",
				Detail: fmt.Sprintf("party %s decoded payload hash %x, party %s %x", p.id, rq.PayloadHash[:8], refP, ref.PayloadHash[:8]), Seqs: seqs})
		}
		if rq.Path != ref.Path {
			c.find(Finding{RequestID: id, Parties: []string{p.id, refP}, Field: "path",
				Detail: fmt.Sprintf("party %s signed with the child at %q, party %s at %q", p.id, rq.Path, refP, ref.Path), Seqs: seqs})
		}
	}

	// Verdicts.
	var refV *audit.Verdict
	var refVP string
	var refVSeq uint64
	for _, p := range present {
		a := adm[p.id]
		if a.verdict == nil {
			continue
		}
		allow := a.verdict
		vd := allow.Body.(*audit.Verdict)
		if a.req != nil {
			if rq := a.req.Body.(*audit.Request); rq.PayloadHash != vd.PayloadHash {
				c.find(Finding{RequestID: id, Parties: []string{p.id}, Field: "payload_hash",
					Detail: fmt.Sprintf("party %s's verdict is on payload hash %x, its request entry has %x", p.id, vd.PayloadHash[:8], rq.PayloadHash[:8]),
					Seqs:   map[string]uint64{p.id: allow.Seq}})
			}
		}
		if len(vd.DecisionDigest) > 0 {
			if want := allowDigest(vd); !bytes.Equal(vd.DecisionDigest, want[:]) {
				c.find(Finding{RequestID: id, Parties: []string{p.id}, Field: "decision_digest",
					Detail: fmt.Sprintf("party %s's decision digest %x is not the digest of its own verdict (policy v%d, rule %q): %x", p.id, vd.DecisionDigest[:min(8, len(vd.DecisionDigest))], vd.PolicyVersion, ruleOf(vd), want[:8]),
					Seqs:   map[string]uint64{p.id: allow.Seq}})
			}
		}
		if refV == nil {
			refV, refVP, refVSeq = vd, p.id, allow.Seq
			continue
		}
		seqs := map[string]uint64{p.id: allow.Seq, refVP: refVSeq}
		if vd.PolicyVersion != refV.PolicyVersion {
			c.find(Finding{RequestID: id, Parties: []string{p.id, refVP}, Field: "policy_version",
				Detail: fmt.Sprintf("party %s allowed under policy v%d, party %s under v%d", p.id, vd.PolicyVersion, refVP, refV.PolicyVersion), Seqs: seqs})
		}
		if vd.PayloadHash != refV.PayloadHash {
			c.find(Finding{RequestID: id, Parties: []string{p.id, refVP}, Field: "payload_hash",
				Detail: fmt.Sprintf("party %s allowed payload hash %x, party %s %x", p.id, vd.PayloadHash[:8], refVP, refV.PayloadHash[:8]), Seqs: seqs})
		}
		switch {
		case !slices.Equal(vd.RuleIDs, refV.RuleIDs):
			c.Notes = append(c.Notes, Finding{RequestID: id, Parties: []string{p.id, refVP}, Field: "rule_ids",
				Detail: fmt.Sprintf("party %s allowed by rule %q, party %s by %q (velocity state is per party), so their decision digests differ", p.id, ruleOf(vd), refVP, ruleOf(refV)), Seqs: seqs})
		case vd.PolicyVersion == refV.PolicyVersion && len(vd.DecisionDigest) > 0 && len(refV.DecisionDigest) > 0 && !bytes.Equal(vd.DecisionDigest, refV.DecisionDigest):
			c.find(Finding{RequestID: id, Parties: []string{p.id, refVP}, Field: "decision_digest",
				Detail: fmt.Sprintf("party %s's decision digest %x, party %s's %x, under the same policy version and rule", p.id, vd.DecisionDigest[:min(8, len(vd.DecisionDigest))], refVP, refV.DecisionDigest[:min(8, len(refV.DecisionDigest))]), Seqs: seqs})
		}
	}

	// Approvals: each signer verifies the approvals the proposal carries
	// against its own clock, so one may count an approval that expired
	// before another looked: a difference is a Note.
	var refA []string
	var refAP string
	for _, p := range present {
		a := adm[p.id]
		if a.verdict == nil {
			continue
		}
		var got []string
		for _, r := range p.v.approvals {
			if r.Seq < a.verdict.Seq && (a.req == nil || r.Seq > a.req.Seq) {
				ap := r.Body.(*audit.Approval)
				got = append(got, fmt.Sprintf("%s:%s:%x", ap.ApproverKeyID, ap.Decision, ap.ApprovalDigest[:4]))
			}
		}
		slices.Sort(got)
		if refAP == "" {
			refA, refAP = got, p.id
			continue
		}
		if !slices.Equal(got, refA) {
			c.Notes = append(c.Notes, Finding{RequestID: id, Parties: []string{p.id, refAP}, Field: "approvals",
				Detail: fmt.Sprintf("party %s counted approvals [%s], party %s [%s]", p.id, strings.Join(got, " "), refAP, strings.Join(refA, " ")),
				Seqs:   map[string]uint64{p.id: a.verdict.Seq}})
		}
	}

	// Sessions.
	var refS []*Record
	var refSP string
	var sessionDigests [][]byte
	for _, p := range present {
		if len(p.v.sessions) == 0 {
			continue // reported below if the request was signed
		}
		if refS == nil {
			refS, refSP = p.v.sessions, p.id
			for _, r := range refS {
				sessionDigests = append(sessionDigests, r.Body.(*audit.Session).Digests...)
			}
			continue
		}
		if len(p.v.sessions) != len(refS) {
			c.find(Finding{RequestID: id, Parties: []string{p.id, refSP}, Field: "session",
				Detail: fmt.Sprintf("party %s recorded %d session runs, party %s %d", p.id, len(p.v.sessions), refSP, len(refS)),
				Seqs:   map[string]uint64{p.id: p.v.sessions[0].Seq, refSP: refS[0].Seq}})
			continue
		}
		for i, r := range p.v.sessions {
			s, w := r.Body.(*audit.Session), refS[i].Body.(*audit.Session)
			seqs := map[string]uint64{p.id: r.Seq, refSP: refS[i].Seq}
			diff := func(field, format string, a ...any) {
				c.find(Finding{RequestID: id, Parties: []string{p.id, refSP}, Field: field, Detail: fmt.Sprintf("run %d: ", i) + fmt.Sprintf(format, a...), Seqs: seqs})
			}
			switch {
			case !bytes.Equal(s.ProposalID, w.ProposalID):
				diff("proposal_id", "party %s's proposal %x, party %s's %x", p.id, s.ProposalID, refSP, w.ProposalID)
			case !bytes.Equal(s.SessionID, w.SessionID):
				diff("session_id", "party %s's session %x, party %s's %x", p.id, s.SessionID, refSP, w.SessionID)
			}
			if s.KeyID != w.KeyID || s.Epoch != w.Epoch {
				diff("key_id", "party %s signs with key %s epoch %d, party %s with %s epoch %d", p.id, s.KeyID, s.Epoch, refSP, w.KeyID, w.Epoch)
			}
			if !slices.EqualFunc(s.Digests, w.Digests, bytes.Equal) {
				diff("digests", "party %s signs %s, party %s %s", p.id, hexList(s.Digests), refSP, hexList(w.Digests))
			}
		}
	}

	// Results.
	var signed *Record
	var signedP string
	for _, p := range present {
		for _, r := range p.v.results {
			if r.Body.(*audit.Result).Outcome == audit.OutcomeSigned && signed == nil {
				signed, signedP = r, p.id
			}
		}
	}
	if signed == nil {
		return
	}
	c.Signed++
	want := signed.Body.(*audit.Result)
	if sessionDigests != nil && !slices.EqualFunc(want.Digests, sessionDigests, bytes.Equal) {
		c.find(Finding{RequestID: id, Parties: []string{signedP, refSP}, Field: "digests",
			Detail: fmt.Sprintf("party %s's result covers %s, the sessions signed %s", signedP, hexList(want.Digests), hexList(sessionDigests)),
			Seqs:   map[string]uint64{signedP: signed.Seq}})
	}
	for _, p := range present {
		if len(p.v.sessions) == 0 {
			c.find(Finding{RequestID: id, Parties: []string{p.id, signedP}, Field: "session",
				Detail: fmt.Sprintf("the request was signed (party %s's result) but party %s's log has no session entry for it", signedP, p.id),
				Seqs:   map[string]uint64{signedP: signed.Seq}})
		}
		if p.id == signedP {
			continue
		}
		var got *Record
		for _, r := range p.v.results {
			if r.Body.(*audit.Result).Outcome == audit.OutcomeSigned {
				got = r
			}
		}
		if got == nil {
			detail := fmt.Sprintf("party %s recorded the request as signed, party %s's log has no signed result", signedP, p.id)
			if n := len(p.v.results); n > 0 {
				detail += fmt.Sprintf(" (its result: %s)", p.v.results[n-1].Body.(*audit.Result).Outcome)
			}
			c.find(Finding{RequestID: id, Parties: []string{p.id, signedP}, Field: "result", Detail: detail, Seqs: map[string]uint64{signedP: signed.Seq}})
			continue
		}
		res := got.Body.(*audit.Result)
		seqs := map[string]uint64{p.id: got.Seq, signedP: signed.Seq}
		if !slices.EqualFunc(res.Digests, want.Digests, bytes.Equal) {
			c.find(Finding{RequestID: id, Parties: []string{p.id, signedP}, Field: "digests",
				Detail: fmt.Sprintf("party %s's result covers %s, party %s's %s", p.id, hexList(res.Digests), signedP, hexList(want.Digests)), Seqs: seqs})
		}
		if !slices.EqualFunc(res.Signatures, want.Signatures, bytes.Equal) {
			c.find(Finding{RequestID: id, Parties: []string{p.id, signedP}, Field: "signatures",
				Detail: fmt.Sprintf("party %s's signatures %s, party %s's %s", p.id, hexList(res.Signatures), signedP, hexList(want.Signatures)), Seqs: seqs})
		}
	}
}

// allowDigest is the policy decision digest an allow verdict implies
// (governance/policy Decision.Digest): an allow has no denials, so version,
// payload hash, outcome and rule are all it covers.
func allowDigest(v *audit.Verdict) [32]byte {
	return policy.Decision{Outcome: policy.Allow, PolicyVersion: v.PolicyVersion, PayloadHash: v.PayloadHash, RuleID: ruleOf(v)}.Digest()
}

func ruleOf(v *audit.Verdict) string {
	if len(v.RuleIDs) == 0 {
		return ""
	}
	return v.RuleIDs[0]
}

func (c *Cross) checkKeygens(parties []string, byParty map[string]*Log) {
	type rec struct {
		party string
		r     *Record
		c     *audit.Ceremony
	}
	byKey := map[string][]rec{}
	for _, p := range parties {
		for i := range byParty[p].Records {
			r := &byParty[p].Records[i]
			if cb, ok := r.Body.(*audit.Ceremony); ok && cb.Kind == "keygen" && cb.KeyID != "" && cb.Outcome == "done" {
				byKey[cb.KeyID] = append(byKey[cb.KeyID], rec{p, r, cb})
			}
		}
	}
	for _, key := range slices.Sorted(maps.Keys(byKey)) {
		c.Keys++
		rs := byKey[key]
		ref := rs[0]
		has := map[string]bool{}
		for _, x := range rs {
			has[x.party] = true
			if x.party == ref.party {
				continue
			}
			seqs := map[string]uint64{x.party: x.r.Seq, ref.party: ref.r.Seq}
			if !bytes.Equal(x.c.PublicKey, ref.c.PublicKey) {
				c.find(Finding{KeyID: key, Parties: []string{x.party, ref.party}, Field: "public_key",
					Detail: fmt.Sprintf("party %s generated public key %x, party %s %x", x.party, x.c.PublicKey, ref.party, ref.c.PublicKey), Seqs: seqs})
			}
			if x.c.Threshold != ref.c.Threshold || !slices.Equal(x.c.Parties, ref.c.Parties) {
				c.find(Finding{KeyID: key, Parties: []string{x.party, ref.party}, Field: "parties",
					Detail: fmt.Sprintf("party %s records threshold %d of [%s], party %s %d of [%s]", x.party, x.c.Threshold, strings.Join(x.c.Parties, ","), ref.party, ref.c.Threshold, strings.Join(ref.c.Parties, ",")), Seqs: seqs})
			}
		}
		for _, p := range ref.c.Parties {
			if has[p] {
				continue
			}
			switch l := byParty[p]; {
			case l == nil:
				c.Unchecked = append(c.Unchecked, fmt.Sprintf("key %s: party %s's log was not given", key, p))
			case !l.Verified():
				c.Unchecked = append(c.Unchecked, fmt.Sprintf("key %s: party %s's log did not verify", key, p))
			default:
				c.find(Finding{KeyID: key, Parties: []string{p, ref.party}, Field: "ceremony",
					Detail: fmt.Sprintf("party %s's keygen entry names party %s, whose log has no keygen entry for the key", ref.party, p), Seqs: map[string]uint64{ref.party: ref.r.Seq}})
			}
		}
	}
}

// checkReshares compares every party's record of each committed reshare
// (the "reshare-commit" entries of a key's epoch): the same reshare
// (proposal id), committee, threshold and public key — the key's public key
// from its keygen, which no refresh or reshare may change. A member of the
// committee whose log has no commit yet is a note (the commit has not
// reached it: rerunning completes it), not a finding.
func (c *Cross) checkReshares(parties []string, byParty map[string]*Log) {
	type rec struct {
		party string
		r     *Record
		c     *audit.Ceremony
	}
	type at struct {
		key   string
		epoch uint64
	}
	commits := map[at][]rec{}
	keygenPub := map[string][]byte{}
	for _, p := range parties {
		for i := range byParty[p].Records {
			r := &byParty[p].Records[i]
			cb, ok := r.Body.(*audit.Ceremony)
			if !ok || cb.KeyID == "" {
				continue
			}
			switch {
			case cb.Kind == "keygen" && cb.Outcome == "done":
				keygenPub[cb.KeyID] = cb.PublicKey
			case cb.Kind == "reshare-commit":
				k := at{cb.KeyID, cb.Epoch}
				commits[k] = append(commits[k], rec{p, r, cb})
			}
		}
	}
	keys := slices.SortedFunc(maps.Keys(commits), func(a, b at) int {
		if a.key != b.key {
			return strings.Compare(a.key, b.key)
		}
		return cmp.Compare(a.epoch, b.epoch)
	})
	for _, k := range keys {
		c.Reshares++
		rs := commits[k]
		ref := rs[0]
		has := map[string]bool{}
		for _, x := range rs {
			has[x.party] = true
			seqs := map[string]uint64{x.party: x.r.Seq, ref.party: ref.r.Seq}
			if pub, ok := keygenPub[k.key]; ok && !bytes.Equal(x.c.PublicKey, pub) {
				c.find(Finding{KeyID: k.key, Parties: []string{x.party}, Field: "public_key",
					Detail: fmt.Sprintf("party %s committed epoch %d with public key %x, the key's keygen made %x", x.party, k.epoch, x.c.PublicKey, pub), Seqs: map[string]uint64{x.party: x.r.Seq}})
			}
			if x.party == ref.party {
				continue
			}
			if x.c.Detail["proposal_id"] != ref.c.Detail["proposal_id"] || !bytes.Equal(x.c.PublicKey, ref.c.PublicKey) {
				c.find(Finding{KeyID: k.key, Parties: []string{x.party, ref.party}, Field: "reshare",
					Detail: fmt.Sprintf("parties %s and %s committed different reshares as epoch %d (proposal %s, %s)", x.party, ref.party, k.epoch, x.c.Detail["proposal_id"], ref.c.Detail["proposal_id"]), Seqs: seqs})
			}
			if x.c.Threshold != ref.c.Threshold || !slices.Equal(x.c.Parties, ref.c.Parties) {
				c.find(Finding{KeyID: k.key, Parties: []string{x.party, ref.party}, Field: "parties",
					Detail: fmt.Sprintf("epoch %d: party %s records threshold %d of [%s], party %s %d of [%s]", k.epoch, x.party, x.c.Threshold, strings.Join(x.c.Parties, ","), ref.party, ref.c.Threshold, strings.Join(ref.c.Parties, ",")), Seqs: seqs})
			}
		}
		for _, p := range ref.c.Parties {
			if !has[p] && byParty[p] != nil && byParty[p].Verified() {
				c.Notes = append(c.Notes, Finding{KeyID: k.key, Parties: []string{p, ref.party}, Field: "reshare",
					Detail: fmt.Sprintf("epoch %d: party %s's log has no commit yet (party %s committed it); rerun the reshare to complete it", k.epoch, p, ref.party), Seqs: map[string]uint64{ref.party: ref.r.Seq}})
			}
		}
	}
}

func hexList(bs [][]byte) string {
	parts := make([]string, len(bs))
	for i, b := range bs {
		parts[i] = short(b)
	}
	return "[" + strings.Join(parts, " ") + "]"
}
