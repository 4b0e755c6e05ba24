package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/sealsign/sealsign/enclave/api"
	"github.com/sealsign/sealsign/governance/keys"
	"github.com/sealsign/sealsign/governance/request"
	"github.com/sealsign/sealsign/governance/tx"
	"github.com/sealsign/sealsign/host/client"
	"github.com/sealsign/sealsign/host/server"
)

func init() {
	commands["request"] = requestMain
	commands["requests"] = requestsMain
}

const requestUsage = `Usage: sealsign request --key KEYID --client-key FILE PAYLOAD [flags]

Builds a signing request, signs it with the client's governance key (a key
file from "sealsign gov-key create" whose key is among the manifest's
clients) and submits it. Every signing enclave decodes the payload itself,
evaluates its policy and signs only if the policy allows; the answer is
signed (the signatures and, for a transaction, the signed transaction),
pending (approvals needed: "sealsign approve") or denied (every reason).

Payload (exactly one):
  --evm HEX          an unsigned EVM transaction (legacy EIP-155, 0x01 or
                     0x02), hex
  --evm-file FILE    the same in a file, hex or raw bytes
  --psbt-file FILE   a BIP-174 PSBT (P2WPKH inputs), base64, hex or raw
  --raw-digest HEX   a 32-byte digest (ECDSA keys) or a message (EdDSA
                     keys), signed as is; policies usually deny these

Flags:
  --key KEYID        the threshold key to sign with ("sealsign key list")
  --client-key FILE  the client's governance key file
  --signers a,b      the parties asked to sign (default: the host chooses)
  --path m/0/5       sign with the key's BIP-32 child at this non-hardened
                     path ("sealsign key derive"; secp256k1 keys only)
  --ttl DURATION     how long the request stays valid (default 10m, at most
                     15m: enclaves refuse longer-lived requests)
  --cluster ID       the cluster id (default: cluster_id of the manifest in
                     --dir; required with --host)
  --host URL         a party's host API (default: party a of the dev
                     appliance in --dir)
  --dir DIR          dev appliance directory (default $SEALSIGN_DEV_DIR or
                     ./.sealsign-dev)
  --json             print the host's request status as JSON

A dev appliance ("sealsign dev up") keeps its governance key files in
DIR/governance/: clients treasury-app and ops-bot, approvers
approver-alice, -bob and -carol, admins admin-1 to admin-3.

Examples:
  sealsign request --key 3f2a… --client-key .sealsign-dev/governance/treasury-app.key \
      --evm 0xec098504a817c800825208943535353535353535353535353535353535353535880de0b6b3a764000080018080
  sealsign request --key 3f2a… --client-key client-1.key --psbt-file spend.psbt --signers a,c
  sealsign request --host http://10.0.0.5:7701 --cluster prod-eu --key 3f2a… \
      --client-key client-1.key --evm-file tx.hex --json | jq .result.transaction

Exit codes: 0 signed or pending, 1 denied, rejected or failed (every reason
on stderr) or the request could not be made, 2 usage.
`

const requestsUsage = `Usage: sealsign requests [--state pending] [--host URL | --dir DIR] [--json]

Lists the requests the host tracks: id, state, threshold key, client key
and, for pending ones, the approvals they still need (as the host's party
evaluated them).

Examples:
  sealsign requests
  sealsign requests --state pending --json | jq -r '.[].request_id'

Exit codes: 0 ok, 1 failed, 2 usage.
`

// requestNow is the clock of the governance commands; tests pin it.
var requestNow = time.Now

// maxPayloadFile bounds a payload file: the largest payload as hex, and
// some whitespace.
const maxPayloadFile = 2*request.MaxPayloadSize + 4<<10

// usageExit reports help (exit 0, usage on stdout) or a usage error (exit
// 2, on stderr).
func usageExit(name, usage string, err error, stdout, stderr io.Writer) int {
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "sealsign: %s: %v\nRun \"sealsign %s -h\" for usage.\n", name, err, name)
	return 2
}

// failExit reports an operation that failed (exit 1).
func failExit(name string, err error, stderr io.Writer, hints ...string) int {
	fmt.Fprintf(stderr, "sealsign: %s: %v\n", name, err)
	for _, h := range hints {
		fmt.Fprintf(stderr, "sealsign: hint: %s\n", h)
	}
	return 1
}

// target is the host a governance command talks to, and where the
// cluster's manifest is when one is at hand.
type target struct {
	host, dir, manifest, cluster string
}

