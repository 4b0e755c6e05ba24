package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sealsign/sealsign/enclave/api"
	"github.com/sealsign/sealsign/governance/approval"
	"github.com/sealsign/sealsign/governance/canon"
	"github.com/sealsign/sealsign/governance/keys"
	"github.com/sealsign/sealsign/governance/request"
	"github.com/sealsign/sealsign/governance/tx"
	"github.com/sealsign/sealsign/host/client"
	"github.com/sealsign/sealsign/host/server"
)

func init() {
	commands["approve"] = func(args []string, stdout, stderr io.Writer) int {
		return decideMain(approval.Approve, args, stdout, stderr)
	}
	commands["reject"] = func(args []string, stdout, stderr io.Writer) int {
		return decideMain(approval.Reject, args, stdout, stderr)
	}
}

const approveUsage = `Usage:
  sealsign approve ID --approver-key FILE [--reason TEXT] [--ttl 1h] [--yes] [flags]
  sealsign reject ID --approver-key FILE --reason TEXT [flags]

Fetches pending request ID from the host, checks it and shows what it
would sign, then signs an approval (or rejection) with the approver's
governance key and sends it. What is shown is computed here, never taken
from the host: the request's client signature is verified against the
manifest's client keys (when a manifest is at hand), and its payload is
decoded locally with the threshold key's public key. The approval binds to
the request's digest, payload hash and policy version; every enclave checks
it again. approve asks for confirmation unless --yes; one rejection aborts
the request.

Flags:
  --approver-key FILE     the approver's governance key file
  --reason TEXT           free text shown with the decision (required for
                          reject; at most 256 bytes)
  --ttl DURATION          how long the decision stays valid (default 1h, at
                          most 168h)
  --yes                   approve without asking
  --manifest FILE         the cluster manifest to verify the request with
                          (default: manifest.json in --dir)
  --cluster ID            the cluster id when no manifest is at hand
  --bitcoin-network NAME  decode PSBTs for mainnet (default), testnet3,
                          signet or regtest
  --host URL              a party's host API (default: party a of the dev
                          appliance in --dir)
  --dir DIR               dev appliance directory
  --json                  print the local summary and the resulting status
                          as JSON (the human summary goes to stderr)

Examples:
  sealsign approve req-3c9a… --approver-key .sealsign-dev/governance/approver-alice.key
  sealsign approve req-3c9a… --approver-key treasury-1.key --yes --json
  sealsign reject req-3c9a… --approver-key treasury-2.key --reason "unknown destination"
  sealsign approve req-3c9a… --host http://10.0.0.5:7701 --manifest prod.json \
      --approver-key treasury-1.key

Exit codes: 0 the decision was accepted (approve: the request is signed or
still pending; reject: it is rejected), 1 refused, failed, not confirmed,
or (approve) the request ended denied, rejected or failed, 2 usage.
`

// approveStdin is where approve reads its confirmation; tests replace it.
var approveStdin io.Reader = os.Stdin

// approveReport is approve's --json output.
type approveReport struct {
	RequestID string `json:"request_id"`
	Decision  string `json:"decision"`
	// Verified says whether the request's client signature was verified
	// here, against Manifest.
	Verified    bool                  `json:"request_verified"`
	Manifest    string                `json:"manifest,omitempty"`
	ClusterID   string                `json:"cluster_id"`
	Summary     api.TxSummary         `json:"summary"` // decoded here
	PayloadHash string                `json:"payload_hash"`
	Status      *server.RequestStatus `json:"status"`
}

