package party

import (
	"context"
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/big"

	"github.com/bnb-chain/tss-lib/v2/common"
	ecdsakeygen "github.com/bnb-chain/tss-lib/v2/ecdsa/keygen"
	ecdsasigning "github.com/bnb-chain/tss-lib/v2/ecdsa/signing"
	"github.com/bnb-chain/tss-lib/v2/tss"
	"github.com/btcsuite/btcd/btcutil"
	"github.com/btcsuite/btcd/btcutil/base58"
	"github.com/decred/dcrd/dcrec/secp256k1/v4"

	"github.com/sealsign/sealsign/enclave/api"
	"github.com/sealsign/sealsign/governance/request"
)

// BIP-32 non-hardened derivation below a threshold key
// (https://github.com/bitcoin/bips/blob/master/bip-0032.mediawiki, "Public
// parent key → public child key"). The threshold key is the master
// extended public key (depth 0) made of its public key and the chain code
// agreed at keygen. A child key is the parent plus IL·G for a public IL,
// so signing with it is signing with the parent key and the additive
// tweak δ = ΣIL mod n (tss-lib NewLocalPartyWithKDD; Groth–Shoup 2022,
// eprint 2021/1330, analyse ECDSA with additive key derivation, which is
// sound without presignatures — sealsign has none).

// chainCodeDomain separates the keygen chain code from every other use of
// the session secret.
const chainCodeDomain = "sealsign/v1/bip32-chain-code\x00"

// keygenChainCode is a new secp256k1 key's BIP-32 chain code:
// SHA-256(chainCodeDomain ‖ Secret("bip32-chain-code") ‖ compressed public key).
//
// No single party chooses it. The session secret mixes every party's hello
// nonce, each sent encrypted before any protocol message and fixed (by the
// session id) before the key exists, so no party can pick its nonce
// knowing the others'. The public key then comes out of the DKG: jointly
// random and unknown to anyone when the nonces were fixed, so no party can
// steer the hash by grinding its keygen contribution either. Every party
// computes the same value from the same inputs. Knowing the chain code
// reveals only the link between child keys (it is public in an xpub); it
// gives no signing power.
func keygenChainCode(secret, pub []byte) ([]byte, error) {
	if len(secret) != 32 {
		return nil, fmt.Errorf("party: keygen session has no secret to derive the chain code from")
	}
	h := sha256.New()
	h.Write([]byte(chainCodeDomain))
	h.Write(secret)
	h.Write(pub)
	return h.Sum(nil), nil
}

// derived is a BIP-32 child of a threshold key.
type derived struct {
	path      request.Path
	pub       *secp256k1.PublicKey
	publicKey []byte // compressed
	chainCode []byte
	// delta is ΣIL mod n: child private key = parent private key + delta.
	delta       *big.Int
	parentFP    [4]byte // fingerprint of the parent (zero at depth 0)
	childNumber uint32
}

// derive computes the child of a secp256k1 key at path. An empty path is
// the key itself (delta 0).
func derive(k *loadedKey, path request.Path) (*derived, error) {
	if k.rec.Algorithm != api.AlgECDSASecp256k1 {
		return nil, api.Errorf(api.CodeBadRequest, "party: key %q is %s: BIP-32 derivation paths exist only for %s keys", k.rec.KeyID, k.rec.Algorithm, api.AlgECDSASecp256k1)
	}
	if err := path.Validate(); err != nil {
		return nil, api.Errorf(api.CodeBadRequest, "%v", err)
	}
	if len(k.rec.ChainCode) != 32 {
		return nil, api.Errorf(api.CodeBadRequest, "party: key %q has no BIP-32 chain code (made before sealsign agreed one at keygen); it cannot derive child keys", k.rec.KeyID)
	}
	pub, err := secp256k1.ParsePubKey(k.rec.PublicKey)
	if err != nil {
		return nil, api.Errorf(api.CodeInternal, "party: key %q: %v", k.rec.KeyID, err)
	}
	d := &derived{path: path, pub: pub, chainCode: append([]byte(nil), k.rec.ChainCode...)}
	var delta secp256k1.ModNScalar
	for _, i := range path {
		ser := d.pub.SerializeCompressed()
		mac := hmac.New(sha512.New, d.chainCode)
		mac.Write(ser)
		mac.Write(binary.BigEndian.AppendUint32(nil, i))
		sum := mac.Sum(nil)
		var il secp256k1.ModNScalar
		if il.SetByteSlice(sum[:32]) || il.IsZero() {
			// BIP-32: IL ≥ n (or 0) has probability below 2^-127; the
			// index is invalid and the caller should use the next one.
			return nil, api.Errorf(api.CodeBadRequest, "party: key %q: child %d at %s is invalid under BIP-32 (IL ≥ n); use the next index", k.rec.KeyID, i, path)
		}
		var p, t, c secp256k1.JacobianPoint
		d.pub.AsJacobian(&p)
		secp256k1.ScalarBaseMultNonConst(&il, &t)
		secp256k1.AddNonConst(&t, &p, &c)
		if (c.X.IsZero() && c.Y.IsZero()) || c.Z.IsZero() {
			return nil, api.Errorf(api.CodeBadRequest, "party: key %q: child %d at %s is the point at infinity under BIP-32; use the next index", k.rec.KeyID, i, path)
		}
		c.ToAffine()
		copy(d.parentFP[:], btcutil.Hash160(ser)[:4]) // BIP-32 fingerprint: HASH160 of the parent key
		d.childNumber = i
		d.pub = secp256k1.NewPublicKey(&c.X, &c.Y)
		d.chainCode = sum[32:]
		delta.Add(&il)
	}
	d.publicKey = d.pub.SerializeCompressed()
	b := delta.Bytes()
	d.delta = new(big.Int).SetBytes(b[:])
	return d, nil
}

