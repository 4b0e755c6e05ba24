package party

// Governed signing end to end through the enclave runtime: real enclaves,
// SoftHSM sealing, the dev NSM, tss-lib sessions, client-signed requests,
// signed approvals and policies (party_test.go, fixture_test.go).

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	ecdsakeygen "github.com/bnb-chain/tss-lib/v2/ecdsa/keygen"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/rlp"

	"github.com/sealsign/sealsign/attestation/peer"
	"github.com/sealsign/sealsign/enclave/api"
	"github.com/sealsign/sealsign/enclave/audit"
	"github.com/sealsign/sealsign/enclave/session"
	"github.com/sealsign/sealsign/governance/approval"
	"github.com/sealsign/sealsign/governance/keys"
	"github.com/sealsign/sealsign/governance/request"
	"github.com/sealsign/sealsign/governance/tx"
)

// fixturePreParams deals the committed Paillier pre-parameter fixture
// (test/testdata/preparams.json, written by test/fixtures/gen_preparams.go;
// public, so the keys made here protect nothing) to the three parties the
// way the dev cluster does: every third set, offset by the party's index.
// SEALSIGN_PREPARAMS_FIXTURE, as set by make test, names another copy.
func fixturePreParams(t testing.TB) map[string][]*ecdsakeygen.LocalPreParams {
	t.Helper()
	return fixturePreParamsFor(t, []string{"a", "b", "c"})
}

// fixturePreParamsFor deals the fixture's sets to ids round-robin.
func fixturePreParamsFor(t testing.TB, ids []string) map[string][]*ecdsakeygen.LocalPreParams {
	t.Helper()
	path := os.Getenv("SEALSIGN_PREPARAMS_FIXTURE")
	if path == "" {
		path = "../../test/testdata/preparams.json"
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("pre-params fixture: %v (regenerate with: go run test/fixtures/gen_preparams.go)", err)
	}
	var all []*ecdsakeygen.LocalPreParams
	if err := json.Unmarshal(b, &all); err != nil {
		t.Fatalf("pre-params fixture %s: %v", path, err)
	}
	if len(all) < len(ids) {
		t.Fatalf("pre-params fixture %s has %d sets, want at least %d", path, len(all), len(ids))
	}
	out := map[string][]*ecdsakeygen.LocalPreParams{}
	for i := range all {
		id := ids[i%len(ids)]
		out[id] = append(out[id], all[i])
	}
	return out
}

// keygen makes a key on every party and returns the coordinator's result.
func (c *cluster) keygen(alg string) *api.SessionResult {
	c.t.Helper()
	res, errs := c.session("a", api.ProposeRequest{Kind: api.KindKeygen, Algorithm: alg, Parties: c.ids})
	if len(errs) > 0 {
		c.t.Fatalf("keygen %s: %v", alg, errs)
	}
	return res["a"]
}

// sharedECDSA is the threshold secp256k1 key the first ecdsaCluster made
// with a real keygen (about 20 s on two cores): each party's share record.
// Later clusters import it rather than paying for another keygen.
var sharedECDSA struct {
	sync.Mutex
	key  *api.SessionResult
	recs map[string]shareRecord
}

// ecdsaCluster is a cluster (policy: nil for testdata/policy.json) with a
// threshold secp256k1 key. The first one in a test binary runs a real
// ECDSA keygen (Paillier pre-parameters from the committed fixture); later
// ones import that key's shares the way finishKeygen stores a new one
// (sealed with the party's own token, stored with its host, loaded), since
// tss-lib save data names parties by id only and every test cluster has
// parties a, b and c. Signing, admission and assembly are the real code
// either way.
func ecdsaCluster(t testing.TB, policyJSON []byte) (*cluster, *api.SessionResult) {
	t.Helper()
	s := &sharedECDSA
	s.Lock()
	defer s.Unlock()
	if s.key == nil {
		c := newClusterWith(t, clusterOptions{policy: policyJSON, preParams: fixturePreParams(t)})
		key := c.keygen(api.AlgECDSASecp256k1)
		recs := map[string]shareRecord{}
		for _, id := range c.ids {
			k, err := c.encl[id].share(key.KeyID)
			if err != nil {
				t.Fatal(err)
			}
			recs[id] = k.rec
		}
		s.key, s.recs = key, recs
		return c, key
	}
	c := newClusterWith(t, clusterOptions{policy: policyJSON})
	for _, id := range c.ids {
		rec := s.recs[id]
		e := c.encl[id]
		blob, err := e.sealShare(id, &rec)
		if err != nil {
			t.Fatal(err)
		}
		// As finishKeygen: the governance state is stored before the share.
		e.gov.mu.Lock()
		err = e.sealGovernance(context.Background(), id)
		e.gov.mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		h := c.hosts[id]
		h.mu.Lock()
		h.blobs[shareBlobName(rec.KeyID, rec.Epoch)] = blob
		h.mu.Unlock()
		k, err := rec.load()
		if err != nil {
			t.Fatal(err)
		}
		e.mu.Lock()
		e.shares[rec.KeyID] = k
		e.mu.Unlock()
	}
	return c, s.key
}

func (c *cluster) advance(d time.Duration) {
	c.nowMu.Lock()
	c.now = c.now.Add(d)
	c.nowMu.Unlock()
}

// restart restarts party id from the blobs and audit log its host holds,
// with the same token, and reconnects the cluster. The clock moves on a
// second, so requests made afterwards are issued after the boot.
func (c *cluster) restart(id string) {
	c.t.Helper()
	c.start(id, c.encl[id].cfg.Sealer, c.encl[id].cfg.Epochs, c.pcr0)
	c.connect()
	c.advance(time.Second)
}

// sign proposes a governed signing on coord and runs it on parties.
func (c *cluster) sign(coord, keyID string, parties []string, req []byte, approvals ...[]byte) (map[string]*api.SessionResult, map[string]error) {
	return c.session(coord, api.ProposeRequest{Kind: api.KindSign, KeyID: keyID, Parties: parties, Request: req, Approvals: approvals})
}

// mustSign is sign that must succeed on every party.
func (c *cluster) mustSign(coord, keyID string, parties []string, req []byte, approvals ...[]byte) map[string]*api.SessionResult {
	c.t.Helper()
	res, errs := c.sign(coord, keyID, parties, req, approvals...)
	if len(errs) > 0 || len(res) != len(parties) {
		c.t.Fatalf("governed signing on %v: %d results, errors %v", parties, len(res), errs)
	}
	return res
}

func (c *cluster) evaluate(id string, req []byte, approvals ...[]byte) (*api.Verdict, error) {
	return c.encl[id].evaluateMethod(context.Background(), &api.EvaluateRequest{Request: req, Approvals: approvals})
}

func (c *cluster) mustEvaluate(id string, req []byte, approvals ...[]byte) *api.Verdict {
	c.t.Helper()
	v, err := c.evaluate(id, req, approvals...)
	if err != nil {
		c.t.Fatalf("evaluate on %s: %v", id, err)
	}
	return v
}

// evmReq is a client-signed EVM request for keyID.
func (c *cluster) evmReq(keyID string, payload []byte, signers ...string) []byte {
	return c.gov.request(c.t, "test", keyID, tx.KindEVM, payload, c.clock(), signers...)
}

// Test addresses. blocked is the one testdata/policy.json denies.
var (
	payee   = common.HexToAddress("0xd8dA6BF26964aF9D7eEd9e03E53415D37aA96045")
	blocked = common.HexToAddress("0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB")
	gwei    = big.NewInt(1e9)
)

// eth is n/1000 ETH in wei.
func eth(milli int64) *big.Int {
	return new(big.Int).Mul(big.NewInt(milli), big.NewInt(1e15))
}

// evmTransfer is a native transfer to build as an unsigned preimage.
type evmTransfer struct {
	typ     byte // types.LegacyTxType or types.DynamicFeeTxType
	chainID int64
	nonce   uint64
	to      common.Address
	value   *big.Int
}

