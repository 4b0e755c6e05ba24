package party

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"time"

	"github.com/sealsign/sealsign/enclave/api"
	"github.com/sealsign/sealsign/enclave/audit"
	"github.com/sealsign/sealsign/enclave/channel"
	gkeys "github.com/sealsign/sealsign/governance/keys"

	"github.com/sealsign/sealsign/attestation/peer"
	"github.com/sealsign/sealsign/governance/policy"
)

// auditLog is this party's end of its audit chain. Entries are appended in
// one order, each made durable by the host (api.MethodAudit) before the
// next is signed; durable is the head the host has acknowledged.
type auditLog struct {
	chain   *audit.Chain // nil until the first entry of this boot, or after a failed append
	durable audit.Head
	tail    []byte // last entry the host held at restore
	// sealed is the audit head recorded in the sealed governance state; the
	// host's log must reach it.
	sealed audit.Head
	// sealedSigner is the identity signing key of the boot that sealed it
	// (nil for state sealed before it was recorded).
	sealedSigner []byte
	// since counts entries after the last checkpoint.
	since int
	// unsure is set when an append failed without an answer from the host:
	// the entry may be stored all the same.
	unsure bool
}

// checkpointEvery is how many entries a checkpoint follows at most.
const checkpointEvery = 16

// startAudit continues the host's log after the entry it holds, with a boot
// entry binding this boot's identity key to the enclave's attestation. The
// host's log must reach the head this party last sealed: a shorter log was
// truncated, and continuing it would hide that.
func (e *Enclave) startAudit(ctx context.Context) error {
	me, keys, err := e.ready()
	if err != nil {
		return err
	}
	l := &e.audit
	if l.tail != nil {
		se, en, err := decodeEntry(l.tail)
		if err != nil {
			return api.Errorf(api.CodeRejected, "party: host's last audit entry is malformed: %v", err)
		}
		if en.PartyID != me {
			return api.Errorf(api.CodeRejected, "party: host's audit log is party %q's, not %q's", en.PartyID, me)
		}
		// The tail must at least be a signed entry (by the boot key it
		// names) and not from the future: its time bounds every later
		// entry's.
		if len(en.SignerKey) != ed25519.PublicKeySize || !ed25519.Verify(en.SignerKey, gkeys.Message(audit.SignDomain, se.Entry), se.Signature) {
			return api.Errorf(api.CodeRejected, "party: host's last audit entry (seq %d) is not signed by the key it names", en.Seq)
		}
		if t := time.Unix(0, en.Time); t.After(e.cfg.Clock().Add(2 * time.Minute)) {
			return api.Errorf(api.CodeRejected, "party: host's last audit entry (seq %d) is dated %s, in the future", en.Seq, t.UTC().Format(time.RFC3339))
		}
		l.durable = audit.Head{Seq: en.Seq, Hash: audit.Hash(l.tail), Time: en.Time}
		l.tail = nil
	}
	if l.unsure {
		if err := e.settleUnsure(ctx, me, keys); err != nil {
			return err
		}
	}
	if sealed := l.sealed; true {
		if sealed.Seq > l.durable.Seq || (sealed.Seq == l.durable.Seq && sealed.Seq > 0 && sealed.Hash != l.durable.Hash) {
			return api.Errorf(api.CodeRejected, "party: host's audit log ends at entry %d, but this party sealed entry %d (%x…): the log was truncated or replaced; refusing to continue it", l.durable.Seq, sealed.Seq, sealed.Hash[:8])
		}
		if sealed.Seq > 0 && l.durable.Seq > sealed.Seq && len(l.sealedSigner) > 0 {
			if err := e.checkUnsealed(ctx, me); err != nil {
				return err
			}
		}
	}
	c, err := audit.NewChain(me, keys.AuditKey(), l.durable)
	if err != nil {
		return api.Errorf(api.CodeInternal, "party: audit: %v", err)
	}
	pub, err := api.Marshal(keys.Public())
	if err != nil {
		return err
	}
	doc, err := e.cfg.Attester.Attest(pub, e.manifestHash, nil)
	if err != nil {
		return api.Errorf(api.CodeAttestation, "party: attest for the audit log: %v", err)
	}
	l.chain = c
	continuing := l.durable.Seq > 0
	if err := e.appendLocked(ctx, audit.TypeBoot, audit.Boot{Measurement: e.cfg.Measurement, AttestationDocument: doc, ManifestHash: e.manifestHash, Software: "sealsign-enclave"}); err != nil {
		return err
	}
	if continuing {
		// The new boot commits, under its attested key, to the log it
		// continues.
		return e.checkpointLocked(ctx)
	}
	return nil
}

