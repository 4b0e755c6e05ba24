package party

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	ecdsakeygen "github.com/bnb-chain/tss-lib/v2/ecdsa/keygen"
	ecdsaresharing "github.com/bnb-chain/tss-lib/v2/ecdsa/resharing"
	eddsakeygen "github.com/bnb-chain/tss-lib/v2/eddsa/keygen"
	eddsaresharing "github.com/bnb-chain/tss-lib/v2/eddsa/resharing"
	"github.com/bnb-chain/tss-lib/v2/tss"

	"github.com/sealsign/sealsign/enclave/api"
	"github.com/sealsign/sealsign/enclave/audit"
	"github.com/sealsign/sealsign/enclave/channel"
	"github.com/sealsign/sealsign/enclave/session"
	"github.com/sealsign/sealsign/governance/ceremony"
)

// Refresh and reshare (api/reshare.go has the two-phase protocol).
//
// The invariants that keep a key usable through a crash at any point:
//   - a share of a new epoch is sealed under that epoch's own hardware key
//     and stored by the host before its party acks it;
//   - an old epoch is destroyed (hardware key first, then blob) only after
//     a commit carrying the acks of every member of the new committee, so
//     every member already holds the new epoch durably;
//   - a party acks and commits only the highest epoch it holds for a key,
//     and joins a reshare only to an epoch above every epoch it holds, so
//     two reshares from the same epoch cannot both be committed.

// maxEpochStep bounds how far above the highest epoch it holds a party
// lets a reshare go (failed attempts each use up an epoch number).
const maxEpochStep = 64

// reshareProtocol adapts tss-lib resharing to the session runner: the old
// role reshares a deep copy of the share (tss-lib zeroes its Xi in place,
// notes/tss-lib.md §3.2), the new role starts from empty save data (and,
// for ECDSA, fresh Paillier pre-parameters: a new epoch gets new keys).
func reshareProtocol(p *session.Proposal, k *loadedKey, pre *ecdsakeygen.LocalPreParams, done <-chan struct{}) (protocol, error) {
	rs := &session.Reshare{
		Old: p.OldParties, New: p.NewParties, OldThreshold: p.Threshold, NewThreshold: p.NewThreshold,
		OldEpoch: p.Epoch, NewEpoch: p.NewEpoch,
	}
	proto := protocol{reshare: rs}
	switch p.Algorithm {
	case api.AlgECDSASecp256k1:
		proto.curve, proto.typePrefix = tss.S256(), "binance.tsslib.ecdsa.resharing."
		if k != nil {
			var input ecdsakeygen.LocalPartySaveData
			if err := json.Unmarshal(k.rec.SaveData, &input); err != nil {
				return protocol{}, fmt.Errorf("party: copy share of key %q: %v", p.KeyID, err)
			}
			rs.BuildOld = func(params *tss.ReSharingParameters, out chan<- tss.Message) (tss.Party, <-chan any, error) {
				end := make(chan *ecdsakeygen.LocalPartySaveData, 1)
				return ecdsaresharing.NewLocalParty(params, input, out, end), forward(end, done), nil
			}
		}
		if pre != nil {
			rs.BuildNew = func(params *tss.ReSharingParameters, out chan<- tss.Message) (tss.Party, <-chan any, error) {
				save := ecdsakeygen.NewLocalPartySaveData(len(p.NewParties))
				save.LocalPreParams = *pre
				end := make(chan *ecdsakeygen.LocalPartySaveData, 1)
				// Never SetNoProofMod/SetNoProofFac: they disable the BitForge checks.
				return ecdsaresharing.NewLocalParty(params, save, out, end), forward(end, done), nil
			}
		}
	case api.AlgEdDSAEd25519:
		proto.curve, proto.typePrefix = tss.Edwards(), "binance.tsslib.eddsa.resharing."
		if k != nil {
			var input eddsakeygen.LocalPartySaveData
			if err := json.Unmarshal(k.rec.SaveData, &input); err != nil {
				return protocol{}, fmt.Errorf("party: copy share of key %q: %v", p.KeyID, err)
			}
			rs.BuildOld = func(params *tss.ReSharingParameters, out chan<- tss.Message) (tss.Party, <-chan any, error) {
				end := make(chan *eddsakeygen.LocalPartySaveData, 1)
				return eddsaresharing.NewLocalParty(params, input, out, end), forward(end, done), nil
			}
		}
		rs.BuildNew = func(params *tss.ReSharingParameters, out chan<- tss.Message) (tss.Party, <-chan any, error) {
			end := make(chan *eddsakeygen.LocalPartySaveData, 1)
			return eddsaresharing.NewLocalParty(params, eddsakeygen.NewLocalPartySaveData(len(p.NewParties)), out, end), forward(end, done), nil
		}
	default:
		return protocol{}, fmt.Errorf("party: unknown algorithm %q", p.Algorithm)
	}
	if k != nil {
		proto.helloExtra = k.rec.ChainCode
	}
	return proto, nil
}

