package client

import (
	"context"
	"net/url"

	"github.com/sealsign/sealsign/governance/request"
	"github.com/sealsign/sealsign/host/server"
)

// Derive asks a host for the BIP-32 non-hardened child of a secp256k1 key
// at path (GET /v1/keys/{id}/derive). The host's enclave derives it; a
// client that wants assurance asks several hosts and compares, or derives
// the child itself from the key's xpub at "m".
func (c *Client) Derive(ctx context.Context, keyID string, path request.Path) (*server.DeriveJSON, error) {
	var out server.DeriveJSON
	q := url.Values{"path": {path.String()}}
	if err := c.do(ctx, "GET", "/v1/keys/"+url.PathEscape(keyID)+"/derive?"+q.Encode(), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
