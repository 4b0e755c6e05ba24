package devcluster

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	secpecdsa "github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"

	"github.com/sealsign/sealsign/enclave/api"
	"github.com/sealsign/sealsign/host/client"
	"github.com/sealsign/sealsign/host/server"
)

// DemoResult is the machine-readable outcome of a demo run (sealsign demo --json).
type DemoResult struct {
	ECDSA struct {
		PublicKey  string `json:"public_key"`
		Digest     string `json:"digest"`
		Signature  string `json:"signature"`
		RecoveryID int    `json:"recovery_id"`
	} `json:"ecdsa"`
	EdDSA struct {
		PublicKey string `json:"public_key"`
		Message   string `json:"message"`
		Signature string `json:"signature"`
	} `json:"eddsa"`
	RestartSignatureOK bool `json:"restart_signature_ok"`
	TwoOfThreeOK       bool `json:"two_of_three_ok"`
	// ChangedMeasurementRefused: party c restarted with a different enclave
	// binary was refused by its peers, naming the PCR.
	ChangedMeasurementRefused bool   `json:"changed_measurement_refused"`
	RefusalMessage            string `json:"refusal_message,omitempty"`
	// TPM: the tpm party restarted with a different binary is refused by
	// its peers (naming its measured PCR), and its own TPM refuses to
	// unseal its shares under the changed PCR.
	TPMParty                     string           `json:"tpm_party,omitempty"`
	TPMChangedMeasurementRefused bool             `json:"tpm_changed_measurement_refused"`
	TPMUnsealRefused             bool             `json:"tpm_unseal_refused"`
	TPMRefusalMessage            string           `json:"tpm_refusal_message,omitempty"`
	TPMUnsealMessage             string           `json:"tpm_unseal_message,omitempty"`
	TimingsMS                    map[string]int64 `json:"timings_ms"`
}

// DemoOptions configure RunDemo.
type DemoOptions struct {
	Options
	// Keep leaves the directory and processes for inspection.
	Keep bool
}

