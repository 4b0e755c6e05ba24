package server

import (
	"net/http"
	"time"

	"github.com/sealsign/sealsign/enclave/api"
	"github.com/sealsign/sealsign/host/store"
)

// BackupRequest is the body of POST /v1/keys/{id}/backup.
type BackupRequest struct {
	// Ceremony is a signed backup ceremony (governance/ceremony); the
	// enclave verifies it. JSON encodes it as base64.
	Ceremony []byte `json:"ceremony"`
}

// RecoverRequest is the body of POST /v1/keys/{id}/recover.
type RecoverRequest struct {
	Ceremony []byte `json:"ceremony"` // a signed recover ceremony naming this party
	Backup   []byte `json:"backup"`   // the party's backup file
	Share    []byte `json:"share"`    // the share sealed to this enclave's attested identity
}

// RecoverResponse is the key this party holds again.
type RecoverResponse struct {
	KeyJSON        // Epoch: the recovered share's
	Party   string `json:"party"`
}

// maxBackupBody bounds a recover request: a backup file (at most 1 MiB)
// and a sealed share, base64 in JSON.
const maxBackupBody = 4 << 20

// backupKey has this party's enclave export its share of a key under a
// backup ceremony; the answer is the backup file (application/octet-stream,
// format enclave/backup). The host sees only ciphertext.
func (s *Server) backupKey(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxBackupBody)
	var req BackupRequest
	if err := decodeJSON(r, &req); err != nil {
		writeError(w, err)
		return
	}
	var res api.BackupResponse
	if err := s.enclave.Call(r.Context(), api.MethodBackup, api.BackupRequest{Ceremony: req.Ceremony}, &res); err != nil {
		writeError(w, err)
		return
	}
	s.cfg.Log.Info("backup made", "key", r.PathValue("id"), "bytes", len(res.Backup))
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="backup-`+s.cfg.PartyID+`.sealsign-backup"`)
	w.WriteHeader(http.StatusOK)
	w.Write(res.Backup)
}

// recoverKey restores this party's share from a backup into its enclave
// (which seals it under its hardware and has this host store it), then
// records the key's metadata here.
func (s *Server) recoverKey(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxBackupBody)
	var req RecoverRequest
	if err := decodeJSON(r, &req); err != nil {
		writeError(w, err)
		return
	}
	var res api.RecoverResponse
	if err := s.enclave.Call(r.Context(), api.MethodRecover, api.RecoverRequest{Ceremony: req.Ceremony, Backup: req.Backup, Share: req.Share}, &res); err != nil {
		writeError(w, err)
		return
	}
	if res.KeyID != r.PathValue("id") {
		s.cfg.Log.Warn("recovered a key other than the path names", "path", r.PathValue("id"), "key", res.KeyID)
	}
	k := store.Key{ID: res.KeyID, Algorithm: res.Algorithm, PublicKey: res.PublicKey, Threshold: res.Threshold, Parties: res.Parties, Created: time.Now().UTC(), Epoch: res.Epoch}
	if err := s.cfg.Store.PutKey(k); err != nil {
		s.cfg.Log.Error("store key metadata", "key", k.ID, "err", err)
	}
	writeJSON(w, http.StatusOK, RecoverResponse{KeyJSON: keyJSON(k), Party: s.cfg.PartyID})
}
