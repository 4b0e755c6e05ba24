package party

import (
	"crypto/ed25519"
	"crypto/elliptic"
	"encoding/json"
	"fmt"
	"math/big"

	"github.com/bnb-chain/tss-lib/v2/common"
	ecdsakeygen "github.com/bnb-chain/tss-lib/v2/ecdsa/keygen"
	ecdsasigning "github.com/bnb-chain/tss-lib/v2/ecdsa/signing"
	eddsakeygen "github.com/bnb-chain/tss-lib/v2/eddsa/keygen"
	eddsasigning "github.com/bnb-chain/tss-lib/v2/eddsa/signing"
	"github.com/bnb-chain/tss-lib/v2/tss"
	"github.com/decred/dcrd/dcrec/edwards/v2"
	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	secpecdsa "github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"

	"github.com/sealsign/sealsign/enclave/api"
	"github.com/sealsign/sealsign/enclave/session"
)

// protocol adapts one tss-lib protocol to the session runner.
type protocol struct {
	curve      elliptic.Curve
	typePrefix string
	build      session.Build
	helloExtra []byte           // session.Config.HelloExtra
	reshare    *session.Reshare // session.Config.Reshare (build unused)
}

// forward turns a typed end channel into the runner's result channel; it
// exits when the session is done so no goroutine outlives it.
func forward[T any](end <-chan T, done <-chan struct{}) <-chan any {
	res := make(chan any, 1)
	go func() {
		select {
		case v := <-end:
			res <- v
		case <-done:
		}
	}()
	return res
}

func keygenProtocol(alg string, pre *ecdsakeygen.LocalPreParams, done <-chan struct{}) protocol {
	switch alg {
	case api.AlgECDSASecp256k1:
		return protocol{curve: tss.S256(), typePrefix: "binance.tsslib.ecdsa.keygen.", build: func(params *tss.Parameters, out chan<- tss.Message) (tss.Party, <-chan any, error) {
			end := make(chan *ecdsakeygen.LocalPartySaveData, 1)
			// Never SetNoProofMod/SetNoProofFac: they disable the BitForge checks.
			p := ecdsakeygen.NewLocalParty(params, out, end, *pre)
			return p, forward(end, done), nil
		}}
	default:
		return protocol{curve: tss.Edwards(), typePrefix: "binance.tsslib.eddsa.keygen.", build: func(params *tss.Parameters, out chan<- tss.Message) (tss.Party, <-chan any, error) {
			end := make(chan *eddsakeygen.LocalPartySaveData, 1)
			p := eddsakeygen.NewLocalParty(params, out, end)
			return p, forward(end, done), nil
		}}
	}
}

// signProtocol signs msg with k, or with its BIP-32 child d when d is not nil.
func signProtocol(k *loadedKey, d *derived, msg []byte, done <-chan struct{}) protocol {
	m := new(big.Int).SetBytes(msg)
	switch k.rec.Algorithm {
	case api.AlgECDSASecp256k1:
		save := k.ecdsa
		return protocol{curve: tss.S256(), typePrefix: "binance.tsslib.ecdsa.signing.", build: func(params *tss.Parameters, out chan<- tss.Message) (tss.Party, <-chan any, error) {
			end := make(chan *common.SignatureData, 1)
			if d != nil {
				p, err := childSigningParty(d, save, m, params, out, end, len(msg))
				if err != nil {
					return nil, nil, err
				}
				return p, forward(end, done), nil
			}
			p := ecdsasigning.NewLocalParty(m, params, *save, out, end, len(msg))
			return p, forward(end, done), nil
		}}
	default:
		save := k.eddsa
		return protocol{curve: tss.Edwards(), typePrefix: "binance.tsslib.eddsa.signing.", build: func(params *tss.Parameters, out chan<- tss.Message) (tss.Party, <-chan any, error) {
			end := make(chan *common.SignatureData, 1)
			p := eddsasigning.NewLocalParty(m, params, *save, out, end, len(msg))
			return p, forward(end, done), nil
		}}
	}
}

