package party

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"math/big"
	"slices"
	"strings"

	"github.com/bnb-chain/tss-lib/v2/crypto"

	"github.com/sealsign/sealsign/enclave/api"
	"github.com/sealsign/sealsign/enclave/audit"
	"github.com/sealsign/sealsign/enclave/backup"
	"github.com/sealsign/sealsign/enclave/channel"
	"github.com/sealsign/sealsign/governance/ceremony"
)

// verifyLifecycleCeremony verifies a signed lifecycle ceremony of kind
// (admin quorum, this cluster, valid now) and that it is not yet run here;
// it returns the ceremony and the admins whose signatures counted. It does
// not record it: the caller admits it (e.ceremonies.Admit) once every
// other check passed.
func (e *Enclave) verifyLifecycleCeremony(me, kind string, signed []byte) (*ceremony.Ceremony, []string, error) {
	if e.gov == nil {
		return nil, nil, api.Errorf(api.CodeRejected, "party %s: %s refused: this cluster's manifest has no governance section, so no admins can authorise it and no recovery keys are named", me, kind)
	}
	admins := e.gov.sets.Admins
	if len(signed) == 0 {
		return nil, nil, api.Errorf(api.CodeRejected, "party %s: %s refused: no ceremony; it needs a %s ceremony signed by %d of the cluster's admins", me, kind, kind, admins.Quorum)
	}
	c, by, err := ceremony.Verify(signed, admins, e.manifest.ClusterID, e.cfg.Clock(), 0)
	if err != nil {
		return nil, nil, api.Errorf(api.CodeRejected, "party %s: %s refused: %v", me, kind, err)
	}
	if c.Kind != kind {
		return nil, nil, api.Errorf(api.CodeRejected, "party %s: %s refused: ceremony %q is of kind %q, want %q", me, kind, c.ID, c.Kind, kind)
	}
	if err := e.ceremonies.Check(c); err != nil {
		return nil, nil, api.Errorf(api.CodeRejected, "party %s: %s refused: %v", me, kind, err)
	}
	return c, by, nil
}

// ceremonyMismatch lists how a lifecycle ceremony differs from the key it
// is applied to.
func ceremonyMismatch(c *ceremony.Ceremony, keyID, alg string, epoch uint64, parties []string, threshold int) []string {
	var bad []string
	if c.KeyID != keyID {
		bad = append(bad, fmt.Sprintf("key %q, share %q", c.KeyID, keyID))
	}
	if c.Algorithm != alg {
		bad = append(bad, fmt.Sprintf("algorithm %q, share %q", c.Algorithm, alg))
	}
	if c.Epoch != epoch {
		bad = append(bad, fmt.Sprintf("epoch %d, share's current epoch %d", c.Epoch, epoch))
	}
	if !slices.Equal(c.Parties, parties) {
		bad = append(bad, fmt.Sprintf("parties %s, key's %s", strings.Join(c.Parties, ","), strings.Join(parties, ",")))
	}
	if c.Threshold != threshold {
		bad = append(bad, fmt.Sprintf("threshold %d, key's %d", c.Threshold, threshold))
	}
	return bad
}

// backupSigner is the enclave's identity as a backup.Signer.
type backupSigner struct {
	e    *Enclave
	keys *channel.Keys
}

func (s backupSigner) Sign(domain string, data []byte) []byte { return s.keys.Sign(domain, data) }

func (s backupSigner) Attest(nonce []byte) ([]byte, error) {
	pub, err := api.Marshal(s.keys.Public())
	if err != nil {
		return nil, err
	}
	return s.e.cfg.Attester.Attest(pub, s.e.manifestHash, nonce)
}

