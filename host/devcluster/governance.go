package devcluster

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sealsign/sealsign/enclave/api"
	"github.com/sealsign/sealsign/governance/approval"
	"github.com/sealsign/sealsign/governance/ceremony"
	"github.com/sealsign/sealsign/governance/keys"
	"github.com/sealsign/sealsign/governance/policy"
	"github.com/sealsign/sealsign/host/client"
	"github.com/sealsign/sealsign/host/server"
)

// defaultPolicyTemplate is the genesis policy of a dev cluster unless
// Options.PolicyJSON gives another (see policy.json's description).
//
//go:embed policy.json
var defaultPolicyTemplate []byte

// A dev cluster's governance: who holds which key, in <dir>/governance/.
const (
	governanceDir = "governance"
	// genesisJSON is the genesis policy as signed, for people to read;
	// genesisSigned is the policy.SignedPolicy the manifest carries. It is
	// written last, so its presence means the governance is complete.
	genesisJSON   = "policy-v1.json"
	genesisSigned = "policy-v1.signed"
	// adminQuorum admins sign a policy; the genesis is signed by the first
	// adminQuorum admins.
	adminQuorum = 2
	// treasuryGroup is the approver group the template's eth-large rule
	// needs two approvals from.
	treasuryGroup = "treasury"
)

const (
	roleAdmin    = "admin"
	roleApprover = "approver"
	roleClient   = "client"
)

type devKey struct {
	id, owner, algorithm, role string
}

// devKeys are the governance keys of every dev cluster. Admins are
// ed25519 and ecdsa-p256 alike so both verifiers run; approvers each have
// their own owner, so four eyes are four people.
var devKeys = []devKey{
	{"admin-1", "admin-1", keys.Ed25519, roleAdmin},
	{"admin-2", "admin-2", keys.Ed25519, roleAdmin},
	{"admin-3", "admin-3", keys.ECDSAP256, roleAdmin},
	{"approver-alice", "alice", keys.Ed25519, roleApprover},
	{"approver-bob", "bob", keys.Ed25519, roleApprover},
	{"approver-carol", "carol", keys.Ed25519, roleApprover},
	{"treasury-app", "treasury-app", keys.Ed25519, roleClient},
	{"ops-bot", "ops-bot", keys.ECDSAP256, roleClient},
}

// genesisBackdate is how long before Up the genesis policy is issued and
// takes effect, so enclave clocks a little behind the host's still find it
// in force.
const genesisBackdate = 60 * time.Second

func keyPath(dir, id string) string { return filepath.Join(dir, governanceDir, id+".key") }

// prepareGovernance returns the manifest's governance section for the
// cluster in dir. On first use it creates <dir>/governance/ with the key
// files of devKeys and a genesis policy made from tmpl (a policy JSON
// document, optionally with a top-level "description" that is dropped):
// cluster_id set to clusterID, issued_at and not_before to now − 60 s,
// signed by admin-1 and admin-2. Later calls reuse what is there, byte for
// byte: the manifest, and so the parties' sealed state, depend on it. tmpl
// is then only compared with the genesis in force, and a difference is
// reported on progress. Either way the result is checked as an enclave
// checks it (Governance.Sets, policy.Accept).
func prepareGovernance(dir, clusterID string, tmpl []byte, now time.Time, progress io.Writer) (*api.Governance, error) {
	if progress == nil {
		progress = io.Discard
	}
	gdir := filepath.Join(dir, governanceDir)
	if err := os.MkdirAll(gdir, 0o700); err != nil {
		return nil, fmt.Errorf("devcluster: governance: %w", err)
	}
	signedPath := filepath.Join(gdir, genesisSigned)
	signed, err := os.ReadFile(signedPath)
	complete := err == nil
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("devcluster: governance: %w", err)
	}

	g := &api.Governance{AdminQuorum: adminQuorum, Groups: approval.Groups{}}
	admins := map[string]*keys.PrivateKey{}
	var created []string
	for _, dk := range devKeys {
		k, err := loadDevKey(dir, dk)
		switch {
		case errors.Is(err, os.ErrNotExist) && !complete:
			if k, err = keys.Generate(dk.id, dk.owner, dk.algorithm); err != nil {
				return nil, fmt.Errorf("devcluster: governance: %w", err)
			}
			if err := k.WriteFile(keyPath(dir, dk.id)); err != nil {
				return nil, fmt.Errorf("devcluster: governance: %w", err)
			}
			created = append(created, dk.id)
		case errors.Is(err, os.ErrNotExist):
			return nil, fmt.Errorf("devcluster: governance key file %s is missing, but the genesis policy %s was made with it; restore the file, or start a new cluster in a fresh directory",
				keyPath(dir, dk.id), signedPath)
		case err != nil:
			return nil, err
		}
		switch dk.role {
		case roleAdmin:
			g.Admins = append(g.Admins, k.Public)
			admins[dk.id] = k
		case roleApprover:
			g.Approvers = append(g.Approvers, k.Public)
			g.Groups[treasuryGroup] = append(g.Groups[treasuryGroup], dk.id)
		case roleClient:
			g.Clients = append(g.Clients, k.Public)
		}
	}
	if len(created) > 0 {
		fmt.Fprintf(progress, "  created governance keys in %s: %s\n", gdir, strings.Join(created, ", "))
	}

	p, err := renderGenesis(tmpl, clusterID, now)
	if err != nil {
		return nil, err
	}
	if !complete {
		if signed, err = signGenesis(gdir, p, admins); err != nil {
			return nil, err
		}
		fmt.Fprintf(progress, "  genesis policy v1 for cluster %s (%d rules) signed by admin-1 and admin-2 (quorum %d of %d admins)\n",
			clusterID, len(p.Rules), adminQuorum, len(g.Admins))
	}
	g.Policy = signed
	if g.Recovery, err = prepareRecoveryKeys(dir, !complete, progress); err != nil {
		return nil, err
	}

	sets, err := g.Sets()
	if err != nil {
		return nil, fmt.Errorf("devcluster: governance in %s: %w", gdir, err)
	}
	genesis, err := policy.Accept(nil, g.Policy, sets.Admins, clusterID, now)
	if err != nil {
		return nil, fmt.Errorf("devcluster: genesis policy %s refused (the enclaves would refuse it too): %w; if the directory was renamed, its cluster id changed; otherwise start a new cluster in a fresh directory",
			signedPath, err)
	}
	if complete && !sameRules(genesis, p) {
		fmt.Fprintf(progress, "  note: keeping the genesis policy already signed in %s; the policy template given now differs from it (a dev cluster's genesis never changes: push a signed update, or use a fresh directory)\n", signedPath)
	}
	return g, nil
}

