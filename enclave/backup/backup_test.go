package backup

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/decred/dcrd/dcrec/edwards/v2"
	"github.com/decred/dcrd/dcrec/secp256k1/v4"

	"github.com/sealsign/sealsign/attestation/devnsm"
	"github.com/sealsign/sealsign/enclave/api"
	"github.com/sealsign/sealsign/enclave/channel"
	"github.com/sealsign/sealsign/governance/canon"
	"github.com/sealsign/sealsign/governance/keys"
)

// fixture is a three-party dev cluster's manifest with two recovery keys,
// and a synthetic Shamir sharing (degree 1) of a random key, one party's
// enclave identity and dev NSM: everything a backup needs except tss-lib,
// whose save-data JSON shape the shares imitate.
type fixture struct {
	t        testing.TB
	m        *api.Manifest
	mh       []byte
	rk       []*RecoveryPrivateKey
	recovery map[string]api.RecoveryKey
	signers  map[string]*testSigner
	now      time.Time
	alg      string
	secret   *big.Int
	ids, xs  []*big.Int
	pub      []byte
	points   [][]byte
}

type testSigner struct {
	keys *channel.Keys
	nsm  *devnsm.NSM
	mh   []byte
}

func (s *testSigner) Sign(domain string, data []byte) []byte { return s.keys.Sign(domain, data) }
func (s *testSigner) Attest(nonce []byte) ([]byte, error) {
	pub, err := api.Marshal(s.keys.Public())
	if err != nil {
		return nil, err
	}
	return s.nsm.Attest(pub, s.mh, nonce)
}

func newFixture(t testing.TB, alg string) *fixture {
	t.Helper()
	now := time.Now()
	ca, err := devnsm.NewCA(rand.Reader, now)
	if err != nil {
		t.Fatal(err)
	}
	pcr0 := make([]byte, 48)
	rand.Read(pcr0)
	f := &fixture{t: t, now: now, alg: alg, signers: map[string]*testSigner{}, recovery: map[string]api.RecoveryKey{}}
	for _, k := range [][2]string{{"recovery-1", api.KEMX25519}, {"recovery-2", api.KEMMLKEM768X25519}} {
		rk, err := GenerateRecoveryKey(k[0], k[1])
		if err != nil {
			t.Fatal(err)
		}
		f.rk = append(f.rk, rk)
		f.recovery[rk.ID] = rk.Public()
	}
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
	for _, rk := range f.rk {
		gov.Recovery = append(gov.Recovery, rk.Public())
	}
	m := api.Manifest{Version: 1, ClusterID: "test", Threshold: 1, DevRoots: []string{string(ca.CertPEM())}, Governance: gov}
	for _, id := range []string{"a", "b", "c"} {
		m.Parties = append(m.Parties, api.ManifestParty{ID: id, Kind: "dev", PCRs: map[string]string{"0": hex.EncodeToString(pcr0)}})
	}
	raw, _ := json.Marshal(m)
	if f.m, err = api.ParseManifest(raw); err != nil {
		t.Fatal(err)
	}
	if f.mh, err = f.m.Hash(); err != nil {
		t.Fatal(err)
	}
	clock := func() time.Time { return f.now }
	for _, id := range []string{"a", "b", "c"} {
		nsm, err := devnsm.New(ca, "test-"+id, map[uint][]byte{0: pcr0}, rand.Reader, clock)
		if err != nil {
			t.Fatal(err)
		}
		k, err := channel.NewKeys(id, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		f.signers[id] = &testSigner{keys: k, nsm: nsm, mh: f.mh}
	}
	// f(x) = secret + a·x mod q, shares at three distinct ids.
	c, _ := curveOf(alg)
	f.secret, _ = rand.Int(rand.Reader, c.q)
	a, _ := rand.Int(rand.Reader, c.q)
	for i := 0; i < 3; i++ {
		// 256-bit ids, as tss-lib's party keys: above Ed25519's L.
		id, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 256))
		x := new(big.Int).Mul(a, id)
		x.Add(x, f.secret).Mod(x, c.q)
		f.ids, f.xs = append(f.ids, id), append(f.xs, x)
		p, _ := c.baseMult(x)
		enc, err := Encode(alg, p.X(), p.Y())
		if err != nil {
			t.Fatal(err)
		}
		f.points = append(f.points, enc)
	}
	p, _ := c.baseMult(f.secret)
	f.pub, _ = Encode(alg, p.X(), p.Y())
	return f
}

