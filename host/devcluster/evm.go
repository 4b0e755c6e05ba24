package devcluster

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"math/big"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/rlp"
)

// The demo's Ethereum mainnet transfers: EIP-1559, 21000 gas at most
// 30 gwei (a fee of at most 0.00063 ETH, within the policy's 0.01 ETH).
var (
	ethChainID = big.NewInt(1)
	ethTip     = big.NewInt(1_000_000_000)
	ethFeeCap  = big.NewInt(30_000_000_000)
)

const ethGas = 21000

// Destinations: the first is on the dev policy's treasury allowlist, the
// second is not.
var (
	allowlisted    = common.HexToAddress("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed")
	notAllowlisted = common.HexToAddress("0x52908400098527886E0F7030069857D2E4169EE7")
)

// ethTransfer returns an unsigned EIP-1559 transfer of wei to to, and its
// signing preimage, which is the payload of a kind "evm" request (see
// governance/tx/evm.go): 0x02 ‖ rlp([chainId, nonce, tip, feeCap, gas, to,
// value, data, accessList]). The preimage is checked against
// go-ethereum's own signing hash, so what the enclave decodes is the
// transaction built here.
func ethTransfer(nonce uint64, to common.Address, wei *big.Int) (*types.Transaction, []byte, error) {
	tx := types.NewTx(&types.DynamicFeeTx{
		ChainID: ethChainID, Nonce: nonce, GasTipCap: ethTip, GasFeeCap: ethFeeCap, Gas: ethGas, To: &to, Value: wei,
	})
	body, err := rlp.EncodeToBytes([]any{ethChainID, nonce, ethTip, ethFeeCap, uint64(ethGas), to, wei, []byte{}, types.AccessList{}})
	if err != nil {
		return nil, nil, fmt.Errorf("devcluster: evm preimage: %w", err)
	}
	payload := append([]byte{types.DynamicFeeTxType}, body...)
	if h := types.LatestSignerForChainID(ethChainID).Hash(tx); !bytes.Equal(crypto.Keccak256(payload), h[:]) {
		return nil, nil, fmt.Errorf("devcluster: evm preimage hashes to %x, go-ethereum's signing hash is %x", crypto.Keccak256(payload), h)
	}
	return tx, payload, nil
}

// ethAddress is the Ethereum address of a secp256k1 public key (hex,
// compressed or not).
func ethAddress(pubHex string) (common.Address, error) {
	b, err := hex.DecodeString(pubHex)
	if err != nil {
		return common.Address{}, fmt.Errorf("verify: public key is not hex: %w", err)
	}
	if len(b) == 33 {
		pub, err := crypto.DecompressPubkey(b)
		if err != nil {
			return common.Address{}, fmt.Errorf("verify: public key: %w", err)
		}
		return crypto.PubkeyToAddress(*pub), nil
	}
	pub, err := crypto.UnmarshalPubkey(b)
	if err != nil {
		return common.Address{}, fmt.Errorf("verify: public key: %w", err)
	}
	return crypto.PubkeyToAddress(*pub), nil
}

// VerifyEthTransaction decodes a signed transaction (hex, as a signed
// request's result carries it) with go-ethereum, checks it is want with a
// signature, and that its sender recovers to the address of pubHex. It
// returns that address.
func VerifyEthTransaction(pubHex string, want *types.Transaction, signedHex string) (common.Address, error) {
	addr, err := ethAddress(pubHex)
	if err != nil {
		return common.Address{}, err
	}
	raw, err := hex.DecodeString(signedHex)
	if err != nil || len(raw) == 0 {
		return common.Address{}, fmt.Errorf("verify: signed transaction %q is not hex", signedHex)
	}
	var got types.Transaction
	if err := got.UnmarshalBinary(raw); err != nil {
		return common.Address{}, fmt.Errorf("verify: signed transaction does not decode: %w", err)
	}
	signer := types.LatestSignerForChainID(ethChainID)
	if signer.Hash(&got) != signer.Hash(want) {
		return common.Address{}, fmt.Errorf("verify: signed transaction %s is not the transaction requested (signing hash %x, want %x)", got.Hash(), signer.Hash(&got), signer.Hash(want))
	}
	from, err := types.Sender(signer, &got)
	if err != nil {
		return common.Address{}, fmt.Errorf("verify: sender does not recover: %w", err)
	}
	if from != addr {
		return common.Address{}, fmt.Errorf("verify: transaction sender recovers to %s, the key's address is %s", from, addr)
	}
	return from, nil
}
