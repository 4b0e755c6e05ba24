package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/sealsign/sealsign/host/server"
)

// maxBackup bounds a backup file read from a host (enclave/backup.MaxSize).
const maxBackup = 1 << 20

// Backup has the host's party export its share of keyID under a signed
// backup ceremony and returns the backup file.
func (c *Client) Backup(ctx context.Context, keyID string, ceremony []byte) ([]byte, error) {
	body, err := json.Marshal(server.BackupRequest{Ceremony: ceremony})
	if err != nil {
		return nil, err
	}
	path := "/v1/keys/" + url.PathEscape(keyID) + "/backup"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.BaseURL+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("client: POST %s: %w", path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBackup+1))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		return nil, replyError(resp.StatusCode, data)
	}
	if len(data) > maxBackup {
		return nil, fmt.Errorf("client: backup from %s is larger than %d bytes", c.BaseURL, maxBackup)
	}
	return data, nil
}

// Recover restores the host's party's share of keyID from its backup: the
// share sealed (enclave/backup SealToEnclave) to that party's attested
// enclave identity, authorised by a signed recover ceremony.
func (c *Client) Recover(ctx context.Context, keyID string, ceremony, backupFile, share []byte) (*server.RecoverResponse, error) {
	var out server.RecoverResponse
	err := c.do(ctx, http.MethodPost, "/v1/keys/"+url.PathEscape(keyID)+"/recover", server.RecoverRequest{Ceremony: ceremony, Backup: backupFile, Share: share}, &out)
	return &out, err
}
