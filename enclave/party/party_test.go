package party

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	ecdsakeygen "github.com/bnb-chain/tss-lib/v2/ecdsa/keygen"

	"github.com/sealsign/sealsign/attestation/devnsm"
	"github.com/sealsign/sealsign/enclave/api"
	"github.com/sealsign/sealsign/governance/tx"
	"github.com/sealsign/sealsign/hsm"
	"github.com/sealsign/sealsign/hsm/pkcs11"
	"github.com/sealsign/sealsign/hsm/pkcs11/softhsm"
)

// cluster is three enclaves wired through an in-memory host that stores
// blobs and relays envelopes; hardware is real (SoftHSM tokens, dev NSM).
type cluster struct {
	t        testing.TB
	ca       *devnsm.CA
	manifest []byte
	pcr0     []byte
	ids      []string
	encl     map[string]*Enclave
	hosts    map[string]*memHost
	now      time.Time
	nowMu    sync.Mutex
	gov      *governance
	opts     clusterOptions
	// hsm and pin reach the SoftHSM tokens; tok-spare is a fresh, empty
	// token (SoftHSM lists tokens as they were when the module loaded, so
	// a replacement must exist from the start).
	hsm *softhsm.Env
	pin string
}

// clusterOptions vary the test cluster; the zero value is newCluster's.
type clusterOptions struct {
	// policy is the genesis policy JSON (nil: testdata/policy.json).
	policy []byte
	// preParams are each party's Paillier pre-parameter sets, served by
	// its pool as PoolConfig.InsecureFixture (nil: no pool, no ECDSA keygen).
	preParams map[string][]*ecdsakeygen.LocalPreParams
	// ids are the manifest's parties (nil: a, b, c).
	ids []string
}

type memHost struct {
	c     *cluster
	me    string
	mu    sync.Mutex
	blobs map[string][]byte
	audit [][]byte // entries in seq order
	// auditDown makes audit appends fail (an unwritable store).
	auditDown bool
	// auditLoseAck stores the next audit entry, then answers with an error
	// (the acknowledgement lost).
	auditLoseAck bool
	// storeDown makes blob stores fail (a full or broken disk).
	storeDown bool
}

func (h *memHost) Call(ctx context.Context, method string, req, resp any) error {
	switch method {
	case api.MethodStore:
		r := req.(api.StoreRequest)
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.storeDown {
			return errors.New("memhost: blob store unwritable")
		}
		h.blobs[r.Blob.Name] = r.Blob.Blob
	case api.MethodDelete:
		r := req.(api.DeleteRequest)
		h.mu.Lock()
		delete(h.blobs, r.Name)
		h.mu.Unlock()
	case api.MethodAudit:
		r := req.(api.AuditAppendRequest)
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.auditDown {
			return errors.New("memhost: audit store unwritable")
		}
		if r.Seq != uint64(len(h.audit))+1 {
			return fmt.Errorf("memhost: audit entry %d after %d", r.Seq, len(h.audit))
		}
		h.audit = append(h.audit, r.Entry)
		if h.auditLoseAck {
			h.auditLoseAck = false
			return errors.New("memhost: connection reset (the entry was stored)")
		}
	case api.MethodAuditRange:
		r := req.(api.AuditRangeRequest)
		h.mu.Lock()
		defer h.mu.Unlock()
		out := resp.(*api.AuditRangeResponse)
		for i := r.From; i <= uint64(len(h.audit)) && len(out.Entries) < r.Limit; i++ {
			out.Entries = append(out.Entries, h.audit[i-1])
		}
	case api.MethodAuditTail:
		h.mu.Lock()
		defer h.mu.Unlock()
		out := resp.(*api.AuditTailResponse)
		if len(h.audit) > 0 {
			out.Entry = h.audit[len(h.audit)-1]
		}
	case api.MethodSend:
		r := req.(api.SendRequest)
		go h.c.encl[r.To].deliver(context.Background(), &api.DeliverRequest{Envelope: r.Envelope})
	default:
		return errors.New("memhost: unexpected method " + method)
	}
	return nil
}

func (c *cluster) clock() time.Time {
	c.nowMu.Lock()
	defer c.nowMu.Unlock()
	return c.now
}

func newCluster(t testing.TB) *cluster {
	t.Helper()
	return newClusterWith(t, clusterOptions{})
}

