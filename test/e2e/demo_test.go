package e2e

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math/big"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	secpecdsa "github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/sealsign/sealsign/enclave/api"
	"github.com/sealsign/sealsign/host/devcluster"
)

// TestDemoJSON runs `sealsign demo --json` as a user would and checks every
// signature it prints with verifiers independent of tss-lib (and of the
// demo's own verification code), and every outcome of its governance
// story.
func TestDemoJSON(t *testing.T) {
	cmd := exec.Command(filepath.Join(binDir(t), "sealsign"), "demo", "--json", "--insecure-preparams-fixture", fixture(t))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("sealsign demo --json: %v\n%s", err, stderr.String())
	}
	var res struct {
		ECDSA struct {
			PK          string `json:"public_key"`
			Address     string `json:"address"`
			RequestID   string `json:"request_id"`
			D           string `json:"digest"`
			Sig         string `json:"signature"`
			RecoveryID  int    `json:"recovery_id"`
			Transaction string `json:"transaction"`
		} `json:"ecdsa"`
		EdDSA struct {
			PK        string `json:"public_key"`
			RequestID string `json:"request_id"`
			Statement string `json:"statement"`
			Msg       string `json:"message"`
			Sig       string `json:"signature"`
		} `json:"eddsa"`
		Restart   bool             `json:"restart_signature_ok"`
		TwoOf3    bool             `json:"two_of_three_ok"`
		Refused   bool             `json:"changed_measurement_refused"`
		RefusalMs string           `json:"refusal_message"`
		Timings   map[string]int64 `json:"timings_ms"`
		// The tpm party (b by default) restarted with the rogue build.
		TPMParty      string                      `json:"tpm_party"`
		TPMRefused    bool                        `json:"tpm_changed_measurement_refused"`
		TPMUnseal     bool                        `json:"tpm_unseal_refused"`
		TPMRefusalMsg string                      `json:"tpm_refusal_message"`
		TPMUnsealMsg  string                      `json:"tpm_unseal_message"`
		Refresh       devcluster.RefreshResult    `json:"refresh"`
		Gov           devcluster.GovernanceResult `json:"governance"`
		Audit         devcluster.AuditResult      `json:"audit"`
	}
	dec := json.NewDecoder(&stdout)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&res); err != nil {
		t.Fatalf("demo output is not the documented JSON object: %v", err)
	}
	unhex := func(s string, n int) []byte {
		b, err := hex.DecodeString(s)
		if err != nil || (n > 0 && len(b) != n) {
			t.Fatalf("%q: want %d hex bytes", s, n)
		}
		return b
	}
	// The refresh: same public key, next epoch, every party destroyed
	// the old one, and the new shares sign.
	rf := res.Refresh
	if rf.PublicKey != res.EdDSA.PK || rf.ToEpoch != rf.FromEpoch+1 || !rf.SignatureOK || len(rf.Destroyed) != 3 {
		t.Fatalf("refresh: %+v", rf)
	}
	if res.Audit.Reshares != 1 {
		t.Fatalf("the audit step compared %d reshared epochs across parties, want the refresh's 1", res.Audit.Reshares)
	}
	for p, eps := range rf.Destroyed {
		if len(eps) != 1 || eps[0] != rf.FromEpoch {
			t.Fatalf("refresh: party %s destroyed epochs %v, want [%d]", p, eps, rf.FromEpoch)
		}
	}
	pkBytes := unhex(res.ECDSA.PK, 33)
	pk, err := secp256k1.ParsePubKey(pkBytes)
	if err != nil {
		t.Fatal(err)
	}
	sig := unhex(res.ECDSA.Sig, 64)
	digest := unhex(res.ECDSA.D, 32)
	compact := append([]byte{byte(27 + 4 + res.ECDSA.RecoveryID)}, sig...)
	rec, _, err := secpecdsa.RecoverCompact(compact, digest)
	if err != nil || !rec.IsEqual(pk) {
		t.Fatalf("ecdsa signature/recovery id do not recover the public key: %v", err)
	}
	var s secp256k1.ModNScalar
	s.SetByteSlice(sig[32:])
	if s.IsOverHalfOrder() {
		t.Fatal("ecdsa signature is not low-S")
	}
	// The key's Ethereum address, from the public key alone.
	ecPub, err := crypto.DecompressPubkey(pkBytes)
	if err != nil {
		t.Fatal(err)
	}
	addr := crypto.PubkeyToAddress(*ecPub)
	if res.ECDSA.Address != addr.Hex() {
		t.Fatalf("demo reports address %s, the public key's is %s", res.ECDSA.Address, addr)
	}
	allowlisted := common.HexToAddress("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed")
	smallWei, _ := new(big.Int).SetString("50000000000000000", 10)
	largeWei, _ := new(big.Int).SetString("2000000000000000000", 10)
	// checkTx decodes a signed transaction with go-ethereum: mainnet, to
	// the allowlisted address, the amount, and a sender that recovers to
	// the key's address.
	checkTx := func(what, rawHex string, wei *big.Int) *types.Transaction {
		t.Helper()
		var tx types.Transaction
		if err := tx.UnmarshalBinary(unhex(rawHex, 0)); err != nil {
			t.Fatalf("%s: transaction does not decode: %v", what, err)
		}
		signer := types.LatestSignerForChainID(big.NewInt(1))
		from, err := types.Sender(signer, &tx)
		if err != nil || from != addr {
			t.Fatalf("%s: sender %s (%v), want the key's address %s", what, from, err, addr)
		}
		if tx.Type() != types.DynamicFeeTxType || tx.ChainId().Cmp(big.NewInt(1)) != 0 || tx.To() == nil || *tx.To() != allowlisted || tx.Value().Cmp(wei) != 0 {
			t.Fatalf("%s: type %d chain %s to %v value %s, want an EIP-1559 mainnet transfer of %s wei to %s", what, tx.Type(), tx.ChainId(), tx.To(), tx.Value(), wei, allowlisted)
		}
		return &tx
	}
	first := checkTx("first ECDSA signature", res.ECDSA.Transaction, smallWei)
	if h := types.LatestSignerForChainID(big.NewInt(1)).Hash(first); !bytes.Equal(h[:], digest) {
		t.Fatalf("signed digest %x is not the transaction's signing hash %x", digest, h)
	}
	statement := sha256.Sum256([]byte(res.EdDSA.Statement))
	if msg := unhex(res.EdDSA.Msg, 32); !bytes.Equal(msg, statement[:]) {
		t.Fatalf("eddsa message %x is not SHA-256 of the statement %q", msg, res.EdDSA.Statement)
	}
	if !ed25519.Verify(unhex(res.EdDSA.PK, 32), unhex(res.EdDSA.Msg, 0), unhex(res.EdDSA.Sig, 64)) {
		t.Fatal("eddsa signature does not verify under crypto/ed25519")
	}
	if !res.Restart || !res.TwoOf3 || !res.Refused || !strings.Contains(res.RefusalMs, "pcr0 mismatch") {
		t.Fatalf("demo outcome flags: %+v", res)
	}
	// Party b sealed with its TPM and signed (after the restart, with c
	// stopped); with another binary its peers refuse its quote and its TPM
	// refuses to unseal.
	if res.TPMParty != "b" || !res.TPMRefused || !strings.Contains(res.TPMRefusalMsg, `refusing peer "b": tpm: pcr23 mismatch`) ||
		!res.TPMUnseal || !strings.Contains(res.TPMUnsealMsg, "pcr policy failed: pcr 23") {
		t.Fatalf("demo tpm outcome: party %q refused %v (%s) unseal refused %v (%s)", res.TPMParty, res.TPMRefused, res.TPMRefusalMsg, res.TPMUnseal, res.TPMUnsealMsg)
	}

	// After the demo every party's audit log verifies (attested boots, the
	// TPM party's included) and the signers agree on every request.
	for _, id := range []string{"a", "b", "c"} {
		p, ok := res.Audit.Parties[id]
		if !ok || !p.Verified || p.Entries < 10 || p.Boots < 2 || p.Checkpoints < 1 {
			t.Fatalf("audit log of %s: %+v", id, p)
		}
	}
	if !res.Audit.CrossPartyOK || res.Audit.Requests < 8 {
		t.Fatalf("cross-party audit check: ok %v over %d requests: %v", res.Audit.CrossPartyOK, res.Audit.Requests, res.Audit.Findings)
	}

	// The governance story.
	g := res.Gov
	if g.Client != "treasury-app" || !strings.HasPrefix(g.ClusterID, "dev-") {
		t.Fatalf("governance: client %q cluster %q", g.Client, g.ClusterID)
	}
	if g.InLimit.RuleID != "eth-small" || g.InLimit.Sender != addr.Hex() {
		t.Fatalf("in-limit transfer: %+v", g.InLimit)
	}
	checkTx("in-limit transfer", g.InLimit.Transaction, smallWei)
	o := g.OverLimit
	if o.PendingRule != "eth-large" || o.NeededFirst != 2 || o.NeededAfterOne != 1 || !slices.Equal(o.Approvers, []string{"approver-alice", "approver-bob"}) ||
		o.RuleID != "eth-large" || o.Sender != addr.Hex() {
		t.Fatalf("over-limit transfer: %+v", o)
	}
	checkTx("over-limit transfer", o.Transaction, largeWei)
	hasDenial := func(what string, d devcluster.Denied, code, rule, limit, clause string) {
		t.Helper()
		if d.State != "denied" {
			t.Fatalf("%s: state %q, want denied", what, d.State)
		}
		if !slices.ContainsFunc(d.Denials, func(x api.Denial) bool {
			return x.Code == code && x.RuleID == rule && x.LimitID == limit && strings.Contains(x.Clause, clause)
		}) {
			t.Fatalf("%s: denials %+v lack %s rule %q limit %q clause %q", what, d.Denials, code, rule, limit, clause)
		}
	}
	hasDenial("not allowlisted", g.NotAllowlisted, "condition-false", "eth-small", "", "t.to in")
	hasDenial("raw digest on the ECDSA key", g.RawOnECDSA, "deny-rule-matched", "deny-raw", "", "")
	v := g.Velocity
	if v.Rule != "eth-small" || v.Limit != "key-rate" || v.MaxCount != 5 || v.Window != 600 ||
		v.SignedBefore+v.SignedInStep != 5 || v.SignedBefore < 1 || v.TrippedAt != 6 {
		t.Fatalf("velocity: %+v", v)
	}
	hasDenial("velocity", v.Denied, "velocity-exceeded", "eth-small", "key-rate", "")
	for what, r := range map[string]devcluster.Refused{"foreign key": g.ForeignKey, "tampered payload": g.Tampered} {
		if !r.Refused || !strings.Contains(r.Message, "signature") {
			t.Fatalf("%s: %+v, want a refusal naming the signature", what, r)
		}
	}
	p := g.Policy
	for _, party := range []string{"a", "b", "c"} {
		if !strings.Contains(p.OneAdmin[party], "admin signatures") || !strings.Contains(p.Rollback[party], "not newer") ||
			p.Accepted[party] != 2 || p.Status[party] != 2 {
			t.Fatalf("policy updates, party %s: one admin %q, rollback %q, accepted v%d, status v%d", party, p.OneAdmin[party], p.Rollback[party], p.Accepted[party], p.Status[party])
		}
	}
	for _, k := range []string{"keygen_ecdsa", "keygen_eddsa", "sign_ecdsa", "sign_eddsa", "gov_over_limit", "gov_velocity", "gov_policy_update", "total"} {
		if res.Timings[k] <= 0 {
			t.Fatalf("timing %q missing: %v", k, res.Timings)
		}
	}
}
