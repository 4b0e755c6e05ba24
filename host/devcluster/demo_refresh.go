package devcluster

import (
	"crypto/sha256"
	"fmt"
	"slices"
	"strings"

	"github.com/sealsign/sealsign/governance/tx"
)

// RefreshResult is the demo's refresh of its EdDSA key.
type RefreshResult struct {
	KeyID     string              `json:"key_id"`
	FromEpoch uint64              `json:"from_epoch"`
	ToEpoch   uint64              `json:"to_epoch"`
	PublicKey string              `json:"public_key"` // unchanged
	Destroyed map[string][]uint64 `json:"destroyed"`  // party → epochs whose sealing keys it destroyed
	// SignatureOK: a signature with the new shares verifies under the
	// unchanged public key.
	SignatureOK bool `json:"signature_ok"`
}

// refreshStep refreshes the EdDSA key (new shares, same key), shows each
// party destroying the old epoch, and signs with the new shares.
func (d *demo) refreshStep() error {
	r := &d.res.Refresh
	if err := d.step("refresh_eddsa", "proactive refresh of the EdDSA key: new shares for the same key, old epoch crypto-shredded (a ceremony admin-1 and admin-2 sign)", func() error {
		before, err := d.a().Key(d.ctx, d.edKey.ID)
		if err != nil {
			return err
		}
		res, err := d.c.Reshare(d.ctx, "a", d.edKey.ID, nil, 0)
		if err != nil {
			return err
		}
		if res.Key.PublicKey != d.edKey.PublicKey {
			return fmt.Errorf("refresh changed the public key: %s, was %s", res.Key.PublicKey, d.edKey.PublicKey)
		}
		r.KeyID, r.FromEpoch, r.ToEpoch, r.PublicKey, r.Destroyed = d.edKey.ID, before.Epoch, res.Epoch, res.Key.PublicKey, map[string][]uint64{}
		var lines []string
		for _, c := range res.Commits {
			r.Destroyed[c.PartyID] = c.Destroyed
			lines = append(lines, fmt.Sprintf("%s %s, destroyed epoch %v", c.PartyID, c.Outcome, c.Destroyed))
		}
		slices.Sort(lines)
		fmt.Fprintf(d.out, "  key %s: epoch %d → %d, public key unchanged; %s\n", r.KeyID, r.FromEpoch, r.ToEpoch, strings.Join(lines, "; "))
		return nil
	}); err != nil {
		return err
	}
	return d.step("sign_eddsa_after_refresh", "threshold EdDSA signature with the refreshed shares (signers: a, b)", func() error {
		digest := sha256.Sum256([]byte(demoStatement + " (after refresh)"))
		st, err := wantSigned(d.submit(d.edKey.ID, tx.KindRaw, digest[:], "a", "b"))
		if err != nil {
			return err
		}
		if err := VerifyEd25519(d.edKey.PublicKey, digest[:], st.Result.Signatures[0]); err != nil {
			return err
		}
		r.SignatureOK = true
		fmt.Fprintf(d.out, "  request %s signed at epoch %d; verified with crypto/ed25519 under the unchanged public key\n", st.RequestID, r.ToEpoch)
		return nil
	})
}