// RunDemo runs the whole story in o.Dir (a fresh temp directory unless
// given): three parties, an ECDSA and an EdDSA 2-of-3 key, signatures
// verified with implementations independent of tss-lib, a full restart
// from sealed shares, and signing with one party down.
func RunDemo(ctx context.Context, o DemoOptions) (res *DemoResult, err error) {
	out := o.Progress
	if out == nil {
		out = io.Discard
	}
	if o.Dir == "" {
		dir, err := os.MkdirTemp("", "sealsign-demo-")
		if err != nil {
			return nil, err
		}
		o.Dir = dir
		if !o.Keep {
			defer os.RemoveAll(dir)
		}
	}
	o.PreParamsNoRefill = true
	res = &DemoResult{TimingsMS: map[string]int64{}}
	step := func(name, label string, f func() error) error {
		fmt.Fprintf(out, "• %s\n", label)
		start := time.Now()
		if err := f(); err != nil {
			return fmt.Errorf("%s: %w", label, err)
		}
		ms := time.Since(start).Milliseconds()
		res.TimingsMS[name] = ms
		fmt.Fprintf(out, "  done in %s\n", fmtMS(ms))
		return nil
	}

	var c *Cluster
	defer func() {
		if c != nil && !o.Keep {
			c.Down()
		}
	}()
	if err := step("start", fmt.Sprintf("starting three sealed signer parties in %s", o.Dir), func() error {
		var err error
		c, err = Up(ctx, o.Options)
		return err
	}); err != nil {
		return nil, err
	}
	a := c.Client("a")
	if err := step("preparams", "waiting for each enclave's Paillier pre-parameters (safe primes, generated inside the enclave)", func() error {
		return c.waitPreParams(ctx, out)
	}); err != nil {
		return nil, err
	}

	var ecKey, edKey *server.KeyJSON
	if err := step("keygen_ecdsa", "distributed key generation: 2-of-3 ECDSA secp256k1", func() error {
		var err error
		ecKey, err = a.CreateKey(ctx, api.AlgECDSASecp256k1)
		if err == nil {
			fmt.Fprintf(out, "  key %s  public key %s\n", ecKey.ID, ecKey.PublicKey)
		}
		return err
	}); err != nil {
		return nil, err
	}
	if err := c.showMeasurements(ctx, out); err != nil {
		return nil, err
	}
	if err := step("keygen_eddsa", "distributed key generation: 2-of-3 EdDSA Ed25519", func() error {
		var err error
		edKey, err = a.CreateKey(ctx, api.AlgEdDSAEd25519)
		if err == nil {
			fmt.Fprintf(out, "  key %s  public key %s\n", edKey.ID, edKey.PublicKey)
		}
		return err
	}); err != nil {
		return nil, err
	}

	digest := sha256.Sum256([]byte("sealsign demo: pay 1 BTC to bc1q…"))
	message := []byte("sealsign demo: approve withdrawal #42")
	signBoth := func(tag string, signers ...string) error {
		if err := step("sign_ecdsa"+tag, fmt.Sprintf("threshold ECDSA signature (signers: %s)", who(signers)), func() error {
			r, err := a.SignDigest(ctx, ecKey.ID, digest[:], signers...)
			if err != nil {
				return err
			}
			if err := VerifyECDSA(ecKey.PublicKey, digest[:], r.Signature, *r.RecoveryID); err != nil {
				return err
			}
			fmt.Fprintf(out, "  signers %s  signature %s…  verified with decred secp256k1 (signature and key recovery)\n", strings.Join(r.Signers, ","), r.Signature[:24])
			if tag == "" {
				res.ECDSA.PublicKey, res.ECDSA.Digest, res.ECDSA.Signature, res.ECDSA.RecoveryID = ecKey.PublicKey, hex.EncodeToString(digest[:]), r.Signature, *r.RecoveryID
			}
			return nil
		}); err != nil {
			return err
		}
		return step("sign_eddsa"+tag, fmt.Sprintf("threshold EdDSA signature (signers: %s)", who(signers)), func() error {
			r, err := a.SignMessage(ctx, edKey.ID, message, signers...)
			if err != nil {
				return err
			}
			if err := VerifyEd25519(edKey.PublicKey, message, r.Signature); err != nil {
				return err
			}
			fmt.Fprintf(out, "  signers %s  signature %s…  verified with crypto/ed25519\n", strings.Join(r.Signers, ","), r.Signature[:24])
			if tag == "" {
				res.EdDSA.PublicKey, res.EdDSA.Message, res.EdDSA.Signature = edKey.PublicKey, hex.EncodeToString(message), r.Signature
			}
			return nil
		})
	}
	if err := signBoth(""); err != nil {
		return nil, err
	}

	if err := step("restart", "stopping every process; restarting from sealed shares only", func() error {
		if err := c.Down(); err != nil {
			return err
		}
		// The demo makes no more ECDSA keys: keep the enclaves from
		// regenerating pre-parameters in the background while they sign.
		again := o.Options
		again.NoPreParams = true
		var err error
		c, err = Up(ctx, again)
		if err != nil {
			return err
		}
		for _, p := range c.Parties {
			h, err := c.Client(p.ID).Health(ctx)
			if err != nil {
				return err
			}
			if len(h.Refused) > 0 {
				return fmt.Errorf("party %s refused stored blobs: %v", p.ID, h.Refused)
			}
			fmt.Fprintf(out, "  party %s unsealed %d key shares\n", p.ID, len(h.Enclave.Keys))
		}
		return nil
	}); err != nil {
		return nil, err
	}
	a = c.Client("a")
	if err := signBoth("_after_restart", "a", "c"); err != nil {
		return nil, err
	}
	res.RestartSignatureOK = true

	if err := step("stop_c", "stopping party c", func() error { return c.Stop("c") }); err != nil {
		return nil, err
	}
	if err := signBoth("_two_of_three"); err != nil {
		return nil, err
	}
	res.TwoOfThreeOK = true

	rogue, err := rogueBinary(o.Dir, c.opts.BinDir)
	if err != nil {
		return nil, err
	}
	if err := step("rogue_c", "restarting party c with a different enclave binary (an unapproved build)", func() error {
		if err := c.Restart(ctx, "c", rogue); err != nil {
			return err
		}
		_, err = a.SignDigest(ctx, ecKey.ID, digest[:], "a", "c")
		if err == nil {
			return fmt.Errorf("party a signed together with a party whose measurement changed")
		}
		if !strings.Contains(err.Error(), "pcr0") {
			return fmt.Errorf("refusal does not name the PCR: %v", err)
		}
		res.ChangedMeasurementRefused, res.RefusalMessage = true, err.Error()
		fmt.Fprintf(out, "  refused: %s\n", err)
		return nil
	}); err != nil {
		return nil, err
	}
	// a asks for the signature and c is already rogue: a tpm party among
	// the others shows what its TPM does with the rogue build.
	for _, p := range c.Parties {
		if p.Kind == "tpm" && p.ID != "a" && p.ID != "c" {
			if err := step("rogue_tpm", fmt.Sprintf("restarting tpm party %s with the unapproved build", p.ID), func() error {
				return c.rogueTPM(ctx, out, a, p.ID, rogue, ecKey.ID, digest[:], res)
			}); err != nil {
				return nil, err
			}
		}
	}
	return res, nil
}