func (t *target) register(fs *flag.FlagSet, withManifest bool) {
	fs.StringVar(&t.host, "host", "", "a party's host API URL")
	fs.StringVar(&t.dir, "dir", "", "dev appliance directory")
	fs.StringVar(&t.cluster, "cluster", "", "cluster id")
	if withManifest {
		fs.StringVar(&t.manifest, "manifest", "", "cluster manifest (JSON)")
	}
}

func (t *target) client() (*client.Client, error) { return hostClient(t.host, t.dir) }

// manifestPath is --manifest, else the dev appliance's manifest when the
// command talks to it (no --host, or --dir given), else "". explicit says
// whether the user named the file, so that its absence is an error.
func (t *target) manifestPath() (path string, explicit bool) {
	switch {
	case t.manifest != "":
		return t.manifest, true
	case t.host == "" || t.dir != "":
		return filepath.Join(devDir(t.dir), "manifest.json"), t.dir != ""
	}
	return "", false
}

// loadManifest returns the manifest at hand, or nil when there is none.
func (t *target) loadManifest() (*api.Manifest, string, error) {
	path, explicit := t.manifestPath()
	if path == "" {
		return nil, "", nil
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && !explicit {
		return nil, "", nil
	}
	if err != nil {
		return nil, path, fmt.Errorf("manifest: %w", err)
	}
	m, err := api.ParseManifest(data)
	if err != nil {
		return nil, path, fmt.Errorf("%s: %w", path, err)
	}
	return m, path, nil
}

// clusterID is --cluster, else the manifest's cluster_id. Without either
// it is a usage error: the host is not trusted to say which cluster it
// fronts, and a request signed for the wrong one is refused anyway.
func (t *target) clusterID() (string, error) {
	if t.cluster != "" {
		if !keys.ValidName(t.cluster) {
			return "", usagef("--cluster %q is not a cluster id (1-64 of letters, digits, '.', '_', '@', '-')", t.cluster)
		}
		return t.cluster, nil
	}
	m, _, err := t.loadManifest()
	if err != nil {
		return "", err
	}
	if m == nil {
		if p, _ := t.manifestPath(); p != "" {
			return "", usagef("no --cluster, and no manifest at %s to read cluster_id from; pass --cluster ID or --dir DIR", p)
		}
		return "", usagef("with --host, pass --cluster ID (the cluster_id of the cluster's manifest) or --manifest FILE")
	}
	return m.ClusterID, nil
}

func requestMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, requestUsage)
		return 2
	}
	fs := flag.NewFlagSet("request", flag.ContinueOnError)
	var t target
	t.register(fs, false)
	keyID := fs.String("key", "", "threshold key id")
	clientKey := fs.String("client-key", "", "client governance key file")
	evmHex := fs.String("evm", "", "unsigned EVM transaction, hex")
	evmFile := fs.String("evm-file", "", "unsigned EVM transaction file, hex or raw")
	psbtFile := fs.String("psbt-file", "", "PSBT file, base64, hex or raw")
	rawHex := fs.String("raw-digest", "", "raw digest or message, hex")
	signers := fs.String("signers", "", "comma-separated signer parties")
	pathText := fs.String("path", "", "BIP-32 path of the child key to sign with")
	ttl := fs.Duration("ttl", 10*time.Minute, "request lifetime")
	asJSON := fs.Bool("json", false, "print JSON")
	usage := func(err error) int { return usageExit("request", requestUsage, err, stdout, stderr) }

	pos, err := parseFlags(fs, args)
	if err != nil {
		return usage(err)
	}
	switch {
	case len(pos) != 0:
		return usage(usagef("unexpected arguments %q (the payload is a flag: --evm, --evm-file, --psbt-file or --raw-digest)", pos))
	case *keyID == "":
		return usage(usagef("--key KEYID is required (see \"sealsign key list\")"))
	case *clientKey == "":
		return usage(usagef("--client-key FILE is required (a client key file from \"sealsign gov-key create\")"))
	case *ttl <= 0:
		return usage(usagef("--ttl %v must be positive", *ttl))
	case *ttl > request.DefaultMaxLifetime:
		return usage(usagef("--ttl %v is longer than the %v enclaves accept", *ttl, request.DefaultMaxLifetime))
	}
	who, err := parseSigners(*signers)
	if err != nil {
		return usage(err)
	}
	var path request.Path
	if *pathText != "" {
		if path, err = request.ParsePath(*pathText); err != nil {
			return usage(usagef("--path: %v", err))
		}
	}
	kind, payload, err := readPayload(*evmHex, *evmFile, *psbtFile, *rawHex)
	if err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			return usage(err)
		}
		return failExit("request", err, stderr)
	}
	cl, err := t.client()
	if err != nil {
		return failExit("request", err, stderr)
	}
	clusterID, err := t.clusterID()
	if err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			return usage(err)
		}
		return failExit("request", err, stderr)
	}
	k, err := keys.LoadPrivate(*clientKey)
	if err != nil {
		return failExit("request", err, stderr)
	}
	signed, err := client.NewRequestAt(k, clusterID, *keyID, path, kind, payload, *ttl, who...)
	if err != nil {
		return failExit("request", err, stderr)
	}
	st, err := cl.Submit(context.Background(), signed)
	return reportStatus("request", st, err, *asJSON, stdout, stderr)
}

