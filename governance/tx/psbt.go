package tx

import (
	"bytes"
	"encoding/hex"
	"math/big"

	"github.com/btcsuite/btcd/btcutil"
	"github.com/btcsuite/btcd/btcutil/psbt"
	"github.com/btcsuite/btcd/chaincfg"
	"github.com/btcsuite/btcd/txscript"
	"github.com/btcsuite/btcd/wire"
)

// A PSBT payload is the binary BIP-174 serialization. Every input must be a
// native segwit v0 P2WPKH output of the signing key, signed with
// SIGHASH_ALL; the enclave computes each BIP-143 sighash itself from the
// unsigned transaction and the previous outputs.
//
// Amounts: a BIP-143 sighash commits to the amount of the input it signs,
// but not to the other inputs' amounts, so the fee (inputs − outputs) is
// only as honest as the amounts the PSBT claims. Each input must therefore
// carry non_witness_utxo, the full previous transaction, whose txid is
// checked against the outpoint (unless Options.AllowWitnessUTXOOnly).
//
// Outputs: P2PKH, P2SH, P2WPKH, P2WSH and P2TR are accepted and shown as the
// network's address; an OP_RETURN (null data) output is accepted only with
// value 0 and is shown with To "op_return:" and the hex of the whole output
// script. Anything else (bare multisig, P2PK, unknown witness versions,
// non-standard scripts) is refused, since policy could not name its
// destination.

type psbtState struct {
	payload  []byte // re-parsed by Assemble so d is never mutated
	prevOuts []*wire.TxOut
	script   []byte // the key's P2WPKH script
}

func bitcoinParams(network string) (*chaincfg.Params, error) {
	switch network {
	case "", "mainnet":
		return &chaincfg.MainNetParams, nil
	case "testnet3":
		return &chaincfg.TestNet3Params, nil
	case "signet":
		return &chaincfg.SigNetParams, nil
	case "regtest":
		return &chaincfg.RegressionNetParams, nil
	default:
		return nil, errorf(ErrUnsupported, "bitcoin network %q unknown, want \"mainnet\", \"testnet3\", \"signet\" or \"regtest\"", network)
	}
}

// p2wpkhScript is OP_0 <HASH160(compressed key)> (BIP-141).
func p2wpkhScript(compressed []byte) []byte {
	return append([]byte{txscript.OP_0, txscript.OP_DATA_20}, btcutil.Hash160(compressed)...)
}

