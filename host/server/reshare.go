package server

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/sealsign/sealsign/enclave/api"
	"github.com/sealsign/sealsign/host/store"
)

// reshareDeadline bounds a refresh or reshare, session and commit.
const reshareDeadline = 10 * time.Minute

// ReshareRequest is the body of POST /v1/keys/{id}/reshare.
type ReshareRequest struct {
	// Ceremony is the admin quorum's signed refresh or reshare ceremony
	// for the key at its current epoch. JSON encodes it as base64.
	Ceremony []byte `json:"ceremony,omitempty"`
	// NewParties and NewThreshold are the committee to move the key to;
	// empty for a refresh (same committee, same threshold).
	NewParties   []string `json:"new_parties,omitempty"`
	NewThreshold int      `json:"new_threshold,omitempty"`
}

// ReshareResponse reports a finished refresh or reshare.
type ReshareResponse struct {
	Key   KeyJSON `json:"key"`
	Epoch uint64  `json:"epoch"`
	// Resumed: an interrupted reshare to Epoch was found (its shares held
	// pending) and its commit completed; no new session ran and the
	// ceremony given was not used.
	Resumed bool                        `json:"resumed"`
	Commits []api.ReshareCommitResponse `json:"commits"`
}

type reshareCommitBody struct {
	KeyID string            `json:"key_id"`
	Acks  []api.ReshareAck  `json:"acks"`
	Docs  map[string][]byte `json:"docs"` // attestation of every ack's signer
}

func (s *Server) reshareKey(w http.ResponseWriter, r *http.Request) {
	var req ReshareRequest
	if err := decodeJSON(r, &req); err != nil {
		writeError(w, err)
		return
	}
	res, err := s.Reshare(r.Context(), r.PathValue("id"), req)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// Reshare refreshes a key (same committee) or moves it to a new committee,
// coordinated from this host, whose party must hold a share. If an earlier
// reshare of the key was interrupted after its session — some party holds
// a pending epoch above the key's — it completes that one's commit instead
// (rerunning is how an interrupted ceremony is finished).
func (s *Server) Reshare(ctx context.Context, keyID string, req ReshareRequest) (*ReshareResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, reshareDeadline)
	defer cancel()
	statuses := s.keyStatuses(ctx, keyID)
	mine, ok := statuses[s.cfg.PartyID]
	if !ok || !mine.Active {
		return nil, api.Errorf(api.CodeBadRequest, "server: this host's party %q holds no share of key %q in force: coordinate from a member of its committee", s.cfg.PartyID, keyID)
	}
	highest := mine.Epoch
	incomplete := false
	for _, st := range statuses {
		for _, ep := range st.Pending {
			highest = max(highest, ep)
		}
		if st.Active {
			highest = max(highest, st.Epoch)
		}
	}
	for _, st := range statuses {
		if (st.Active && st.Epoch < highest) || slices.Contains(st.Pending, highest) {
			incomplete = true
		}
	}
	if incomplete && highest > 0 {
		res, err := s.resumeReshare(ctx, keyID, highest, statuses)
		if err == nil {
			return res, nil
		}
		s.cfg.Log.Warn("interrupted reshare cannot be completed; starting a new one", "key", keyID, "epoch", highest, "err", err)
		if mine.Epoch >= highest {
			// We committed it already: the others must follow, not restart.
			return nil, err
		}
	}
	return s.freshReshare(ctx, keyID, mine, highest+1, req)
}

// keyStatuses asks every party of the cluster for its epochs of keyID
// (unreachable parties and parties without the key are left out).
func (s *Server) keyStatuses(ctx context.Context, keyID string) map[string]api.KeyEpochs {
	out := map[string]api.KeyEpochs{}
	for _, p := range s.manifest.PartyIDs() {
		var st api.StatusResponse
		var err error
		pctx, cancel := context.WithTimeout(ctx, probeTimeout)
		if p == s.cfg.PartyID {
			err = s.enclave.Call(pctx, api.MethodStatus, nil, &st)
		} else {
			err = s.peerCall(pctx, p, "/v1/peer/status", nil, &st)
		}
		cancel()
		if err != nil {
			s.cfg.Log.Warn("party status unavailable", "party", p, "err", err)
			continue
		}
		for _, ke := range st.KeyEpochs {
			if ke.KeyID == keyID {
				out[p] = ke
			}
		}
	}
	return out
}