var partyIndex = map[string]int{"a": 0, "b": 1, "c": 2}

// header is party's backup header for recipients (both keys when none).
func (f *fixture) header(party string, recipients ...string) *Header {
	if len(recipients) == 0 {
		recipients = []string{"recovery-1", "recovery-2"}
	}
	i := partyIndex[party]
	h := &Header{Format: FormatV2, ClusterID: "test", ManifestHash: f.mh, KeyID: strings.Repeat("ab", 16), Algorithm: f.alg,
		Epoch: 0, Party: party, Threshold: 1, Parties: []string{"a", "b", "c"}, PublicKey: f.pub,
		ShareID: f.ids[i].Bytes(), Point: f.points[i], Recipients: recipients, CreatedMS: f.now.UnixMilli(), CeremonyID: "backup-test-0001",
		ShareHash: ShareHash(f.share(party))}
	for j := range f.ids {
		h.Shares = append(h.Shares, PublicShare{ShareID: f.ids[j].Bytes(), Point: f.points[j]})
	}
	return h
}

// share is party's share record, with tss-lib-shaped save data.
func (f *fixture) share(party string) []byte {
	i := partyIndex[party]
	c, _ := curveOf(f.alg)
	type point struct {
		Curve  string
		Coords [2]*big.Int
	}
	sd := struct {
		Xi, ShareID *big.Int
		Ks          []*big.Int
		BigXj       []point
	}{Xi: f.xs[i], ShareID: f.ids[i], Ks: f.ids}
	for _, x := range f.xs {
		p, _ := c.baseMult(x)
		sd.BigXj = append(sd.BigXj, point{Curve: "x", Coords: [2]*big.Int{p.X(), p.Y()}})
	}
	js, _ := json.Marshal(sd)
	s := Share{Format: FormatV2, KeyID: strings.Repeat("ab", 16), Algorithm: f.alg, Party: party, Threshold: 1,
		Parties: []string{"a", "b", "c"}, PublicKey: f.pub, SaveData: js}
	b, err := s.Encode()
	if err != nil {
		f.t.Fatal(err)
	}
	return b
}

func (f *fixture) make(party string, recipients ...string) []byte {
	f.t.Helper()
	b, err := Make(f.header(party, recipients...), f.share(party), f.recovery, f.signers[party])
	if err != nil {
		f.t.Fatal(err)
	}
	return b
}

var algs = []string{api.AlgECDSASecp256k1, api.AlgEdDSAEd25519}

func TestMakeVerifyOpen(t *testing.T) {
	for _, alg := range algs {
		t.Run(alg, func(t *testing.T) {
			f := newFixture(t, alg)
			b := f.make("b")
			v, err := Verify(b, f.m)
			if err != nil {
				t.Fatal(err)
			}
			if v.Header.Party != "b" || v.Identity.PartyID != "b" {
				t.Fatalf("verified as party %q identity %q", v.Header.Party, v.Identity.PartyID)
			}
			// Every recipient's key is needed, in any order.
			for _, ks := range [][]*RecoveryPrivateKey{{f.rk[0], f.rk[1]}, {f.rk[1], f.rk[0]}} {
				s, err := v.Open(ks...)
				if err != nil {
					t.Fatalf("open with both keys: %v", err)
				}
				if s.Party != "b" || s.KeyID != v.Header.KeyID {
					t.Fatalf("opened share of %q key %q", s.Party, s.KeyID)
				}
			}
			for _, tc := range []struct {
				name string
				keys []*RecoveryPrivateKey
				msg  string
			}{
				{"recovery-1 alone", f.rk[:1], `opening needs the recovery key of every recipient (recovery-1, recovery-2); missing "recovery-2"`},
				{"recovery-2 alone", f.rk[1:], `missing "recovery-1"`},
				{"no key", nil, `missing "recovery-1", "recovery-2"`},
				{"a key twice", []*RecoveryPrivateKey{f.rk[0], f.rk[0]}, `recovery key "recovery-1" given twice`},
			} {
				if _, err := v.Open(tc.keys...); !errors.Is(err, ErrRecipients) || !strings.Contains(err.Error(), tc.msg) {
					t.Fatalf("%s: got %v, want %v containing %q", tc.name, err, ErrRecipients, tc.msg)
				}
			}
		})
	}
}

