package tx

import (
	"bytes"
	"math"
	"math/big"
	"strings"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/rlp"
	"github.com/holiman/uint256"
)

// An EVM payload is the exact signing preimage of the transaction, the bytes
// whose keccak256 the key signs:
//
//	legacy (EIP-155):  rlp([nonce, gasPrice, gas, to, value, data, chainId, 0, 0])
//	EIP-2930:          0x01 ‖ rlp([chainId, nonce, gasPrice, gas, to, value, data, accessList])
//	EIP-1559:          0x02 ‖ rlp([chainId, nonce, maxPriorityFeePerGas, maxFeePerGas, gas, to, value, data, accessList])
//
// The fields are decoded with go-ethereum's rlp (which enforces canonical
// integers and exact string lengths), rebuilt into a types.Transaction, and
// go-ethereum's own signing hash of that transaction must equal
// keccak256(payload): what policy sees and what the key signs are then the
// same transaction by construction.

// ERC-20 selectors (first 4 bytes of keccak256 of the signature).
var (
	selectorTransfer = []byte{0xa9, 0x05, 0x9c, 0xbb} // transfer(address,uint256)
	selectorApprove  = []byte{0x09, 0x5e, 0xa7, 0xb3} // approve(address,uint256)
)

// Decoding targets. Amounts are uint256 so that a value go-ethereum could
// not represent on chain is refused by the decoder, not wrapped later.
type legacyPreimage struct {
	Nonce    uint64
	GasPrice uint256.Int
	Gas      uint64
	To       *common.Address `rlp:"nil"`
	Value    uint256.Int
	Data     []byte
	ChainID  uint256.Int
	R, S     uint64 // EIP-155: both 0
}

type accessListPreimage struct {
	ChainID    uint256.Int
	Nonce      uint64
	GasPrice   uint256.Int
	Gas        uint64
	To         *common.Address `rlp:"nil"`
	Value      uint256.Int
	Data       []byte
	AccessList types.AccessList
}

type dynamicFeePreimage struct {
	ChainID    uint256.Int
	Nonce      uint64
	GasTipCap  uint256.Int
	GasFeeCap  uint256.Int
	Gas        uint64
	To         *common.Address `rlp:"nil"`
	Value      uint256.Int
	Data       []byte
	AccessList types.AccessList
}

type evmState struct {
	signer types.Signer
	tx     *types.Transaction // unsigned
	sender common.Address     // the key's address
}

// rlpFields checks that body is exactly one RLP list with want elements and
// nothing after it, so the errors for the common mistakes are precise
// before the struct decoder runs.
func rlpFields(body []byte, want int, what string) error {
	content, rest, err := rlp.SplitList(body)
	if err != nil {
		return errorf(ErrMalformed, "evm: %s payload is not an RLP list: %v", what, err)
	}
	if len(rest) != 0 {
		return errorf(ErrMalformed, "evm: %s payload has %d trailing bytes after the RLP list, want none", what, len(rest))
	}
	n, err := rlp.CountValues(content)
	if err != nil {
		return errorf(ErrMalformed, "evm: %s payload list is malformed: %v", what, err)
	}
	if n != want {
		hint := ""
		if what == "legacy" && n == 6 {
			hint = " (a pre-EIP-155 transaction without replay protection; refused)"
		}
		return errorf(ErrMalformed, "evm: %s payload has %d fields, want %d%s", what, n, want, hint)
	}
	return nil
}

func decodeRLP(body []byte, v any, what string) error {
	return guard("evm: "+what, func() error {
		if err := rlp.DecodeBytes(body, v); err != nil {
			return errorf(ErrMalformed, "evm: %s payload: %v", what, err)
		}
		return nil
	})
}

