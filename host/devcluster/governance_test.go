package devcluster

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/sealsign/sealsign/enclave/api"
	"github.com/sealsign/sealsign/governance/keys"
	"github.com/sealsign/sealsign/governance/policy"
	"github.com/sealsign/sealsign/governance/tx"
)

const testCluster = "dev-test"

var testNow = time.Unix(1767225600, 0)

// checkGovernance checks g as an enclave does at init.
func checkGovernance(t *testing.T, g *api.Governance, now time.Time) (*api.GovernanceSets, *policy.Policy) {
	t.Helper()
	sets, err := g.Sets()
	if err != nil {
		t.Fatal(err)
	}
	p, err := policy.Accept(nil, g.Policy, sets.Admins, testCluster, now)
	if err != nil {
		t.Fatal(err)
	}
	return sets, p
}

func TestPrepareGovernance(t *testing.T) {
	dir := t.TempDir()
	var progress bytes.Buffer
	g, err := prepareGovernance(dir, testCluster, defaultPolicyTemplate, testNow, &progress)
	if err != nil {
		t.Fatal(err)
	}
	sets, p := checkGovernance(t, g, testNow)
	if p.ClusterID != testCluster || p.Version != 1 || p.IssuedAt != testNow.Unix()-60 || p.NotBefore != p.IssuedAt || p.UpdateTimeLock != 0 {
		t.Fatalf("genesis: cluster %q version %d issued_at %d not_before %d time lock %d; want %q, 1, now-60, now-60, 0",
			p.ClusterID, p.Version, p.IssuedAt, p.NotBefore, p.UpdateTimeLock, testCluster)
	}
	var rules []string
	for _, r := range p.Rules {
		rules = append(rules, r.ID)
	}
	if want := []string{"deny-raw", "ed25519-statements", "eth-small", "eth-large", "btc-small"}; !slices.Equal(rules, want) {
		t.Fatalf("rules %v, want %v", rules, want)
	}
	if sets.Admins.Quorum != 2 || len(sets.Admins.Keys) != 3 || len(sets.Approvers) != 3 || len(sets.Clients) != 2 {
		t.Fatalf("sets: quorum %d, %d admins, %d approvers, %d clients; want 2, 3, 3, 2", sets.Admins.Quorum, len(sets.Admins.Keys), len(sets.Approvers), len(sets.Clients))
	}
	if m := g.Groups[treasuryGroup]; !slices.Equal(m, []string{"approver-alice", "approver-bob", "approver-carol"}) {
		t.Fatalf("treasury group %v", m)
	}
	for id, want := range map[string][2]string{
		"admin-1": {"admin-1", keys.Ed25519}, "admin-3": {"admin-3", keys.ECDSAP256},
		"approver-bob": {"bob", keys.Ed25519}, "treasury-app": {"treasury-app", keys.Ed25519}, "ops-bot": {"ops-bot", keys.ECDSAP256},
	} {
		k := sets.Admins.Keys[id]
		if k.ID == "" {
			k = sets.Approvers[id]
		}
		if k.ID == "" {
			k = sets.Clients[id]
		}
		if k.Owner != want[0] || k.Algorithm != want[1] {
			t.Errorf("key %s: owner %q algorithm %q, want %q %q", id, k.Owner, k.Algorithm, want[0], want[1])
		}
	}
	sp, err := policy.DecodeSigned(g.Policy)
	if err != nil {
		t.Fatal(err)
	}
	if len(sp.Signatures) != 2 || sp.Signatures[0].KeyID != "admin-1" || sp.Signatures[1].KeyID != "admin-2" {
		t.Fatalf("genesis signatures %+v, want admin-1 and admin-2", sp.Signatures)
	}

	// Files: a private directory, private key files, the policy as JSON.
	gdir := filepath.Join(dir, governanceDir)
	mode := func(path string) os.FileMode {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return st.Mode().Perm()
	}
	if m := mode(gdir); m != 0o700 {
		t.Errorf("%s mode %o, want 700", gdir, m)
	}
	for _, dk := range devKeys {
		if m := mode(keyPath(dir, dk.id)); m != 0o600 {
			t.Errorf("%s mode %o, want 600", dk.id, m)
		}
	}
	js, err := os.ReadFile(filepath.Join(gdir, genesisJSON))
	if err != nil {
		t.Fatal(err)
	}
	fromJSON, err := policy.ParseJSON(js)
	if err != nil {
		t.Fatalf("%s does not parse as a policy: %v", genesisJSON, err)
	}
	if enc, _ := fromJSON.Encode(); !bytes.Equal(enc, sp.Policy) {
		t.Fatalf("%s is not the policy that was signed", genesisJSON)
	}
	if !strings.Contains(progress.String(), "signed by admin-1 and admin-2") {
		t.Errorf("progress does not report the genesis: %q", progress.String())
	}

	// The cluster's accessors read the same files.
	c := &Cluster{Dir: filepath.Join(t.TempDir(), "x")}
	if c.ClusterID() != "dev-x" {
		t.Fatalf("ClusterID %q, want dev-x", c.ClusterID())
	}
	c.Dir = dir
	k, err := c.GovernanceKey("treasury-app")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(k.Public.Key, sets.Clients["treasury-app"].Key) {
		t.Fatal("GovernanceKey(treasury-app) is not the manifest's client key")
	}
	if _, err := c.GovernanceKey("../cluster"); err == nil {
		t.Fatal("GovernanceKey accepted a path")
	}
	signed, gp, err := c.GenesisPolicy()
	if err != nil || !bytes.Equal(signed, g.Policy) || gp.Version != 1 {
		t.Fatalf("GenesisPolicy: %v, same bytes %v", err, bytes.Equal(signed, g.Policy))
	}

	// Later: the same governance, byte for byte, whatever the clock; a
	// different template is reported, not applied.
	later := testNow.Add(48 * time.Hour)
	progress.Reset()
	g2, err := prepareGovernance(dir, testCluster, defaultPolicyTemplate, later, &progress)
	if err != nil {
		t.Fatal(err)
	}
	b1, _ := api.Marshal(g)
	b2, _ := api.Marshal(g2)
	if !bytes.Equal(b1, b2) {
		t.Fatal("a second prepareGovernance changed the governance section")
	}
	if progress.Len() != 0 {
		t.Errorf("reuse printed %q, want nothing", progress.String())
	}
	checkGovernance(t, g2, later)
	g3, err := prepareGovernance(dir, testCluster, []byte(permissiveTemplate), later, &progress)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(g3.Policy, g.Policy) || !strings.Contains(progress.String(), "differs") {
		t.Fatalf("a different template: policy kept %v, progress %q", bytes.Equal(g3.Policy, g.Policy), progress.String())
	}
}

