package devcluster

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math/big"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/sealsign/sealsign/governance/canon"
	"github.com/sealsign/sealsign/governance/keys"
	"github.com/sealsign/sealsign/governance/request"
	"github.com/sealsign/sealsign/governance/tx"
	"github.com/sealsign/sealsign/host/client"
)

// TestRedirect: the demo's tampered request still decodes, differs from
// the signed one only in the destination's last byte, and its signature
// no longer verifies, so an enclave refuses it as a bad signature.
func TestRedirect(t *testing.T) {
	app, err := keys.Generate(demoClient, demoClient, keys.Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	clients, err := keys.NewSet([]keys.PublicKey{app.Public})
	if err != nil {
		t.Fatal(err)
	}
	_, payload, err := ethTransfer(3, allowlisted, smallTransfer)
	if err != nil {
		t.Fatal(err)
	}
	signed, err := client.NewRequest(app, testCluster, "key-1", tx.KindEVM, payload, requestTTL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := request.Verify(signed, clients, testCluster, time.Now(), 0); err != nil {
		t.Fatalf("the untampered request does not verify: %v", err)
	}
	tampered, err := redirect(signed, allowlisted.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	var s request.Signed
	var r request.Request
	if err := canon.Unmarshal(tampered, &s); err != nil {
		t.Fatal(err)
	}
	if err := canon.Unmarshal(s.Request, &r); err != nil {
		t.Fatal(err)
	}
	to := allowlisted.Bytes()
	to[len(to)-1] ^= 1
	if i := bytes.Index(r.Payload, to); i < 0 || len(r.Payload) != len(payload) {
		t.Fatal("the tampered payload does not carry the changed destination")
	}
	if _, err := request.Verify(tampered, clients, testCluster, time.Now(), 0); !errors.Is(err, request.ErrBadSignature) {
		t.Fatalf("tampered request: %v, want %v", err, request.ErrBadSignature)
	}
}

// TestEthTransfer: the payload is go-ethereum's signing preimage, and a
// transaction signed over its hash verifies as sent by the key.
func TestEthTransfer(t *testing.T) {
	priv, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	want, payload, err := ethTransfer(7, allowlisted, big.NewInt(12345))
	if err != nil {
		t.Fatal(err)
	}
	if payload[0] != types.DynamicFeeTxType {
		t.Fatalf("payload type byte %#x, want 0x02", payload[0])
	}
	signer := types.LatestSignerForChainID(ethChainID)
	signedTx, err := types.SignTx(want, signer, priv)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := signedTx.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	pubHex := hex.EncodeToString(crypto.CompressPubkey(&priv.PublicKey))
	from, err := VerifyEthTransaction(pubHex, want, hex.EncodeToString(raw))
	if err != nil || from != crypto.PubkeyToAddress(priv.PublicKey) {
		t.Fatalf("VerifyEthTransaction: %s, %v", from, err)
	}
	other, _, _ := ethTransfer(8, allowlisted, big.NewInt(12345))
	if _, err := VerifyEthTransaction(pubHex, other, hex.EncodeToString(raw)); err == nil {
		t.Fatal("a signed transaction verified as another transaction")
	}
	otherKey, _ := crypto.GenerateKey()
	if _, err := VerifyEthTransaction(hex.EncodeToString(crypto.CompressPubkey(&otherKey.PublicKey)), want, hex.EncodeToString(raw)); err == nil {
		t.Fatal("a transaction verified as sent by another key")
	}
}

func TestShortClause(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"short", `request.kind == "raw-digest"`, `request.kind == "raw-digest"`},
		{"allowlist", `request.transfers.all(t, t.to in ["0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359"])`,
			`request.transfers.all(t, t.to in [2 entries])`},
		{"short list kept", `request.method in ["native", "erc20.transfer"]`, `request.method in ["native", "erc20.transfer"]`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := shortClause(tc.in); got != tc.want {
				t.Fatalf("shortClause = %q, want %q", got, tc.want)
			}
		})
	}
}