// payload returns the signing preimage (governance/tx/evm.go) built with
// go-ethereum's rlp, and the unsigned transaction it encodes. It checks
// that go-ethereum's signing hash of the transaction is keccak256 of the
// payload, so the test builds what the enclave is meant to decode.
func (x evmTransfer) payload(t testing.TB) ([]byte, *types.Transaction) {
	t.Helper()
	chainID := big.NewInt(x.chainID)
	var fields []any
	var inner types.TxData
	switch x.typ {
	case types.LegacyTxType:
		fields = []any{x.nonce, gwei, uint64(21000), x.to, x.value, []byte{}, chainID, uint(0), uint(0)}
		inner = &types.LegacyTx{Nonce: x.nonce, GasPrice: gwei, Gas: 21000, To: &x.to, Value: x.value}
	case types.DynamicFeeTxType:
		feeCap := new(big.Int).Mul(gwei, big.NewInt(30))
		fields = []any{chainID, x.nonce, gwei, feeCap, uint64(21000), x.to, x.value, []byte{}, types.AccessList{}}
		inner = &types.DynamicFeeTx{ChainID: chainID, Nonce: x.nonce, GasTipCap: gwei, GasFeeCap: feeCap, Gas: 21000, To: &x.to, Value: x.value}
	default:
		t.Fatalf("transaction type %d not built here", x.typ)
	}
	body, err := rlp.EncodeToBytes(fields)
	if err != nil {
		t.Fatal(err)
	}
	payload := body
	if x.typ != types.LegacyTxType {
		payload = append([]byte{x.typ}, body...)
	}
	unsigned := types.NewTx(inner)
	if h := types.LatestSignerForChainID(chainID).Hash(unsigned); h != crypto.Keccak256Hash(payload) {
		t.Fatalf("test preimage: go-ethereum's signing hash %s is not keccak256(payload) %s", h.Hex(), crypto.Keccak256Hash(payload).Hex())
	}
	return payload, unsigned
}

// keyAddress is the Ethereum address of a compressed secp256k1 key.
func keyAddress(t *testing.T, pub []byte) common.Address {
	t.Helper()
	pk, err := crypto.DecompressPubkey(pub)
	if err != nil {
		t.Fatalf("threshold key %x: %v", pub, err)
	}
	return crypto.PubkeyToAddress(*pk)
}

// checkSignedEVM checks a party's result for an EVM request: the digest is
// keccak256(payload), the assembled transaction decodes, is the one asked
// for, and recovers to the threshold key's address.
func checkSignedEVM(t *testing.T, id string, res, key *api.SessionResult, x evmTransfer, payload []byte, unsigned *types.Transaction, ruleID string) {
	t.Helper()
	if res.RuleID != ruleID || res.PolicyVersion != 1 || res.RequestID == "" {
		t.Errorf("%s: rule %q policy v%d request %q, want rule %q under v1", id, res.RuleID, res.PolicyVersion, res.RequestID, ruleID)
	}
	if len(res.Digests) != 1 || !bytes.Equal(res.Digests[0], crypto.Keccak256(payload)) {
		t.Errorf("%s: signed digests %x, want [keccak256(payload)] %x", id, res.Digests, crypto.Keccak256(payload))
	}
	var signed types.Transaction
	if err := signed.UnmarshalBinary(res.Transaction); err != nil {
		t.Fatalf("%s: assembled transaction does not decode: %v", id, err)
	}
	signer := types.LatestSignerForChainID(big.NewInt(x.chainID))
	from, err := types.Sender(signer, &signed)
	if err != nil {
		t.Fatalf("%s: sender of the assembled transaction: %v", id, err)
	}
	if want := keyAddress(t, key.PublicKey); from != want {
		t.Errorf("%s: transaction recovers to %s, want the threshold key's address %s", id, from.Hex(), want.Hex())
	}
	if signed.Type() != unsigned.Type() || signed.Nonce() != unsigned.Nonce() || *signed.To() != *unsigned.To() ||
		signed.Value().Cmp(unsigned.Value()) != 0 || signed.ChainId().Int64() != x.chainID || signer.Hash(&signed) != signer.Hash(unsigned) {
		t.Errorf("%s: assembled transaction is not the one requested: got type %d nonce %d to %s value %s chain %s",
			id, signed.Type(), signed.Nonce(), signed.To().Hex(), signed.Value(), signed.ChainId())
	}
}

// TestGovernedEVMTransfer: a native transfer below 1 ETH on chain 1 is
// signed by the threshold ECDSA key under rule eth-small, and every signer
// returns the broadcast-ready transaction; transfers the policy does not
// allow are refused by the coordinator, naming the reason.
func TestGovernedEVMTransfer(t *testing.T) {
	c, key := ecdsaCluster(t, nil)
	for _, tc := range []struct {
		name    string
		tx      evmTransfer
		parties []string
		deny    string // "" = signed; else a fragment of the refusal
	}{
		{"legacy 0.5 ETH", evmTransfer{types.LegacyTxType, 1, 7, payee, eth(500)}, []string{"a", "b"}, ""},
		{"eip-1559 0.999 ETH", evmTransfer{types.DynamicFeeTxType, 1, 8, payee, eth(999)}, []string{"a", "c"}, ""},
		{"another chain", evmTransfer{types.DynamicFeeTxType, 137, 9, payee, eth(500)}, []string{"a", "b"}, `rule eth-small: condition-false: request.chain == "eip155:1"`},
		{"blocked payee", evmTransfer{types.LegacyTxType, 1, 9, blocked, eth(1)}, []string{"a", "b"}, "rule deny-blocked: deny-rule-matched"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			payload, unsigned := tc.tx.payload(t)
			req := c.evmReq(key.KeyID, payload)
			res, errs := c.sign("a", key.KeyID, tc.parties, req)
			if tc.deny != "" {
				if len(res) != 0 || errs["a"] == nil || !strings.Contains(errs["a"].Error(), "deny under policy v1") || !strings.Contains(errs["a"].Error(), tc.deny) {
					t.Fatalf("results %v, errors %v; want the coordinator to refuse with %q", res, errs, tc.deny)
				}
				return
			}
			if len(errs) > 0 {
				t.Fatal(errs)
			}
			for _, id := range tc.parties {
				checkSignedEVM(t, id, res[id], key, tc.tx, payload, unsigned, "eth-small")
				if !bytes.Equal(res[id].Transaction, res[tc.parties[0]].Transaction) {
					t.Errorf("%s assembled another transaction than %s", id, tc.parties[0])
				}
			}
		})
	}
}

