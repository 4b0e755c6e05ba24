package server

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sealsign/sealsign/enclave/api"
	"github.com/sealsign/sealsign/governance/policy"
	"github.com/sealsign/sealsign/governance/request"
	"github.com/sealsign/sealsign/host/store"
)

// The host tracks requests for clients and approvers; it decides nothing.
// Every verdict comes from an enclave, every party's own enclave decides
// again when the session is proposed, and a host that lies here only makes
// requests fail.

// requestLocks serialises work on one request id.
type requestLocks struct {
	mu    sync.Mutex
	locks map[string]*sync.Mutex
}

func (l *requestLocks) lock(id string) func() {
	l.mu.Lock()
	if l.locks == nil {
		l.locks = map[string]*sync.Mutex{}
	}
	m, ok := l.locks[id]
	if !ok {
		m = &sync.Mutex{}
		l.locks[id] = m
	}
	l.mu.Unlock()
	m.Lock()
	return m.Unlock
}

// peekRequest reads a signed request's id, key and client without verifying
// it (the enclaves verify); the host needs them only to file it.
func peekRequest(signed []byte) (*request.Request, error) {
	var sr request.Signed
	if err := api.Unmarshal(signed, &sr); err != nil {
		return nil, api.Errorf(api.CodeBadRequest, "server: not a signed request: %v", err)
	}
	var r request.Request
	if err := api.Unmarshal(sr.Request, &r); err != nil {
		return nil, api.Errorf(api.CodeBadRequest, "server: not a signed request: %v", err)
	}
	if !request.ValidID(r.ID) {
		return nil, api.Errorf(api.CodeBadRequest, "server: request id %q invalid", r.ID)
	}
	return &r, nil
}

func (s *Server) loadRequest(id string) (*RequestStatus, error) {
	b, err := s.cfg.Store.Request(id)
	if err != nil {
		return nil, err
	}
	st := new(RequestStatus)
	if err := json.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("server: stored request %s: %v", id, err)
	}
	return st, nil
}

func (s *Server) saveRequest(st *RequestStatus) error {
	st.Updated = time.Now().UTC()
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return s.cfg.Store.PutRequest(st.RequestID, b)
}

func (s *Server) submitRequest(w http.ResponseWriter, r *http.Request) {
	var body SubmitRequest
	if err := decodeJSON(r, &body); err != nil {
		writeError(w, err)
		return
	}
	req, err := peekRequest(body.Request)
	if err != nil {
		writeError(w, err)
		return
	}
	defer s.reqLocks.lock(req.ID)()
	if old, err := s.loadRequest(req.ID); err == nil {
		if !bytes.Equal(old.Request, body.Request) {
			writeError(w, api.Errorf(api.CodeStale, "server: request id %s is already taken by another request", req.ID))
			return
		}
		writeStatus(w, old) // a resend: the answer it had
		return
	} else if !errors.Is(err, store.ErrNotFound) {
		writeError(w, err)
		return
	}
	d := request.Digest(body.Request)
	st := &RequestStatus{RequestID: req.ID, KeyID: req.KeyID, ClientKeyID: req.ClientKeyID, Request: body.Request,
		RequestDigest: hex.EncodeToString(d[:]), ExpiresAt: req.ExpiresAt, State: StatePending}
	// A request the enclave cannot attribute to a client (bad signature,
	// unknown key, expired, replayed) is refused outright and not filed.
	if err := s.process(r.Context(), st, req.Signers, true); err != nil {
		writeError(w, err)
		return
	}
	if err := s.saveRequest(st); err != nil {
		writeError(w, err)
		return
	}
	writeStatus(w, st)
}