func TestBreakGlass(t *testing.T) {
	for _, alg := range algs {
		t.Run(alg, func(t *testing.T) {
			f := newFixture(t, alg)
			var vs []*Verified
			var ss []*Share
			for _, p := range []string{"a", "c"} {
				v, err := Verify(f.make(p), f.m)
				if err != nil {
					t.Fatal(err)
				}
				// Break-glass needs every recipient too: one key opens
				// no backup, however many backups it is given.
				if _, err := v.Open(f.rk[1]); !errors.Is(err, ErrRecipients) {
					t.Fatalf("opened with one of two recovery keys: %v", err)
				}
				s, err := v.Open(f.rk...)
				if err != nil {
					t.Fatal(err)
				}
				vs, ss = append(vs, v), append(ss, s)
			}
			r, err := Reconstruct(vs, ss)
			if err != nil {
				t.Fatal(err)
			}
			if new(big.Int).SetBytes(r.Scalar).Cmp(f.secret) != 0 {
				t.Fatal("reconstructed scalar is not the secret")
			}
			// Independently of the package's arithmetic: the scalar's
			// public key is the key's.
			var pub []byte
			if alg == api.AlgECDSASecp256k1 {
				pub = secp256k1.PrivKeyFromBytes(r.Scalar).PubKey().SerializeCompressed()
			} else {
				_, edPub, err := edwards.PrivKeyFromScalar(r.Scalar)
				if err != nil {
					t.Fatal(err)
				}
				pub = edPub.Serialize()
			}
			if hex.EncodeToString(pub) != hex.EncodeToString(f.pub) {
				t.Fatalf("reconstructed key's public key %x, want %x", pub, f.pub)
			}

			if _, err := Reconstruct(vs[:1], ss[:1]); err == nil || !strings.Contains(err.Error(), "needs t+1 = 2") {
				t.Fatalf("one backup: %v", err)
			}
			if _, err := Reconstruct([]*Verified{vs[0], vs[0]}, []*Share{ss[0], ss[0]}); err == nil || !strings.Contains(err.Error(), `two backups of party "a"`) {
				t.Fatalf("same party twice: %v", err)
			}
		})
	}
}

// resign re-signs a modified file with party's real key and attester, so
// a test reaches the checks behind the signature.
func (f *fixture) resign(party string, file *File) []byte {
	s := f.signers[party]
	var err error
	if file.Attestation, err = s.Attest(HeaderHash(file.Header)); err != nil {
		f.t.Fatal(err)
	}
	msg, _ := signedMessage(file.Header, file.Ciphertexts, file.Sealed)
	file.Signature = s.Sign(DomainSignature, msg)
	b, err := file.Encode()
	if err != nil {
		f.t.Fatal(err)
	}
	return b
}

func decodeFile(t *testing.T, b []byte) (*File, *Header) {
	t.Helper()
	f, h, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return f, h
}