// shareRecord is the sealed content of a key share. Version 1; append fields only.
type shareRecord struct {
	Version   uint8    `cbor:"1,keyasint"`
	KeyID     string   `cbor:"2,keyasint"`
	Algorithm string   `cbor:"3,keyasint"`
	Threshold int      `cbor:"4,keyasint"`
	Parties   []string `cbor:"5,keyasint"`
	PublicKey []byte   `cbor:"6,keyasint"`
	SaveData  []byte   `cbor:"7,keyasint"` // tss-lib LocalPartySaveData, JSON
	// Epoch counts the key's reshares: 0 from keygen, +1 per refresh or
	// reshare. Each epoch's shares are sealed under that epoch's hardware
	// key (Config.Epochs) and use that epoch's tss-lib party keys
	// (session.EpochPartyKey).
	Epoch uint64 `cbor:"8,keyasint,omitempty"`
	// ChainCode is the key's BIP-32 chain code (secp256k1 keys), agreed at
	// keygen from every party's secret contribution; it survives reshares.
	ChainCode []byte `cbor:"9,keyasint,omitempty"`
	// Committed: the epoch is in force. Keygen's epoch 0 always is; a
	// reshared epoch is sealed pending and sealed again committed once
	// every member of its committee holds it (reshare.go).
	Committed bool `cbor:"10,keyasint,omitempty"`
	// PrevEpoch and ReshareID: the epoch a reshare started from and its
	// proposal id (reshared epochs only).
	PrevEpoch uint64 `cbor:"11,keyasint,omitempty"`
	ReshareID []byte `cbor:"12,keyasint,omitempty"`
}

// committed reports whether the record's epoch is in force.
func (rec *shareRecord) committed() bool { return rec.Committed || rec.Epoch == 0 }

// loadedKey is a share in enclave memory.
type loadedKey struct {
	rec   shareRecord
	ecdsa *ecdsakeygen.LocalPartySaveData
	eddsa *eddsakeygen.LocalPartySaveData
}

// newShareRecord turns a keygen output into a record and its public key.
func newShareRecord(p *session.Proposal, out any) (*shareRecord, error) {
	rec := &shareRecord{Version: 1, KeyID: p.KeyID, Algorithm: p.Algorithm, Threshold: p.Threshold, Parties: p.Parties}
	var err error
	switch v := out.(type) {
	case *ecdsakeygen.LocalPartySaveData:
		rec.PublicKey, err = secpPublicKey(v.ECDSAPub.X(), v.ECDSAPub.Y())
		if err == nil {
			rec.SaveData, err = json.Marshal(v)
		}
	case *eddsakeygen.LocalPartySaveData:
		rec.PublicKey, err = edPublicKey(v.EDDSAPub.X(), v.EDDSAPub.Y())
		if err == nil {
			rec.SaveData, err = json.Marshal(v)
		}
	default:
		err = fmt.Errorf("unexpected keygen output %T", out)
	}
	if err != nil {
		return nil, fmt.Errorf("party: keygen output: %w", err)
	}
	return rec, nil
}

// load parses a record's tss-lib save data and checks it matches the
// recorded public key.
func (rec *shareRecord) load() (*loadedKey, error) {
	k := &loadedKey{rec: *rec}
	var pub []byte
	var err error
	switch rec.Algorithm {
	case api.AlgECDSASecp256k1:
		k.ecdsa = new(ecdsakeygen.LocalPartySaveData)
		if err = json.Unmarshal(rec.SaveData, k.ecdsa); err == nil {
			if k.ecdsa.ECDSAPub == nil {
				err = fmt.Errorf("share has no public key")
			} else {
				pub, err = secpPublicKey(k.ecdsa.ECDSAPub.X(), k.ecdsa.ECDSAPub.Y())
			}
		}
	case api.AlgEdDSAEd25519:
		k.eddsa = new(eddsakeygen.LocalPartySaveData)
		if err = json.Unmarshal(rec.SaveData, k.eddsa); err == nil {
			if k.eddsa.EDDSAPub == nil {
				err = fmt.Errorf("share has no public key")
			} else {
				pub, err = edPublicKey(k.eddsa.EDDSAPub.X(), k.eddsa.EDDSAPub.Y())
			}
		}
	default:
		err = fmt.Errorf("unknown algorithm %q", rec.Algorithm)
	}
	if err != nil {
		return nil, fmt.Errorf("party: share for key %q: %w", rec.KeyID, err)
	}
	if string(pub) != string(rec.PublicKey) {
		return nil, fmt.Errorf("party: share for key %q does not match its recorded public key", rec.KeyID)
	}
	return k, nil
}

