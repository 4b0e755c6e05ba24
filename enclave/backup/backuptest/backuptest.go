// Package backuptest makes real backup files of a synthetic key for tests
// outside package backup (the CLI's): a three-party dev manifest with two
// recovery keys, a Shamir sharing (t = 1) of a random key shaped like
// tss-lib save data, and each party's enclave identity and dev NSM. The
// keys it makes protect nothing.
package backuptest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/bnb-chain/tss-lib/v2/crypto"
	"github.com/bnb-chain/tss-lib/v2/tss"

	"github.com/sealsign/sealsign/attestation/devnsm"
	"github.com/sealsign/sealsign/enclave/api"
	"github.com/sealsign/sealsign/enclave/backup"
	"github.com/sealsign/sealsign/enclave/channel"
	"github.com/sealsign/sealsign/governance/keys"
)

// Fixture is one synthetic cluster and key.
type Fixture struct {
	Manifest     []byte // JSON
	RecoveryKeys []*backup.RecoveryPrivateKey
	PublicKey    []byte
	Secret       *big.Int
	Algorithm    string
	KeyID        string

	t        testing.TB
	m        *api.Manifest
	mh       []byte
	recovery map[string]api.RecoveryKey
	signers  map[string]*signer
	ids, xs  []*big.Int
	points   [][]byte
	now      time.Time
}

// Parties are the fixture's parties, in tss-lib order.
var Parties = []string{"a", "b", "c"}

type signer struct {
	keys *channel.Keys
	nsm  *devnsm.NSM
	mh   []byte
}

func (s *signer) Sign(domain string, data []byte) []byte { return s.keys.Sign(domain, data) }
func (s *signer) Attest(nonce []byte) ([]byte, error) {
	pub, err := api.Marshal(s.keys.Public())
	if err != nil {
		return nil, err
	}
	return s.nsm.Attest(pub, s.mh, nonce)
}

// New makes a fixture for alg (api.AlgECDSASecp256k1 or api.AlgEdDSAEd25519).
func New(t testing.TB, alg string) *Fixture {
	t.Helper()
	f := &Fixture{t: t, Algorithm: alg, KeyID: strings.Repeat("cd", 16), now: time.Now(), recovery: map[string]api.RecoveryKey{}, signers: map[string]*signer{}}
	ca, err := devnsm.NewCA(rand.Reader, f.now)
	if err != nil {
		t.Fatal(err)
	}
	pcr0 := make([]byte, 48)
	rand.Read(pcr0)
	gov := &api.Governance{AdminQuorum: 2, Policy: []byte{1}}
	for _, id := range []string{"admin-1", "admin-2", "client-1"} {
		k, err := keys.Generate(id, id, keys.Ed25519)
		if err != nil {
			t.Fatal(err)
		}
		if id == "client-1" {
			gov.Clients = append(gov.Clients, k.Public)
		} else {
			gov.Admins = append(gov.Admins, k.Public)
		}
	}
	for _, r := range [][2]string{{"recovery-1", api.KEMX25519}, {"recovery-2", api.KEMMLKEM768X25519}} {
		k, err := backup.GenerateRecoveryKey(r[0], r[1])
		if err != nil {
			t.Fatal(err)
		}
		f.RecoveryKeys = append(f.RecoveryKeys, k)
		f.recovery[k.ID] = k.Public()
		gov.Recovery = append(gov.Recovery, k.Public())
	}
	m := api.Manifest{Version: 1, ClusterID: "test", Threshold: 1, DevRoots: []string{string(ca.CertPEM())}, Governance: gov}
	for _, id := range Parties {
		m.Parties = append(m.Parties, api.ManifestParty{ID: id, Kind: "dev", PCRs: map[string]string{"0": hex.EncodeToString(pcr0)}})
	}
	f.Manifest, _ = json.Marshal(m)
	if f.m, err = api.ParseManifest(f.Manifest); err != nil {
		t.Fatal(err)
	}
	f.mh, _ = f.m.Hash()
	for _, id := range Parties {
		nsm, err := devnsm.New(ca, "test-"+id, map[uint][]byte{0: pcr0}, rand.Reader, func() time.Time { return f.now })
		if err != nil {
			t.Fatal(err)
		}
		k, err := channel.NewKeys(id, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		f.signers[id] = &signer{keys: k, nsm: nsm, mh: f.mh}
	}
	c := tss.S256()
	if alg == api.AlgEdDSAEd25519 {
		c = tss.Edwards()
	}
	q := c.Params().N
	f.Secret, _ = rand.Int(rand.Reader, q)
	a, _ := rand.Int(rand.Reader, q)
	for range Parties {
		id, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 256))
		x := new(big.Int).Mul(a, id)
		x.Add(x, f.Secret).Mod(x, q)
		f.ids, f.xs = append(f.ids, id), append(f.xs, x)
		p := crypto.ScalarBaseMult(c, x)
		enc, err := backup.Encode(alg, p.X(), p.Y())
		if err != nil {
			t.Fatal(err)
		}
		f.points = append(f.points, enc)
	}
	p := crypto.ScalarBaseMult(c, f.Secret)
	f.PublicKey, _ = backup.Encode(alg, p.X(), p.Y())
	return f
}

// Backup is party's backup file, encrypted to both recovery keys.
func (f *Fixture) Backup(party string) []byte {
	f.t.Helper()
	i := -1
	for j, p := range Parties {
		if p == party {
			i = j
		}
	}
	if i < 0 {
		f.t.Fatalf("backuptest: no party %q", party)
	}
	h := &backup.Header{Format: backup.FormatV2, ClusterID: "test", ManifestHash: f.mh, KeyID: f.KeyID, Algorithm: f.Algorithm,
		Party: party, Threshold: 1, Parties: Parties, PublicKey: f.PublicKey, ShareID: f.ids[i].Bytes(), Point: f.points[i],
		Recipients: []string{"recovery-1", "recovery-2"}, CreatedMS: f.now.UnixMilli(), CeremonyID: "backup-test-0001"}
	c := tss.S256()
	if f.Algorithm == api.AlgEdDSAEd25519 {
		c = tss.Edwards()
	}
	type point struct {
		Curve  string
		Coords [2]*big.Int
	}
	sd := struct {
		Xi, ShareID *big.Int
		Ks          []*big.Int
		BigXj       []point
	}{Xi: f.xs[i], ShareID: f.ids[i], Ks: f.ids}
	for j := range f.ids {
		h.Shares = append(h.Shares, backup.PublicShare{ShareID: f.ids[j].Bytes(), Point: f.points[j]})
		p := crypto.ScalarBaseMult(c, f.xs[j])
		sd.BigXj = append(sd.BigXj, point{Curve: "x", Coords: [2]*big.Int{p.X(), p.Y()}})
	}
	js, _ := json.Marshal(sd)
	s := backup.Share{Format: backup.FormatV2, KeyID: f.KeyID, Algorithm: f.Algorithm, Party: party, Threshold: 1,
		Parties: Parties, PublicKey: f.PublicKey, SaveData: js}
	pt, err := s.Encode()
	if err != nil {
		f.t.Fatal(err)
	}
	h.ShareHash = backup.ShareHash(pt)
	b, err := backup.Make(h, pt, f.recovery, f.signers[party])
	if err != nil {
		f.t.Fatal(err)
	}
	return b
}
