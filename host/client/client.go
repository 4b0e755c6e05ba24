// Package client is a Go client for sealsign-host's HTTP API.
package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/sealsign/sealsign/governance/ceremony"
	"github.com/sealsign/sealsign/governance/keys"
	"github.com/sealsign/sealsign/host/server"
)

// Client talks to one host.
type Client struct {
	BaseURL string
	HTTP    *http.Client
}

// New returns a client for baseURL (e.g. http://127.0.0.1:7701).
func New(baseURL string) *Client {
	return &Client{BaseURL: strings.TrimRight(baseURL, "/"), HTTP: &http.Client{Timeout: 15 * time.Minute}}
}

// Error is an API error answer.
type Error struct {
	Status  int
	Code    string
	Message string
	Body    []byte // the raw answer, for endpoints that explain a refusal in it
}

func (e *Error) Error() string { return e.Message }

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("client: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return replyError(resp.StatusCode, data)
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

// Health returns the host's health report.
func (c *Client) Health(ctx context.Context) (*server.HealthResponse, error) {
	var h server.HealthResponse
	err := c.do(ctx, http.MethodGet, "/v1/health", nil, &h)
	return &h, err
}

// CreateKey runs a DKG for algorithm, authorised by ceremony (a signed
// keygen ceremony, see NewCeremony; nil for a cluster without governance).
func (c *Client) CreateKey(ctx context.Context, algorithm string, ceremony []byte) (*server.KeyJSON, error) {
	var k server.KeyJSON
	err := c.do(ctx, http.MethodPost, "/v1/keys", server.CreateKeyRequest{Algorithm: algorithm, Ceremony: ceremony}, &k)
	return &k, err
}

// NewCeremony builds a ceremony of kind (ceremony.KindKeygen) for clusterID
// with a fresh random id, valid from now for ttl (at most
// ceremony.MaxLifetime), and signs it with every admin key given. parties
// are sorted; for keygen they are the committee (in an ungoverned cluster
// every party, at the manifest's threshold).
func NewCeremony(clusterID, kind, algorithm string, parties []string, threshold int, ttl time.Duration, admins ...*keys.PrivateKey) ([]byte, error) {
	parties = slices.Clone(parties)
	slices.Sort(parties)
	return SignCeremony(ceremony.Ceremony{ClusterID: clusterID, Kind: kind, Algorithm: algorithm, Parties: parties, Threshold: threshold}, ttl, admins...)
}

// SignCeremony gives c its format, a fresh random id and a validity window
// from now for ttl (at most ceremony.MaxLifetime), and signs it with every
// admin key given.
func SignCeremony(c ceremony.Ceremony, ttl time.Duration, admins ...*keys.PrivateKey) ([]byte, error) {
	if ttl <= 0 || ttl > ceremony.MaxLifetime {
		return nil, fmt.Errorf("client: ceremony lifetime %s invalid (want up to %s)", ttl, ceremony.MaxLifetime)
	}
	if len(admins) == 0 {
		return nil, fmt.Errorf("client: a ceremony needs admin signatures; give the admin keys of a quorum")
	}
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return nil, err
	}
	// IssuedAt is now, not backdated: an enclave refuses ceremonies issued
	// before it booted (ceremony.ReplayCache.SetFloor).
	now := time.Now()
	c.Format, c.ID = ceremony.FormatV1, c.Kind+"-"+hex.EncodeToString(id)
	c.IssuedAt, c.ExpiresAt = now.Unix(), now.Add(ttl).Unix()
	return ceremony.New(c, admins...)
}

// CreateKeyAmong runs a governed keygen among parties at threshold (the
// committee its ceremony names).
func (c *Client) CreateKeyAmong(ctx context.Context, algorithm string, cer []byte, parties []string, threshold int) (*server.KeyJSON, error) {
	var k server.KeyJSON
	err := c.do(ctx, http.MethodPost, "/v1/keys", server.CreateKeyRequest{Algorithm: algorithm, Ceremony: cer, Parties: parties, Threshold: threshold}, &k)
	return &k, err
}

// Reshare refreshes a key (req.NewParties empty) or moves it to a new
// committee; it also completes an interrupted one.
func (c *Client) Reshare(ctx context.Context, keyID string, req server.ReshareRequest) (*server.ReshareResponse, error) {
	var r server.ReshareResponse
	err := c.do(ctx, http.MethodPost, "/v1/keys/"+keyID+"/reshare", req, &r)
	return &r, err
}

// Key returns one key.
func (c *Client) Key(ctx context.Context, id string) (*server.KeyJSON, error) {
	var k server.KeyJSON
	err := c.do(ctx, http.MethodGet, "/v1/keys/"+id, nil, &k)
	return &k, err
}

// Keys lists keys.
func (c *Client) Keys(ctx context.Context) ([]server.KeyJSON, error) {
	var ks []server.KeyJSON
	err := c.do(ctx, http.MethodGet, "/v1/keys", nil, &ks)
	return ks, err
}

// Attestation fetches an attestation document bound to nonce.
func (c *Client) Attestation(ctx context.Context, nonce []byte) (*server.AttestationResponse, error) {
	var a server.AttestationResponse
	err := c.do(ctx, http.MethodGet, "/v1/attestation?nonce="+hex.EncodeToString(nonce), nil, &a)
	return &a, err
}

// replyError is the Error a non-2xx reply carries: the host's JSON
// {"error","code"} when it sent one, else the body as text.
func replyError(status int, data []byte) *Error {
	var e struct {
		Error string `json:"error"`
		Code  string `json:"code"`
	}
	msg := strings.TrimSpace(string(data))
	if json.Unmarshal(data, &e) == nil && e.Error != "" {
		msg = e.Error
	}
	return &Error{Status: status, Code: e.Code, Message: msg, Body: data}
}
