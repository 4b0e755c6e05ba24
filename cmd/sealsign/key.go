package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/sealsign/sealsign/host/client"
	"github.com/sealsign/sealsign/host/devcluster"
)

func init() {
	commands["key"] = keyMain
	commands["sign"] = signMain
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

const signUsage = `Usage: sealsign sign --key KEYID (--digest HEX | --message HEX | --text STRING) [--signers a,b] [--host URL]

Signs with t+1 parties. ECDSA keys sign a 32-byte digest (--text hashes the
string with SHA-256); EdDSA keys sign the message itself. The output is JSON:
the signature (64-byte r‖s, low-S, with recovery id, for ECDSA; R‖S for
Ed25519), already verified by every signer and here again.

Examples:
  sealsign sign --key 3f2a… --text "pay 1 BTC"
  sealsign sign --key 3f2a… --message 68656c6c6f --signers a,c
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

func signMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sign", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, signUsage) }
	host := fs.String("host", "", "host API URL")
	dir := fs.String("dir", "", "dev appliance directory")
	keyID := fs.String("key", "", "key id")
	digestHex := fs.String("digest", "", "32-byte digest, hex (ECDSA)")
	msgHex := fs.String("message", "", "message, hex (EdDSA)")
	text := fs.String("text", "", "text: SHA-256 for ECDSA keys, the UTF-8 bytes for EdDSA keys")
	signers := fs.String("signers", "", "comma-separated signer parties (default: chosen by the host)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	given := 0
	for _, s := range []string{*digestHex, *msgHex, *text} {
		if s != "" {
			given++
		}
	}
	if *keyID == "" || given != 1 {
		fmt.Fprint(stderr, "sealsign: sign needs --key and exactly one of --digest, --message, --text\n\n"+signUsage)
		return 2
	}
	cl, err := hostClient(*host, *dir)
	if err != nil {
		fmt.Fprintf(stderr, "sealsign: %v\n", err)
		return 1
	}
	ctx := context.Background()
	k, err := cl.Key(ctx, *keyID)
	if err != nil {
		fmt.Fprintf(stderr, "sealsign: sign: %v\n", err)
		return 1
	}
	var who []string
	if *signers != "" {
		who = strings.Split(*signers, ",")
	}
	ecdsa := k.Algorithm == "ecdsa-secp256k1"
	var data []byte
	switch {
	case *text != "" && ecdsa:
		d := sha256.Sum256([]byte(*text))
		data = d[:]
	case *text != "":
		data = []byte(*text)
	default:
		data, err = hex.DecodeString(*digestHex + *msgHex)
		if err != nil {
			fmt.Fprintf(stderr, "sealsign: sign: not hex: %v\n", err)
			return 2
		}
	}
	if ecdsa {
		r, err := cl.SignDigest(ctx, *keyID, data, who...)
		if err == nil {
			err = devcluster.VerifyECDSA(k.PublicKey, data, r.Signature, *r.RecoveryID)
		}
		if err != nil {
			fmt.Fprintf(stderr, "sealsign: sign: %v\n", err)
			return 1
		}
		printJSON(stdout, r)
		return 0
	}
	r, err := cl.SignMessage(ctx, *keyID, data, who...)
	if err == nil {
		err = devcluster.VerifyEd25519(k.PublicKey, data, r.Signature)
	}
	if err != nil {
		fmt.Fprintf(stderr, "sealsign: sign: %v\n", err)
		return 1
	}
	printJSON(stdout, r)
	return 0
}