const permissiveTemplate = `{"format": 1, "version": 1, "rules": [{"id": "allow-raw", "effect": "allow", "condition": "request.kind == 'raw-digest'"}]}`

func TestPrepareGovernanceTemplate(t *testing.T) {
	g, err := prepareGovernance(t.TempDir(), testCluster, []byte(permissiveTemplate), testNow, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, p := checkGovernance(t, g, testNow)
	if len(p.Rules) != 1 || p.Rules[0].ID != "allow-raw" || p.IssuedAt != testNow.Unix()-60 {
		t.Fatalf("genesis from a given template: %+v", p)
	}

	tests := []struct {
		name, tmpl, want string
	}{
		{"not json", `{"rules": [`, "devcluster: policy template"},
		{"unknown field", `{"format": 1, "rules": [], "owner": "x"}`, `unknown field "owner"`},
		{"trailing data", permissiveTemplate + `{}`, "trailing data"},
		{"version 2", `{"format": 1, "version": 2, "rules": []}`, "version 2; a genesis policy is version 1"},
		{"bad condition", `{"format": 1, "rules": [{"id": "r", "effect": "allow", "condition": "request.nope"}]}`, `rule 0 ("r"): condition`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			_, err := prepareGovernance(dir, testCluster, []byte(tc.tmpl), testNow, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "devcluster: ") {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if _, err := os.Stat(filepath.Join(dir, governanceDir, genesisSigned)); err == nil {
				t.Fatal("a refused template left a signed genesis behind")
			}
		})
	}
}

func TestPrepareGovernanceDamage(t *testing.T) {
	tests := []struct {
		name   string
		damage func(t *testing.T, dir string)
		want   []string
	}{
		{"corrupted key file", func(t *testing.T, dir string) {
			os.WriteFile(keyPath(dir, "admin-2"), []byte("not a key\n"), 0o600)
		}, []string{`governance key "admin-2"`, "admin-2.key", "not a governance key file", "fresh directory"}},
		{"key of another role", func(t *testing.T, dir string) {
			k, err := keys.Generate("admin-3", "admin-3", keys.Ed25519)
			if err != nil {
				t.Fatal(err)
			}
			os.Remove(keyPath(dir, "admin-3"))
			if err := k.WriteFile(keyPath(dir, "admin-3")); err != nil {
				t.Fatal(err)
			}
		}, []string{"admin-3.key", "(ed25519)", "want key \"admin-3\" of owner \"admin-3\" (ecdsa-p256)"}},
		{"missing key file", func(t *testing.T, dir string) {
			os.Remove(keyPath(dir, "approver-bob"))
		}, []string{"approver-bob.key is missing", "policy-v1.signed was made with it"}},
		{"replaced admin key", func(t *testing.T, dir string) {
			// The genesis no longer verifies under the admins on disk.
			os.Remove(keyPath(dir, "admin-1"))
			k, _ := keys.Generate("admin-1", "admin-1", keys.Ed25519)
			if err := k.WriteFile(keyPath(dir, "admin-1")); err != nil {
				t.Fatal(err)
			}
		}, []string{"genesis policy", "refused", "1 valid admin signatures of 2 needed"}},
		{"corrupted genesis", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, governanceDir, genesisSigned), []byte{0xa1, 0x01}, 0o644)
		}, []string{"policy-v1.signed refused", "policy: "}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if _, err := prepareGovernance(dir, testCluster, defaultPolicyTemplate, testNow, nil); err != nil {
				t.Fatal(err)
			}
			tc.damage(t, dir)
			_, err := prepareGovernance(dir, testCluster, defaultPolicyTemplate, testNow, nil)
			if err == nil {
				t.Fatal("damaged governance accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}

	// Another cluster id (a renamed directory) does not take the genesis.
	dir := t.TempDir()
	if _, err := prepareGovernance(dir, testCluster, defaultPolicyTemplate, testNow, nil); err != nil {
		t.Fatal(err)
	}
	_, err := prepareGovernance(dir, "dev-renamed", defaultPolicyTemplate, testNow, nil)
	if err == nil || !strings.Contains(err.Error(), `issued for cluster "dev-test"`) || !strings.Contains(err.Error(), "renamed") {
		t.Fatalf("renamed cluster: %v", err)
	}

	// An interrupted first run (keys written, no genesis yet) completes.
	dir = t.TempDir()
	g, err := prepareGovernance(dir, testCluster, defaultPolicyTemplate, testNow, nil)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, governanceDir, genesisSigned))
	os.Remove(keyPath(dir, "ops-bot"))
	g2, err := prepareGovernance(dir, testCluster, defaultPolicyTemplate, testNow, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkGovernance(t, g2, testNow)
	if !bytes.Equal(g.Admins[0].Key, g2.Admins[0].Key) {
		t.Fatal("an interrupted run's keys were not reused")
	}
}

// TestDevPolicy evaluates the dev genesis policy on the payloads the demo
// sends, decoded by governance/tx as an enclave decodes them: the demo's
// story, without processes.
func TestDevPolicy(t *testing.T) {
	g, err := prepareGovernance(t.TempDir(), testCluster, defaultPolicyTemplate, testNow, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, p := checkGovernance(t, g, testNow)

	priv, err := secp256k1.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	ecKey := tx.Key{Algorithm: tx.AlgorithmECDSASecp256k1, PublicKey: priv.PubKey().SerializeCompressed()}
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	edKey := tx.Key{Algorithm: tx.AlgorithmEdDSAEd25519, PublicKey: edPub}

	var nonce uint64
	input := func(k tx.Key, kind tx.Kind, payload []byte, approvers ...string) policy.Input {
		t.Helper()
		d, err := tx.Decode(kind, payload, k, tx.Options{})
		if err != nil {
			t.Fatal(err)
		}
		in := policy.Input{ClusterID: testCluster, Summary: d.Summary, KeyID: "key-" + k.Algorithm, KeyAlgorithm: k.Algorithm,
			ClientID: "treasury-app", Initiator: "treasury-app", Now: testNow}
		for _, a := range approvers {
			in.Approvals = append(in.Approvals, policy.Approver{KeyID: "approver-" + a, Owner: a, Groups: []string{treasuryGroup}})
		}
		return in
	}
	eth := func(wei *big.Int, allow bool, approvers ...string) policy.Input {
		t.Helper()
		to := allowlisted
		if !allow {
			to = notAllowlisted
		}
		want, payload, err := ethTransfer(nonce, to, wei)
		if err != nil {
			t.Fatal(err)
		}
		nonce++
		in := input(ecKey, tx.KindEVM, payload, approvers...)
		if h := types.LatestSignerForChainID(ethChainID).Hash(want); !bytes.Equal(in.Summary.Digests[0], h[:]) {
			t.Fatalf("decoder's digest %x, go-ethereum's signing hash %x", in.Summary.Digests[0], h)
		}
		return in
	}
	digest := bytes.Repeat([]byte{7}, 32)

	tests := []struct {
		name    string
		in      policy.Input
		outcome policy.Outcome
		rule    string      // the allowing rule, or the rule of a wanted denial
		code    policy.Code // a wanted denial
		clause  string
	}{
		{"in limit", eth(smallTransfer, true), policy.Allow, "eth-small", "", ""},
		{"over limit", eth(largeTransfer, true), policy.NeedsApproval, "eth-large", policy.ApprovalsMissing, ""},
		{"over limit, one approval", eth(largeTransfer, true, "alice"), policy.NeedsApproval, "eth-large", policy.ApprovalsMissing, ""},
		{"over limit, two approvals", eth(largeTransfer, true, "alice", "bob"), policy.Allow, "eth-large", "", ""},
		{"not allowlisted", eth(smallTransfer, false), policy.Deny, "eth-small", policy.ConditionFalse, "t.to in"},
		{"raw on ecdsa", input(ecKey, tx.KindRaw, digest), policy.Deny, "deny-raw", policy.DenyRuleMatched, ""},
		{"raw on ed25519", input(edKey, tx.KindRaw, digest), policy.Allow, "ed25519-statements", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := p.Evaluate(tc.in, policy.NewVelocityState())
			if d.Outcome != tc.outcome {
				t.Fatalf("outcome %s, want %s: %v", d.Outcome, tc.outcome, d.Err())
			}
			if tc.outcome == policy.Allow && d.RuleID != tc.rule {
				t.Fatalf("allowed by %q, want %q", d.RuleID, tc.rule)
			}
			if tc.code != "" && !hasDenial(d.Denials, tc.code, tc.rule, "", tc.clause) {
				t.Fatalf("no %s for rule %s (clause %q): %v", tc.code, tc.rule, tc.clause, d.Err())
			}
			if tc.name == "over limit" && (len(d.Pending) != 1 || d.Pending[0].Groups[0].Need != 2) {
				t.Fatalf("pending %+v, want eth-large needing 2", d.Pending)
			}
		})
	}

	// Velocity: a key's sixth eth-small signature in ten minutes is
	// denied; approved large transfers and denied requests do not count.
	vel := policy.NewVelocityState()
	signed := 0
	record := func(in policy.Input) policy.Decision {
		t.Helper()
		d := p.Evaluate(in, vel)
		if d.Outcome == policy.Allow {
			if err := vel.Record(in, d); err != nil {
				t.Fatal(err)
			}
		}
		return d
	}
	for i := 0; i < 5; i++ {
		record(eth(largeTransfer, true, "alice", "bob"))
		record(eth(smallTransfer, false))
		if d := record(eth(smallTransfer, true)); d.Outcome != policy.Allow {
			t.Fatalf("eth-small transfer %d: %v", i+1, d.Err())
		}
		signed++
	}
	d := record(eth(smallTransfer, true))
	if d.Outcome != policy.Deny || !hasDenial(d.Denials, policy.VelocityExceeded, "eth-small", "key-rate", "") {
		t.Fatalf("sixth eth-small transfer: %s %v, want velocity-exceeded eth-small/key-rate", d.Outcome, d.Err())
	}
	for i := 0; i < 20; i++ {
		if d := record(input(edKey, tx.KindRaw, digest)); d.Outcome != policy.Allow {
			t.Fatalf("statement %d: %v", i+1, d.Err())
		}
	}
	if d := record(input(edKey, tx.KindRaw, digest)); !hasDenial(d.Denials, policy.VelocityExceeded, "ed25519-statements", "key-rate", "") {
		t.Fatalf("21st statement: %v", d.Err())
	}

	// Updates: one admin is not a quorum, the genesis again is a
	// rollback, two admins take effect at once (time lock 0).
	dir := t.TempDir()
	g, err = prepareGovernance(dir, testCluster, defaultPolicyTemplate, testNow, nil)
	if err != nil {
		t.Fatal(err)
	}
	sets, genesis := checkGovernance(t, g, testNow)
	next := *genesis
	next.Version, next.IssuedAt = 2, testNow.Add(time.Hour-genesisBackdate).Unix()
	next.NotBefore = next.IssuedAt
	enc, err := next.Encode()
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{Dir: dir}
	sign := func(ids ...string) []byte {
		sp := policy.SignedPolicy{Policy: enc}
		for _, id := range ids {
			k, err := c.GovernanceKey(id)
			if err != nil {
				t.Fatal(err)
			}
			s, err := policy.SignPolicy(enc, id, k.Signer)
			if err != nil {
				t.Fatal(err)
			}
			sp.Signatures = append(sp.Signatures, s)
		}
		b, err := sp.Encode()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	st, err := policy.NewStore(genesis)
	if err != nil {
		t.Fatal(err)
	}
	at := testNow.Add(time.Hour)
	if _, err := st.Accept(sign("admin-1"), sets.Admins, testCluster, at); err == nil || !strings.Contains(err.Error(), "1 valid admin signatures of 2 needed") {
		t.Fatalf("v2 by one admin: %v", err)
	}
	if _, err := st.Accept(g.Policy, sets.Admins, testCluster, at); err == nil || !strings.Contains(err.Error(), "not newer") {
		t.Fatalf("genesis again: %v", err)
	}
	if _, err := st.Accept(sign("admin-1", "admin-3"), sets.Admins, testCluster, at); err != nil {
		t.Fatalf("v2 by admin-1 and admin-3: %v", err)
	}
	if v := st.Effective(at).Version; v != 2 {
		t.Fatalf("effective version %d after v2, want 2 at once", v)
	}
}

func hasDenial(ds []policy.Denial, code policy.Code, rule, limit, clause string) bool {
	for _, d := range ds {
		if d.Code == code && (rule == "" || d.RuleID == rule) && (limit == "" || d.LimitID == limit) && strings.Contains(d.Clause, clause) {
			return true
		}
	}
	return false
}
