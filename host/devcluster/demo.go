package devcluster

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	secpecdsa "github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/sealsign/sealsign/enclave/api"
	"github.com/sealsign/sealsign/governance/keys"
	"github.com/sealsign/sealsign/governance/tx"
	"github.com/sealsign/sealsign/host/client"
	"github.com/sealsign/sealsign/host/server"
)

// DemoResult is the machine-readable outcome of a demo run (sealsign demo --json).
type DemoResult struct {
	// ECDSA is the first signature of the ECDSA key: an EIP-1559 transfer
	// on Ethereum mainnet, signed through a governed request.
	ECDSA struct {
		PublicKey  string `json:"public_key"`
		Address    string `json:"address"` // the key's Ethereum address
		RequestID  string `json:"request_id"`
		Digest     string `json:"digest"` // the transaction's signing hash
		Signature  string `json:"signature"`
		RecoveryID int    `json:"recovery_id"`
		// Transaction is the signed, broadcast-ready transaction (hex).
		Transaction string `json:"transaction"`
	} `json:"ecdsa"`
	// EdDSA is the first signature of the EdDSA key: a raw 32-byte
	// digest (SHA-256 of Statement).
	EdDSA struct {
		PublicKey string `json:"public_key"`
		RequestID string `json:"request_id"`
		Statement string `json:"statement"`
		Message   string `json:"message"` // what was signed: SHA-256(Statement), hex
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
	Refresh                      RefreshResult    `json:"refresh"`
	Governance                   GovernanceResult `json:"governance"`
	Audit                        AuditResult      `json:"audit"`
	TimingsMS                    map[string]int64 `json:"timings_ms"`
}

// DemoOptions configure RunDemo.
type DemoOptions struct {
	Options
	// Keep leaves the directory and processes for inspection.
	Keep bool
}

// requestTTL is how long the demo's requests and approvals are valid.
const requestTTL = 5 * time.Minute

// The demo's amounts: within eth-small's limit (under 1 ETH), and over it.
var (
	smallTransfer = big.NewInt(50_000_000_000_000_000)       // 0.05 ETH
	largeTransfer = big.NewInt(0).Mul(big.NewInt(2), oneEth) // 2 ETH
	oneEth        = big.NewInt(1_000_000_000_000_000_000)
)

const (
	demoClient = "treasury-app"
	// demoStatement is what the EdDSA key signs (its SHA-256, as a raw
	// digest).
	demoStatement = "sealsign demo: approve withdrawal #42"
)

// demo is one run's state.
type demo struct {
	ctx          context.Context
	out          io.Writer
	res          *DemoResult
	c            *Cluster
	app          *keys.PrivateKey // the client key every request is signed with
	ecKey, edKey *server.KeyJSON
	nonce        uint64 // the ECDSA key's next Ethereum nonce
	// ethSmall are the times at which eth-small signed the demo's
	// transfers: the velocity step predicts from them when the key-rate
	// limit trips.
	ethSmall []time.Time
}

// RunDemo runs the whole story in o.Dir (a fresh temp directory unless
// given): three parties, an ECDSA and an EdDSA 2-of-3 key, governed
// signing requests (an Ethereum transfer, a raw digest) whose signatures
// are verified with implementations independent of tss-lib, a full
// restart from sealed shares, signing with one party down, refusal of an
// unapproved enclave build, and the governance story: limits, approvals,
// denials, velocity, forged requests and policy updates.
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
	d := &demo{ctx: ctx, out: out, res: &DemoResult{TimingsMS: map[string]int64{}}}
	defer func() {
		if d.c != nil && !o.Keep {
			d.c.Down()
		}
	}()
	if err := d.step("start", fmt.Sprintf("starting three sealed signer parties in %s", o.Dir), func() error {
		var err error
		if d.c, err = Up(ctx, o.Options); err != nil {
			return err
		}
		d.app, err = d.c.GovernanceKey(demoClient)
		if err == nil {
			fmt.Fprintf(out, "  cluster %s is governed: every signature is a request signed by a client key the manifest names (here %s), checked against the genesis policy by every signing enclave\n", d.c.ClusterID(), demoClient)
		}
		return err
	}); err != nil {
		return nil, err
	}
	if err := d.step("preparams", "waiting for each enclave's Paillier pre-parameters (safe primes, generated inside the enclave)", func() error {
		return d.c.waitPreParams(ctx, out)
	}); err != nil {
		return nil, err
	}

	if err := d.step("keygen_ecdsa", "distributed key generation: 2-of-3 ECDSA secp256k1", func() error {
		var err error
		d.ecKey, err = d.c.CreateKey(ctx, api.AlgECDSASecp256k1)
		if err != nil {
			return err
		}
		addr, err := ethAddress(d.ecKey.PublicKey)
		if err != nil {
			return err
		}
		d.res.ECDSA.Address = addr.Hex()
		fmt.Fprintf(out, "  key %s  public key %s  Ethereum address %s\n", d.ecKey.ID, d.ecKey.PublicKey, addr)
		return nil
	}); err != nil {
		return nil, err
	}
	if err := d.c.showMeasurements(ctx, out); err != nil {
		return nil, err
	}
	if err := d.step("keygen_eddsa", "distributed key generation: 2-of-3 EdDSA Ed25519", func() error {
		var err error
		d.edKey, err = d.c.CreateKey(ctx, api.AlgEdDSAEd25519)
		if err == nil {
			fmt.Fprintf(out, "  key %s  public key %s\n", d.edKey.ID, d.edKey.PublicKey)
		}
		return err
	}); err != nil {
		return nil, err
	}

	if err := d.signBoth(""); err != nil {
		return nil, err
	}

	if err := d.step("restart", "stopping every process; restarting from sealed shares only", func() error {
		if err := d.c.Down(); err != nil {
			return err
		}
		// The demo makes no more ECDSA keys: keep the enclaves from
		// regenerating pre-parameters in the background while they sign.
		again := o.Options
		again.NoPreParams = true
		var err error
		if d.c, err = Up(ctx, again); err != nil {
			return err
		}
		return d.c.reportUnsealed(ctx, out, d.c.Parties...)
	}); err != nil {
		return nil, err
	}
	if err := d.signBoth("_after_restart", "a", "c"); err != nil {
		return nil, err
	}
	d.res.RestartSignatureOK = true

	if err := d.step("stop_c", "stopping party c", func() error { return d.c.Stop("c") }); err != nil {
		return nil, err
	}
	if err := d.signBoth("_two_of_three"); err != nil {
		return nil, err
	}
	d.res.TwoOfThreeOK = true

	rogue, err := rogueBinary(o.Dir, d.c.opts.BinDir)
	if err != nil {
		return nil, err
	}
	if err := d.step("rogue_c", "restarting party c with a different enclave binary (an unapproved build)", func() error {
		if err := d.c.Restart(ctx, "c", rogue); err != nil {
			return err
		}
		msg, err := d.refusedSigner("c")
		if err != nil {
			return err
		}
		if !strings.Contains(msg, "pcr0") {
			return fmt.Errorf("refusal does not name the PCR: %s", msg)
		}
		d.res.ChangedMeasurementRefused, d.res.RefusalMessage = true, msg
		fmt.Fprintf(out, "  refused: %s\n", msg)
		return nil
	}); err != nil {
		return nil, err
	}
	// a asks for the signature and c is already rogue: a tpm party among
	// the others shows what its TPM does with the rogue build.
	for _, p := range d.c.Parties {
		if p.Kind == "tpm" && p.ID != "a" && p.ID != "c" {
			if err := d.step("rogue_tpm", fmt.Sprintf("restarting tpm party %s with the unapproved build", p.ID), func() error {
				return d.rogueTPM(p.ID, rogue)
			}); err != nil {
				return nil, err
			}
		}
	}
	if err := d.step("restore", "restarting every party that runs the unapproved build with the approved one", func() error {
		var restored []PartyState
		for _, p := range d.c.Parties {
			if p.EnclaveBin == "" {
				continue
			}
			if err := d.c.Restart(ctx, p.ID, ""); err != nil {
				return err
			}
			restored = append(restored, p)
		}
		return d.c.reportUnsealed(ctx, out, restored...)
	}); err != nil {
		return nil, err
	}
	if err := d.refreshStep(); err != nil {
		return nil, err
	}
	if err := d.governanceStory(); err != nil {
		return nil, err
	}
	if err := d.auditStep(); err != nil {
		return nil, err
	}
	return d.res, nil
}