func (s *Server) freshReshare(ctx context.Context, keyID string, mine api.KeyEpochs, newEpoch uint64, req ReshareRequest) (*ReshareResponse, error) {
	k, err := s.cfg.Store.Key(keyID)
	if err != nil {
		return nil, err
	}
	newParties, newT := slices.Clone(req.NewParties), req.NewThreshold
	if len(newParties) == 0 {
		newParties, newT = slices.Clone(mine.Parties), mine.Threshold
	}
	sort.Strings(newParties)
	all := union(mine.Parties, newParties)
	// Every party of both committees is attested before anything is sent:
	// the enclaves verify each document under the manifest's policy.
	docs, err := s.collectDocs(ctx, others(all, s.cfg.PartyID), true)
	if err != nil {
		return nil, err
	}
	results, err := s.coordinate(ctx, api.ProposeRequest{Kind: api.KindReshare, Algorithm: k.Algorithm, KeyID: keyID, Parties: all,
		NewParties: newParties, NewThreshold: newT, NewEpoch: newEpoch, Ceremony: req.Ceremony}, docs)
	if err != nil {
		return nil, api.Errorf(api.CodeOf(err), "%v (nothing was destroyed: the key stays at epoch %d; rerun to try again)", err, mine.Epoch)
	}
	var acks []api.ReshareAck
	for _, p := range newParties {
		r := results[p]
		if r == nil || r.Ack == nil {
			return nil, api.Errorf(api.CodeSession, "server: new committee member %s returned no ack (nothing was destroyed; rerun to complete)", p)
		}
		acks = append(acks, *r.Ack)
	}
	commits, err := s.commitAll(ctx, keyID, acks, all)
	if err != nil {
		return nil, err
	}
	return s.reshareResult(keyID, commits, false)
}

// resumeReshare completes the commit of epoch of keyID: it gathers the
// ack of every member of that epoch's committee (from their current boots)
// and commits on them and on every party still holding the key.
func (s *Server) resumeReshare(ctx context.Context, keyID string, epoch uint64, statuses map[string]api.KeyEpochs) (*ReshareResponse, error) {
	// The committee of the epoch is in its members' acks.
	var holders []string
	for p, st := range statuses {
		if slices.Contains(st.Pending, epoch) || (st.Active && st.Epoch == epoch) {
			holders = append(holders, p)
		}
	}
	sort.Strings(holders)
	if len(holders) == 0 {
		return nil, fmt.Errorf("server: no party holds epoch %d of key %q", epoch, keyID)
	}
	first, err := s.gatherAcks(ctx, keyID, epoch, holders[:1])
	if err != nil {
		return nil, err
	}
	var st api.ReshareStatement
	if err := api.Unmarshal(first[0].Statement, &st); err != nil {
		return nil, fmt.Errorf("server: party %s's ack: %v", holders[0], err)
	}
	acks, err := s.gatherAcks(ctx, keyID, epoch, st.NewParties)
	if err != nil {
		return nil, err
	}
	parties := slices.Clone(st.NewParties)
	for p, ke := range statuses {
		if ke.Active {
			parties = union(parties, []string{p})
		}
	}
	commits, err := s.commitAll(ctx, keyID, acks, parties)
	if err != nil {
		return nil, err
	}
	return s.reshareResult(keyID, commits, true)
}

func (s *Server) gatherAcks(ctx context.Context, keyID string, epoch uint64, members []string) ([]api.ReshareAck, error) {
	var acks []api.ReshareAck
	var missing []string
	for _, p := range members {
		var a api.ReshareAck
		var err error
		req := api.ReshareAckRequest{KeyID: keyID, Epoch: epoch}
		if p == s.cfg.PartyID {
			err = s.enclave.Call(ctx, api.MethodReshareAck, req, &a)
		} else {
			err = s.peerCall(ctx, p, "/v1/peer/reshare-ack", req, &a)
		}
		if err != nil {
			missing = append(missing, fmt.Sprintf("%s: %v", p, err))
			continue
		}
		acks = append(acks, a)
	}
	if len(missing) > 0 {
		return nil, api.Errorf(api.CodeUnavailable, "server: epoch %d of key %q is not held by every member of its committee: %s", epoch, keyID, strings.Join(missing, "; "))
	}
	return acks, nil
}

