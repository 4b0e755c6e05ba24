package policy

import (
	"math/big"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sealsign/sealsign/governance/tx"
)

const (
	testCluster = "demo"
	// Allowlisted in testdata/default-policy.json.
	evmA     = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
	evmB     = "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359"
	evmOther = "0x52908400098527886E0F7030069857D2E4169EE7" // EIP-55 vector, not allowlisted
	usdc     = "erc20:0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48"
	btcA     = "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"
	btcOther = "bc1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3qccfmv3"
	btcMain  = "bip122:000000000019d6689c085ae165831e93"
)

var t0 = time.Unix(1767225600+3600, 0)

func amt(s string) *big.Int {
	v, ok := new(big.Int).SetString(s, 10)
	if !ok {
		panic("bad test amount " + s)
	}
	return v
}

const oneETH = "1000000000000000000"

func defaultPolicy(t testing.TB) *Policy {
	t.Helper()
	b, err := os.ReadFile("testdata/default-policy.json")
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParseJSON(b)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// newPolicy builds and validates a policy from rules.
func newPolicy(t testing.TB, rules ...Rule) *Policy {
	t.Helper()
	p := &Policy{Format: 1, ClusterID: testCluster, Version: 1, IssuedAt: t0.Unix() - 3600, NotBefore: t0.Unix() - 3600, Rules: rules}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	return p
}

func payloadHash(s string) [32]byte {
	var h [32]byte
	copy(h[:], s)
	return h
}

type transferSpec struct {
	asset, to, amount string
	change            bool
}

func evmInput(transfers ...transferSpec) Input {
	s := tx.Summary{Kind: tx.KindEVM, Chain: "eip155:1", Method: "native", Fee: amt("21000000000000"), PayloadHash: payloadHash("evm"), Digests: [][]byte{make([]byte, 32)}}
	for _, tr := range transfers {
		if strings.HasPrefix(tr.asset, "erc20:") {
			s.Method = "erc20.transfer"
		}
		s.Transfers = append(s.Transfers, tx.Transfer{Action: tx.ActionTransfer, Asset: tr.asset, To: tr.to, Amount: amt(tr.amount), Change: tr.change})
	}
	return Input{ClusterID: testCluster, Summary: s, KeyID: "key-1", KeyAlgorithm: "ecdsa-secp256k1", ClientID: "client-1", Initiator: "alice", Now: t0}
}

func btcInput(fee string, transfers ...transferSpec) Input {
	in := evmInput()
	in.Summary = tx.Summary{Kind: tx.KindPSBT, Chain: btcMain, Method: "psbt", Fee: amt(fee), PayloadHash: payloadHash("btc")}
	for _, tr := range transfers {
		in.Summary.Transfers = append(in.Summary.Transfers, tx.Transfer{Action: tx.ActionTransfer, Asset: "BTC", To: tr.to, Amount: amt(tr.amount), Change: tr.change})
	}
	return in
}

func rawInput() Input {
	in := evmInput()
	in.Summary = tx.Summary{Kind: tx.KindRaw, Method: "raw", Digests: [][]byte{make([]byte, 32)}, PayloadHash: payloadHash("raw")}
	return in
}

func codes(d Decision) []Code {
	var out []Code
	for _, x := range d.Denials {
		out = append(out, x.Code)
	}
	return out
}

func findDenial(d Decision, c Code, rule string) (Denial, bool) {
	for _, x := range d.Denials {
		if x.Code == c && x.RuleID == rule {
			return x, true
		}
	}
	return Denial{}, false
}

type txTransfer = tx.Transfer

func itoa(i int) string { return strconv.Itoa(i) }
