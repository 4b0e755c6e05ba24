package party

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sealsign/sealsign/enclave/api"
	"github.com/sealsign/sealsign/enclave/audit"
	"github.com/sealsign/sealsign/enclave/session"
	"github.com/sealsign/sealsign/governance/approval"
	"github.com/sealsign/sealsign/governance/policy"
	"github.com/sealsign/sealsign/governance/request"
	"github.com/sealsign/sealsign/governance/tx"
	"github.com/sealsign/sealsign/hsm"
)

// governor is the enclave's governance state: the policy in force, the
// velocity counters, the replay cache and the audit chain. Its lock
// serialises every decision that changes state (admitting a request,
// accepting a policy), so two requests racing for the last velocity slot
// cannot both pass.
type governor struct {
	mu     sync.Mutex
	sets   *api.GovernanceSets
	store  *policy.Store
	vel    *policy.VelocityState
	replay *request.ReplayCache
	// salt keys the hashes of free text in audit entries (audit.KeyedHash);
	// it is created at first boot and sealed with the state.
	salt []byte
}

// genesisPolicy verifies the manifest's genesis policy against its admin
// quorum and cluster id and returns the policy store that later signed
// updates advance (policy.Store.Accept refuses rollbacks).
func genesisPolicy(m *api.Manifest, now time.Time) (*policy.Store, error) {
	sets, err := m.Governance.Sets()
	if err != nil {
		return nil, err
	}
	p, err := policy.Accept(nil, m.Governance.Policy, sets.Admins, m.ClusterID, now)
	if err != nil {
		return nil, fmt.Errorf("party: genesis policy refused: %w", err)
	}
	return policy.NewStore(p)
}

func newGovernor(m *api.Manifest, now time.Time, rand io.Reader) (*governor, error) {
	store, err := genesisPolicy(m, now)
	if err != nil {
		return nil, err
	}
	sets, err := m.Governance.Sets()
	if err != nil {
		return nil, err
	}
	replay, err := request.NewReplayCache(request.MaxReplayCapacity)
	if err != nil {
		return nil, err
	}
	// The host keeps our sealed state and could hand back an older copy:
	// requests issued before this boot may have been admitted by an earlier
	// incarnation, so none of them is accepted (request.ReplayCache).
	replay.SetFloor(now)
	salt := make([]byte, 32)
	if _, err := io.ReadFull(rand, salt); err != nil {
		return nil, err
	}
	return &governor{sets: sets, store: store, vel: policy.NewVelocityState(), replay: replay, salt: salt}, nil
}

func (e *Enclave) policyVersion() uint64 {
	if e.gov == nil {
		return 0
	}
	e.gov.mu.Lock()
	defer e.gov.mu.Unlock()
	if p := e.gov.store.Effective(e.cfg.Clock()); p != nil {
		return p.Version
	}
	return 0
}

// evaluation is one request as this party judged it.
type evaluation struct {
	req       *request.Request
	reqDigest [32]byte
	key       *loadedKey
	child     *derived    // the request's BIP-32 child of key; nil for key itself
	decoded   *tx.Decoded // nil when the payload did not decode
	policy    *policy.Policy
	input     policy.Input
	decision  policy.Decision
	verdict   api.Verdict
	approvals []*approval.Approval
}

