//go:build cgo && !nopkcs11

package pkcs11

import (
	"errors"
	"testing"

	"github.com/sealsign/sealsign/hsm"
)

var epochAAD = []byte("party-a/key-1/epoch/share")

func epochSealerOf(t *testing.T, tok *Token, keyID string, epoch uint64, create bool) hsm.Sealer {
	t.Helper()
	s, err := tok.EpochSealer(keyID, epoch, create)
	if err != nil {
		t.Fatalf("EpochSealer(%q, %d, %t): %v", keyID, epoch, create, err)
	}
	return s
}

func sealString(t *testing.T, s hsm.Sealer, pt string) []byte {
	t.Helper()
	b, err := s.Seal(epochAAD, []byte(pt))
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	return b
}

func wantOpens(t *testing.T, s hsm.Sealer, blob []byte, pt string) {
	t.Helper()
	got, err := s.Unseal(epochAAD, blob)
	if err != nil || string(got) != pt {
		t.Fatalf("Unseal = %q, %v; want %q", got, err, pt)
	}
}

func wantEpochDestroyed(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, hsm.ErrEpochDestroyed) || errors.Is(err, hsm.ErrTampered) {
		t.Fatalf("%s: %v; want hsm.ErrEpochDestroyed, not hsm.ErrTampered", what, err)
	}
}

func TestEpochDestroyShreds(t *testing.T) {
	env := newEnv(t)
	tok := openToken(t, newToken(t, env, "party-a"))
	s0 := epochSealerOf(t, tok, "key-1", 0, true)
	s1 := epochSealerOf(t, tok, "key-1", 1, true)
	b0, b1 := sealString(t, s0, "share epoch 0"), sealString(t, s1, "share epoch 1")
	wantOpens(t, epochSealerOf(t, tok, "key-1", 0, false), b0, "share epoch 0")
	if _, err := s1.Unseal(epochAAD, b0); !errors.Is(err, hsm.ErrTampered) {
		t.Fatalf("epoch 1 opening an epoch 0 blob: %v; want hsm.ErrTampered", err)
	}

	if err := tok.DestroyEpoch("key-1", 0); err != nil {
		t.Fatalf("DestroyEpoch(key-1, 0): %v", err)
	}
	_, err := tok.EpochSealer("key-1", 0, false)
	wantEpochDestroyed(t, "EpochSealer(key-1, 0, create=false) after destroy", err)
	// A sealer handed out before the destroy fails as a missing key, an
	// outage-class error, never as tampering.
	if _, err := s0.Unseal(epochAAD, b0); !errors.Is(err, ErrKeyMissing) || errors.Is(err, hsm.ErrTampered) {
		t.Fatalf("Unseal of an epoch 0 blob by the old sealer after destroy: %v; want ErrKeyMissing, not hsm.ErrTampered", err)
	}
	wantOpens(t, s1, b1, "share epoch 1")

	for _, epoch := range []uint64{0, 0, 7} {
		if err := tok.DestroyEpoch("key-1", epoch); err != nil {
			t.Fatalf("DestroyEpoch(key-1, %d) of a missing epoch: %v", epoch, err)
		}
	}

	// A re-created epoch has a new key: the old blob stays shredded.
	if _, err := epochSealerOf(t, tok, "key-1", 0, true).Unseal(epochAAD, b0); !errors.Is(err, hsm.ErrTampered) {
		t.Fatalf("Unseal of an old epoch 0 blob under a re-created epoch 0: %v; want hsm.ErrTampered", err)
	}
}

func TestEpochNeverCreated(t *testing.T) {
	env := newEnv(t)
	tok := openToken(t, newToken(t, env, "party-a"))
	_, err := tok.EpochSealer("key-1", 3, false)
	wantEpochDestroyed(t, "EpochSealer of an epoch never made", err)
}

func TestEpochKeysIndependent(t *testing.T) {
	env := newEnv(t)
	tok := openToken(t, newToken(t, env, "party-a"))
	a := epochSealerOf(t, tok, "key-a", 1, true)
	b := epochSealerOf(t, tok, "key-b", 1, true)
	ba, bb := sealString(t, a, "a"), sealString(t, b, "b")
	if _, err := b.Unseal(epochAAD, ba); !errors.Is(err, hsm.ErrTampered) {
		t.Fatalf("key-b epoch 1 opening key-a's blob: %v; want hsm.ErrTampered", err)
	}
	if err := tok.DestroyEpoch("key-a", 1); err != nil {
		t.Fatal(err)
	}
	_, err := tok.EpochSealer("key-a", 1, false)
	wantEpochDestroyed(t, "key-a epoch 1 after destroy", err)
	wantOpens(t, b, bb, "b")
	wantOpens(t, epochSealerOf(t, tok, "key-b", 1, false), bb, "b")
}

// Epoch keys are token objects: they survive closing and reopening the
// token, and so does a destroy.
func TestEpochSurvivesReopen(t *testing.T) {
	env := newEnv(t)
	uri := newToken(t, env, "party-a")
	tok, err := Open(uri)
	if err != nil {
		t.Fatal(err)
	}
	b1 := sealString(t, epochSealerOf(t, tok, "key-1", 1, true), "share")
	epochSealerOf(t, tok, "key-1", 2, true)
	if err := tok.DestroyEpoch("key-1", 2); err != nil {
		t.Fatal(err)
	}
	if err := tok.Close(); err != nil {
		t.Fatal(err)
	}

	tok = openToken(t, uri)
	wantOpens(t, epochSealerOf(t, tok, "key-1", 1, false), b1, "share")
	_, err = tok.EpochSealer("key-1", 2, false)
	wantEpochDestroyed(t, "key-1 epoch 2 destroyed before the reopen", err)
}
