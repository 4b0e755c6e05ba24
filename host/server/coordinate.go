package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sealsign/sealsign/enclave/api"
	"github.com/sealsign/sealsign/enclave/session"
	"github.com/sealsign/sealsign/host/store"
)

// Session time limits, end to end (the enclaves' own inactivity timeouts
// fire first and name the late party).
const (
	keygenDeadline = 10 * time.Minute
	signDeadline   = 5 * time.Minute
	probeTimeout   = 3 * time.Second
)

// CreateKey runs a distributed key generation among every party of the
// cluster, coordinated from this host. It returns once every party's enclave
// has sealed its share and its host has stored it. ceremony is the admin
// quorum's signed authorisation, relayed to the enclaves, which verify it
// (a governed cluster refuses keygen without one).
func (s *Server) CreateKey(ctx context.Context, algorithm string, ceremony []byte) (store.Key, error) {
	return s.CreateKeyAmong(ctx, algorithm, ceremony, nil, 0)
}

// CreateKeyAmong is CreateKey for the committee parties at threshold (a
// governed keygen: its ceremony names them); nil parties means every
// party of the cluster at the manifest's threshold.
func (s *Server) CreateKeyAmong(ctx context.Context, algorithm string, ceremony []byte, parties []string, threshold int) (store.Key, error) {
	switch algorithm {
	case api.AlgECDSASecp256k1, api.AlgEdDSAEd25519:
	default:
		return store.Key{}, api.Errorf(api.CodeBadRequest, "server: algorithm %q unsupported (want %s or %s)", algorithm, api.AlgECDSASecp256k1, api.AlgEdDSAEd25519)
	}
	ctx, cancel := context.WithTimeout(ctx, keygenDeadline)
	defer cancel()
	if len(parties) == 0 {
		parties = s.manifest.PartyIDs()
	}
	parties = slices.Clone(parties)
	sort.Strings(parties)
	if !slices.Contains(parties, s.cfg.PartyID) {
		return store.Key{}, api.Errorf(api.CodeBadRequest, "server: this host's party %q must be in the keygen committee %v (send the request to a member's host)", s.cfg.PartyID, parties)
	}
	docs, err := s.collectDocs(ctx, others(parties, s.cfg.PartyID), true)
	if err != nil {
		return store.Key{}, err
	}
	results, err := s.coordinate(ctx, api.ProposeRequest{Kind: api.KindKeygen, Algorithm: algorithm, Parties: parties, Threshold: threshold, Ceremony: ceremony}, docs)
	if err != nil {
		return store.Key{}, err
	}
	mine := results[s.cfg.PartyID]
	for p, r := range results {
		if !bytes.Equal(r.PublicKey, mine.PublicKey) || r.KeyID != mine.KeyID {
			return store.Key{}, api.Errorf(api.CodeSession, "server: keygen finished with different public keys on %s and %s", s.cfg.PartyID, p)
		}
	}
	k := s.recordKey(mine)
	return k, nil
}

func (s *Server) recordKey(r *api.SessionResult) store.Key {
	k := store.Key{ID: r.KeyID, Algorithm: r.Algorithm, PublicKey: r.PublicKey, Threshold: r.Threshold, Parties: r.Parties, Created: time.Now().UTC()}
	if err := s.cfg.Store.PutKey(k); err != nil {
		// The sealed share is stored (the enclave made sure); metadata is
		// derivable from it, so this is reported but not fatal.
		s.cfg.Log.Error("store key metadata", "key", k.ID, "err", err)
	}
	return k
}

// signGoverned runs a threshold signing of a client-signed request among
// signers (chooseSigners). Every signer's enclave decides for itself
// whether to take part.
func (s *Server) signGoverned(ctx context.Context, k store.Key, signers []string, docs map[string][]byte, signed []byte, approvals [][]byte) (*api.SessionResult, error) {
	ctx, cancel := context.WithTimeout(ctx, signDeadline)
	defer cancel()
	results, err := s.coordinate(ctx, api.ProposeRequest{Kind: api.KindSign, Algorithm: k.Algorithm, KeyID: k.ID, Parties: signers, Request: signed, Approvals: approvals}, docs)
	if err != nil {
		// Our enclave verified its signatures before returning them: if it
		// finished, the signature exists (and the request id is spent), so
		// losing it over a later failure elsewhere would only invite a
		// second signing of the same payload under a new request.
		if mine := results[s.cfg.PartyID]; mine != nil && len(mine.Signatures) == len(mine.Digests) && len(mine.Signatures) > 0 {
			s.cfg.Log.Warn("signing finished here but failed on another signer", "request", mine.RequestID, "err", err)
			return mine, nil
		}
		return nil, err
	}
	mine := results[s.cfg.PartyID]
	for p, r := range results {
		if !slices.EqualFunc(r.Signatures, mine.Signatures, bytes.Equal) || !bytes.Equal(r.Transaction, mine.Transaction) {
			return nil, api.Errorf(api.CodeSession, "server: signers %s and %s produced different signatures", s.cfg.PartyID, p)
		}
	}
	return mine, nil
}

