// Package bench measures signing latency: raw tss-lib in one process (the
// floor) against the appliance end to end (HTTP API → coordinator enclave →
// encrypted relay through hosts → every signer's enclave → verified
// signature). Run with `make bench`; figures are printed, never asserted.
package bench

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/bnb-chain/tss-lib/v2/common"
	ecdsakeygen "github.com/bnb-chain/tss-lib/v2/ecdsa/keygen"
	ecdsasigning "github.com/bnb-chain/tss-lib/v2/ecdsa/signing"
	eddsakeygen "github.com/bnb-chain/tss-lib/v2/eddsa/keygen"
	eddsasigning "github.com/bnb-chain/tss-lib/v2/eddsa/signing"
	"github.com/bnb-chain/tss-lib/v2/tss"
	golog "github.com/ipfs/go-log"

	ethcommon "github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/rlp"

	"github.com/sealsign/sealsign/enclave/api"
	"github.com/sealsign/sealsign/governance/tx"
	"github.com/sealsign/sealsign/host/client"
	"github.com/sealsign/sealsign/host/devcluster"
	"github.com/sealsign/sealsign/host/server"
)

const samples = 12

func fixturePath() string {
	if f := os.Getenv("SEALSIGN_PREPARAMS_FIXTURE"); f != "" {
		return f
	}
	f, _ := filepath.Abs("../testdata/preparams.json")
	return f
}

type stats struct{ p50, p95 time.Duration }

func measure(n int, f func() error) (stats, error) {
	var d []time.Duration
	for i := 0; i < n; i++ {
		start := time.Now()
		if err := f(); err != nil {
			return stats{}, err
		}
		d = append(d, time.Since(start))
	}
	slices.Sort(d)
	return stats{p50: d[len(d)/2], p95: d[(len(d)*95+99)/100-1]}, nil
}

// run drives tss-lib parties in one process the way its own tests do:
// buffered out channels, one goroutine per delivered message.
func run(parties map[string]tss.Party, ids tss.SortedPartyIDs, out chan tss.Message, fin <-chan struct{}) error {
	errc := make(chan error, len(parties))
	for _, p := range parties {
		go func() {
			if err := p.Start(); err != nil {
				errc <- err
			}
		}()
	}
	byID := map[string]tss.Party{}
	for _, id := range ids {
		byID[id.Id] = parties[id.Id]
	}
	for {
		select {
		case <-fin:
			return nil
		case err := <-errc:
			return err
		case m := <-out:
			wire, r, err := m.WireBytes()
			if err != nil {
				return err
			}
			var to []*tss.PartyID
			if r.IsBroadcast || r.To == nil {
				for _, id := range ids {
					if id.Id != r.From.Id {
						to = append(to, id)
					}
				}
			} else {
				to = r.To
			}
			for _, dst := range to {
				go func() {
					pm, err := tss.ParseWireMessage(wire, r.From, r.IsBroadcast)
					if err == nil {
						_, terr := byID[dst.Id].Update(pm)
						if terr != nil {
							errc <- terr
						}
					}
				}()
			}
		}
	}
}

// counter closes fin after n calls to done.
func counter(n int) (done func(), fin chan struct{}) {
	var mu sync.Mutex
	fin = make(chan struct{})
	return func() {
		mu.Lock()
		defer mu.Unlock()
		n--
		if n == 0 {
			close(fin)
		}
	}, fin
}

func partyIDs(names ...string) tss.SortedPartyIDs {
	var u tss.UnSortedPartyIDs
	for i, n := range names {
		u = append(u, tss.NewPartyID(n, n, big.NewInt(int64(i+1))))
	}
	return tss.SortPartyIDs(u)
}