// parseSigners reads --signers: party ids, sorted and unique as a request
// carries them.
func parseSigners(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var who []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			who = append(who, p)
		}
	}
	sort.Strings(who)
	for i := 1; i < len(who); i++ {
		if who[i] == who[i-1] {
			return nil, usagef("--signers names party %q twice", who[i])
		}
	}
	if len(who) > request.MaxSigners {
		return nil, usagef("--signers names %d parties, at most %d", len(who), request.MaxSigners)
	}
	return who, nil
}

// readPayload returns the one payload the flags give.
func readPayload(evmHex, evmFile, psbtFile, rawHex string) (tx.Kind, []byte, error) {
	given := 0
	for _, s := range []string{evmHex, evmFile, psbtFile, rawHex} {
		if s != "" {
			given++
		}
	}
	if given != 1 {
		return "", nil, usagef("give exactly one payload: --evm, --evm-file, --psbt-file or --raw-digest (got %d)", given)
	}
	var (
		kind    tx.Kind
		payload []byte
		err     error
	)
	switch {
	case evmHex != "":
		kind = tx.KindEVM
		if payload, err = decodeHex(evmHex); err != nil {
			return "", nil, usagef("--evm: %v", err)
		}
	case rawHex != "":
		kind = tx.KindRaw
		if payload, err = decodeHex(rawHex); err != nil {
			return "", nil, usagef("--raw-digest: %v", err)
		}
	case evmFile != "":
		kind = tx.KindEVM
		data, err := readLimited(evmFile)
		if err != nil {
			return "", nil, err
		}
		// Raw RLP starts with 0x01, 0x02 or ≥ 0xc0, never a hex digit.
		if text := strings.TrimSpace(string(data)); isHexText(text) {
			payload, _ = decodeHex(text)
		} else {
			payload = data
		}
	case psbtFile != "":
		kind = tx.KindPSBT
		data, err := readLimited(psbtFile)
		if err != nil {
			return "", nil, err
		}
		if payload, err = decodePSBTFile(data); err != nil {
			return "", nil, fmt.Errorf("%s: %w", psbtFile, err)
		}
	}
	if len(payload) == 0 {
		return "", nil, fmt.Errorf("the %s payload is empty", kind)
	}
	if len(payload) > request.MaxPayloadSize {
		return "", nil, fmt.Errorf("the %s payload is %d bytes, a request carries at most %d", kind, len(payload), request.MaxPayloadSize)
	}
	return kind, payload, nil
}

func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxPayloadFile+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxPayloadFile {
		return nil, fmt.Errorf("%s is larger than %d KiB: no payload is that large", path, maxPayloadFile>>10)
	}
	return data, nil
}

func isHexText(s string) bool {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X")
	return s != "" && len(s)%2 == 0 && strings.Trim(s, "0123456789abcdefABCDEF") == ""
}

func decodeHex(s string) ([]byte, error) {
	s = strings.TrimPrefix(strings.TrimPrefix(strings.TrimSpace(s), "0x"), "0X")
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("not hex: %v", err)
	}
	return b, nil
}

// psbtMagic starts every binary PSBT (BIP-174).
var psbtMagic = []byte("psbt\xff")

// decodePSBTFile accepts a PSBT as raw bytes, base64 (how wallets export
// them: "cHNidP…") or hex ("70736274ff…").
func decodePSBTFile(data []byte) ([]byte, error) {
	if bytes.HasPrefix(data, psbtMagic) {
		return data, nil
	}
	text := strings.Join(strings.Fields(string(data)), "")
	var b []byte
	if isHexText(text) {
		b, _ = decodeHex(text)
	} else if d, err := base64.StdEncoding.DecodeString(text); err == nil {
		b = d
	}
	if !bytes.HasPrefix(b, psbtMagic) {
		return nil, errors.New(`not a PSBT: want raw bytes starting "psbt\xff", base64 starting "cHNidP" or hex starting "70736274ff"`)
	}
	return b, nil
}

