package party

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/sealsign/sealsign/enclave/api"
	"github.com/sealsign/sealsign/enclave/audit"
	"github.com/sealsign/sealsign/enclave/channel"
	"github.com/sealsign/sealsign/enclave/session"
	"github.com/sealsign/sealsign/governance/ceremony"
)

// propose builds and signs a session proposal with this enclave as coordinator.
func (e *Enclave) propose(_ context.Context, req *api.ProposeRequest) (*api.ProposeResponse, error) {
	me, keys, err := e.readyRestored()
	if err != nil {
		return nil, err
	}
	parties := slices.Clone(req.Parties)
	slices.Sort(parties)
	p := &session.Proposal{
		Version:     1,
		Kind:        req.Kind,
		Algorithm:   req.Algorithm,
		Parties:     parties,
		Message:     req.Message,
		Coordinator: me,
		Nonce:       make([]byte, 32),
		CreatedMS:   e.cfg.Clock().UnixMilli(),
		Manifest:    e.manifestHash,
	}
	if _, err := io.ReadFull(e.cfg.Rand, p.Nonce); err != nil {
		return nil, err
	}
	var ev *evaluation // the coordinator's verdict on a governed request
	switch req.Kind {
	case api.KindKeygen:
		if req.KeyID != "" {
			return nil, api.Errorf(api.CodeBadRequest, "party: keygen chooses its own key id")
		}
		id := make([]byte, 16)
		if _, err := io.ReadFull(e.cfg.Rand, id); err != nil {
			return nil, err
		}
		p.KeyID = hex.EncodeToString(id)
		p.Threshold = e.manifest.Threshold
		if req.Threshold != 0 {
			p.Threshold = req.Threshold
		}
		p.Ceremony = req.Ceremony
	case api.KindSign:
		k, err := e.share(req.KeyID)
		if err != nil {
			return nil, err
		}
		p.KeyID, p.Algorithm, p.Threshold, p.Epoch = req.KeyID, k.rec.Algorithm, k.rec.Threshold, k.rec.Epoch
		if ev, err = e.governSign(me, req, p); err != nil {
			return nil, err
		}
	case api.KindReshare:
		if err := e.proposeReshare(req, p); err != nil {
			return nil, err
		}
	}
	if err := e.checkProposal(me, p); err != nil {
		return nil, err
	}
	if ev != nil {
		if err := e.matchProposal(me, ev, p); err != nil {
			return nil, err
		}
	}
	body, err := api.Marshal(p)
	if err != nil {
		return nil, err
	}
	raw, err := api.Marshal(session.SignedProposal{Body: body, Signature: keys.Sign(session.DomainProposal, body)})
	if err != nil {
		return nil, err
	}
	return &api.ProposeResponse{Proposal: raw, ID: session.ProposalID(body)}, nil
}

func (e *Enclave) share(keyID string) (*loadedKey, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if k, ok := e.shares[keyID]; ok {
		return k, nil
	}
	if msg, ok := e.shareErrs[keyID]; ok {
		return nil, api.Errorf(api.CodeSealing, "party: key %q is not usable on party %q: %s", keyID, e.partyID, msg)
	}
	return nil, api.Errorf(api.CodeNotFound, "party: key %q unknown on party %q", keyID, e.partyID)
}

// checkProposal applies this party's own rules to a proposal, whoever made
// it: its shape, a keygen's ceremony, and that a signing proposal is one
// this party governs. The request of a signing proposal is evaluated once,
// by propose (governSign) on the coordinator and by admit on every signer.
func (e *Enclave) checkProposal(me string, p *session.Proposal) error {
	if err := e.checkProposalShape(me, p); err != nil {
		return err
	}
	switch p.Kind {
	case api.KindKeygen:
		_, _, err := e.checkCeremony(me, p)
		return err
	case api.KindSign:
		return e.requireGoverned(me, p)
	case api.KindReshare:
		_, _, err := e.checkReshareCeremony(me, p)
		return err
	}
	return nil
}

