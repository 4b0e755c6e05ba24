package client

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/sealsign/sealsign/governance/approval"
	"github.com/sealsign/sealsign/governance/keys"
	"github.com/sealsign/sealsign/governance/request"
	"github.com/sealsign/sealsign/governance/tx"
	"github.com/sealsign/sealsign/host/server"
)

// RequestError is a request that ended without a signature: denied by a
// party's policy, rejected by an approver, or failed while signing. Status
// is the host's full account of it (every party's verdict and reasons).
type RequestError struct {
	Status  *server.RequestStatus
	Message string
}

func (e *RequestError) Error() string { return e.Message }

// NewRequest builds and signs a request with a client key: a fresh random
// id, issued now, expiring after ttl.
func NewRequest(k *keys.PrivateKey, clusterID, keyID string, kind tx.Kind, payload []byte, ttl time.Duration, signers ...string) ([]byte, error) {
	return NewRequestAt(k, clusterID, keyID, nil, kind, payload, ttl, signers...)
}

// NewRequestAt is NewRequest signing with the BIP-32 child of keyID at path
// (nil: the key itself).
func NewRequestAt(k *keys.PrivateKey, clusterID, keyID string, path request.Path, kind tx.Kind, payload []byte, ttl time.Duration, signers ...string) ([]byte, error) {
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return nil, err
	}
	now := time.Now()
	return request.New(request.Request{
		Format: request.FormatV1, ID: "req-" + hex.EncodeToString(id), ClusterID: clusterID,
		ClientKeyID: k.Public.ID, KeyID: keyID, Kind: kind, Payload: payload,
		IssuedAt: now.Unix(), ExpiresAt: now.Add(ttl).Unix(), Signers: signers, Path: path,
	}, k.Signer)
}

// NewApproval signs an approver's decision (approval.Approve or
// approval.Reject) about the request st describes, valid for ttl. The
// subject comes from st, which the host reports; the enclaves refuse an
// approval whose subject does not match what they computed themselves, so
// a lying host gains nothing but a refused approval. Callers that want to
// know what they approve decode st.Request themselves (sealsign approve
// does).
func NewApproval(k *keys.PrivateKey, clusterID string, st *server.RequestStatus, decision, reason string, ttl time.Duration) ([]byte, error) {
	rd, err := hex32(st.RequestDigest)
	if err != nil {
		return nil, fmt.Errorf("client: request digest: %w", err)
	}
	if want := request.Digest(st.Request); want != rd {
		return nil, fmt.Errorf("client: host reports request digest %x, but the request it sent hashes to %x", rd, want)
	}
	ph, err := hex32(st.PayloadHash)
	if err != nil {
		return nil, fmt.Errorf("client: payload hash: %w", err)
	}
	now := time.Now()
	return approval.New(approval.Approval{
		Format: approval.FormatV1, ClusterID: clusterID, RequestID: st.RequestID, RequestDigest: rd,
		PayloadHash: ph, PolicyVersion: st.PolicyVersion, ApproverKeyID: k.Public.ID,
		Decision: decision, Reason: reason, IssuedAt: now.Unix(), ExpiresAt: now.Add(ttl).Unix(),
	}, k.Signer)
}

func hex32(s string) ([32]byte, error) {
	var out [32]byte
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 32 {
		return out, fmt.Errorf("want 64 hex characters, got %q", s)
	}
	copy(out[:], b)
	return out, nil
}

// Submit sends a signed request. It returns the request's status: signed
// (Result holds the signatures) or pending (it needs approvals). A denied,
// rejected or failed request returns its status too, with a *RequestError.
func (c *Client) Submit(ctx context.Context, signed []byte) (*server.RequestStatus, error) {
	return c.requestCall(ctx, http.MethodPost, "/v1/requests", server.SubmitRequest{Request: signed})
}

// Approve sends a signed approval (or rejection) for request id; it answers
// like Submit.
func (c *Client) Approve(ctx context.Context, id string, signed []byte) (*server.RequestStatus, error) {
	return c.requestCall(ctx, http.MethodPost, "/v1/requests/"+url.PathEscape(id)+"/approvals", server.ApprovalSubmit{Approval: signed})
}

// Request returns one request's status (with a *RequestError if it ended
// without a signature).
func (c *Client) Request(ctx context.Context, id string) (*server.RequestStatus, error) {
	return c.requestCall(ctx, http.MethodGet, "/v1/requests/"+url.PathEscape(id), nil)
}

// Requests lists requests; state filters ("" for all, "pending").
func (c *Client) Requests(ctx context.Context, state string) ([]server.RequestStatus, error) {
	var l server.RequestList
	path := "/v1/requests"
	if state != "" {
		path += "?state=" + url.QueryEscape(state)
	}
	err := c.do(ctx, http.MethodGet, path, nil, &l)
	return l.Requests, err
}

// PushPolicy sends a signed policy update to every party of the cluster
// through this host. The error is non-nil if any party refused it.
func (c *Client) PushPolicy(ctx context.Context, signed []byte) (*server.PolicyPushResponse, error) {
	var r server.PolicyPushResponse
	err := c.do(ctx, http.MethodPost, "/v1/policy", server.PolicyPush{Policy: signed}, &r)
	if err != nil {
		var ae *Error
		if errors.As(err, &ae) && len(ae.Body) > 0 && json.Unmarshal(ae.Body, &r) == nil && len(r.Parties) > 0 {
			return &r, err
		}
		return nil, err
	}
	return &r, nil
}

// Audit fetches this host's party's audit entries from seq (1 for all).
func (c *Client) Audit(ctx context.Context, from uint64) (*server.AuditEntries, error) {
	var a server.AuditEntries
	err := c.do(ctx, http.MethodGet, "/v1/audit?from="+strconv.FormatUint(from, 10), nil, &a)
	return &a, err
}

func (c *Client) requestCall(ctx context.Context, method, path string, in any) (*server.RequestStatus, error) {
	var st server.RequestStatus
	err := c.do(ctx, method, path, in, &st)
	if err == nil {
		switch st.State {
		case server.StateSigned, server.StatePending:
			return &st, nil
		}
		return &st, &RequestError{Status: &st, Message: fmt.Sprintf("request %s %s: %s", st.RequestID, st.State, st.Error)}
	}
	var ae *Error
	if errors.As(err, &ae) && len(ae.Body) > 0 {
		var body server.RequestStatus
		if json.Unmarshal(ae.Body, &body) == nil && body.RequestID != "" {
			return &body, &RequestError{Status: &body, Message: ae.Message}
		}
	}
	return nil, err
}

// AuditHash asks this host's party for the keyed hash its audit log would
// store for value.
func (c *Client) AuditHash(ctx context.Context, value string) (*server.AuditHashResponse, error) {
	var r server.AuditHashResponse
	err := c.do(ctx, http.MethodPost, "/v1/audit/hash", server.AuditHashRequest{Value: value}, &r)
	return &r, err
}

// AuditCheckpoint has this host's party append a checkpoint now.
func (c *Client) AuditCheckpoint(ctx context.Context) (*server.AuditCheckpointResponse, error) {
	var r server.AuditCheckpointResponse
	err := c.do(ctx, http.MethodPost, "/v1/audit/checkpoint", struct{}{}, &r)
	return &r, err
}
