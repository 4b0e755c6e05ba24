// Package tx decodes the payloads a client asks the enclave to sign (EVM
// transactions, Bitcoin PSBTs, raw digests) into a Summary that policy is
// evaluated on, derives the digests the key signs, and assembles the signed,
// broadcast-ready result. It runs inside the enclave and never trusts a
// summary from the host: everything policy sees is computed here from the
// payload bytes.
//
// This file is the contract between the decoders and governance/policy.
// Evolution rule: append fields only; never change a field's meaning.
package tx

import "math/big"

// Kind names a payload format. A request's kind is chosen by the client and
// checked by the decoder: bytes that do not parse as that kind are refused,
// never re-interpreted as another.
type Kind string

const (
	KindEVM  Kind = "evm"        // RLP legacy (EIP-155), EIP-2930 or EIP-1559 transaction, unsigned
	KindPSBT Kind = "btc-psbt"   // BIP-174 PSBT, segwit v0 P2WPKH inputs
	KindRaw  Kind = "raw-digest" // a 32-byte digest (ECDSA) or a message (EdDSA), signed as is
)

// Action classifies what a transfer does.
type Action string

const (
	ActionTransfer Action = "transfer" // value leaves the key (native or token)
	ActionApprove  Action = "approve"  // ERC-20 allowance granted to To (Amount is the allowance)
)

// Transfer is one movement of value (or grant of an allowance) the payload
// makes, as the decoder read it from the payload itself.
type Transfer struct {
	Action Action
	// Asset is "ETH" (the chain's native asset on an EVM chain), "erc20:" and
	// the lowercase 0x-hex token contract, or "BTC".
	Asset string
	// To is the destination in its canonical text form: EIP-55 checksummed
	// hex for EVM, the network's address encoding (bech32 for segwit) for
	// Bitcoin.
	To string
	// Amount is in the asset's base units (wei, token units, satoshi); never
	// nil, never negative.
	Amount *big.Int
	// Change is true only for a Bitcoin output provably paying back to the
	// signing key (its script is the key's own P2WPKH script). Policy
	// ignores change outputs for limits and allowlists.
	Change bool
}

// Summary is what policy evaluates: the decoded, enclave-computed facts of
// one payload.
type Summary struct {
	Kind Kind
	// Chain is a CAIP-2 chain id: "eip155:<chain id>" for EVM,
	// "bip122:<first 32 hex of the genesis hash>" for Bitcoin networks;
	// empty for raw digests.
	Chain string
	// Method is "native" (plain value transfer), "erc20.transfer",
	// "erc20.approve", "contract-call" (any other calldata: no transfers are
	// inferred from it beyond native value), "contract-create" (no
	// destination), "psbt" or "raw".
	Method string
	// Transfers lists every value movement, change outputs included.
	Transfers []Transfer
	// Fee is the most the payload can pay in the chain's native base units
	// (EVM: gas limit × max fee per gas; Bitcoin: inputs − outputs); nil for
	// raw digests.
	Fee *big.Int
	// Digests are what the key signs, in order: one for EVM and raw, one per
	// input for a PSBT (BIP-143 sighash).
	Digests [][]byte
	// PayloadHash is SHA-256 over "sealsign/v1/payload\x00", the kind, a
	// zero byte, and the payload bytes exactly as the client sent them.
	// Approvals and every party's verdict bind to it.
	PayloadHash [32]byte
}
