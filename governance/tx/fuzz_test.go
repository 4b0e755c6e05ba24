package tx

import (
	"bytes"
	"crypto/ed25519"
	"math/big"
	"strings"
	"testing"

	"github.com/btcsuite/btcd/btcutil/psbt"
	"github.com/btcsuite/btcd/txscript"
	"github.com/btcsuite/btcd/wire"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
)

// checkSummary asserts the invariants every successful decode must hold.
func checkSummary(t *testing.T, kind Kind, payload []byte, d *Decoded) {
	t.Helper()
	s := d.Summary
	if s.Kind != kind {
		t.Fatalf("kind %q, want %q", s.Kind, kind)
	}
	if s.PayloadHash != PayloadHash(kind, payload) {
		t.Fatal("payload hash does not match the payload")
	}
	if len(s.Digests) == 0 {
		t.Fatal("no digests")
	}
	for i, tr := range s.Transfers {
		if tr.Amount == nil || tr.Amount.Sign() < 0 {
			t.Fatalf("transfer %d amount %v, want non-nil and non-negative", i, tr.Amount)
		}
		if tr.To == "" || tr.Asset == "" || (tr.Action != ActionTransfer && tr.Action != ActionApprove) {
			t.Fatalf("transfer %d incomplete: %+v", i, tr)
		}
	}
	if kind != KindRaw && (s.Fee == nil || s.Fee.Sign() < 0) {
		t.Fatalf("fee %v, want non-nil and non-negative", s.Fee)
	}
}

func FuzzDecodeEVM(f *testing.F) {
	v := loadVector(f, "eip155-example.txt")
	f.Add(mustHex(f, v["signing_data"]))
	to := common.HexToAddress("0xd8dA6BF26964aF9D7eEd9e03E53415D37aA96045")
	one, gwei := big.NewInt(1), big.NewInt(1e9)
	al := types.AccessList{{Address: to, StorageKeys: []common.Hash{{2}}}}
	seeds := [][]byte{
		typedPayload(f, 1, one, uint64(1), gwei, uint64(21000), to, one, []byte{}, al),
		typedPayload(f, 2, one, uint64(1), gwei, gwei, uint64(60000), to, big.NewInt(0), erc20Call(selectorTransfer, to.Bytes(), one), types.AccessList{}),
		typedPayload(f, 2, one, uint64(1), gwei, gwei, uint64(60000), to, big.NewInt(0), erc20Call(selectorApprove, to.Bytes(), one), types.AccessList{}),
		typedPayload(f, 2, one, uint64(1), gwei, gwei, uint64(60000), []byte{}, one, []byte{0x60}, types.AccessList{}),
		legacyPayload(f, uint64(1), gwei, uint64(21000), to, one, []byte{}),
		typedPayload(f, 3, one, uint64(1), gwei, gwei, uint64(21000), to, one, []byte{}, types.AccessList{}),
		{0x02}, {0xc0}, {},
	}
	for _, s := range seeds {
		f.Add(s)
		if len(s) > 2 {
			f.Add(s[:len(s)-1])
			f.Add(append(append([]byte(nil), s...), 0))
		}
	}
	priv, key := testKey(f, 0x55)
	f.Fuzz(func(t *testing.T, payload []byte) {
		d, err := Decode(KindEVM, payload, key, Options{})
		if err != nil {
			if d != nil || !strings.HasPrefix(err.Error(), "tx: ") {
				t.Fatalf("error %q with Decoded %v", err, d)
			}
			return
		}
		checkSummary(t, KindEVM, payload, d)
		s := d.Summary
		if len(s.Digests) != 1 || !bytes.Equal(s.Digests[0], crypto.Keccak256(payload)) {
			t.Fatalf("digests %x, want [keccak256(payload)]", s.Digests)
		}
		if !strings.HasPrefix(s.Chain, "eip155:") {
			t.Fatalf("chain %q", s.Chain)
		}
		for _, tr := range s.Transfers {
			if !common.IsHexAddress(tr.To) || common.HexToAddress(tr.To).Hex() != tr.To {
				t.Fatalf("destination %q is not EIP-55 hex", tr.To)
			}
		}
		// Round trip: the assembled transaction is the decoded one.
		raw, err := d.Assemble([]Signature{signDigest(priv, s.Digests[0])})
		if err != nil {
			t.Fatalf("assemble: %v", err)
		}
		var signed types.Transaction
		if err := signed.UnmarshalBinary(raw); err != nil {
			t.Fatalf("assembled bytes do not parse: %v", err)
		}
		signer := types.LatestSignerForChainID(signed.ChainId())
		if h := signer.Hash(&signed); !bytes.Equal(h[:], s.Digests[0]) || "eip155:"+signed.ChainId().String() != s.Chain {
			t.Fatalf("assembled tx hash %x chain %s, want %x %s", h, signed.ChainId(), s.Digests[0], s.Chain)
		}
	})
}