// reportStatus prints the outcome of a submit or approval: the status as
// text or JSON on stdout, and for a request that ended without a signature
// every reason on stderr (exit 1).
func reportStatus(name string, st *server.RequestStatus, err error, asJSON bool, stdout, stderr io.Writer) int {
	var re *client.RequestError
	if err != nil && !errors.As(err, &re) {
		return failExit(name, err, stderr)
	}
	if st == nil && re != nil {
		st = re.Status
	}
	if asJSON {
		printJSON(stdout, st)
	} else {
		printStatus(stdout, st)
	}
	switch st.State {
	case server.StateSigned, server.StatePending:
		return 0
	}
	printReasons(stderr, st)
	return 1
}

// printStatus shows one request as a person reads it.
func printStatus(w io.Writer, st *server.RequestStatus) {
	fmt.Fprintf(w, "request %s: %s\n", clean(st.RequestID), clean(st.State))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, format string, a ...any) { fmt.Fprintf(tw, "  %s\t%s\n", k, fmt.Sprintf(format, a...)) }
	row("key", "%s", clean(st.KeyID))
	row("client", "%s", clean(st.ClientKeyID))
	if r := st.Result; st.State == server.StateSigned && r != nil {
		row("policy", "version %d, rule %s", st.PolicyVersion, clean(r.RuleID))
		row("signers", "%s", clean(strings.Join(r.Signers, ", ")))
		if r.DerivationPath != "" {
			row("path", "%s (child key %s)", clean(r.DerivationPath), clean(r.PublicKey))
		}
		for i := range r.Digests {
			n := ""
			if len(r.Digests) > 1 {
				n = " " + strconv.Itoa(i+1)
			}
			row("digest"+n, "%s", clean(r.Digests[i]))
			if i < len(r.Signatures) {
				rec := ""
				if i < len(r.RecoveryIDs) {
					rec = fmt.Sprintf(" (recovery id %d)", r.RecoveryIDs[i])
				}
				row("signature"+n, "%s%s", clean(r.Signatures[i]), rec)
			}
		}
		if r.Transaction != "" {
			row("transaction", "%s", clean(r.Transaction))
		}
		tw.Flush()
		return
	}
	row("policy", "version %d", st.PolicyVersion)
	if st.ExpiresAt > 0 {
		row("expires", "%s", time.Unix(st.ExpiresAt, 0).UTC().Format(time.RFC3339))
	}
	if st.State == server.StatePending {
		if len(st.Verdicts) > 0 {
			v := st.Verdicts[0]
			for _, pr := range v.Pending {
				row("needs", "%s (party %s)", needsText(pr), clean(v.PartyID))
			}
			for _, a := range v.Approvals {
				row("approved", "%s: %s", clean(a.ApproverKeyID), clean(a.Decision))
			}
			for _, a := range v.Ignored {
				row("ignored", "%s: %s", clean(a.ApproverKeyID), clean(a.Error))
			}
		}
		tw.Flush()
		fmt.Fprintf(w, "approve with: sealsign approve %s --approver-key FILE\n", clean(st.RequestID))
		return
	}
	tw.Flush()
}

// needsText says what one pending rule still needs, e.g.
// "rule eth-large: treasury 1 of 2 (1 more)".
func needsText(pr api.PendingRule) string {
	var groups []string
	for _, g := range pr.Groups {
		s := fmt.Sprintf("%s %d of %d", clean(g.Group), g.Have, g.Threshold)
		if g.Need > 0 {
			s += fmt.Sprintf(" (%d more)", g.Need)
		}
		if g.Excluded > 0 {
			s += fmt.Sprintf(" [%d from the initiator not counted]", g.Excluded)
		}
		groups = append(groups, s)
	}
	sep := " and "
	if pr.Logic == "or" {
		sep = " or "
	}
	return fmt.Sprintf("rule %s: %s", clean(pr.RuleID), strings.Join(groups, sep))
}