// rogueTPM restarts tpm party id with the rogue binary and checks both
// defences: peers refuse its quote (naming the measured PCR), and its own
// TPM refuses to unseal its shares, because the policy PCR now differs.
func (c *Cluster) rogueTPM(ctx context.Context, out io.Writer, a *client.Client, id, rogue, keyID string, digest []byte, res *DemoResult) error {
	if err := c.Restart(ctx, id, rogue); err != nil {
		return err
	}
	res.TPMParty = id
	h, err := c.Client(id).Health(ctx)
	if err != nil {
		return err
	}
	if len(h.Refused) == 0 || len(h.Enclave.Keys) != 0 {
		return fmt.Errorf("party %s's TPM unsealed its shares (%d keys loaded) under a changed measurement", id, len(h.Enclave.Keys))
	}
	res.TPMUnsealRefused, res.TPMUnsealMessage = true, h.Refused[0].Error
	fmt.Fprintf(out, "  its own TPM refuses to unseal: %s\n", h.Refused[0].Error)
	_, err = a.SignDigest(ctx, keyID, digest, "a", id)
	if err == nil {
		return fmt.Errorf("party a signed together with a tpm party whose measurement changed")
	}
	if !strings.Contains(err.Error(), fmt.Sprintf("pcr%d", api.TPMMeasurePCR)) {
		return fmt.Errorf("refusal does not name pcr%d: %v", api.TPMMeasurePCR, err)
	}
	res.TPMChangedMeasurementRefused, res.TPMRefusalMessage = true, err.Error()
	fmt.Fprintf(out, "  peers refuse it: %s\n", err)
	return nil
}

// rogueBinary copies the enclave binary with extra trailing bytes: it runs
// the same, but measures differently.
func rogueBinary(dir, binDir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(binDir, "sealsign-enclave"))
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "rogue-sealsign-enclave")
	return path, os.WriteFile(path, append(b, []byte("\x00unapproved build")...), 0o700)
}

// showMeasurements prints, for each party, its own measurement and the
// peers' measurements it has verified (PCR0 of a dev/Nitro document, the
// pinned PCR of TPM evidence).
func (c *Cluster) showMeasurements(ctx context.Context, out io.Writer) error {
	for _, p := range c.Parties {
		h, err := c.Client(p.ID).Health(ctx)
		if err != nil {
			return err
		}
		var peers []string
		for _, v := range h.Enclave.Peers {
			peers = append(peers, fmt.Sprintf("%s (%s) pcr%d %x…", v.PartyID, v.Kind, v.MeasurementPCR, short(v.Measurement)))
		}
		fmt.Fprintf(out, "  party %s (%s) runs binary %x…; verified attestations of: %s\n", p.ID, p.Kind, short(h.Enclave.Measurement), strings.Join(peers, ", "))
	}
	return nil
}