// step runs one step of the story, printing its label and duration.
func (d *demo) step(name, label string, f func() error) error {
	fmt.Fprintf(d.out, "• %s\n", label)
	start := time.Now()
	if err := f(); err != nil {
		return fmt.Errorf("%s: %w", label, err)
	}
	ms := time.Since(start).Milliseconds()
	d.res.TimingsMS[name] = ms
	fmt.Fprintf(d.out, "  done in %s\n", fmtMS(ms))
	return nil
}

// a is the client of party a, which coordinates every request of the demo.
func (d *demo) a() *client.Client { return d.c.Client("a") }

// submit signs a request as the demo's client and sends it to party a.
func (d *demo) submit(keyID string, kind tx.Kind, payload []byte, signers ...string) (*server.RequestStatus, error) {
	return d.submitAs(d.app, keyID, kind, payload, signers...)
}

func (d *demo) submitAs(k *keys.PrivateKey, keyID string, kind tx.Kind, payload []byte, signers ...string) (*server.RequestStatus, error) {
	signed, err := client.NewRequest(k, d.c.ClusterID(), keyID, kind, payload, requestTTL, slices.Sorted(slices.Values(signers))...)
	if err != nil {
		return nil, err
	}
	return d.a().Submit(d.ctx, signed)
}

// wantSigned turns anything but a signed request into an error that says
// why (every party's reasons).
func wantSigned(st *server.RequestStatus, err error) (*server.RequestStatus, error) {
	if err != nil {
		if st != nil {
			return st, fmt.Errorf("%w%s", err, reasons(st))
		}
		return nil, err
	}
	if st.State != server.StateSigned || st.Result == nil || len(st.Result.Signatures) == 0 {
		return st, fmt.Errorf("request %s is %s, want signed%s", st.RequestID, st.State, reasons(st))
	}
	return st, nil
}

