package party

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcutil/base58"
	"github.com/btcsuite/btcd/btcutil/hdkeychain"
	"github.com/btcsuite/btcd/chaincfg"
	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	secpecdsa "github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/sealsign/sealsign/enclave/api"
	"github.com/sealsign/sealsign/enclave/audit"
	"github.com/sealsign/sealsign/governance/request"
	"github.com/sealsign/sealsign/governance/tx"
)

// hdChild is btcutil's hdkeychain (an independent BIP-32 implementation)
// deriving path from the master extended public key (pub, chainCode).
func hdChild(t *testing.T, pub, chainCode []byte, path request.Path) *hdkeychain.ExtendedKey {
	t.Helper()
	k := hdkeychain.NewExtendedKey(chaincfg.MainNetParams.HDPublicKeyID[:], pub, chainCode, []byte{0, 0, 0, 0}, 0, 0, false)
	for _, i := range path {
		var err error
		if k, err = k.Derive(i); err != nil {
			t.Fatalf("hdkeychain derive %s: %v", path, err)
		}
	}
	return k
}

// chainCodeOf is the chain code of keyID every party holds; they must agree.
func chainCodeOf(t *testing.T, c *cluster, keyID string) []byte {
	t.Helper()
	var cc []byte
	for _, id := range c.ids {
		k, err := c.encl[id].share(keyID)
		if err != nil {
			t.Fatal(err)
		}
		if len(k.rec.ChainCode) != 32 {
			t.Fatalf("%s: chain code is %d bytes, want 32", id, len(k.rec.ChainCode))
		}
		if cc == nil {
			cc = k.rec.ChainCode
		} else if !bytes.Equal(cc, k.rec.ChainCode) {
			t.Fatalf("parties disagree on the chain code: %x, %s has %x", cc, id, k.rec.ChainCode)
		}
	}
	return cc
}

// TestDeriveMatchesBIP32: every party derives, from the threshold key and
// the chain code all parties agreed at keygen, the same child public key,
// chain code and xpub as hdkeychain at each path; hardened indices and
// over-deep paths are refused, saying why.
func TestDeriveMatchesBIP32(t *testing.T) {
	c, key := ecdsaCluster(t, nil)
	cc := chainCodeOf(t, c, key.KeyID)
	if bytes.Equal(cc, make([]byte, 32)) {
		t.Fatal("chain code is zero")
	}
	ctx := context.Background()
	for _, s := range []string{"m", "m/0", "m/1", "m/1/2/3", "m/2147483647", "m/44/60/0/0/7", "m/0/1/2/3/4/5/6/7/8/9/10/11/12/13/14/15"} {
		path, err := request.ParsePath(s)
		if err != nil {
			t.Fatal(err)
		}
		want := hdChild(t, key.PublicKey, cc, path)
		wantPub, err := want.ECPubKey()
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range c.ids {
			got, err := c.encl[id].deriveMethod(ctx, &api.DeriveRequest{KeyID: key.KeyID, Path: path})
			if err != nil {
				t.Fatalf("%s: derive %s: %v", id, s, err)
			}
			if got.XPub != want.String() {
				t.Errorf("%s: %s: xpub\n %s\nwant (hdkeychain)\n %s", id, s, got.XPub, want.String())
			}
			if !bytes.Equal(got.PublicKey, wantPub.SerializeCompressed()) || !bytes.Equal(got.ChainCode, want.ChainCode()) {
				t.Errorf("%s: %s: child %x chain code %x, want %x %x", id, s, got.PublicKey, got.ChainCode, wantPub.SerializeCompressed(), want.ChainCode())
			}
			if got.Path != s || got.KeyID != key.KeyID {
				t.Errorf("%s: answer names %s %q, want %s %q", id, got.KeyID, got.Path, key.KeyID, s)
			}
		}
		// The xpub parses back (hdkeychain checks version, checksum and key).
		parsed, err := hdkeychain.NewKeyFromString(want.String())
		if err != nil || parsed.Depth() != uint8(len(path)) {
			t.Errorf("%s: xpub does not parse at depth %d: %v", s, len(path), err)
		}
	}
	if got, _ := c.encl["a"].deriveMethod(ctx, &api.DeriveRequest{KeyID: key.KeyID, Path: []uint32{0}}); got == nil || bytes.Equal(got.PublicKey, key.PublicKey) {
		t.Error("m/0 is the parent key")
	}

	for _, tc := range []struct {
		name string
		path []uint32
		want string
	}{
		{"hardened", []uint32{0, request.HardenedIndex + 44}, "hardened derivation needs the private key"},
		{"too deep", make([]uint32, request.MaxPathDepth+1), "17 levels, limit 16"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := c.encl["a"].deriveMethod(ctx, &api.DeriveRequest{KeyID: key.KeyID, Path: tc.path})
			if got != nil || err == nil || !strings.Contains(err.Error(), tc.want) || api.CodeOf(err) != api.CodeBadRequest {
				t.Fatalf("derive %v: %v, %v; want a bad-request error containing %q", tc.path, got, err, tc.want)
			}
		})
	}
	if _, err := c.encl["a"].deriveMethod(ctx, &api.DeriveRequest{KeyID: "nokey", Path: []uint32{0}}); api.CodeOf(err) != api.CodeNotFound {
		t.Errorf("derive of an unknown key: %v, want not-found", err)
	}

	// Signing requests under a hardened path are not even well formed.
	r := request.Request{Format: request.FormatV1, ID: "derive-hardened-000001", ClusterID: "test", ClientKeyID: c.gov.client.Public.ID,
		KeyID: key.KeyID, Kind: tx.KindRaw, Payload: crypto.Keccak256([]byte("x")), IssuedAt: c.clock().Unix(), ExpiresAt: c.clock().Add(time.Minute).Unix(),
		Path: request.Path{request.HardenedIndex}}
	if _, err := request.New(r, c.gov.client.Signer); err == nil || !strings.Contains(err.Error(), "hardened") {
		t.Errorf("request under a hardened path: %v", err)
	}
}