// evaluate verifies a signed request and its approvals and evaluates the
// policy in force on the payload as this enclave decodes it. It changes no
// state; the caller holds g.mu. Requests that cannot be attributed to a
// client (bad signature, wrong cluster, expired, replayed) are errors; a
// request that is well signed but not allowed — including an undecodable
// payload — is a verdict.
func (e *Enclave) evaluate(me string, signed []byte, approvals [][]byte, now time.Time) (*evaluation, error) {
	g := e.gov
	if g == nil {
		return nil, api.Errorf(api.CodeRejected, "party %s: this cluster's manifest has no governance section: this party signs nothing without a policy", me)
	}
	if err := e.governanceUnreadable(me, "refusing to sign"); err != nil {
		return nil, err
	}
	r, err := request.Verify(signed, g.sets.Clients, e.manifest.ClusterID, now, 0)
	if err != nil {
		return nil, api.Errorf(api.CodeRejected, "party %s: request refused: %v", me, err)
	}
	if err := g.replay.Check(r); err != nil {
		return nil, api.Errorf(api.CodeRejected, "party %s: request %s refused: %v", me, r.ID, err)
	}
	k, err := e.share(r.KeyID)
	if err != nil {
		return nil, err
	}
	pol := g.store.Effective(now)
	ev := &evaluation{req: r, reqDigest: request.Digest(signed), key: k, policy: pol}
	ev.verdict = api.Verdict{
		PartyID: me, RequestID: r.ID, RequestDigest: ev.reqDigest[:], PolicyVersion: pol.Version,
		KeyID: r.KeyID, ClientKeyID: r.ClientKeyID, ExpiresAt: r.ExpiresAt,
	}
	if len(approvals) > maxApprovals {
		return nil, api.Errorf(api.CodeBadRequest, "party %s: %d approvals, limit %d", me, len(approvals), maxApprovals)
	}
	// A request under a derivation path signs with the child key: the
	// payload (an EVM sender, a PSBT's inputs) is decoded against it.
	if ev.child, err = requestChild(k, r.Path); err != nil {
		return nil, api.Errorf(api.CodeRejected, "party %s: request %s refused: %v", me, r.ID, err)
	}
	dec, err := tx.Decode(r.Kind, r.Payload, tx.Key{Algorithm: k.rec.Algorithm, PublicKey: ev.signingKey()}, tx.Options{})
	if err != nil {
		ph := tx.PayloadHash(r.Kind, r.Payload)
		ev.verdict.PayloadHash = ph[:]
		ev.verdict.Outcome = api.OutcomeDeny
		ev.verdict.Summary = api.TxSummary{Kind: string(r.Kind)}
		ev.verdict.Denials = []api.Denial{{Code: DenyInvalidPayload, Detail: err.Error()}}
		ev.decision = policy.Decision{Outcome: policy.Deny, PolicyVersion: pol.Version, PayloadHash: ph}
		dd := ev.decision.Digest()
		ev.verdict.DecisionDigest = dd[:]
		return ev, nil
	}
	ev.decoded = dec
	sum := dec.Summary
	ev.verdict.PayloadHash = sum.PayloadHash[:]
	ev.verdict.Summary = api.SummaryOf(sum)

	tally := approval.NewTally(g.sets.Approvers, approval.Subject{
		ClusterID: e.manifest.ClusterID, RequestID: r.ID, RequestDigest: ev.reqDigest,
		PayloadHash: sum.PayloadHash, PolicyVersion: pol.Version,
	})
	for _, b := range approvals {
		a, err := tally.Add(b, now)
		if err != nil {
			ev.verdict.Ignored = append(ev.verdict.Ignored, api.ApprovalSeen{Error: err.Error()})
			continue
		}
		ev.approvals = append(ev.approvals, a)
	}
	for _, a := range tally.Decisions() {
		ev.verdict.Approvals = append(ev.verdict.Approvals, api.ApprovalSeen{ApproverKeyID: a.ApproverKeyID, Decision: a.Decision})
	}
	rejected, _, _ := tally.Rejected()
	var approvers []policy.Approver
	for _, a := range tally.Verified(g.sets.Groups) {
		approvers = append(approvers, policy.Approver{KeyID: a.KeyID, Owner: a.Owner, Groups: a.Groups})
	}
	ev.input = policy.Input{
		ClusterID: e.manifest.ClusterID, Summary: sum, KeyID: r.KeyID, KeyAlgorithm: k.rec.Algorithm, KeyPath: r.Path.String(),
		ClientID: r.ClientKeyID, Initiator: g.sets.Clients[r.ClientKeyID].Owner, Now: now,
		Approvals: approvers, Rejected: rejected,
	}
	ev.decision = pol.Evaluate(ev.input, g.vel)
	d := ev.decision
	ev.verdict.Outcome = outcomeOf(d.Outcome)
	ev.verdict.RuleID = d.RuleID
	for _, x := range d.Denials {
		ev.verdict.Denials = append(ev.verdict.Denials, api.Denial{Code: string(x.Code), RuleID: x.RuleID, LimitID: x.LimitID, Clause: x.Clause, Detail: x.Detail})
	}
	for _, p := range d.Pending {
		pr := api.PendingRule{RuleID: p.RuleID, Logic: p.Logic}
		for _, gs := range p.Groups {
			pr.Groups = append(pr.Groups, api.GroupNeeds{Group: gs.Group, Threshold: gs.Threshold, Have: gs.Have, Need: gs.Need, Excluded: gs.Excluded})
		}
		ev.verdict.Pending = append(ev.verdict.Pending, pr)
	}
	dd := d.Digest()
	ev.verdict.DecisionDigest = dd[:]
	return ev, nil
}

