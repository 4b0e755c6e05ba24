package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/sealsign/sealsign/host/devcluster"
)

func init() { commands["demo"] = demoMain }

const demoUsage = `Usage: sealsign demo [--json] [--dir DIR] [--keep] [--bin-dir DIR]

Runs the whole appliance story on this machine: three sealed signer parties
(each an enclave process and a host process; a and c seal with their own
SoftHSM token and attest with the dev NSM, b seals with a TPM simulator under
a PCR policy and attests with TPM quotes),
a 2-of-3 ECDSA secp256k1 and a 2-of-3 EdDSA Ed25519 key created by
distributed key generation, signatures verified with implementations
independent of tss-lib, a restart of every process from sealed shares,
a signature with one party stopped, parties with a changed build refused,
and the governance story: every signature is a client-signed request that
each signer decodes and judges under the admin-signed policy (within limits
signed; over the limit pending until two approvers approve; a destination
off the allowlist and a raw digest denied, naming the rule; the velocity
limit tripping when counted; forged requests refused; policy updates without
the admin quorum or rolling back refused by every party). Everything happens
in a temporary directory that is removed at the end (unless --keep).

Examples:
  sealsign demo
  sealsign demo --json | jq .ecdsa
`

func demoMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, demoUsage) }
	asJSON := fs.Bool("json", false, "print one JSON object with keys, signatures and timings")
	var o devcluster.DemoOptions
	fs.StringVar(&o.Dir, "dir", "", "run in this directory instead of a temporary one")
	fs.BoolVar(&o.Keep, "keep", false, "leave the directory and processes running")
	fs.StringVar(&o.BinDir, "bin-dir", "", "directory with sealsign-host and sealsign-enclave")
	fs.StringVar(&o.InsecurePreParamsFixture, "insecure-preparams-fixture", "", "use PUBLIC pre-parameter sets from this file instead of generating them (tests only)")
	tpmParty := fs.String("tpm-party", "b", "the party that seals with a TPM (simulator) and attests with TPM quotes; empty: every party is a SoftHSM dev party")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *tpmParty != "" {
		o.Kinds = map[string]string{*tpmParty: "tpm"}
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	progress := stdout
	if *asJSON {
		progress = stderr
	}
	o.Progress = progress
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	res, err := devcluster.RunDemo(ctx, o)
	if err != nil {
		fmt.Fprintf(stderr, "sealsign: demo failed: %v\n", err)
		return 1
	}
	res.TimingsMS["total"] = time.Since(start).Milliseconds()
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(res)
		return 0
	}
	fmt.Fprintf(stdout, `
Summary
  ECDSA secp256k1 2-of-3  public key %s
                          signature  %s (recovery id %d) over %s
  EdDSA Ed25519   2-of-3  public key %s
                          signature  %s
  signing after a full restart from sealed shares: %s
  signing with party c stopped (2 of 3):            %s
  party c restarted with a different binary:        %s
  keygen ECDSA %s, EdDSA %s; sign ECDSA %s, EdDSA %s; total %s
`, res.ECDSA.PublicKey, res.ECDSA.Signature, res.ECDSA.RecoveryID, res.ECDSA.Digest,
		res.EdDSA.PublicKey, res.EdDSA.Signature, ok(res.RestartSignatureOK), ok(res.TwoOfThreeOK), refused(res.ChangedMeasurementRefused),
		ms(res.TimingsMS["keygen_ecdsa"]), ms(res.TimingsMS["keygen_eddsa"]), ms(res.TimingsMS["sign_ecdsa"]), ms(res.TimingsMS["sign_eddsa"]), ms(res.TimingsMS["total"]))
	if res.TPMParty != "" {
		fmt.Fprintf(stdout, "  tpm party %s with a different binary:         %s; its TPM unseals: %s\n", res.TPMParty,
			refusedAs(res.TPMChangedMeasurementRefused, "refused by its peers (pcr23 mismatch)"), refusedAs(res.TPMUnsealRefused, "nothing (PCR policy)"))
	}
	return 0
}

func refusedAs(b bool, what string) string {
	if b {
		return what
	}
	return "NOT REFUSED"
}

func ok(b bool) string {
	if b {
		return "ok, verified"
	}
	return "FAILED"
}

func refused(b bool) string { return refusedAs(b, "refused by its peers (pcr0 mismatch)") }

func ms(v int64) string { return (time.Duration(v) * time.Millisecond).String() }
