package server

import (
	"bytes"

	"context"
	"encoding/json"
	"fmt"
	"github.com/sealsign/sealsign/enclave/api"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// relay sends envelopes to peer hosts, one ordered queue per peer.
type relay struct {
	s      *Server
	mu     sync.Mutex
	queues map[string]chan []byte
}

func newRelay(s *Server) *relay { return &relay{s: s, queues: map[string]chan []byte{}} }

const relayQueue = 4096

func (r *relay) enqueue(to string, env []byte) {
	r.mu.Lock()
	q, ok := r.queues[to]
	if !ok {
		q = make(chan []byte, relayQueue)
		r.queues[to] = q
		go r.worker(to, q)
	}
	r.mu.Unlock()
	select {
	case q <- env:
	default:
		r.s.cfg.Log.Error("relay queue full; dropping envelope", "to", to)
	}
}

func (r *relay) worker(to string, q <-chan []byte) {
	for env := range q {
		var err error
		for attempt := 0; attempt < 5; attempt++ {
			if err = r.post(to, env); err == nil {
				break
			}
			if pe, ok := err.(*peerError); ok && pe.status < 500 {
				break // the peer's enclave refused it; retrying will not help
			}
			time.Sleep(time.Duration(50<<attempt) * time.Millisecond)
		}
		if err != nil {
			if pe, ok := err.(*peerError); ok && pe.code == api.CodeStale {
				// Normal: e.g. an echo reaching a party that already finished.
				r.s.cfg.Log.Debug("relay: peer session already ended", "to", to, "err", err)
				continue
			}
			r.s.cfg.Log.Warn("relay failed", "to", to, "err", err)
		}
	}
}

func (r *relay) post(to string, env []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return r.s.peerCall(ctx, to, "/v1/peer/deliver", deliverBody{Envelope: env}, nil)
}

type deliverBody struct {
	Envelope []byte `json:"envelope"`
}

// peerError is a non-2xx answer from a peer host.
type peerError struct {
	peer   string
	status int
	code   string
	msg    string
}

func (e *peerError) Error() string {
	if strings.HasPrefix(e.msg, "party "+e.peer+":") || strings.HasPrefix(e.msg, "party "+e.peer+" ") {
		return e.msg // the peer's enclave named itself already
	}
	return fmt.Sprintf("party %s: %s", e.peer, e.msg)
}

// peerCall POSTs (or GETs when body is nil) JSON to a peer host.
func (s *Server) peerCall(ctx context.Context, peer, path string, body, out any) error {
	base, ok := s.cfg.Peers[peer]
	if !ok {
		return fmt.Errorf("server: no address for party %q", peer)
	}
	method, rd := http.MethodGet, io.Reader(nil)
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		method, rd = http.MethodPost, bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.cfg.Client.Do(req)
	if err != nil {
		return fmt.Errorf("party %s unreachable: %w", peer, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("party %s: read reply: %w", peer, err)
	}
	if resp.StatusCode/100 != 2 {
		var e errorBody
		msg := resp.Status
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		return &peerError{peer: peer, status: resp.StatusCode, code: e.Code, msg: msg}
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("party %s: malformed reply: %w", peer, err)
		}
	}
	return nil
}
