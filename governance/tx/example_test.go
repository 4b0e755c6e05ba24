package tx_test

import (
	"encoding/hex"
	"fmt"

	"github.com/ethereum/go-ethereum/crypto"

	"github.com/sealsign/sealsign/governance/tx"
)

// Decode an unsigned EVM transaction (the EIP-155 example), show what policy
// would see, then assemble the broadcast-ready transaction from the
// threshold signature. Here a single local key stands in for the threshold
// signers.
func Example() {
	payload, _ := hex.DecodeString("ec098504a817c800825208943535353535353535353535353535353535353535880de0b6b3a764000080018080")
	priv, _ := crypto.HexToECDSA("4646464646464646464646464646464646464646464646464646464646464646")
	key := tx.Key{Algorithm: tx.AlgorithmECDSASecp256k1, PublicKey: crypto.CompressPubkey(&priv.PublicKey)}

	d, err := tx.Decode(tx.KindEVM, payload, key, tx.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	s := d.Summary
	fmt.Println(s.Chain, s.Method)
	for _, t := range s.Transfers {
		fmt.Println(t.Action, t.Amount, t.Asset, "to", t.To)
	}
	fmt.Println("fee", s.Fee, "wei")

	sig, _ := crypto.Sign(s.Digests[0], priv) // r ‖ s ‖ recovery id
	signed, err := d.Assemble([]tx.Signature{{RS: sig[:64], RecoveryID: sig[64]}})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%d-byte signed transaction %x...\n", len(signed), signed[:8])

	// A payload that is not what it claims to be is refused, with a reason.
	_, err = tx.Decode(tx.KindEVM, append([]byte{0x03}, payload...), key, tx.Options{})
	fmt.Println(err)
	// Output:
	// eip155:1 native
	// transfer 1000000000000000000 ETH to 0x3535353535353535353535353535353535353535
	// fee 420000000000000 wei
	// 110-byte signed transaction f86c098504a817c8...
	// tx: evm: transaction type 0x03 (EIP-4844 blob) is unsupported, want legacy, 0x01 or 0x02
}