// approvalBy is signer's decision on the request a verdict describes,
// issued at issued and valid for life.
func approvalBy(t *testing.T, signer *keys.PrivateKey, v *api.Verdict, decision string, issued time.Time, life time.Duration) []byte {
	t.Helper()
	a := approval.Approval{Format: approval.FormatV1, ClusterID: "test", RequestID: v.RequestID, PolicyVersion: v.PolicyVersion,
		ApproverKeyID: signer.Public.ID, Decision: decision, IssuedAt: issued.Unix(), ExpiresAt: issued.Add(life).Unix()}
	copy(a.RequestDigest[:], v.RequestDigest)
	copy(a.PayloadHash[:], v.PayloadHash)
	b, err := approval.New(a, signer.Signer)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestGovernedApprovals: a transfer of 1 ETH or more matches eth-large,
// which needs two treasury approvals from distinct approvers. Every party
// reports the same pending state until they arrive; approvals that do not
// verify for this request are listed as ignored and do not count; one
// rejection denies; two distinct approvals sign.
func TestGovernedApprovals(t *testing.T) {
	c, key := ecdsaCluster(t, nil)
	g := c.gov
	alice, bob, carol := g.approvers[0], g.approvers[1], g.approvers[2]
	stranger, err := keys.Generate("appr-mallory", "mallory", keys.Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	x := evmTransfer{types.DynamicFeeTxType, 1, 3, payee, eth(1500)}
	payload, unsigned := x.payload(t)

	for _, tc := range []struct {
		name      string
		approvals func(v *api.Verdict, now time.Time) [][]byte
		outcome   string
		have      int      // treasury approvals counted (needs-approval)
		ignored   []string // one fragment per approval listed as ignored
	}{
		{"none", func(*api.Verdict, time.Time) [][]byte { return nil },
			api.OutcomeNeedsApproval, 0, nil},
		{"one approval", func(v *api.Verdict, now time.Time) [][]byte {
			return [][]byte{approvalBy(t, alice, v, approval.Approve, now, time.Hour)}
		}, api.OutcomeNeedsApproval, 1, nil},
		{"one approver twice", func(v *api.Verdict, now time.Time) [][]byte {
			return [][]byte{approvalBy(t, alice, v, approval.Approve, now, time.Hour), approvalBy(t, alice, v, approval.Approve, now.Add(-time.Second), time.Hour)}
		}, api.OutcomeNeedsApproval, 1, nil},
		{"approval of another request digest", func(v *api.Verdict, now time.Time) [][]byte {
			other := *v
			d := request.Digest(c.evmReq(key.KeyID, payload))
			other.RequestDigest = d[:]
			return [][]byte{approvalBy(t, alice, v, approval.Approve, now, time.Hour), approvalBy(t, bob, &other, approval.Approve, now, time.Hour)}
		}, api.OutcomeNeedsApproval, 1, []string{approval.ErrMismatch.Error()}},
		{"expired approval", func(v *api.Verdict, now time.Time) [][]byte {
			return [][]byte{approvalBy(t, alice, v, approval.Approve, now, time.Hour), approvalBy(t, bob, v, approval.Approve, now.Add(-2*time.Hour), time.Hour)}
		}, api.OutcomeNeedsApproval, 1, []string{approval.ErrExpired.Error()}},
		{"approval by an unknown key", func(v *api.Verdict, now time.Time) [][]byte {
			return [][]byte{approvalBy(t, alice, v, approval.Approve, now, time.Hour), approvalBy(t, stranger, v, approval.Approve, now, time.Hour)}
		}, api.OutcomeNeedsApproval, 1, []string{approval.ErrUnknownApprover.Error()}},
		{"approval and rejection", func(v *api.Verdict, now time.Time) [][]byte {
			return [][]byte{approvalBy(t, alice, v, approval.Approve, now, time.Hour), approvalBy(t, bob, v, approval.Reject, now, time.Hour)}
		}, api.OutcomeDeny, 0, nil},
		{"two distinct approvers", func(v *api.Verdict, now time.Time) [][]byte {
			return [][]byte{approvalBy(t, carol, v, approval.Approve, now, time.Hour), approvalBy(t, alice, v, approval.Approve, now, time.Hour)}
		}, api.OutcomeAllow, 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := c.evmReq(key.KeyID, payload)
			approvals := tc.approvals(c.mustEvaluate("a", req), c.clock())
			var first *api.Verdict
			for _, id := range c.ids {
				v := c.mustEvaluate(id, req, approvals...)
				if v.Outcome != tc.outcome {
					t.Fatalf("%s: outcome %q, want %q (denials %+v)", id, v.Outcome, tc.outcome, v.Denials)
				}
				if first == nil {
					first = v
				} else if !bytes.Equal(v.DecisionDigest, first.DecisionDigest) {
					t.Errorf("%s decided otherwise than a: %+v vs %+v", id, v, first)
				}
				if len(v.Ignored) != len(tc.ignored) {
					t.Fatalf("%s: ignored approvals %+v, want %d", id, v.Ignored, len(tc.ignored))
				}
				for i, frag := range tc.ignored {
					if !strings.Contains(v.Ignored[i].Error, frag) {
						t.Errorf("%s: ignored approval %d: %q, want %q", id, i, v.Ignored[i].Error, frag)
					}
				}
				switch tc.outcome {
				case api.OutcomeNeedsApproval:
					want := []api.PendingRule{{RuleID: "eth-large", Logic: "and", Groups: []api.GroupNeeds{{Group: "treasury", Threshold: 2, Have: tc.have, Need: 2 - tc.have}}}}
					if !slices.EqualFunc(v.Pending, want, func(a, b api.PendingRule) bool {
						return a.RuleID == b.RuleID && a.Logic == b.Logic && slices.Equal(a.Groups, b.Groups)
					}) {
						t.Errorf("%s: pending %+v, want %+v", id, v.Pending, want)
					}
				case api.OutcomeDeny:
					if len(v.Denials) != 1 || v.Denials[0].Code != "rejected" {
						t.Errorf("%s: denials %+v, want one with code rejected", id, v.Denials)
					}
				case api.OutcomeAllow:
					if v.RuleID != "eth-large" || len(v.Approvals) != 2 {
						t.Errorf("%s: rule %q with approvals %+v, want eth-large with two", id, v.RuleID, v.Approvals)
					}
				}
			}

			// The coordinator proposes only what it allows; its refusal
			// explains its verdict.
			res, errs := c.sign("a", key.KeyID, []string{"a", "b"}, req, approvals...)
			if tc.outcome != api.OutcomeAllow {
				err := errs["a"]
				if len(res) != 0 || api.CodeOf(err) != api.CodeRejected || !strings.Contains(err.Error(), first.Explain()) {
					t.Fatalf("results %v, error %v; want the coordinator to refuse with its verdict: %s", res, err, first.Explain())
				}
				frags := []string{"needs-approval under policy v1", "eth-large", "treasury"}
				if tc.outcome == api.OutcomeDeny {
					frags = []string{"deny under policy v1", "rejected"}
				}
				for _, frag := range frags {
					if !strings.Contains(err.Error(), frag) {
						t.Errorf("refusal %q does not name %q", err, frag)
					}
				}
				return
			}
			if len(errs) > 0 {
				t.Fatal(errs)
			}
			for _, id := range []string{"a", "b"} {
				checkSignedEVM(t, id, res[id], key, x, payload, unsigned, "eth-large")
				var by []string
				for _, e := range auditEntries(t, c.hosts[id]) {
					if b, ok := e.body.(*audit.Approval); ok && b.RequestID == first.RequestID {
						by = append(by, b.ApproverKeyID+"="+b.Decision)
					}
				}
				slices.Sort(by)
				if want := []string{"appr-alice=approve", "appr-carol=approve"}; !slices.Equal(by, want) {
					t.Errorf("%s: audited approvals %v, want %v", id, by, want)
				}
			}
		})
	}
}

// resign re-encodes p and signs it with a's identity key, as a coordinator
// that lies (or a host holding its key) would.
func (c *cluster) resign(coord string, p *session.Proposal) []byte {
	c.t.Helper()
	body, err := api.Marshal(p)
	if err != nil {
		c.t.Fatal(err)
	}
	raw, err := api.Marshal(session.SignedProposal{Body: body, Signature: c.encl[coord].keys.Sign(session.DomainProposal, body)})
	if err != nil {
		c.t.Fatal(err)
	}
	return raw
}

// proposal has coord propose a governed signing and returns it decoded.
func (c *cluster) proposal(coord, keyID string, parties []string, req []byte, approvals ...[]byte) *session.Proposal {
	c.t.Helper()
	prop, err := c.encl[coord].propose(context.Background(), &api.ProposeRequest{Kind: api.KindSign, KeyID: keyID, Parties: parties, Request: req, Approvals: approvals})
	if err != nil {
		c.t.Fatalf("propose on %s: %v", coord, err)
	}
	_, p, err := session.ParseProposal(prop.Proposal)
	if err != nil {
		c.t.Fatal(err)
	}
	return p
}

// TestGovernedProposalTampering: every signer derives the digests from the
// client-signed payload itself and evaluates its own policy, so a
// proposal whose digests, request, approvals, signers or policy version
// disagree with what the party derives is refused by every party, with
// the reason, and nothing is signed — even when the coordinator's
// signature on it is genuine.
func TestGovernedProposalTampering(t *testing.T) {
	c, key := ecdsaCluster(t, nil)
	small := func(nonce uint64, milli int64) []byte {
		p, _ := evmTransfer{types.LegacyTxType, 1, nonce, payee, eth(milli)}.payload(t)
		return p
	}
	large, _ := evmTransfer{types.DynamicFeeTxType, 1, 40, payee, eth(2000)}.payload(t)
	ab := []string{"a", "b"}

	for _, tc := range []struct {
		name   string
		tamper func() *session.Proposal
		want   string
	}{
		{"digests of another payload", func() *session.Proposal {
			p := c.proposal("a", key.KeyID, ab, c.evmReq(key.KeyID, small(10, 100)))
			p.Digests = [][]byte{crypto.Keccak256(small(10, 900))}
			return p
		}, "the proposal's digests are not the ones this party derives from request"},
		{"a digest added", func() *session.Proposal {
			p := c.proposal("a", key.KeyID, ab, c.evmReq(key.KeyID, small(11, 100)))
			p.Digests = append(p.Digests, crypto.Keccak256(small(11, 900)))
			return p
		}, "the proposal's digests are not the ones this party derives from request"},
		{"request swapped for another signed request", func() *session.Proposal {
			p := c.proposal("a", key.KeyID, ab, c.evmReq(key.KeyID, small(12, 100)))
			p.Request = c.evmReq(key.KeyID, small(12, 900))
			return p
		}, "the proposal's digests are not the ones this party derives from request"},
		{"policy version not the party's", func() *session.Proposal {
			p := c.proposal("a", key.KeyID, ab, c.evmReq(key.KeyID, small(13, 100)))
			p.PolicyVersion = 2
			return p
		}, "proposal was evaluated under policy v2, this party has v1 in force"},
		{"approvals dropped", func() *session.Proposal {
			req := c.evmReq(key.KeyID, large)
			v := c.mustEvaluate("a", req)
			p := c.proposal("a", key.KeyID, ab, req, c.gov.approve(t, "test", 0, v, approval.Approve, c.clock()), c.gov.approve(t, "test", 1, v, approval.Approve, c.clock()))
			p.Approvals = nil
			return p
		}, "needs-approval under policy v1"},
		{"signers the client did not ask for", func() *session.Proposal {
			p := c.proposal("a", key.KeyID, []string{"a", "c"}, c.evmReq(key.KeyID, small(14, 100), "a", "c"))
			p.Parties = ab
			return p
		}, "asks for signers a,c, proposal names a,b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := c.resign("a", tc.tamper())
			before := len(auditEntries(t, c.hosts["b"]))
			res, errs := c.runProposal(raw, ab)
			if len(res) != 0 {
				t.Fatalf("tampered proposal signed: %v", res)
			}
			for _, id := range ab {
				if api.CodeOf(errs[id]) != api.CodeRejected || !strings.Contains(errs[id].Error(), tc.want) {
					t.Errorf("%s: %v; want a refusal mentioning %q", id, errs[id], tc.want)
				}
			}
			// b records its refusal — request, approvals, a verdict that is
			// not allow — and nothing it would write for an admission.
			added := auditEntries(t, c.hosts["b"])[before:]
			if len(added) == 0 {
				t.Errorf("b's refusal is not in its audit log")
			}
			for _, e := range added {
				switch b := e.body.(type) {
				case *audit.Verdict:
					if b.Outcome == api.OutcomeAllow {
						t.Errorf("b recorded an allow for a proposal it refused")
					}
				case *audit.Session, *audit.Result:
					t.Errorf("b recorded a %s entry for a tampered proposal", e.Type)
				}
			}
		})
	}

	t.Run("party with a newer policy than the coordinator", func(t *testing.T) {
		if _, err := c.encl["b"].policyUpdate(context.Background(), &api.PolicyUpdateRequest{Policy: c.policy(2, nil, 0, 1)}); err != nil {
			t.Fatal(err)
		}
		req := c.evmReq(key.KeyID, small(20, 100))
		prop, err := c.encl["a"].propose(context.Background(), &api.ProposeRequest{Kind: api.KindSign, KeyID: key.KeyID, Parties: ab, Request: req})
		if err != nil {
			t.Fatal(err)
		}
		// Only b runs: a would admit and wait for b until its session timed out.
		res, err := c.encl["b"].run(context.Background(), &api.RunRequest{Proposal: prop.Proposal})
		if res != nil || api.CodeOf(err) != api.CodeRejected || !strings.Contains(err.Error(), "proposal was evaluated under policy v1, this party has v2 in force") {
			t.Fatalf("b: %v, %v; want a policy version refusal", res, err)
		}
	})
}