func (s *Server) approveRequest(w http.ResponseWriter, r *http.Request) {
	var body ApprovalSubmit
	if err := decodeJSON(r, &body); err != nil {
		writeError(w, err)
		return
	}
	if len(body.Approval) == 0 {
		writeError(w, api.Errorf(api.CodeBadRequest, "server: empty approval"))
		return
	}
	id := r.PathValue("id")
	defer s.reqLocks.lock(id)()
	st, err := s.loadRequest(id)
	if err != nil {
		writeError(w, err)
		return
	}
	switch st.State {
	case StateSigned, StateDenied, StateRejected:
		writeError(w, api.Errorf(api.CodeStale, "server: request %s is already %s", id, st.State))
		return
	}
	if !slices.ContainsFunc(st.Approvals, func(a []byte) bool { return bytes.Equal(a, body.Approval) }) {
		if len(st.Approvals) >= 64 {
			writeError(w, api.Errorf(api.CodeBadRequest, "server: request %s holds 64 approvals already", id))
			return
		}
		st.Approvals = append(st.Approvals, body.Approval)
	}
	req, err := peekRequest(st.Request)
	if err != nil {
		writeError(w, err)
		return
	}
	if err := s.process(r.Context(), st, req.Signers, false); err != nil {
		// The request itself is no longer acceptable (expired, say).
		st.State, st.Error = StateFailed, err.Error()
	}
	if err := s.saveRequest(st); err != nil {
		writeError(w, err)
		return
	}
	writeStatus(w, st)
}

// process asks the enclaves for their verdicts and, when every signer
// allows, runs the signing. The returned error means the request could not
// be evaluated at all (refused, unreachable); outcomes go into st.
func (s *Server) process(ctx context.Context, st *RequestStatus, signers []string, first bool) error {
	var own api.Verdict
	if err := s.enclave.Call(ctx, api.MethodEvaluate, api.EvaluateRequest{Request: st.Request, Approvals: st.Approvals, Record: true}, &own); err != nil {
		return err
	}
	st.Verdicts = []api.Verdict{own}
	st.PayloadHash, st.PolicyVersion, st.Error = hex.EncodeToString(own.PayloadHash), own.PolicyVersion, ""
	if own.Outcome != api.OutcomeAllow {
		st.State, st.Error = verdictState(&own), own.Explain()
		return nil
	}
	k, err := s.cfg.Store.Key(st.KeyID)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, signDeadline)
	defer cancel()
	signers, docs, err := s.chooseSigners(ctx, k, signers)
	if err != nil {
		if api.CodeOf(err) == api.CodeBadRequest {
			return err // the request names an impossible signer set
		}
		st.State, st.Error = StateFailed, err.Error()
		return nil
	}
	// Ask every other signer for its own verdict first, so a party that
	// would refuse is named before anything is spent.
	for _, p := range others(signers, s.cfg.PartyID) {
		var v api.Verdict
		if err := s.peerCall(ctx, p, "/v1/peer/evaluate", peerEvaluateBody{Request: st.Request, Approvals: st.Approvals, Record: true}, &v); err != nil {
			st.State, st.Error = StateFailed, err.Error()
			return nil
		}
		st.Verdicts = append(st.Verdicts, v)
		if v.Outcome != api.OutcomeAllow {
			st.State, st.Error = verdictState(&v), v.Explain()
			return nil
		}
		if v.PolicyVersion != own.PolicyVersion || !bytes.Equal(v.PayloadHash, own.PayloadHash) {
			st.State, st.Error = StateFailed, fmt.Sprintf("party %s evaluates under policy v%d, payload %x; party %s under v%d, payload %x: the parties disagree, not signing", p, v.PolicyVersion, v.PayloadHash, s.cfg.PartyID, own.PolicyVersion, own.PayloadHash)
			return nil
		}
	}
	res, err := s.signGoverned(ctx, k, signers, docs, st.Request, st.Approvals)
	if err != nil {
		st.State, st.Error = StateFailed, err.Error()
		return nil
	}
	st.State = StateSigned
	st.Result = &SignResult{Algorithm: res.Algorithm, PublicKey: hex.EncodeToString(res.PublicKey), Signers: res.Parties,
		SessionID: hex.EncodeToString(res.SessionID), RuleID: res.RuleID, RecoveryIDs: res.RecoveryIDs, Transaction: hex.EncodeToString(res.Transaction),
		DerivationPath: res.DerivationPath}
	if res.Algorithm != api.AlgECDSASecp256k1 {
		st.Result.RecoveryIDs = nil
	}
	for i := range res.Digests {
		st.Result.Digests = append(st.Result.Digests, hex.EncodeToString(res.Digests[i]))
		st.Result.Signatures = append(st.Result.Signatures, hex.EncodeToString(res.Signatures[i]))
	}
	return nil
}