// xpubVersion is BIP-32's mainnet public version, "xpub".
var xpubVersion = [4]byte{0x04, 0x88, 0xb2, 0x1e}

// xpub is the BIP-32 serialization of the child's extended public key:
// version, depth, parent fingerprint, child number, chain code, key, in
// Base58Check.
func (d *derived) xpub() string {
	b := make([]byte, 0, 82)
	b = append(b, xpubVersion[:]...)
	b = append(b, byte(len(d.path))) // ≤ request.MaxPathDepth
	b = append(b, d.parentFP[:]...)
	b = binary.BigEndian.AppendUint32(b, d.childNumber)
	b = append(b, d.chainCode...)
	b = append(b, d.publicKey...)
	c1 := sha256.Sum256(b)
	c2 := sha256.Sum256(c1[:])
	return base58.Encode(append(b, c2[:4]...))
}

// deriveMethod answers api.MethodDerive: the child public key, chain code
// and xpub of a key at a path. They are public; nothing secret is used.
func (e *Enclave) deriveMethod(_ context.Context, req *api.DeriveRequest) (*api.DeriveResponse, error) {
	if _, _, err := e.readyRestored(); err != nil {
		return nil, err
	}
	k, err := e.share(req.KeyID)
	if err != nil {
		return nil, err
	}
	d, err := derive(k, req.Path)
	if err != nil {
		return nil, err
	}
	return &api.DeriveResponse{KeyID: k.rec.KeyID, Path: d.path.String(), PublicKey: d.publicKey, ChainCode: d.chainCode, XPub: d.xpub()}, nil
}

// requestChild is the key a governed request signs with: nil for the key
// itself, else its child at the request's path.
func requestChild(k *loadedKey, path request.Path) (*derived, error) {
	if len(path) == 0 {
		return nil, nil
	}
	return derive(k, path)
}

// childSigningParty is a tss-lib signing party for the child d of the key
// whose save data is save. UpdatePublicKeyAndAdjustBigXj rewrites the
// structs it is given, so it works on a deep copy: the loaded share is
// never touched and the next signing, under any path, starts from the
// parent key.
func childSigningParty(d *derived, save *ecdsakeygen.LocalPartySaveData, m *big.Int, params *tss.Parameters, out chan<- tss.Message, end chan<- *common.SignatureData, msgLen int) (tss.Party, error) {
	raw, err := json.Marshal(save)
	if err != nil {
		return nil, fmt.Errorf("party: copy share: %w", err)
	}
	var cp ecdsakeygen.LocalPartySaveData
	if err := json.Unmarshal(raw, &cp); err != nil {
		return nil, fmt.Errorf("party: copy share: %w", err)
	}
	keys := []ecdsakeygen.LocalPartySaveData{cp}
	// tss-lib takes the child as big.Int coordinates (crypto/ecdsa has no
	// secp256k1); it only reads them.
	child := &ecdsa.PublicKey{Curve: tss.S256(), X: d.pub.X(), Y: d.pub.Y()} //lint:ignore SA1019 tss-lib's API needs X and Y
	if err := ecdsasigning.UpdatePublicKeyAndAdjustBigXj(d.delta, keys, child, tss.S256()); err != nil {
		return nil, fmt.Errorf("party: tweak share for %s: %w", d.path, err)
	}
	// The tweaked share must commit to the child key: parent + δ·G.
	got, err := secpPublicKey(keys[0].ECDSAPub.X(), keys[0].ECDSAPub.Y())
	if err != nil || string(got) != string(d.publicKey) {
		return nil, fmt.Errorf("party: tweaked share does not hold the child key of %s", d.path)
	}
	return ecdsasigning.NewLocalPartyWithKDD(m, params, keys[0], d.delta, out, end, msgLen), nil
}

// signingKey is the compressed public key a request signs with: its child
// key under a derivation path, else the threshold key.
func (ev *evaluation) signingKey() []byte {
	if ev.child != nil {
		return ev.child.publicKey
	}
	return ev.key.rec.PublicKey
}

// derivationPath is the request's path in text form, "" without one.
func (ev *evaluation) derivationPath() string {
	if ev.child == nil {
		return ""
	}
	return ev.child.path.String()
}