// proposeReshare fills a reshare proposal from the coordinator's share.
func (e *Enclave) proposeReshare(req *api.ProposeRequest, p *session.Proposal) error {
	k, err := e.share(req.KeyID)
	if err != nil {
		return err
	}
	p.KeyID, p.Algorithm, p.Threshold, p.Epoch = req.KeyID, k.rec.Algorithm, k.rec.Threshold, k.rec.Epoch
	p.OldParties, p.PublicKey = slices.Clone(k.rec.Parties), k.rec.PublicKey
	p.NewParties, p.NewThreshold = slices.Clone(req.NewParties), req.NewThreshold
	if len(p.NewParties) == 0 { // refresh
		p.NewParties, p.NewThreshold = slices.Clone(k.rec.Parties), k.rec.Threshold
	}
	slices.Sort(p.NewParties)
	p.NewEpoch = req.NewEpoch
	if p.NewEpoch == 0 {
		p.NewEpoch = e.epochsOf(req.KeyID).highest() + 1
	}
	u := slices.Concat(p.OldParties, p.NewParties)
	slices.Sort(u)
	p.Parties = slices.Compact(u)
	p.Ceremony = req.Ceremony
	return nil
}

// keyEpochs is what a party holds of one key: its committed share (nil if
// none) and the highest epoch it holds, pending ones included (held
// reports whether it holds anything at all).
type keyEpochs struct {
	active         *loadedKey
	highestPending uint64
	held           bool
}

// highest is the highest epoch held, committed or pending.
func (k keyEpochs) highest() uint64 {
	if k.active != nil {
		return max(k.active.rec.Epoch, k.highestPending)
	}
	return k.highestPending
}

func (e *Enclave) epochsOf(keyID string) keyEpochs {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.epochsOfLocked(keyID)
}

func (e *Enclave) epochsOfLocked(keyID string) keyEpochs {
	k := keyEpochs{active: e.shares[keyID]}
	for ep := range e.pending[keyID] {
		k.highestPending = max(k.highestPending, ep)
	}
	k.held = k.active != nil || len(e.pending[keyID]) > 0
	return k
}

// checkReshareShape applies this party's rules to a reshare proposal.
func (e *Enclave) checkReshareShape(me string, p *session.Proposal) error {
	for _, id := range p.NewParties {
		if _, ok := e.manifest.Party(id); !ok {
			return api.Errorf(api.CodeBadRequest, "party: reshare names %q, not a party of the cluster", id)
		}
	}
	held := e.epochsOf(p.KeyID)
	h := held.highest()
	if held.held && p.NewEpoch <= h {
		return api.Errorf(api.CodeRejected, "party %s: reshare of key %q to epoch %d refused: this party already holds epoch %d (a reshare goes to an epoch above every epoch any party holds)", me, p.KeyID, p.NewEpoch, h)
	}
	// The host picks the new epoch (above every attempt it knows of); a
	// jump far ahead could only serve to run the key out of epochs.
	if p.NewEpoch > max(h, p.Epoch)+maxEpochStep {
		return api.Errorf(api.CodeRejected, "party %s: reshare of key %q to epoch %d refused: more than %d above the highest epoch held (%d)", me, p.KeyID, p.NewEpoch, maxEpochStep, max(h, p.Epoch))
	}
	if slices.Contains(p.OldParties, me) {
		k, err := e.share(p.KeyID)
		if err != nil {
			return err
		}
		var bad []string
		if k.rec.Epoch != p.Epoch {
			bad = append(bad, fmt.Sprintf("epoch %d, this party holds epoch %d", p.Epoch, k.rec.Epoch))
		}
		if p.Algorithm != k.rec.Algorithm || p.Threshold != k.rec.Threshold {
			bad = append(bad, fmt.Sprintf("%s t=%d, the key is %s t=%d", p.Algorithm, p.Threshold, k.rec.Algorithm, k.rec.Threshold))
		}
		if !slices.Equal(p.OldParties, k.rec.Parties) {
			bad = append(bad, fmt.Sprintf("old committee %s, the key's is %s", strings.Join(p.OldParties, ","), strings.Join(k.rec.Parties, ",")))
		}
		if !bytes.Equal(p.PublicKey, k.rec.PublicKey) {
			bad = append(bad, "another public key")
		}
		if len(bad) > 0 {
			return api.Errorf(api.CodeBadRequest, "party %s: reshare proposal for key %q does not match the share held here: %s", me, p.KeyID, strings.Join(bad, "; "))
		}
	} else if held.active != nil {
		return api.Errorf(api.CodeBadRequest, "party %s: reshare lists this party as joining key %q, but it already holds a share of it", me, p.KeyID)
	}
	return nil
}