// small is a client-signed native transfer of milli/1000 ETH on chain 1.
func (c *cluster) small(keyID string, nonce uint64, milli int64) []byte {
	c.t.Helper()
	p, _ := evmTransfer{types.LegacyTxType, 1, nonce, payee, eth(milli)}.payload(c.t)
	return c.evmReq(keyID, p)
}

// denial is v's denial with code, rule and limit, or nil.
func denial(v *api.Verdict, code, rule, limit string) *api.Denial {
	i := slices.IndexFunc(v.Denials, func(d api.Denial) bool { return d.Code == code && d.RuleID == rule && d.LimitID == limit })
	if i < 0 {
		return nil
	}
	return &v.Denials[i]
}

func hasDenial(v *api.Verdict, code, rule, limit string) bool {
	return denial(v, code, rule, limit) != nil
}

// TestGovernedVelocity: eth-small allows two transfers per key per 600 s
// on each party. The third is denied naming limit key-rate; after the
// window it is allowed again; a restarted party still counts the transfers
// it signed before the restart (sealed velocity state).
func TestGovernedVelocity(t *testing.T) {
	c, key := ecdsaCluster(t, nil)
	ab := []string{"a", "b"}
	c.mustSign("a", key.KeyID, ab, c.small(key.KeyID, 0, 100))
	c.mustSign("b", key.KeyID, ab, c.small(key.KeyID, 1, 100))

	third := c.small(key.KeyID, 2, 100)
	for _, id := range ab {
		v := c.mustEvaluate(id, third)
		if v.Outcome != api.OutcomeDeny || !hasDenial(v, "velocity-exceeded", "eth-small", "key-rate") {
			t.Fatalf("%s: third transfer in the window: %s %+v, want velocity-exceeded for eth-small limit key-rate", id, v.Outcome, v.Denials)
		}
	}
	// c signed neither: its own counters have room (each party enforces
	// what it has signed).
	if v := c.mustEvaluate("c", third); v.Outcome != api.OutcomeAllow {
		t.Fatalf("c: %s %+v, want allow", v.Outcome, v.Denials)
	}
	res, errs := c.sign("a", key.KeyID, ab, third)
	if len(res) != 0 || errs["a"] == nil || !strings.Contains(errs["a"].Error(), "rule eth-small: velocity-exceeded (limit key-rate)") {
		t.Fatalf("third transfer: %v %v, want a velocity refusal naming key-rate", res, errs)
	}

	// Past the window (and the requests' expiry): allowed again.
	c.advance(601 * time.Second)
	c.mustSign("a", key.KeyID, ab, c.small(key.KeyID, 2, 100))

	// One more fills the new window; b restarts from its sealed state.
	c.mustSign("a", key.KeyID, ab, c.small(key.KeyID, 3, 100))
	c.restart("b")
	next := c.small(key.KeyID, 4, 100)
	v := c.mustEvaluate("b", next)
	if d := denial(v, "velocity-exceeded", "eth-small", "key-rate"); v.Outcome != api.OutcomeDeny || d == nil || !strings.Contains(d.Detail, "count 2 used") {
		t.Fatalf("b after restart: %s %+v; want velocity-exceeded counting the 2 transfers signed before the restart", v.Outcome, v.Denials)
	}
	// c (count 0) proposes with b: b refuses at run.
	prop, err := c.encl["c"].propose(context.Background(), &api.ProposeRequest{Kind: api.KindSign, KeyID: key.KeyID, Parties: []string{"b", "c"}, Request: next})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := c.encl["b"].run(context.Background(), &api.RunRequest{Proposal: prop.Proposal}); r != nil || err == nil || !strings.Contains(err.Error(), "velocity-exceeded (limit key-rate)") {
		t.Fatalf("b after restart: %v, %v; want a velocity refusal", r, err)
	}
}