// settleUnsure learns from the host whether the entry whose append failed
// was stored after all (its answer lost): if the host's last entry is the
// one after our durable head, linked to it and signed by this boot's key,
// it is ours and becomes the durable head; the chain continues after it.
func (e *Enclave) settleUnsure(ctx context.Context, me string, keys *channel.Keys) error {
	l := &e.audit
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var tail api.AuditTailResponse
	if err := e.callHost(cctx, api.MethodAuditTail, nil, &tail); err != nil {
		return api.Errorf(api.CodeUnavailable, "party: audit log: cannot read the host's last entry: %v", err)
	}
	var seq uint64
	var en audit.Entry
	var se audit.SignedEntry
	if len(tail.Entry) > 0 {
		var err error
		if se, en, err = decodeEntry(tail.Entry); err != nil {
			return api.Errorf(api.CodeRejected, "party: host's last audit entry is malformed: %v", err)
		}
		seq = en.Seq
	}
	switch {
	case seq == l.durable.Seq && (seq == 0 || audit.Hash(tail.Entry) == l.durable.Hash):
		// Not stored: continue after the durable head.
	case seq == l.durable.Seq+1 && en.PartyID == me && en.Prev == l.durable.Hash &&
		bytes.Equal(en.SignerKey, keys.Public().SigningKey) &&
		ed25519.Verify(keys.Public().SigningKey, gkeys.Message(audit.SignDomain, se.Entry), se.Signature):
		l.durable = audit.Head{Seq: en.Seq, Hash: audit.Hash(tail.Entry), Time: en.Time}
	default:
		return api.Errorf(api.CodeRejected, "party: host's audit log ends at entry %d, this party wrote up to entry %d: refusing to continue it", seq, l.durable.Seq)
	}
	l.unsure = false
	return nil
}

// decodeEntry decodes a stored SignedEntry and the Entry inside it (the
// host's bytes: strictly, nothing verified yet).
func decodeEntry(b []byte) (audit.SignedEntry, audit.Entry, error) {
	var se audit.SignedEntry
	var en audit.Entry
	if err := api.Unmarshal(b, &se); err != nil {
		return se, en, err
	}
	err := api.Unmarshal(se.Entry, &en)
	return se, en, err
}

// auditAppend appends one entry and returns once the host has made it
// durable. If it cannot, the entry is lost and so is the chain after it:
// the next append starts again from the durable head with a new boot entry,
// so the log has no gap.
func (e *Enclave) auditAppend(ctx context.Context, typ string, body any) error {
	e.auditMu.Lock()
	defer e.auditMu.Unlock()
	if e.audit.chain == nil {
		if err := e.startAudit(ctx); err != nil {
			return err
		}
	}
	return e.appendLocked(ctx, typ, body)
}

func (e *Enclave) appendLocked(ctx context.Context, typ string, body any) error {
	l := &e.audit
	now := e.cfg.Clock()
	if t := time.Unix(0, l.durable.Time); now.Before(t) {
		now = t // the chain's time never runs backwards
	}
	entry, head, err := l.chain.Append(typ, body, now)
	if err != nil {
		l.chain = nil
		return api.Errorf(api.CodeInternal, "party: audit %s entry: %v", typ, err)
	}
	// Not the caller's cancellation: an append abandoned in flight may
	// still be stored, and the host's tail read to settle it could overtake
	// it. Only the host's answer (or its silence for 30 s) ends it.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := e.callHost(cctx, api.MethodAudit, api.AuditAppendRequest{Seq: head.Seq, Entry: entry}, nil); err != nil {
		l.chain, l.unsure = nil, true
		return api.Errorf(api.CodeUnavailable, "party: audit log not written (entry %d, %s): %v; refusing to proceed", head.Seq, typ, err)
	}
	l.durable = head
	if typ == audit.TypeCheckpoint {
		l.since = 0
		return nil
	}
	if l.since++; l.since >= checkpointEvery {
		return e.checkpointLocked(ctx)
	}
	return nil
}

// checkpointLocked appends a checkpoint committing to the durable head.
func (e *Enclave) checkpointLocked(ctx context.Context) error {
	h := e.audit.durable
	return e.appendLocked(ctx, audit.TypeCheckpoint, audit.Checkpoint{Count: h.Seq, Head: h.Hash})
}