// sealGovernanceLocked seals the governance state (if any) under its lock,
// so the sealed audit head covers the entries just written.
func (e *Enclave) sealGovernanceLocked(ctx context.Context, me string) error {
	if e.gov == nil {
		return nil
	}
	e.gov.mu.Lock()
	defer e.gov.mu.Unlock()
	return e.sealGovernance(ctx, me)
}

// checkReshareCeremony verifies a reshare proposal's authorisation: with
// governance, a refresh (same committee and threshold) or reshare ceremony
// the admin quorum signed for exactly this key, epoch and committees, not
// yet run here.
func (e *Enclave) checkReshareCeremony(me string, p *session.Proposal) (*ceremony.Ceremony, []string, error) {
	kind := ceremony.KindReshare
	if slices.Equal(p.OldParties, p.NewParties) && p.Threshold == p.NewThreshold {
		kind = ceremony.KindRefresh
	}
	c, by, err := e.verifyCeremony(me, p.Ceremony, kind)
	if err != nil || c == nil {
		return nil, nil, err
	}
	bad := ceremonyMismatch(c, p.KeyID, p.Algorithm, p.Epoch, p.OldParties, p.Threshold)
	if kind == ceremony.KindReshare && (!slices.Equal(c.NewParties, p.NewParties) || c.NewThreshold != p.NewThreshold) {
		bad = append(bad, fmt.Sprintf("new committee %s t=%d, proposal %s t=%d", strings.Join(c.NewParties, ","), c.NewThreshold, strings.Join(p.NewParties, ","), p.NewThreshold))
	}
	if len(bad) > 0 {
		return nil, nil, api.Errorf(api.CodeRejected, "party %s: %s refused: ceremony %q does not authorise this proposal: %s", me, kind, c.ID, strings.Join(bad, "; "))
	}
	return c, by, nil
}

// verifyCeremony checks a lifecycle ceremony's signatures, cluster,
// validity, kind and replay. Without governance there is nobody to
// authorise it: no ceremony is needed and one given is refused.
func (e *Enclave) verifyCeremony(me string, raw []byte, kind string) (*ceremony.Ceremony, []string, error) {
	if e.gov == nil {
		if len(raw) != 0 {
			return nil, nil, api.Errorf(api.CodeBadRequest, "party %s: %s carries a ceremony, but this cluster's manifest has no governance section to verify it against", me, kind)
		}
		return nil, nil, nil
	}
	return e.verifyLifecycleCeremony(me, kind, raw)
}

// admitReshare spends the ceremony and claims the key for this reshare on
// this party (one reshare of a key at a time).
func (e *Enclave) admitReshare(me string, p *session.Proposal) (*ceremony.Ceremony, []string, func(), error) {
	c, by, err := e.checkReshareCeremony(me, p)
	if err != nil {
		return nil, nil, nil, err
	}
	e.mu.Lock()
	if e.resharing[p.KeyID] {
		e.mu.Unlock()
		return nil, nil, nil, api.Errorf(api.CodeRejected, "party %s: key %q is already being reshared here", me, p.KeyID)
	}
	e.resharing[p.KeyID] = true
	e.mu.Unlock()
	release := func() {
		e.mu.Lock()
		delete(e.resharing, p.KeyID)
		e.mu.Unlock()
	}
	// Re-checked under the claim: a commit may have moved the key on.
	if err := e.checkReshareShape(me, p); err != nil {
		release()
		return nil, nil, nil, err
	}
	if c != nil {
		if err := e.ceremonies.Admit(c, e.cfg.Clock()); err != nil {
			release()
			return nil, nil, nil, api.Errorf(api.CodeRejected, "party %s: reshare refused: %v", me, err)
		}
	}
	return c, by, release, nil
}