func TestKeygenChainCode(t *testing.T) {
	secret, pub := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 33)
	a, err := keygenChainCode(secret, pub)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := keygenChainCode(bytes.Repeat([]byte{3}, 32), pub)
	d, _ := keygenChainCode(secret, bytes.Repeat([]byte{4}, 33))
	if len(a) != 32 || bytes.Equal(a, b) || bytes.Equal(a, d) {
		t.Errorf("chain code %x must depend on the secret (%x) and the key (%x)", a, b, d)
	}
	if _, err := keygenChainCode(nil, pub); err == nil {
		t.Error("chain code without a session secret")
	}
}

// childRequest is a client-signed request under path.
func childRequest(t *testing.T, c *cluster, keyID string, kind tx.Kind, payload []byte, path request.Path) []byte {
	t.Helper()
	c.gov.reqSeq++
	return signedRequest(t, request.Request{
		Format: request.FormatV1, ID: fmt.Sprintf("test-child-%d-%06d", time.Now().UnixNano(), c.gov.reqSeq),
		ClusterID: "test", ClientKeyID: c.gov.client.Public.ID, KeyID: keyID, Kind: kind, Payload: payload,
		IssuedAt: c.clock().Unix(), ExpiresAt: c.clock().Add(10 * time.Minute).Unix(), Path: path,
	}, c.gov.client)
}

