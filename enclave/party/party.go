// Package party is the enclave's runtime: it holds the party's identity
// keys, key shares and pre-parameter pool, verifies peers' attestations,
// and runs keygen and signing sessions. It is the only code that sees a
// share in plaintext; everything it persists goes out sealed.
package party

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sealsign/sealsign/attestation/peer"
	"github.com/sealsign/sealsign/attestation/tpm"
	"github.com/sealsign/sealsign/enclave/api"
	"github.com/sealsign/sealsign/enclave/channel"
	"github.com/sealsign/sealsign/enclave/session"
	"github.com/sealsign/sealsign/governance/ceremony"
	"github.com/sealsign/sealsign/hsm"
)

// Attester produces attestation documents (Nitro NSM, dev NSM). The
// document's public_key, user_data and nonce must be exactly the given bytes.
type Attester interface {
	Attest(publicKey, userData, nonce []byte) ([]byte, error)
}

// Host is the enclave's view of its host: calls it makes outward.
type Host interface {
	Call(ctx context.Context, method string, req, resp any) error
}

// Config wires the enclave's hardware and policy.
type Config struct {
	// Sealer seals what belongs to no key epoch (governance state,
	// pre-parameters); Epochs seals key shares, one hardware key per key
	// epoch, destroyed when the epoch ends (crypto-shredding). A party
	// without Epochs holds no shares.
	Sealer      hsm.Sealer
	Epochs      hsm.EpochKeys
	Rand        io.Reader // mixed entropy (hardware ⊕ OS)
	Attester    Attester
	Measurement []byte // PCR0 this enclave reports about itself
	Clock       func() time.Time
	Log         *slog.Logger

	PreParams PoolConfig

	// KeygenInactivity and SignInactivity bound how long a session may go
	// without progress before it aborts naming the parties it waits for.
	KeygenInactivity time.Duration
	SignInactivity   time.Duration
	// ProposalMaxAge bounds how old a proposal may be when a party joins.
	ProposalMaxAge time.Duration
}

// Enclave is one party's runtime.
type Enclave struct {
	cfg Config

	mu           sync.Mutex
	host         Host
	partyID      string
	manifest     *api.Manifest
	manifestHash []byte
	keys         *channel.Keys
	identityDoc  []byte
	identityAt   time.Time
	peers        map[string]*channel.Peer
	peerDocs     map[string][]byte // party → hash of the doc its keys came from
	peerStatus   map[string]api.PeerStatus
	peerClocks   map[string]tpm.ClockInfo // party → TPM clock of the last evidence accepted
	gov          *governor                // nil when the manifest has no governance
	ceremonies   *ceremony.ReplayCache    // ceremony ids run (governed keygen); in memory only
	peerPolicies map[string]peer.Policy   // party → what its attestation must prove (from the manifest)
	govErr       string                   // why the sealed governance state could not be restored: no signing
	shares       map[string]*loadedKey    // committed epoch of each key
	shareErrs    map[string]string
	pending      map[string]map[uint64]*loadedKey // key → reshared epochs not yet committed
	stale        map[string]map[uint64]bool       // key → epochs with a blob, superseded, to destroy
	resharing    map[string]bool                  // keys a reshare or commit is running on
	sessions     map[string]*session.Session      // proposal id → session
	runCancels   map[string]*running              // proposal id → its run, to abort
	seen         map[string]time.Time             // proposal ids ever run (replay)
	finished     map[string]time.Time             // proposal ids whose session has ended
	parked       map[string][]*channel.Envelope
	parkedAt     map[string]time.Time
	restored     bool
	pool         *pool

	auditMu sync.Mutex // held while an entry is signed and stored: one order
	audit   auditLog
}