// loadDevKey reads dk's key file and checks it is the key dk describes.
// A missing file wraps os.ErrNotExist.
func loadDevKey(dir string, dk devKey) (*keys.PrivateKey, error) {
	path := keyPath(dir, dk.id)
	k, err := keys.LoadPrivate(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("devcluster: governance key %q: %w (restore the file, or start a new cluster in a fresh directory)", dk.id, err)
	}
	if pk := k.Public; pk.ID != dk.id || pk.Owner != dk.owner || pk.Algorithm != dk.algorithm {
		return nil, fmt.Errorf("devcluster: governance key file %s holds key %q of owner %q (%s), want key %q of owner %q (%s)",
			path, pk.ID, pk.Owner, pk.Algorithm, dk.id, dk.owner, dk.algorithm)
	}
	return k, nil
}

// policyTemplate is a policy JSON document with an optional description
// of the template itself, which is not part of the policy.
type policyTemplate struct {
	Description string `json:"description"`
	policy.Policy
}

// renderGenesis fills a template's cluster id and times and validates it.
func renderGenesis(tmpl []byte, clusterID string, now time.Time) (*policy.Policy, error) {
	dec := json.NewDecoder(bytes.NewReader(tmpl))
	dec.DisallowUnknownFields()
	var t policyTemplate
	if err := dec.Decode(&t); err != nil {
		return nil, fmt.Errorf("devcluster: policy template: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("devcluster: policy template: trailing data after the policy object")
	}
	p := t.Policy
	if p.Format == 0 {
		p.Format = policy.Format
	}
	switch p.Version {
	case 0:
		p.Version = 1
	case 1:
	default:
		return nil, fmt.Errorf("devcluster: policy template has version %d; a genesis policy is version 1", p.Version)
	}
	p.ClusterID = clusterID
	p.IssuedAt = now.Add(-genesisBackdate).Unix()
	p.NotBefore = p.IssuedAt
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("devcluster: policy template: %w", err)
	}
	return &p, nil
}