// DenyInvalidPayload is the denial code of a payload this enclave could not
// decode (unknown kind, malformed bytes, unsupported script).
const DenyInvalidPayload = "invalid-payload"

// maxApprovals bounds the approvals one request may carry.
const maxApprovals = 64

func outcomeOf(o policy.Outcome) string {
	switch o {
	case policy.Allow:
		return api.OutcomeAllow
	case policy.NeedsApproval:
		return api.OutcomeNeedsApproval
	}
	return api.OutcomeDeny
}

// verdictError refuses a verdict that is not allow, naming every reason.
func verdictError(v *api.Verdict) error {
	return api.Errorf(api.CodeRejected, "%s", v.Explain())
}

// evaluateMethod answers the host's question "what would you decide?"
// without changing any state but, when asked to, the audit log.
func (e *Enclave) evaluateMethod(ctx context.Context, req *api.EvaluateRequest) (*api.Verdict, error) {
	me, _, err := e.readyRestored()
	if err != nil {
		return nil, err
	}
	if e.gov == nil {
		_, err := e.evaluate(me, nil, nil, e.cfg.Clock())
		return nil, err
	}
	e.gov.mu.Lock()
	ev, err := e.evaluate(me, req.Request, req.Approvals, e.cfg.Clock())
	e.gov.mu.Unlock()
	if err != nil {
		return nil, err
	}
	v := ev.verdict // before auditAdmission reads ev
	if req.Record && v.Outcome != api.OutcomeAllow {
		if err := e.auditAdmission(ctx, ev); err != nil {
			return nil, err // fail closed: a decision that cannot be recorded is not reported
		}
	}
	return &v, nil
}

// governSign fills a governed signing proposal: the coordinator evaluates
// the request first and proposes only what it allows. It returns that
// evaluation, which propose matches the finished proposal against.
func (e *Enclave) governSign(me string, req *api.ProposeRequest, p *session.Proposal) (*evaluation, error) {
	if len(req.Request) == 0 {
		if e.gov == nil {
			_, err := e.evaluate(me, nil, nil, e.cfg.Clock())
			return nil, err
		}
		return nil, api.Errorf(api.CodeRejected, "party %s: governance is in force: signing needs a client-signed request, not a bare message", me)
	}
	if len(req.Message) != 0 {
		return nil, api.Errorf(api.CodeBadRequest, "party %s: a governed request carries no bare message", me)
	}
	if e.gov == nil {
		_, err := e.evaluate(me, nil, nil, e.cfg.Clock())
		return nil, err
	}
	e.gov.mu.Lock()
	ev, err := e.evaluate(me, req.Request, req.Approvals, e.cfg.Clock())
	e.gov.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if ev.verdict.Outcome != api.OutcomeAllow {
		return nil, verdictError(&ev.verdict)
	}
	if ev.req.KeyID != req.KeyID {
		return nil, api.Errorf(api.CodeBadRequest, "party %s: request %s is for key %q, proposal for %q", me, ev.req.ID, ev.req.KeyID, req.KeyID)
	}
	p.Request, p.Approvals, p.PolicyVersion, p.Digests = req.Request, req.Approvals, ev.policy.Version, ev.decoded.Summary.Digests
	return ev, nil
}