// runReshare runs an admitted reshare session and, on a member of the new
// committee, seals and stores the new epoch's share as pending and returns
// its ack.
func (e *Enclave) runReshare(ctx context.Context, me string, keys *channel.Keys, peers map[string]*channel.Peer, p *session.Proposal, pid []byte, pre *preParamsEntry, cer *ceremony.Ceremony, by []string, res *api.SessionResult) error {
	var k *loadedKey
	if slices.Contains(p.OldParties, me) {
		var err error
		if k, err = e.share(p.KeyID); err != nil {
			return err
		}
	}
	kind := ceremony.KindReshare
	if slices.Equal(p.OldParties, p.NewParties) && p.Threshold == p.NewThreshold {
		kind = ceremony.KindRefresh
	}
	entry := audit.Ceremony{Kind: kind, KeyID: p.KeyID, Epoch: p.NewEpoch, AuthorisedBy: by, Parties: p.NewParties,
		Threshold: uint64(p.NewThreshold), PublicKey: p.PublicKey,
		Detail: map[string]string{"algorithm": p.Algorithm, "from_epoch": strconv.FormatUint(p.Epoch, 10),
			"old_parties": strings.Join(p.OldParties, ","), "old_threshold": strconv.Itoa(p.Threshold), "proposal_id": fmt.Sprintf("%x", pid)}}
	if cer != nil {
		entry.Detail["ceremony_id"] = cer.ID
	}
	fail := func(err error) error {
		entry.Outcome, entry.Error = "failed", err.Error()
		if aerr := e.auditAppend(ctx, audit.TypeCeremony, entry); aerr != nil {
			e.cfg.Log.Warn("audit entry not written", "key", p.KeyID, "err", aerr)
		}
		return err
	}
	done := make(chan struct{})
	defer close(done)
	proto, err := reshareProtocol(p, k, pre.params(), done)
	if err != nil {
		return fail(api.Errorf(api.CodeInternal, "%v", err))
	}
	r, err := e.runSession(ctx, me, keys, peers, p, pid, proto, e.cfg.KeygenInactivity, nil)
	if err != nil {
		return fail(err)
	}
	res.SessionID, res.PublicKey, res.Epoch = r.sid, p.PublicKey, p.NewEpoch
	res.Threshold, res.Parties = p.NewThreshold, p.NewParties
	out, ok := r.out.(*session.ReshareOutput)
	if !ok {
		return fail(api.Errorf(api.CodeInternal, "party: unexpected reshare output %T", r.out))
	}
	entry.Detail["session_id"] = fmt.Sprintf("%x", r.sid)
	if out.New == nil {
		// Old committee only: nothing to keep until the commit removes
		// our share.
		entry.Outcome = "prepared"
		entry.Detail["role"] = "old"
		return e.auditAppend(ctx, audit.TypeCeremony, entry)
	}
	chain, err := agreedChainCode(me, p, k, r.s.Extras())
	if err != nil {
		return fail(err)
	}
	rec, err := newShareRecord(&session.Proposal{KeyID: p.KeyID, Algorithm: p.Algorithm, Threshold: p.NewThreshold, Parties: p.NewParties}, out.New)
	if err != nil {
		return fail(api.Errorf(api.CodeInternal, "%v", err))
	}
	rec.Epoch, rec.PrevEpoch, rec.ReshareID, rec.ChainCode = p.NewEpoch, p.Epoch, pid, chain
	if !bytes.Equal(rec.PublicKey, p.PublicKey) {
		return fail(api.Errorf(api.CodeSession, "party %s: reshare produced a share of another public key than the proposal's; discarding it", me))
	}
	nk, err := rec.load()
	if err != nil {
		return fail(api.Errorf(api.CodeInternal, "%v", err))
	}
	blob, err := e.sealShare(me, rec)
	if err != nil {
		return fail(err)
	}
	if err := e.callHost(ctx, api.MethodStore, api.StoreRequest{Blob: api.NamedBlob{Name: shareBlobName(p.KeyID, rec.Epoch), Blob: blob}}, nil); err != nil {
		return fail(api.Errorf(api.CodeUnavailable, "party %s: host did not store the sealed share of key %q epoch %d: %v", me, p.KeyID, rec.Epoch, err))
	}
	e.mu.Lock()
	if e.pending[p.KeyID] == nil {
		e.pending[p.KeyID] = map[uint64]*loadedKey{}
	}
	e.pending[p.KeyID][rec.Epoch] = nk
	e.mu.Unlock()
	entry.Outcome = "prepared"
	entry.Detail["role"] = "new"
	if slices.Contains(p.OldParties, me) {
		entry.Detail["role"] = "old+new"
	}
	entry.Detail["shares_hash"] = fmt.Sprintf("%x", nk.sharesHash())
	if err := e.auditAppend(ctx, audit.TypeCeremony, entry); err != nil {
		return err
	}
	if err := e.sealGovernanceLocked(ctx, me); err != nil {
		return err
	}
	ack, err := e.ack(me, keys, nk)
	if err != nil {
		return err
	}
	res.Ack = ack
	return nil
}