// chooseSigners picks exactly t+1 signers — the given ones, or this party
// plus the first reachable others in manifest order — and fetches their
// attestation documents.
func (s *Server) chooseSigners(ctx context.Context, k store.Key, signers []string) ([]string, map[string][]byte, error) {
	if len(signers) > 0 {
		signers = slices.Clone(signers)
		sort.Strings(signers)
		if !slices.Contains(signers, s.cfg.PartyID) {
			return nil, nil, api.Errorf(api.CodeBadRequest, "server: this host's party %q must be one of the signers (send the request to a signer's host)", s.cfg.PartyID)
		}
		if len(signers) != k.Threshold+1 {
			return nil, nil, api.Errorf(api.CodeBadRequest, "server: key %q needs exactly %d signers, got %d", k.ID, k.Threshold+1, len(signers))
		}
		docs, err := s.collectDocs(ctx, others(signers, s.cfg.PartyID), true)
		return signers, docs, err
	}
	docs, err := s.collectDocs(ctx, others(k.Parties, s.cfg.PartyID), false)
	if err != nil {
		return nil, nil, err
	}
	signers = []string{s.cfg.PartyID}
	for _, p := range k.Parties {
		if _, ok := docs[p]; ok && len(signers) < k.Threshold+1 {
			signers = append(signers, p)
		}
	}
	if len(signers) < k.Threshold+1 {
		return nil, nil, api.Errorf(api.CodeUnavailable, "server: only %d of the %d parties needed to sign key %q are reachable (%s)", len(signers), k.Threshold+1, k.ID, strings.Join(signers, ", "))
	}
	sort.Strings(signers)
	return signers, docs, nil
}

func others(parties []string, me string) []string {
	var out []string
	for _, p := range parties {
		if p != me {
			out = append(out, p)
		}
	}
	return out
}

// collectDocs fetches the current attestation document of each party and
// hands it to our enclave, which verifies it. With all=true every party
// must answer; otherwise unreachable or refused parties are skipped.
func (s *Server) collectDocs(ctx context.Context, parties []string, all bool) (map[string][]byte, error) {
	type res struct {
		party string
		doc   []byte
		err   error
	}
	ch := make(chan res, len(parties))
	for _, p := range parties {
		go func() {
			pctx, cancel := context.WithTimeout(ctx, probeTimeout)
			defer cancel()
			var body identityBody
			err := s.peerCall(pctx, p, "/v1/peer/identity", nil, &body)
			if err == nil && body.PartyID != p {
				err = fmt.Errorf("party %s: host answers as party %q", p, body.PartyID)
			}
			if err == nil {
				err = s.enclave.Call(ctx, api.MethodPeerIdentity, api.PeerIdentityRequest{PartyID: p, Document: body.Document}, nil)
			}
			ch <- res{p, body.Document, err}
		}()
	}
	docs := map[string][]byte{}
	var errs []string
	var firstErr error
	for range parties {
		r := <-ch
		if r.err != nil {
			s.cfg.Log.Warn("peer not usable", "peer", r.party, "err", r.err)
			errs = append(errs, r.err.Error())
			if firstErr == nil {
				firstErr = r.err
			}
			continue
		}
		docs[r.party] = r.doc
	}
	if all && len(errs) > 0 {
		sort.Strings(errs)
		code := api.CodeUnavailable
		if c := api.CodeOf(firstErr); c == api.CodeAttestation {
			code = c
		}
		return nil, api.Errorf(code, "server: %s", strings.Join(errs, "; "))
	}
	return docs, nil
}

// refreshPeers fetches and pushes the current documents of parties, or
// pushes the given ones.
func (s *Server) refreshPeers(ctx context.Context, parties []string, given map[string][]byte) error {
	if given == nil {
		_, err := s.collectDocs(ctx, parties, true)
		return err
	}
	for _, p := range parties {
		doc, ok := given[p]
		if !ok {
			return api.Errorf(api.CodeBadRequest, "server: coordinator sent no attestation for party %q", p)
		}
		if err := s.enclave.Call(ctx, api.MethodPeerIdentity, api.PeerIdentityRequest{PartyID: p, Document: doc}, nil); err != nil {
			return err
		}
	}
	return nil
}

