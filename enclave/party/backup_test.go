package party

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"

	"github.com/sealsign/sealsign/enclave/api"
	"github.com/sealsign/sealsign/enclave/audit"
	"github.com/sealsign/sealsign/enclave/backup"
	"github.com/sealsign/sealsign/enclave/channel"
	"github.com/sealsign/sealsign/governance/ceremony"
	"github.com/sealsign/sealsign/governance/keys"
	"github.com/sealsign/sealsign/hsm/pkcs11"
)

// lifecycle is a ceremony of kind for key (epoch 0, every party, t=1),
// backing up to both recovery keys or restoring party c, changed by mod
// and signed by the fixture admins given (admin-1 and admin-2 when none).
func (c *cluster) lifecycle(kind string, key *api.SessionResult, mod func(*ceremony.Ceremony), signers ...int) []byte {
	c.t.Helper()
	if len(signers) == 0 {
		signers = []int{0, 1}
	}
	ceremonySeq++
	now := c.clock()
	cer := ceremony.Ceremony{
		Format: ceremony.FormatV1, ID: fmt.Sprintf("%s-test-%08d", kind, ceremonySeq), ClusterID: "test", Kind: kind,
		Algorithm: key.Algorithm, Parties: slices.Clone(c.ids), Threshold: 1, KeyID: key.KeyID,
		IssuedAt: now.Unix(), ExpiresAt: now.Add(10 * time.Minute).Unix(),
	}
	switch kind {
	case ceremony.KindBackup:
		cer.Recipients = []string{"recovery-1", "recovery-2"}
	case ceremony.KindRecover:
		cer.Party = "c"
	}
	if mod != nil {
		mod(&cer)
	}
	var by []*keys.PrivateKey
	for _, i := range signers {
		by = append(by, c.gov.admins[i])
	}
	b, err := ceremony.New(cer, by...)
	if err != nil {
		c.t.Fatal(err)
	}
	return b
}

func (c *cluster) parsedManifest() *api.Manifest {
	m, err := api.ParseManifest(c.manifest)
	if err != nil {
		c.t.Fatal(err)
	}
	return m
}

// backupAll has every party back up key under one ceremony and checks
// each backup verifies.
func (c *cluster) backupAll(key *api.SessionResult) map[string][]byte {
	c.t.Helper()
	cer := c.lifecycle(ceremony.KindBackup, key, nil)
	out := map[string][]byte{}
	for _, id := range c.ids {
		res, err := c.encl[id].backupShare(context.Background(), &api.BackupRequest{Ceremony: cer})
		if err != nil {
			c.t.Fatalf("backup on %s: %v", id, err)
		}
		v, err := backup.Verify(res.Backup, c.parsedManifest())
		if err != nil {
			c.t.Fatalf("backup of %s: %v", id, err)
		}
		if v.Header.Party != id || v.Header.KeyID != key.KeyID || string(v.Header.PublicKey) != string(key.PublicKey) {
			c.t.Fatalf("backup of %s names party %q key %q", id, v.Header.Party, v.Header.KeyID)
		}
		out[id] = res.Backup
	}
	return out
}

// replace starts party id afresh on the spare SoftHSM token with an empty
// host: its token, blobs and audit log are lost.
func (c *cluster) replace(id string) {
	c.t.Helper()
	tok, err := pkcs11.Open(c.hsm.URI("tok-spare", c.pin))
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { tok.Close() })
	sealer, err := tok.Sealer("seal", true)
	if err != nil {
		c.t.Fatal(err)
	}
	c.advance(time.Second)
	delete(c.hosts, id)
	c.start(id, sealer, tok, c.pcr0)
	c.connect()
	c.advance(time.Second)
}

// openFor decrypts a backup with every recovery key and seals the share to
// the identity given, as sealsign recover does offline; edit, when given,
// changes the share record first (a dishonest recovery operator).
func (c *cluster) openFor(file []byte, to api.Identity, edit ...func(*backup.Share)) []byte {
	c.t.Helper()
	v, err := backup.Verify(file, c.parsedManifest())
	if err != nil {
		c.t.Fatal(err)
	}
	s, err := v.Open(c.gov.recovery...)
	if err != nil {
		c.t.Fatal(err)
	}
	defer s.Clear()
	for _, e := range edit {
		e(s)
	}
	ct, err := backup.SealToEnclave(s, v.HeaderHash, to)
	if err != nil {
		c.t.Fatal(err)
	}
	return ct
}