// agreedChainCode is the key's chain code for a member of the new
// committee: its own when it held the key, otherwise the one every member
// of the old committee sent in its hello, which must all be the same.
func agreedChainCode(me string, p *session.Proposal, k *loadedKey, extras map[string][]byte) ([]byte, error) {
	var want []byte
	haveWant := false
	if k != nil {
		want, haveWant = k.rec.ChainCode, true
	}
	for _, id := range p.OldParties {
		if id == me {
			continue
		}
		got := extras[id]
		if !haveWant {
			want, haveWant = got, true
			continue
		}
		if !bytes.Equal(got, want) {
			return nil, api.Errorf(api.CodeSession, "party %s: the old committee disagrees on key %q's chain code (%s sent another one); discarding the new share", me, p.KeyID, id)
		}
	}
	return slices.Clone(want), nil
}

// sharesHash commits to an epoch's public share points and party keys.
func (k *loadedKey) sharesHash() []byte {
	h := sha256.New()
	h.Write([]byte("sealsign/v1/shares\x00"))
	write := func(xs ...[]byte) {
		for _, x := range xs {
			var n [4]byte
			n[0], n[1], n[2], n[3] = byte(len(x)>>24), byte(len(x)>>16), byte(len(x)>>8), byte(len(x))
			h.Write(n[:])
			h.Write(x)
		}
	}
	switch {
	case k.ecdsa != nil:
		for i, x := range k.ecdsa.BigXj {
			write(k.ecdsa.Ks[i].Bytes(), x.X().Bytes(), x.Y().Bytes())
		}
	case k.eddsa != nil:
		for i, x := range k.eddsa.BigXj {
			write(k.eddsa.Ks[i].Bytes(), x.X().Bytes(), x.Y().Bytes())
		}
	}
	return h.Sum(nil)
}

func statementOf(k *loadedKey) api.ReshareStatement {
	return api.ReshareStatement{ProposalID: k.rec.ReshareID, KeyID: k.rec.KeyID, PublicKey: k.rec.PublicKey,
		OldEpoch: k.rec.PrevEpoch, NewEpoch: k.rec.Epoch, NewParties: k.rec.Parties, NewThreshold: k.rec.Threshold,
		SharesHash: k.sharesHash()}
}

func (e *Enclave) ack(me string, keys *channel.Keys, k *loadedKey) (*api.ReshareAck, error) {
	st, err := api.Marshal(statementOf(k))
	if err != nil {
		return nil, err
	}
	return &api.ReshareAck{PartyID: me, Statement: st, Signature: keys.Sign(api.DomainReshareAck, st)}, nil
}

// reshareAck signs this party's statement for a reshared epoch it holds:
// its highest pending epoch of the key, or its committed one.
func (e *Enclave) reshareAck(_ context.Context, req *api.ReshareAckRequest) (*api.ReshareAck, error) {
	me, keys, err := e.readyRestored()
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	k := e.pending[req.KeyID][req.Epoch]
	held := e.epochsOfLocked(req.KeyID)
	e.mu.Unlock()
	active, higher := held.active, held.highestPending
	if k == nil && active != nil && active.rec.Epoch == req.Epoch && active.rec.ReshareID != nil {
		k = active
	}
	switch {
	case k == nil:
		return nil, api.Errorf(api.CodeNotFound, "party %s: holds no reshared share of key %q at epoch %d", me, req.KeyID, req.Epoch)
	case higher > req.Epoch:
		return nil, api.Errorf(api.CodeRejected, "party %s: epoch %d of key %q is superseded by the later reshare to epoch %d here; it will not be committed", me, req.Epoch, req.KeyID, higher)
	}
	return e.ack(me, keys, k)
}

