// Package server is sealsign-host: it connects to its enclave, stores what
// the enclave seals, serves the client HTTP API, and relays the enclave's
// (already encrypted) protocol messages to peer hosts. It trusts nothing it
// relays and holds no plaintext share.
package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/sealsign/sealsign/enclave/api"
	"github.com/sealsign/sealsign/host/store"
)

// Config wires a host.
type Config struct {
	PartyID  string
	Manifest []byte // JSON, passed to the enclave as configured
	Store    *store.Store
	// Audit keeps the enclave's audit entries (default: Store). The host
	// answers an enclave's append only once Audit has made it durable.
	Audit store.AuditLog
	// Peers maps every other party id to its host's base URL.
	Peers map[string]string
	Log   *slog.Logger
	// Client is used for peer requests (default: a client with keep-alives).
	Client *http.Client
}

// Server is one party's host.
type Server struct {
	cfg      Config
	manifest *api.Manifest
	enclave  *api.Conn
	identity api.Identity
	relay    *relay

	mu       sync.Mutex
	restored api.RestoreResponse
	reqLocks requestLocks
}

// New validates the configuration.
func New(cfg Config) (*Server, error) {
	m, err := api.ParseManifest(cfg.Manifest)
	if err != nil {
		return nil, err
	}
	if _, ok := m.Party(cfg.PartyID); !ok {
		return nil, fmt.Errorf("server: party %q is not in the manifest", cfg.PartyID)
	}
	for _, id := range m.PartyIDs() {
		if id == cfg.PartyID {
			continue
		}
		if _, ok := cfg.Peers[id]; !ok {
			return nil, fmt.Errorf("server: no address for peer %q (use --peer %s=http://host:port)", id, id)
		}
	}
	if cfg.Audit == nil && cfg.Store != nil {
		cfg.Audit = cfg.Store
	}
	if cfg.Audit == nil {
		return nil, fmt.Errorf("server: no audit log (Config.Audit or Config.Store)")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16, IdleConnTimeout: time.Minute}}
	}
	s := &Server{cfg: cfg, manifest: m}
	s.relay = newRelay(s)
	return s, nil
}

// AttachEnclave serves the enclave connection and initialises the enclave:
// init with party id and manifest, then restore every stored blob. It
// returns once the enclave is ready; the connection keeps running until
// ctx ends or the enclave goes away (see Server.EnclaveDone).
func (s *Server) AttachEnclave(ctx context.Context, rwc io.ReadWriteCloser) error {
	conn := api.NewConn(rwc, map[string]api.Handler{
		api.MethodSend:       s.handleSend,
		api.MethodStore:      s.handleStore,
		api.MethodDelete:     s.handleDelete,
		api.MethodAudit:      s.handleAudit,
		api.MethodAuditTail:  s.handleAuditTail,
		api.MethodAuditRange: s.handleAuditRange,
	})
	conn.OnBadFrame = func(err error) { s.cfg.Log.Error("bad frame from enclave", "err", err) }
	s.enclave = conn
	go conn.Serve(ctx)

	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var init api.InitResponse
	if err := conn.Call(cctx, api.MethodInit, api.InitRequest{PartyID: s.cfg.PartyID, Manifest: s.cfg.Manifest}, &init); err != nil {
		return fmt.Errorf("server: enclave init: %w", err)
	}
	s.identity = init.Identity
	blobs, err := s.cfg.Store.Blobs()
	if err != nil {
		return err
	}
	tail, _, err := s.cfg.Audit.AuditTail()
	if err != nil {
		return fmt.Errorf("server: audit log tail for the enclave: %w", err)
	}
	req := api.RestoreRequest{AuditTail: tail}
	for name, b := range blobs {
		req.Blobs = append(req.Blobs, api.NamedBlob{Name: name, Blob: b})
	}
	var res api.RestoreResponse
	if err := conn.Call(cctx, api.MethodRestore, req, &res); err != nil {
		return fmt.Errorf("server: enclave restore: %w", err)
	}
	for _, f := range res.Failed {
		s.cfg.Log.Error("enclave refused a stored blob", "blob", f.Name, "err", f.Error)
	}
	s.mu.Lock()
	s.restored = res
	s.mu.Unlock()
	s.cfg.Log.Info("enclave ready", "party", s.cfg.PartyID, "measurement", fmt.Sprintf("%x", init.Measurement), "restored", len(res.Loaded), "refused", len(res.Failed))
	return nil
}

// EnclaveDone is closed when the enclave connection ends.
func (s *Server) EnclaveDone() <-chan struct{} { return s.enclave.Done() }

// Restored reports what the enclave accepted and refused at start-up.
func (s *Server) Restored() api.RestoreResponse {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.restored
}

func (s *Server) handleStore(_ context.Context, body []byte) (any, error) {
	var req api.StoreRequest
	if err := api.Unmarshal(body, &req); err != nil {
		return nil, api.Errorf(api.CodeMalformed, "server: %v", err)
	}
	if !validBlobName(req.Blob.Name) {
		return nil, api.Errorf(api.CodeBadRequest, "server: blob name %q invalid", req.Blob.Name)
	}
	if err := s.cfg.Store.PutBlob(req.Blob.Name, req.Blob.Blob); err != nil {
		return nil, api.Errorf(api.CodeUnavailable, "server: store blob %s: %v", req.Blob.Name, err)
	}
	return nil, nil
}

func (s *Server) handleDelete(_ context.Context, body []byte) (any, error) {
	var req api.DeleteRequest
	if err := api.Unmarshal(body, &req); err != nil {
		return nil, api.Errorf(api.CodeMalformed, "server: %v", err)
	}
	if err := s.cfg.Store.DeleteBlob(req.Name); err != nil {
		return nil, api.Errorf(api.CodeUnavailable, "server: delete blob %s: %v", req.Name, err)
	}
	return nil, nil
}

func (s *Server) handleSend(_ context.Context, body []byte) (any, error) {
	var req api.SendRequest
	if err := api.Unmarshal(body, &req); err != nil {
		return nil, api.Errorf(api.CodeMalformed, "server: %v", err)
	}
	if _, ok := s.cfg.Peers[req.To]; !ok {
		return nil, api.Errorf(api.CodeBadRequest, "server: no route to party %q", req.To)
	}
	s.relay.enqueue(req.To, req.Envelope)
	return nil, nil
}

func validBlobName(n string) bool {
	return n != "" && len(n) <= 128 && !strings.ContainsAny(n, "\x00\n")
}