func secpPublicKey(x, y *big.Int) ([]byte, error) {
	var fx, fy secp256k1.FieldVal
	if fx.SetByteSlice(x.Bytes()) || fy.SetByteSlice(y.Bytes()) {
		return nil, fmt.Errorf("secp256k1 coordinate overflows the field")
	}
	pk := secp256k1.NewPublicKey(&fx, &fy)
	if !pk.IsOnCurve() {
		return nil, fmt.Errorf("secp256k1 public key not on the curve")
	}
	return pk.SerializeCompressed(), nil
}

func edPublicKey(x, y *big.Int) ([]byte, error) {
	pk := edwards.PublicKey{Curve: edwards.Edwards(), X: x, Y: y}
	b := pk.Serialize()
	if len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("ed25519 public key encodes to %d bytes", len(b))
	}
	return b, nil
}

// finishSignature normalises and independently verifies a tss-lib signature
// before it leaves the enclave: decred secp256k1 for ECDSA (including
// public-key recovery from the recovery id), crypto/ed25519 for EdDSA.
func finishSignature(alg string, pub, msg []byte, sd *common.SignatureData) (sig []byte, recID int, err error) {
	switch alg {
	case api.AlgECDSASecp256k1:
		if len(sd.R) > 32 || len(sd.S) > 32 || len(sd.SignatureRecovery) != 1 {
			return nil, 0, fmt.Errorf("party: malformed ecdsa signature from tss-lib")
		}
		var r, s secp256k1.ModNScalar
		if r.SetByteSlice(sd.R) || s.SetByteSlice(sd.S) {
			return nil, 0, fmt.Errorf("party: ecdsa signature scalar overflows")
		}
		recID = int(sd.SignatureRecovery[0])
		if s.IsOverHalfOrder() {
			s.Negate()
			recID ^= 1
		}
		pk, err := secp256k1.ParsePubKey(pub)
		if err != nil {
			return nil, 0, fmt.Errorf("party: public key: %w", err)
		}
		if !secpecdsa.NewSignature(&r, &s).Verify(msg, pk) {
			return nil, 0, fmt.Errorf("party: threshold ecdsa signature does not verify; refusing to release it")
		}
		rb, sb := r.Bytes(), s.Bytes()
		sig = append(rb[:], sb[:]...)
		compact := append([]byte{byte(27 + 4 + recID)}, sig...)
		rec, _, err := secpecdsa.RecoverCompact(compact, msg)
		if err != nil || !rec.IsEqual(pk) {
			return nil, 0, fmt.Errorf("party: ecdsa recovery id %d does not recover the key", recID)
		}
		return sig, recID, nil
	case api.AlgEdDSAEd25519:
		if len(sd.Signature) != ed25519.SignatureSize {
			return nil, 0, fmt.Errorf("party: eddsa signature is %d bytes, want 64", len(sd.Signature))
		}
		if !ed25519.Verify(pub, msg, sd.Signature) {
			return nil, 0, fmt.Errorf("party: threshold eddsa signature does not verify; refusing to release it")
		}
		return append([]byte(nil), sd.Signature...), 0, nil
	}
	return nil, 0, fmt.Errorf("party: unknown algorithm %q", alg)
}
