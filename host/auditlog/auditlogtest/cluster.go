// Package auditlogtest builds the audit logs of a dev cluster in memory,
// entry for entry as enclave/party writes them (boot entries carrying real
// dev NSM attestation documents of api.Identity, request, verdict, session
// and result entries of governed signing, keygen and policy-update
// ceremonies), for tests of package auditlog and of the CLI.
package auditlogtest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sealsign/sealsign/attestation/devnsm"
	"github.com/sealsign/sealsign/enclave/api"
	"github.com/sealsign/sealsign/enclave/audit"
	"github.com/sealsign/sealsign/governance/keys"
	"github.com/sealsign/sealsign/governance/policy"
)

// Start is the fixtures' first entry time. Logs are verified at their own
// entry times, so tests run the same on any day.
var Start = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// Cluster is a dev cluster's manifest and its parties' logs.
type Cluster struct {
	t        testing.TB
	CA       *devnsm.CA
	PCR0     []byte
	Manifest *api.Manifest
	Admins   []*keys.PrivateKey
	Now      time.Time
	IDs      []string
	Parties  map[string]*Party
}

// Party is one party's log being written.
type Party struct {
	c       *Cluster
	ID      string
	Entries [][]byte
	Key     ed25519.PrivateKey // the current boot's identity key
	chain   *audit.Chain
	nsm     *devnsm.NSM
}

// New makes a cluster of dev parties ids (default a, b, c) pinned to one
// PCR0 under a fresh dev root, with two admins, and boots every party.
func New(t testing.TB, ids ...string) *Cluster {
	t.Helper()
	if len(ids) == 0 {
		ids = []string{"a", "b", "c"}
	}
	c := &Cluster{t: t, Now: Start, IDs: ids, Parties: map[string]*Party{}}
	var err error
	if c.CA, err = devnsm.NewCA(rand.Reader, c.Now); err != nil {
		t.Fatal(err)
	}
	c.PCR0 = bytes.Repeat([]byte{0x5e}, 48)
	g := &api.Governance{AdminQuorum: 2, Policy: []byte{0xa0}} // the policy is a placeholder: nothing here evaluates it
	for _, id := range []string{"admin-1", "admin-2"} {
		k, err := keys.Generate(id, id, keys.Ed25519)
		if err != nil {
			t.Fatal(err)
		}
		c.Admins = append(c.Admins, k)
		g.Admins = append(g.Admins, k.Public)
	}
	client, err := keys.Generate("client-1", "ops", keys.Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	g.Clients = []keys.PublicKey{client.Public}
	c.Manifest = &api.Manifest{Version: 1, ClusterID: "test", Threshold: 1, DevRoots: []string{string(c.CA.CertPEM())}, Governance: g}
	for _, id := range ids {
		c.Manifest.Parties = append(c.Manifest.Parties, api.ManifestParty{ID: id, Kind: "dev", PCRs: map[string]string{"0": hex.EncodeToString(c.PCR0)}})
	}
	if err := c.Manifest.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		p := &Party{c: c, ID: id}
		if p.nsm, err = devnsm.New(c.CA, "party-"+id, map[uint][]byte{0: c.PCR0}, rand.Reader, c.clock); err != nil {
			t.Fatal(err)
		}
		c.Parties[id] = p
		p.Boot()
	}
	return c
}

func (c *Cluster) clock() time.Time { return c.Now }

// Tick advances the cluster's clock by a second.
func (c *Cluster) Tick() { c.Now = c.Now.Add(time.Second) }

// Advance moves the cluster's clock.
func (c *Cluster) Advance(d time.Duration) { c.Now = c.Now.Add(d) }

// ManifestJSON is the manifest as manifest.json holds it.
func (c *Cluster) ManifestJSON() []byte {
	b, err := json.MarshalIndent(c.Manifest, "", "  ")
	if err != nil {
		c.t.Fatal(err)
	}
	return b
}

// ManifestHash is the manifest's hash, the user_data of every boot
// attestation.
func (c *Cluster) ManifestHash() []byte {
	h, err := c.Manifest.Hash()
	if err != nil {
		c.t.Fatal(err)
	}
	return h
}

// Attest makes a dev NSM attestation of party id's identity with signing
// key pub, under ca with PCR0 pcr0 (nil: the cluster's).
func (c *Cluster) Attest(id string, pub ed25519.PublicKey, ca *devnsm.CA, pcr0 []byte) []byte {
	c.t.Helper()
	if ca == nil {
		ca = c.CA
	}
	if pcr0 == nil {
		pcr0 = c.PCR0
	}
	nsm, err := devnsm.New(ca, "party-"+id, map[uint][]byte{0: pcr0}, rand.Reader, c.clock)
	if err != nil {
		c.t.Fatal(err)
	}
	return attest(c.t, nsm, id, pub, c.ManifestHash())
}