func parsePSBT(payload []byte) (*psbt.Packet, error) {
	var p *psbt.Packet
	err := guard("psbt", func() error {
		r := bytes.NewReader(payload)
		var err error
		p, err = psbt.NewFromRawBytes(r, false)
		if err != nil {
			return errorf(ErrMalformed, "psbt: not a BIP-174 binary PSBT: %v", err)
		}
		// The parser reads the stream unbuffered and stops after the last
		// output map; bytes after it are not part of the PSBT that policy
		// and approvers see, so they are refused.
		if r.Len() != 0 {
			return errorf(ErrMalformed, "psbt: %d trailing bytes after the last output map, want none", r.Len())
		}
		if len(p.Inputs) != len(p.UnsignedTx.TxIn) || len(p.Outputs) != len(p.UnsignedTx.TxOut) {
			return errorf(ErrMalformed, "psbt: %d input and %d output maps for %d inputs and %d outputs",
				len(p.Inputs), len(p.Outputs), len(p.UnsignedTx.TxIn), len(p.UnsignedTx.TxOut))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

func decodePSBT(payload []byte, k parsedKey, opts Options) (*Decoded, error) {
	params, err := bitcoinParams(opts.BitcoinNetwork)
	if err != nil {
		return nil, err
	}
	p, err := parsePSBT(payload)
	if err != nil {
		return nil, err
	}
	tx := p.UnsignedTx
	if n := len(tx.TxIn); n == 0 || n > MaxBitcoinInputs {
		return nil, errorf(ErrMalformed, "psbt: transaction has %d inputs, want 1..%d", n, MaxBitcoinInputs)
	}
	if n := len(tx.TxOut); n == 0 || n > MaxBitcoinOutputs {
		return nil, errorf(ErrMalformed, "psbt: transaction has %d outputs, want 1..%d", n, MaxBitcoinOutputs)
	}

	ours := p2wpkhScript(k.compressed)
	ourAddr, err := btcutil.NewAddressWitnessPubKeyHash(ours[2:], params)
	if err != nil {
		return nil, errorf(ErrInvalidKey, "psbt: key address: %v", err)
	}

	prevOuts := make([]*wire.TxOut, len(tx.TxIn))
	seen := make(map[wire.OutPoint]struct{}, len(tx.TxIn))
	var totalIn int64
	for i, in := range p.Inputs {
		op := tx.TxIn[i].PreviousOutPoint
		if _, dup := seen[op]; dup {
			return nil, errorf(ErrMalformed, "psbt: input %d spends %s, which an earlier input already spends", i, op)
		}
		out, err := checkInput(i, op, &in, ours, ourAddr, params, opts)
		if err != nil {
			return nil, err
		}
		prevOuts[i] = out
		seen[op] = struct{}{}
		totalIn += out.Value // ≤ 256 × MaxSatoshi: no overflow
	}
	if totalIn > btcutil.MaxSatoshi {
		return nil, errorf(ErrMalformed, "psbt: inputs total %d sat, more than the 21M BTC that exist", totalIn)
	}

	transfers := make([]Transfer, len(tx.TxOut))
	var totalOut int64
	for i, out := range tx.TxOut {
		t, err := describeOutput(i, out, ours, params)
		if err != nil {
			return nil, err
		}
		transfers[i] = t
		totalOut += out.Value
	}
	if totalOut > totalIn {
		return nil, errorf(ErrMalformed, "psbt: outputs total %d sat, more than the inputs' %d sat (negative fee)", totalOut, totalIn)
	}

	digests, err := witnessSighashes(tx, prevOuts, ours)
	if err != nil {
		return nil, err
	}

	return &Decoded{
		Summary: Summary{
			Chain:     "bip122:" + params.GenesisHash.String()[:32],
			Method:    "psbt",
			Transfers: transfers,
			Fee:       big.NewInt(totalIn - totalOut),
		},
		digests: digests,
		psbt:    &psbtState{payload: payload, prevOuts: prevOuts, script: ours},
	}, nil
}

// witnessSighashes computes the BIP-143 SIGHASH_ALL digest of every input
// of tx, each spending prevOuts[i] with the P2WPKH script.
func witnessSighashes(tx *wire.MsgTx, prevOuts []*wire.TxOut, script []byte) ([][32]byte, error) {
	digests := make([][32]byte, len(tx.TxIn))
	err := guard("psbt: sighash", func() error {
		fetch := txscript.NewMultiPrevOutFetcher(nil)
		for i, in := range tx.TxIn {
			fetch.AddPrevOut(in.PreviousOutPoint, prevOuts[i])
		}
		hashes := txscript.NewTxSigHashes(tx, fetch)
		for i := range tx.TxIn {
			// BIP-143: for P2WPKH the script code is the P2PKH script of the
			// key hash; txscript derives it from the witness program.
			h, err := txscript.CalcWitnessSigHash(script, hashes, txscript.SigHashAll, tx, i, prevOuts[i].Value)
			if err != nil {
				return errorf(ErrMalformed, "psbt: input %d sighash: %v", i, err)
			}
			copy(digests[i][:], h)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return digests, nil
}

// checkInput validates input i and returns the output it spends.
func checkInput(i int, op wire.OutPoint, in *psbt.PInput, ours []byte, ourAddr btcutil.Address, params *chaincfg.Params, opts Options) (*wire.TxOut, error) {
	switch {
	case in.FinalScriptSig != nil || in.FinalScriptWitness != nil:
		return nil, errorf(ErrUnsupported, "psbt: input %d is already finalized, want an unsigned input", i)
	case len(in.PartialSigs) != 0:
		return nil, errorf(ErrUnsupported, "psbt: input %d carries %d partial signatures, want none (the enclave produces the only one)", i, len(in.PartialSigs))
	case in.RedeemScript != nil || in.WitnessScript != nil:
		return nil, errorf(ErrUnsupported, "psbt: input %d carries a redeem or witness script, want a native P2WPKH input (P2SH-wrapped and script inputs are unsupported)", i)
	case in.TaprootKeySpendSig != nil || len(in.TaprootScriptSpendSig) != 0 || len(in.TaprootLeafScript) != 0 ||
		in.TaprootInternalKey != nil || in.TaprootMerkleRoot != nil:
		return nil, errorf(ErrUnsupported, "psbt: input %d carries taproot fields, want a segwit v0 P2WPKH input", i)
	}
	// A PSBT stores "absent" as 0; SIGHASH_ALL is the only type the
	// enclave signs, since the others let parts of the transaction change
	// after signing.
	if in.SighashType != 0 && in.SighashType != txscript.SigHashAll {
		return nil, errorf(ErrUnsupported, "psbt: input %d asks for sighash type 0x%x, want SIGHASH_ALL (0x01) or none", i, uint32(in.SighashType))
	}

	out := in.WitnessUtxo
	if nw := in.NonWitnessUtxo; nw != nil {
		if txid := nw.TxHash(); txid != op.Hash {
			return nil, errorf(ErrMalformed, "psbt: input %d non_witness_utxo has txid %s, want the outpoint's %s", i, txid, op.Hash)
		}
		if uint64(op.Index) >= uint64(len(nw.TxOut)) {
			return nil, errorf(ErrMalformed, "psbt: input %d spends output %d, but non_witness_utxo has %d outputs", i, op.Index, len(nw.TxOut))
		}
		full := nw.TxOut[op.Index]
		if out == nil {
			// A non-witness UTXO alone is the stronger statement; use it.
			out = full
		} else if out.Value != full.Value || !bytes.Equal(out.PkScript, full.PkScript) {
			return nil, errorf(ErrMalformed, "psbt: input %d witness_utxo (%d sat, script %x) differs from non_witness_utxo output %d (%d sat, script %x)",
				i, out.Value, out.PkScript, op.Index, full.Value, full.PkScript)
		}
	} else if out == nil {
		return nil, errorf(ErrMalformed, "psbt: input %d has neither witness_utxo nor non_witness_utxo, want both", i)
	} else if !opts.AllowWitnessUTXOOnly {
		return nil, errorf(ErrMalformed, "psbt: input %d has witness_utxo but no non_witness_utxo; want the full previous transaction so its amount can be checked (Options.AllowWitnessUTXOOnly accepts it without)", i)
	}

	if out.Value < 0 || out.Value > btcutil.MaxSatoshi {
		return nil, errorf(ErrMalformed, "psbt: input %d amount is %d sat, want 0..%d", i, out.Value, int64(btcutil.MaxSatoshi))
	}
	if !bytes.Equal(out.PkScript, ours) {
		class, addrs, _, _ := txscript.ExtractPkScriptAddrs(out.PkScript, params)
		if class == txscript.WitnessV0PubKeyHashTy && len(addrs) == 1 {
			return nil, errorf(ErrKeyMismatch, "psbt: input %d spends from %s, want the key's address %s", i, addrs[0].EncodeAddress(), ourAddr.EncodeAddress())
		}
		return nil, errorf(ErrUnsupported, "psbt: input %d spends a %s output (script %x), want P2WPKH to the key's address %s", i, class, out.PkScript, ourAddr.EncodeAddress())
	}
	return out, nil
}

// describeOutput turns output i into the Transfer policy sees.
func describeOutput(i int, out *wire.TxOut, ours []byte, params *chaincfg.Params) (Transfer, error) {
	if out.Value < 0 || out.Value > btcutil.MaxSatoshi {
		return Transfer{}, errorf(ErrMalformed, "psbt: output %d amount is %d sat, want 0..%d", i, out.Value, int64(btcutil.MaxSatoshi))
	}
	t := Transfer{Action: ActionTransfer, Asset: "BTC", Amount: big.NewInt(out.Value), Change: bytes.Equal(out.PkScript, ours)}
	class, addrs, _, err := txscript.ExtractPkScriptAddrs(out.PkScript, params)
	if err != nil {
		return Transfer{}, errorf(ErrMalformed, "psbt: output %d script %x: %v", i, out.PkScript, err)
	}
	switch class {
	case txscript.NullDataTy:
		if out.Value != 0 {
			return Transfer{}, errorf(ErrUnsupported, "psbt: output %d is OP_RETURN with %d sat, want 0 (the value would be burnt)", i, out.Value)
		}
		t.To = "op_return:" + hex.EncodeToString(out.PkScript)
		return t, nil
	case txscript.PubKeyHashTy, txscript.ScriptHashTy, txscript.WitnessV0PubKeyHashTy,
		txscript.WitnessV0ScriptHashTy, txscript.WitnessV1TaprootTy:
		if len(addrs) != 1 {
			return Transfer{}, errorf(ErrUnsupported, "psbt: output %d %s script %x has no address", i, class, out.PkScript)
		}
		// The address must stand for exactly this script, or policy would
		// approve a destination other than the one paid.
		back, err := txscript.PayToAddrScript(addrs[0])
		if err != nil || !bytes.Equal(back, out.PkScript) {
			return Transfer{}, errorf(ErrUnsupported, "psbt: output %d script %x does not round-trip through address %s", i, out.PkScript, addrs[0].EncodeAddress())
		}
		t.To = addrs[0].EncodeAddress()
		return t, nil
	default:
		return Transfer{}, errorf(ErrUnsupported, "psbt: output %d pays a %s script %x, want P2PKH, P2SH, P2WPKH, P2WSH, P2TR or a zero-value OP_RETURN", i, class, out.PkScript)
	}
}

func (d *Decoded) assemblePSBT(sigs []Signature) ([]byte, error) {
	st := d.psbt
	witnesses := make([][]byte, len(sigs))
	for i, s := range sigs {
		parsed, err := verifyECDSA(d.key.secp, d.digests[i], s, i, false)
		if err != nil {
			return nil, err
		}
		// BIP-143 P2WPKH witness: <DER signature ‖ sighash type> <pubkey>.
		der := append(parsed.Serialize(), byte(txscript.SigHashAll))
		var w bytes.Buffer
		if err := psbt.WriteTxWitness(&w, [][]byte{der, d.key.compressed}); err != nil {
			return nil, errorf(ErrMalformed, "psbt: input %d witness: %v", i, err)
		}
		witnesses[i] = w.Bytes()
	}

	var out []byte
	err := guard("psbt: assemble", func() error {
		p, err := parsePSBT(st.payload)
		if err != nil {
			return err
		}
		for i := range p.Inputs {
			p.Inputs[i].FinalScriptWitness = witnesses[i]
		}
		final, err := psbt.Extract(p)
		if err != nil {
			return errorf(ErrMalformed, "psbt: extract: %v", err)
		}
		// Run every input through the script interpreter before release:
		// a transaction that leaves the enclave is one that validates.
		fetch := txscript.NewMultiPrevOutFetcher(nil)
		for i, in := range final.TxIn {
			fetch.AddPrevOut(in.PreviousOutPoint, st.prevOuts[i])
		}
		hashes := txscript.NewTxSigHashes(final, fetch)
		for i := range final.TxIn {
			vm, err := txscript.NewEngine(st.script, final, i, txscript.StandardVerifyFlags, nil, hashes, st.prevOuts[i].Value, fetch)
			if err == nil {
				err = vm.Execute()
			}
			if err != nil {
				return errorf(ErrBadSignature, "psbt: input %d does not validate in the script interpreter after signing: %v", i, err)
			}
		}
		var buf bytes.Buffer
		if err := final.Serialize(&buf); err != nil {
			return errorf(ErrMalformed, "psbt: serialize: %v", err)
		}
		out = buf.Bytes()
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
