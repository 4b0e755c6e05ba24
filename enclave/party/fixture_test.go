package party

import (
	"encoding/json"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/sealsign/sealsign/enclave/api"
	"github.com/sealsign/sealsign/enclave/backup"
	"github.com/sealsign/sealsign/governance/approval"
	"github.com/sealsign/sealsign/governance/keys"
	"github.com/sealsign/sealsign/governance/policy"
	"github.com/sealsign/sealsign/governance/request"
	"github.com/sealsign/sealsign/governance/tx"
)

// governance is the test cluster's people: three admins (quorum 2), three
// treasury approvers and one client, with real keys.
type governance struct {
	admins, approvers []*keys.PrivateKey
	client            *keys.PrivateKey
	reqSeq            int
	// recovery are the offline recovery keys (recovery-1 x25519,
	// recovery-2 mlkem768-x25519) the manifest lists.
	recovery []*backup.RecoveryPrivateKey
}

func newGovernance(t testing.TB) *governance {
	t.Helper()
	g := &governance{}
	gen := func(id, owner, alg string) *keys.PrivateKey {
		k, err := keys.Generate(id, owner, alg)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	g.admins = []*keys.PrivateKey{gen("admin-1", "admin-1", keys.Ed25519), gen("admin-2", "admin-2", keys.ECDSAP256), gen("admin-3", "admin-3", keys.Ed25519)}
	g.approvers = []*keys.PrivateKey{gen("appr-alice", "alice", keys.Ed25519), gen("appr-bob", "bob", keys.ECDSAP256), gen("appr-carol", "carol", keys.Ed25519)}
	g.client = gen("client-1", "ops", keys.Ed25519)
	for _, r := range [][2]string{{"recovery-1", api.KEMX25519}, {"recovery-2", api.KEMMLKEM768X25519}} {
		k, err := backup.GenerateRecoveryKey(r[0], r[1])
		if err != nil {
			t.Fatal(err)
		}
		g.recovery = append(g.recovery, k)
	}
	return g
}

// section is the manifest's governance with policy (JSON, from testdata
// unless given) signed by the admins named.
func (g *governance) section(t testing.TB, cluster string, policyJSON []byte, signers ...int) *api.Governance {
	t.Helper()
	if policyJSON == nil {
		var err error
		if policyJSON, err = os.ReadFile("testdata/policy.json"); err != nil {
			t.Fatal(err)
		}
	}
	sec := &api.Governance{AdminQuorum: 2, Clients: []keys.PublicKey{g.client.Public}, Groups: approval.Groups{}}
	for _, a := range g.admins {
		sec.Admins = append(sec.Admins, a.Public)
	}
	for _, a := range g.approvers {
		sec.Approvers = append(sec.Approvers, a.Public)
		sec.Groups["treasury"] = append(sec.Groups["treasury"], a.Public.ID)
	}
	if len(signers) == 0 {
		signers = []int{0, 1}
	}
	sec.Policy = g.signPolicy(t, policyJSON, cluster, 0, signers...)
	for _, k := range g.recovery {
		sec.Recovery = append(sec.Recovery, k.Public())
	}
	return sec
}

// signPolicy signs a policy JSON document for cluster, overriding its
// version when version > 0.
func (g *governance) signPolicy(t testing.TB, policyJSON []byte, cluster string, version uint64, signers ...int) []byte {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(policyJSON, &doc); err != nil {
		t.Fatal(err)
	}
	doc["cluster_id"] = cluster
	if version > 0 {
		doc["version"] = version
	}
	raw, _ := json.Marshal(doc)
	p, err := policy.ParseJSON(raw)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := p.Encode()
	if err != nil {
		t.Fatal(err)
	}
	sp := policy.SignedPolicy{Policy: enc}
	for _, i := range signers {
		sig, err := policy.SignPolicy(enc, g.admins[i].Public.ID, g.admins[i].Signer)
		if err != nil {
			t.Fatal(err)
		}
		sp.Signatures = append(sp.Signatures, sig)
	}
	b, err := sp.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// request signs a request of the test client, issued at now.
func (g *governance) request(t testing.TB, cluster, keyID string, kind tx.Kind, payload []byte, now time.Time, signers ...string) []byte {
	t.Helper()
	g.reqSeq++
	b, err := request.New(request.Request{
		Format: request.FormatV1, ID: fmt.Sprintf("test-req-%d-%06d", time.Now().UnixNano(), g.reqSeq),
		ClusterID: cluster, ClientKeyID: g.client.Public.ID, KeyID: keyID, Kind: kind, Payload: payload,
		IssuedAt: now.Unix(), ExpiresAt: now.Add(10 * time.Minute).Unix(), Signers: signers,
	}, g.client.Signer)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// approve signs approver i's decision on a verdict's request.
func (g *governance) approve(t testing.TB, cluster string, i int, v *api.Verdict, decision string, now time.Time) []byte {
	t.Helper()
	a := approval.Approval{Format: approval.FormatV1, ClusterID: cluster, RequestID: v.RequestID, PolicyVersion: v.PolicyVersion,
		ApproverKeyID: g.approvers[i].Public.ID, Decision: decision, IssuedAt: now.Unix(), ExpiresAt: now.Add(time.Hour).Unix()}
	copy(a.RequestDigest[:], v.RequestDigest)
	copy(a.PayloadHash[:], v.PayloadHash)
	if decision == approval.Reject {
		a.Reason = "not this week"
	}
	b, err := approval.New(a, g.approvers[i].Signer)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