func rawKeys(b *testing.B) (map[string]*ecdsakeygen.LocalPartySaveData, map[string]*eddsakeygen.LocalPartySaveData) {
	raw, err := os.ReadFile(fixturePath())
	if err != nil {
		b.Fatal(err)
	}
	var pre []*ecdsakeygen.LocalPreParams
	if err := json.Unmarshal(raw, &pre); err != nil {
		b.Fatal(err)
	}
	ids := partyIDs("a", "b", "c")
	ctx := tss.NewPeerContext(ids)
	ec := map[string]*ecdsakeygen.LocalPartySaveData{}
	ed := map[string]*eddsakeygen.LocalPartySaveData{}
	var mu sync.Mutex
	for _, alg := range []string{"ecdsa", "eddsa"} {
		done, fin := counter(3)
		out := make(chan tss.Message, 1000)
		parties := map[string]tss.Party{}
		for i, id := range ids {
			if alg == "ecdsa" {
				end := make(chan *ecdsakeygen.LocalPartySaveData, 1)
				parties[id.Id] = ecdsakeygen.NewLocalParty(tss.NewParameters(tss.S256(), ctx, id, 3, 1), out, end, *pre[i])
				go func() { k := <-end; mu.Lock(); ec[id.Id] = k; mu.Unlock(); done() }()
			} else {
				end := make(chan *eddsakeygen.LocalPartySaveData, 1)
				parties[id.Id] = eddsakeygen.NewLocalParty(tss.NewParameters(tss.Edwards(), ctx, id, 3, 1), out, end)
				go func() { k := <-end; mu.Lock(); ed[id.Id] = k; mu.Unlock(); done() }()
			}
		}
		err := run(parties, ids, out, fin)
		if err != nil {
			b.Fatal(err)
		}
	}
	return ec, ed
}

func rawSign(ec map[string]*ecdsakeygen.LocalPartySaveData, ed map[string]*eddsakeygen.LocalPartySaveData, alg string, msg []byte) error {
	all := partyIDs("a", "b", "c")
	ids := tss.SortPartyIDs(tss.UnSortedPartyIDs{all[0], all[1]})
	ctx := tss.NewPeerContext(ids)
	out := make(chan tss.Message, 1000)
	parties := map[string]tss.Party{}
	done, fin := counter(2)
	for _, id := range ids {
		end := make(chan *common.SignatureData, 1)
		m := new(big.Int).SetBytes(msg)
		if alg == "ecdsa" {
			parties[id.Id] = ecdsasigning.NewLocalParty(m, tss.NewParameters(tss.S256(), ctx, id, 2, 1), *ec[id.Id], out, end, len(msg))
		} else {
			parties[id.Id] = eddsasigning.NewLocalParty(m, tss.NewParameters(tss.Edwards(), ctx, id, 2, 1), *ed[id.Id], out, end, len(msg))
		}
		go func() { <-end; done() }()
	}
	return run(parties, ids, out, fin)
}