func decodeEVM(payload []byte, k parsedKey) (*Decoded, error) {
	if len(payload) == 0 {
		return nil, errorf(ErrMalformed, "evm: payload is empty, want an RLP list (legacy) or a type byte 0x01/0x02 and an RLP list")
	}
	var (
		inner    types.TxData
		chainID  *uint256.Int
		nonce    uint64
		gas      uint64
		feeCap   *uint256.Int // gas price, or max fee per gas
		to       *common.Address
		value    *uint256.Int
		data     []byte
		typeName string
	)
	switch t := payload[0]; {
	case t >= 0xc0:
		typeName = "legacy"
		var p legacyPreimage
		if err := rlpFields(payload, 9, typeName); err != nil {
			return nil, err
		}
		if err := decodeRLP(payload, &p, typeName); err != nil {
			return nil, err
		}
		if p.R != 0 || p.S != 0 {
			return nil, errorf(ErrMalformed, "evm: legacy payload ends in [%d, %d], want [0, 0] (EIP-155 signing preimage; is this a signed transaction?)", p.R, p.S)
		}
		chainID, nonce, gas, feeCap, to, value, data = &p.ChainID, p.Nonce, p.Gas, &p.GasPrice, p.To, &p.Value, p.Data
		inner = &types.LegacyTx{Nonce: p.Nonce, GasPrice: p.GasPrice.ToBig(), Gas: p.Gas, To: p.To, Value: p.Value.ToBig(), Data: p.Data}
	case t == types.AccessListTxType:
		typeName = "eip-2930"
		var p accessListPreimage
		if err := rlpFields(payload[1:], 8, typeName); err != nil {
			return nil, err
		}
		if err := decodeRLP(payload[1:], &p, typeName); err != nil {
			return nil, err
		}
		chainID, nonce, gas, feeCap, to, value, data = &p.ChainID, p.Nonce, p.Gas, &p.GasPrice, p.To, &p.Value, p.Data
		inner = &types.AccessListTx{ChainID: p.ChainID.ToBig(), Nonce: p.Nonce, GasPrice: p.GasPrice.ToBig(), Gas: p.Gas, To: p.To, Value: p.Value.ToBig(), Data: p.Data, AccessList: p.AccessList}
	case t == types.DynamicFeeTxType:
		typeName = "eip-1559"
		var p dynamicFeePreimage
		if err := rlpFields(payload[1:], 9, typeName); err != nil {
			return nil, err
		}
		if err := decodeRLP(payload[1:], &p, typeName); err != nil {
			return nil, err
		}
		// EIP-1559: "assert transaction.max_fee_per_gas >= transaction.max_priority_fee_per_gas".
		if p.GasTipCap.Gt(&p.GasFeeCap) {
			return nil, errorf(ErrMalformed, "evm: eip-1559 maxPriorityFeePerGas %s exceeds maxFeePerGas %s; no block would include it", p.GasTipCap.Dec(), p.GasFeeCap.Dec())
		}
		chainID, nonce, gas, feeCap, to, value, data = &p.ChainID, p.Nonce, p.Gas, &p.GasFeeCap, p.To, &p.Value, p.Data
		inner = &types.DynamicFeeTx{ChainID: p.ChainID.ToBig(), Nonce: p.Nonce, GasTipCap: p.GasTipCap.ToBig(), GasFeeCap: p.GasFeeCap.ToBig(), Gas: p.Gas, To: p.To, Value: p.Value.ToBig(), Data: p.Data, AccessList: p.AccessList}
	case t == types.BlobTxType:
		return nil, errorf(ErrUnsupported, "evm: transaction type 0x03 (EIP-4844 blob) is unsupported, want legacy, 0x01 or 0x02")
	case t == types.SetCodeTxType:
		return nil, errorf(ErrUnsupported, "evm: transaction type 0x04 (EIP-7702 set-code) is unsupported, want legacy, 0x01 or 0x02")
	case t < 0x80:
		return nil, errorf(ErrUnsupported, "evm: transaction type 0x%02x is unknown, want legacy, 0x01 or 0x02", t)
	default:
		return nil, errorf(ErrMalformed, "evm: payload starts with 0x%02x, an RLP string; want an RLP list (legacy) or a type byte 0x01/0x02", t)
	}

	if chainID.IsZero() {
		return nil, errorf(ErrMalformed, "evm: %s chain id is 0, want the id of the chain the transaction is for (replay protection)", typeName)
	}
	// EIP-2681: a nonce of 2^64-1 can never be used.
	if nonce == math.MaxUint64 {
		return nil, errorf(ErrMalformed, "evm: %s nonce is 2^64-1, want below it (EIP-2681)", typeName)
	}

	chain := chainID.ToBig()
	signer := types.LatestSignerForChainID(chain)
	tx := types.NewTx(inner)
	hash := signer.Hash(tx)
	if pre := crypto.Keccak256Hash(payload); hash != pre {
		return nil, errorf(ErrMalformed, "evm: %s payload is not the canonical signing preimage of its fields: go-ethereum's signing hash is %s, keccak256(payload) is %s", typeName, hash.Hex(), pre.Hex())
	}

	sender := crypto.PubkeyToAddress(*k.secp.ToECDSA())
	transfers, method, err := evmTransfers(sender, nonce, to, value.ToBig(), data)
	if err != nil {
		return nil, err
	}
	fee := new(big.Int).Mul(new(big.Int).SetUint64(gas), feeCap.ToBig())

	return &Decoded{
		Summary: Summary{
			Chain:     "eip155:" + chain.String(),
			Method:    method,
			Transfers: transfers,
			Fee:       fee,
		},
		digests: [][32]byte{hash},
		evm:     &evmState{signer: signer, tx: tx, sender: sender},
	}, nil
}