// auditCheckpoint appends a checkpoint now (an auditor anchoring an export,
// say) and returns it.
func (e *Enclave) auditCheckpoint(ctx context.Context, _ *struct{}) (*api.AuditCheckpointResponse, error) {
	if _, _, err := e.readyRestored(); err != nil {
		return nil, err
	}
	e.auditMu.Lock()
	defer e.auditMu.Unlock()
	if e.audit.chain == nil {
		if err := e.startAudit(ctx); err != nil {
			return nil, err
		}
	}
	if err := e.checkpointLocked(ctx); err != nil {
		return nil, err
	}
	h := e.audit.durable
	return &api.AuditCheckpointResponse{Seq: h.Seq, Hash: h.Hash[:]}, nil
}

// auditHash is the keyed hash the log stores for free text (audit.KeyedHash
// under this deployment's salt), so an auditor can look a value up without
// the log disclosing it.
func (e *Enclave) auditHash(_ context.Context, req *api.AuditHashRequest) (*api.AuditHashResponse, error) {
	me, _, err := e.readyRestored()
	if err != nil {
		return nil, err
	}
	if e.gov == nil {
		return nil, api.Errorf(api.CodeBadRequest, "party %s: no governance, no keyed hashes", me)
	}
	if len(req.Value) == 0 || len(req.Value) > 4096 {
		return nil, api.Errorf(api.CodeBadRequest, "party %s: value must be 1 to 4096 bytes", me)
	}
	e.gov.mu.Lock()
	salt := e.gov.salt
	e.gov.mu.Unlock()
	mac, err := audit.KeyedHash(salt, req.Value)
	if err != nil {
		return nil, api.Errorf(api.CodeInternal, "party: %v", err)
	}
	return &api.AuditHashResponse{MAC: mac}, nil
}

func (e *Enclave) durableAuditHead() audit.Head {
	e.auditMu.Lock()
	defer e.auditMu.Unlock()
	return e.audit.durable
}

// setSealedAuditHead records the head the sealed state holds and the key
// of the boot that sealed it. Lock order: the governance lock, then
// auditMu.
func (e *Enclave) setSealedAuditHead(h audit.Head, signer []byte) {
	e.auditMu.Lock()
	defer e.auditMu.Unlock()
	e.audit.sealed, e.audit.sealedSigner = h, signer
}

// maxUnsealed bounds the entries a host may hold after the sealed head.
const maxUnsealed = 10000