// reshareCommit commits a reshared epoch given every new member's ack, and
// destroys the key's other epochs on this party.
func (e *Enclave) reshareCommit(ctx context.Context, req *api.ReshareCommitRequest) (*api.ReshareCommitResponse, error) {
	me, keys, err := e.readyRestored()
	if err != nil {
		return nil, err
	}
	st, err := e.verifyAcks(me, keys, req)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	if e.resharing[st.KeyID] {
		e.mu.Unlock()
		return nil, api.Errorf(api.CodeUnavailable, "party %s: a reshare of key %q is running here; commit after it ends", me, st.KeyID)
	}
	e.resharing[st.KeyID] = true
	pend, held := e.pending[st.KeyID][st.NewEpoch], e.epochsOfLocked(st.KeyID)
	e.mu.Unlock()
	active, higher := held.active, held.highestPending
	defer func() {
		e.mu.Lock()
		delete(e.resharing, st.KeyID)
		e.mu.Unlock()
	}()
	if st.NewEpoch < held.highest() {
		// A commit of an earlier epoch than one held here — a reshare a
		// later one superseded, or a replay of one already applied — must
		// not touch anything: destroying for it could take the only copy
		// of this party's share of the later epoch.
		return nil, api.Errorf(api.CodeRejected, "party %s: commit of key %q epoch %d refused: this party holds the later epoch %d", me, st.KeyID, st.NewEpoch, held.highest())
	}
	resp := &api.ReshareCommitResponse{PartyID: me, Epoch: st.NewEpoch, Threshold: st.NewThreshold, Parties: st.NewParties, PublicKey: st.PublicKey}
	for _, k := range []*loadedKey{active, pend} {
		if k != nil {
			resp.Algorithm = k.rec.Algorithm
		}
	}
	entry := audit.Ceremony{Kind: "reshare-commit", KeyID: st.KeyID, Epoch: st.NewEpoch, Parties: st.NewParties,
		Threshold: uint64(st.NewThreshold), PublicKey: st.PublicKey,
		Detail: map[string]string{"from_epoch": strconv.FormatUint(st.OldEpoch, 10), "proposal_id": fmt.Sprintf("%x", st.ProposalID),
			"acks": strings.Join(st.NewParties, ",")}}
	if slices.Contains(st.NewParties, me) {
		switch {
		case active != nil && active.rec.Epoch == st.NewEpoch:
			if !bytes.Equal(active.rec.ReshareID, st.ProposalID) || !bytes.Equal(active.sharesHash(), st.SharesHash) {
				return nil, api.Errorf(api.CodeRejected, "party %s: commit of key %q epoch %d refused: the acks describe another reshare than the one this party committed", me, st.KeyID, st.NewEpoch)
			}
			resp.Outcome = "already-committed"
		case pend == nil:
			return nil, api.Errorf(api.CodeRejected, "party %s: commit of key %q epoch %d refused: this party holds no pending share of that epoch", me, st.KeyID, st.NewEpoch)
		case higher > st.NewEpoch:
			return nil, api.Errorf(api.CodeRejected, "party %s: commit of key %q epoch %d refused: superseded by the later reshare to epoch %d here", me, st.KeyID, st.NewEpoch, higher)
		case active != nil && active.rec.Epoch > st.NewEpoch:
			return nil, api.Errorf(api.CodeRejected, "party %s: commit of key %q epoch %d refused: this party already holds the later epoch %d", me, st.KeyID, st.NewEpoch, active.rec.Epoch)
		case !bytes.Equal(pend.rec.ReshareID, st.ProposalID) || !bytes.Equal(pend.sharesHash(), st.SharesHash):
			return nil, api.Errorf(api.CodeRejected, "party %s: commit of key %q epoch %d refused: the acks describe another reshare than the one whose share this party holds", me, st.KeyID, st.NewEpoch)
		default:
			// Durable first: the committed record replaces the pending
			// blob, so a restart finds the new epoch committed.
			rec := pend.rec
			rec.Committed = true
			blob, err := e.sealShare(me, &rec)
			if err != nil {
				return nil, err
			}
			if err := e.callHost(ctx, api.MethodStore, api.StoreRequest{Blob: api.NamedBlob{Name: shareBlobName(st.KeyID, st.NewEpoch), Blob: blob}}, nil); err != nil {
				return nil, api.Errorf(api.CodeUnavailable, "party %s: host did not store the committed share of key %q epoch %d: %v", me, st.KeyID, st.NewEpoch, err)
			}
			committed := *pend
			committed.rec = rec
			e.mu.Lock()
			e.shares[st.KeyID] = &committed
			delete(e.pending[st.KeyID], st.NewEpoch)
			delete(e.shareErrs, st.KeyID)
			e.mu.Unlock()
			resp.Outcome = "committed"
		}
	} else {
		if active == nil || active.rec.Epoch != st.OldEpoch || !bytes.Equal(active.rec.PublicKey, st.PublicKey) {
			held := "no share"
			if active != nil {
				held = fmt.Sprintf("epoch %d", active.rec.Epoch)
			}
			return nil, api.Errorf(api.CodeRejected, "party %s: commit removing this party from key %q refused: it reshares epoch %d, this party holds %s", me, st.KeyID, st.OldEpoch, held)
		}
		e.mu.Lock()
		delete(e.shares, st.KeyID)
		e.mu.Unlock()
		resp.Outcome = "removed"
	}
	entry.Outcome = resp.Outcome
	if err := e.auditAppend(ctx, audit.TypeCeremony, entry); err != nil {
		return nil, err
	}
	// Everything below the committed epoch goes; a removed party's share
	// of the committed epoch number, if any, is another attempt's and goes
	// too. Nothing above it is ever touched (checked above: there is none).
	removed := resp.Outcome == "removed"
	var was []uint64
	if active != nil {
		was = append(was, active.rec.Epoch)
	}
	resp.Destroyed, err = e.destroyEpochs(ctx, me, st.KeyID, func(ep uint64) bool {
		return ep < st.NewEpoch || (removed && ep == st.NewEpoch)
	}, was...)
	if err != nil {
		return resp, err
	}
	if len(resp.Destroyed) > 0 {
		var eps []string
		for _, ep := range resp.Destroyed {
			eps = append(eps, strconv.FormatUint(ep, 10))
		}
		destroyed := audit.Ceremony{Kind: "epoch-destroyed", KeyID: st.KeyID, Epoch: st.NewEpoch, Outcome: "done",
			Detail: map[string]string{"epochs": strings.Join(eps, ",")}}
		if err := e.auditAppend(ctx, audit.TypeCeremony, destroyed); err != nil {
			return resp, err
		}
	}
	if err := e.sealGovernanceLocked(ctx, me); err != nil {
		return resp, err
	}
	e.cfg.Log.Info("reshare committed", "key", st.KeyID, "epoch", st.NewEpoch, "outcome", resp.Outcome, "destroyed", resp.Destroyed)
	return resp, nil
}