func encodeHeader(t *testing.T, h *Header) []byte {
	b, err := canon.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestVerifyTampered(t *testing.T) {
	f := newFixture(t, api.AlgEdDSAEd25519)
	good := f.make("b")
	other := f.make("a")
	for _, tc := range []struct {
		name   string
		mutate func() []byte
		want   error
		msg    string
	}{
		{"header field", func() []byte {
			file, h := decodeFile(t, good)
			h.CreatedMS++
			file.Header = encodeHeader(t, h)
			b, _ := file.Encode()
			return b
		}, ErrSignature, "over this header"},
		{"ciphertext", func() []byte {
			file, _ := decodeFile(t, good)
			file.Ciphertexts[0].Ciphertext[40] ^= 1
			b, _ := file.Encode()
			return b
		}, ErrSignature, "these ciphertexts"},
		{"sealed share", func() []byte {
			file, _ := decodeFile(t, good)
			file.Sealed[7] ^= 1
			b, _ := file.Encode()
			return b
		}, ErrSignature, "not made by party"},
		{"format 1", func() []byte {
			file, _ := decodeFile(t, good)
			file.Format = FormatV1
			b, _ := canon.Marshal(file)
			return b
		}, ErrMalformed, "file format 1 is retired (any one recovery key opened it)"},
		{"header format 1", func() []byte {
			file, h := decodeFile(t, good)
			h.Format = FormatV1
			file.Header = encodeHeader(t, h)
			b, _ := file.Encode()
			return b
		}, ErrMalformed, "header format 1 is retired"},
		{"no share hash", func() []byte {
			file, h := decodeFile(t, good)
			h.ShareHash = nil
			file.Header = encodeHeader(t, h)
			b, _ := file.Encode()
			return b
		}, ErrMalformed, "share hash is 0 bytes, want 32"},
		{"signature", func() []byte {
			file, _ := decodeFile(t, good)
			file.Signature[0] ^= 1
			b, _ := file.Encode()
			return b
		}, ErrSignature, `party "b"`},
		{"attestation", func() []byte {
			file, _ := decodeFile(t, good)
			file.Attestation[len(file.Attestation)-3] ^= 1
			b, _ := file.Encode()
			return b
		}, ErrAttestation, `party "b"`},
		{"attestation of another backup", func() []byte {
			file, _ := decodeFile(t, good)
			of, _ := decodeFile(t, other)
			file.Attestation = of.Attestation
			b, _ := file.Encode()
			return b
		}, ErrAttestation, `identity is party "a"`},
		{"party claimed", func() []byte {
			file, h := decodeFile(t, good)
			h.Party = "c"
			file.Header = encodeHeader(t, h)
			return f.resign("b", file)
		}, ErrAttestation, `identity is party "b", the header's party is "c"`},
		{"public share point", func() []byte {
			file, h := decodeFile(t, good)
			h.Shares[2].Point = f.points[0]
			file.Header = encodeHeader(t, h)
			return f.resign("b", file)
		}, ErrInconsistent, "does not lie on the polynomial"},
		{"public key", func() []byte {
			file, h := decodeFile(t, good)
			h.PublicKey = f.points[1]
			file.Header = encodeHeader(t, h)
			return f.resign("b", file)
		}, ErrInconsistent, "interpolate to another key"},
		{"own point", func() []byte {
			file, h := decodeFile(t, good)
			h.Point = f.points[0]
			file.Header = encodeHeader(t, h)
			return f.resign("b", file)
		}, ErrInconsistent, "differs from its entry 1"},
		{"recipient dropped", func() []byte {
			file, _ := decodeFile(t, good)
			file.Ciphertexts = file.Ciphertexts[:1]
			b, _ := file.Encode()
			return b
		}, ErrRecipients, "1 ciphertexts for 2 recipients"},
		{"recipient not in manifest", func() []byte {
			file, h := decodeFile(t, good)
			h.Recipients[1], file.Ciphertexts[1].Recipient = "recovery-9", "recovery-9"
			file.Header = encodeHeader(t, h)
			return f.resign("b", file)
		}, ErrRecipients, `"recovery-9" is not a recovery key of the manifest`},
		{"kem relabelled", func() []byte {
			file, _ := decodeFile(t, good)
			file.Ciphertexts[1].KEM = api.KEMX25519
			return f.resign("b", file)
		}, ErrRecipients, `says kem "x25519"`},
		{"other manifest", func() []byte {
			file, h := decodeFile(t, good)
			h.ManifestHash = make([]byte, 32)
			file.Header = encodeHeader(t, h)
			return f.resign("b", file)
		}, ErrManifest, "manifest 0000000000000000"},
		{"trailing byte", func() []byte { return append(append([]byte{}, good...), 0) }, ErrMalformed, "file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Verify(tc.mutate(), f.m)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v, want %v containing %q", err, tc.want, tc.msg)
			}
		})
	}
}