func short(b []byte) []byte { return b[:min(len(b), 8)] }

func who(signers []string) string {
	if len(signers) == 0 {
		return "chosen by the coordinator"
	}
	return strings.Join(signers, ", ")
}

func fmtMS(ms int64) string {
	if ms < 1000 {
		return fmt.Sprintf("%d ms", ms)
	}
	return fmt.Sprintf("%.1f s", float64(ms)/1000)
}

// waitPreParams polls each party until its pool has a set ready.
func (c *Cluster) waitPreParams(ctx context.Context, out io.Writer) error {
	start := time.Now()
	last := ""
	for {
		var parts []string
		ready := 0
		for _, p := range c.Parties {
			h, err := c.Client(p.ID).Health(ctx)
			if err != nil {
				return err
			}
			parts = append(parts, fmt.Sprintf("%s %d/%d", p.ID, h.Enclave.PreParamsReady, h.Enclave.PreParamsGoal))
			if h.Enclave.PreParamsReady > 0 {
				ready++
			}
		}
		line := strings.Join(parts, "  ")
		if line != last {
			fmt.Fprintf(out, "  [%4.0fs] pre-params ready: %s\n", time.Since(start).Seconds(), line)
			last = line
		}
		if ready == len(c.Parties) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// VerifyECDSA checks a 64-byte r‖s secp256k1 signature over digest with
// decred's implementation, independent of tss-lib: low-S, a valid
// signature, and a recovery id that recovers the public key.
func VerifyECDSA(pubHex string, digest []byte, sigHex string, recID int) error {
	pubB, err := hex.DecodeString(pubHex)
	if err != nil {
		return err
	}
	pub, err := secp256k1.ParsePubKey(pubB)
	if err != nil {
		return fmt.Errorf("verify: public key: %w", err)
	}
	sig, err := hex.DecodeString(sigHex)
	if err != nil || len(sig) != 64 {
		return fmt.Errorf("verify: signature must be 64 hex-encoded bytes")
	}
	var r, s secp256k1.ModNScalar
	if r.SetByteSlice(sig[:32]) || s.SetByteSlice(sig[32:]) || r.IsZero() || s.IsZero() {
		return fmt.Errorf("verify: signature scalars out of range")
	}
	if s.IsOverHalfOrder() {
		return fmt.Errorf("verify: signature is not low-S")
	}
	if !secpecdsa.NewSignature(&r, &s).Verify(digest, pub) {
		return fmt.Errorf("verify: ecdsa signature does not verify")
	}
	if recID < 0 || recID > 3 {
		return fmt.Errorf("verify: recovery id %d out of range", recID)
	}
	rec, _, err := secpecdsa.RecoverCompact(append([]byte{byte(27 + 4 + recID)}, sig...), digest)
	if err != nil || !rec.IsEqual(pub) {
		return fmt.Errorf("verify: recovery id %d does not recover the public key", recID)
	}
	return nil
}

// VerifyEd25519 checks an Ed25519 signature with crypto/ed25519.
func VerifyEd25519(pubHex string, msg []byte, sigHex string) error {
	pub, err := hex.DecodeString(pubHex)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("verify: ed25519 public key must be 32 hex-encoded bytes")
	}
	sig, err := hex.DecodeString(sigHex)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return fmt.Errorf("verify: ed25519 signature must be 64 hex-encoded bytes")
	}
	if !ed25519.Verify(pub, msg, sig) {
		return fmt.Errorf("verify: ed25519 signature does not verify")
	}
	return nil
}