// New returns an uninitialised enclave; the host must call init.
func New(cfg Config) *Enclave {
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.KeygenInactivity == 0 {
		cfg.KeygenInactivity = 2 * time.Minute
	}
	if cfg.SignInactivity == 0 {
		cfg.SignInactivity = time.Minute
	}
	if cfg.ProposalMaxAge == 0 {
		cfg.ProposalMaxAge = 2 * time.Minute
	}
	e := &Enclave{
		cfg:        cfg,
		peers:      map[string]*channel.Peer{},
		peerDocs:   map[string][]byte{},
		peerStatus: map[string]api.PeerStatus{},
		peerClocks: map[string]tpm.ClockInfo{},
		shares:     map[string]*loadedKey{},
		shareErrs:  map[string]string{},
		pending:    map[string]map[uint64]*loadedKey{},
		stale:      map[string]map[uint64]bool{},
		resharing:  map[string]bool{},
		sessions:   map[string]*session.Session{},
		runCancels: map[string]*running{},
		seen:       map[string]time.Time{},
		finished:   map[string]time.Time{},
		parked:     map[string][]*channel.Envelope{},
		parkedAt:   map[string]time.Time{},
	}
	e.pool = newPool(cfg.PreParams, e)
	return e
}

// AttachHost sets the connection used for calls to the host (a reconnecting
// host replaces the previous one).
func (e *Enclave) AttachHost(h Host) {
	e.mu.Lock()
	e.host = h
	e.mu.Unlock()
}

func (e *Enclave) callHost(ctx context.Context, method string, req, resp any) error {
	e.mu.Lock()
	h := e.host
	e.mu.Unlock()
	if h == nil {
		return api.Errorf(api.CodeUnavailable, "party: no host connected")
	}
	return h.Call(ctx, method, req, resp)
}

// Handlers returns the methods the host may call.
func (e *Enclave) Handlers() map[string]api.Handler {
	return map[string]api.Handler{
		api.MethodInit:          decodeInto(e.init),
		api.MethodAttest:        decodeInto(e.attest),
		api.MethodRestore:       decodeInto(e.restore),
		api.MethodPeerIdentity:  decodeInto(e.peerIdentity),
		api.MethodPropose:       decodeInto(e.propose),
		api.MethodRun:           decodeInto(e.run),
		api.MethodAbort:         decodeInto(e.abort),
		api.MethodDeliver:       decodeInto(e.deliver),
		api.MethodStatus:        func(ctx context.Context, _ []byte) (any, error) { return e.status(), nil },
		api.MethodEvaluate:      decodeInto(e.evaluateMethod),
		api.MethodPolicyUpdate:  decodeInto(e.policyUpdate),
		api.MethodAuditHash:     decodeInto(e.auditHash),
		api.MethodReshareAck:    decodeInto(e.reshareAck),
		api.MethodReshareCommit: decodeInto(e.reshareCommit),
		api.MethodDerive:        decodeInto(e.deriveMethod),
		api.MethodBackup:        decodeInto(e.backupShare),
		api.MethodRecover:       decodeInto(e.recoverShare),
		api.MethodAuditCheckpoint: func(ctx context.Context, _ []byte) (any, error) {
			return e.auditCheckpoint(ctx, nil)
		},
	}
}

func decodeInto[Req any, Resp any](f func(context.Context, *Req) (Resp, error)) api.Handler {
	return func(ctx context.Context, body []byte) (any, error) {
		req := new(Req)
		if err := api.Unmarshal(body, req); err != nil {
			return nil, api.Errorf(api.CodeMalformed, "party: malformed request: %v", err)
		}
		return f(ctx, req)
	}
}