func attest(t testing.TB, nsm *devnsm.NSM, id string, pub ed25519.PublicKey, manifestHash []byte) []byte {
	t.Helper()
	hpke := make([]byte, 32)
	rand.Read(hpke)
	identity, err := api.Marshal(api.Identity{PartyID: id, SigningKey: pub, HPKEKey: hpke})
	if err != nil {
		t.Fatal(err)
	}
	doc, err := nsm.Attest(identity, manifestHash, nil)
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// Party returns party id.
func (c *Cluster) Party(id string) *Party {
	p := c.Parties[id]
	if p == nil {
		c.t.Fatalf("auditlogtest: no party %q", id)
	}
	return p
}

// Logs are every party's entries, by party id.
func (c *Cluster) Logs() map[string][][]byte {
	out := map[string][][]byte{}
	for id, p := range c.Parties {
		out[id] = p.Entries
	}
	return out
}

// WriteDir writes manifest.json and each party's raw log <id>.cbor-seq
// into dir.
func (c *Cluster) WriteDir(dir string) {
	c.t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "manifest.json"), c.ManifestJSON(), 0o644); err != nil {
		c.t.Fatal(err)
	}
	for id, p := range c.Parties {
		WriteRaw(c.t, filepath.Join(dir, id+".cbor-seq"), p.Entries)
	}
}