// requireGoverned refuses a signing proposal before anything is evaluated
// when this party cannot or will not judge it: no governance in the
// manifest, or no client request in the proposal. The request itself is
// evaluated once, at admission (admit).
func (e *Enclave) requireGoverned(me string, p *session.Proposal) error {
	if e.gov == nil {
		_, err := e.evaluate(me, nil, nil, e.cfg.Clock())
		return err
	}
	if !p.Governed() {
		return api.Errorf(api.CodeRejected, "party %s: governance is in force: signing needs a client-signed request, not a bare message", me)
	}
	return nil
}

func (e *Enclave) matchProposal(me string, ev *evaluation, p *session.Proposal) error {
	if ev.verdict.Outcome != api.OutcomeAllow {
		return verdictError(&ev.verdict)
	}
	if ev.req.KeyID != p.KeyID {
		return api.Errorf(api.CodeRejected, "party %s: request %s is for key %q, proposal signs with %q", me, ev.req.ID, ev.req.KeyID, p.KeyID)
	}
	if ev.policy.Version != p.PolicyVersion {
		return api.Errorf(api.CodeRejected, "party %s: proposal was evaluated under policy v%d, this party has v%d in force", me, p.PolicyVersion, ev.policy.Version)
	}
	if !slices.EqualFunc(ev.decoded.Summary.Digests, p.Digests, bytes.Equal) {
		return api.Errorf(api.CodeRejected, "party %s: the proposal's digests are not the ones this party derives from request %s's payload (altered payload or proposal)", me, ev.req.ID)
	}
	if len(ev.req.Signers) > 0 && !slices.Equal(ev.req.Signers, p.Parties) {
		return api.Errorf(api.CodeRejected, "party %s: request %s asks for signers %s, proposal names %s", me, ev.req.ID, strings.Join(ev.req.Signers, ","), strings.Join(p.Parties, ","))
	}
	return nil
}

// admit is the point of no return for a governed request on this party:
// under the governance lock it re-evaluates (velocity may have moved since
// the proposal was checked), admits the request id (replay), charges the
// velocity counters, writes the request, approvals, verdict and session
// start to the audit log and seals the new state — all durable before this
// party contributes anything to the signing session. A failure anywhere
// refuses to sign (fail closed); the request id stays spent.
func (e *Enclave) admit(ctx context.Context, me string, p *session.Proposal) (*evaluation, error) {
	g := e.gov
	g.mu.Lock()
	defer g.mu.Unlock()
	now := e.cfg.Clock()
	ev, err := e.evaluate(me, p.Request, p.Approvals, now)
	if err != nil {
		return nil, err
	}
	if err := e.matchProposal(me, ev, p); err != nil {
		// The refusal is recorded with what it refused (best effort: it
		// stands either way).
		e.auditRefusal(ctx, ev, err)
		return nil, err
	}
	if err := g.replay.Admit(ev.req, now); err != nil {
		return nil, api.Errorf(api.CodeRejected, "party %s: request %s refused: %v", me, ev.req.ID, err)
	}
	if err := g.vel.Record(ev.input, ev.decision); err != nil {
		return nil, api.Errorf(api.CodeRejected, "party %s: velocity state: %v", me, err)
	}
	if err := e.auditAdmission(ctx, ev); err != nil {
		return nil, err
	}
	if err := e.sealGovernance(ctx, me); err != nil {
		return nil, err
	}
	return ev, nil
}

// Governance state blob.
const (
	governanceBlob = "governance/state"
	kindGovernance = "governance-state"
)