func (e *Enclave) init(_ context.Context, req *api.InitRequest) (*api.InitResponse, error) {
	m, err := api.ParseManifest(req.Manifest)
	if err != nil {
		return nil, api.Errorf(api.CodeBadRequest, "%v", err)
	}
	self, ok := m.Party(req.PartyID)
	if !ok {
		return nil, api.Errorf(api.CodeBadRequest, "party: %q is not a party of cluster %q (parties: %s)", req.PartyID, m.ClusterID, strings.Join(m.PartyIDs(), ", "))
	}
	if want, ok := self.PinnedPCRs()[0]; ok && self.Kind != "tpm" && !bytes.Equal(want, e.cfg.Measurement) {
		// Peers are the judges of our measurement; say it here too.
		e.cfg.Log.Warn("this enclave's measurement differs from the manifest: peers will refuse it",
			"party", req.PartyID, "pcr0", fmt.Sprintf("%x", e.cfg.Measurement), "manifest_pcr0", fmt.Sprintf("%x", want))
	}
	hash, err := m.Hash()
	if err != nil {
		return nil, err
	}
	policies, err := m.AttestationPolicies()
	if err != nil {
		return nil, api.Errorf(api.CodeBadRequest, "%v", err)
	}
	var governed *governor
	// Ceremonies issued before this boot may have run in an earlier
	// incarnation, whose record of them is gone.
	ceremonies, err := ceremony.NewReplayCache(0)
	if err != nil {
		return nil, err
	}
	ceremonies.SetFloor(e.cfg.Clock())
	if m.Governance != nil {
		// The genesis policy must carry the admin quorum's signatures,
		// checked here, inside the enclave; an enclave that cannot verify
		// its policy refuses to start (fail closed).
		if governed, err = newGovernor(m, e.cfg.Clock(), e.cfg.Rand); err != nil {
			return nil, api.Errorf(api.CodeBadRequest, "%v", err)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.keys != nil {
		if e.partyID != req.PartyID || !bytes.Equal(e.manifestHash, hash) {
			return nil, api.Errorf(api.CodeBadRequest, "party: already initialised as party %q of manifest %x; restart the enclave to change", e.partyID, e.manifestHash[:8])
		}
		return &api.InitResponse{Identity: e.keys.Public(), ManifestHash: hash, Measurement: e.cfg.Measurement}, nil
	}
	keys, err := channel.NewKeys(req.PartyID, e.cfg.Rand)
	if err != nil {
		return nil, err
	}
	e.partyID, e.manifest, e.manifestHash, e.keys, e.gov, e.peerPolicies = req.PartyID, m, hash, keys, governed, policies
	e.ceremonies = ceremonies
	e.cfg.Log.Info("initialised", "party", req.PartyID, "cluster", m.ClusterID, "manifest", fmt.Sprintf("%x", hash[:8]))
	return &api.InitResponse{Identity: keys.Public(), ManifestHash: hash, Measurement: e.cfg.Measurement}, nil
}

// readyRestored is ready, once the host has also restored the sealed state:
// nothing that decides, signs or writes the audit log may run on a state
// the sealed blobs have not yet been given the chance to replace.
func (e *Enclave) readyRestored() (string, *channel.Keys, error) {
	me, keys, err := e.ready()
	if err != nil {
		return "", nil, err
	}
	e.mu.Lock()
	restored := e.restored
	e.mu.Unlock()
	if !restored {
		return "", nil, api.Errorf(api.CodeUnavailable, "party %s: sealed state not restored yet (host must call restore)", me)
	}
	return me, keys, nil
}

// ready returns the initialised state or an error.
func (e *Enclave) ready() (string, *channel.Keys, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.keys == nil {
		return "", nil, api.Errorf(api.CodeUnavailable, "party: enclave not initialised (host must call init)")
	}
	return e.partyID, e.keys, nil
}

// identityRefresh bounds the age of the cached channel attestation we hand
// out; maxDocAge bounds the age of a peer's document we accept (live check:
// an older document is a replay, or a peer that stopped refreshing).
const (
	identityRefresh = time.Hour
	maxDocAge       = 2 * identityRefresh
)

func (e *Enclave) attest(_ context.Context, req *api.AttestRequest) (*api.AttestResponse, error) {
	_, keys, err := e.ready()
	if err != nil {
		return nil, err
	}
	if len(req.Nonce) > 512 {
		return nil, api.Errorf(api.CodeBadRequest, "party: nonce is %d bytes, limit 512", len(req.Nonce))
	}
	pub, err := api.Marshal(keys.Public())
	if err != nil {
		return nil, err
	}
	now := e.cfg.Clock()
	if req.Nonce == nil {
		e.mu.Lock()
		doc, at := e.identityDoc, e.identityAt
		e.mu.Unlock()
		if doc != nil && now.Sub(at) < identityRefresh {
			return &api.AttestResponse{Document: doc}, nil
		}
	}
	doc, err := e.cfg.Attester.Attest(pub, e.manifestHash, req.Nonce)
	if err != nil {
		return nil, api.Errorf(api.CodeAttestation, "party: attest: %v", err)
	}
	if req.Nonce == nil {
		e.mu.Lock()
		e.identityDoc, e.identityAt = doc, now
		e.mu.Unlock()
	}
	return &api.AttestResponse{Document: doc}, nil
}

// peerIdentity accepts a peer's channel keys only from evidence that
// verifies under the manifest's policy for that party (peer.Verify: its
// kind's trust anchor, its pinned PCRs), with user_data = our manifest hash
// and public_key naming that party. NSM documents must be younger than
// maxDocAge; TPM evidence, which has no wall-clock time, must not come
// from an earlier boot of its TPM than evidence already accepted
// (peer.EarlierBoot).
func (e *Enclave) peerIdentity(_ context.Context, req *api.PeerIdentityRequest) (any, error) {
	me, _, err := e.ready()
	if err != nil {
		return nil, err
	}
	if req.PartyID == me {
		return nil, api.Errorf(api.CodeBadRequest, "party: %q is this party, not a peer", req.PartyID)
	}
	e.mu.Lock()
	pol, inManifest := e.peerPolicies[req.PartyID]
	mh := e.manifestHash
	now := e.cfg.Clock()
	st := e.peerStatus[req.PartyID]
	dh := docHash(req.Document)
	sameDoc := bytes.Equal(e.peerDocs[req.PartyID], dh)
	known := sameDoc && (pol.Kind == peer.KindTPM || now.Sub(time.UnixMilli(st.DocTime)) < maxDocAge)
	lastClock, haveClock := e.peerClocks[req.PartyID]
	e.mu.Unlock()
	if !inManifest {
		return nil, api.Errorf(api.CodeBadRequest, "party: %q is not a party of cluster %q (parties: %s)", req.PartyID, e.manifest.ClusterID, strings.Join(e.manifest.PartyIDs(), ", "))
	}
	if known {
		return nil, nil
	}
	v, err := peer.Verify(req.Document, pol, peer.Expect{UserData: mh}, now, maxDocAge)
	if err == nil && v.TPMClock != nil && haveClock && peer.EarlierBoot(lastClock, *v.TPMClock) {
		err = fmt.Errorf("tpm evidence is from an earlier boot of its TPM than evidence already accepted (reset count %d restart count %d, got %d and %d): a replay",
			lastClock.ResetCount, lastClock.RestartCount, v.TPMClock.ResetCount, v.TPMClock.RestartCount)
	}
	if err != nil {
		// Whatever we knew of this peer is from an earlier boot: forget it
		// (fail closed) until it presents evidence that verifies.
		e.forgetPeer(req.PartyID)
		return nil, api.Errorf(api.CodeAttestation, "party: refusing peer %q: %v", req.PartyID, err)
	}
	var id api.Identity
	if err := api.Unmarshal(v.PublicKey, &id); err != nil {
		return nil, api.Errorf(api.CodeAttestation, "party: refusing peer %q: attested public_key is not an identity: %v", req.PartyID, err)
	}
	if id.PartyID != req.PartyID {
		return nil, api.Errorf(api.CodeAttestation, "party: refusing peer %q: its attestation names party %q", req.PartyID, id.PartyID)
	}
	cp, err := channel.NewPeer(id)
	if err != nil {
		return nil, api.Errorf(api.CodeAttestation, "party: refusing peer %q: %v", req.PartyID, err)
	}
	idx, val := peer.Measurement(v, pol)
	status := api.PeerStatus{PartyID: req.PartyID, ModuleID: v.ModuleID, VerifiedAt: now.UnixMilli(),
		Kind: v.Kind, MeasurementPCR: idx, Measurement: val}
	if v.Kind != peer.KindTPM {
		status.PCR0, status.DocTime = v.PCRs[0], v.Time.UnixMilli()
	}
	e.mu.Lock()
	e.peers[req.PartyID] = cp
	e.peerDocs[req.PartyID] = dh
	e.peerStatus[req.PartyID] = status
	if v.TPMClock != nil {
		e.peerClocks[req.PartyID] = *v.TPMClock
	}
	e.mu.Unlock()
	e.cfg.Log.Info("peer verified", "peer", req.PartyID, "kind", v.Kind, "module", v.ModuleID, fmt.Sprintf("pcr%d", idx), fmt.Sprintf("%x", val))
	return nil, nil
}

func (e *Enclave) forgetPeer(id string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.peers, id)
	delete(e.peerDocs, id)
	delete(e.peerStatus, id)
}

func (e *Enclave) status() *api.StatusResponse {
	// Before e.mu: the governance lock is taken before e.mu everywhere
	// (evaluate holds it while it reads shares).
	policyVersion := e.policyVersion()
	e.mu.Lock()
	defer e.mu.Unlock()
	keys := make([]string, 0, len(e.shares))
	for k := range e.shares {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var epochs []api.KeyEpochs
	for _, id := range keys {
		k := e.shares[id]
		epochs = append(epochs, api.KeyEpochs{KeyID: id, Epoch: k.rec.Epoch, Active: true, Parties: k.rec.Parties, Threshold: k.rec.Threshold})
	}
	for id, pend := range e.pending {
		i := slices.IndexFunc(epochs, func(ke api.KeyEpochs) bool { return ke.KeyID == id })
		if i < 0 && len(pend) > 0 {
			epochs = append(epochs, api.KeyEpochs{KeyID: id})
			i = len(epochs) - 1
		}
		for ep, k := range pend {
			epochs[i].Pending = append(epochs[i].Pending, ep)
			if !epochs[i].Active {
				epochs[i].Parties, epochs[i].Threshold = k.rec.Parties, k.rec.Threshold
			}
		}
		slices.Sort(epochs[i].Pending)
	}
	sort.Slice(epochs, func(i, j int) bool { return epochs[i].KeyID < epochs[j].KeyID })
	ready, goal := e.pool.counts()
	peers := make([]api.PeerStatus, 0, len(e.peerStatus))
	for _, p := range e.peerStatus {
		peers = append(peers, p)
	}
	sort.Slice(peers, func(i, j int) bool { return peers[i].PartyID < peers[j].PartyID })
	return &api.StatusResponse{
		PartyID:        e.partyID,
		Initialised:    e.keys != nil,
		PreParamsReady: ready,
		PreParamsGoal:  goal,
		Keys:           keys,
		Sessions:       len(e.sessions),
		Measurement:    e.cfg.Measurement,
		Peers:          peers,
		PolicyVersion:  policyVersion,
		KeyEpochs:      epochs,
	}
}

// Blob names. The host stores blobs under these names; the name is only a
// hint: each blob's sealed binding is checked against what the name claims.
const (
	shareBlobPrefix     = "share/"
	preparamsBlobPrefix = "preparams/"
	kindShare           = "tss-share"
	kindPreParams       = "paillier-preparams"
)

func (e *Enclave) restore(ctx context.Context, req *api.RestoreRequest) (*api.RestoreResponse, error) {
	me, _, err := e.ready()
	if err != nil {
		return nil, err
	}
	// Once per boot: a second restore could swap in older sealed state
	// (velocity counters, replay cache, audit head) under a running party.
	e.mu.Lock()
	again := e.restored
	e.mu.Unlock()
	if again {
		return nil, api.Errorf(api.CodeRejected, "party %s: already restored; restart the enclave to restore again", me)
	}
	resp := &api.RestoreResponse{}
	var govErr error
	var shares, govState bool
	opened := map[string][]*loadedKey{}        // key → shares opened, any epoch
	shareFail := map[string]map[uint64]error{} // key → epoch → why it did not open
	fail := func(name string, err error) {
		resp.Failed = append(resp.Failed, api.BlobFailure{Name: name, Error: err.Error()})
		e.cfg.Log.Warn("blob not restored", "blob", name, "err", err)
	}
	for _, b := range req.Blobs {
		switch {
		case strings.HasPrefix(b.Name, shareBlobPrefix):
			shares = true
			keyID, epoch, err := parseShareBlobName(b.Name)
			if err != nil {
				fail(b.Name, err)
				continue
			}
			k, err := e.openShare(me, keyID, epoch, b.Blob)
			if err != nil {
				if shareFail[keyID] == nil {
					shareFail[keyID] = map[uint64]error{}
				}
				shareFail[keyID][epoch] = err
				fail(b.Name, err)
				continue
			}
			opened[keyID] = append(opened[keyID], k)
			resp.Loaded = append(resp.Loaded, b.Name)
		case b.Name == governanceBlob:
			govState = true
			if err := e.restoreGovernance(me, b.Blob); err != nil {
				// Fail closed: without our sealed counters and policy we
				// cannot tell what we already allowed.
				govErr = err
				fail(b.Name, err)
				continue
			}
			resp.Loaded = append(resp.Loaded, b.Name)
		case strings.HasPrefix(b.Name, preparamsBlobPrefix):
			if err := e.pool.restore(me, b); err != nil {
				fail(b.Name, err)
				continue
			}
			resp.Loaded = append(resp.Loaded, b.Name)
		default:
			fail(b.Name, fmt.Errorf("party: unknown blob name"))
		}
	}
	e.placeShares(opened, shareFail)
	if e.gov != nil && shares && !govState {
		// finishKeygen stores the governance state before a share.
		govErr = fmt.Errorf("party: the host holds key shares but gave no sealed governance state (withheld or lost): the policy and velocity counters in force are unknown")
		fail(governanceBlob, govErr)
	}
	e.mu.Lock()
	first := !e.restored
	e.restored = true
	e.mu.Unlock()
	if first {
		e.auditMu.Lock()
		e.audit.tail = req.AuditTail
		e.auditMu.Unlock()
		if govErr != nil {
			e.mu.Lock()
			e.govErr = govErr.Error()
			e.mu.Unlock()
		}
	}
	if first {
		e.pool.start(me)
		go e.destroyStale(me)
	}
	return resp, nil
}

// shareBlobName is where the host stores a party's share of keyID at
// epoch: share/KEYID/EPOCH.
func shareBlobName(keyID string, epoch uint64) string {
	return fmt.Sprintf("%s%s/%d", shareBlobPrefix, keyID, epoch)
}

func parseShareBlobName(name string) (string, uint64, error) {
	keyID, ep, ok := strings.Cut(strings.TrimPrefix(name, shareBlobPrefix), "/")
	epoch, err := strconv.ParseUint(ep, 10, 64)
	if !ok || err != nil || keyID == "" || shareBlobName(keyID, epoch) != name {
		return "", 0, fmt.Errorf("party: share blob name %q is not share/KEY/EPOCH", name)
	}
	return keyID, epoch, nil
}

// sealShare seals a share record under the hardware key of its epoch,
// creating that key.
func (e *Enclave) sealShare(me string, rec *shareRecord) ([]byte, error) {
	if e.cfg.Epochs == nil {
		return nil, api.Errorf(api.CodeSealing, "party %s: no epoch-keyed sealing hardware configured: this party cannot hold key shares", me)
	}
	s, err := e.cfg.Epochs.EpochSealer(rec.KeyID, rec.Epoch, true)
	if err != nil {
		return nil, api.Errorf(api.CodeSealing, "party %s: sealing key of key %q epoch %d: %v", me, rec.KeyID, rec.Epoch, err)
	}
	pt, err := api.Marshal(rec)
	if err != nil {
		return nil, err
	}
	defer clear(pt)
	blob, err := hsm.SealBlob(s, hsm.Binding{PartyID: me, KeyID: rec.KeyID, Epoch: rec.Epoch, Kind: kindShare}, pt)
	if err != nil {
		return nil, api.Errorf(api.CodeSealing, "party %s: seal share of key %q epoch %d: %v", me, rec.KeyID, rec.Epoch, err)
	}
	return blob, nil
}

// placeShares sorts each key's restored shares into epochs: the highest
// committed one is in force, uncommitted ones above it are pending (a
// reshare awaiting its commit), the rest are superseded and destroyed in
// the background. A key with no committed share that opened is unusable,
// with the reason.
func (e *Enclave) placeShares(opened map[string][]*loadedKey, failed map[string]map[uint64]error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	keys := map[string]bool{}
	for k := range opened {
		keys[k] = true
	}
	for k := range failed {
		keys[k] = true
	}
	for keyID := range keys {
		var active *loadedKey
		for _, k := range opened[keyID] {
			if k.rec.committed() && (active == nil || k.rec.Epoch > active.rec.Epoch) {
				active = k
			}
		}
		for _, k := range opened[keyID] {
			switch {
			case k == active:
			case !k.rec.committed() && (active == nil || k.rec.Epoch > active.rec.Epoch):
				if e.pending[keyID] == nil {
					e.pending[keyID] = map[uint64]*loadedKey{}
				}
				e.pending[keyID][k.rec.Epoch] = k
			default:
				if e.stale[keyID] == nil {
					e.stale[keyID] = map[uint64]bool{}
				}
				e.stale[keyID][k.rec.Epoch] = true
			}
		}
		var reasons []string
		for ep, err := range failed[keyID] {
			if active != nil && ep < active.rec.Epoch {
				// An epoch this party destroyed after a later commit, whose
				// blob the host kept (or handed back).
				if e.stale[keyID] == nil {
					e.stale[keyID] = map[uint64]bool{}
				}
				e.stale[keyID][ep] = true
				continue
			}
			reasons = append(reasons, fmt.Sprintf("epoch %d: %v", ep, err))
		}
		sort.Strings(reasons)
		switch {
		case active != nil && len(reasons) == 0:
			e.shares[keyID] = active
			delete(e.shareErrs, keyID)
		case active != nil:
			// A later epoch did not open: which one is in force is unknown.
			e.shareErrs[keyID] = strings.Join(reasons, "; ")
		case len(reasons) > 0:
			e.shareErrs[keyID] = strings.Join(reasons, "; ")
		case len(e.pending[keyID]) > 0:
			e.shareErrs[keyID] = "only uncommitted reshared epochs are held: the reshare's commit has not reached this party (rerun the refresh or reshare to complete it)"
		}
	}
}

func (e *Enclave) openShare(me, keyID string, epoch uint64, blob []byte) (*loadedKey, error) {
	if e.cfg.Epochs == nil {
		return nil, fmt.Errorf("party %s: no epoch-keyed sealing hardware configured: cannot open key shares", me)
	}
	s, err := e.cfg.Epochs.EpochSealer(keyID, epoch, false)
	if err != nil {
		return nil, err
	}
	pt, err := hsm.OpenBlob(s, hsm.Binding{PartyID: me, KeyID: keyID, Epoch: epoch, Kind: kindShare}, blob)
	if err != nil {
		return nil, err
	}
	defer clear(pt)
	rec := new(shareRecord)
	if err := api.Unmarshal(pt, rec); err != nil {
		return nil, fmt.Errorf("party: share for key %q: malformed record: %v", keyID, err)
	}
	if rec.KeyID != keyID || rec.Epoch != epoch {
		return nil, fmt.Errorf("party: share record names key %q epoch %d, stored as %q epoch %d", rec.KeyID, rec.Epoch, keyID, epoch)
	}
	return rec.load()
}

func docHash(doc []byte) []byte {
	return session.ProposalID(append([]byte("peer-doc\x00"), doc...))
}
