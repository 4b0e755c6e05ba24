package tx

import (
	"bytes"
	"encoding/hex"
	"math/big"
	"testing"

	"github.com/btcsuite/btcd/btcec/v2"
	becdsa "github.com/btcsuite/btcd/btcec/v2/ecdsa"
	"github.com/btcsuite/btcd/btcutil"
	"github.com/btcsuite/btcd/btcutil/psbt"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/btcsuite/btcd/txscript"
	"github.com/btcsuite/btcd/wire"
	"github.com/decred/dcrd/dcrec/secp256k1/v4"
)

// Well-known destination scripts with their published addresses.
var (
	// BIP-173 example: P2WPKH of 0x751e76e8199196d454941c45d1b3a323f1433bd6.
	destP2WPKH     = "0014751e76e8199196d454941c45d1b3a323f1433bd6"
	destP2WPKHMain = "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"
	destP2WPKHTest = "tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx"
	// BIP-350 example: P2TR of the secp256k1 generator's x coordinate.
	destP2TR     = "512079be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
	destP2TRMain = "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0"
)

func p2wpkhOf(pub *secp256k1.PublicKey) []byte {
	return append([]byte{0x00, 0x14}, btcutil.Hash160(pub.SerializeCompressed())...)
}

// fundingTx returns a previous transaction whose output 1 pays value to
// script (output 0 is filler, so the outpoint index is exercised).
func fundingTx(seed byte, value int64, script []byte) *wire.MsgTx {
	prev := wire.NewMsgTx(2)
	prev.AddTxIn(wire.NewTxIn(&wire.OutPoint{Hash: chainhash.Hash{seed, 0xfe}, Index: 3}, nil, nil))
	prev.AddTxOut(wire.NewTxOut(1234, []byte{txscript.OP_TRUE}))
	prev.AddTxOut(wire.NewTxOut(value, script))
	return prev
}

type psbtSpec struct {
	inputs  []int64       // amounts, each paid to script
	script  []byte        // the inputs' script (the key's P2WPKH)
	outputs []*wire.TxOut // destination and change
}