func decideMain(decision string, args []string, stdout, stderr io.Writer) int {
	name := decision
	if len(args) == 0 {
		fmt.Fprint(stderr, approveUsage)
		return 2
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	var t target
	t.register(fs, true)
	keyFile := fs.String("approver-key", "", "approver governance key file")
	reason := fs.String("reason", "", "reason shown with the decision")
	ttl := fs.Duration("ttl", time.Hour, "decision lifetime")
	yes := fs.Bool("yes", false, "approve without asking")
	network := fs.String("bitcoin-network", "", "mainnet, testnet3, signet or regtest")
	asJSON := fs.Bool("json", false, "print JSON")
	usage := func(err error) int { return usageExit(name, approveUsage, err, stdout, stderr) }

	pos, err := parseFlags(fs, args)
	if err != nil {
		return usage(err)
	}
	switch {
	case len(pos) != 1:
		return usage(usagef("%s takes one request ID, got %d arguments", name, len(pos)))
	case !request.ValidID(pos[0]):
		return usage(usagef("%q is not a request id (16-64 of letters, digits, '_' and '-')", pos[0]))
	case *keyFile == "":
		return usage(usagef("--approver-key FILE is required"))
	case decision == approval.Reject && strings.TrimSpace(*reason) == "":
		return usage(usagef("reject needs --reason TEXT: the initiator and the other approvers see it"))
	case len(*reason) > approval.MaxReasonLen:
		return usage(usagef("--reason is %d bytes, at most %d", len(*reason), approval.MaxReasonLen))
	case *ttl <= 0 || *ttl > approval.MaxLifetime:
		return usage(usagef("--ttl %v must be positive and at most %v", *ttl, approval.MaxLifetime))
	case decision == approval.Reject && *yes:
		return usage(usagef("--yes is for approve; reject does not ask"))
	}
	id := pos[0]
	fail := func(err error, hints ...string) int { return failExit(name, err, stderr, hints...) }

	ak, err := keys.LoadPrivate(*keyFile)
	if err != nil {
		return fail(err)
	}
	cl, err := t.client()
	if err != nil {
		return fail(err)
	}
	m, mpath, err := t.loadManifest()
	if err != nil {
		return fail(err)
	}
	ctx := context.Background()
	st, err := cl.Request(ctx, id)
	if err != nil {
		var re *client.RequestError
		if errors.As(err, &re) {
			printReasons(stderr, re.Status)
			return fail(fmt.Errorf("request %s is %s: nothing to %s", id, clean(re.Status.State), decision))
		}
		return fail(err)
	}
	switch {
	case st.State == server.StateSigned && decision == approval.Approve:
		fmt.Fprintf(stderr, "sealsign: approve: request %s is already signed; nothing to approve\n", id)
		return reportStatus(name, st, nil, *asJSON, stdout, stderr)
	case st.State != server.StatePending:
		return fail(fmt.Errorf("request %s is %s, not pending: nothing to %s", id, clean(st.State), decision))
	case st.RequestID != id:
		return fail(fmt.Errorf("asked the host for request %s, it answered with %s", id, clean(st.RequestID)))
	}

	// What is about to be approved, established without the host's word.
	chk, err := checkRequest(st, m, t.cluster, ak, requestNow())
	if err != nil {
		return fail(err)
	}
	if m == nil {
		fmt.Fprintf(stderr, "sealsign: warning: request %s's client signature is not verified: no manifest at hand (pass --manifest FILE); the enclaves still verify it\n", id)
	}
	for _, w := range chk.warnings {
		fmt.Fprintf(stderr, "sealsign: warning: %s\n", w)
	}
	kj, err := cl.Key(ctx, chk.req.KeyID)
	if err != nil {
		return fail(fmt.Errorf("threshold key %s: %w", chk.req.KeyID, err))
	}
	pub, err := hex.DecodeString(kj.PublicKey)
	if err != nil {
		return fail(fmt.Errorf("threshold key %s: public key is not hex", chk.req.KeyID))
	}
	if len(chk.req.Path) > 0 {
		// Under a derivation path the child key signs: decode against it.
		dk, err := cl.Derive(ctx, chk.req.KeyID, chk.req.Path)
		if err != nil {
			return fail(fmt.Errorf("threshold key %s at %s: %w", chk.req.KeyID, chk.req.Path, err))
		}
		if pub, err = hex.DecodeString(dk.PublicKey); err != nil {
			return fail(fmt.Errorf("threshold key %s at %s: public key is not hex", chk.req.KeyID, chk.req.Path))
		}
	}
	// The public key comes from the host. A wrong one cannot make a payload
	// show other destinations or amounts (they are read from the payload);
	// it makes decoding fail here or signing fail in the enclaves, which
	// hold the real key.
	d, err := tx.Decode(chk.req.Kind, chk.req.Payload, tx.Key{Algorithm: kj.Algorithm, PublicKey: pub}, tx.Options{BitcoinNetwork: *network})
	if err != nil {
		return fail(fmt.Errorf("refusing to %s what cannot be read: %w", decision, err))
	}

	show := stdout
	if *asJSON {
		show = stderr
	}
	how := "not verified (no manifest)"
	if m != nil {
		how = fmt.Sprintf("verified against %s", mpath)
	}
	printSummary(show, st, chk.req, kj.Algorithm, pub, &d.Summary, how)

	if decision == approval.Approve && !*yes {
		fmt.Fprintf(stderr, "Approve request %s as %s (owner %s)? [y/N] ", id, ak.Public.ID, ak.Public.Owner)
		line, err := bufio.NewReader(approveStdin).ReadString('\n')
		answer := strings.ToLower(strings.TrimSpace(line))
		if answer != "y" && answer != "yes" {
			fmt.Fprintln(stderr)
			if answer == "" && err != nil {
				return fail(errors.New("not approved: no answer"), "pass --yes to approve without asking")
			}
			return fail(fmt.Errorf("not approved (answer %q)", answer))
		}
	}

	signed, err := client.NewApproval(ak, chk.clusterID, st, decision, *reason, *ttl)
	if err != nil {
		return fail(err)
	}
	after, err := cl.Approve(ctx, id, signed)
	var re *client.RequestError
	if err != nil && !errors.As(err, &re) {
		return fail(err)
	}
	if after == nil {
		after = re.Status
	}
	if *asJSON {
		printJSON(stdout, approveReport{
			RequestID: id, Decision: decision, Verified: m != nil, Manifest: mpath, ClusterID: chk.clusterID,
			Summary: api.SummaryOf(d.Summary), PayloadHash: hex.EncodeToString(d.Summary.PayloadHash[:]), Status: after,
		})
	} else {
		fmt.Fprintln(stdout)
		printStatus(stdout, after)
	}
	if decision == approval.Reject && after.State == server.StateRejected {
		return 0
	}
	switch after.State {
	case server.StateSigned, server.StatePending:
		if decision == approval.Approve {
			return 0
		}
	}
	printReasons(stderr, after)
	return 1
}

// checked is a request as the approver established it.
type checked struct {
	req       *request.Request
	clusterID string
	warnings  []string
}

// checkRequest establishes, from the bytes the host sent, what request st
// is: with a manifest, its client signature, cluster and validity window
// (request.Verify); without one, only its structure. It then requires the
// host's status to describe that request (id, key, digest, payload hash),
// since the approval is built from it, and checks the approver key against
// the manifest.
func checkRequest(st *server.RequestStatus, m *api.Manifest, cluster string, ak *keys.PrivateKey, now time.Time) (*checked, error) {
	c := &checked{}
	var sets *api.GovernanceSets
	if m != nil {
		if m.Governance == nil {
			return nil, fmt.Errorf("manifest of cluster %q has no governance section: its requests are not governed", m.ClusterID)
		}
		var err error
		if sets, err = m.Governance.Sets(); err != nil {
			return nil, err
		}
		if cluster != "" && cluster != m.ClusterID {
			return nil, fmt.Errorf("--cluster %q, but the manifest is of cluster %q", cluster, m.ClusterID)
		}
		if c.req, err = request.Verify(st.Request, sets.Clients, m.ClusterID, now, 0); err != nil {
			return nil, fmt.Errorf("refusing to approve: %w", err)
		}
		c.clusterID = m.ClusterID
	} else {
		var s request.Signed
		r := new(request.Request)
		if err := canon.Unmarshal(st.Request, &s); err != nil {
			return nil, fmt.Errorf("the host's copy of the request does not decode: %v", err)
		}
		if err := canon.Unmarshal(s.Request, r); err != nil {
			return nil, fmt.Errorf("the host's copy of the request does not decode: %v", err)
		}
		if err := r.Validate(); err != nil {
			return nil, err
		}
		if cluster != "" && r.ClusterID != cluster {
			return nil, fmt.Errorf("request %s is for cluster %q, not --cluster %q", r.ID, r.ClusterID, cluster)
		}
		if now.Unix() >= r.ExpiresAt {
			return nil, fmt.Errorf("request %s expired at %s", r.ID, time.Unix(r.ExpiresAt, 0).UTC().Format(time.RFC3339))
		}
		c.req, c.clusterID = r, r.ClusterID
	}
	r := c.req
	if st.RequestID != r.ID || (st.KeyID != "" && st.KeyID != r.KeyID) || (st.ClientKeyID != "" && st.ClientKeyID != r.ClientKeyID) {
		return nil, fmt.Errorf("the host describes request %s (key %s, client %s), but the request it sent is %s (key %s, client %s)",
			clean(st.RequestID), clean(st.KeyID), clean(st.ClientKeyID), r.ID, r.KeyID, r.ClientKeyID)
	}
	if want := request.Digest(st.Request); st.RequestDigest != hex.EncodeToString(want[:]) {
		return nil, fmt.Errorf("the host reports request digest %s, but the request it sent hashes to %x", clean(st.RequestDigest), want)
	}
	if want := r.PayloadHash(); st.PayloadHash != hex.EncodeToString(want[:]) {
		return nil, fmt.Errorf("the host reports payload hash %s, but the request's payload hashes to %x", clean(st.PayloadHash), want)
	}
	if sets != nil {
		pk, ok := sets.Approvers[ak.Public.ID]
		switch {
		case !ok:
			return nil, fmt.Errorf("%q is not an approver key of cluster %q; the enclaves would ignore its decision", ak.Public.ID, m.ClusterID)
		case pk.Algorithm != ak.Public.Algorithm || string(pk.Key) != string(ak.Public.Key):
			return nil, fmt.Errorf("approver key file %q does not hold the key the manifest of cluster %q lists under that id", ak.Public.ID, m.ClusterID)
		}
		if ck, ok := sets.Clients[r.ClientKeyID]; ok && ck.Owner == ak.Public.Owner {
			c.warnings = append(c.warnings, fmt.Sprintf("%s initiated request %s; policies count an initiator's approval only if the rule sets allow_initiator", ak.Public.Owner, r.ID))
		}
	}
	return c, nil
}

// printSummary shows what an approver approves. Everything but the
// policy version and the approvals so far is computed here.
func printSummary(w io.Writer, st *server.RequestStatus, r *request.Request, alg string, pub []byte, s *tx.Summary, how string) {
	fmt.Fprintf(w, "request %s\n", r.ID)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, format string, a ...any) { fmt.Fprintf(tw, "  %s\t%s\n", k, fmt.Sprintf(format, a...)) }
	row("cluster", "%s", r.ClusterID)
	row("client", "%s (signature %s)", r.ClientKeyID, how)
	if len(r.Path) > 0 {
		row("key", "%s at %s (%s child %x)", r.KeyID, r.Path, alg, pub)
	} else {
		row("key", "%s (%s %x)", r.KeyID, alg, pub)
	}
	row("kind", "%s", r.Kind)
	if s.Chain != "" {
		row("chain", "%s", chainName(s.Chain))
	}
	row("method", "%s", s.Method)
	for i, t := range s.Transfers {
		what := fmt.Sprintf("%s to %s", amountText(t.Asset, t.Amount), clean(t.To))
		if t.Action != tx.ActionTransfer {
			what = string(t.Action) + " " + what
		}
		if t.Change {
			what += " (change: back to this key)"
		}
		row(fmt.Sprintf("transfer %d", i+1), "%s", what)
	}
	if len(s.Transfers) == 0 {
		row("transfers", "none decoded")
	}
	if s.Fee != nil {
		switch {
		case strings.HasPrefix(s.Chain, "eip155:"):
			row("fee", "at most %s wei (%s ETH)", s.Fee, units(s.Fee, 18))
		case strings.HasPrefix(s.Chain, "bip122:"):
			row("fee", "%s sat (%s BTC)", s.Fee, units(s.Fee, 8))
		default:
			row("fee", "%s", s.Fee)
		}
	}
	row("digests", "%d to sign", len(s.Digests))
	row("payload hash", "%x", s.PayloadHash)
	if len(r.Signers) > 0 {
		row("signers", "%s", strings.Join(r.Signers, ", "))
	}
	row("expires", "%s", time.Unix(r.ExpiresAt, 0).UTC().Format(time.RFC3339))
	row("policy", "version %d (as the host reports it; the enclaves refuse an approval for another)", st.PolicyVersion)
	if len(st.Verdicts) > 0 {
		v := st.Verdicts[0]
		for _, pr := range v.Pending {
			row("needs", "%s (party %s, as the host reports it)", needsText(pr), clean(v.PartyID))
		}
	}
	tw.Flush()
}

