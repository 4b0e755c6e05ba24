package party

import (
	"bytes"
	"strings"
	"testing"

	"github.com/btcsuite/btcd/btcutil"
	"github.com/btcsuite/btcd/btcutil/psbt"
	"github.com/btcsuite/btcd/chaincfg"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/btcsuite/btcd/txscript"
	"github.com/btcsuite/btcd/wire"

	"github.com/sealsign/sealsign/governance/tx"
)

// psbtPolicy allows mainnet PSBTs paying under 0.1 BTC (change excluded)
// to one allowlisted address.
const psbtPolicy = `{"format": 1, "cluster_id": "test", "version": 1, "issued_at": 1767225600, "not_before": 1767225600, "update_time_lock": 0,
 "rules": [{"id": "btc-small", "effect": "allow",
  "condition": "request.chain == 'bip122:000000000019d6689c085ae165831e93' && request.method == 'psbt' && request.transfers.all(t, t.change || t.to == 'bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4') && request.transfers.filter(t, !t.change).map(t, t.amount).sum() < units('10000000') && request.fee <= units('200000')"}]}`

// TestGovernedPSBT signs a two-input P2WPKH PSBT with the threshold key:
// one tss-lib run per input (BIP-143 digest), assembled into a finalized
// transaction that btcd's script interpreter accepts input by input, and
// the same on both signers. Over the limit it is denied.
func TestGovernedPSBT(t *testing.T) {
	c, key := ecdsaCluster(t, []byte(psbtPolicy))
	ours := append([]byte{0x00, 0x14}, btcutil.Hash160(key.PublicKey)...)
	dest, _ := txscriptPayTo(t, "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4")
	inputs := []int64{8_000_000, 5_000_000}
	build := func(pay int64) []byte {
		unsigned := wire.NewMsgTx(2)
		var prevs []*wire.MsgTx
		for i, v := range inputs {
			prev := wire.NewMsgTx(2)
			prev.AddTxIn(wire.NewTxIn(&wire.OutPoint{Hash: chainhash.Hash{byte(i), 0xab}, Index: 0}, nil, nil))
			prev.AddTxOut(wire.NewTxOut(v, ours))
			prevs = append(prevs, prev)
			unsigned.AddTxIn(wire.NewTxIn(&wire.OutPoint{Hash: prev.TxHash(), Index: 0}, nil, nil))
		}
		unsigned.AddTxOut(wire.NewTxOut(pay, dest))
		unsigned.AddTxOut(wire.NewTxOut(inputs[0]+inputs[1]-pay-10_000, ours)) // change, fee 10,000 sat
		p, err := psbt.NewFromUnsignedTx(unsigned)
		if err != nil {
			t.Fatal(err)
		}
		for i := range p.Inputs {
			p.Inputs[i].NonWitnessUtxo = prevs[i]
			p.Inputs[i].WitnessUtxo = prevs[i].TxOut[0]
		}
		var buf bytes.Buffer
		if err := p.Serialize(&buf); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}

	payload := build(4_000_000)
	req := c.gov.request(t, "test", key.KeyID, tx.KindPSBT, payload, c.clock())
	res := c.mustSign("a", key.KeyID, []string{"a", "b"}, req)
	got := res["a"]
	if len(got.Digests) != 2 || len(got.Signatures) != 2 {
		t.Fatalf("%d digests, %d signatures; want one per input (2)", len(got.Digests), len(got.Signatures))
	}
	if !bytes.Equal(got.Transaction, res["b"].Transaction) || len(got.Transaction) == 0 {
		t.Fatal("signers assembled different (or no) transactions")
	}
	final := wire.NewMsgTx(2)
	if err := final.Deserialize(bytes.NewReader(got.Transaction)); err != nil {
		t.Fatalf("assembled bytes are not a transaction: %v", err)
	}
	fetch := txscript.NewMultiPrevOutFetcher(nil)
	for i, in := range final.TxIn {
		fetch.AddPrevOut(in.PreviousOutPoint, wire.NewTxOut(inputs[i], ours))
	}
	hashes := txscript.NewTxSigHashes(final, fetch)
	for i := range final.TxIn {
		vm, err := txscript.NewEngine(ours, final, i, txscript.StandardVerifyFlags, nil, hashes, inputs[i], fetch)
		if err != nil {
			t.Fatal(err)
		}
		if err := vm.Execute(); err != nil {
			t.Fatalf("input %d does not validate under btcd's script engine: %v", i, err)
		}
	}
	// Each input's run is recorded: two session entries for the request.
	var sessions int
	for _, e := range auditEntries(t, c.hosts["b"]) {
		if e.Type == "session" && e.requestID() != "" {
			sessions++
		}
	}
	if sessions != 2 {
		t.Fatalf("b recorded %d session entries, want 2 (one per input)", sessions)
	}

	over := c.gov.request(t, "test", key.KeyID, tx.KindPSBT, build(10_000_000), c.clock())
	_, errs := c.sign("a", key.KeyID, []string{"a", "b"}, over)
	if errs["a"] == nil || !strings.Contains(errs["a"].Error(), "btc-small") {
		t.Fatalf("0.1 BTC payment: %v; want a denial naming btc-small", errs)
	}
}

func txscriptPayTo(t *testing.T, addr string) ([]byte, btcutil.Address) {
	t.Helper()
	a, err := btcutil.DecodeAddress(addr, &chaincfg.MainNetParams)
	if err != nil {
		t.Fatal(err)
	}
	s, err := txscript.PayToAddrScript(a)
	if err != nil {
		t.Fatal(err)
	}
	return s, a
}