func ceremonyEntries(t *testing.T, h *memHost, kind, keyID string) []*audit.Ceremony {
	var out []*audit.Ceremony
	for _, e := range auditEntries(t, h) {
		if b, ok := e.body.(*audit.Ceremony); ok && b.Kind == kind && b.KeyID == keyID {
			out = append(out, b)
		}
	}
	return out
}

// breakGlass opens the backups of parties with the recovery keys given
// and reconstructs the key.
func (c *cluster) breakGlass(files map[string][]byte, rks []*backup.RecoveryPrivateKey, parties ...string) (*backup.Reconstructed, error) {
	var vs []*backup.Verified
	var ss []*backup.Share
	for _, p := range parties {
		v, err := backup.Verify(files[p], c.parsedManifest())
		if err != nil {
			return nil, err
		}
		s, err := v.Open(rks...)
		if err != nil {
			return nil, err
		}
		vs, ss = append(vs, v), append(ss, s)
	}
	return backup.Reconstruct(vs, ss)
}

// TestBackupRecoverSign is the acceptance path: keygen, every party backs
// up, party c loses its token and is recovered into a fresh one from its
// backup, and {a, c} sign; then break-glass reconstructs the key.
func TestBackupRecoverSign(t *testing.T) {
	c := newCluster(t)
	ctx := context.Background()
	key := c.keygen(api.AlgEdDSAEd25519)
	files := c.backupAll(key)
	for _, id := range c.ids {
		es := ceremonyEntries(t, c.hosts[id], "backup", key.KeyID)
		if len(es) != 1 || !slices.Equal(es[0].AuthorisedBy, []string{"admin-1", "admin-2"}) || es[0].Detail["recipients"] != "recovery-1,recovery-2" || len(es[0].Detail["header_hash"]) != 64 {
			t.Fatalf("%s: backup audit entries %+v", id, es)
		}
	}

	t.Run("backup refusals", func(t *testing.T) {
		used := c.lifecycle(ceremony.KindBackup, key, nil)
		if _, err := c.encl["a"].backupShare(ctx, &api.BackupRequest{Ceremony: used}); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name string
			cer  []byte
			want string
		}{
			{"no ceremony", nil, "no ceremony"},
			{"one admin", c.lifecycle(ceremony.KindBackup, key, nil, 0), "1 valid admin signatures of 2 needed"},
			{"replayed", used, "replay"},
			{"wrong epoch", c.lifecycle(ceremony.KindBackup, key, func(x *ceremony.Ceremony) { x.Epoch = 1 }), "epoch 1, share's current epoch 0"},
			{"wrong threshold", c.lifecycle(ceremony.KindBackup, key, func(x *ceremony.Ceremony) { x.Threshold = 2 }), "threshold 2, key's 1"},
			{"unknown recipient", c.lifecycle(ceremony.KindBackup, key, func(x *ceremony.Ceremony) { x.Recipients = []string{"recovery-1", "recovery-9"} }), `"recovery-9" is not a recovery key`},
			{"other kind", c.lifecycle(ceremony.KindRecover, key, nil), `kind "recover", want "backup"`},
			{"other cluster", c.lifecycle(ceremony.KindBackup, key, func(x *ceremony.Ceremony) { x.ClusterID = "other" }), "wrong cluster"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := c.encl["a"].backupShare(ctx, &api.BackupRequest{Ceremony: tc.cer})
				if api.CodeOf(err) != api.CodeRejected || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("got %v, want rejection containing %q", err, tc.want)
				}
			})
		}
	})

	c.replace("c")
	if _, err := c.encl["c"].share(key.KeyID); api.CodeOf(err) != api.CodeNotFound {
		t.Fatalf("fresh party c already knows the key: %v", err)
	}
	me := c.encl["c"].keys.Public()
	share := c.openFor(files["c"], me)

	t.Run("recover refusals", func(t *testing.T) {
		stranger, _ := channel.NewKeys("c", rand.Reader)
		tampered := func(edit func(*backup.File)) []byte {
			f, _, err := backup.Parse(files["c"])
			if err != nil {
				t.Fatal(err)
			}
			edit(f)
			b, err := f.Encode()
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
		for _, tc := range []struct {
			name        string
			cer, file   []byte
			share       []byte
			want        string
			wantBackupE error
		}{
			{"no ceremony", nil, files["c"], share, "no ceremony", nil},
			{"one admin", c.lifecycle(ceremony.KindRecover, key, nil, 1), files["c"], share, "1 valid admin signatures of 2 needed", nil},
			{"ceremony for another party", c.lifecycle(ceremony.KindRecover, key, func(x *ceremony.Ceremony) { x.Party = "b" }), files["c"], share, `restores party "b"`, nil},
			{"another party's backup", c.lifecycle(ceremony.KindRecover, key, nil), files["b"], c.openFor(files["b"], me), `the backup is of party "b"'s share`, nil},
			{"wrong epoch", c.lifecycle(ceremony.KindRecover, key, func(x *ceremony.Ceremony) { x.Epoch = 3 }), files["c"], share, "epoch 3, share's current epoch 0", nil},
			{"tampered header", c.lifecycle(ceremony.KindRecover, key, nil), tampered(func(f *backup.File) {
				_, h, _ := backup.Parse(files["c"])
				h.CreatedMS++
				f.Header, _ = h.Encode()
			}), share, "signature invalid", backup.ErrSignature},
			{"tampered signature", c.lifecycle(ceremony.KindRecover, key, nil), tampered(func(f *backup.File) { f.Signature[5] ^= 1 }), share, "signature invalid", backup.ErrSignature},
			{"tampered ciphertext", c.lifecycle(ceremony.KindRecover, key, nil), tampered(func(f *backup.File) { f.Ciphertexts[1].Ciphertext[9] ^= 1 }), share, "signature invalid", backup.ErrSignature},
			{"share sealed to another enclave", c.lifecycle(ceremony.KindRecover, key, nil), files["c"], c.openFor(files["c"], stranger.Public()), "not sealed to this enclave", nil},
			{"share of another backup", c.lifecycle(ceremony.KindRecover, key, nil), files["c"], c.openFor(files["a"], me), "not sealed to this enclave", nil},
			// The operator re-seals the share; the header's share hash
			// makes every byte of the record the backed-up one, not only
			// the fields the header's points check.
			{"save data field added", c.lifecycle(ceremony.KindRecover, key, nil), files["c"], c.openFor(files["c"], me, func(s *backup.Share) {
				s.SaveData = append([]byte(`{"PaillierSK":{"N":12345},`), s.SaveData[1:]...)
			}), "not the header's share hash", nil},
			{"chain code substituted", c.lifecycle(ceremony.KindRecover, key, nil), files["c"], c.openFor(files["c"], me, func(s *backup.Share) {
				s.ChainCode = make([]byte, 32)
			}), "not the header's share hash", nil},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := c.encl["c"].recoverShare(ctx, &api.RecoverRequest{Ceremony: tc.cer, Backup: tc.file, Share: tc.share})
				if api.CodeOf(err) != api.CodeRejected || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("got %v, want rejection containing %q", err, tc.want)
				}
				if tc.wantBackupE != nil {
					if _, err := backup.Verify(tc.file, c.parsedManifest()); !errors.Is(err, tc.wantBackupE) {
						t.Fatalf("backup verify: %v, want %v", err, tc.wantBackupE)
					}
				}
			})
		}
		if _, err := c.encl["c"].share(key.KeyID); err == nil {
			t.Fatal("a refused recovery left a share behind")
		}
	})

	t.Run("host cannot store", func(t *testing.T) {
		h := c.hosts["c"]
		h.mu.Lock()
		h.storeDown = true
		h.mu.Unlock()
		defer func() { h.mu.Lock(); h.storeDown = false; h.mu.Unlock() }()
		_, err := c.encl["c"].recoverShare(ctx, &api.RecoverRequest{Ceremony: c.lifecycle(ceremony.KindRecover, key, nil), Backup: files["c"], Share: share})
		if err == nil || !strings.Contains(err.Error(), "unwritable") {
			t.Fatalf("recovery with the store down: %v", err)
		}
		if _, err := c.encl["c"].share(key.KeyID); err == nil {
			t.Fatal("a share was loaded that the host never stored")
		}
		es := ceremonyEntries(t, h, "recover", key.KeyID)
		if len(es) != 1 || es[0].Outcome != "failed" || !slices.Equal(es[0].AuthorisedBy, []string{"admin-1", "admin-2"}) {
			t.Fatalf("failed recovery audited as %+v", es)
		}
	})

	res, err := c.encl["c"].recoverShare(ctx, &api.RecoverRequest{Ceremony: c.lifecycle(ceremony.KindRecover, key, nil), Backup: files["c"], Share: share})
	if err != nil {
		t.Fatal(err)
	}
	if res.KeyID != key.KeyID || string(res.PublicKey) != string(key.PublicKey) {
		t.Fatalf("recovered key %q %x", res.KeyID, res.PublicKey)
	}
	if _, ok := c.hosts["c"].blobs[shareBlobName(key.KeyID, 0)]; !ok {
		t.Fatal("recovered share not stored with the host")
	}
	if es := ceremonyEntries(t, c.hosts["c"], "recover", key.KeyID); len(es) != 2 || es[1].Outcome != "done" || !slices.Equal(es[1].AuthorisedBy, []string{"admin-1", "admin-2"}) || es[1].Detail["party"] != "c" {
		t.Fatalf("recover audit entries %+v", es)
	}
	if _, err := c.encl["c"].recoverShare(ctx, &api.RecoverRequest{Ceremony: c.lifecycle(ceremony.KindRecover, key, nil), Backup: files["c"], Share: share}); err == nil || !strings.Contains(err.Error(), "already holds a share") {
		t.Fatalf("second recovery: %v", err)
	}

	msg := []byte("after recovery")
	sres, errs := c.session("a", api.ProposeRequest{Kind: api.KindSign, KeyID: key.KeyID, Parties: []string{"a", "c"}, Request: c.raw(key.KeyID, msg)})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if !ed25519.Verify(key.PublicKey, msg, sres["c"].Signature) {
		t.Fatal("signature by {a, c} after recovery does not verify")
	}
	// The recovered share is sealed in the new token: it survives a restart.
	c.restart("c")
	msg = []byte("after restart")
	sres, errs = c.session("c", api.ProposeRequest{Kind: api.KindSign, KeyID: key.KeyID, Parties: []string{"b", "c"}, Request: c.raw(key.KeyID, msg)})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if !ed25519.Verify(key.PublicKey, msg, sres["b"].Signature) {
		t.Fatal("signature by {b, c} after restart does not verify")
	}

	t.Run("break-glass", func(t *testing.T) {
		// One recovery key of the two opens no backup.
		for _, rk := range c.gov.recovery {
			if _, err := c.breakGlass(files, []*backup.RecoveryPrivateKey{rk}, "a", "c"); !errors.Is(err, backup.ErrRecipients) || !strings.Contains(err.Error(), "opening needs the recovery key of every recipient") {
				t.Fatalf("break-glass with %s alone: %v", rk.ID, err)
			}
		}
		r, err := c.breakGlass(files, c.gov.recovery, "a", "c")
		if err != nil {
			t.Fatal(err)
		}
		defer r.Clear()
		if string(r.PublicKey) != string(key.PublicKey) || !slices.Equal(r.Parties, []string{"a", "c"}) {
			t.Fatalf("reconstructed %x from %v", r.PublicKey, r.Parties)
		}
		if _, err := c.breakGlass(files, c.gov.recovery, "b"); err == nil || !strings.Contains(err.Error(), "needs t+1 = 2") {
			t.Fatalf("one backup: %v", err)
		}
	})
}