// evmTransfers classifies the call and lists the value it moves. Calldata
// other than an exact ERC-20 transfer or approve is "contract-call": its
// effects cannot be read from the payload, so only native value is listed.
func evmTransfers(sender common.Address, nonce uint64, to *common.Address, value *big.Int, data []byte) ([]Transfer, string, error) {
	var transfers []Transfer
	native := func(dst common.Address) {
		transfers = append(transfers, Transfer{Action: ActionTransfer, Asset: "ETH", To: dst.Hex(), Amount: value})
	}
	if to == nil {
		// Contract creation: value goes to the address CREATE derives from
		// the sender (our key) and the nonce (Yellow Paper §7).
		if value.Sign() > 0 {
			native(crypto.CreateAddress(sender, nonce))
		}
		return transfers, "contract-create", nil
	}
	if len(data) == 0 {
		native(*to)
		return transfers, "native", nil
	}
	if value.Sign() > 0 {
		native(*to)
	}
	var action Action
	var method string
	switch {
	case len(data) >= 4 && bytes.Equal(data[:4], selectorTransfer):
		action, method = ActionTransfer, "erc20.transfer"
	case len(data) >= 4 && bytes.Equal(data[:4], selectorApprove):
		action, method = ActionApprove, "erc20.approve"
	default:
		return transfers, "contract-call", nil
	}
	// A matching selector with arguments that are not exactly
	// (address, uint256) is refused, never downgraded to "contract-call":
	// a token contract may read them differently than we would.
	if len(data) != 4+64 {
		return nil, "", errorf(ErrMalformed, "evm: %s calldata is %d bytes, want 68 (selector, address, uint256)", method, len(data))
	}
	word := data[4:36]
	for _, b := range word[:12] {
		if b != 0 {
			return nil, "", errorf(ErrMalformed, "evm: %s address argument 0x%x has nonzero high bytes, want a 20-byte address left-padded with zeros", method, word)
		}
	}
	dst := common.BytesToAddress(word[12:])
	amount := new(big.Int).SetBytes(data[36:68])
	transfers = append(transfers, Transfer{
		Action: action,
		Asset:  "erc20:" + strings.ToLower(to.Hex()),
		To:     dst.Hex(),
		Amount: amount,
	})
	return transfers, method, nil
}

func (d *Decoded) assembleEVM(sig Signature) ([]byte, error) {
	st := d.evm
	if _, err := verifyECDSA(d.key.secp, d.digests[0], sig, 0, true); err != nil {
		return nil, err
	}
	raw := make([]byte, 65)
	copy(raw, sig.RS)
	raw[64] = sig.RecoveryID
	var out []byte
	err := guard("evm: assemble", func() error {
		signed, err := st.tx.WithSignature(st.signer, raw)
		if err != nil {
			return errorf(ErrBadSignature, "evm: go-ethereum refuses the signature: %v", err)
		}
		from, err := types.Sender(st.signer, signed)
		if err != nil {
			return errorf(ErrBadSignature, "evm: go-ethereum cannot recover the sender: %v", err)
		}
		if from != st.sender {
			return errorf(ErrKeyMismatch, "evm: signed transaction recovers to %s, want the key's address %s", from.Hex(), st.sender.Hex())
		}
		out, err = signed.MarshalBinary()
		if err != nil {
			return errorf(ErrMalformed, "evm: encoding the signed transaction: %v", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
