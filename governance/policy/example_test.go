package policy_test

import (
	"fmt"
	"math/big"
	"os"
	"time"

	"github.com/sealsign/sealsign/governance/policy"
	"github.com/sealsign/sealsign/governance/tx"
)

func Example() {
	data, err := os.ReadFile("testdata/default-policy.json")
	if err != nil {
		fmt.Println(err)
		return
	}
	p, err := policy.ParseJSON(data)
	if err != nil {
		fmt.Println(err)
		return
	}
	vel := policy.NewVelocityState()
	in := policy.Input{
		ClusterID: "demo",
		Summary: tx.Summary{
			Kind:   tx.KindEVM,
			Chain:  "eip155:1",
			Method: "native",
			Fee:    big.NewInt(21000 * 30e9),
			Transfers: []tx.Transfer{{
				Action: tx.ActionTransfer, Asset: "ETH",
				To:     "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
				Amount: big.NewInt(5e17), // 0.5 ETH
			}},
		},
		KeyID: "key-1", ClientID: "client-1", Initiator: "alice",
		Now: time.Unix(1767229200, 0),
	}
	d := p.Evaluate(in, vel)
	fmt.Println(d.Outcome, d.RuleID)
	if err := vel.Record(in, d); err != nil { // after the signature is produced
		fmt.Println(err)
	}

	in.Summary.Transfers[0].Amount, _ = new(big.Int).SetString("2000000000000000000", 10) // 2 ETH
	d = p.Evaluate(in, vel)
	fmt.Println(d.Outcome, d.Pending[0].RuleID, d.Pending[0].Groups[0].Need)

	in.Summary.Transfers[0].To = "0x52908400098527886E0F7030069857D2E4169EE7"
	fmt.Println(p.Evaluate(in, vel).Err())
	// Output:
	// allow eth-small
	// needs-approval eth-large 2
	// policy: deny under policy version 1: no-allow-rule: no allow rule matched; condition-false rule "eth-small" clause `request.transfers.all(t, t.to in ["0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359", "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB", "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb"])`; condition-false rule "eth-large" clause `request.transfers.all(t, t.to in ["0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359", "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB", "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb"])`; condition-false rule "btc-small" clause `request.chain == "bip122:000000000019d6689c085ae165831e93"`
}