// printReasons lists why a request ended without a signature: every
// party's denials (identical ones once, naming every party that gave
// them), rejecting approvers and the host's error.
func printReasons(w io.Writer, st *server.RequestStatus) {
	lines := denialLines(st.Verdicts)
	for _, l := range lines {
		fmt.Fprintf(w, "sealsign: %s\n", l)
	}
	rejected := map[string]bool{}
	for _, v := range st.Verdicts {
		for _, a := range v.Approvals {
			if a.Decision == "reject" && !rejected[a.ApproverKeyID] {
				rejected[a.ApproverKeyID] = true
				fmt.Fprintf(w, "sealsign: rejected by approver %s\n", clean(a.ApproverKeyID))
			}
		}
	}
	msg := fmt.Sprintf("request %s %s", clean(st.RequestID), clean(st.State))
	if st.Error != "" {
		msg += ": " + clean(st.Error)
	}
	fmt.Fprintf(w, "sealsign: %s\n", msg)
}

// denialLines formats denials as "denied by policy v1 on party a: rule
// eth-small: condition-false: request.chain == 'eip155:1'".
func denialLines(vs []api.Verdict) []string {
	var order []string
	parties := map[string][]string{}
	for _, v := range vs {
		for _, d := range v.Denials {
			key := fmt.Sprintf("v%d: %s", v.PolicyVersion, denialText(d))
			if _, seen := parties[key]; !seen {
				order = append(order, key)
			}
			parties[key] = append(parties[key], clean(v.PartyID))
		}
	}
	lines := make([]string, 0, len(order))
	for _, key := range order {
		version, text, _ := strings.Cut(key, ": ")
		on := "party " + parties[key][0]
		if len(parties[key]) > 1 {
			on = "parties " + strings.Join(parties[key], ", ")
		}
		lines = append(lines, fmt.Sprintf("denied by policy %s on %s: %s", version, on, text))
	}
	return lines
}

func denialText(d api.Denial) string {
	var parts []string
	if d.RuleID != "" {
		parts = append(parts, "rule "+clean(d.RuleID))
	}
	if d.LimitID != "" {
		parts = append(parts, "limit "+clean(d.LimitID))
	}
	parts = append(parts, clean(d.Code))
	if d.Clause != "" {
		parts = append(parts, clean(d.Clause))
	}
	s := strings.Join(parts, ": ")
	if d.Detail != "" {
		s += " (" + clean(d.Detail) + ")"
	}
	return s
}

// clean makes text from the host safe to print: the host is not trusted,
// and a terminal escape sequence in a reason could rewrite what an
// approver sees. Text with anything but printable characters is quoted.
func clean(s string) string {
	for _, r := range s {
		if !unicode.IsPrint(r) {
			q := strconv.QuoteToGraphic(s)
			return q[1 : len(q)-1]
		}
	}
	return s
}

func requestsMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("requests", flag.ContinueOnError)
	host := fs.String("host", "", "a party's host API URL")
	dir := fs.String("dir", "", "dev appliance directory")
	state := fs.String("state", "", "only requests in this state (pending, signed, denied, rejected, failed)")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parseFlags(fs, args)
	if err == nil && len(pos) != 0 {
		err = usagef("requests takes no arguments, got %q", pos)
	}
	if err == nil {
		switch *state {
		case "", server.StatePending, server.StateSigned, server.StateDenied, server.StateRejected, server.StateFailed:
		default:
			err = usagef("--state %q unknown (want pending, signed, denied, rejected or failed)", *state)
		}
	}
	if err != nil {
		return usageExit("requests", requestsUsage, err, stdout, stderr)
	}
	cl, err := hostClient(*host, *dir)
	if err != nil {
		return failExit("requests", err, stderr)
	}
	list, err := cl.Requests(context.Background(), *state)
	if err != nil {
		return failExit("requests", err, stderr)
	}
	if *asJSON {
		if list == nil {
			list = []server.RequestStatus{}
		}
		printJSON(stdout, list)
		return 0
	}
	if len(list) == 0 {
		fmt.Fprintln(stdout, "no requests")
		return 0
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "REQUEST\tSTATE\tKEY\tCLIENT\tNEEDS")
	for _, st := range list {
		needs := ""
		if st.State == server.StatePending && len(st.Verdicts) > 0 {
			var ns []string
			for _, pr := range st.Verdicts[0].Pending {
				ns = append(ns, needsText(pr))
			}
			needs = strings.Join(ns, "; or ")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", clean(st.RequestID), clean(st.State), clean(st.KeyID), clean(st.ClientKeyID), needs)
	}
	tw.Flush()
	return 0
}
