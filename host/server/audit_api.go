package server

import (
	"encoding/hex"
	"net/http"

	"github.com/sealsign/sealsign/enclave/api"
)

// AuditHashRequest is the body of POST /v1/audit/hash: a value whose keyed
// hash (as the log stores free text such as rejection reasons) an auditor
// wants to search for. The salt never leaves the enclave.
type AuditHashRequest struct {
	Value string `json:"value"`
}

// AuditHashResponse is the keyed hash, hex.
type AuditHashResponse struct {
	PartyID string `json:"party_id"`
	MAC     string `json:"mac"`
}

func (s *Server) auditHash(w http.ResponseWriter, r *http.Request) {
	var body AuditHashRequest
	if err := decodeJSON(r, &body); err != nil {
		writeError(w, err)
		return
	}
	var res api.AuditHashResponse
	if err := s.enclave.Call(r.Context(), api.MethodAuditHash, api.AuditHashRequest{Value: []byte(body.Value)}, &res); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, AuditHashResponse{PartyID: s.cfg.PartyID, MAC: hex.EncodeToString(res.MAC)})
}

// AuditCheckpointResponse is the answer of POST /v1/audit/checkpoint.
type AuditCheckpointResponse struct {
	PartyID string `json:"party_id"`
	Seq     uint64 `json:"seq"`
	Hash    string `json:"hash"` // hex chain hash of the checkpoint entry
}

// auditCheckpoint has the enclave append a checkpoint now.
func (s *Server) auditCheckpoint(w http.ResponseWriter, r *http.Request) {
	var res api.AuditCheckpointResponse
	if err := s.enclave.Call(r.Context(), api.MethodAuditCheckpoint, nil, &res); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, AuditCheckpointResponse{PartyID: s.cfg.PartyID, Seq: res.Seq, Hash: hex.EncodeToString(res.Hash)})
}
