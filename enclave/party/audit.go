package party

import (
	"context"
	"fmt"
	"time"

	"github.com/sealsign/sealsign/enclave/api"
	"github.com/sealsign/sealsign/enclave/audit"
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
}

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
		var se audit.SignedEntry
		var en audit.Entry
		if err := api.Unmarshal(l.tail, &se); err != nil {
			return api.Errorf(api.CodeRejected, "party: host's last audit entry is malformed: %v", err)
		}
		if err := api.Unmarshal(se.Entry, &en); err != nil {
			return api.Errorf(api.CodeRejected, "party: host's last audit entry is malformed: %v", err)
		}
		if en.PartyID != me {
			return api.Errorf(api.CodeRejected, "party: host's audit log is party %q's, not %q's", en.PartyID, me)
		}
		l.durable = audit.Head{Seq: en.Seq, Hash: audit.Hash(l.tail), Time: en.Time}
		l.tail = nil
	}
	if sealed := l.sealed; true {
		if sealed.Seq > l.durable.Seq || (sealed.Seq == l.durable.Seq && sealed.Seq > 0 && sealed.Hash != l.durable.Hash) {
			return api.Errorf(api.CodeRejected, "party: host's audit log ends at entry %d, but this party sealed entry %d (%x…): the log was truncated or replaced; refusing to continue it", l.durable.Seq, sealed.Seq, sealed.Hash[:8])
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
	return e.appendLocked(ctx, audit.TypeBoot, audit.Boot{Measurement: e.cfg.Measurement, AttestationDocument: doc, ManifestHash: e.manifestHash, Software: "sealsign-enclave"})
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
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := e.callHost(cctx, api.MethodAudit, api.AuditAppendRequest{Seq: head.Seq, Entry: entry}, nil); err != nil {
		l.chain = nil
		return api.Errorf(api.CodeUnavailable, "party: audit log not written (entry %d, %s): %v; refusing to proceed", head.Seq, typ, err)
	}
	l.durable = head
	return nil
}

func (e *Enclave) durableAuditHead() audit.Head {
	e.auditMu.Lock()
	defer e.auditMu.Unlock()
	return e.audit.durable
}

// setSealedAuditHead records the head the sealed state holds. Lock order:
// the governance lock, then auditMu.
func (e *Enclave) setSealedAuditHead(h audit.Head) {
	e.auditMu.Lock()
	defer e.auditMu.Unlock()
	e.audit.sealed = h
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

// auditVerdict records a refusal; best effort (the refusal stands either way).
func (e *Enclave) auditVerdict(ctx context.Context, ev *evaluation, _ time.Time) {
	if err := e.auditAppend(ctx, audit.TypeVerdict, verdictBody(ev)); err != nil {
		e.cfg.Log.Warn("audit verdict not written", "request", ev.req.ID, "err", err)
	}
}

// auditAdmission records what this party admitted, before it signs.
func (e *Enclave) auditAdmission(ctx context.Context, ev *evaluation) error {
	r := ev.req
	if err := e.auditAppend(ctx, audit.TypeRequest, audit.Request{
		RequestID: r.ID, RequestDigest: ev.reqDigest, ClientKeyID: r.ClientKeyID, KeyID: r.KeyID, Kind: string(r.Kind),
		PayloadHash: ev.decoded.Summary.PayloadHash, Signers: r.Signers, IssuedAt: r.IssuedAt, ExpiresAt: r.ExpiresAt,
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