// sealedGovernance is what a party seals of its governance state. The
// replay cache is sealed too, so a restart (even within the second a
// request was issued) keeps every admitted id; requests issued before the
// boot are refused besides (newGovernor), against a host that hands back
// an older copy.
type sealedGovernance struct {
	Policies  []byte     `cbor:"1,keyasint"` // policy.Store
	Velocity  []byte     `cbor:"2,keyasint"` // policy.VelocityState
	AuditHead audit.Head `cbor:"3,keyasint"`
	AuditSalt []byte     `cbor:"4,keyasint"`
	Replay    []byte     `cbor:"5,keyasint,omitempty"` // request.ReplayCache
	// AuditSigner is the identity signing key of the boot that sealed:
	// entries after AuditHead must be its or an attested later boot's.
	AuditSigner []byte `cbor:"6,keyasint,omitempty"`
}

// sealGovernance seals the governance state and has the host store it;
// the caller holds g.mu.
func (e *Enclave) sealGovernance(ctx context.Context, me string) error {
	// Sealing now would replace the state this party could not read with
	// its genesis policy and empty counters.
	if err := e.governanceUnreadable(me, "refusing to overwrite it"); err != nil {
		return err
	}
	g := e.gov
	ps, err := g.store.MarshalBinary()
	if err != nil {
		return api.Errorf(api.CodeInternal, "party: seal policy store: %v", err)
	}
	g.vel.Prune(e.cfg.Clock())
	vs, err := g.vel.MarshalBinary()
	if err != nil {
		return api.Errorf(api.CodeInternal, "party: seal velocity state: %v", err)
	}
	head := e.durableAuditHead()
	g.replay.Prune(e.cfg.Clock())
	rs, err := g.replay.MarshalBinary()
	if err != nil {
		return api.Errorf(api.CodeInternal, "party: seal replay cache: %v", err)
	}
	_, keys, err := e.ready()
	if err != nil {
		return err
	}
	signer := keys.Public().SigningKey
	pt, err := api.Marshal(sealedGovernance{Policies: ps, Velocity: vs, AuditHead: head, AuditSalt: g.salt, Replay: rs, AuditSigner: signer})
	if err != nil {
		return err
	}
	blob, err := hsm.SealBlob(e.cfg.Sealer, hsm.Binding{PartyID: me, KeyID: "governance", Kind: kindGovernance}, pt)
	if err != nil {
		return api.Errorf(api.CodeSealing, "party: seal governance state: %v", err)
	}
	if err := e.callHost(ctx, api.MethodStore, api.StoreRequest{Blob: api.NamedBlob{Name: governanceBlob, Blob: blob}}, nil); err != nil {
		return api.Errorf(api.CodeUnavailable, "party: host did not store the governance state: %v (refusing to sign)", err)
	}
	e.setSealedAuditHead(head, signer)
	return nil
}

// governanceUnreadable refuses, saying what it refuses, when this party's
// sealed governance state could not be restored (restore): nothing may be
// decided or sealed without it.
func (e *Enclave) governanceUnreadable(me, refusing string) error {
	e.mu.Lock()
	govErr := e.govErr
	e.mu.Unlock()
	if govErr == "" {
		return nil
	}
	return api.Errorf(api.CodeSealing, "party %s: governance state could not be restored (%s): %s", me, govErr, refusing)
}