// commitAll hands the acks to every party (ours and the peers, with the
// attestation documents of the ack signers so each enclave can check
// them) and returns what each did. It goes on past a failing party, so one
// party down does not stop the others; a rerun reaches it later.
func (s *Server) commitAll(ctx context.Context, keyID string, acks []api.ReshareAck, parties []string) ([]api.ReshareCommitResponse, error) {
	var signers []string
	for _, a := range acks {
		signers = append(signers, a.PartyID)
	}
	docs, err := s.collectDocs(ctx, others(union(signers, parties), s.cfg.PartyID), true)
	if err != nil {
		return nil, api.Errorf(api.CodeOf(err), "server: commit of key %q: %v (nothing was destroyed yet; rerun to complete)", keyID, err)
	}
	var own api.AttestResponse
	if err := s.enclave.Call(ctx, api.MethodAttest, api.AttestRequest{}, &own); err != nil {
		return nil, err
	}
	docs[s.cfg.PartyID] = own.Document
	var out []api.ReshareCommitResponse
	var errs []string
	for _, p := range parties {
		var r api.ReshareCommitResponse
		var err error
		if p == s.cfg.PartyID {
			r, err = s.commitLocal(ctx, keyID, acks)
		} else {
			err = s.peerCall(ctx, p, "/v1/peer/reshare-commit", reshareCommitBody{KeyID: keyID, Acks: acks, Docs: docs}, &r)
		}
		if err != nil {
			errs = append(errs, fmt.Sprintf("[%s] %v", p, err))
			continue
		}
		out = append(out, r)
	}
	if len(errs) > 0 {
		return out, api.Errorf(api.CodeUnavailable, "server: commit of key %q did not reach every party (%d of %d done; rerun to complete it): %s", keyID, len(out), len(parties), strings.Join(errs, "; "))
	}
	return out, nil
}

// commitLocal commits on this party's enclave and records the outcome in
// this host's key metadata.
func (s *Server) commitLocal(ctx context.Context, keyID string, acks []api.ReshareAck) (api.ReshareCommitResponse, error) {
	var r api.ReshareCommitResponse
	if err := s.enclave.Call(ctx, api.MethodReshareCommit, api.ReshareCommitRequest{KeyID: keyID, Acks: acks}, &r); err != nil {
		return r, err
	}
	if r.Outcome == "removed" {
		if err := s.cfg.Store.DeleteKey(keyID); err != nil {
			s.cfg.Log.Error("delete key metadata", "key", keyID, "err", err)
		}
		return r, nil
	}
	k, err := s.cfg.Store.Key(keyID)
	if err != nil {
		k = store.Key{ID: keyID, Created: time.Now().UTC()}
	}
	k.Algorithm, k.PublicKey, k.Threshold, k.Parties, k.Epoch = r.Algorithm, r.PublicKey, r.Threshold, r.Parties, r.Epoch
	if err := s.cfg.Store.PutKey(k); err != nil {
		s.cfg.Log.Error("store key metadata", "key", keyID, "err", err)
	}
	return r, nil
}

func (s *Server) reshareResult(keyID string, commits []api.ReshareCommitResponse, resumed bool) (*ReshareResponse, error) {
	res := &ReshareResponse{Resumed: resumed, Commits: commits}
	for _, c := range commits {
		if c.Outcome != "removed" {
			res.Epoch = c.Epoch
			if !bytes.Equal(c.PublicKey, commits[0].PublicKey) {
				return nil, api.Errorf(api.CodeSession, "server: parties committed different public keys for key %q", keyID)
			}
		}
	}
	k, err := s.cfg.Store.Key(keyID)
	if err != nil {
		return res, nil // this party was removed
	}
	res.Key = keyJSON(k)
	return res, nil
}

func (s *Server) peerStatus(w http.ResponseWriter, r *http.Request) {
	var st api.StatusResponse
	if err := s.enclave.Call(r.Context(), api.MethodStatus, nil, &st); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) peerReshareAck(w http.ResponseWriter, r *http.Request) {
	var req api.ReshareAckRequest
	if err := decodeJSON(r, &req); err != nil {
		writeError(w, err)
		return
	}
	var a api.ReshareAck
	if err := s.enclave.Call(r.Context(), api.MethodReshareAck, req, &a); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, a)
}

func (s *Server) peerReshareCommit(w http.ResponseWriter, r *http.Request) {
	var req reshareCommitBody
	if err := decodeJSON(r, &req); err != nil {
		writeError(w, err)
		return
	}
	var parties []string
	for p := range req.Docs {
		if p != s.cfg.PartyID {
			parties = append(parties, p)
		}
	}
	sort.Strings(parties)
	if err := s.refreshPeers(r.Context(), parties, req.Docs); err != nil {
		writeError(w, err)
		return
	}
	res, err := s.commitLocal(r.Context(), req.KeyID, req.Acks)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func union(a, b []string) []string {
	u := slices.Concat(a, b)
	sort.Strings(u)
	return slices.Compact(u)
}