// coordinate has our enclave propose a session, then runs it on our enclave
// and every other party at once, and collects every party's result.
func (s *Server) coordinate(ctx context.Context, req api.ProposeRequest, docs map[string][]byte) (map[string]*api.SessionResult, error) {
	var prop api.ProposeResponse
	if err := s.enclave.Call(ctx, api.MethodPropose, req, &prop); err != nil {
		return nil, err
	}
	// Peers get every signer's document, including ours.
	var own api.AttestResponse
	if err := s.enclave.Call(ctx, api.MethodAttest, api.AttestRequest{}, &own); err != nil {
		return nil, err
	}
	all := map[string][]byte{s.cfg.PartyID: own.Document}
	for p, d := range docs {
		all[p] = d
	}
	var (
		mu      sync.Mutex
		results = map[string]*api.SessionResult{}
		errs    = map[string]error{}
		wg      sync.WaitGroup
	)
	// The first party to fail fails the session: the others are not kept
	// waiting for it until their enclaves' inactivity timeouts.
	ctx, cancelAll := context.WithCancel(ctx)
	defer cancelAll()
	for _, p := range req.Parties {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var res api.SessionResult
			var err error
			if p == s.cfg.PartyID {
				err = s.enclave.Call(ctx, api.MethodRun, api.RunRequest{Proposal: prop.Proposal}, &res)
				if err != nil && ctx.Err() != nil {
					s.abortRun(prop.ID, "another party failed")
				}
			} else {
				err = s.peerCall(ctx, p, "/v1/peer/run", runBody{Proposal: prop.Proposal, Docs: all}, &res)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if len(errs) == 0 || !errors.Is(err, context.Canceled) {
					errs[p] = err
				}
				cancelAll()
				return
			}
			results[p] = &res
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		var parts []string
		code := api.CodeSession
		for p, e := range errs {
			parts = append(parts, fmt.Sprintf("[%s] %v", p, e))
			var ae *api.Error
			if errors.As(e, &ae) && p == s.cfg.PartyID && ae.Code != api.CodeSession {
				code = ae.Code
			}
		}
		sort.Strings(parts)
		// The results of the parties that finished go back too: a signing
		// may have completed on some (see signGoverned).
		return results, api.Errorf(code, "server: %s %s failed: %s", req.Kind, req.Algorithm, strings.Join(parts, "; "))
	}
	return results, nil
}

// runAsPeer joins a session another host coordinates.
func (s *Server) runAsPeer(ctx context.Context, req runBody) (*api.SessionResult, error) {
	var parties []string
	for p := range req.Docs {
		if p != s.cfg.PartyID {
			parties = append(parties, p)
		}
	}
	if err := s.refreshPeers(ctx, parties, req.Docs); err != nil {
		return nil, err
	}
	var res api.SessionResult
	if err := s.enclave.Call(ctx, api.MethodRun, api.RunRequest{Proposal: req.Proposal}, &res); err != nil {
		if ctx.Err() != nil {
			// The coordinator gave up (its request was cancelled): end the
			// session here too rather than hold it until it times out.
			if sp, _, perr := session.ParseProposal(req.Proposal); perr == nil {
				s.abortRun(session.ProposalID(sp.Body), "the coordinator gave up")
			}
		}
		return nil, err
	}
	if res.Kind == api.KindKeygen {
		s.recordKey(&res)
	}
	return &res, nil
}

// abortRun asks our enclave to end the run of a proposal (best effort).
func (s *Server) abortRun(pid []byte, reason string) {
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	if err := s.enclave.Call(ctx, api.MethodAbort, api.AbortRequest{ProposalID: pid, Reason: reason}, nil); err != nil && api.CodeOf(err) != api.CodeNotFound {
		s.cfg.Log.Warn("session not aborted", "proposal", fmt.Sprintf("%x", pid[:min(8, len(pid))]), "err", err)
	}
}

// envelopeSender reads the (unauthenticated) sender of an envelope, for
// routing decisions only.
func envelopeSender(raw []byte) string {
	var env api.Envelope
	if err := api.Unmarshal(raw, &env); err != nil {
		return ""
	}
	return env.Header.From
}