func (e *Enclave) checkProposalShape(me string, p *session.Proposal) error {
	if err := p.Check(); err != nil {
		return api.Errorf(api.CodeBadRequest, "%v", err)
	}
	if string(p.Manifest) != string(e.manifestHash) {
		return api.Errorf(api.CodeBadRequest, "party: proposal is for manifest %x, this party runs %x", p.Manifest[:8], e.manifestHash[:8])
	}
	if !slices.Contains(p.Parties, me) {
		return api.Errorf(api.CodeBadRequest, "party: proposal does not include this party %q", me)
	}
	for _, id := range p.Parties {
		if _, ok := e.manifest.Party(id); !ok {
			return api.Errorf(api.CodeBadRequest, "party: proposal names %q, not a party of the cluster", id)
		}
	}
	switch p.Kind {
	case api.KindKeygen:
		// A governed keygen's committee is the one its ceremony names (a
		// subset of the manifest's parties, checked in checkCeremony);
		// otherwise it is every party at the manifest's threshold.
		if e.gov == nil && (!slices.Equal(p.Parties, e.manifest.PartyIDs()) || p.Threshold != e.manifest.Threshold) {
			return api.Errorf(api.CodeBadRequest, "party: keygen must include every party (%s) at threshold %d", strings.Join(e.manifest.PartyIDs(), ", "), e.manifest.Threshold)
		}
		if _, err := e.share(p.KeyID); err == nil {
			return api.Errorf(api.CodeBadRequest, "party: key %q already exists", p.KeyID)
		}
	case api.KindSign:
		k, err := e.share(p.KeyID)
		if err != nil {
			return err
		}
		if p.Algorithm != k.rec.Algorithm || p.Threshold != k.rec.Threshold {
			return api.Errorf(api.CodeBadRequest, "party: proposal says %s t=%d, key %q is %s t=%d", p.Algorithm, p.Threshold, p.KeyID, k.rec.Algorithm, k.rec.Threshold)
		}
		if p.Epoch != k.rec.Epoch {
			return api.Errorf(api.CodeBadRequest, "party %s: proposal signs with epoch %d of key %q, this party holds epoch %d (a refresh or reshare has not completed everywhere)", me, p.Epoch, p.KeyID, k.rec.Epoch)
		}
		for _, id := range p.Parties {
			if !slices.Contains(k.rec.Parties, id) {
				return api.Errorf(api.CodeBadRequest, "party: %q holds no share of key %q", id, p.KeyID)
			}
		}
	case api.KindReshare:
		return e.checkReshareShape(me, p)
	}
	return nil
}

