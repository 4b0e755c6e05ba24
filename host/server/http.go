package server

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/sealsign/sealsign/enclave/api"
	"github.com/sealsign/sealsign/host/store"
)

// Handler returns the HTTP API: the client API under /v1/ and the
// host-to-host relay under /v1/peer/.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/health", s.health)
	mux.HandleFunc("POST /v1/keys", s.createKey)
	mux.HandleFunc("GET /v1/keys", s.listKeys)
	mux.HandleFunc("GET /v1/keys/{id}", s.getKey)
	mux.HandleFunc("GET /v1/keys/{id}/derive", s.deriveKey)
	mux.HandleFunc("POST /v1/keys/{id}/backup", s.backupKey)
	mux.HandleFunc("POST /v1/keys/{id}/recover", s.recoverKey)
	mux.HandleFunc("POST /v1/requests", s.submitRequest)
	mux.HandleFunc("GET /v1/requests", s.listRequests)
	mux.HandleFunc("GET /v1/requests/{id}", s.getRequest)
	mux.HandleFunc("POST /v1/requests/{id}/approvals", s.approveRequest)
	mux.HandleFunc("POST /v1/policy", s.pushPolicy)
	mux.HandleFunc("GET /v1/audit", s.getAudit)
	mux.HandleFunc("POST /v1/audit/hash", s.auditHash)
	mux.HandleFunc("POST /v1/audit/checkpoint", s.auditCheckpoint)
	mux.HandleFunc("GET /v1/attestation", s.attestation)
	mux.HandleFunc("GET /v1/peer/identity", s.peerIdentity)
	mux.HandleFunc("POST /v1/peer/run", s.peerRun)
	mux.HandleFunc("POST /v1/peer/deliver", s.peerDeliver)
	mux.HandleFunc("POST /v1/peer/evaluate", s.peerEvaluate)
	mux.HandleFunc("POST /v1/peer/policy", s.peerPolicy)
	mux.HandleFunc("POST /v1/keys/{id}/reshare", s.reshareKey)
	mux.HandleFunc("GET /v1/peer/status", s.peerStatus)
	mux.HandleFunc("POST /v1/peer/reshare-ack", s.peerReshareAck)
	mux.HandleFunc("POST /v1/peer/reshare-commit", s.peerReshareCommit)
	return http.MaxBytesHandler(mux, 16<<20)
}

