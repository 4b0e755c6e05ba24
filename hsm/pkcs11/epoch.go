package pkcs11

import (
	"errors"
	"fmt"

	"github.com/sealsign/sealsign/hsm"
)

var _ hsm.EpochKeys = (*Token)(nil)

// EpochLabel is the CKA_LABEL of the sealing key of (keyID, epoch).
func EpochLabel(keyID string, epoch uint64) string {
	return fmt.Sprintf("sealsign-share/%s/%d", keyID, epoch)
}

// EpochSealer returns the sealer of (keyID, epoch): an AES key of its own
// on the token (Sealer's rules), made when create is set.
func (t *Token) EpochSealer(keyID string, epoch uint64, create bool) (hsm.Sealer, error) {
	s, err := t.Sealer(EpochLabel(keyID, epoch), create)
	if err != nil {
		if errors.Is(err, ErrKeyMissing) {
			return nil, fmt.Errorf("%w: key %s epoch %d on token %q: %v", hsm.ErrEpochDestroyed, keyID, epoch, t.label, err)
		}
		return nil, err
	}
	return s, nil
}

// DestroyEpoch destroys the AES key of (keyID, epoch); a key already gone is
// not an error.
func (t *Token) DestroyEpoch(keyID string, epoch uint64) error {
	err := t.DestroyKey(EpochLabel(keyID, epoch))
	if errors.Is(err, ErrKeyMissing) {
		return nil
	}
	return err
}