// run joins the session a signed proposal describes and returns its result.
func (e *Enclave) run(ctx context.Context, req *api.RunRequest) (*api.SessionResult, error) {
	me, keys, err := e.readyRestored()
	if err != nil {
		return nil, err
	}
	sp, p, err := session.ParseProposal(req.Proposal)
	if err != nil {
		return nil, api.Errorf(api.CodeBadRequest, "%v", err)
	}
	pid := session.ProposalID(sp.Body)
	var coordinator *channel.Peer
	if p.Coordinator == me {
		coordinator, _ = channel.NewPeer(keys.Public())
	} else {
		coordinator, err = e.peer(p.Coordinator)
		if err != nil {
			return nil, err
		}
	}
	if !coordinator.Verify(session.DomainProposal, sp.Body, sp.Signature) {
		return nil, api.Errorf(api.CodeRejected, "party: proposal signature from coordinator %q invalid", p.Coordinator)
	}
	now := e.cfg.Clock()
	created := time.UnixMilli(p.CreatedMS)
	if now.Sub(created) > e.cfg.ProposalMaxAge || created.Sub(now) > 30*time.Second {
		return nil, api.Errorf(api.CodeRejected, "party: proposal created %s, outside the accepted window of %s", created.UTC().Format(time.RFC3339), e.cfg.ProposalMaxAge)
	}
	if err := e.checkProposal(me, p); err != nil {
		return nil, err
	}
	peers := map[string]*channel.Peer{}
	for _, id := range p.Parties {
		if id == me {
			continue
		}
		pe, err := e.peer(id)
		if err != nil {
			return nil, err
		}
		peers[id] = pe
	}

	var inactivity time.Duration
	var pre *preParamsEntry
	switch p.Kind {
	case api.KindKeygen:
		inactivity = e.cfg.KeygenInactivity
	case api.KindSign:
		inactivity = e.cfg.SignInactivity
	case api.KindReshare:
		inactivity = e.cfg.KeygenInactivity
	}

	e.mu.Lock()
	if _, dup := e.seen[string(pid)]; dup {
		e.mu.Unlock()
		return nil, api.Errorf(api.CodeRejected, "party: proposal %x already ran on this party (replay)", pid[:8])
	}
	e.seen[string(pid)] = now
	ctx, cancelRun := context.WithCancelCause(ctx)
	thisRun := &running{cancel: cancelRun, done: make(chan struct{})}
	e.runCancels[string(pid)] = thisRun
	e.mu.Unlock()
	defer close(thisRun.done) // after the cleanup below (defers run last-in first-out)
	defer func() {
		e.mu.Lock()
		cancelRun(nil)
		delete(e.runCancels, string(pid))
		delete(e.sessions, string(pid))
		delete(e.parked, string(pid))
		e.finished[string(pid)] = e.cfg.Clock()
		e.mu.Unlock()
	}()

	var authorisedBy []string
	var cer *ceremony.Ceremony
	if p.Kind == api.KindKeygen {
		// Past this point the ceremony is spent on this party.
		if cer, authorisedBy, err = e.admitCeremony(me, p); err != nil {
			return nil, err
		}
	}
	if p.Kind == api.KindReshare {
		// Past this point the ceremony is spent on this party.
		var release func()
		if cer, authorisedBy, release, err = e.admitReshare(me, p); err != nil {
			return nil, err
		}
		defer release()
	}
	if (p.Kind == api.KindKeygen || (p.Kind == api.KindReshare && slices.Contains(p.NewParties, me))) && p.Algorithm == api.AlgECDSASecp256k1 {
		// Paillier pre-parameters come from the background pool; they are
		// never generated on the request path. Taken only once the
		// ceremony is admitted: proposals a host makes up from one
		// ceremony cannot drain the pool.
		pre, err = e.pool.take(ctx)
		if err != nil {
			return nil, err
		}
	}
	var ev *evaluation
	if p.Kind == api.KindSign {
		// Past this point the request is spent on this party and recorded,
		// whatever happens to the session.
		if ev, err = e.admit(ctx, me, p); err != nil {
			return nil, err
		}
	}
	res := &api.SessionResult{
		ProposalID: pid, PartyID: me, Kind: p.Kind,
		Algorithm: p.Algorithm, KeyID: p.KeyID, Threshold: p.Threshold, Parties: p.Parties, Epoch: p.Epoch,
	}
	start := time.Now()
	switch p.Kind {
	case api.KindKeygen:
		done := make(chan struct{})
		defer close(done)
		r, err := e.runSession(ctx, me, keys, peers, p, pid, keygenProtocol(p.Algorithm, pre.params(), done), inactivity, nil)
		if err != nil {
			return nil, err
		}
		res.SessionID = r.sid
		if err := e.finishKeygen(ctx, me, p, cer, authorisedBy, r, res); err != nil {
			return nil, err
		}
	case api.KindSign:
		if err := e.signAll(ctx, me, keys, peers, p, pid, ev, res, inactivity); err != nil {
			return nil, err
		}
	case api.KindReshare:
		if err := e.runReshare(ctx, me, keys, peers, p, pid, pre, cer, authorisedBy, res); err != nil {
			return nil, err
		}
	}
	e.cfg.Log.Info("session done", "kind", p.Kind, "key", p.KeyID, "alg", p.Algorithm, "ms", time.Since(start).Milliseconds())
	return res, nil
}

// abort ends the run of a proposal on this party, as its host asks.
func (e *Enclave) abort(_ context.Context, req *api.AbortRequest) (any, error) {
	me, _, err := e.ready()
	if err != nil {
		return nil, err
	}
	reason := req.Reason
	if len(reason) > 256 {
		reason = reason[:256]
	}
	e.mu.Lock()
	r, ok := e.runCancels[string(req.ProposalID)]
	e.mu.Unlock()
	short := req.ProposalID[:min(8, len(req.ProposalID))]
	if !ok {
		return nil, api.Errorf(api.CodeNotFound, "party %s: no session of proposal %x is running", me, short)
	}
	r.cancel(fmt.Errorf("aborted by the host: %s", reason))
	e.cfg.Log.Info("session aborted by the host", "proposal", fmt.Sprintf("%x", short), "reason", reason)
	// Return once the run has let go of what it held (a reshare's claim on
	// its key), so a rerun right after does not find it busy.
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
	}
	return nil, nil
}

// running is one run in progress.
type running struct {
	cancel context.CancelCauseFunc
	done   chan struct{}
}