func verdictState(v *api.Verdict) string {
	switch v.Outcome {
	case api.OutcomeNeedsApproval:
		return StatePending
	case api.OutcomeAllow:
		return StateSigned
	}
	for _, d := range v.Denials {
		if d.Code == string(policy.Rejected) {
			return StateRejected
		}
	}
	return StateDenied
}

// writeStatus answers with a request's status: 200 signed, 202 pending,
// 403 denied or rejected, 502 failed.
func writeStatus(w http.ResponseWriter, st *RequestStatus) {
	code := http.StatusOK
	switch st.State {
	case StatePending:
		code = http.StatusAccepted
	case StateDenied, StateRejected:
		code = http.StatusForbidden
	case StateFailed:
		code = http.StatusBadGateway
	}
	writeJSON(w, code, st)
}

func (s *Server) getRequest(w http.ResponseWriter, r *http.Request) {
	st, err := s.loadRequest(r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	expire(st, time.Now())
	writeStatus(w, st)
}

// expire shows a pending request past its expiry as failed.
func expire(st *RequestStatus, now time.Time) {
	if st.State == StatePending && st.ExpiresAt <= now.Unix() {
		st.State, st.Error = StateFailed, "expired before it was approved"
	}
}

func (s *Server) listRequests(w http.ResponseWriter, r *http.Request) {
	state := r.URL.Query().Get("state")
	recs, err := s.cfg.Store.Requests()
	if err != nil {
		writeError(w, err)
		return
	}
	out := RequestList{Requests: []RequestStatus{}}
	now := time.Now()
	for _, b := range recs {
		var st RequestStatus
		if err := json.Unmarshal(b, &st); err != nil {
			continue
		}
		expire(&st, now)
		if state == "" || st.State == state {
			out.Requests = append(out.Requests, st)
		}
	}
	sort.Slice(out.Requests, func(i, j int) bool { return out.Requests[i].Updated.Before(out.Requests[j].Updated) })
	writeJSON(w, http.StatusOK, out)
}

type peerEvaluateBody struct {
	Request   []byte   `json:"request"`
	Approvals [][]byte `json:"approvals,omitempty"`
	Record    bool     `json:"record,omitempty"`
}

func (s *Server) peerEvaluate(w http.ResponseWriter, r *http.Request) {
	var body peerEvaluateBody
	if err := decodeJSON(r, &body); err != nil {
		writeError(w, err)
		return
	}
	var v api.Verdict
	if err := s.enclave.Call(r.Context(), api.MethodEvaluate, api.EvaluateRequest{Request: body.Request, Approvals: body.Approvals, Record: body.Record}, &v); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// pushPolicy hands a signed policy update to every party's enclave; each
// verifies it itself.
func (s *Server) pushPolicy(w http.ResponseWriter, r *http.Request) {
	var body PolicyPush
	if err := decodeJSON(r, &body); err != nil {
		writeError(w, err)
		return
	}
	parties := s.manifest.PartyIDs()
	results := make([]PolicyPartyResult, len(parties))
	var wg sync.WaitGroup
	for i, p := range parties {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var res api.PolicyUpdateResponse
			var err error
			if p == s.cfg.PartyID {
				err = s.enclave.Call(r.Context(), api.MethodPolicyUpdate, api.PolicyUpdateRequest{Policy: body.Policy}, &res)
			} else {
				err = s.peerCall(r.Context(), p, "/v1/peer/policy", body, &res)
			}
			res.PartyID = p
			results[i] = PolicyPartyResult{PolicyUpdateResponse: res}
			if err != nil {
				results[i].Error = err.Error()
			}
		}()
	}
	wg.Wait()
	out := PolicyPushResponse{Parties: results}
	var refused []string
	for _, r := range results {
		if r.Error != "" {
			refused = append(refused, r.Error)
		}
	}
	if len(refused) > 0 {
		out.Error = fmt.Sprintf("server: policy update refused by %d of %d parties: %s", len(refused), len(parties), strings.Join(refused, "; "))
		writeJSON(w, http.StatusForbidden, out)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) peerPolicy(w http.ResponseWriter, r *http.Request) {
	var body PolicyPush
	if err := decodeJSON(r, &body); err != nil {
		writeError(w, err)
		return
	}
	var res api.PolicyUpdateResponse
	if err := s.enclave.Call(r.Context(), api.MethodPolicyUpdate, api.PolicyUpdateRequest{Policy: body.Policy}, &res); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// maxAuditPage bounds one GET /v1/audit answer.
const maxAuditPage = 10000

func (s *Server) getAudit(w http.ResponseWriter, r *http.Request) {
	from := uint64(1)
	if f := r.URL.Query().Get("from"); f != "" {
		v, err := strconv.ParseUint(f, 10, 64)
		if err != nil || v == 0 {
			writeError(w, api.Errorf(api.CodeBadRequest, "server: from must be a sequence number ≥ 1"))
			return
		}
		from = v
	}
	entries, err := s.cfg.Audit.Audit(from, maxAuditPage)
	if err != nil {
		writeError(w, err)
		return
	}
	if entries == nil {
		entries = [][]byte{}
	}
	writeJSON(w, http.StatusOK, AuditEntries{PartyID: s.cfg.PartyID, Entries: entries})
}

// handleAudit stores an audit entry for the enclave, durably, before it
// answers: the enclave waits for this before it releases what the entry
// records.
func (s *Server) handleAudit(_ context.Context, body []byte) (any, error) {
	var req api.AuditAppendRequest
	if err := api.Unmarshal(body, &req); err != nil {
		return nil, api.Errorf(api.CodeMalformed, "server: %v", err)
	}
	if err := s.cfg.Audit.AppendAudit(req.Seq, req.Entry); err != nil {
		return nil, api.Errorf(api.CodeUnavailable, "server: audit log: %v", err)
	}
	return nil, nil
}

// handleAuditTail gives the enclave the last entry of its log.
func (s *Server) handleAuditTail(_ context.Context, _ []byte) (any, error) {
	tail, _, err := s.cfg.Audit.AuditTail()
	if err != nil {
		return nil, api.Errorf(api.CodeUnavailable, "server: audit log: %v", err)
	}
	return api.AuditTailResponse{Entry: tail}, nil
}

// handleAuditRange gives the enclave entries of its log, from a seq on.
func (s *Server) handleAuditRange(_ context.Context, body []byte) (any, error) {
	var req api.AuditRangeRequest
	if err := api.Unmarshal(body, &req); err != nil {
		return nil, api.Errorf(api.CodeMalformed, "server: %v", err)
	}
	if req.From == 0 || req.Limit <= 0 || req.Limit > maxAuditPage {
		return nil, api.Errorf(api.CodeBadRequest, "server: audit range from %d limit %d invalid", req.From, req.Limit)
	}
	entries, err := s.cfg.Audit.Audit(req.From, req.Limit)
	if err != nil {
		return nil, api.Errorf(api.CodeUnavailable, "server: audit log: %v", err)
	}
	return api.AuditRangeResponse{Entries: entries}, nil
}