// shareSnapshot is party id's loaded save data of keyID, JSON.
func shareSnapshot(t *testing.T, c *cluster, id, keyID string) []byte {
	t.Helper()
	k, err := c.encl[id].share(keyID)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(k.ecdsa)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSignUnderPath: a raw digest requested under m/0/5 is signed by the
// child key (as hdkeychain derives it), not by the parent; the result and
// the audit log name the path; the loaded shares are unchanged afterwards
// (the tweak works on a copy), so the parent still signs; an EVM transfer
// under a path is decoded with, and recovers to, the child's address.
func TestSignUnderPath(t *testing.T) {
	c, key := ecdsaCluster(t, nil)
	cc := chainCodeOf(t, c, key.KeyID)
	path := request.Path{0, 5}
	child := hdChild(t, key.PublicKey, cc, path)
	childPub, err := child.ECPubKey()
	if err != nil {
		t.Fatal(err)
	}
	parentPub, err := secp256k1.ParsePubKey(key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	signers := []string{"a", "b"}
	before := map[string][]byte{}
	for _, id := range c.ids {
		before[id] = shareSnapshot(t, c, id, key.KeyID)
	}

	digest := crypto.Keccak256([]byte("signed by the child at m/0/5"))
	req := childRequest(t, c, key.KeyID, tx.KindRaw, digest, path)
	res := c.mustSign("a", key.KeyID, signers, req)
	for _, id := range signers {
		r := res[id]
		if !bytes.Equal(r.PublicKey, childPub.SerializeCompressed()) || r.DerivationPath != "m/0/5" {
			t.Errorf("%s: result key %x path %q, want the child %x at m/0/5", id, r.PublicKey, r.DerivationPath, childPub.SerializeCompressed())
		}
		sig := parseSig(t, r.Signature)
		if !sig.Verify(digest, childPub) {
			t.Errorf("%s: signature does not verify under the child key", id)
		}
		if sig.Verify(digest, parentPub) {
			t.Errorf("%s: signature verifies under the parent key", id)
		}
		if !bytes.Equal(r.Signature, res["a"].Signature) {
			t.Errorf("%s: signature differs from a's", id)
		}
	}
	for _, id := range c.ids {
		if after := shareSnapshot(t, c, id, key.KeyID); !bytes.Equal(before[id], after) {
			t.Errorf("%s: the loaded share changed while signing under a path (BigXj/ECDSAPub tweaked in place)", id)
		}
	}
	var logged bool
	for _, e := range auditEntries(t, c.hosts["b"]) {
		if r, ok := e.body.(*audit.Request); ok && r.KeyID == key.KeyID && r.Path == "m/0/5" {
			logged = true
		}
	}
	if !logged {
		t.Error("b's audit log has no request entry naming path m/0/5")
	}

	// The parent still signs after the child did.
	digest2 := crypto.Keccak256([]byte("signed by the parent"))
	res = c.mustSign("b", key.KeyID, []string{"b", "c"}, c.raw(key.KeyID, digest2))
	if r := res["c"]; !bytes.Equal(r.PublicKey, key.PublicKey) || r.DerivationPath != "" || !parseSig(t, r.Signature).Verify(digest2, parentPub) {
		t.Errorf("parent signing after a child: key %x path %q", r.PublicKey, r.DerivationPath)
	}

	// EVM: the enclave decodes the transaction with the child as sender
	// and the assembled transaction recovers to the child's address.
	x := evmTransfer{types.DynamicFeeTxType, 1, 0, payee, eth(10)}
	payload, unsigned := x.payload(t)
	res = c.mustSign("a", key.KeyID, signers, childRequest(t, c, key.KeyID, tx.KindEVM, payload, path))
	checkSignedEVM(t, "a", res["a"], &api.SessionResult{PublicKey: childPub.SerializeCompressed()}, x, payload, unsigned, "eth-small")
	if from := crypto.PubkeyToAddress(*childPub.ToECDSA()); keyAddress(t, key.PublicKey) == from {
		t.Fatal("child and parent share an address")
	}
}

func parseSig(t *testing.T, rs []byte) *secpecdsa.Signature {
	t.Helper()
	if len(rs) != 64 {
		t.Fatalf("signature is %d bytes", len(rs))
	}
	var r, s secp256k1.ModNScalar
	r.SetByteSlice(rs[:32])
	s.SetByteSlice(rs[32:])
	return secpecdsa.NewSignature(&r, &s)
}

// TestDeriveEdDSARefused: an Ed25519 key gets no chain code at keygen; it
// derives nothing, and a request under a path is refused by every party.
func TestDeriveEdDSARefused(t *testing.T) {
	c := newCluster(t)
	key := c.keygen(api.AlgEdDSAEd25519)
	for _, id := range c.ids {
		k, err := c.encl[id].share(key.KeyID)
		if err != nil {
			t.Fatal(err)
		}
		if k.rec.ChainCode != nil {
			t.Errorf("%s: ed25519 key has a chain code", id)
		}
	}
	const want = "BIP-32 derivation paths exist only for ecdsa-secp256k1 keys"
	if _, err := c.encl["a"].deriveMethod(context.Background(), &api.DeriveRequest{KeyID: key.KeyID, Path: []uint32{0}}); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("derive on ed25519: %v; want %q", err, want)
	}
	req := childRequest(t, c, key.KeyID, tx.KindRaw, crypto.Keccak256([]byte("m")), request.Path{0})
	if _, errs := c.sign("a", key.KeyID, []string{"a", "b"}, req); errs["a"] == nil || !strings.Contains(errs["a"].Error(), want) {
		t.Errorf("signing under a path with ed25519: %v; want %q", errs, want)
	}
	for _, id := range c.ids {
		if _, err := c.evaluate(id, req); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s evaluating a path on ed25519: %v", id, err)
		}
	}
}

// TestDeriveKnownAnswer: BIP-32 test vector 2 (bip-0032.mediawiki), the
// public derivation m → m/0, through derive and xpub.
func TestDeriveKnownAnswer(t *testing.T) {
	const (
		master = "xpub661MyMwAqRbcFW31YEwpkMuc5THy2PSt5bDMsktWQcFF8syAmRUapSCGu8ED9W6oDMSgv6Zz8idoc4a6mr8BDzTJY47LJhkJ8UB7WEGuduB"
		child0 = "xpub69H7F5d8KSRgmmdJg2KhpAK8SR3DjMwAdkxj3ZuxV27CprR9LgpeyGmXUbC6wb7ERfvrnKZjXoUmmDznezpbZb7ap6r1D3tgFxHmwMkQTPH"
	)
	raw := base58.Decode(master)
	if len(raw) != 82 {
		t.Fatalf("vector decodes to %d bytes", len(raw))
	}
	k := &loadedKey{rec: shareRecord{KeyID: "vector-2", Algorithm: api.AlgECDSASecp256k1, ChainCode: raw[13:45], PublicKey: raw[45:78]}}
	for _, tc := range []struct {
		path request.Path
		want string
	}{{request.Path{}, master}, {request.Path{0}, child0}} {
		d, err := derive(k, tc.path)
		if err != nil {
			t.Fatal(err)
		}
		if got := d.xpub(); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.path, got, tc.want)
		}
	}
}