// backupShare exports this party's share of a key, encrypted to the
// recovery keys an admin-quorum backup ceremony names (enclave/backup).
// The ceremony must name the key, its current epoch, its committee and
// threshold, and recipients from the manifest. The share is checked for
// consistency first (x_i·G is this party's public share; the public shares
// interpolate to the public key), so a backup never preserves a corrupt
// share. The backup leaves the enclave only after its audit entry is
// durable.
func (e *Enclave) backupShare(ctx context.Context, req *api.BackupRequest) (*api.BackupResponse, error) {
	me, keys, err := e.readyRestored()
	if err != nil {
		return nil, err
	}
	c, by, err := e.verifyLifecycleCeremony(me, ceremony.KindBackup, req.Ceremony)
	if err != nil {
		return nil, err
	}
	k, err := e.share(c.KeyID)
	if err != nil {
		return nil, err
	}
	rec := &k.rec
	bad := ceremonyMismatch(c, rec.KeyID, rec.Algorithm, rec.Epoch, rec.Parties, rec.Threshold)
	for _, r := range c.Recipients {
		if _, ok := e.gov.sets.Recovery[r]; !ok {
			bad = append(bad, fmt.Sprintf("recipient %q is not a recovery key of the manifest", r))
		}
	}
	if len(bad) > 0 {
		return nil, api.Errorf(api.CodeRejected, "party %s: backup refused: ceremony %q does not match key %q: %s", me, c.ID, c.KeyID, strings.Join(bad, "; "))
	}
	h, err := e.backupHeader(me, k, c)
	if err != nil {
		return nil, err
	}
	share := backup.Share{Format: backup.FormatV2, KeyID: rec.KeyID, Algorithm: rec.Algorithm, Epoch: rec.Epoch, Party: me,
		Threshold: rec.Threshold, Parties: rec.Parties, PublicKey: rec.PublicKey, SaveData: rec.SaveData, ChainCode: rec.ChainCode}
	pt, err := share.Encode()
	if err != nil {
		return nil, err
	}
	defer clear(pt)
	// The header commits to these exact bytes, so a recovery restores the
	// whole record (Paillier keys, NTilde, H1/H2, peers' keys), not only
	// the parts the header's points check.
	h.ShareHash = backup.ShareHash(pt)
	// The share must be one the header describes (x_i·G, share ids, public
	// shares); Make then checks the header itself (interpolation).
	checked, err := backup.ParseShare(pt, h)
	if err != nil {
		return nil, api.Errorf(api.CodeInternal, "party %s: backup refused: this party's share of key %q is inconsistent: %v", me, c.KeyID, err)
	}
	checked.Clear()
	// Past this point the ceremony is spent on this party.
	if err := e.ceremonies.Admit(c, e.cfg.Clock()); err != nil {
		return nil, api.Errorf(api.CodeRejected, "party %s: backup refused: %v", me, err)
	}
	file, err := backup.Make(h, pt, e.gov.sets.Recovery, backupSigner{e: e, keys: keys})
	if err != nil {
		err = api.Errorf(api.CodeInternal, "party %s: backup of key %q: %v", me, c.KeyID, err)
		e.auditCeremonyFailed(ctx, me, c, by, err)
		return nil, err
	}
	hdr, _ := h.Encode()
	entry := audit.Ceremony{
		Kind: ceremony.KindBackup, KeyID: c.KeyID, Epoch: c.Epoch, AuthorisedBy: by, Parties: rec.Parties, Threshold: uint64(rec.Threshold),
		PublicKey: rec.PublicKey, Outcome: "done",
		Detail: map[string]string{"ceremony_id": c.ID, "recipients": strings.Join(c.Recipients, ","),
			"header_hash": hex.EncodeToString(backup.HeaderHash(hdr)), "backup_hash": hex.EncodeToString(backup.Hash(file))},
	}
	if err := e.auditCeremony(ctx, me, entry); err != nil {
		return nil, err
	}
	e.cfg.Log.Info("backup made", "key", c.KeyID, "epoch", c.Epoch, "recipients", strings.Join(c.Recipients, ","), "ceremony", c.ID)
	return &api.BackupResponse{Backup: file}, nil
}

// auditCeremony appends a ceremony entry and seals the governance state
// again, so the sealed audit head covers it (as finishKeygen does).
func (e *Enclave) auditCeremony(ctx context.Context, me string, entry audit.Ceremony) error {
	if err := e.auditAppend(ctx, audit.TypeCeremony, entry); err != nil {
		return err
	}
	e.gov.mu.Lock()
	defer e.gov.mu.Unlock()
	return e.sealGovernance(ctx, me)
}