// buildPSBT makes an unsigned PSBT with witness_utxo and non_witness_utxo
// on every input; mutate (if any) edits it before serialization.
func buildPSBT(t testing.TB, spec psbtSpec, mutate func(*psbt.Packet)) []byte {
	t.Helper()
	tx := wire.NewMsgTx(2)
	prevs := make([]*wire.MsgTx, len(spec.inputs))
	for i, v := range spec.inputs {
		prevs[i] = fundingTx(byte(i), v, spec.script)
		tx.AddTxIn(wire.NewTxIn(&wire.OutPoint{Hash: prevs[i].TxHash(), Index: 1}, nil, nil))
	}
	for _, o := range spec.outputs {
		tx.AddTxOut(wire.NewTxOut(o.Value, o.PkScript))
	}
	tx.LockTime = 850000
	p, err := psbt.NewFromUnsignedTx(tx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range p.Inputs {
		p.Inputs[i].NonWitnessUtxo = prevs[i]
		p.Inputs[i].WitnessUtxo = prevs[i].TxOut[1]
	}
	if mutate != nil {
		mutate(p)
	}
	var buf bytes.Buffer
	if err := p.Serialize(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestPSBTSignAndValidate(t *testing.T) {
	priv, key := testKey(t, 0x11)
	ours := p2wpkhOf(priv.PubKey())
	dest := mustHex(t, destP2WPKH)
	opReturn := append([]byte{txscript.OP_RETURN, 0x04}, []byte("seal")...)

	cases := []struct {
		name      string
		spec      psbtSpec
		opts      Options
		mutate    func(*psbt.Packet)
		chain     string
		to        []string
		change    []bool
		fee       int64
		witnessed bool
	}{
		{
			name:  "one input, no change",
			spec:  psbtSpec{inputs: []int64{100_000}, script: ours, outputs: []*wire.TxOut{{Value: 99_000, PkScript: dest}}},
			chain: "bip122:000000000019d6689c085ae165831e93", to: []string{destP2WPKHMain}, change: []bool{false}, fee: 1_000,
		},
		{
			name: "three inputs with change and taproot destination",
			spec: psbtSpec{inputs: []int64{50_000, 70_000, 30_000}, script: ours, outputs: []*wire.TxOut{
				{Value: 120_000, PkScript: mustHex(t, destP2TR)},
				{Value: 28_500, PkScript: ours},
			}},
			chain: "bip122:000000000019d6689c085ae165831e93", to: []string{destP2TRMain, ""}, change: []bool{false, true}, fee: 1_500,
		},
		{
			name:  "testnet3 with OP_RETURN and explicit SIGHASH_ALL",
			spec:  psbtSpec{inputs: []int64{10_000, 20_000}, script: ours, outputs: []*wire.TxOut{{Value: 29_000, PkScript: dest}, {Value: 0, PkScript: opReturn}}},
			opts:  Options{BitcoinNetwork: "testnet3"},
			chain: "bip122:000000000933ea01ad0ee984209779ba", to: []string{destP2WPKHTest, "op_return:" + hex.EncodeToString(opReturn)}, change: []bool{false, false}, fee: 1_000,
			mutate: func(p *psbt.Packet) {
				for i := range p.Inputs {
					p.Inputs[i].SighashType = txscript.SigHashAll
				}
			},
		},
		{
			name:  "witness_utxo only, allowed",
			spec:  psbtSpec{inputs: []int64{10_000}, script: ours, outputs: []*wire.TxOut{{Value: 9_000, PkScript: dest}}},
			opts:  Options{BitcoinNetwork: "regtest", AllowWitnessUTXOOnly: true},
			chain: "bip122:0f9188f13cb7b2c71f2a335e3a4fc328", to: []string{"bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"}, change: []bool{false}, fee: 1_000,
			mutate: func(p *psbt.Packet) { p.Inputs[0].NonWitnessUtxo = nil },
		},
		{
			name:  "non_witness_utxo only (signet)",
			spec:  psbtSpec{inputs: []int64{10_000}, script: ours, outputs: []*wire.TxOut{{Value: 9_500, PkScript: dest}}},
			opts:  Options{BitcoinNetwork: "signet"},
			chain: "bip122:00000008819873e925422c1ff0f99f7c", to: []string{destP2WPKHTest}, change: []bool{false}, fee: 500,
			mutate: func(p *psbt.Packet) { p.Inputs[0].WitnessUtxo = nil },
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			payload := buildPSBT(t, c.spec, c.mutate)
			d, err := Decode(KindPSBT, payload, key, c.opts)
			if err != nil {
				t.Fatal(err)
			}
			s := d.Summary
			if s.Chain != c.chain || s.Method != "psbt" || s.Kind != KindPSBT {
				t.Fatalf("chain %q method %q kind %q, want %q psbt btc-psbt", s.Chain, s.Method, s.Kind, c.chain)
			}
			if s.Fee.Cmp(big.NewInt(c.fee)) != 0 {
				t.Fatalf("fee %s, want %d", s.Fee, c.fee)
			}
			if len(s.Transfers) != len(c.spec.outputs) {
				t.Fatalf("%d transfers, want %d", len(s.Transfers), len(c.spec.outputs))
			}
			for i, tr := range s.Transfers {
				if tr.Asset != "BTC" || tr.Action != ActionTransfer || tr.Amount.Int64() != c.spec.outputs[i].Value || tr.Change != c.change[i] {
					t.Fatalf("transfer %d = %+v, want %d sat change=%v", i, tr, c.spec.outputs[i].Value, c.change[i])
				}
				if c.to[i] != "" && tr.To != c.to[i] {
					t.Fatalf("transfer %d to %q, want %q", i, tr.To, c.to[i])
				}
			}
			if len(s.Digests) != len(c.spec.inputs) {
				t.Fatalf("%d digests, want one per input (%d)", len(s.Digests), len(c.spec.inputs))
			}

			raw, err := d.Assemble(signAll(priv, s.Digests))
			if err != nil {
				t.Fatal(err)
			}
			final := wire.NewMsgTx(2)
			if err := final.Deserialize(bytes.NewReader(raw)); err != nil {
				t.Fatalf("assembled bytes are not a transaction: %v", err)
			}
			unsigned, _ := psbt.NewFromRawBytes(bytes.NewReader(payload), false)
			if final.TxHash() != unsigned.UnsignedTx.TxHash() {
				t.Fatalf("txid changed: %s, want %s", final.TxHash(), unsigned.UnsignedTx.TxHash())
			}
			// Independent check: the script interpreter accepts every input.
			fetch := txscript.NewMultiPrevOutFetcher(nil)
			for i, in := range final.TxIn {
				fetch.AddPrevOut(in.PreviousOutPoint, wire.NewTxOut(c.spec.inputs[i], ours))
			}
			hashes := txscript.NewTxSigHashes(final, fetch)
			for i := range final.TxIn {
				if len(final.TxIn[i].Witness) != 2 || len(final.TxIn[i].SignatureScript) != 0 {
					t.Fatalf("input %d witness %x sigScript %x, want [sig, pubkey] and empty", i, final.TxIn[i].Witness, final.TxIn[i].SignatureScript)
				}
				vm, err := txscript.NewEngine(ours, final, i, txscript.StandardVerifyFlags, nil, hashes, c.spec.inputs[i], fetch)
				if err != nil {
					t.Fatal(err)
				}
				if err := vm.Execute(); err != nil {
					t.Fatalf("input %d does not validate: %v", i, err)
				}
			}
		})
	}
}

func TestPSBTRejects(t *testing.T) {
	priv, key := testKey(t, 0x11)
	ours := p2wpkhOf(priv.PubKey())
	otherPriv, _ := testKey(t, 0x22)
	foreign := p2wpkhOf(otherPriv.PubKey())
	dest := mustHex(t, destP2WPKH)
	two := psbtSpec{inputs: []int64{10_000, 20_000}, script: ours, outputs: []*wire.TxOut{{Value: 25_000, PkScript: dest}, {Value: 4_000, PkScript: ours}}}
	valid := buildPSBT(t, two, nil)
	setOut := func(i int, v int64, script []byte) func(*psbt.Packet) {
		return func(p *psbt.Packet) { p.UnsignedTx.TxOut[i] = wire.NewTxOut(v, script) }
	}
	// foreignInput replaces input 1 with one funded to script.
	foreignInput := func(script []byte) func(*psbt.Packet) {
		return func(p *psbt.Packet) {
			prev := fundingTx(9, 20_000, script)
			p.UnsignedTx.TxIn[1].PreviousOutPoint = wire.OutPoint{Hash: prev.TxHash(), Index: 1}
			p.Inputs[1].NonWitnessUtxo = prev
			p.Inputs[1].WitnessUtxo = prev.TxOut[1]
		}
	}
	many := psbtSpec{script: ours, outputs: []*wire.TxOut{{Value: 1, PkScript: dest}}}
	for i := 0; i <= MaxBitcoinInputs; i++ {
		many.inputs = append(many.inputs, 1000)
	}

	cases := []struct {
		name     string
		payload  []byte
		opts     Options
		class    error
		fragment string
	}{
		{"garbage", []byte("not a psbt"), Options{}, ErrMalformed, "not a BIP-174"},
		{"empty", nil, Options{}, ErrMalformed, "not a BIP-174"},
		{"base64 instead of binary", []byte("cHNidP8BAHECAAAAAQ=="), Options{}, ErrMalformed, "not a BIP-174"},
		{"truncated", valid[:len(valid)-3], Options{}, ErrMalformed, "not a BIP-174"},
		{"trailing bytes", append(append([]byte(nil), valid...), 0x00), Options{}, ErrMalformed, "1 trailing bytes"},
		{"unknown network", valid, Options{BitcoinNetwork: "testnet4"}, ErrUnsupported, `"testnet4" unknown`},
		{"foreign P2WPKH input", buildPSBT(t, two, foreignInput(foreign)), Options{}, ErrKeyMismatch, "input 1 spends from bc1q"},
		{"taproot input", buildPSBT(t, two, foreignInput(mustHex(t, destP2TR))), Options{}, ErrUnsupported, "input 1 spends a witness_v1_taproot output"},
		{"P2PKH input", buildPSBT(t, two, foreignInput(mustHex(t, "76a91477bff20c60e522dfaa3350c39b030a5d004e839a88ac"))), Options{}, ErrUnsupported, "input 1 spends a pubkeyhash output"},
		{"missing non_witness_utxo", buildPSBT(t, two, func(p *psbt.Packet) { p.Inputs[0].NonWitnessUtxo = nil }), Options{}, ErrMalformed, "input 0 has witness_utxo but no non_witness_utxo"},
		{"missing both utxos", buildPSBT(t, two, func(p *psbt.Packet) { p.Inputs[1].NonWitnessUtxo, p.Inputs[1].WitnessUtxo = nil, nil }), Options{AllowWitnessUTXOOnly: true}, ErrMalformed, "input 1 has neither"},
		{"non_witness_utxo of another transaction", buildPSBT(t, two, func(p *psbt.Packet) { p.Inputs[1].NonWitnessUtxo = fundingTx(7, 20_000, ours) }), Options{}, ErrMalformed, "input 1 non_witness_utxo has txid"},
		// The segwit fee attack: the witness_utxo understates nothing on
		// its own, but disagrees with the previous transaction it claims.
		{"witness_utxo amount lies", buildPSBT(t, two, func(p *psbt.Packet) { p.Inputs[0].WitnessUtxo = wire.NewTxOut(100_000, ours) }), Options{}, ErrMalformed, "input 0 witness_utxo (100000 sat"},
		{"witness_utxo script lies", buildPSBT(t, two, func(p *psbt.Packet) { p.Inputs[0].WitnessUtxo = wire.NewTxOut(10_000, foreign) }), Options{}, ErrMalformed, "differs from non_witness_utxo"},
		{"outpoint index beyond non_witness_utxo", buildPSBT(t, two, func(p *psbt.Packet) {
			p.UnsignedTx.TxIn[0].PreviousOutPoint.Index = 5
		}), Options{}, ErrMalformed, "spends output 5, but non_witness_utxo has 2 outputs"},
		{"negative fee", buildPSBT(t, two, setOut(0, 26_001, dest)), Options{}, ErrMalformed, "negative fee"},
		{"SIGHASH_NONE", buildPSBT(t, two, func(p *psbt.Packet) { p.Inputs[1].SighashType = txscript.SigHashNone }), Options{}, ErrUnsupported, "input 1 asks for sighash type 0x2"},
		{"SIGHASH_ALL|ANYONECANPAY", buildPSBT(t, two, func(p *psbt.Packet) { p.Inputs[0].SighashType = txscript.SigHashAll | txscript.SigHashAnyOneCanPay }), Options{}, ErrUnsupported, "sighash type 0x81"},
		{"duplicate input", buildPSBT(t, two, func(p *psbt.Packet) {
			p.UnsignedTx.TxIn[1].PreviousOutPoint = p.UnsignedTx.TxIn[0].PreviousOutPoint
			p.Inputs[1] = p.Inputs[0]
		}), Options{}, ErrMalformed, "input 1 spends"},
		{"redeem script", buildPSBT(t, two, func(p *psbt.Packet) { p.Inputs[0].RedeemScript = []byte{0x00, 0x14} }), Options{}, ErrUnsupported, "redeem or witness script"},
		{"already finalized", buildPSBT(t, two, func(p *psbt.Packet) { p.Inputs[0].FinalScriptWitness = []byte{0x00} }), Options{}, ErrUnsupported, "already finalized"},
		{"OP_RETURN with value", buildPSBT(t, two, setOut(1, 4_000, []byte{txscript.OP_RETURN})), Options{}, ErrUnsupported, "OP_RETURN with 4000 sat"},
		{"non-standard output", buildPSBT(t, two, setOut(1, 4_000, []byte{txscript.OP_TRUE})), Options{}, ErrUnsupported, "output 1 pays a nonstandard script"},
		{"bare multisig output", buildPSBT(t, two, setOut(1, 4_000, append(append([]byte{txscript.OP_1, txscript.OP_DATA_33}, priv.PubKey().SerializeCompressed()...), txscript.OP_1, txscript.OP_CHECKMULTISIG))), Options{}, ErrUnsupported, "multisig"},
		{"witness v2 output", buildPSBT(t, two, setOut(1, 4_000, append([]byte{txscript.OP_2, 0x20}, make([]byte, 32)...))), Options{}, ErrUnsupported, "output 1 pays"},
		{"output above 21M BTC", buildPSBT(t, two, setOut(1, btcutil.MaxSatoshi+1, ours)), Options{}, ErrMalformed, "output 1 amount"},
		{"too many inputs", buildPSBT(t, many, nil), Options{}, ErrMalformed, "257 inputs"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, err := Decode(KindPSBT, c.payload, key, c.opts)
			if d != nil {
				t.Fatalf("got a Decoded for a refused payload")
			}
			wantErr(t, err, c.class, c.fragment)
		})
	}
}

func TestPSBTAssembleRejects(t *testing.T) {
	priv, key := testKey(t, 0x11)
	ours := p2wpkhOf(priv.PubKey())
	payload := buildPSBT(t, psbtSpec{inputs: []int64{10_000, 20_000}, script: ours, outputs: []*wire.TxOut{{Value: 29_000, PkScript: mustHex(t, destP2WPKH)}}}, nil)
	d, err := Decode(KindPSBT, payload, key, Options{})
	if err != nil {
		t.Fatal(err)
	}
	good := signAll(priv, d.Summary.Digests)
	cases := []struct {
		name     string
		sigs     []Signature
		fragment string
	}{
		{"one for two inputs", good[:1], "got 1 signatures, want 2"},
		{"swapped", []Signature{good[1], good[0]}, "signature 0 does not verify"},
		{"second over wrong digest", []Signature{good[0], good[0]}, "signature 1 does not verify"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, err := d.Assemble(c.sigs)
			if out != nil {
				t.Fatal("got output for bad signatures")
			}
			wantErr(t, err, ErrBadSignature, c.fragment)
		})
	}
	// Bitcoin carries no recovery id, so a wrong one is not an error.
	flipped := append([]Signature(nil), good...)
	flipped[0].RecoveryID = 1 - flipped[0].RecoveryID
	a, err := d.Assemble(flipped)
	if err != nil {
		t.Fatal(err)
	}
	b, err := d.Assemble(good)
	if err != nil || !bytes.Equal(a, b) {
		t.Fatalf("assembly differs with recovery id (%v)", err)
	}
}