// policyJSON is the cluster's genesis policy document, issued now, edited
// by edit (if not nil).
func (c *cluster) policyJSON(edit func(doc map[string]any)) []byte {
	c.t.Helper()
	raw := c.opts.policy
	if raw == nil {
		var err error
		if raw, err = os.ReadFile("testdata/policy.json"); err != nil {
			c.t.Fatal(err)
		}
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		c.t.Fatal(err)
	}
	now := c.clock().Unix()
	doc["issued_at"], doc["not_before"] = now, now
	if edit != nil {
		edit(doc)
	}
	b, err := json.Marshal(doc)
	if err != nil {
		c.t.Fatal(err)
	}
	return b
}

// policy is the genesis policy as version (edited by edit), signed for
// this cluster by the admins named.
func (c *cluster) policy(version uint64, edit func(doc map[string]any), signers ...int) []byte {
	c.t.Helper()
	return c.gov.signPolicy(c.t, c.policyJSON(edit), "test", version, signers...)
}

// withoutRule drops rule id from a policy document.
func withoutRule(id string) func(doc map[string]any) {
	return func(doc map[string]any) {
		var keep []any
		for _, r := range doc["rules"].([]any) {
			if r.(map[string]any)["id"] != id {
				keep = append(keep, r)
			}
		}
		doc["rules"] = keep
	}
}

// TestGovernedReplay: a signed request is admitted once per party. Proposed
// again it is refused as a replay, by the coordinator and by a signer that
// already admitted it; after a restart, which forgets the ids admitted, a
// request issued before the boot is refused (replay floor).
func TestGovernedReplay(t *testing.T) {
	c := newCluster(t)
	key := c.keygen(api.AlgEdDSAEd25519)
	ctx := context.Background()
	req := c.raw(key.KeyID, []byte("pay 1"))
	c.mustSign("a", key.KeyID, []string{"a", "b"}, req)

	t.Run("same request again on the coordinator", func(t *testing.T) {
		_, errs := c.sign("a", key.KeyID, []string{"a", "b"}, req)
		if api.CodeOf(errs["a"]) != api.CodeRejected || !strings.Contains(errs["a"].Error(), request.ErrReplay.Error()) || !strings.Contains(errs["a"].Error(), "already accepted") {
			t.Fatalf("replayed request: %v", errs)
		}
	})
	t.Run("same request through a coordinator that has not seen it", func(t *testing.T) {
		prop, err := c.encl["c"].propose(ctx, &api.ProposeRequest{Kind: api.KindSign, KeyID: key.KeyID, Parties: []string{"b", "c"}, Request: req})
		if err != nil {
			t.Fatalf("c has not admitted the request, yet refuses it: %v", err)
		}
		res, err := c.encl["b"].run(ctx, &api.RunRequest{Proposal: prop.Proposal})
		if res != nil || err == nil || !strings.Contains(err.Error(), request.ErrReplay.Error()) {
			t.Fatalf("b signing a request it admitted before: %v, %v", res, err)
		}
	})
	t.Run("request issued before a restart", func(t *testing.T) {
		// The floor is the boot time in whole seconds; the request is issued
		// a second before the boot.
		old := c.raw(key.KeyID, []byte("pay 2"))
		c.advance(time.Second)
		c.restart("b")
		prop, err := c.encl["c"].propose(ctx, &api.ProposeRequest{Kind: api.KindSign, KeyID: key.KeyID, Parties: []string{"b", "c"}, Request: old})
		if err != nil {
			t.Fatal(err)
		}
		res, err := c.encl["b"].run(ctx, &api.RunRequest{Proposal: prop.Proposal})
		if res != nil || err == nil || !strings.Contains(err.Error(), "before this enclave's replay floor") {
			t.Fatalf("b signing a request issued before its restart: %v, %v", res, err)
		}
		if _, err := c.evaluate("b", req); err == nil || !strings.Contains(err.Error(), "replay floor") {
			t.Fatalf("b after restart, the request it signed before: %v; want a replay floor refusal", err)
		}
		// A request issued after the boot signs.
		c.mustSign("c", key.KeyID, []string{"b", "c"}, c.raw(key.KeyID, []byte("pay 3")))
	})
	t.Run("restart within the second a request was signed", func(t *testing.T) {
		// The floor cannot refuse it (same second); the sealed replay
		// cache does.
		fresh := c.raw(key.KeyID, []byte("pay 4"))
		c.mustSign("b", key.KeyID, []string{"b", "c"}, fresh)
		c.restart("b")
		prop, err := c.encl["a"].propose(ctx, &api.ProposeRequest{Kind: api.KindSign, KeyID: key.KeyID, Parties: []string{"a", "b"}, Request: fresh})
		if err != nil {
			t.Fatal(err)
		}
		res, err := c.encl["b"].run(ctx, &api.RunRequest{Proposal: prop.Proposal})
		if res != nil || err == nil || !strings.Contains(err.Error(), "already accepted") {
			t.Fatalf("b signing, after a restart in the same second, a request it signed before: %v, %v", res, err)
		}
	})
}