// WriteRaw writes entries as a raw audit file (concatenated, as
// auditlog.WriteRaw does).
func WriteRaw(t testing.TB, path string, entries [][]byte) {
	t.Helper()
	if err := os.WriteFile(path, bytes.Join(entries, nil), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Boot restarts the party's enclave: a new identity key continuing the
// log with a boot entry that carries its attestation.
func (p *Party) Boot() {
	p.c.t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		p.c.t.Fatal(err)
	}
	doc := attest(p.c.t, p.nsm, p.ID, priv.Public().(ed25519.PublicKey), p.c.ManifestHash())
	p.BootWith(priv, doc)
}

// BootWith continues the log with key priv and a boot entry carrying doc
// (a forged or foreign attestation, for tests that must see it refused).
func (p *Party) BootWith(priv ed25519.PrivateKey, doc []byte) {
	p.c.t.Helper()
	var head audit.Head
	if p.chain != nil {
		head = p.chain.Head()
	}
	ch, err := audit.NewChain(p.ID, priv, head)
	if err != nil {
		p.c.t.Fatal(err)
	}
	p.chain, p.Key = ch, priv
	p.Append(audit.TypeBoot, audit.Boot{Measurement: p.c.PCR0, AttestationDocument: doc, ManifestHash: p.c.ManifestHash(), Software: "sealsign-enclave"})
}

// Append appends an entry at the cluster's current time.
func (p *Party) Append(typ string, body any) []byte {
	p.c.t.Helper()
	b, _, err := p.chain.Append(typ, body, p.c.Now)
	if err != nil {
		p.c.t.Fatal(err)
	}
	p.Entries = append(p.Entries, b)
	return b
}

// Checkpoint appends a checkpoint.
func (p *Party) Checkpoint() {
	p.c.t.Helper()
	b, _, err := p.chain.Checkpoint(p.c.Now)
	if err != nil {
		p.c.t.Fatal(err)
	}
	p.Entries = append(p.Entries, b)
}

// Head is the party's head.
func (p *Party) Head() audit.Head { return p.chain.Head() }

// Keygen records a done keygen of keyID on parties (default all) and
// returns the public key.
func (c *Cluster) Keygen(keyID string, parties ...string) []byte {
	if len(parties) == 0 {
		parties = c.IDs
	}
	pub := sha256.Sum256([]byte("public key of " + keyID))
	pk := append([]byte{0x02}, pub[:]...)
	for _, id := range parties {
		c.Party(id).Append(audit.TypeCeremony, audit.Ceremony{Kind: "keygen", KeyID: keyID, Parties: parties, Threshold: uint64(c.Manifest.Threshold),
			PublicKey: pk, Outcome: "done", Detail: map[string]string{"algorithm": "ecdsa-secp256k1"}})
	}
	c.Tick()
	return pk
}

// PolicyUpdate records a policy update to version, authorised by the
// admins named, on every party.
func (c *Cluster) PolicyUpdate(version uint64, by ...string) {
	for _, id := range c.IDs {
		c.Party(id).Append(audit.TypeCeremony, audit.Ceremony{Kind: "policy-update", AuthorisedBy: by, Outcome: "done",
			Detail: map[string]string{"version": fmt.Sprint(version), "not_before": fmt.Sprint(c.Now.Unix())}})
	}
	c.Tick()
}

// SignOptions vary one signing request.
type SignOptions struct {
	Client        string // client key id (default client-1)
	PolicyVersion uint64 // default 1
	Rule          string // allowing rule (default "within-limits")
	Digests       int    // digests to sign (default 1)
}

// Request is a signing request as the fixtures record it.
type Request struct {
	ID            string
	KeyID         string
	Signers       []string
	RequestDigest [32]byte
	PayloadHash   [32]byte
	Digests       [][]byte
	Signatures    [][]byte
	SessionIDs    [][]byte
	PolicyVersion uint64
	Rule          string
	Client        string
}

// NewRequest describes a request; its entries are written by Record.
func (c *Cluster) NewRequest(id, keyID string, signers []string, o SignOptions) *Request {
	if o.Client == "" {
		o.Client = "client-1"
	}
	if o.PolicyVersion == 0 {
		o.PolicyVersion = 1
	}
	if o.Rule == "" {
		o.Rule = "within-limits"
	}
	if o.Digests == 0 {
		o.Digests = 1
	}
	r := &Request{ID: id, KeyID: keyID, Signers: signers, PolicyVersion: o.PolicyVersion, Rule: o.Rule, Client: o.Client,
		RequestDigest: sha256.Sum256([]byte("request " + id)), PayloadHash: sha256.Sum256([]byte("payload " + id))}
	for i := range o.Digests {
		d := sha256.Sum256(fmt.Appendf(nil, "digest %s %d", id, i))
		sig := sha256.Sum256(fmt.Appendf(nil, "signature %s %d", id, i))
		sid := sha256.Sum256(fmt.Appendf(nil, "session %s %d", id, i))
		r.Digests = append(r.Digests, d[:])
		r.Signatures = append(r.Signatures, append(sig[:], sig[:]...))
		r.SessionIDs = append(r.SessionIDs, sid[:])
	}
	return r
}

// Sign records a signed request on every signer, as enclave/party writes
// it: request, allow verdict, a session entry per digest, signed result.
func (c *Cluster) Sign(id, keyID string, signers []string, o SignOptions) *Request {
	r := c.NewRequest(id, keyID, signers, o)
	for _, s := range signers {
		r.Record(c.Party(s))
	}
	c.Tick()
	return r
}

// Record writes the request's entries into p's log.
func (r *Request) Record(p *Party) {
	p.Append(audit.TypeRequest, r.RequestBody())
	p.Append(audit.TypeVerdict, r.VerdictBody())
	for i := range r.Digests {
		p.Append(audit.TypeSession, r.SessionBody(i))
	}
	p.Append(audit.TypeResult, r.ResultBody())
}

// RequestBody is the request entry.
func (r *Request) RequestBody() audit.Request {
	return audit.Request{RequestID: r.ID, RequestDigest: r.RequestDigest, ClientKeyID: r.Client, KeyID: r.KeyID, Kind: "raw",
		PayloadHash: r.PayloadHash, Signers: r.Signers, IssuedAt: Start.Unix(), ExpiresAt: Start.Add(time.Hour).Unix()}
}

// VerdictBody is the allow verdict, with the decision digest
// governance/policy computes for it.
func (r *Request) VerdictBody() audit.Verdict {
	d := policy.Decision{Outcome: policy.Allow, PolicyVersion: r.PolicyVersion, PayloadHash: r.PayloadHash, RuleID: r.Rule}.Digest()
	return audit.Verdict{RequestID: r.ID, PayloadHash: r.PayloadHash, PolicyVersion: r.PolicyVersion, Outcome: audit.OutcomeAllow,
		RuleIDs: []string{r.Rule}, DecisionDigest: d[:]}
}

// SessionBody is the session entry of run i.
func (r *Request) SessionBody(i int) audit.Session {
	return audit.Session{RequestID: r.ID, SessionID: r.SessionIDs[i], ProposalID: fmt.Appendf(nil, "proposal-%s-%d", r.ID, i),
		KeyID: r.KeyID, Signers: r.Signers, Digests: [][]byte{r.Digests[i]}}
}

// ResultBody is the signed result.
func (r *Request) ResultBody() audit.Result {
	return audit.Result{RequestID: r.ID, Outcome: audit.OutcomeSigned, Digests: r.Digests, Signatures: r.Signatures}
}

// Demo is a small history on every party: keygen, signed requests by
// different signer sets, a restart of party b, a policy update, a
// checkpoint on a. It returns the requests signed.
func (c *Cluster) Demo() []*Request {
	key := "key-1"
	c.Keygen(key)
	var out []*Request
	out = append(out, c.Sign("req-1", key, []string{"a", "b"}, SignOptions{}))
	out = append(out, c.Sign("req-2", key, []string{"a", "c"}, SignOptions{Digests: 2}))
	c.Advance(time.Hour)
	c.Party("b").Boot()
	c.PolicyUpdate(2, "admin-1", "admin-2")
	out = append(out, c.Sign("req-3", key, []string{"b", "c"}, SignOptions{PolicyVersion: 2}))
	c.Party("a").Checkpoint()
	out = append(out, c.Sign("req-4", key, []string{"a", "b"}, SignOptions{PolicyVersion: 2, Client: "client-2"}))
	// A denied request: a verdict, nothing signed.
	c.Party("a").Append(audit.TypeVerdict, audit.Verdict{RequestID: "req-5", PolicyVersion: 2, Outcome: audit.OutcomeDeny,
		Denials: []audit.Denial{{Code: "not-allowlisted", RuleID: "allowlist"}}})
	c.Tick()
	return out
}
