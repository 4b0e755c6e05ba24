package server

import (
	"encoding/hex"
	"net/http"

	"github.com/ethereum/go-ethereum/crypto"

	"github.com/sealsign/sealsign/enclave/api"
	"github.com/sealsign/sealsign/governance/request"
)

// DeriveJSON is the answer of GET /v1/keys/{id}/derive?path=m/0/1: the
// BIP-32 non-hardened child of a secp256k1 key, as this party's enclave
// derives it from the key and the chain code agreed at keygen.
type DeriveJSON struct {
	PartyID   string `json:"party_id"`
	KeyID     string `json:"key_id"`
	Path      string `json:"path"`
	PublicKey string `json:"public_key"` // hex, 33-byte compressed
	ChainCode string `json:"chain_code"` // hex
	XPub      string `json:"xpub"`       // BIP-32 mainnet extended public key
	Address   string `json:"address"`    // Ethereum address (EIP-55) of the child
}

func (s *Server) deriveKey(w http.ResponseWriter, r *http.Request) {
	text := r.URL.Query().Get("path")
	if text == "" {
		text = "m"
	}
	path, err := request.ParsePath(text)
	if err != nil {
		writeError(w, api.Errorf(api.CodeBadRequest, "server: %v", err))
		return
	}
	var res api.DeriveResponse
	if err := s.enclave.Call(r.Context(), api.MethodDerive, api.DeriveRequest{KeyID: r.PathValue("id"), Path: path}, &res); err != nil {
		writeError(w, err)
		return
	}
	out := DeriveJSON{PartyID: s.cfg.PartyID, KeyID: res.KeyID, Path: res.Path, PublicKey: hex.EncodeToString(res.PublicKey), ChainCode: hex.EncodeToString(res.ChainCode), XPub: res.XPub}
	if pk, err := crypto.DecompressPubkey(res.PublicKey); err == nil {
		out.Address = crypto.PubkeyToAddress(*pk).Hex()
	}
	writeJSON(w, http.StatusOK, out)
}