// signedRequest signs r with signer (the request package's encoding).
func signedRequest(t *testing.T, r request.Request, signer *keys.PrivateKey) []byte {
	t.Helper()
	b, err := request.New(r, signer.Signer)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestGovernedClientSignatures: only requests the manifest's client keys
// signed, for this cluster, inside their validity window, are evaluated.
// The coordinator and every signer (given a proposal carrying the bad
// request) refuse, naming the cause.
func TestGovernedClientSignatures(t *testing.T) {
	c := newCluster(t)
	key := c.keygen(api.AlgEdDSAEd25519)
	ctx := context.Background()
	msg := []byte("pay 5")
	stranger, err := keys.Generate("client-x", "mallory", keys.Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	impostor, err := keys.Generate(c.gov.client.Public.ID, "mallory", keys.Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	seq := 0
	base := func(now time.Time) request.Request {
		seq++
		return request.Request{Format: request.FormatV1, ID: fmt.Sprintf("client-sig-test-%06d", seq), ClusterID: "test",
			ClientKeyID: c.gov.client.Public.ID, KeyID: key.KeyID, Kind: tx.KindRaw, Payload: msg,
			IssuedAt: now.Unix(), ExpiresAt: now.Add(10 * time.Minute).Unix()}
	}
	for _, tc := range []struct {
		name string
		req  func(now time.Time) []byte
		want error
	}{
		{"unknown client key", func(now time.Time) []byte {
			r := base(now)
			r.ClientKeyID = stranger.Public.ID
			return signedRequest(t, r, stranger)
		}, request.ErrUnknownClient},
		{"another key under the client's id", func(now time.Time) []byte {
			return signedRequest(t, base(now), impostor)
		}, request.ErrBadSignature},
		{"payload byte flipped after signing", func(now time.Time) []byte {
			b := signedRequest(t, base(now), c.gov.client)
			i := bytes.Index(b, msg)
			if i < 0 {
				t.Fatal("payload not found in the signed request")
			}
			b[i+len(msg)-1] ^= 1
			return b
		}, request.ErrBadSignature},
		{"expired", func(now time.Time) []byte {
			return signedRequest(t, base(now.Add(-11*time.Minute)), c.gov.client)
		}, request.ErrExpired},
		{"issued in the future", func(now time.Time) []byte {
			return signedRequest(t, base(now.Add(10*time.Minute)), c.gov.client)
		}, request.ErrNotYetValid},
		{"lifetime too long", func(now time.Time) []byte {
			r := base(now)
			r.ExpiresAt = now.Add(time.Hour).Unix()
			return signedRequest(t, r, c.gov.client)
		}, request.ErrLifetime},
		{"another cluster", func(now time.Time) []byte {
			r := base(now)
			r.ClusterID = "other"
			return signedRequest(t, r, c.gov.client)
		}, request.ErrWrongCluster},
		{"not a signed request", func(time.Time) []byte { return []byte{0xa1, 0x01, 0x40} }, request.ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := tc.req(c.clock())
			check := func(who string, err error) {
				t.Helper()
				if api.CodeOf(err) != api.CodeRejected || !strings.Contains(err.Error(), tc.want.Error()) {
					t.Errorf("%s: %v; want a refusal naming %q", who, err, tc.want)
				}
			}
			_, err := c.encl["a"].propose(ctx, &api.ProposeRequest{Kind: api.KindSign, KeyID: key.KeyID, Parties: []string{"a", "b"}, Request: bad})
			check("a proposing", err)
			_, err = c.evaluate("b", bad)
			check("b evaluating", err)
			// A coordinator that proposes it anyway: b verifies the client
			// signature itself.
			p := c.proposal("a", key.KeyID, []string{"a", "b"}, c.raw(key.KeyID, msg))
			p.Request = bad
			res, err := c.encl["b"].run(ctx, &api.RunRequest{Proposal: c.resign("a", p)})
			if res != nil {
				t.Fatal("b signed")
			}
			check("b running", err)
		})
	}
}

// TestGovernedPolicyUpdate: a policy update takes the admin quorum; an
// accepted one is in force on every party, survives restarts (sealed),
// and no older or equal version is accepted after it.
func TestGovernedPolicyUpdate(t *testing.T) {
	c := newCluster(t)
	key := c.keygen(api.AlgEdDSAEd25519)
	ctx := context.Background()
	// v2 drops raw-any, so that which policy is in force shows in what is signed.
	v2 := c.policy(2, withoutRule("raw-any"), 0, 2)
	for _, tc := range []struct {
		name   string
		policy []byte
		want   string // "" = accepted
		after  uint64 // policy version in force afterwards
	}{
		{"v2 by one admin", c.policy(2, withoutRule("raw-any"), 1), "1 valid admin signatures of 2 needed", 1},
		{"v2 by one admin twice", c.policy(2, withoutRule("raw-any"), 1, 1), "already signed", 1},
		{"v2 for another cluster", c.gov.signPolicy(t, c.policyJSON(nil), "other", 2, 0, 1), `issued for cluster "other"`, 1},
		{"v2 by two admins", v2, "", 2},
		{"v2 again", v2, "policy version 2 is not newer than the sealed version 2", 2},
		{"v1 re-signed by two admins", c.policy(1, nil, 0, 1), "policy version 1 is not newer than the sealed version 2", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, id := range c.ids {
				resp, err := c.encl[id].policyUpdate(ctx, &api.PolicyUpdateRequest{Policy: tc.policy})
				if tc.want == "" {
					if err != nil || resp.Accepted != 2 || resp.Effective != 2 {
						t.Fatalf("%s: %+v, %v; want v2 accepted and effective", id, resp, err)
					}
				} else if api.CodeOf(err) != api.CodeRejected || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("%s: %+v, %v; want a refusal mentioning %q", id, resp, err, tc.want)
				}
				if v := c.encl[id].status().PolicyVersion; v != tc.after {
					t.Fatalf("%s: policy v%d in force, want v%d", id, v, tc.after)
				}
			}
		})
	}
	for _, id := range c.ids {
		var updates []string
		for _, e := range auditEntries(t, c.hosts[id]) {
			if b, ok := e.body.(*audit.Ceremony); ok && b.Kind == "policy-update" {
				updates = append(updates, b.Detail["version"]+" by "+strings.Join(b.AuthorisedBy, ","))
			}
		}
		if want := []string{"2 by admin-1,admin-3"}; !slices.Equal(updates, want) {
			t.Errorf("%s: audited policy updates %v, want %v", id, updates, want)
		}
	}
	denied := func(when string) {
		t.Helper()
		_, errs := c.sign("a", key.KeyID, []string{"a", "b"}, c.raw(key.KeyID, []byte("pay 6")))
		if errs["a"] == nil || !strings.Contains(errs["a"].Error(), "deny under policy v2: no-allow-rule") {
			t.Fatalf("%s: raw digest under v2 (no raw rule): %v; want denied", when, errs)
		}
	}
	denied("after the update")

	for _, id := range c.ids {
		c.restart(id)
	}
	for _, id := range c.ids {
		if v := c.encl[id].status().PolicyVersion; v != 2 {
			t.Fatalf("%s after restart: policy v%d, want the sealed v2", id, v)
		}
		_, err := c.encl[id].policyUpdate(ctx, &api.PolicyUpdateRequest{Policy: c.policy(1, nil, 0, 1)})
		if err == nil || !strings.Contains(err.Error(), "not newer than the sealed version 2") {
			t.Fatalf("%s after restart: v1 update: %v; want refused", id, err)
		}
	}
	denied("after restart")
}