// transfer asks the ECDSA key to sign an Ethereum transfer of wei to the
// allowlisted address or another one.
func (d *demo) transfer(wei *big.Int, toAllowlisted bool, signers ...string) (*types.Transaction, *server.RequestStatus, error) {
	to := allowlisted
	if !toAllowlisted {
		to = notAllowlisted
	}
	t, payload, err := ethTransfer(d.nonce, to, wei)
	if err != nil {
		return nil, nil, err
	}
	st, err := d.submit(d.ecKey.ID, tx.KindEVM, payload, signers...)
	return t, st, err
}

// checkTransfer verifies a signed transfer independently of the enclaves:
// go-ethereum decodes it and recovers the sender, which must be the key's
// address, and decred's secp256k1 checks the signature and recovery id
// over the signing hash. An eth-small signature is counted for the
// velocity step.
func (d *demo) checkTransfer(want *types.Transaction, st *server.RequestStatus) (string, error) {
	r := st.Result
	from, err := VerifyEthTransaction(d.ecKey.PublicKey, want, r.Transaction)
	if err != nil {
		return "", err
	}
	h := types.LatestSignerForChainID(ethChainID).Hash(want)
	if len(r.Digests) != 1 || r.Digests[0] != hex.EncodeToString(h[:]) || len(r.RecoveryIDs) != 1 {
		return "", fmt.Errorf("verify: result digests %v, want the transaction's signing hash %x with one recovery id", r.Digests, h)
	}
	if err := VerifyECDSA(d.ecKey.PublicKey, h[:], r.Signatures[0], r.RecoveryIDs[0]); err != nil {
		return "", err
	}
	d.nonce++
	if r.RuleID == "eth-small" {
		d.ethSmall = append(d.ethSmall, time.Now())
	}
	return from.Hex(), nil
}