// restoreGovernance loads sealed governance state. A sealed policy newer
// than the manifest's genesis is kept (it was accepted through a signed
// update); velocity counters continue.
func (e *Enclave) restoreGovernance(me string, blob []byte) error {
	if e.gov == nil {
		return errors.New("party: governance state for a cluster without governance")
	}
	pt, err := hsm.OpenBlob(e.cfg.Sealer, hsm.Binding{PartyID: me, KeyID: "governance", Kind: kindGovernance}, blob)
	if err != nil {
		return err
	}
	var sg sealedGovernance
	if err := api.Unmarshal(pt, &sg); err != nil {
		return fmt.Errorf("party: governance state: malformed: %v", err)
	}
	st := new(policy.Store)
	if err := st.UnmarshalBinary(sg.Policies); err != nil {
		return fmt.Errorf("party: governance state: %v", err)
	}
	vel := policy.NewVelocityState()
	if err := vel.UnmarshalBinary(sg.Velocity); err != nil {
		return fmt.Errorf("party: governance state: %v", err)
	}
	g := e.gov
	g.mu.Lock()
	defer g.mu.Unlock()
	now := e.cfg.Clock()
	if cur, got := g.store.Effective(now), st.Effective(now); got == nil || got.ClusterID != cur.ClusterID {
		return fmt.Errorf("party: governance state is for another cluster")
	} else if latest(st).Version >= latest(g.store).Version {
		g.store = st
	}
	if len(sg.AuditSalt) != 32 {
		return fmt.Errorf("party: governance state: audit salt is %d bytes, want 32", len(sg.AuditSalt))
	}
	if len(sg.Replay) > 0 {
		replay, err := request.NewReplayCache(request.MaxReplayCapacity)
		if err != nil {
			return err
		}
		if err := replay.UnmarshalBinary(sg.Replay); err != nil {
			return fmt.Errorf("party: governance state: %v", err)
		}
		replay.SetFloor(now)
		g.replay = replay
	}
	g.vel, g.salt = vel, sg.AuditSalt
	e.setSealedAuditHead(sg.AuditHead, sg.AuditSigner)
	return nil
}

// latest is the newest policy a store holds (pending or effective).
func latest(s *policy.Store) *policy.Policy {
	if p := s.Pending(); p != nil {
		return p
	}
	return s.Effective(time.Unix(0, 0))
}

// policyUpdate accepts a signed policy update (admin quorum, higher
// version, time lock: policy.Store.Accept), records it in the audit log and
// seals it; if either fails the update is undone and refused.
func (e *Enclave) policyUpdate(ctx context.Context, req *api.PolicyUpdateRequest) (*api.PolicyUpdateResponse, error) {
	me, _, err := e.readyRestored()
	if err != nil {
		return nil, err
	}
	g := e.gov
	if g == nil {
		return nil, api.Errorf(api.CodeBadRequest, "party %s: this cluster's manifest has no governance section", me)
	}
	if err := e.governanceUnreadable(me, "refusing policy updates"); err != nil {
		return nil, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	now := e.cfg.Clock()
	before, err := g.store.MarshalBinary()
	if err != nil {
		return nil, api.Errorf(api.CodeInternal, "party: %v", err)
	}
	p, err := g.store.Accept(req.Policy, g.sets.Admins, e.manifest.ClusterID, now)
	if err != nil {
		return nil, api.Errorf(api.CodeRejected, "party %s: policy update refused: %v", me, err)
	}
	undo := func(err error) (*api.PolicyUpdateResponse, error) {
		if uerr := g.store.UnmarshalBinary(before); uerr != nil {
			e.cfg.Log.Error("policy store restore failed", "err", uerr)
		}
		return nil, err
	}
	sp, _ := policy.DecodeSigned(req.Policy)
	var by []string
	if sp != nil {
		for _, s := range sp.Signatures {
			by = append(by, s.KeyID)
		}
	}
	if err := e.auditPolicy(ctx, p, by, now); err != nil {
		return undo(err)
	}
	if err := e.sealGovernance(ctx, me); err != nil {
		if aerr := e.auditAppend(ctx, audit.TypeCeremony, audit.Ceremony{Kind: "policy-update", AuthorisedBy: by, Outcome: "failed", Error: err.Error(),
			Detail: map[string]string{"version": fmt.Sprint(p.Version)}}); aerr != nil {
			e.cfg.Log.Warn("audit entry for the failed policy update not written", "err", aerr)
		}
		return undo(err)
	}
	e.cfg.Log.Info("policy accepted", "version", p.Version, "not_before", p.NotBefore, "authorised_by", strings.Join(by, ","))
	return &api.PolicyUpdateResponse{PartyID: me, Accepted: p.Version, NotBefore: p.NotBefore, Effective: g.store.Effective(now).Version}, nil
}