// chainName adds a name to well-known CAIP-2 chain ids.
func chainName(caip string) string {
	names := map[string]string{
		"eip155:1":        "Ethereum mainnet",
		"eip155:11155111": "Ethereum Sepolia",
		"bip122:000000000019d6689c085ae165831e93": "Bitcoin mainnet",
		"bip122:000000000933ea01ad0ee984209779ba": "Bitcoin testnet3",
		"bip122:00000008819873e925422c1ff0f99f7c": "Bitcoin signet",
		"bip122:0f9188f13cb7b2c71f2a335e3a4fc328": "Bitcoin regtest",
	}
	if n, ok := names[caip]; ok {
		return caip + " (" + n + ")"
	}
	return caip
}

// amountText is an amount with its asset: the decimal amount and the base
// units for the native assets, whose decimals are fixed; only base units
// for tokens, whose decimals are the token's own and not in the payload.
func amountText(asset string, amount *big.Int) string {
	switch asset {
	case "ETH":
		return fmt.Sprintf("%s ETH (%s wei)", units(amount, 18), amount)
	case "BTC":
		return fmt.Sprintf("%s BTC (%s sat)", units(amount, 8), amount)
	}
	return fmt.Sprintf("%s base units of %s", amount, clean(asset))
}

// units formats a base-unit amount with decimals, trimming zeros.
func units(v *big.Int, decimals int) string {
	if v == nil {
		return "0"
	}
	s := new(big.Int).Abs(v).String()
	if len(s) <= decimals {
		s = strings.Repeat("0", decimals-len(s)+1) + s
	}
	whole, frac := s[:len(s)-decimals], strings.TrimRight(s[len(s)-decimals:], "0")
	if v.Sign() < 0 {
		whole = "-" + whole
	}
	if frac == "" {
		return whole
	}
	return whole + "." + frac
}
