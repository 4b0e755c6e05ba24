package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/sealsign/sealsign/governance/request"
)

const keyDeriveUsage = `Usage: sealsign key derive KEYID --path m/0/1 [--host URL | --dir DIR] [--json]

Shows the BIP-32 child of a secp256k1 threshold key at a non-hardened path:
its public key, its Ethereum address and its extended public key (xpub).
The key's chain code was agreed by all parties at keygen, so the xpub at
"m" lets any BIP-32 wallet derive the same children. Hardened indices
(44', 0h) cannot be derived: they need the private key, which no party
ever holds. Sign with a child with "sealsign request --path".

Flags:
  --path PATH   "m" (the key itself) or "m/" and up to 16 indices below
                2^31, like m/0/1 (default m)
  --host URL    a party's host API (default: party a of the dev appliance)
  --dir DIR     dev appliance directory
  --json        print the host's answer as JSON

Examples:
  sealsign key derive 3f2a… --path m/0/5
  sealsign key derive 3f2a… --host http://10.0.0.5:7701 --json | jq -r .xpub

Exit codes: 0 ok, 1 failed, 2 usage.
`

func keyDeriveMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("key derive", flag.ContinueOnError)
	var t target
	t.register(fs, false)
	pathText := fs.String("path", "m", "BIP-32 path, non-hardened")
	asJSON := fs.Bool("json", false, "print JSON")
	usage := func(err error) int { return usageExit("key derive", keyDeriveUsage, err, stdout, stderr) }
	pos, err := parseFlags(fs, args)
	if err != nil {
		return usage(err)
	}
	if len(pos) != 1 {
		return usage(usagef("want one KEYID (see \"sealsign key list\"), got %d arguments", len(pos)))
	}
	path, err := request.ParsePath(*pathText)
	if err != nil {
		return usage(usagef("--path: %v", err))
	}
	cl, err := t.client()
	if err != nil {
		return failExit("key derive", err, stderr)
	}
	d, err := cl.Derive(context.Background(), pos[0], path)
	if err != nil {
		return failExit("key derive", err, stderr)
	}
	if *asJSON {
		printJSON(stdout, d)
		return 0
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, clean(v)) }
	row("key", d.KeyID)
	row("path", d.Path)
	row("public key", d.PublicKey)
	row("address", d.Address)
	row("xpub", d.XPub)
	row("chain code", d.ChainCode)
	tw.Flush()
	return 0
}