// verifyAcks checks a commit's acks: one from every member of the new
// committee, each signed by that member's attested identity (ours by our
// own keys), all over the same statement.
func (e *Enclave) verifyAcks(me string, keys *channel.Keys, req *api.ReshareCommitRequest) (*api.ReshareStatement, error) {
	if len(req.Acks) == 0 || len(req.Acks) > session.MaxParties {
		return nil, api.Errorf(api.CodeBadRequest, "party %s: commit carries %d acks, want 2 to %d", me, len(req.Acks), session.MaxParties)
	}
	var stmt []byte
	signed := map[string]bool{}
	for _, a := range req.Acks {
		if stmt == nil {
			stmt = a.Statement
		} else if !bytes.Equal(stmt, a.Statement) {
			return nil, api.Errorf(api.CodeRejected, "party %s: commit refused: %s acked another statement than the others", me, a.PartyID)
		}
		if signed[a.PartyID] {
			return nil, api.Errorf(api.CodeRejected, "party %s: commit refused: two acks from %s", me, a.PartyID)
		}
		var pe *channel.Peer
		var err error
		if a.PartyID == me {
			pe, err = channel.NewPeer(keys.Public())
		} else {
			pe, err = e.peer(a.PartyID)
		}
		if err != nil {
			return nil, err
		}
		if !pe.Verify(api.DomainReshareAck, a.Statement, a.Signature) {
			return nil, api.Errorf(api.CodeRejected, "party %s: commit refused: the ack of %s does not verify under its attested identity", me, a.PartyID)
		}
		signed[a.PartyID] = true
	}
	st := new(api.ReshareStatement)
	if err := api.Unmarshal(stmt, st); err != nil {
		return nil, api.Errorf(api.CodeBadRequest, "party %s: commit refused: malformed statement: %v", me, err)
	}
	if st.KeyID != req.KeyID {
		return nil, api.Errorf(api.CodeBadRequest, "party %s: commit for key %q carries acks for key %q", me, req.KeyID, st.KeyID)
	}
	var missing []string
	for _, id := range st.NewParties {
		if !signed[id] {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 || len(signed) != len(st.NewParties) {
		return nil, api.Errorf(api.CodeRejected, "party %s: commit of key %q epoch %d refused: acks missing from %s (every member of the new committee must hold its share before an old epoch is destroyed)", me, st.KeyID, st.NewEpoch, strings.Join(missing, ", "))
	}
	return st, nil
}

// destroyEpochs destroys the epochs of keyID this party holds or has a
// blob of (and also) for which doomed says so: the hardware key first (that
// is what makes every copy of the blob useless), then the host's blob.
func (e *Enclave) destroyEpochs(ctx context.Context, me, keyID string, doomed func(uint64) bool, also ...uint64) ([]uint64, error) {
	e.mu.Lock()
	eps := map[uint64]bool{}
	for _, ep := range also {
		eps[ep] = true
	}
	for ep := range e.pending[keyID] {
		eps[ep] = true
	}
	for ep := range e.stale[keyID] {
		eps[ep] = true
	}
	if k := e.shares[keyID]; k != nil {
		eps[k.rec.Epoch] = true
	}
	e.mu.Unlock()
	var out []uint64
	for ep := range eps {
		if doomed(ep) {
			out = append(out, ep)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	for _, ep := range out {
		if err := e.cfg.Epochs.DestroyEpoch(keyID, ep); err != nil {
			return nil, api.Errorf(api.CodeSealing, "party %s: destroy the sealing key of key %q epoch %d: %v", me, keyID, ep, err)
		}
		e.mu.Lock()
		delete(e.pending[keyID], ep)
		delete(e.stale[keyID], ep)
		e.mu.Unlock()
		if err := e.callHost(ctx, api.MethodDelete, api.DeleteRequest{Name: shareBlobName(keyID, ep)}, nil); err != nil {
			// The blob is unopenable already; a leftover is only litter.
			e.cfg.Log.Warn("host did not delete a destroyed epoch's blob", "key", keyID, "epoch", ep, "err", err)
		}
	}
	e.mu.Lock()
	if len(e.stale[keyID]) == 0 {
		delete(e.stale, keyID)
	}
	if len(e.pending[keyID]) == 0 {
		delete(e.pending, keyID)
	}
	e.mu.Unlock()
	return out, nil
}

// destroyStale destroys, after a restore, the epochs a later committed
// epoch superseded (a crash between a commit and its destruction, or
// blobs a host kept).
func (e *Enclave) destroyStale(me string) {
	if e.cfg.Epochs == nil {
		return
	}
	e.mu.Lock()
	type kv struct {
		key  string
		keep uint64
	}
	var todo []kv
	for keyID, eps := range e.stale {
		if k := e.shares[keyID]; k != nil && len(eps) > 0 && !e.resharing[keyID] {
			todo = append(todo, kv{keyID, k.rec.Epoch})
		}
	}
	e.mu.Unlock()
	for _, t := range todo {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		e.mu.Lock()
		var eps []uint64
		for ep := range e.stale[t.key] {
			eps = append(eps, ep)
		}
		e.mu.Unlock()
		for _, ep := range eps {
			if err := e.cfg.Epochs.DestroyEpoch(t.key, ep); err != nil {
				e.cfg.Log.Warn("superseded epoch not destroyed", "key", t.key, "epoch", ep, "err", err)
				continue
			}
			if err := e.callHost(ctx, api.MethodDelete, api.DeleteRequest{Name: shareBlobName(t.key, ep)}, nil); err != nil {
				e.cfg.Log.Warn("host did not delete a superseded epoch's blob", "key", t.key, "epoch", ep, "err", err)
			}
			e.mu.Lock()
			delete(e.stale[t.key], ep)
			e.mu.Unlock()
			e.cfg.Log.Info("superseded epoch destroyed", "party", me, "key", t.key, "epoch", ep)
		}
		cancel()
	}
}