// finishKeygen seals the new share and has the host store it durably before
// the key is acknowledged.
// cer and authorisedBy are the ceremony that authorised it and the admins
// whose signatures counted (nil without governance).
func (e *Enclave) finishKeygen(ctx context.Context, me string, p *session.Proposal, cer *ceremony.Ceremony, authorisedBy []string, r *ran, res *api.SessionResult) error {
	rec, err := newShareRecord(p, r.out)
	if err != nil {
		return api.Errorf(api.CodeInternal, "%v", err)
	}
	rec.Committed = true
	if rec.Algorithm == api.AlgECDSASecp256k1 {
		if rec.ChainCode, err = keygenChainCode(r.s.Secret("bip32-chain-code"), rec.PublicKey); err != nil {
			return api.Errorf(api.CodeInternal, "%v", err)
		}
	}
	k, err := rec.load()
	if err != nil {
		return api.Errorf(api.CodeInternal, "%v", err)
	}
	blob, err := e.sealShare(me, rec)
	if err != nil {
		return err
	}
	// The governance state is stored before any share, so a host that
	// hands back shares without it has withheld it (restore refuses to
	// sign) rather than reset this party to its genesis policy and empty
	// velocity counters.
	if e.gov != nil {
		e.gov.mu.Lock()
		err := e.sealGovernance(ctx, me)
		e.gov.mu.Unlock()
		if err != nil {
			return err
		}
	}
	if err := e.callHost(ctx, api.MethodStore, api.StoreRequest{Blob: api.NamedBlob{Name: shareBlobName(p.KeyID, rec.Epoch), Blob: blob}}, nil); err != nil {
		return api.Errorf(api.CodeUnavailable, "party: host did not store the sealed share of key %q: %v", p.KeyID, err)
	}
	entry := audit.Ceremony{
		Kind: "keygen", KeyID: p.KeyID, Parties: p.Parties, Threshold: uint64(p.Threshold), PublicKey: rec.PublicKey, Outcome: "done",
		AuthorisedBy: authorisedBy, Detail: map[string]string{"algorithm": p.Algorithm},
	}
	if cer != nil {
		entry.Detail["ceremony_id"] = cer.ID
	}
	if err := e.auditAppend(ctx, audit.TypeCeremony, entry); err != nil {
		return err
	}
	// Sealed again, so the sealed audit head covers the ceremony: a host
	// that drops it from the log is caught at the next start.
	if e.gov != nil {
		e.gov.mu.Lock()
		err := e.sealGovernance(ctx, me)
		e.gov.mu.Unlock()
		if err != nil {
			return err
		}
	}
	e.mu.Lock()
	e.shares[p.KeyID] = k
	e.mu.Unlock()
	res.PublicKey = rec.PublicKey
	return nil
}

// checkCeremony verifies a keygen proposal's authorisation. With
// governance, keygen is a ceremony the manifest's admin quorum signed
// (governance/ceremony) for exactly this cluster, algorithm, party set and
// threshold, not yet run here; it returns the ceremony and the admins whose
// signatures counted. Without governance there is nobody to authorise it
// and a proposal carrying a ceremony is refused rather than have its
// restrictions ignored.
func (e *Enclave) checkCeremony(me string, p *session.Proposal) (*ceremony.Ceremony, []string, error) {
	c, by, err := e.verifyCeremony(me, p.Ceremony, ceremony.KindKeygen)
	if err != nil || c == nil {
		return nil, nil, err
	}
	var bad []string
	if c.Algorithm != p.Algorithm {
		bad = append(bad, fmt.Sprintf("algorithm %q, proposal %q", c.Algorithm, p.Algorithm))
	}
	if !slices.Equal(c.Parties, p.Parties) {
		bad = append(bad, fmt.Sprintf("parties %s, proposal %s", strings.Join(c.Parties, ","), strings.Join(p.Parties, ",")))
	}
	if c.Threshold != p.Threshold {
		bad = append(bad, fmt.Sprintf("threshold %d, proposal %d", c.Threshold, p.Threshold))
	}
	if len(bad) > 0 {
		return nil, nil, api.Errorf(api.CodeRejected, "party %s: keygen refused: ceremony %q does not authorise this proposal: %s", me, c.ID, strings.Join(bad, "; "))
	}
	return c, by, nil
}