func newClusterWith(t testing.TB, opts clusterOptions) *cluster {
	t.Helper()
	dir := t.TempDir()
	env, err := softhsm.Setup(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("SOFTHSM2_CONF", env.ConfPath)
	ca, err := devnsm.NewCA(rand.Reader, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ids := opts.ids
	if ids == nil {
		ids = []string{"a", "b", "c"}
	}
	c := &cluster{t: t, ca: ca, ids: ids, encl: map[string]*Enclave{}, hosts: map[string]*memHost{}, now: time.Now(), pcr0: make([]byte, 48), opts: opts}
	rand.Read(c.pcr0)
	c.gov = newGovernance(t)
	m := api.Manifest{Version: 1, ClusterID: "test", Threshold: 1, DevRoots: []string{string(ca.CertPEM())}, Governance: c.gov.section(t, "test", opts.policy)}
	for _, id := range c.ids {
		m.Parties = append(m.Parties, api.ManifestParty{ID: id, Kind: "dev", PCRs: map[string]string{"0": hex.EncodeToString(c.pcr0)}})
	}
	c.manifest, _ = json.Marshal(m)
	pin := filepath.Join(dir, "user.pin")
	os.WriteFile(pin, []byte("1234\n"), 0o600)
	// SoftHSM lists tokens as they were when the module loaded: create all first.
	for _, id := range append(c.ids, "spare") {
		if err := env.InitToken("tok-"+id, "5678", "1234"); err != nil {
			t.Fatal(err)
		}
	}
	c.hsm, c.pin = env, pin
	for _, id := range c.ids {
		tok, err := pkcs11.Open(env.URI("tok-"+id, pin))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tok.Close() })
		sealer, err := tok.Sealer("seal", true)
		if err != nil {
			t.Fatal(err)
		}
		c.start(id, sealer, tok, c.pcr0)
	}
	c.connect()
	return c
}

func (c *cluster) start(id string, sealer hsm.Sealer, epochs hsm.EpochKeys, pcr0 []byte) {
	t := c.t
	nsm, err := devnsm.New(c.ca, "test-"+id, map[uint][]byte{0: pcr0}, rand.Reader, c.clock)
	if err != nil {
		t.Fatal(err)
	}
	var pool PoolConfig
	if sets := c.opts.preParams[id]; len(sets) > 0 {
		pool = PoolConfig{Goal: len(sets), NoRefill: true, InsecureFixture: sets}
	}
	e := New(Config{Sealer: sealer, Epochs: epochs, Rand: rand.Reader, Attester: nsm, Measurement: pcr0, Clock: c.clock,
		SignInactivity: 10 * time.Second, KeygenInactivity: 20 * time.Second, PreParams: pool})
	h := c.hosts[id]
	if h == nil {
		h = &memHost{c: c, me: id, blobs: map[string][]byte{}}
		c.hosts[id] = h
	}
	e.AttachHost(h)
	c.encl[id] = e
	ctx := context.Background()
	if _, err := e.init(ctx, &api.InitRequest{PartyID: id, Manifest: c.manifest}); err != nil {
		t.Fatal(err)
	}
	var req api.RestoreRequest
	h.mu.Lock() // an earlier incarnation's pool may still be storing
	for n, b := range h.blobs {
		req.Blobs = append(req.Blobs, api.NamedBlob{Name: n, Blob: b})
	}
	if len(h.audit) > 0 {
		req.AuditTail = h.audit[len(h.audit)-1]
	}
	h.mu.Unlock()
	if _, err := e.restore(ctx, &req); err != nil {
		t.Fatal(err)
	}
}

// raw is a client-signed raw-digest request for keyID.
func (c *cluster) raw(keyID string, msg []byte) []byte {
	return c.gov.request(c.t, "test", keyID, tx.KindRaw, msg, c.clock())
}

// connect gives every enclave every peer's current attestation.
func (c *cluster) connect() {
	ctx := context.Background()
	for _, id := range c.ids {
		doc, err := c.encl[id].attest(ctx, &api.AttestRequest{})
		if err != nil {
			c.t.Fatal(err)
		}
		for _, other := range c.ids {
			if other != id {
				if _, err := c.encl[other].peerIdentity(ctx, &api.PeerIdentityRequest{PartyID: id, Document: doc.Document}); err != nil {
					c.t.Fatalf("%s verifying %s: %v", other, id, err)
				}
			}
		}
	}
}

// session proposes on the coordinator and runs on every party. A keygen
// without a ceremony gets one signed by admin-1 and admin-2 (c.ceremony).
func (c *cluster) session(coord string, req api.ProposeRequest) (map[string]*api.SessionResult, map[string]error) {
	ctx := context.Background()
	if req.Kind == api.KindKeygen && req.Ceremony == nil {
		req.Ceremony = c.ceremony(req.Algorithm, nil)
	}
	prop, err := c.encl[coord].propose(ctx, &req)
	if err != nil {
		return nil, map[string]error{coord: err}
	}
	return c.runProposal(prop.Proposal, req.Parties)
}