// BenchmarkSigning prints raw and appliance p50/p95 for both algorithms
// and the overhead ratio (p50 appliance / p50 raw).
func BenchmarkSigning(b *testing.B) {
	golog.SetLogLevel("tss-lib", "error")
	digest := sha256.Sum256([]byte("bench"))
	msg := []byte("bench message")

	ec, ed := rawKeys(b)
	rawEC, err := measure(samples, func() error { return rawSign(ec, ed, "ecdsa", digest[:]) })
	if err != nil {
		b.Fatal(err)
	}
	rawED, err := measure(samples, func() error { return rawSign(ec, ed, "eddsa", msg) })
	if err != nil {
		b.Fatal(err)
	}

	dir, err := os.MkdirTemp("", "ss-bench-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	bin := os.Getenv("SEALSIGN_BIN")
	if bin == "" {
		bin, _ = filepath.Abs("../../bin")
	}
	cctx := context.Background()
	pol, err := os.ReadFile("testdata/policy.json")
	if err != nil {
		b.Fatal(err)
	}
	c, err := devcluster.Up(cctx, devcluster.Options{Dir: dir, BinDir: bin, PreParamsPool: 1, PreParamsNoRefill: true, InsecurePreParamsFixture: fixturePath(), PolicyJSON: pol})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Down()
	cl := c.Client("a")
	var ecKey, edKey string
	for deadline := time.Now().Add(time.Minute); ; {
		k, err := c.CreateKey(cctx, api.AlgECDSASecp256k1)
		if err == nil {
			ecKey = k.ID
			break
		}
		if time.Now().After(deadline) {
			b.Fatal(err)
		}
		time.Sleep(time.Second)
	}
	k, err := c.CreateKey(cctx, api.AlgEdDSAEd25519)
	if err != nil {
		b.Fatal(err)
	}
	edKey = k.ID
	clientKey, err := c.GovernanceKey("treasury-app")
	if err != nil {
		b.Fatal(err)
	}
	submit := func(keyID string, kind tx.Kind, payload []byte) error {
		signed, err := client.NewRequest(clientKey, c.ClusterID(), keyID, kind, payload, 10*time.Minute, "a", "b")
		if err != nil {
			return err
		}
		st, err := cl.Submit(cctx, signed)
		if err == nil && st.State != server.StateSigned {
			err = fmt.Errorf("request %s is %s: %s", st.RequestID, st.State, st.Error)
		}
		return err
	}
	appEC, err := measure(samples, func() error { return submit(ecKey, tx.KindRaw, digest[:]) })
	if err != nil {
		b.Fatal(err)
	}
	var nonce uint64
	appEVM, err := measure(samples, func() error {
		nonce++
		return submit(ecKey, tx.KindEVM, ethPayload(nonce))
	})
	if err != nil {
		b.Fatal(err)
	}
	appED, err := measure(samples, func() error { return submit(edKey, tx.KindRaw, msg) })
	if err != nil {
		b.Fatal(err)
	}

	fmt.Printf("\n2-of-3 signing latency over %d signatures each (this machine)\n", samples)
	fmt.Printf("%-8s %-22s %10s %10s\n", "alg", "path", "p50", "p95")
	row := func(alg, path string, s stats) {
		fmt.Printf("%-8s %-22s %10s %10s\n", alg, path, s.p50.Round(time.Millisecond), s.p95.Round(time.Millisecond))
	}
	row("ECDSA", "raw tss-lib in-process", rawEC)
	row("ECDSA", "appliance, raw digest", appEC)
	row("ECDSA", "appliance, EVM transfer", appEVM)
	row("EdDSA", "raw tss-lib in-process", rawED)
	row("EdDSA", "appliance, raw digest", appED)
	ratio := func(app, raw stats) float64 { return float64(app.p50) / float64(raw.p50) }
	fmt.Printf("overhead (p50 appliance / p50 raw): ECDSA %.2fx, EdDSA %.2fx\n", ratio(appEC, rawEC), ratio(appED, rawED))
	fmt.Printf("EVM decoding + 3-rule policy over a raw digest, end to end: %+dms at p50\n", (appEVM.p50 - appEC.p50).Milliseconds())
	fmt.Printf("(every appliance request is governed: client signature, decoding, policy, velocity, audit entries and sealed state on each signer;\n see BenchmarkGovernanceAdmission in enclave/party for that part alone)\n\n")
	b.ReportMetric(float64(appEC.p50.Milliseconds()), "ecdsa-p50-ms")
	b.ReportMetric(ratio(appEC, rawEC), "ecdsa-overhead-x")
	b.ReportMetric(float64(appEVM.p50.Milliseconds()), "evm-p50-ms")
	b.ReportMetric(ratio(appED, rawED), "eddsa-overhead-x")
}

// ethPayload is the unsigned EIP-1559 preimage of a 0.01 ETH transfer on
// chain 1 to an allowlisted address (governance/tx: 0x02 ‖ rlp(fields)).
func ethPayload(nonce uint64) []byte {
	to := ethcommon.HexToAddress("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed")
	body, err := rlp.EncodeToBytes([]any{big.NewInt(1), nonce, big.NewInt(1_000_000_000), big.NewInt(30_000_000_000), uint64(21000), to, big.NewInt(10_000_000_000_000_000), []byte{}, types.AccessList{}})
	if err != nil {
		panic(err)
	}
	return append([]byte{types.DynamicFeeTxType}, body...)
}
