package party

import (
	"context"
	"time"

	"github.com/bnb-chain/tss-lib/v2/common"

	"github.com/sealsign/sealsign/enclave/api"
	"github.com/sealsign/sealsign/enclave/audit"
	"github.com/sealsign/sealsign/enclave/channel"
	"github.com/sealsign/sealsign/enclave/session"
	"github.com/sealsign/sealsign/governance/tx"
)

// runSession runs one tss-lib protocol under id pid (a proposal id or a
// SubID of one) and returns its output and session id.
// ran is what a finished session leaves: the protocol output, the session
// id, and the session itself (Secret, Extras).
type ran struct {
	out any
	sid []byte
	s   *session.Session
}

func (e *Enclave) runSession(ctx context.Context, me string, keys *channel.Keys, peers map[string]*channel.Peer, p *session.Proposal, pid []byte, proto protocol, inactivity time.Duration, onStart func([]byte) error) (*ran, error) {
	s := session.New(session.Config{
		Me:         me,
		Keys:       keys,
		Peers:      peers,
		Proposal:   p,
		PID:        pid,
		Send:       e.sender(ctx),
		Build:      proto.build,
		TypePrefix: proto.typePrefix,
		Curve:      proto.curve,
		Rand:       e.cfg.Rand,
		Inactivity: inactivity,
		OnStart:    onStart,
		HelloExtra: proto.helloExtra,
		Reshare:    proto.reshare,
	})
	e.mu.Lock()
	e.sessions[string(pid)] = s
	parked := e.parked[string(pid)]
	delete(e.parked, string(pid))
	delete(e.parkedAt, string(pid))
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		delete(e.sessions, string(pid))
		delete(e.parked, string(pid))
		e.finished[string(pid)] = e.cfg.Clock()
		e.mu.Unlock()
	}()
	for _, env := range parked {
		if err := s.Deliver(env); err != nil {
			e.cfg.Log.Warn("parked envelope rejected", "from", env.Header.From, "err", err)
		}
	}
	out, err := s.Run(ctx)
	if err != nil {
		e.cfg.Log.Warn("session failed", "kind", p.Kind, "key", p.KeyID, "err", err)
		return nil, api.Errorf(api.CodeSession, "party %s: %s %s: %v", me, p.Kind, p.KeyID, err)
	}
	return &ran{out: out, sid: s.SessionID(), s: s}, nil
}

// signAll signs every digest of an admitted proposal, one tss-lib run
// each, assembles the payload with the signatures and records the result.
func (e *Enclave) signAll(ctx context.Context, me string, keys *channel.Keys, peers map[string]*channel.Peer, p *session.Proposal, pid []byte, ev *evaluation, res *api.SessionResult, inactivity time.Duration) error {
	k, err := e.share(p.KeyID)
	if err != nil {
		return err
	}
	fail := func(err error) error {
		if aerr := e.auditResult(ctx, audit.Result{RequestID: ev.req.ID, Outcome: audit.OutcomeFailed, Digests: p.Digests, Error: err.Error()}); aerr != nil {
			e.cfg.Log.Warn("audit result not written", "request", ev.req.ID, "err", aerr)
		}
		return err
	}
	var sigs []tx.Signature
	for i, m := range p.Digests {
		run := *p
		run.Message = m
		done := make(chan struct{})
		sub := session.SubID(pid, i)
		record := func(sid []byte) error {
			if err := e.auditAppend(ctx, audit.TypeSession, audit.Session{
				RequestID: ev.req.ID, SessionID: sid, ProposalID: sub, KeyID: p.KeyID, Epoch: p.Epoch, Signers: p.Parties, Digests: [][]byte{m},
			}); err != nil {
				return err
			}
			// Sealed before any share leaves: a host that drops the session
			// entry is caught at the next start.
			e.gov.mu.Lock()
			defer e.gov.mu.Unlock()
			return e.sealGovernance(ctx, me)
		}
		r, err := e.runSession(ctx, me, keys, peers, &run, sub, signProtocol(k, ev.child, m, done), inactivity, record)
		close(done)
		if err != nil {
			return fail(err)
		}
		sd, ok := r.out.(*common.SignatureData)
		if !ok {
			return fail(api.Errorf(api.CodeInternal, "party: unexpected signing output %T", r.out))
		}
		sig, recID, err := finishSignature(p.Algorithm, ev.signingKey(), m, sd)
		if err != nil {
			return fail(api.Errorf(api.CodeSession, "%v", err))
		}
		if i == 0 {
			res.SessionID, res.Signature, res.RecoveryID, res.Message = r.sid, sig, recID, m
		}
		res.Digests = append(res.Digests, m)
		res.Signatures = append(res.Signatures, sig)
		res.RecoveryIDs = append(res.RecoveryIDs, recID)
		sigs = append(sigs, tx.Signature{RS: sig, RecoveryID: byte(recID)})
	}
	res.PublicKey, res.DerivationPath, res.RequestID, res.PolicyVersion, res.RuleID = ev.signingKey(), ev.derivationPath(), ev.req.ID, p.PolicyVersion, ev.verdict.RuleID
	if ev.req.Kind != tx.KindRaw {
		assembled, err := ev.decoded.Assemble(sigs)
		if err != nil {
			return fail(api.Errorf(api.CodeSession, "party %s: assemble %s payload: %v", me, ev.req.Kind, err))
		}
		res.Transaction = assembled
	}
	if err := e.auditResult(ctx, audit.Result{RequestID: ev.req.ID, Outcome: audit.OutcomeSigned, Digests: res.Digests, Signatures: res.Signatures}); err != nil {
		return err
	}
	// Seal again, so the sealed audit head covers the result: a host that
	// drops the last entries of its log is caught at the next start.
	e.gov.mu.Lock()
	defer e.gov.mu.Unlock()
	return e.sealGovernance(ctx, me)
}