// signGenesis writes the genesis as JSON, then signed by the first
// adminQuorum admins in devKeys order, and returns the signed encoding.
func signGenesis(gdir string, p *policy.Policy, admins map[string]*keys.PrivateKey) ([]byte, error) {
	enc, err := p.Encode()
	if err != nil {
		return nil, fmt.Errorf("devcluster: genesis policy: %w", err)
	}
	sp := policy.SignedPolicy{Policy: enc}
	for _, dk := range devKeys {
		if dk.role != roleAdmin || len(sp.Signatures) == adminQuorum {
			continue
		}
		sig, err := policy.SignPolicy(enc, dk.id, admins[dk.id].Signer)
		if err != nil {
			return nil, fmt.Errorf("devcluster: genesis policy: %w", err)
		}
		sp.Signatures = append(sp.Signatures, sig)
	}
	signed, err := sp.Encode()
	if err != nil {
		return nil, fmt.Errorf("devcluster: genesis policy: %w", err)
	}
	js, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(filepath.Join(gdir, genesisJSON), append(js, '\n'), 0o644); err != nil {
		return nil, fmt.Errorf("devcluster: genesis policy: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(gdir, genesisSigned), signed, 0o644); err != nil {
		return nil, fmt.Errorf("devcluster: genesis policy: %w", err)
	}
	return signed, nil
}

// sameRules reports whether two policies differ only in when they were
// issued.
func sameRules(a, b *policy.Policy) bool {
	x, y := *a, *b
	x.IssuedAt, x.NotBefore, y.IssuedAt, y.NotBefore = 0, 0, 0, 0
	ja, err1 := json.Marshal(x)
	jb, err2 := json.Marshal(y)
	return err1 == nil && err2 == nil && bytes.Equal(ja, jb)
}

// ClusterID is the cluster id of the manifest: "dev-" and the directory's
// base name.
func (c *Cluster) ClusterID() string { return clusterID(c.Dir) }

func clusterID(dir string) string { return "dev-" + filepath.Base(dir) }

// GovernanceKey loads the governance key named id from
// <dir>/governance/<id>.key: admins admin-1, admin-2, admin-3 (quorum 2),
// approvers approver-alice, approver-bob, approver-carol (group treasury),
// clients treasury-app and ops-bot.
func (c *Cluster) GovernanceKey(id string) (*keys.PrivateKey, error) {
	if !keys.ValidName(id) {
		return nil, fmt.Errorf("devcluster: governance key name %q invalid", id)
	}
	k, err := keys.LoadPrivate(keyPath(c.Dir, id))
	if err != nil {
		return nil, fmt.Errorf("devcluster: governance key %q: %w", id, err)
	}
	return k, nil
}

// GenesisPolicy returns the signed genesis policy (policy-v1.signed) and
// the policy it signs.
func (c *Cluster) GenesisPolicy() (signed []byte, p *policy.Policy, err error) {
	path := filepath.Join(c.Dir, governanceDir, genesisSigned)
	if signed, err = os.ReadFile(path); err != nil {
		return nil, nil, fmt.Errorf("devcluster: %w", err)
	}
	sp, err := policy.DecodeSigned(signed)
	if err != nil {
		return nil, nil, fmt.Errorf("devcluster: %s: %w", path, err)
	}
	if p, err = policy.DecodePolicy(sp.Policy); err != nil {
		return nil, nil, fmt.Errorf("devcluster: %s: %w", path, err)
	}
	return signed, p, nil
}

// DevCeremonyAdmins are the dev cluster's admins that authorise its key
// ceremonies (a quorum of 2 of admin-1, admin-2, admin-3).
var DevCeremonyAdmins = []string{"admin-1", "admin-2"}

// KeygenCeremony returns a keygen ceremony for algorithm over every party
// of the cluster at the manifest's threshold, valid for ttl and signed by
// the admin keys named (DevCeremonyAdmins when none).
func (c *Cluster) KeygenCeremony(algorithm string, ttl time.Duration, adminIDs ...string) ([]byte, error) {
	if len(adminIDs) == 0 {
		adminIDs = DevCeremonyAdmins
	}
	raw, err := os.ReadFile(c.Manifest)
	if err != nil {
		return nil, fmt.Errorf("devcluster: %w", err)
	}
	m, err := api.ParseManifest(raw)
	if err != nil {
		return nil, fmt.Errorf("devcluster: %s: %w", c.Manifest, err)
	}
	var admins []*keys.PrivateKey
	for _, id := range adminIDs {
		k, err := c.GovernanceKey(id)
		if err != nil {
			return nil, err
		}
		admins = append(admins, k)
	}
	return client.NewCeremony(m.ClusterID, ceremony.KindKeygen, algorithm, m.PartyIDs(), m.Threshold, ttl, admins...)
}

// CreateKey runs a keygen from the first party's host (a), authorised by
// a ceremony that admin-1 and admin-2 sign.
func (c *Cluster) CreateKey(ctx context.Context, algorithm string) (*server.KeyJSON, error) {
	if len(c.Parties) == 0 {
		return nil, errors.New("devcluster: cluster has no parties")
	}
	cer, err := c.KeygenCeremony(algorithm, 10*time.Minute)
	if err != nil {
		return nil, err
	}
	return c.Client(c.Parties[0].ID).CreateKey(ctx, algorithm, cer)
}