type errorBody struct {
	Error string `json:"error"`
	Code  string `json:"code,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// writeError maps enclave error codes to HTTP statuses.
func writeError(w http.ResponseWriter, err error) {
	status := http.StatusInternalServerError
	code := api.CodeOf(err)
	switch code {
	case api.CodeBadRequest, api.CodeMalformed:
		status = http.StatusBadRequest
	case api.CodeNotFound:
		status = http.StatusNotFound
	case api.CodeRejected, api.CodeAttestation:
		status = http.StatusForbidden
	case api.CodeStale:
		status = http.StatusConflict
	case api.CodeUnavailable:
		status = http.StatusServiceUnavailable
	case api.CodeSession, api.CodeSealing:
		status = http.StatusBadGateway
	}
	if errors.Is(err, store.ErrNotFound) {
		status, code = http.StatusNotFound, api.CodeNotFound
	}
	var pe *peerError
	if errors.As(err, &pe) {
		status = http.StatusBadGateway
	}
	writeJSON(w, status, errorBody{Error: err.Error(), Code: code})
}

func decodeJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return api.Errorf(api.CodeBadRequest, "server: request body: %v", err)
	}
	if dec.More() {
		return api.Errorf(api.CodeBadRequest, "server: request body has trailing data")
	}
	return nil
}

// KeyJSON is a key as the client API shows it.
type KeyJSON struct {
	ID        string    `json:"key_id"`
	Algorithm string    `json:"algorithm"`
	PublicKey string    `json:"public_key"`
	Threshold int       `json:"threshold"`
	Parties   []string  `json:"parties"`
	Created   time.Time `json:"created"`
	Epoch     uint64    `json:"epoch"`
}

func keyJSON(k store.Key) KeyJSON {
	return KeyJSON{ID: k.ID, Algorithm: k.Algorithm, PublicKey: hex.EncodeToString(k.PublicKey), Threshold: k.Threshold, Parties: k.Parties, Created: k.Created, Epoch: k.Epoch}
}

// CreateKeyRequest is the body of POST /v1/keys.
type CreateKeyRequest struct {
	Algorithm string `json:"algorithm"`
	// Ceremony is the signed keygen ceremony (governance/ceremony) the
	// manifest's admin quorum issued; every enclave of a governed cluster
	// requires it. JSON encodes it as base64.
	Ceremony []byte `json:"ceremony,omitempty"`
	// Parties and Threshold: a governed keygen's committee, as its ceremony
	// names it (empty: every party at the manifest's threshold).
	Parties   []string `json:"parties,omitempty"`
	Threshold int      `json:"threshold,omitempty"`
}

func (s *Server) createKey(w http.ResponseWriter, r *http.Request) {
	var req CreateKeyRequest
	if err := decodeJSON(r, &req); err != nil {
		writeError(w, err)
		return
	}
	k, err := s.CreateKeyAmong(r.Context(), req.Algorithm, req.Ceremony, req.Parties, req.Threshold)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, keyJSON(k))
}

func (s *Server) listKeys(w http.ResponseWriter, r *http.Request) {
	keys, err := s.cfg.Store.Keys()
	if err != nil {
		writeError(w, err)
		return
	}
	out := []KeyJSON{}
	for _, k := range keys {
		out = append(out, keyJSON(k))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getKey(w http.ResponseWriter, r *http.Request) {
	k, err := s.cfg.Store.Key(r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	// The enclave is the authority on the epoch in force and its committee
	// (a reshare interrupted before this host recorded it).
	ctx, cancel := context.WithTimeout(r.Context(), probeTimeout)
	defer cancel()
	var st api.StatusResponse
	if err := s.enclave.Call(ctx, api.MethodStatus, nil, &st); err == nil {
		for _, ke := range st.KeyEpochs {
			if ke.KeyID == k.ID && ke.Active {
				k.Epoch, k.Parties, k.Threshold = ke.Epoch, ke.Parties, ke.Threshold
			}
		}
	}
	writeJSON(w, http.StatusOK, keyJSON(k))
}

// AttestationResponse carries a document and the identity it commits to.
type AttestationResponse struct {
	PartyID  string       `json:"party_id"`
	Document []byte       `json:"document"` // COSE_Sign1, base64 in JSON
	Identity api.Identity `json:"identity"`
}

func (s *Server) attestation(w http.ResponseWriter, r *http.Request) {
	var nonce []byte
	if n := r.URL.Query().Get("nonce"); n != "" {
		var err error
		if nonce, err = hex.DecodeString(n); err != nil || len(nonce) == 0 || len(nonce) > 512 {
			writeError(w, api.Errorf(api.CodeBadRequest, "server: nonce must be 1 to 512 hex-encoded bytes"))
			return
		}
	}
	var res api.AttestResponse
	if err := s.enclave.Call(r.Context(), api.MethodAttest, api.AttestRequest{Nonce: nonce}, &res); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, AttestationResponse{PartyID: s.cfg.PartyID, Document: res.Document, Identity: s.identity})
}

// HealthResponse reports the host and its enclave.
type HealthResponse struct {
	PartyID string              `json:"party_id"`
	Status  string              `json:"status"`
	Enclave *api.StatusResponse `json:"enclave,omitempty"`
	Refused []api.BlobFailure   `json:"refused_blobs,omitempty"`
	Error   string              `json:"error,omitempty"`
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	var st api.StatusResponse
	if err := s.enclave.Call(ctx, api.MethodStatus, nil, &st); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, HealthResponse{PartyID: s.cfg.PartyID, Status: "enclave unavailable", Error: err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, HealthResponse{PartyID: s.cfg.PartyID, Status: "ok", Enclave: &st, Refused: s.Restored().Failed})
}

// peer endpoints

type identityBody struct {
	PartyID  string `json:"party_id"`
	Document []byte `json:"document"`
}

func (s *Server) peerIdentity(w http.ResponseWriter, r *http.Request) {
	var res api.AttestResponse
	if err := s.enclave.Call(r.Context(), api.MethodAttest, api.AttestRequest{}, &res); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, identityBody{PartyID: s.cfg.PartyID, Document: res.Document})
}

type runBody struct {
	Proposal []byte            `json:"proposal"`
	Docs     map[string][]byte `json:"docs"` // attestation documents of the signers, as the coordinator fetched them
}

func (s *Server) peerRun(w http.ResponseWriter, r *http.Request) {
	var req runBody
	if err := decodeJSON(r, &req); err != nil {
		writeError(w, err)
		return
	}
	res, err := s.runAsPeer(r.Context(), req)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (s *Server) peerDeliver(w http.ResponseWriter, r *http.Request) {
	var req deliverBody
	if err := decodeJSON(r, &req); err != nil {
		writeError(w, err)
		return
	}
	err := s.enclave.Call(r.Context(), api.MethodDeliver, api.DeliverRequest{Envelope: req.Envelope}, nil)
	if err != nil && api.CodeOf(err) == api.CodeAttestation {
		// Our enclave does not know the sender yet (or knows an older boot
		// of it): fetch its current attestation once and retry.
		if from := envelopeSender(req.Envelope); from != "" {
			if ferr := s.refreshPeers(r.Context(), []string{from}, nil); ferr == nil {
				err = s.enclave.Call(r.Context(), api.MethodDeliver, api.DeliverRequest{Envelope: req.Envelope}, nil)
			}
		}
	}
	if err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