func (c *cluster) runProposal(prop []byte, parties []string) (map[string]*api.SessionResult, map[string]error) {
	var mu sync.Mutex
	res, errs := map[string]*api.SessionResult{}, map[string]error{}
	var wg sync.WaitGroup
	for _, id := range parties {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := c.encl[id].run(context.Background(), &api.RunRequest{Proposal: prop})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs[id] = err
				return
			}
			res[id] = r
		}()
	}
	wg.Wait()
	return res, errs
}

func TestKeygenSignRestartAndRefusals(t *testing.T) {
	c := newCluster(t)
	res, errs := c.session("a", api.ProposeRequest{Kind: api.KindKeygen, Algorithm: api.AlgEdDSAEd25519, Parties: []string{"a", "b", "c"}})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	key := res["a"]
	for _, id := range c.ids {
		if string(res[id].PublicKey) != string(key.PublicKey) {
			t.Fatalf("party %s has another public key", id)
		}
		if _, ok := c.hosts[id].blobs[shareBlobName(key.KeyID, 0)]; !ok {
			t.Fatalf("party %s acknowledged keygen without its sealed share stored", id)
		}
	}
	msg := []byte("transfer 5")
	sign := func(coord string, parties ...string) (map[string]*api.SessionResult, map[string]error) {
		return c.session(coord, api.ProposeRequest{Kind: api.KindSign, KeyID: key.KeyID, Parties: parties, Request: c.raw(key.KeyID, msg)})
	}
	sres, errs := sign("b", "b", "c")
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if !ed25519.Verify(key.PublicKey, msg, sres["b"].Signature) {
		t.Fatal("signature does not verify")
	}

	t.Run("replayed proposal", func(t *testing.T) {
		prop, err := c.encl["a"].propose(context.Background(), &api.ProposeRequest{Kind: api.KindSign, KeyID: key.KeyID, Parties: []string{"a", "b"}, Request: c.raw(key.KeyID, msg)})
		if err != nil {
			t.Fatal(err)
		}
		if _, errs := c.runProposal(prop.Proposal, []string{"a", "b"}); len(errs) > 0 {
			t.Fatal(errs)
		}
		_, errs := c.runProposal(prop.Proposal, []string{"a", "b"})
		for _, id := range []string{"a", "b"} {
			// The request id is spent (request replay) and the proposal
			// ran (proposal replay): either refusal stops it.
			if errs[id] == nil || !(strings.Contains(errs[id].Error(), "already ran") || strings.Contains(errs[id].Error(), "request: replay")) {
				t.Fatalf("%s: replay error = %v", id, errs[id])
			}
		}
	})

	t.Run("stale proposal", func(t *testing.T) {
		prop, _ := c.encl["a"].propose(context.Background(), &api.ProposeRequest{Kind: api.KindSign, KeyID: key.KeyID, Parties: []string{"a", "b"}, Request: c.raw(key.KeyID, msg)})
		c.nowMu.Lock()
		c.now = c.now.Add(10 * time.Minute)
		c.nowMu.Unlock()
		defer func() { c.nowMu.Lock(); c.now = c.now.Add(-10 * time.Minute); c.nowMu.Unlock() }()
		_, err := c.encl["b"].run(context.Background(), &api.RunRequest{Proposal: prop.Proposal})
		if err == nil || !strings.Contains(err.Error(), "outside the accepted window") {
			t.Fatalf("stale proposal: %v", err)
		}
	})

	t.Run("forged proposal", func(t *testing.T) {
		prop, _ := c.encl["a"].propose(context.Background(), &api.ProposeRequest{Kind: api.KindSign, KeyID: key.KeyID, Parties: []string{"a", "b"}, Request: c.raw(key.KeyID, msg)})
		prop.Proposal[len(prop.Proposal)-1] ^= 1 // signature byte
		_, err := c.encl["b"].run(context.Background(), &api.RunRequest{Proposal: prop.Proposal})
		if api.CodeOf(err) != api.CodeRejected || !strings.Contains(err.Error(), "signature") {
			t.Fatalf("forged proposal: %v", err)
		}
	})

	t.Run("bad requests", func(t *testing.T) {
		ctx := context.Background()
		for name, req := range map[string]api.ProposeRequest{
			"unknown key":             {Kind: api.KindSign, KeyID: "nope", Parties: []string{"a", "b"}, Request: c.raw("nope", msg)},
			"three signers":           {Kind: api.KindSign, KeyID: key.KeyID, Parties: []string{"a", "b", "c"}, Request: c.raw(key.KeyID, msg)},
			"stranger":                {Kind: api.KindSign, KeyID: key.KeyID, Parties: []string{"a", "z"}, Request: c.raw(key.KeyID, msg)},
			"bare message":            {Kind: api.KindSign, KeyID: key.KeyID, Parties: []string{"a", "b"}, Message: msg},
			"request for another key": {Kind: api.KindSign, KeyID: key.KeyID, Parties: []string{"a", "b"}, Request: c.raw("other-key", msg)},
			"partial keygen":          {Kind: api.KindKeygen, Algorithm: api.AlgEdDSAEd25519, Parties: []string{"a", "b"}},
			"unknown alg":             {Kind: api.KindKeygen, Algorithm: "rsa", Parties: []string{"a", "b", "c"}},
			"without the coordinator": {Kind: api.KindSign, KeyID: key.KeyID, Parties: []string{"b", "c"}, Request: c.raw(key.KeyID, msg)},
		} {
			if _, err := c.encl["a"].propose(ctx, &req); err == nil {
				t.Errorf("%s: proposal accepted", name)
			}
		}
	})

	t.Run("peer refusals", func(t *testing.T) {
		ctx := context.Background()
		other, _ := devnsm.NewCA(rand.Reader, time.Now())
		pub, _ := api.Marshal(c.encl["b"].keys.Public())
		mh := c.encl["b"].manifestHash
		doc := func(ca *devnsm.CA, pcr0, pubKey, userData []byte) []byte {
			n, _ := devnsm.New(ca, "x", map[uint][]byte{0: pcr0}, rand.Reader, c.clock)
			d, err := n.Attest(pubKey, userData, nil)
			if err != nil {
				t.Fatal(err)
			}
			return d
		}
		otherPCR := make([]byte, 48)
		aPub, _ := api.Marshal(c.encl["a"].keys.Public())
		for _, tc := range []struct {
			name, want string
			doc        []byte
		}{
			{"another dev root", "chain", doc(other, c.pcr0, pub, mh)},
			{"changed measurement", "pcr0", doc(c.ca, append(otherPCR[:47], 1), pub, mh)},
			{"another cluster's manifest", "user_data", doc(c.ca, c.pcr0, pub, make([]byte, 32))},
			{"identity of another party", `names party "a"`, doc(c.ca, c.pcr0, aPub, mh)},
			{"garbage", "attestation", []byte{0x84, 0x01}},
		} {
			_, err := c.encl["c"].peerIdentity(ctx, &api.PeerIdentityRequest{PartyID: "b", Document: tc.doc})
			if api.CodeOf(err) != api.CodeAttestation || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s: %v, want an attestation refusal mentioning %q", tc.name, err, tc.want)
			}
		}
	})

	t.Run("replayed old document", func(t *testing.T) {
		ctx := context.Background()
		old, err := c.encl["b"].attest(ctx, &api.AttestRequest{Nonce: []byte("fresh")})
		if err != nil {
			t.Fatal(err)
		}
		c.nowMu.Lock()
		c.now = c.now.Add(maxDocAge + time.Minute)
		c.nowMu.Unlock()
		defer func() { c.nowMu.Lock(); c.now = c.now.Add(-maxDocAge - time.Minute); c.nowMu.Unlock() }()
		_, err = c.encl["c"].peerIdentity(ctx, &api.PeerIdentityRequest{PartyID: "b", Document: old.Document})
		if api.CodeOf(err) != api.CodeAttestation {
			t.Fatalf("document older than %s accepted: %v", maxDocAge, err)
		}
		if _, err := c.encl["c"].peer("b"); err == nil {
			t.Fatal("a refused document left the old identity of b in place")
		}
		c.nowMu.Lock()
		c.now = c.now.Add(-maxDocAge - time.Minute)
		c.nowMu.Unlock()
		c.connect()
		c.nowMu.Lock()
		c.now = c.now.Add(maxDocAge + time.Minute)
		c.nowMu.Unlock()
	})

	t.Run("restart from sealed blobs; swapped blob refused", func(t *testing.T) {
		// Party c restarts with the same token; a and b keep running.
		cfg := c.encl["c"].cfg
		// Put b's sealed share in c's store: c must refuse it.
		name := shareBlobName(key.KeyID, 0)
		c.hosts["c"].blobs[name] = c.hosts["b"].blobs[name]
		c.start("c", cfg.Sealer, cfg.Epochs, c.pcr0)
		c.connect()
		_, err := c.encl["c"].share(key.KeyID)
		if err == nil || !strings.Contains(err.Error(), `belongs to party "b"`) {
			t.Fatalf("swapped share: %v", err)
		}
		_, errs := sign("c", "a", "c")
		if errs["c"] == nil || !strings.Contains(errs["c"].Error(), "not usable on party") {
			t.Fatalf("signing with a refused share: %v", errs)
		}
	})
}
