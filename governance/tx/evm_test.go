package tx

import (
	"bytes"
	"crypto/ecdsa"
	"encoding/hex"
	"math/big"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/rlp"
)

func bigDec(t testing.TB, s string) *big.Int {
	t.Helper()
	n, ok := new(big.Int).SetString(s, 10)
	if !ok {
		t.Fatalf("bad decimal %q", s)
	}
	return n
}

// TestEIP155KnownAnswer replays the EIP-155 worked example: the decoder
// must produce the EIP's signing hash, and assembling the EIP's own
// signature must yield the EIP's signed transaction byte for byte.
func TestEIP155KnownAnswer(t *testing.T) {
	v := loadVector(t, "eip155-example.txt")
	priv, err := crypto.HexToECDSA(strings.TrimPrefix(v["private_key"], "0x"))
	if err != nil {
		t.Fatal(err)
	}
	key := Key{Algorithm: AlgorithmECDSASecp256k1, PublicKey: crypto.CompressPubkey(&priv.PublicKey)}

	d, err := Decode(KindEVM, mustHex(t, v["signing_data"]), key, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := d.Summary
	if got, want := hex.EncodeToString(s.Digests[0]), strings.TrimPrefix(v["signing_hash"], "0x"); got != want {
		t.Fatalf("signing hash %s, want %s", got, want)
	}
	if s.Chain != "eip155:1" || s.Method != "native" || s.Kind != KindEVM {
		t.Fatalf("chain %q method %q kind %q, want eip155:1 native evm", s.Chain, s.Method, s.Kind)
	}
	if len(s.Transfers) != 1 {
		t.Fatalf("%d transfers, want 1", len(s.Transfers))
	}
	tr := s.Transfers[0]
	if tr.Asset != "ETH" || tr.To != common.HexToAddress(v["to"]).Hex() || tr.Amount.Cmp(bigDec(t, v["value"])) != 0 || tr.Action != ActionTransfer {
		t.Fatalf("transfer %+v, want 1 ETH to %s", tr, v["to"])
	}
	wantFee := new(big.Int).Mul(bigDec(t, v["gas"]), bigDec(t, v["gas_price"]))
	if s.Fee.Cmp(wantFee) != 0 {
		t.Fatalf("fee %s, want %s", s.Fee, wantFee)
	}

	// The EIP's own (r, s); v = 37 = chainId*2 + 35 + recid, so recid 0.
	rs := make([]byte, 64)
	bigDec(t, v["r"]).FillBytes(rs[:32])
	bigDec(t, v["s"]).FillBytes(rs[32:])
	recid := byte(bigDec(t, v["v"]).Int64() - 35 - 2*bigDec(t, v["chain_id"]).Int64())
	signed, err := d.Assemble([]Signature{{RS: rs, RecoveryID: recid}})
	if err != nil {
		t.Fatal(err)
	}
	if want := mustHex(t, v["signed_tx"]); !bytes.Equal(signed, want) {
		t.Fatalf("signed tx\n got %x\nwant %x", signed, want)
	}

	// And our own RFC 6979 signature over the digest is the same one.
	own := signDigestECDSA(t, crypto.FromECDSA(priv), s.Digests[0])
	if !bytes.Equal(own.RS, rs) || own.RecoveryID != recid {
		t.Fatalf("RFC 6979 signature %x/%d, want the EIP's %x/%d", own.RS, own.RecoveryID, rs, recid)
	}
}

func signDigestECDSA(t testing.TB, privBytes, digest []byte) Signature {
	t.Helper()
	sig, err := crypto.Sign(digest, mustPriv(t, privBytes))
	if err != nil {
		t.Fatal(err)
	}
	return Signature{RS: sig[:64], RecoveryID: sig[64]}
}

func mustPriv(t testing.TB, b []byte) *ecdsa.PrivateKey {
	t.Helper()
	k, err := crypto.ToECDSA(b)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// Preimage builders (go-ethereum's rlp encoder, never hand-written RLP).
func legacyPayload(t testing.TB, fields ...any) []byte {
	t.Helper()
	b, err := rlp.EncodeToBytes(fields)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func typedPayload(t testing.TB, typ byte, fields ...any) []byte {
	t.Helper()
	return append([]byte{typ}, legacyPayload(t, fields...)...)
}

func erc20Call(selector []byte, addrWord []byte, amount *big.Int) []byte {
	data := append([]byte(nil), selector...)
	word := make([]byte, 32)
	copy(word[32-len(addrWord):], addrWord)
	data = append(data, word...)
	return append(data, common.LeftPadBytes(amount.Bytes(), 32)...)
}

func TestEVMDecodeAndAssemble(t *testing.T) {
	priv, err := crypto.HexToECDSA("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
	if err != nil {
		t.Fatal(err)
	}
	key := Key{Algorithm: AlgorithmECDSASecp256k1, PublicKey: crypto.CompressPubkey(&priv.PublicKey)}
	sender := crypto.PubkeyToAddress(priv.PublicKey)

	token := common.HexToAddress("0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48")
	recipient := common.HexToAddress("0x00000000219ab540356cBB839Cbe05303d7705Fa")
	to := common.HexToAddress("0xd8dA6BF26964aF9D7eEd9e03E53415D37aA96045")
	gwei := big.NewInt(1e9)
	eth := new(big.Int).Exp(big.NewInt(10), big.NewInt(18), nil)
	amount := big.NewInt(1_500_000) // 1.5 USDC
	al := types.AccessList{{Address: token, StorageKeys: []common.Hash{{1}}}}
	empty := []byte{}

	type want struct {
		chain, method string
		transfers     []Transfer
		fee           *big.Int
	}
	ethTo := func(a common.Address, v *big.Int) Transfer {
		return Transfer{Action: ActionTransfer, Asset: "ETH", To: a.Hex(), Amount: v}
	}
	tok := "erc20:" + strings.ToLower(token.Hex())
	cases := []struct {
		name    string
		payload []byte
		want    want
	}{
		{"legacy native", legacyPayload(t, uint64(3), gwei, uint64(21000), to, eth, empty, big.NewInt(137), uint(0), uint(0)),
			want{"eip155:137", "native", []Transfer{ethTo(to, eth)}, new(big.Int).Mul(big.NewInt(21000), gwei)}},
		{"legacy native zero value", legacyPayload(t, uint64(0), gwei, uint64(21000), to, big.NewInt(0), empty, big.NewInt(1), uint(0), uint(0)),
			want{"eip155:1", "native", []Transfer{ethTo(to, big.NewInt(0))}, new(big.Int).Mul(big.NewInt(21000), gwei)}},
		{"eip-2930 native with access list", typedPayload(t, 1, big.NewInt(1), uint64(7), gwei, uint64(30000), to, eth, empty, al),
			want{"eip155:1", "native", []Transfer{ethTo(to, eth)}, new(big.Int).Mul(big.NewInt(30000), gwei)}},
		{"eip-1559 native", typedPayload(t, 2, big.NewInt(10), uint64(1), big.NewInt(2), big.NewInt(50), uint64(21000), to, eth, empty, types.AccessList{}),
			want{"eip155:10", "native", []Transfer{ethTo(to, eth)}, big.NewInt(21000 * 50)}},
		{"eip-1559 erc20 transfer", typedPayload(t, 2, big.NewInt(1), uint64(2), gwei, gwei, uint64(60000), token, big.NewInt(0), erc20Call(selectorTransfer, recipient.Bytes(), amount), types.AccessList{}),
			want{"eip155:1", "erc20.transfer", []Transfer{{Action: ActionTransfer, Asset: tok, To: recipient.Hex(), Amount: amount}}, new(big.Int).Mul(big.NewInt(60000), gwei)}},
		{"legacy erc20 approve", legacyPayload(t, uint64(4), gwei, uint64(50000), token, big.NewInt(0), erc20Call(selectorApprove, recipient.Bytes(), amount), big.NewInt(1), uint(0), uint(0)),
			want{"eip155:1", "erc20.approve", []Transfer{{Action: ActionApprove, Asset: tok, To: recipient.Hex(), Amount: amount}}, new(big.Int).Mul(big.NewInt(50000), gwei)}},
		{"eip-1559 erc20 transfer with native value", typedPayload(t, 2, big.NewInt(1), uint64(2), gwei, gwei, uint64(60000), token, eth, erc20Call(selectorTransfer, recipient.Bytes(), amount), types.AccessList{}),
			want{"eip155:1", "erc20.transfer", []Transfer{ethTo(token, eth), {Action: ActionTransfer, Asset: tok, To: recipient.Hex(), Amount: amount}}, new(big.Int).Mul(big.NewInt(60000), gwei)}},
		{"eip-2930 contract call with value", typedPayload(t, 1, big.NewInt(5), uint64(0), gwei, uint64(100000), to, eth, []byte{0xde, 0xad, 0xbe, 0xef}, types.AccessList{}),
			want{"eip155:5", "contract-call", []Transfer{ethTo(to, eth)}, new(big.Int).Mul(big.NewInt(100000), gwei)}},
		{"contract call without value", typedPayload(t, 2, big.NewInt(1), uint64(0), gwei, gwei, uint64(100000), to, big.NewInt(0), []byte{1, 2, 3, 4, 5}, types.AccessList{}),
			want{"eip155:1", "contract-call", nil, new(big.Int).Mul(big.NewInt(100000), gwei)}},
		{"contract create with value", typedPayload(t, 2, big.NewInt(1), uint64(9), gwei, gwei, uint64(500000), empty, eth, []byte{0x60, 0x00}, types.AccessList{}),
			want{"eip155:1", "contract-create", []Transfer{ethTo(crypto.CreateAddress(sender, 9), eth)}, new(big.Int).Mul(big.NewInt(500000), gwei)}},
		{"legacy contract create", legacyPayload(t, uint64(0), gwei, uint64(500000), empty, big.NewInt(0), []byte{0x60, 0x00}, big.NewInt(1), uint(0), uint(0)),
			want{"eip155:1", "contract-create", nil, new(big.Int).Mul(big.NewInt(500000), gwei)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, err := Decode(KindEVM, c.payload, key, Options{})
			if err != nil {
				t.Fatal(err)
			}
			s := d.Summary
			if s.Chain != c.want.chain || s.Method != c.want.method {
				t.Fatalf("chain %q method %q, want %q %q", s.Chain, s.Method, c.want.chain, c.want.method)
			}
			if s.Fee.Cmp(c.want.fee) != 0 {
				t.Fatalf("fee %s, want %s", s.Fee, c.want.fee)
			}
			if len(s.Transfers) != len(c.want.transfers) {
				t.Fatalf("transfers %+v, want %+v", s.Transfers, c.want.transfers)
			}
			for i, got := range s.Transfers {
				w := c.want.transfers[i]
				if got.Action != w.Action || got.Asset != w.Asset || got.To != w.To || got.Amount.Cmp(w.Amount) != 0 || got.Change {
					t.Fatalf("transfer %d = %+v, want %+v", i, got, w)
				}
			}
			if got, want := s.Digests[0], crypto.Keccak256(c.payload); len(s.Digests) != 1 || !bytes.Equal(got, want) {
				t.Fatalf("digests %x, want [keccak256(payload)] %x", s.Digests, want)
			}

			sig, err := crypto.Sign(s.Digests[0], priv)
			if err != nil {
				t.Fatal(err)
			}
			raw, err := d.Assemble([]Signature{{RS: sig[:64], RecoveryID: sig[64]}})
			if err != nil {
				t.Fatal(err)
			}
			var signed types.Transaction
			if err := signed.UnmarshalBinary(raw); err != nil {
				t.Fatalf("assembled bytes do not parse: %v", err)
			}
			chainID, _ := new(big.Int).SetString(strings.TrimPrefix(c.want.chain, "eip155:"), 10)
			signer := types.LatestSignerForChainID(chainID)
			from, err := types.Sender(signer, &signed)
			if err != nil || from != sender {
				t.Fatalf("signed tx recovers to %s (%v), want %s", from.Hex(), err, sender.Hex())
			}
			if h := signer.Hash(&signed); !bytes.Equal(h[:], s.Digests[0]) {
				t.Fatalf("signed tx signing hash %x, want the decoded digest %x", h, s.Digests[0])
			}
			if signed.ChainId().Cmp(chainID) != 0 {
				t.Fatalf("signed chain id %s, want %s", signed.ChainId(), chainID)
			}
		})
	}
}

func TestEVMRejects(t *testing.T) {
	_, key := testKey(t, 7)
	gwei := big.NewInt(1e9)
	to := common.HexToAddress("0xd8dA6BF26964aF9D7eEd9e03E53415D37aA96045")
	token := common.HexToAddress("0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48")
	one := big.NewInt(1)
	empty := []byte{}
	valid := typedPayload(t, 2, one, uint64(0), gwei, gwei, uint64(21000), to, one, empty, types.AccessList{})
	validLegacy := legacyPayload(t, uint64(0), gwei, uint64(21000), to, one, empty, one, uint(0), uint(0))
	dirtyAddr := append(bytes.Repeat([]byte{0}, 11), append([]byte{1}, to.Bytes()...)...)
	huge := new(big.Int).Lsh(one, 256) // 2^256: does not fit uint256

	cases := []struct {
		name     string
		payload  []byte
		class    error
		fragment string
	}{
		{"empty", nil, ErrMalformed, "empty"},
		{"rlp string", []byte{0x83, 1, 2, 3}, ErrMalformed, "RLP string"},
		{"blob type", append([]byte{3}, valid[1:]...), ErrUnsupported, "0x03"},
		{"set-code type", append([]byte{4}, valid[1:]...), ErrUnsupported, "0x04"},
		{"unknown type", append([]byte{0x05}, valid[1:]...), ErrUnsupported, "0x05"},
		{"type 0 prefix", append([]byte{0x00}, validLegacy...), ErrUnsupported, "0x00"},
		{"trailing bytes typed", append(append([]byte(nil), valid...), 0x00), ErrMalformed, "trailing"},
		{"trailing bytes legacy", append(append([]byte(nil), validLegacy...), 0x80), ErrMalformed, "trailing"},
		{"type byte only", []byte{2}, ErrMalformed, "not an RLP list"},
		{"chain id zero 1559", typedPayload(t, 2, big.NewInt(0), uint64(0), gwei, gwei, uint64(21000), to, one, empty, types.AccessList{}), ErrMalformed, "chain id is 0"},
		{"chain id zero legacy", legacyPayload(t, uint64(0), gwei, uint64(21000), to, one, empty, big.NewInt(0), uint(0), uint(0)), ErrMalformed, "chain id is 0"},
		{"legacy pre-EIP-155", legacyPayload(t, uint64(0), gwei, uint64(21000), to, one, empty), ErrMalformed, "pre-EIP-155"},
		{"legacy nonzero trailing fields", legacyPayload(t, uint64(0), gwei, uint64(21000), to, one, empty, one, uint(27), uint(1)), ErrMalformed, "want [0, 0]"},
		{"legacy 10 fields", legacyPayload(t, uint64(0), gwei, uint64(21000), to, one, empty, one, uint(0), uint(0), uint(0)), ErrMalformed, "10 fields, want 9"},
		{"1559 missing access list", typedPayload(t, 2, one, uint64(0), gwei, gwei, uint64(21000), to, one, empty), ErrMalformed, "8 fields, want 9"},
		{"2930 given 1559 fields", typedPayload(t, 1, one, uint64(0), gwei, gwei, uint64(21000), to, one, empty, types.AccessList{}), ErrMalformed, "9 fields, want 8"},
		{"non-canonical integer", typedPayload(t, 2, one, []byte{0, 1}, gwei, gwei, uint64(21000), to, one, empty, types.AccessList{}), ErrMalformed, "non-canonical"},
		{"value over 256 bits", typedPayload(t, 2, one, uint64(0), gwei, gwei, uint64(21000), to, huge, empty, types.AccessList{}), ErrMalformed, "uint256"},
		{"short to address", typedPayload(t, 2, one, uint64(0), gwei, gwei, uint64(21000), to.Bytes()[:19], one, empty, types.AccessList{}), ErrMalformed, "too short"},
		{"nonce 2^64-1", typedPayload(t, 2, one, ^uint64(0), gwei, gwei, uint64(21000), to, one, empty, types.AccessList{}), ErrMalformed, "EIP-2681"},
		{"priority fee above max fee", typedPayload(t, 2, one, uint64(0), big.NewInt(2), one, uint64(21000), to, one, empty, types.AccessList{}), ErrMalformed, "exceeds maxFeePerGas"},
		{"erc20 transfer short", typedPayload(t, 2, one, uint64(0), gwei, gwei, uint64(60000), token, big.NewInt(0), erc20Call(selectorTransfer, to.Bytes(), one)[:67], types.AccessList{}), ErrMalformed, "67 bytes, want 68"},
		{"erc20 transfer long", typedPayload(t, 2, one, uint64(0), gwei, gwei, uint64(60000), token, big.NewInt(0), append(erc20Call(selectorTransfer, to.Bytes(), one), 0), types.AccessList{}), ErrMalformed, "69 bytes, want 68"},
		{"erc20 transfer selector only", typedPayload(t, 2, one, uint64(0), gwei, gwei, uint64(60000), token, big.NewInt(0), selectorTransfer, types.AccessList{}), ErrMalformed, "erc20.transfer calldata is 4 bytes"},
		{"erc20 approve dirty address", typedPayload(t, 2, one, uint64(0), gwei, gwei, uint64(60000), token, big.NewInt(0), erc20Call(selectorApprove, dirtyAddr, one), types.AccessList{}), ErrMalformed, "nonzero high bytes"},
		{"access list wrong shape", typedPayload(t, 2, one, uint64(0), gwei, gwei, uint64(21000), to, one, empty, []any{[]byte{1}}), ErrMalformed, "eip-1559 payload"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, err := Decode(KindEVM, c.payload, key, Options{})
			if d != nil {
				t.Fatalf("got a Decoded for a refused payload")
			}
			wantErr(t, err, c.class, c.fragment)
		})
	}
}

// TestEVMNonCanonicalPreimage: bytes that decode to the right fields but
// are not the canonical encoding must be refused, because the key would
// sign keccak256 of bytes policy did not see as-is.
func TestEVMNonCanonicalPreimage(t *testing.T) {
	_, key := testKey(t, 7)
	to := common.HexToAddress("0xd8dA6BF26964aF9D7eEd9e03E53415D37aA96045")
	canon := legacyPayload(t, uint64(1), big.NewInt(1e9), uint64(21000), to, big.NewInt(1), []byte{}, big.NewInt(1), uint(0), uint(0))
	// Re-encode the outer list header in long form (0xf8 <len>) although the
	// content is under 56 bytes: rlp must refuse it.
	content, _, err := rlp.SplitList(canon)
	if err != nil {
		t.Fatal(err)
	}
	long := append([]byte{0xf8, byte(len(content))}, content...)
	_, err = Decode(KindEVM, long, key, Options{})
	wantErr(t, err, ErrMalformed, "legacy payload")
}

func TestEVMAssembleRejects(t *testing.T) {
	priv, key := testKey(t, 9)
	other, _ := testKey(t, 10)
	to := common.HexToAddress("0xd8dA6BF26964aF9D7eEd9e03E53415D37aA96045")
	payload := typedPayload(t, 2, big.NewInt(1), uint64(0), big.NewInt(1), big.NewInt(1), uint64(21000), to, big.NewInt(1), []byte{}, types.AccessList{})
	d, err := Decode(KindEVM, payload, key, Options{})
	if err != nil {
		t.Fatal(err)
	}
	good := signDigest(priv, d.Summary.Digests[0])
	highS := func() Signature {
		// s' = n - s verifies too (ECDSA malleability) but must be refused.
		n := new(big.Int).SetBytes(mustHex(t, "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141"))
		s := new(big.Int).Sub(n, new(big.Int).SetBytes(good.RS[32:]))
		rs := append([]byte(nil), good.RS[:32]...)
		return Signature{RS: append(rs, s.FillBytes(make([]byte, 32))...), RecoveryID: 1 - good.RecoveryID}
	}()
	cases := []struct {
		name     string
		sigs     []Signature
		fragment string
	}{
		{"none", nil, "got 0 signatures, want 1"},
		{"two", []Signature{good, good}, "got 2 signatures, want 1"},
		{"short", []Signature{{RS: good.RS[:63]}}, "63 bytes, want 64"},
		{"other key", []Signature{signDigest(other, d.Summary.Digests[0])}, "does not verify"},
		{"other digest", []Signature{signDigest(priv, make([]byte, 32))}, "does not verify"},
		{"wrong recovery id", []Signature{{RS: good.RS, RecoveryID: 1 - good.RecoveryID}}, "does not recover"},
		{"recovery id 2", []Signature{{RS: good.RS, RecoveryID: 2}}, "want 0 or 1"},
		{"high S", []Signature{highS}, "high S"},
		{"zero r", []Signature{{RS: append(make([]byte, 32), good.RS[32:]...)}}, "r is zero"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, err := d.Assemble(c.sigs)
			if out != nil {
				t.Fatalf("got output for a bad signature")
			}
			wantErr(t, err, ErrBadSignature, c.fragment)
		})
	}
	// A failed attempt leaves d usable.
	if _, err := d.Assemble([]Signature{good}); err != nil {
		t.Fatalf("retry with the good signature: %v", err)
	}
}