// admitCeremony checks a keygen proposal's ceremony and records its id as
// run, in one step with the replay check.
//
// The record is in memory only (ceremony.ReplayCache, floored at boot);
// sealing it with the governance state is to follow.
func (e *Enclave) admitCeremony(me string, p *session.Proposal) (*ceremony.Ceremony, []string, error) {
	c, by, err := e.checkCeremony(me, p)
	if err != nil || c == nil {
		return nil, nil, err
	}
	if err := e.ceremonies.Admit(c, e.cfg.Clock()); err != nil {
		return nil, nil, api.Errorf(api.CodeRejected, "party %s: keygen refused: %v", me, err)
	}
	return c, by, nil
}

// sender relays envelopes through the host.
func (e *Enclave) sender(ctx context.Context) func(to string, env []byte) error {
	return func(to string, env []byte) error {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		return e.callHost(cctx, api.MethodSend, api.SendRequest{To: to, Envelope: env}, nil)
	}
}

func (e *Enclave) peer(id string) (*channel.Peer, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	p, ok := e.peers[id]
	if !ok {
		return nil, api.Errorf(api.CodeAttestation, "party: no verified attestation for peer %q yet (host must relay its document)", id)
	}
	return p, nil
}

// maxParked bounds envelopes held for sessions this party has not joined yet.
const maxParked = 256

func (e *Enclave) deliver(_ context.Context, req *api.DeliverRequest) (any, error) {
	if _, _, err := e.ready(); err != nil {
		return nil, err
	}
	env, err := channel.ParseEnvelope(req.Envelope)
	if err != nil {
		return nil, api.Errorf(api.CodeRejected, "%v", err)
	}
	peer, err := e.peer(env.Header.From)
	if err != nil {
		return nil, err
	}
	pid := string(env.Header.ProposalID)
	e.mu.Lock()
	s, ok := e.sessions[pid]
	_, finished := e.finished[pid]
	e.mu.Unlock()
	if ok {
		if err := s.Deliver(env); err != nil {
			return nil, deliverError(err)
		}
		return nil, nil
	}
	if finished {
		return nil, api.Errorf(api.CodeStale, "party: envelope from %q for proposal %x, which has finished here (late or replayed)", env.Header.From, env.Header.ProposalID[:8])
	}
	// The sender may be ahead of our host's run call, or our session may be
	// starting (taking pre-parameters): authenticate, then park.
	if _, err := e.keysOpenCheck(peer, env); err != nil {
		return nil, deliverError(err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	// Re-check under the lock: the session may have been registered (and
	// its parked envelopes drained) while we authenticated.
	if s, ok := e.sessions[pid]; ok {
		go func() {
			if err := s.Deliver(env); err != nil {
				e.cfg.Log.Warn("envelope rejected", "from", env.Header.From, "err", err)
			}
		}()
		return nil, nil
	}
	if _, finished := e.finished[pid]; finished {
		return nil, api.Errorf(api.CodeStale, "party: envelope from %q for proposal %x, which has finished here", env.Header.From, env.Header.ProposalID[:8])
	}
	// Envelopes for sessions that never start here expire.
	now := e.cfg.Clock()
	for p, at := range e.parkedAt {
		if now.Sub(at) > e.cfg.ProposalMaxAge {
			delete(e.parked, p)
			delete(e.parkedAt, p)
		}
	}
	total := 0
	for _, l := range e.parked {
		total += len(l)
	}
	if _, ok := e.parkedAt[pid]; !ok {
		e.parkedAt[pid] = now
	}
	if total >= maxParked {
		return nil, api.Errorf(api.CodeUnavailable, "party: %d envelopes already parked for sessions not started here", total)
	}
	e.parked[pid] = append(e.parked[pid], env)
	return nil, nil
}

// keysOpenCheck authenticates an envelope without keeping its plaintext.
func (e *Enclave) keysOpenCheck(from *channel.Peer, env *channel.Envelope) (bool, error) {
	_, keys, err := e.ready()
	if err != nil {
		return false, err
	}
	pt, err := keys.Open(from, env)
	clear(pt)
	return err == nil, err
}

// deliverError classifies a refused envelope. A signature that does not
// match the sender's attested key means our view of that peer may be from
// an earlier boot: CodeAttestation tells the host to fetch its current
// attestation and retry.
func deliverError(err error) error {
	if errors.Is(err, channel.ErrSignature) {
		return api.Errorf(api.CodeAttestation, "%v (is our attestation of the sender current?)", err)
	}
	return api.Errorf(api.CodeRejected, "%v", err)
}