// backupHeader describes this party's share of k from its tss-lib save
// data: its share id and point and every party's.
func (e *Enclave) backupHeader(me string, k *loadedKey, c *ceremony.Ceremony) (*backup.Header, error) {
	var xi, shareID *big.Int
	var ks []*big.Int
	var bigXj []*crypto.ECPoint
	switch {
	case k.ecdsa != nil:
		xi, shareID, ks, bigXj = k.ecdsa.Xi, k.ecdsa.ShareID, k.ecdsa.Ks, k.ecdsa.BigXj
	case k.eddsa != nil:
		xi, shareID, ks, bigXj = k.eddsa.Xi, k.eddsa.ShareID, k.eddsa.Ks, k.eddsa.BigXj
	}
	if xi == nil || shareID == nil || len(ks) != len(bigXj) || len(ks) != len(k.rec.Parties) {
		return nil, api.Errorf(api.CodeInternal, "party %s: share of key %q has no usable save data (%d share ids, %d public shares, %d parties)", me, k.rec.KeyID, len(ks), len(bigXj), len(k.rec.Parties))
	}
	h := &backup.Header{
		Format: backup.FormatV2, ClusterID: e.manifest.ClusterID, ManifestHash: e.manifestHash, KeyID: k.rec.KeyID,
		Algorithm: k.rec.Algorithm, Epoch: k.rec.Epoch, Party: me, Threshold: k.rec.Threshold, Parties: k.rec.Parties,
		PublicKey: k.rec.PublicKey, ShareID: shareID.Bytes(), Recipients: c.Recipients, CreatedMS: e.cfg.Clock().UnixMilli(), CeremonyID: c.ID,
	}
	for j := range ks {
		if ks[j] == nil || bigXj[j] == nil {
			return nil, api.Errorf(api.CodeInternal, "party %s: share of key %q: public share %d missing", me, k.rec.KeyID, j)
		}
		pt, err := backup.Encode(k.rec.Algorithm, bigXj[j].X(), bigXj[j].Y())
		if err != nil {
			return nil, api.Errorf(api.CodeInternal, "party %s: share of key %q: public share %d: %v", me, k.rec.KeyID, j, err)
		}
		h.Shares = append(h.Shares, backup.PublicShare{ShareID: ks[j].Bytes(), Point: pt})
		if ks[j].Cmp(shareID) == 0 {
			h.Point = pt
		}
	}
	if h.Point == nil {
		return nil, api.Errorf(api.CodeInternal, "party %s: share of key %q: own share id is not among the key's", me, k.rec.KeyID)
	}
	return h, nil
}