func FuzzDecodePSBT(f *testing.F) {
	priv, key := testKey(f, 0x11)
	ours := p2wpkhOf(priv.PubKey())
	dest := mustHex(f, destP2WPKH)
	spec := psbtSpec{inputs: []int64{10_000, 20_000}, script: ours, outputs: []*wire.TxOut{
		{Value: 25_000, PkScript: dest}, {Value: 4_000, PkScript: ours}, {Value: 0, PkScript: []byte{txscript.OP_RETURN, 1, 7}},
	}}
	seeds := [][]byte{
		buildPSBT(f, spec, nil),
		buildPSBT(f, psbtSpec{inputs: []int64{5000}, script: ours, outputs: []*wire.TxOut{{Value: 4000, PkScript: mustHex(f, destP2TR)}}}, nil),
		buildPSBT(f, spec, func(p *psbt.Packet) { p.Inputs[0].NonWitnessUtxo = nil }),
		buildPSBT(f, spec, func(p *psbt.Packet) { p.Inputs[1].SighashType = txscript.SigHashNone }),
		buildPSBT(f, spec, func(p *psbt.Packet) { p.Inputs[0].WitnessUtxo = wire.NewTxOut(1, ours) }),
		[]byte("psbt\xff"), {},
	}
	for _, s := range seeds {
		f.Add(s, false)
		f.Add(s, true)
		if len(s) > 10 {
			f.Add(s[:len(s)/2], false)
		}
	}
	f.Fuzz(func(t *testing.T, payload []byte, allowWitnessOnly bool) {
		d, err := Decode(KindPSBT, payload, key, Options{AllowWitnessUTXOOnly: allowWitnessOnly})
		if err != nil {
			if d != nil || !strings.HasPrefix(err.Error(), "tx: ") {
				t.Fatalf("error %q with Decoded %v", err, d)
			}
			return
		}
		checkSummary(t, KindPSBT, payload, d)
		s := d.Summary
		p, err := psbt.NewFromRawBytes(bytes.NewReader(payload), false)
		if err != nil {
			t.Fatalf("decoded, but the library cannot re-parse: %v", err)
		}
		if len(s.Digests) != len(p.UnsignedTx.TxIn) || len(s.Transfers) != len(p.UnsignedTx.TxOut) {
			t.Fatalf("%d digests and %d transfers for %d inputs and %d outputs", len(s.Digests), len(s.Transfers), len(p.UnsignedTx.TxIn), len(p.UnsignedTx.TxOut))
		}
		for i, dg := range s.Digests {
			if len(dg) != 32 {
				t.Fatalf("digest %d is %d bytes", i, len(dg))
			}
		}
		// Inputs = outputs + fee, as the summary reports them.
		in := new(big.Int)
		for i := range p.Inputs {
			out := p.Inputs[i].WitnessUtxo
			if out == nil {
				out = p.Inputs[i].NonWitnessUtxo.TxOut[p.UnsignedTx.TxIn[i].PreviousOutPoint.Index]
			}
			in.Add(in, big.NewInt(out.Value))
		}
		sum := new(big.Int).Set(s.Fee)
		for _, tr := range s.Transfers {
			sum.Add(sum, tr.Amount)
		}
		if sum.Cmp(in) != 0 {
			t.Fatalf("outputs + fee = %s, inputs = %s", sum, in)
		}
		raw, err := d.Assemble(signAll(priv, s.Digests))
		if err != nil {
			t.Fatalf("assemble: %v", err)
		}
		final := wire.NewMsgTx(2)
		if err := final.Deserialize(bytes.NewReader(raw)); err != nil || final.TxHash() != p.UnsignedTx.TxHash() {
			t.Fatalf("assembled tx does not match (%v)", err)
		}
	})
}

func FuzzDecodeRaw(f *testing.F) {
	f.Add(make([]byte, 32), false)
	f.Add(make([]byte, 31), false)
	f.Add([]byte("message"), true)
	f.Add([]byte{}, true)
	ecPriv, ecKey := testKey(f, 0x66)
	edPriv, edk := edKey(0x77)
	f.Fuzz(func(t *testing.T, payload []byte, ed bool) {
		key := ecKey
		if ed {
			key = edk
		}
		d, err := Decode(KindRaw, payload, key, Options{})
		if err != nil {
			if d != nil || !strings.HasPrefix(err.Error(), "tx: ") {
				t.Fatalf("error %q with Decoded %v", err, d)
			}
			return
		}
		checkSummary(t, KindRaw, payload, d)
		s := d.Summary
		if len(s.Digests) != 1 || !bytes.Equal(s.Digests[0], payload) || s.Fee != nil || len(s.Transfers) != 0 {
			t.Fatalf("summary %+v, want the payload as the only digest", s)
		}
		var sig Signature
		if ed {
			sig = Signature{RS: ed25519.Sign(edPriv, payload)}
		} else {
			if len(payload) != 32 {
				t.Fatalf("ECDSA digest of %d bytes accepted", len(payload))
			}
			sig = signDigest(ecPriv, payload)
		}
		out, err := d.Assemble([]Signature{sig})
		if err != nil || !bytes.Equal(out[:64], sig.RS) {
			t.Fatalf("assemble: %x, %v", out, err)
		}
	})
}
