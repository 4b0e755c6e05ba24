package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/sealsign/sealsign/governance/ceremony"
	"github.com/sealsign/sealsign/governance/keys"
	"github.com/sealsign/sealsign/host/client"
	"github.com/sealsign/sealsign/host/devcluster"
)

func init() {
	commands["key"] = keyMain
	commands["gov-key"] = govKeyMain
}

const keyUsage = `Usage: sealsign key create|get|list|derive|refresh|reshare [flags]

  create --alg ecdsa-secp256k1|eddsa-ed25519 --admin-key FILE --admin-key FILE
         [--parties a,b,c --threshold 1]       run a distributed key generation
  get KEYID                                    show a key
  list                                         list keys
  refresh KEYID                                new shares, same key and committee
  reshare KEYID --parties LIST --threshold T   move the key to another committee
                                               (see "sealsign key refresh -h")
  derive KEYID --path m/0/1                    show a BIP-32 child key and its
                                               xpub ("sealsign key derive -h")

Key creation is a ceremony the cluster's admins authorise: create signs a
keygen ceremony (every party of the manifest, at its threshold) with each
--admin-key, and every enclave verifies that a quorum of the manifest's
admins signed it. Without --host and without --admin-key, create signs
with the dev appliance's admin-1 and admin-2.

Flags:
  --host URL         a party's host API (default: party a of the dev
                     appliance in --dir)
  --dir DIR          dev appliance directory
  --manifest FILE    the cluster manifest (default: the dev appliance's);
                     create reads cluster id, parties and threshold from it
  --admin-key FILE   an admin's key file from "sealsign gov-key create"
                     (create; repeat once per admin of the quorum)
  --ttl DURATION     how long the ceremony stays valid (create; default
                     10m, at most 1h)
  --parties LIST     create: the key's committee, a subset of the
                     manifest's parties (governed clusters; default all)
  --threshold T      create: the key's threshold with --parties

Examples:
  sealsign key create --alg eddsa-ed25519
  sealsign key create --alg ecdsa-secp256k1 --host http://10.0.0.5:7701 \
      --manifest manifest.json --admin-key admin-1.key --admin-key admin-2.key
  sealsign key list --host http://127.0.0.1:7701

Exit codes: 0 ok, 1 failed, 2 usage.
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
	if verb == "refresh" || verb == "reshare" {
		return reshareMain(verb, args[1:], stdout, stderr)
	}
	if verb == "derive" {
		return keyDeriveMain(args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("key "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, keyUsage) }
	var t target
	t.register(fs, true)
	alg := fs.String("alg", "", "algorithm (create)")
	partiesFlag := fs.String("parties", "", "committee (create)")
	threshold := fs.Int("threshold", 0, "threshold with --parties (create)")
	ttl := fs.Duration("ttl", 10*time.Minute, "ceremony lifetime (create)")
	var adminKeys []string
	fs.Func("admin-key", "admin key file (create; repeatable)", func(s string) error {
		adminKeys = append(adminKeys, s)
		return nil
	})
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	cl, err := t.client()
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
		committee := splitList(*partiesFlag)
		if (len(committee) == 0) != (*threshold == 0) {
			return usageExit("key create", keyUsage, usagef("--parties and --threshold go together"), stdout, stderr)
		}
		var cer []byte
		if cer, err = keygenCeremony(&t, *alg, *ttl, adminKeys, committee, *threshold, stderr); err != nil {
			if errors.As(err, new(usageError)) {
				return usageExit("key create", keyUsage, err, stdout, stderr)
			}
			return failExit("key create", err, stderr)
		}
		if len(committee) > 0 {
			out, err = cl.CreateKeyAmong(ctx, *alg, cer, committee, *threshold)
		} else {
			out, err = cl.CreateKey(ctx, *alg, cer)
		}
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

// keygenCeremony signs a keygen ceremony for the manifest at hand with the
// admin keys given, or the dev appliance's admin-1 and admin-2 when it
// talks to the dev appliance and none is given. A manifest without
// governance needs no ceremony (nil).
func keygenCeremony(t *target, alg string, ttl time.Duration, files []string, committee []string, threshold int, stderr io.Writer) ([]byte, error) {
	m, path, err := t.loadManifest()
	if err != nil {
		return nil, err
	}
	if m == nil {
		if path, _ := t.manifestPath(); path != "" {
			return nil, usagef("no manifest at %s to read the cluster's parties and threshold from; pass --manifest FILE or --dir DIR", path)
		}
		return nil, usagef("with --host, pass --manifest FILE: the ceremony names the cluster's parties and threshold")
	}
	if m.Governance == nil {
		if len(files) > 0 || len(committee) > 0 {
			return nil, fmt.Errorf("manifest %s has no governance section: its enclaves create keys among every party without a ceremony; drop --admin-key and --parties", path)
		}
		return nil, nil
	}
	admins, err := ceremonyAdmins(t, m.Governance.AdminQuorum, "keygen", files, stderr)
	if err != nil {
		return nil, err
	}
	if len(committee) == 0 {
		committee, threshold = m.PartyIDs(), m.Threshold
	}
	return client.NewCeremony(m.ClusterID, ceremony.KindKeygen, alg, committee, threshold, ttl, admins...)
}

// ceremonyAdmins loads the admin keys a ceremony is signed with: the
// files given, or the dev appliance's admin-1 and admin-2 when the command
// talks to the dev appliance and none is given.
func ceremonyAdmins(t *target, quorum int, kind string, files []string, stderr io.Writer) ([]*keys.PrivateKey, error) {
	var admins []*keys.PrivateKey
	if len(files) == 0 {
		if t.host != "" {
			return nil, usagef("a %s ceremony needs a quorum of admins (%d): pass --admin-key FILE once per admin", kind, quorum)
		}
		c, err := devcluster.Load(devDir(t.dir))
		if err != nil {
			return nil, err
		}
		for _, id := range devcluster.DevCeremonyAdmins {
			k, err := c.GovernanceKey(id)
			if err != nil {
				return nil, err
			}
			admins = append(admins, k)
		}
		fmt.Fprintf(stderr, "sealsign: no --admin-key: signing the %s ceremony with the dev appliance's %s\n", kind, strings.Join(devcluster.DevCeremonyAdmins, " and "))
	}
	for _, f := range files {
		k, err := keys.LoadPrivate(f)
		if err != nil {
			return nil, err
		}
		admins = append(admins, k)
	}
	return admins, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
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
