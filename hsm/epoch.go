package hsm

import "errors"

// EpochKeys is a hardware backend that keeps a separate sealing key for
// each epoch of each threshold key, and can destroy one. Shares of a key
// are sealed under the key of their epoch, so destroying an epoch's key
// after a refresh or reshare makes every copy of that epoch's sealed
// shares — including ones an attacker took from the host's disk earlier —
// permanently unopenable (crypto-shredding).
//
// Implementations: the PKCS#11 token (one AES key object per epoch) and the
// TPM (one NV index per epoch).
type EpochKeys interface {
	// EpochSealer returns the sealer for (keyID, epoch). With create it
	// makes the key if it does not exist; without, a missing key is an
	// error wrapping ErrEpochDestroyed.
	EpochSealer(keyID string, epoch uint64, create bool) (Sealer, error)
	// DestroyEpoch deletes the key of (keyID, epoch) from the hardware.
	// Destroying a key that does not exist is not an error (a crash may
	// have interrupted an earlier destroy).
	DestroyEpoch(keyID string, epoch uint64) error
}

// ErrEpochDestroyed: the sealing key of the epoch a blob names does not
// exist (it was destroyed after a refresh or reshare, or never made on
// this hardware).
var ErrEpochDestroyed = errors.New("hsm: the sealing key of this epoch does not exist (destroyed, or never created on this hardware)")
