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
	"net/url"
	"strings"
	"time"

	"github.com/sealsign/sealsign/governance/ceremony"
	"github.com/sealsign/sealsign/governance/keys"
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
		var e struct {
			Error string `json:"error"`
			Code  string `json:"code"`
		}
		msg := strings.TrimSpace(string(data))
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		return nil, &Error{Status: resp.StatusCode, Code: e.Code, Message: msg, Body: data}
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

// LifecycleCeremony is a key lifecycle ceremony to sign (NewLifecycleCeremony).
type LifecycleCeremony struct {
	ClusterID  string
	Kind       string // ceremony.KindBackup or ceremony.KindRecover
	KeyID      string
	Algorithm  string
	Epoch      uint64
	Parties    []string
	Threshold  int
	Recipients []string // backup
	Party      string   // recover
}

// NewLifecycleCeremony builds a ceremony for l with a fresh random id,
// valid from now for ttl, signed by every admin key given.
func NewLifecycleCeremony(l LifecycleCeremony, ttl time.Duration, admins ...*keys.PrivateKey) ([]byte, error) {
	if ttl <= 0 || ttl > ceremony.MaxLifetime {
		return nil, fmt.Errorf("client: ceremony lifetime %s invalid (want up to %s)", ttl, ceremony.MaxLifetime)
	}
	if len(admins) == 0 {
		return nil, fmt.Errorf("client: a ceremony needs admin signatures; give the admin keys of a quorum")
	}
	id, err := ceremonyID(l.Kind)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	return ceremony.New(ceremony.Ceremony{
		Format: ceremony.FormatV1, ID: id, ClusterID: l.ClusterID, Kind: l.Kind, Algorithm: l.Algorithm,
		Parties: l.Parties, Threshold: l.Threshold, KeyID: l.KeyID, Epoch: l.Epoch, Recipients: l.Recipients, Party: l.Party,
		IssuedAt: now.Unix(), ExpiresAt: now.Add(ttl).Unix(),
	}, admins...)
}

func ceremonyID(kind string) (string, error) {
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return "", err
	}
	return kind + "-" + hex.EncodeToString(id), nil
}