// checkUnsealed verifies the entries the host holds after the sealed head,
// up to its tail: linked from the sealed head, signed by the boot that
// sealed it or by a later boot whose entry carries an attestation of this
// party that verifies under the manifest. A host cannot make up entries
// this party did not write.
func (e *Enclave) checkUnsealed(ctx context.Context, me string) error {
	l := &e.audit
	n := l.durable.Seq - l.sealed.Seq
	if n > maxUnsealed {
		return api.Errorf(api.CodeRejected, "party: host's audit log holds %d entries after the %d this party sealed; refusing to continue it", n, l.sealed.Seq)
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var rng api.AuditRangeResponse
	if err := e.callHost(cctx, api.MethodAuditRange, api.AuditRangeRequest{From: l.sealed.Seq + 1, Limit: int(n)}, &rng); err != nil {
		return api.Errorf(api.CodeUnavailable, "party: audit log: cannot read the entries after the sealed head: %v", err)
	}
	// Boot entries are checked at their own time (the trust callback does
	// not see it).
	bootAt := map[string]time.Time{}
	for _, b := range rng.Entries {
		if _, en, err := decodeEntry(b); err == nil && en.Type == audit.TypeBoot {
			bootAt[string(en.SignerKey)] = time.Unix(0, en.Time)
		}
	}
	pol := e.peerPolicies[me]
	head, err := audit.VerifyWith(rng.Entries, audit.VerifyOptions{PartyID: me, Start: l.sealed, Trust: func(signerKey []byte, boot *audit.Boot) error {
		if boot == nil {
			if !bytes.Equal(signerKey, l.sealedSigner) {
				return fmt.Errorf("signed by a key that is not the sealing boot's")
			}
			return nil
		}
		v, err := peer.Verify(boot.AttestationDocument, pol, peer.Expect{UserData: e.manifestHash}, bootAt[string(signerKey)], 24*time.Hour)
		if err != nil {
			return err
		}
		var id api.Identity
		if err := api.Unmarshal(v.PublicKey, &id); err != nil || id.PartyID != me || !bytes.Equal(id.SigningKey, signerKey) {
			return fmt.Errorf("boot attestation does not name this party's signer key")
		}
		return nil
	}})
	if err == nil && (head.Seq != l.durable.Seq || head.Hash != l.durable.Hash) {
		err = fmt.Errorf("the entries end at seq %d, the tail is seq %d", head.Seq, l.durable.Seq)
	}
	if err != nil {
		return api.Errorf(api.CodeRejected, "party: host's audit entries after the sealed head (seq %d) do not verify: %v; refusing to continue the log", l.sealed.Seq, err)
	}
	return nil
}

func verdictBody(ev *evaluation) audit.Verdict {
	v := audit.Verdict{RequestID: ev.req.ID, PolicyVersion: ev.verdict.PolicyVersion, Outcome: ev.verdict.Outcome, DecisionDigest: ev.verdict.DecisionDigest}
	copy(v.PayloadHash[:], ev.verdict.PayloadHash)
	if ev.verdict.RuleID != "" {
		v.RuleIDs = []string{ev.verdict.RuleID}
	}
	for _, d := range ev.verdict.Denials {
		v.Denials = append(v.Denials, audit.Denial{Code: d.Code, RuleID: d.RuleID, Clause: d.Clause, LimitID: d.LimitID, Detail: d.Detail})
	}
	return v
}

// auditRefusal records a genuine request this party refused to sign. A
// verdict the policy allowed, refused because the proposal did not match
// it (other digests, another policy version, other signers), is recorded
// as a deny naming that.
func (e *Enclave) auditRefusal(ctx context.Context, ev *evaluation, refusal error) {
	if ev.verdict.Outcome == api.OutcomeAllow {
		ev.verdict.Outcome = api.OutcomeDeny
		ev.verdict.Denials = append(ev.verdict.Denials, api.Denial{Code: DenyProposalMismatch, Detail: refusal.Error()})
	}
	if err := e.auditAdmission(ctx, ev); err != nil {
		e.cfg.Log.Warn("audit of a refused request not written", "request", ev.req.ID, "err", err)
	}
}

// DenyProposalMismatch is the denial code recorded when a request the
// policy allows came in a proposal that does not match it.
const DenyProposalMismatch = "proposal-mismatch"

// auditAdmission records a request this party admitted (before it signs)
// or refused: the request, the approvals that verified, the verdict.
func (e *Enclave) auditAdmission(ctx context.Context, ev *evaluation) error {
	r := ev.req
	if err := e.auditAppend(ctx, audit.TypeRequest, audit.Request{
		RequestID: r.ID, RequestDigest: ev.reqDigest, ClientKeyID: r.ClientKeyID, KeyID: r.KeyID, Kind: string(r.Kind),
		PayloadHash: [32]byte(ev.verdict.PayloadHash), Signers: r.Signers, IssuedAt: r.IssuedAt, ExpiresAt: r.ExpiresAt,
		Path: ev.derivationPath(),
	}); err != nil {
		return err
	}
	for _, a := range ev.approvals {
		body := audit.Approval{RequestID: r.ID, ApproverKeyID: a.ApproverKeyID, Decision: a.Decision, ApprovalDigest: a.Digest()}
		if a.Reason != "" {
			if mac, err := audit.KeyedHash(e.gov.salt, []byte(a.Reason)); err == nil {
				body.ReasonMAC = mac
			}
		}
		if err := e.auditAppend(ctx, audit.TypeApproval, body); err != nil {
			return err
		}
	}
	return e.auditAppend(ctx, audit.TypeVerdict, verdictBody(ev))
}

// auditResult records how a governed request ended on this party.
func (e *Enclave) auditResult(ctx context.Context, body audit.Result) error {
	return e.auditAppend(ctx, audit.TypeResult, body)
}

func (e *Enclave) auditPolicy(ctx context.Context, p *policy.Policy, by []string, _ time.Time) error {
	return e.auditAppend(ctx, audit.TypeCeremony, audit.Ceremony{
		Kind: "policy-update", AuthorisedBy: by, Outcome: "done",
		Detail: map[string]string{"version": fmt.Sprint(p.Version), "not_before": fmt.Sprint(p.NotBefore)},
	})
}