// recoverShare restores this party's share of a key from its backup into
// this enclave's hardware (a new token: the lost one's epoch key is gone).
// It needs a recover ceremony naming this party and the backup's key,
// epoch and committee; the backup must verify (made and attested by this
// party's enclave under this manifest, signed, consistent); and the share,
// opened offline with a recovery key, must come sealed to this enclave's
// identity for this backup and match the backup's header. The share is
// then sealed under the epoch's hardware key, stored by the host and
// loaded.
func (e *Enclave) recoverShare(ctx context.Context, req *api.RecoverRequest) (*api.RecoverResponse, error) {
	me, keys, err := e.readyRestored()
	if err != nil {
		return nil, err
	}
	c, by, err := e.verifyLifecycleCeremony(me, ceremony.KindRecover, req.Ceremony)
	if err != nil {
		return nil, err
	}
	if c.Party != me {
		return nil, api.Errorf(api.CodeRejected, "party %s: recovery refused: ceremony %q restores party %q", me, c.ID, c.Party)
	}
	v, err := backup.Verify(req.Backup, e.manifest)
	if err != nil {
		return nil, api.Errorf(api.CodeRejected, "party %s: recovery refused: %v", me, err)
	}
	h := v.Header
	if h.Party != me {
		return nil, api.Errorf(api.CodeRejected, "party %s: recovery refused: the backup is of party %q's share", me, h.Party)
	}
	if bad := ceremonyMismatch(c, h.KeyID, h.Algorithm, h.Epoch, h.Parties, h.Threshold); len(bad) > 0 {
		return nil, api.Errorf(api.CodeRejected, "party %s: recovery refused: ceremony %q does not match the backup: %s", me, c.ID, strings.Join(bad, "; "))
	}
	if _, err := e.share(h.KeyID); err == nil {
		return nil, api.Errorf(api.CodeRejected, "party %s: recovery refused: this party already holds a share of key %q", me, h.KeyID)
	}
	s, err := v.OpenInEnclave(keys, keys.Public(), req.Share)
	if err != nil {
		return nil, api.Errorf(api.CodeRejected, "party %s: recovery refused: %v", me, err)
	}
	defer s.Clear()
	// The backed-up share was this party's share in force (backupShare
	// exports only the committed epoch), so it is restored committed:
	// placeShares puts only committed records in force after a restart,
	// and a recovered record has no reshare a commit could settle.
	rec := &shareRecord{Version: 1, KeyID: s.KeyID, Algorithm: s.Algorithm, Threshold: s.Threshold, Parties: s.Parties,
		PublicKey: s.PublicKey, SaveData: bytes.Clone(s.SaveData), Epoch: s.Epoch, ChainCode: s.ChainCode, Committed: true}
	// rec.SaveData stays: the loaded key keeps it (a later backup exports it).
	k, err := rec.load()
	if err != nil {
		return nil, api.Errorf(api.CodeRejected, "party %s: recovery refused: %v", me, err)
	}
	// Past this point the ceremony is spent on this party.
	if err := e.ceremonies.Admit(c, e.cfg.Clock()); err != nil {
		return nil, api.Errorf(api.CodeRejected, "party %s: recovery refused: %v", me, err)
	}
	if err := e.storeRecovered(ctx, me, rec); err != nil {
		e.auditCeremonyFailed(ctx, me, c, by, err)
		return nil, err
	}
	entry := audit.Ceremony{
		Kind: ceremony.KindRecover, KeyID: rec.KeyID, Epoch: rec.Epoch, AuthorisedBy: by, Parties: rec.Parties, Threshold: uint64(rec.Threshold),
		PublicKey: rec.PublicKey, Outcome: "done",
		Detail: map[string]string{"ceremony_id": c.ID, "party": me, "backup_ceremony_id": h.CeremonyID,
			"header_hash": hex.EncodeToString(v.HeaderHash), "backup_hash": hex.EncodeToString(backup.Hash(req.Backup))},
	}
	if err := e.auditCeremony(ctx, me, entry); err != nil {
		return nil, err
	}
	e.mu.Lock()
	e.shares[rec.KeyID] = k
	delete(e.shareErrs, rec.KeyID)
	e.mu.Unlock()
	e.cfg.Log.Info("share recovered", "key", rec.KeyID, "epoch", rec.Epoch, "ceremony", c.ID)
	return &api.RecoverResponse{KeyID: rec.KeyID, Algorithm: rec.Algorithm, Epoch: rec.Epoch, Threshold: rec.Threshold, Parties: rec.Parties, PublicKey: rec.PublicKey}, nil
}

// storeRecovered seals a recovered share under its epoch's hardware key
// (created in this party's token) and has the host store it, governance
// state first as finishKeygen does.
func (e *Enclave) storeRecovered(ctx context.Context, me string, rec *shareRecord) error {
	blob, err := e.sealShare(me, rec)
	if err != nil {
		return err
	}
	e.gov.mu.Lock()
	err = e.sealGovernance(ctx, me)
	e.gov.mu.Unlock()
	if err != nil {
		return err
	}
	if err := e.callHost(ctx, api.MethodStore, api.StoreRequest{Blob: api.NamedBlob{Name: shareBlobName(rec.KeyID, rec.Epoch), Blob: blob}}, nil); err != nil {
		return api.Errorf(api.CodeUnavailable, "party %s: host did not store the recovered share of key %q: %v", me, rec.KeyID, err)
	}
	return nil
}

// auditCeremonyFailed records that an admitted (spent) ceremony failed
// here, with who authorised it; the error text names no secret. If the
// audit log itself is down, the failure is only logged.
func (e *Enclave) auditCeremonyFailed(ctx context.Context, me string, c *ceremony.Ceremony, by []string, cause error) {
	entry := audit.Ceremony{Kind: c.Kind, KeyID: c.KeyID, Epoch: c.Epoch, AuthorisedBy: by, Parties: c.Parties, Threshold: uint64(c.Threshold),
		Outcome: "failed", Error: cause.Error(), Detail: map[string]string{"ceremony_id": c.ID}}
	if c.Party != "" {
		entry.Detail["party"] = c.Party
	}
	if err := e.auditCeremony(ctx, me, entry); err != nil {
		e.cfg.Log.Warn("ceremony failure not audited", "ceremony", c.ID, "err", err)
	}
}