// TestBIP143KnownAnswer checks the sighash path against the BIP-143 native
// P2WPKH example, and that r‖s from a threshold signer becomes the BIP's
// exact DER signature.
func TestBIP143KnownAnswer(t *testing.T) {
	v := loadVector(t, "bip143-native-p2wpkh.txt")
	tx := wire.NewMsgTx(1)
	if err := tx.Deserialize(bytes.NewReader(mustHex(t, v["unsigned_tx"]))); err != nil {
		t.Fatal(err)
	}
	priv, pub := btcec.PrivKeyFromBytes(mustHex(t, v["private_key"]))
	if got := hex.EncodeToString(pub.SerializeCompressed()); got != v["public_key"] {
		t.Fatalf("public key %s, want %s", got, v["public_key"])
	}
	script := mustHex(t, v["script_pubkey"])
	if !bytes.Equal(script, p2wpkhScript(pub.SerializeCompressed())) {
		t.Fatalf("p2wpkhScript = %x, want %x", p2wpkhScript(pub.SerializeCompressed()), script)
	}
	// Input 0's previous output does not enter a BIP-143 digest of input 1;
	// any value will do.
	prevOuts := []*wire.TxOut{wire.NewTxOut(0, []byte{txscript.OP_TRUE}), wire.NewTxOut(600_000_000, script)}
	digests, err := witnessSighashes(tx, prevOuts, script)
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(digests[1][:]); got != v["sighash"] {
		t.Fatalf("sighash %s, want %s", got, v["sighash"])
	}
	der := becdsa.Sign(priv, digests[1][:]).Serialize() // RFC 6979
	if got := hex.EncodeToString(der); got != v["signature_der"] {
		t.Fatalf("RFC 6979 signature %s, want %s", got, v["signature_der"])
	}
	sig := signDigest(priv, digests[1][:])
	parsed, err := verifyECDSA(pub, digests[1], sig, 1, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(parsed.Serialize()); got != v["signature_der"] {
		t.Fatalf("DER from r‖s %s, want %s", got, v["signature_der"])
	}
}
