// Package client is a Go client for sealsign-host's HTTP API.
package client

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

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
		var e struct {
			Error string `json:"error"`
			Code  string `json:"code"`
		}
		msg := strings.TrimSpace(string(data))
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		return &Error{Status: resp.StatusCode, Code: e.Code, Message: msg, Body: data}
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

// CreateKey runs a DKG for algorithm.
func (c *Client) CreateKey(ctx context.Context, algorithm string) (*server.KeyJSON, error) {
	var k server.KeyJSON
	err := c.do(ctx, http.MethodPost, "/v1/keys", server.CreateKeyRequest{Algorithm: algorithm}, &k)
	return &k, err
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
