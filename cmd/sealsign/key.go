package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"

	"github.com/sealsign/sealsign/governance/keys"
	"github.com/sealsign/sealsign/host/client"
	"github.com/sealsign/sealsign/host/devcluster"
)

func init() {
	commands["key"] = keyMain
	commands["gov-key"] = govKeyMain
}

const keyUsage = `Usage: sealsign key create|get|list [flags]

  create --alg ecdsa-secp256k1|eddsa-ed25519   run a distributed key generation
  get KEYID                                    show a key
  list                                         list keys

Flags: --host URL (default: party a of the dev appliance in --dir)

Examples:
  sealsign key create --alg eddsa-ed25519
  sealsign key list --host http://127.0.0.1:7701
`

func hostClient(host, dir string) (*client.Client, error) {
	if host != "" {
		return client.New(host), nil
	}
	c, err := devcluster.Load(devDir(dir))
	if err != nil {
		return nil, fmt.Errorf("%v (start one with 'sealsign dev up', or pass --host)", err)
	}
	return c.Client(c.Parties[0].ID), nil
}

func printJSON(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func keyMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stderr, keyUsage)
		return 2
	}
	verb := args[0]
	fs := flag.NewFlagSet("key "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, keyUsage) }
	host := fs.String("host", "", "host API URL")
	dir := fs.String("dir", "", "dev appliance directory")
	alg := fs.String("alg", "", "algorithm (create)")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	cl, err := hostClient(*host, *dir)
	if err != nil {
		fmt.Fprintf(stderr, "sealsign: %v\n", err)
		return 1
	}
	ctx := context.Background()
	var out any
	switch verb {
	case "create":
		if *alg == "" {
			fmt.Fprint(stderr, "sealsign: key create needs --alg\n\n"+keyUsage)
			return 2
		}
		out, err = cl.CreateKey(ctx, *alg)
	case "get":
		if fs.NArg() != 1 {
			fmt.Fprint(stderr, keyUsage)
			return 2
		}
		out, err = cl.Key(ctx, fs.Arg(0))
	case "list":
		out, err = cl.Keys(ctx)
	default:
		fmt.Fprintf(stderr, "sealsign: key: unknown verb %q\n\n%s", verb, keyUsage)
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "sealsign: key %s: %v\n", verb, err)
		return 1
	}
	printJSON(stdout, out)
	return 0
}

const govKeyUsage = `Usage: sealsign gov-key create --id ID --owner OWNER [--alg ed25519|ecdsa-p256] --out FILE

Creates a governance key: the key an admin signs policies with, an approver
signs approvals with, or a client signs signing requests with. The private
key is written to FILE (PEM PKCS#8 with Key-Id, Owner and Algorithm
headers, mode 0600; an existing file is never replaced). The public key is
printed as JSON, ready to paste into the manifest's governance section
(admins, approvers or clients). OWNER is the person or system holding the
key: rules such as "the initiator may not approve" compare owners.

Flags:
  --id ID       the key id the manifest lists (1-64 of letters, digits,
                '.', '_', '@', '-')
  --owner NAME  who holds it (same form)
  --alg ALG     ed25519 (default) or ecdsa-p256
  --out FILE    where to write the private key

Examples:
  sealsign gov-key create --id admin-1 --owner alice --out admin-1.key
  sealsign gov-key create --id client-1 --owner payments --alg ecdsa-p256 --out client-1.key

Exit codes: 0 ok, 1 failed, 2 usage.
`

func govKeyMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, govKeyUsage)
		return 2
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprint(stdout, govKeyUsage)
		return 0
	case "create":
	default:
		fmt.Fprintf(stderr, "sealsign: gov-key: unknown verb %q\n\n%s", args[0], govKeyUsage)
		return 2
	}
	fs := flag.NewFlagSet("gov-key create", flag.ContinueOnError)
	id := fs.String("id", "", "key id")
	owner := fs.String("owner", "", "key owner")
	alg := fs.String("alg", keys.Ed25519, "ed25519 or ecdsa-p256")
	out := fs.String("out", "", "private key file to write")
	pos, err := parseFlags(fs, args[1:])
	switch {
	case err != nil:
	case len(pos) != 0:
		err = usagef("create takes no arguments, got %q", pos)
	case !keys.ValidName(*id):
		err = usagef("--id %q is not a key id (1-64 of letters, digits, '.', '_', '@', '-', starting with a letter or digit)", *id)
	case !keys.ValidName(*owner):
		err = usagef("--owner %q is not an owner name (1-64 of letters, digits, '.', '_', '@', '-', starting with a letter or digit)", *owner)
	case *alg != keys.Ed25519 && *alg != keys.ECDSAP256:
		err = usagef("--alg %q unsupported (want %s or %s)", *alg, keys.Ed25519, keys.ECDSAP256)
	case *out == "":
		err = usagef("--out FILE is required")
	}
	if err != nil {
		return usageExit("gov-key create", govKeyUsage, err, stdout, stderr)
	}
	k, err := keys.Generate(*id, *owner, *alg)
	if err != nil {
		return failExit("gov-key create", err, stderr)
	}
	if err := k.WriteFile(*out); err != nil {
		return failExit("gov-key create", err, stderr)
	}
	fmt.Fprintf(stderr, "sealsign: wrote private key %q to %s (mode 0600); the public key follows\n", *id, *out)
	printJSON(stdout, k.Public)
	return 0
}