// TestBackupBreakGlassECDSA reconstructs a real tss-lib secp256k1 key
// from two parties' backups. Slow on the first ECDSA cluster of the test
// binary (a real keygen, about 20 s); shared afterwards.
func TestBackupBreakGlassECDSA(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: ECDSA keygen (run without -short)")
	}
	c, key := ecdsaCluster(t, nil)
	c.advance(time.Second)
	files := c.backupAll(key)
	r, err := c.breakGlass(files, c.gov.recovery, "b", "c")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Clear()
	if got := secp256k1.PrivKeyFromBytes(r.Scalar).PubKey().SerializeCompressed(); string(got) != string(key.PublicKey) {
		t.Fatalf("reconstructed key's public key %x, want %x", got, key.PublicKey)
	}
	if _, err := c.breakGlass(files, c.gov.recovery, "a"); err == nil {
		t.Fatal("one backup reconstructed a key")
	}
	// A real ECDSA share with its Paillier key substituted (decodable, the
	// secret share and public points untouched) is refused by the enclave's
	// recovery check (OpenInEnclave, as recoverShare calls it).
	v, err := backup.Verify(files["c"], c.parsedManifest())
	if err != nil {
		t.Fatal(err)
	}
	keys := c.encl["c"].keys
	ct := c.openFor(files["c"], keys.Public(), func(s *backup.Share) {
		var sd map[string]json.RawMessage
		if err := json.Unmarshal(s.SaveData, &sd); err != nil {
			t.Fatal(err)
		}
		if _, ok := sd["PaillierSK"]; !ok {
			t.Fatalf("ECDSA save data has no PaillierSK field")
		}
		sd["PaillierSK"] = json.RawMessage(`{"N":3233,"LambdaN":780,"PhiN":3120}`)
		s.SaveData, _ = json.Marshal(sd)
	})
	if _, err := v.OpenInEnclave(keys, keys.Public(), ct); !errors.Is(err, backup.ErrShare) || !strings.Contains(err.Error(), "not the header's share hash") {
		t.Fatalf("share with a substituted Paillier key: %v", err)
	}
	if s, err := v.OpenInEnclave(keys, keys.Public(), c.openFor(files["c"], keys.Public())); err != nil {
		t.Fatalf("the share as backed up: %v", err)
	} else {
		s.Clear()
	}
}