func TestOpenRefusals(t *testing.T) {
	f := newFixture(t, api.AlgECDSASecp256k1)
	v, err := Verify(f.make("b", "recovery-1"), f.m)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Open(f.rk[1]); !errors.Is(err, ErrRecipients) {
		t.Fatalf("not a recipient: %v", err)
	}
	impostor, _ := GenerateRecoveryKey("recovery-1", api.KEMX25519)
	if _, err := v.Open(impostor); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("wrong key under the right id: %v", err)
	}
	// A ciphertext moved under another (validly signed) header does not
	// open: the HPKE info binds the header hash.
	a, err := Verify(f.make("a", "recovery-1"), f.m)
	if err != nil {
		t.Fatal(err)
	}
	moved := *v.File
	moved.Ciphertexts = a.File.Ciphertexts
	vm, err := Verify(f.resign("b", &moved), f.m)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := vm.Open(f.rk[0]); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("moved ciphertext: %v", err)
	}
	// A share that is not the header's is refused after decryption.
	h := f.header("b", "recovery-1")
	if _, err := ParseShare(f.share("a"), h); !errors.Is(err, ErrShare) {
		t.Fatalf("another party's share: %v", err)
	}
}

// TestOpenPartsBound: a data key part only opens in its own backup, for
// its own recipient, and the parts of one backup do not open another's
// sealed share.
func TestOpenPartsBound(t *testing.T) {
	f := newFixture(t, api.AlgEdDSAEd25519)
	a, err := Verify(f.make("a"), f.m)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Verify(f.make("b"), f.m)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		mutate func(*File)
		msg    string
	}{
		{"part of another backup", func(x *File) { x.Ciphertexts[1] = a.File.Ciphertexts[1] }, `part for recovery key "recovery-2"`},
		{"parts of another backup", func(x *File) { x.Ciphertexts = a.File.Ciphertexts }, `part for recovery key "recovery-1"`},
		{"sealed share of another backup", func(x *File) { x.Sealed = a.File.Sealed }, "do not open the sealed share"},
		{"parts swapped between recipients", func(x *File) {
			x.Ciphertexts[0].Ciphertext, x.Ciphertexts[1].Ciphertext = x.Ciphertexts[1].Ciphertext, x.Ciphertexts[0].Ciphertext
		}, `part for recovery key "recovery-1"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			moved := *b.File
			moved.Ciphertexts = slices.Clone(b.File.Ciphertexts)
			tc.mutate(&moved)
			vm, err := Verify(f.resign("b", &moved), f.m)
			if err != nil {
				t.Fatalf("a validly signed file does not verify: %v", err)
			}
			_, err = vm.Open(f.rk...)
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v, want an error containing %q", err, tc.msg)
			}
		})
	}
}

// TestShareHash: the header commits to the exact share record, so a record
// with any field changed (here the save data's Paillier key, or a byte of
// the chain code) is refused even though it decodes and its secret share
// and public points are the header's.
func TestShareHash(t *testing.T) {
	f := newFixture(t, api.AlgECDSASecp256k1)
	v, err := Verify(f.make("c"), f.m)
	if err != nil {
		t.Fatal(err)
	}
	s, err := v.Open(f.rk...)
	if err != nil {
		t.Fatal(err)
	}
	target, _ := channel.NewKeys("c", rand.Reader)
	for _, tc := range []struct {
		name   string
		mutate func(*Share)
	}{
		{"paillier key substituted", func(x *Share) {
			var sd map[string]any
			if err := json.Unmarshal(x.SaveData, &sd); err != nil {
				t.Fatal(err)
			}
			sd["PaillierSK"] = map[string]any{"N": 12345, "LambdaN": 6789, "PhiN": 6789}
			x.SaveData, _ = json.Marshal(sd)
		}},
		{"chain code added", func(x *Share) { x.ChainCode = make([]byte, 32) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := *s
			m.SaveData = slices.Clone(s.SaveData)
			tc.mutate(&m)
			pt, _ := m.Encode()
			if _, err := ParseShare(pt, v.Header); !errors.Is(err, ErrShare) || !strings.Contains(err.Error(), "not the header's share hash") {
				t.Fatalf("modified record parsed: %v", err)
			}
			ct, err := SealToEnclave(&m, v.HeaderHash, target.Public())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := v.OpenInEnclave(target, target.Public(), ct); !errors.Is(err, ErrShare) || !strings.Contains(err.Error(), "not the header's share hash") {
				t.Fatalf("modified record restored: %v", err)
			}
		})
	}
	// Make refuses a header whose share hash is not the record's.
	h := f.header("c")
	h.ShareHash = ShareHash(f.share("a"))
	if _, err := Make(h, f.share("c"), f.recovery, f.signers["c"]); err == nil || !strings.Contains(err.Error(), "share hash") {
		t.Fatalf("make with another record's hash: %v", err)
	}
}

func TestSealToEnclave(t *testing.T) {
	f := newFixture(t, api.AlgEdDSAEd25519)
	v, err := Verify(f.make("c"), f.m)
	if err != nil {
		t.Fatal(err)
	}
	s, err := v.Open(f.rk...)
	if err != nil {
		t.Fatal(err)
	}
	target, _ := channel.NewKeys("c", rand.Reader)
	ct, err := SealToEnclave(s, v.HeaderHash, target.Public())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.OpenInEnclave(target, target.Public(), ct); err != nil {
		t.Fatal(err)
	}
	other, _ := channel.NewKeys("c", rand.Reader)
	if _, err := v.OpenInEnclave(other, other.Public(), ct); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("another enclave: %v", err)
	}
	a, _ := Verify(f.make("a"), f.m)
	if _, err := a.OpenInEnclave(target, target.Public(), ct); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("under another backup: %v", err)
	}
}

func TestRecoveryKeyFile(t *testing.T) {
	for _, kem := range []string{api.KEMX25519, api.KEMMLKEM768X25519} {
		t.Run(kem, func(t *testing.T) {
			k, err := GenerateRecoveryKey("recovery-x", kem)
			if err != nil {
				t.Fatal(err)
			}
			b, err := k.MarshalPEM()
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "r.key")
			if err := WriteFileAtomic(path, b, 0o600, true); err != nil {
				t.Fatal(err)
			}
			if err := WriteFileAtomic(path, b, 0o600, true); err == nil {
				t.Fatal("exclusive write replaced an existing file")
			}
			st, _ := os.Stat(path)
			if st.Mode().Perm() != 0o600 {
				t.Fatalf("mode %o", st.Mode().Perm())
			}
			got, err := LoadRecoveryKey(path)
			if err != nil {
				t.Fatal(err)
			}
			if hex.EncodeToString(got.Public().PublicKey) != hex.EncodeToString(k.Public().PublicKey) || got.KEM != kem {
				t.Fatal("reloaded key differs")
			}
			if err := k.Public().Validate(); err != nil {
				t.Fatal(err)
			}
			os.Chmod(path, 0o644)
			if _, err := LoadRecoveryKey(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
				t.Fatalf("world-readable key: %v", err)
			}
		})
	}
}