// signBoth signs an in-limit Ethereum transfer with the ECDSA key and a
// raw digest with the EdDSA key.
func (d *demo) signBoth(tag string, signers ...string) error {
	if err := d.step("sign_ecdsa"+tag, fmt.Sprintf("threshold ECDSA signature of an Ethereum transfer: 0.05 ETH to %s (signers: %s)", allowlisted, who(signers)), func() error {
		t, st, err := d.transfer(smallTransfer, true, signers...)
		if st, err = wantSigned(st, err); err != nil {
			return err
		}
		from, err := d.checkTransfer(t, st)
		if err != nil {
			return err
		}
		r := st.Result
		fmt.Fprintf(d.out, "  request %s allowed by rule %s; signers %s  signature %s…\n", st.RequestID, r.RuleID, strings.Join(r.Signers, ","), r.Signatures[0][:24])
		fmt.Fprintf(d.out, "  transaction %s…: go-ethereum recovers sender %s, the key's address; decred secp256k1 verifies signature and recovery id\n", r.Transaction[:24], from)
		if tag == "" {
			e := &d.res.ECDSA
			e.PublicKey, e.RequestID, e.Digest, e.Signature, e.RecoveryID, e.Transaction = d.ecKey.PublicKey, st.RequestID, r.Digests[0], r.Signatures[0], r.RecoveryIDs[0], r.Transaction
		}
		return nil
	}); err != nil {
		return err
	}
	return d.step("sign_eddsa"+tag, fmt.Sprintf("threshold EdDSA signature of a raw digest, SHA-256(%q) (signers: %s)", demoStatement, who(signers)), func() error {
		digest := sha256.Sum256([]byte(demoStatement))
		st, err := wantSigned(d.submit(d.edKey.ID, tx.KindRaw, digest[:], signers...))
		if err != nil {
			return err
		}
		r := st.Result
		if err := VerifyEd25519(d.edKey.PublicKey, digest[:], r.Signatures[0]); err != nil {
			return err
		}
		fmt.Fprintf(d.out, "  request %s allowed by rule %s; signers %s  signature %s…  verified with crypto/ed25519\n", st.RequestID, r.RuleID, strings.Join(r.Signers, ","), r.Signatures[0][:24])
		if tag == "" {
			e := &d.res.EdDSA
			e.PublicKey, e.RequestID, e.Statement, e.Message, e.Signature = d.edKey.PublicKey, st.RequestID, demoStatement, hex.EncodeToString(digest[:]), r.Signatures[0]
		}
		return nil
	})
}

// refusedSigner asks a and peer to sign an in-limit transfer and returns
// the refusal, which must come.
func (d *demo) refusedSigner(peer string) (string, error) {
	_, st, err := d.transfer(smallTransfer, true, "a", peer)
	if err == nil && st.State == server.StateSigned {
		return "", fmt.Errorf("party a signed together with party %s, whose measurement changed", peer)
	}
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	if st != nil && st.Error != "" && !strings.Contains(msg, st.Error) {
		msg = strings.TrimPrefix(msg+": "+st.Error, ": ")
	}
	if msg == "" {
		return "", fmt.Errorf("request %s is %s, want refused", st.RequestID, st.State)
	}
	return msg, nil
}

// rogueTPM restarts tpm party id with the rogue binary and checks both
// defences: peers refuse its quote (naming the measured PCR), and its own
// TPM refuses to unseal its shares, because the policy PCR now differs.
func (d *demo) rogueTPM(id, rogue string) error {
	if err := d.c.Restart(d.ctx, id, rogue); err != nil {
		return err
	}
	d.res.TPMParty = id
	h, err := d.c.Client(id).Health(d.ctx)
	if err != nil {
		return err
	}
	if len(h.Refused) == 0 || len(h.Enclave.Keys) != 0 {
		return fmt.Errorf("party %s's TPM unsealed its shares (%d keys loaded) under a changed measurement", id, len(h.Enclave.Keys))
	}
	d.res.TPMUnsealRefused, d.res.TPMUnsealMessage = true, h.Refused[0].Error
	fmt.Fprintf(d.out, "  its own TPM refuses to unseal: %s\n", h.Refused[0].Error)
	msg, err := d.refusedSigner(id)
	if err != nil {
		return err
	}
	if !strings.Contains(msg, fmt.Sprintf("pcr%d", api.TPMMeasurePCR)) {
		return fmt.Errorf("refusal does not name pcr%d: %s", api.TPMMeasurePCR, msg)
	}
	d.res.TPMChangedMeasurementRefused, d.res.TPMRefusalMessage = true, msg
	fmt.Fprintf(d.out, "  peers refuse it: %s\n", msg)
	return nil
}

// reportUnsealed prints how many key shares each party unsealed, and
// fails if any refused a stored blob.
func (c *Cluster) reportUnsealed(ctx context.Context, out io.Writer, parties ...PartyState) error {
	for _, p := range parties {
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