// TestRecoveredReshareEpochSurvivesRestart: a share recovered at epoch > 0
// (any key ever refreshed) is the share that was in force when it was
// backed up, so it is restored committed: after a restart it is still in
// force, not an uncommitted "pending" epoch no commit could ever settle
// (from review 24a9138).
func TestRecoveredReshareEpochSurvivesRestart(t *testing.T) {
	c := newCluster(t)
	ctx := context.Background()
	key := c.keygen(api.AlgEdDSAEd25519)
	abc := []string{"a", "b", "c"}
	c.mustReshare(key, abc, 1, abc, 1, 0, 1)
	cer := c.lifecycle(ceremony.KindBackup, key, func(x *ceremony.Ceremony) { x.Epoch = 1 })
	res, err := c.encl["c"].backupShare(ctx, &api.BackupRequest{Ceremony: cer})
	if err != nil {
		t.Fatal(err)
	}
	c.replace("c")
	share := c.openFor(res.Backup, c.encl["c"].keys.Public())
	if _, err := c.encl["c"].recoverShare(ctx, &api.RecoverRequest{Ceremony: c.lifecycle(ceremony.KindRecover, key, func(x *ceremony.Ceremony) { x.Epoch = 1 }),
		Backup: res.Backup, Share: share}); err != nil {
		t.Fatal(err)
	}
	c.signRaw(t, key, []byte("recovered, before restart"), "a", "c")
	c.restart("c")
	if _, err := c.encl["c"].share(key.KeyID); err != nil {
		t.Fatalf("recovered epoch-1 share lost after restart: %v", err)
	}
	c.signRaw(t, key, []byte("recovered, after restart"), "a", "c")
}