// TestGovernedRawDeniedWithoutRawRule: under a policy with no rule for raw
// digests, every party denies a raw-digest request, while the transfers the
// policy does allow still sign.
func TestGovernedRawDeniedWithoutRawRule(t *testing.T) {
	raw, err := os.ReadFile("testdata/policy.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	withoutRule("raw-any")(doc)
	noRaw, _ := json.Marshal(doc)
	c, key := ecdsaCluster(t, noRaw)

	digest := crypto.Keccak256([]byte("an opaque digest"))
	req := c.raw(key.KeyID, digest)
	for _, id := range c.ids {
		v := c.mustEvaluate(id, req)
		if v.Outcome != api.OutcomeDeny || len(v.Denials) == 0 || v.Denials[0].Code != "no-allow-rule" || v.RuleID != "" {
			t.Fatalf("%s: raw digest: %s rule %q %+v; want deny, no-allow-rule", id, v.Outcome, v.RuleID, v.Denials)
		}
		if !hasDenial(v, "condition-false", "eth-small", "") || !hasDenial(v, "condition-false", "eth-large", "") || slices.ContainsFunc(v.Denials, func(d api.Denial) bool { return d.RuleID == "raw-any" }) {
			t.Errorf("%s: denials %+v; want each remaining allow rule's failed clause and no raw-any", id, v.Denials)
		}
	}
	if _, errs := c.sign("a", key.KeyID, []string{"a", "b"}, req); errs["a"] == nil || !strings.Contains(errs["a"].Error(), "deny under policy v1: no-allow-rule") {
		t.Fatalf("raw digest proposed: %v; want the coordinator to refuse", errs)
	}
	// Proposed anyway, with the digest it names: b refuses too.
	p := c.proposal("a", key.KeyID, []string{"a", "b"}, c.small(key.KeyID, 0, 100))
	p.Request, p.Digests = req, [][]byte{digest}
	if res, err := c.encl["b"].run(context.Background(), &api.RunRequest{Proposal: c.resign("a", p)}); res != nil || err == nil || !strings.Contains(err.Error(), "deny under policy v1: no-allow-rule") {
		t.Fatalf("b given a raw-digest proposal: %v, %v", res, err)
	}
	// What the policy allows still signs.
	x := evmTransfer{types.LegacyTxType, 1, 1, payee, eth(100)}
	payload, unsigned := x.payload(t)
	res := c.mustSign("a", key.KeyID, []string{"a", "b"}, c.evmReq(key.KeyID, payload))
	checkSignedEVM(t, "a", res["a"], key, x, payload, unsigned, "eth-small")
}

// loggedEntry is one decoded audit entry.
type loggedEntry struct {
	audit.Entry
	body any // *audit.Boot, *audit.Request, …
}

// requestID is the request an entry is about ("" for boot and ceremony).
func (e loggedEntry) requestID() string {
	switch b := e.body.(type) {
	case *audit.Request:
		return b.RequestID
	case *audit.Verdict:
		return b.RequestID
	case *audit.Approval:
		return b.RequestID
	case *audit.Session:
		return b.RequestID
	case *audit.Result:
		return b.RequestID
	}
	return ""
}

// auditEntries decodes the audit log a host holds.
func auditEntries(t *testing.T, h *memHost) []loggedEntry {
	t.Helper()
	h.mu.Lock()
	log := slices.Clone(h.audit)
	h.mu.Unlock()
	var out []loggedEntry
	for i, b := range log {
		var se audit.SignedEntry
		var e loggedEntry
		if err := api.Unmarshal(b, &se); err != nil {
			t.Fatalf("%s audit entry %d: %v", h.me, i, err)
		}
		if err := api.Unmarshal(se.Entry, &e.Entry); err != nil {
			t.Fatalf("%s audit entry %d: %v", h.me, i, err)
		}
		switch e.Type {
		case audit.TypeBoot:
			e.body = new(audit.Boot)
		case audit.TypeCheckpoint:
			e.body = new(audit.Checkpoint)
		case audit.TypeRequest:
			e.body = new(audit.Request)
		case audit.TypeVerdict:
			e.body = new(audit.Verdict)
		case audit.TypeApproval:
			e.body = new(audit.Approval)
		case audit.TypeSession:
			e.body = new(audit.Session)
		case audit.TypeResult:
			e.body = new(audit.Result)
		case audit.TypeCeremony:
			e.body = new(audit.Ceremony)
		default:
			t.Fatalf("%s audit entry %d: type %q", h.me, i, e.Type)
		}
		if err := api.Unmarshal(e.Body, e.body); err != nil {
			t.Fatalf("%s audit entry %d (%s): %v", h.me, i, e.Type, err)
		}
		out = append(out, e)
	}
	return out
}

// types lists the entry types of a log, with the request id for entries
// about a request ("request:ID").
func entryTypes(entries []loggedEntry) []string {
	var out []string
	for _, e := range entries {
		s := e.Type
		if id := e.requestID(); id != "" {
			s += ":" + id
		}
		out = append(out, s)
	}
	return out
}

// verifyAudit verifies party id's log as an auditor would: every boot
// entry's attestation document must verify against the cluster's dev CA
// with the pinned PCR0 and this cluster's manifest, and its public_key must
// be party id's identity naming the entry's signer key.
func (c *cluster) verifyAudit(id string) error {
	h := c.hosts[id]
	h.mu.Lock()
	log := slices.Clone(h.audit)
	h.mu.Unlock()
	pol := peer.Policy{Kind: peer.KindDev, PCRs: map[uint][]byte{0: c.pcr0}, DevRoots: []*x509.Certificate{c.ca.Cert()}}
	mh := c.encl[id].manifestHash
	_, err := audit.VerifyWith(log, audit.VerifyOptions{PartyID: id, Trust: func(signerKey []byte, boot *audit.Boot) error {
		if boot == nil {
			return errors.New("entries without their boot entry")
		}
		v, err := peer.Verify(boot.AttestationDocument, pol, peer.Expect{UserData: mh}, c.clock(), 24*time.Hour)
		if err != nil {
			return err
		}
		var ident api.Identity
		if err := api.Unmarshal(v.PublicKey, &ident); err != nil {
			return fmt.Errorf("attested public_key is not an identity: %v", err)
		}
		if ident.PartyID != id || !bytes.Equal(ident.SigningKey, signerKey) {
			return fmt.Errorf("attested identity is party %q key %x, want party %q key %x", ident.PartyID, ident.SigningKey, id, signerKey)
		}
		if !bytes.Equal(boot.Measurement, c.pcr0) || !bytes.Equal(boot.ManifestHash, mh) {
			return fmt.Errorf("boot entry claims measurement %x manifest %x", boot.Measurement, boot.ManifestHash)
		}
		return nil
	}})
	return err
}

// runFor runs a proposal on parties, each giving up after d.
func (c *cluster) runFor(d time.Duration, prop []byte, parties []string) (map[string]*api.SessionResult, map[string]error) {
	var mu sync.Mutex
	res, errs := map[string]*api.SessionResult{}, map[string]error{}
	var wg sync.WaitGroup
	for _, id := range parties {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), d)
			defer cancel()
			r, err := c.encl[id].run(ctx, &api.RunRequest{Proposal: prop})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs[id] = err
				return
			}
			res[id] = r
		})
	}
	wg.Wait()
	return res, errs
}

func (h *memHost) setAuditDown(down bool) {
	h.mu.Lock()
	h.auditDown = down
	h.mu.Unlock()
}

// TestGovernedAuditChain: each party's audit log verifies, boot entries
// attested, and records boot, request, verdict, session and result, in
// that order, for what it signed. If the host cannot make an entry
// durable the party refuses to sign; once it can, signing resumes and the
// log continues without a gap after a new boot entry. A host that
// truncates the log behind the head the party sealed and restarts it is
// refused.
func TestGovernedAuditChain(t *testing.T) {
	c := newCluster(t)
	key := c.keygen(api.AlgEdDSAEd25519)
	ab := []string{"a", "b"}
	msg := []byte("pay 7")
	req := c.raw(key.KeyID, msg)
	res := c.mustSign("a", key.KeyID, ab, req)
	rid := res["a"].RequestID
	if !ed25519.Verify(key.PublicKey, msg, res["a"].Signature) {
		t.Fatal("signature does not verify")
	}

	for _, id := range c.ids {
		if err := c.verifyAudit(id); err != nil {
			t.Fatalf("%s: audit log: %v", id, err)
		}
		want := []string{"boot", "ceremony"}
		if id != "c" {
			want = append(want, "request:"+rid, "verdict:"+rid, "session:"+rid, "result:"+rid)
		}
		got := auditEntries(t, c.hosts[id])
		if !slices.Equal(entryTypes(got), want) {
			t.Fatalf("%s: audit log %v, want %v", id, entryTypes(got), want)
		}
		if id == "c" {
			continue
		}
		r, v, s, out := got[2].body.(*audit.Request), got[3].body.(*audit.Verdict), got[4].body.(*audit.Session), got[5].body.(*audit.Result)
		if r.RequestDigest != request.Digest(req) || r.KeyID != key.KeyID || r.ClientKeyID != c.gov.client.Public.ID || r.Kind != string(tx.KindRaw) {
			t.Errorf("%s: request entry %+v", id, r)
		}
		if v.Outcome != audit.OutcomeAllow || !slices.Equal(v.RuleIDs, []string{"raw-any"}) || v.PolicyVersion != 1 {
			t.Errorf("%s: verdict entry %+v", id, v)
		}
		if !bytes.Equal(s.SessionID, res[id].SessionID) || !slices.Equal(s.Signers, ab) || len(s.Digests) != 1 || !bytes.Equal(s.Digests[0], msg) {
			t.Errorf("%s: session entry %+v, want session %x over the message", id, s, res[id].SessionID)
		}
		if out.Outcome != audit.OutcomeSigned || len(out.Signatures) != 1 || !bytes.Equal(out.Signatures[0], res[id].Signature) {
			t.Errorf("%s: result entry %+v", id, out)
		}
	}
	// The trust check is real: a's log is not b's.
	c.hosts["b"].mu.Lock()
	c.hosts["b"].audit, c.hosts["a"].audit = c.hosts["a"].audit, c.hosts["b"].audit
	c.hosts["b"].mu.Unlock()
	if err := c.verifyAudit("b"); err == nil {
		t.Fatal("a's log verified as b's")
	}
	c.hosts["b"].mu.Lock()
	c.hosts["b"].audit, c.hosts["a"].audit = c.hosts["a"].audit, c.hosts["b"].audit
	c.hosts["b"].mu.Unlock()

	t.Run("audit store down", func(t *testing.T) {
		hb := c.hosts["b"]
		before := len(auditEntries(t, hb))
		hb.setAuditDown(true)
		prop, err := c.encl["a"].propose(context.Background(), &api.ProposeRequest{Kind: api.KindSign, KeyID: key.KeyID, Parties: ab, Request: c.raw(key.KeyID, []byte("pay 8"))})
		if err != nil {
			t.Fatal(err)
		}
		// a admits and waits for b, which refuses: a gives up after 2 s.
		res, errs := c.runFor(2*time.Second, prop.Proposal, ab)
		hb.setAuditDown(false)
		if len(res) != 0 {
			t.Fatalf("signed without b's audit log: %v", res)
		}
		if err := errs["b"]; api.CodeOf(err) != api.CodeUnavailable || !strings.Contains(err.Error(), "audit log not written") {
			t.Fatalf("b: %v; want a refusal naming the audit log", err)
		}
		if n := len(auditEntries(t, hb)); n != before {
			t.Fatalf("b's log has %d entries, had %d", n, before)
		}

		res2 := c.mustSign("a", key.KeyID, ab, c.raw(key.KeyID, []byte("pay 9")))
		rid2 := res2["b"].RequestID
		got := entryTypes(auditEntries(t, hb))
		want := []string{"boot", "checkpoint", "request:" + rid2, "verdict:" + rid2, "session:" + rid2, "result:" + rid2}
		if len(got) != before+len(want) || !slices.Equal(got[before:], want) {
			t.Fatalf("b's log after the store recovered: %v, want %v after the first %d", got, want, before)
		}
		for _, id := range ab {
			if err := c.verifyAudit(id); err != nil {
				t.Fatalf("%s: audit log: %v", id, err)
			}
		}
	})

	t.Run("host truncates the log and restarts the party", func(t *testing.T) {
		hb := c.hosts["b"]
		hb.mu.Lock()
		full := slices.Clone(hb.audit)
		// The party sealed its state after the last signing's result
		// entry: dropping that one entry is caught.
		hb.audit = full[:len(full)-1]
		hb.mu.Unlock()
		c.restart("b")
		prop, err := c.encl["a"].propose(context.Background(), &api.ProposeRequest{Kind: api.KindSign, KeyID: key.KeyID, Parties: ab, Request: c.raw(key.KeyID, []byte("pay 10"))})
		if err != nil {
			t.Fatal(err)
		}
		res, errs := c.runFor(2*time.Second, prop.Proposal, ab)
		if len(res) != 0 {
			t.Fatalf("signed on a truncated log: %v", res)
		}
		if err := errs["b"]; err == nil || !strings.Contains(err.Error(), "the log was truncated or replaced") {
			t.Fatalf("b: %v; want a refusal naming truncation", err)
		}
		// The whole log back: b continues it.
		hb.mu.Lock()
		hb.audit = full
		hb.mu.Unlock()
		c.restart("b")
		c.mustSign("a", key.KeyID, ab, c.raw(key.KeyID, []byte("pay 11")))
		if err := c.verifyAudit("b"); err != nil {
			t.Fatalf("b: audit log: %v", err)
		}
	})
}

