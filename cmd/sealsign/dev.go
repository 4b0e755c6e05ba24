package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/sealsign/sealsign/host/devcluster"
)

func init() { commands["dev"] = devMain }

const devUsage = `Usage: sealsign dev up|down|status [--dir DIR]

Keeps a local three-party appliance running for manual use. State lives in
DIR (default $SEALSIGN_DEV_DIR or ./.sealsign-dev): the dev CA, one SoftHSM
token per party, the manifest, and each host's sealed-blob store. "up" after
"down" restarts from the sealed shares.

Examples:
  sealsign dev up
  sealsign dev up --tpm-party b           # party b seals with a (simulated) TPM
  sealsign key create --alg ecdsa-secp256k1
  sealsign request --key KEYID --client-key .sealsign-dev/governance/treasury-app.key --evm 0x02f8…
  sealsign requests --state pending
  sealsign dev status
  sealsign dev down
`

func devDir(flagDir string) string {
	if flagDir != "" {
		return flagDir
	}
	if d := os.Getenv("SEALSIGN_DEV_DIR"); d != "" {
		return d
	}
	return ".sealsign-dev"
}

func devMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stderr, devUsage)
		return 2
	}
	verb := args[0]
	fs := flag.NewFlagSet("dev "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, devUsage) }
	dir := fs.String("dir", "", "state directory")
	var o devcluster.Options
	fs.StringVar(&o.BinDir, "bin-dir", "", "directory with sealsign-host and sealsign-enclave")
	fs.IntVar(&o.PreParamsPool, "preparams-pool", 2, "pre-parameter sets each enclave keeps ready")
	fs.StringVar(&o.InsecurePreParamsFixture, "insecure-preparams-fixture", "", "use PUBLIC pre-parameter sets (tests only)")
	fs.Func("policy-template", "genesis policy template (policy JSON; cluster_id, issued_at and not_before are filled in) for a new cluster; default: the dev policy; an existing cluster keeps its genesis", func(path string) error {
		b, err := os.ReadFile(path)
		o.PolicyJSON = b
		return err
	})
	fs.Func("tpm-party", "make party ID a tpm party (TPM simulator sealing and quotes); repeatable; kept across restarts", func(id string) error {
		if o.Kinds == nil {
			o.Kinds = map[string]string{}
		}
		o.Kinds[id] = "tpm"
		return nil
	})
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	d, _ := filepath.Abs(devDir(*dir))
	ctx := context.Background()
	switch verb {
	case "up":
		o.Dir, o.Progress = d, stdout
		c, err := devcluster.Up(ctx, o)
		if err != nil {
			fmt.Fprintf(stderr, "sealsign: dev up: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "appliance running in %s\n", d)
		for _, p := range c.Parties {
			fmt.Fprintf(stdout, "  party %s  %s  (log %s)\n", p.ID, p.URL, p.Log)
		}
		fmt.Fprintf(stdout, "pre-parameters for ECDSA keys are generated in the background (~20 s per set per party); 'sealsign dev status' shows progress\n")
		return 0
	case "down":
		c, err := devcluster.Load(d)
		if err != nil {
			fmt.Fprintf(stderr, "sealsign: dev down: %v\n", err)
			return 1
		}
		if err := c.Down(); err != nil {
			fmt.Fprintf(stderr, "sealsign: dev down: %v\n", err)
			return 1
		}
		fmt.Fprintln(stdout, "appliance stopped; sealed state kept in", d)
		return 0
	case "status":
		c, err := devcluster.Load(d)
		if err != nil {
			fmt.Fprintf(stderr, "sealsign: dev status: %v\n", err)
			return 1
		}
		rc := 0
		type row struct {
			Party  string `json:"party"`
			URL    string `json:"url"`
			Status any    `json:"status"`
		}
		var rows []row
		for _, p := range c.Parties {
			cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			h, err := c.Client(p.ID).Health(cctx)
			cancel()
			if err != nil {
				rows = append(rows, row{p.ID, p.URL, "down: " + err.Error()})
				rc = 1
				continue
			}
			rows = append(rows, row{p.ID, p.URL, h})
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(rows)
		return rc
	}
	fmt.Fprintf(stderr, "sealsign: dev: unknown verb %q\n\n%s", verb, devUsage)
	return 2
}