// TestGovernedTamperedState: a party whose sealed governance state does
// not open as its own refuses to sign after a restart (fail closed), as
// coordinator and as signer, naming the state.
func TestGovernedTamperedState(t *testing.T) {
	c := newCluster(t)
	key := c.keygen(api.AlgEdDSAEd25519)
	ctx := context.Background()
	c.mustSign("a", key.KeyID, []string{"a", "b"}, c.raw(key.KeyID, []byte("pay 12")))
	c.mustSign("a", key.KeyID, []string{"a", "c"}, c.raw(key.KeyID, []byte("pay 13")))
	hb := c.hosts["b"]
	hb.mu.Lock()
	genuine := hb.blobs[governanceBlob]
	hb.mu.Unlock()
	if genuine == nil {
		t.Fatal("b stored no governance state")
	}
	for _, tc := range []struct {
		name   string
		tamper func() []byte
	}{
		// Withheld, the party would fall back to the manifest's genesis
		// policy and empty velocity counters.
		{"withheld", func() []byte { return nil }},
		{"byte flipped", func() []byte { b := slices.Clone(genuine); b[len(b)/2] ^= 1; return b }},
		{"truncated", func() []byte { return genuine[:len(genuine)-1] }},
		{"another party's state", func() []byte {
			hc := c.hosts["c"]
			hc.mu.Lock()
			defer hc.mu.Unlock()
			return hc.blobs[governanceBlob]
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hb.mu.Lock()
			if b := tc.tamper(); b != nil {
				hb.blobs[governanceBlob] = b
			} else {
				delete(hb.blobs, governanceBlob)
			}
			hb.mu.Unlock()
			c.restart("b")
			const want = "governance state could not be restored"
			if _, errs := c.sign("b", key.KeyID, []string{"a", "b"}, c.raw(key.KeyID, []byte("pay 14"))); errs["b"] == nil || !strings.Contains(errs["b"].Error(), want) {
				t.Fatalf("b proposing: %v; want %q", errs, want)
			}
			if _, err := c.evaluate("b", c.raw(key.KeyID, []byte("pay 15"))); err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("b evaluating: %v; want %q", err, want)
			}
			prop, err := c.encl["a"].propose(ctx, &api.ProposeRequest{Kind: api.KindSign, KeyID: key.KeyID, Parties: []string{"a", "b"}, Request: c.raw(key.KeyID, []byte("pay 16"))})
			if err != nil {
				t.Fatal(err)
			}
			if res, err := c.encl["b"].run(ctx, &api.RunRequest{Proposal: prop.Proposal}); res != nil || api.CodeOf(err) != api.CodeSealing || !strings.Contains(err.Error(), want) {
				t.Fatalf("b running: %v, %v; want %q", res, err, want)
			}
			// A genuine policy update must not replace the unreadable state
			// (it would reset the velocity counters at the next restart).
			hb.mu.Lock()
			stored := hb.blobs[governanceBlob]
			hb.mu.Unlock()
			if _, err := c.encl["b"].policyUpdate(ctx, &api.PolicyUpdateRequest{Policy: c.policy(2, nil, 0, 1)}); err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("b accepting a policy update: %v; want %q", err, want)
			}
			hb.mu.Lock()
			after := hb.blobs[governanceBlob]
			hb.mu.Unlock()
			if !bytes.Equal(after, stored) {
				t.Fatal("b overwrote the governance state it could not restore")
			}
		})
	}
	t.Run("genuine state back", func(t *testing.T) {
		hb.mu.Lock()
		hb.blobs[governanceBlob] = genuine
		hb.mu.Unlock()
		c.restart("b")
		c.mustSign("b", key.KeyID, []string{"a", "b"}, c.raw(key.KeyID, []byte("pay 17")))
	})
}

// TestGovernedStatusWhileDeciding: the host polls status while the party
// evaluates and proposes governed requests; neither may block the other
// (status takes the governance lock for the policy version).
func TestGovernedStatusWhileDeciding(t *testing.T) {
	c := newCluster(t)
	key := c.keygen(api.AlgEdDSAEd25519)
	e := c.encl["a"]
	req := c.raw(key.KeyID, []byte("pay 18"))
	ctx := context.Background()
	var wg sync.WaitGroup
	wg.Go(func() {
		for range 2000 {
			if st := e.status(); st.PolicyVersion != 1 {
				t.Errorf("status: policy v%d, want v1", st.PolicyVersion)
				return
			}
		}
	})
	wg.Go(func() {
		for range 200 {
			if _, err := e.evaluateMethod(ctx, &api.EvaluateRequest{Request: req}); err != nil {
				t.Error(err)
				return
			}
			if _, err := e.propose(ctx, &api.ProposeRequest{Kind: api.KindSign, KeyID: key.KeyID, Parties: []string{"a", "b"}, Request: req}); err != nil {
				t.Error(err)
				return
			}
		}
	})
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("status and governed decisions deadlocked (lock order: the governance lock before e.mu)")
	}
}
