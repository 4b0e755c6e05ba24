package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sealsign/sealsign/governance/canon"
	"github.com/sealsign/sealsign/governance/keys"
	"github.com/sealsign/sealsign/governance/policy"
	"github.com/sealsign/sealsign/host/server"
)

func init() { commands["policy"] = policyMain }

const policyUsage = `Usage:
  sealsign policy sign --key ADMINFILE (--json POLICY.json | --signed FILE) --out FILE
  sealsign policy show FILE [--manifest FILE] [--json]
  sealsign policy push FILE [--host URL | --dir DIR] [--json]

A policy is authored as JSON, signed by a quorum of the manifest's admins
(each signs the policy's canonical encoding under domain
"sealsign/v1/policy") and pushed to every party, whose enclave verifies the
signatures, the cluster, the version (newer than the sealed one) and the
time lock before accepting it.

sign  --json: validates POLICY.json (every condition compiled) and writes a
      signed policy with this admin's signature. --signed: adds this admin's
      signature to an existing signed policy (a key id signs once). --out
      may name the --signed file; it is replaced atomically.
show  prints version, cluster, times, rules and signer key ids; with
      --manifest it also checks the signatures against the manifest's
      admins and quorum.
push  sends a signed policy to every party through the host and prints
      each party's answer.

Examples:
  sealsign policy sign --key admin-1.key --json policy.json --out policy.signed
  sealsign policy sign --key admin-2.key --signed policy.signed --out policy.signed
  sealsign policy show policy.signed --manifest manifest.json
  sealsign policy push policy.signed

Exit codes: 0 ok, 1 failed (push: any party refused), 2 usage.
`

func policyMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, policyUsage)
		return 2
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprint(stdout, policyUsage)
		return 0
	case "sign":
		return policySign(args[1:], stdout, stderr)
	case "show":
		return policyShow(args[1:], stdout, stderr)
	case "push":
		return policyPush(args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "sealsign: policy: unknown verb %q\n\n%s", args[0], policyUsage)
	return 2
}

func policySign(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("policy sign", flag.ContinueOnError)
	keyFile := fs.String("key", "", "admin governance key file")
	jsonFile := fs.String("json", "", "policy JSON to sign")
	signedFile := fs.String("signed", "", "signed policy to add a signature to")
	out := fs.String("out", "", "where to write the signed policy")
	usage := func(err error) int { return usageExit("policy sign", policyUsage, err, stdout, stderr) }
	pos, err := parseFlags(fs, args)
	switch {
	case err != nil:
		return usage(err)
	case len(pos) != 0:
		return usage(usagef("sign takes no arguments, got %q", pos))
	case *keyFile == "":
		return usage(usagef("--key ADMINFILE is required"))
	case (*jsonFile == "") == (*signedFile == ""):
		return usage(usagef("give exactly one of --json POLICY.json and --signed FILE"))
	case *out == "":
		return usage(usagef("--out FILE is required"))
	}
	fail := func(err error) int { return failExit("policy sign", err, stderr) }
	// Replacing a file is for adding a signature in place; anything else
	// could throw away signatures collected for another policy.
	if fi, err := os.Stat(*out); err == nil {
		in, ierr := os.Stat(*signedFile)
		if *signedFile == "" || ierr != nil || !os.SameFile(fi, in) {
			return fail(fmt.Errorf("%s exists and is not the --signed input; refusing to replace it (remove it or choose another --out)", *out))
		}
	}
	k, err := keys.LoadPrivate(*keyFile)
	if err != nil {
		return fail(err)
	}
	var (
		sp *policy.SignedPolicy
		p  *policy.Policy
	)
	if *jsonFile != "" {
		data, err := os.ReadFile(*jsonFile)
		if err != nil {
			return fail(err)
		}
		if p, err = policy.ParseJSON(data); err != nil {
			return fail(fmt.Errorf("%s: %w", *jsonFile, err))
		}
		enc, err := p.Encode()
		if err != nil {
			return fail(err)
		}
		sp = &policy.SignedPolicy{Policy: enc, Signatures: []policy.Sig{}}
	} else {
		if sp, p, err = readSignedPolicy(*signedFile); err != nil {
			return fail(err)
		}
		for _, s := range sp.Signatures {
			if s.KeyID == k.Public.ID {
				return fail(fmt.Errorf("%s is already signed by key %q; a key signs a policy once", *signedFile, k.Public.ID))
			}
		}
		if len(sp.Signatures) >= policy.MaxSignatures {
			return fail(fmt.Errorf("%s already has %d signatures, the most a policy carries", *signedFile, len(sp.Signatures)))
		}
	}
	// The admin signs exactly the canonical bytes shown by "policy show":
	// for --signed, the bytes in the file, never a re-encoding.
	sig, err := policy.SignPolicy(sp.Policy, k.Public.ID, k.Signer)
	if err != nil {
		return fail(err)
	}
	sp.Signatures = append(sp.Signatures, sig)
	// policy.Accept does not depend on the order of signatures; sorting by
	// key id makes the file the same whichever admin signed first.
	sort.Slice(sp.Signatures, func(i, j int) bool { return sp.Signatures[i].KeyID < sp.Signatures[j].KeyID })
	data, err := sp.Encode()
	if err != nil {
		return fail(err)
	}
	if err := writeAtomically(*out, func(w io.Writer) error { _, err := w.Write(data); return err }); err != nil {
		return fail(err)
	}
	fmt.Fprintf(stdout, "signed policy v%d for cluster %s as %s (owner %s): %d signature(s): %s\nwrote %s\n",
		p.Version, p.ClusterID, k.Public.ID, k.Public.Owner, len(sp.Signatures), strings.Join(signerIDs(sp), ", "), *out)
	return 0
}

// readSignedPolicy reads a signed policy file and decodes its policy
// (structure only: the signatures are not verified).
func readSignedPolicy(path string) (*policy.SignedPolicy, *policy.Policy, error) {
	data, err := readSignedPolicyFile(path)
	if err != nil {
		return nil, nil, err
	}
	sp, err := policy.DecodeSigned(data)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	p, err := policy.DecodePolicy(sp.Policy)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return sp, p, nil
}

func readSignedPolicyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, canon.MaxSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > canon.MaxSize {
		return nil, fmt.Errorf("%s is larger than %d KiB: not a signed policy", path, canon.MaxSize>>10)
	}
	return data, nil
}

func signerIDs(sp *policy.SignedPolicy) []string {
	ids := make([]string, len(sp.Signatures))
	for i, s := range sp.Signatures {
		ids[i] = s.KeyID
	}
	return ids
}

// policyShowJSON is "policy show --json".
type policyShowJSON struct {
	Policy  *policy.Policy `json:"policy"`
	Signers []string       `json:"signers"`
	// Verified is set with --manifest: whether the signatures meet the
	// manifest's admin quorum; Error says why not.
	Verified *bool  `json:"verified,omitempty"`
	Error    string `json:"error,omitempty"`
}

func policyShow(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("policy show", flag.ContinueOnError)
	manifest := fs.String("manifest", "", "verify the signatures against this manifest's admins")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parseFlags(fs, args)
	if err == nil && len(pos) != 1 {
		err = usagef("show takes one FILE, got %d arguments", len(pos))
	}
	if err != nil {
		return usageExit("policy show", policyUsage, err, stdout, stderr)
	}
	fail := func(err error) int { return failExit("policy show", err, stderr) }
	sp, p, err := readSignedPolicy(pos[0])
	if err != nil {
		return fail(err)
	}
	rep := policyShowJSON{Policy: p, Signers: signerIDs(sp)}
	var verr error
	if *manifest != "" {
		t := target{manifest: *manifest}
		m, _, err := t.loadManifest()
		if err != nil {
			return fail(err)
		}
		if m.Governance == nil {
			return fail(fmt.Errorf("%s has no governance section: no admins to verify against", *manifest))
		}
		sets, err := m.Governance.Sets()
		if err != nil {
			return fail(err)
		}
		data, _ := sp.Encode()
		// Genesis-style check (no current policy): signatures, quorum,
		// cluster. Version and time lock are the enclaves' to check
		// against what they have sealed.
		_, verr = policy.Accept(nil, data, sets.Admins, m.ClusterID, requestNow())
		ok := verr == nil
		rep.Verified = &ok
		if verr != nil {
			rep.Error = verr.Error()
		}
	}
	if *asJSON {
		printJSON(stdout, rep)
	} else {
		printPolicy(stdout, p, sp, *manifest, verr)
	}
	if verr != nil {
		return fail(verr)
	}
	return 0
}

func printPolicy(w io.Writer, p *policy.Policy, sp *policy.SignedPolicy, manifest string, verr error) {
	ts := func(s int64) string { return fmt.Sprintf("%s (%d)", time.Unix(s, 0).UTC().Format(time.RFC3339), s) }
	fmt.Fprintf(w, "policy v%d for cluster %s\n", p.Version, p.ClusterID)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  issued_at\t%s\n", ts(p.IssuedAt))
	fmt.Fprintf(tw, "  not_before\t%s\n", ts(p.NotBefore))
	fmt.Fprintf(tw, "  update_time_lock\t%d s (%v)\n", p.UpdateTimeLock, time.Duration(p.UpdateTimeLock)*time.Second)
	tw.Flush()
	fmt.Fprintf(w, "  rules (%d):\n", len(p.Rules))
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, r := range p.Rules {
		var extra []string
		if a := r.Approvals; a != nil {
			var gs []string
			for _, g := range a.Groups {
				gs = append(gs, fmt.Sprintf("%d of %s", g.Threshold, g.Group))
			}
			extra = append(extra, "approvals: "+strings.Join(gs, " "+a.Logic+" "))
		}
		for _, v := range r.Velocity {
			extra = append(extra, "limit "+v.ID)
		}
		fmt.Fprintf(tw, "    %s\t%s\t%s\n", r.ID, r.Effect, strings.Join(extra, "; "))
	}
	tw.Flush()
	state := "not verified here"
	switch {
	case manifest != "" && verr == nil:
		state = "admin quorum of " + manifest + " met"
	case manifest != "":
		state = "INVALID under " + manifest
	}
	fmt.Fprintf(w, "  signatures (%d, %s): %s\n", len(sp.Signatures), state, strings.Join(signerIDs(sp), ", "))
}

func policyPush(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("policy push", flag.ContinueOnError)
	host := fs.String("host", "", "a party's host API URL")
	dir := fs.String("dir", "", "dev appliance directory")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parseFlags(fs, args)
	if err == nil && len(pos) != 1 {
		err = usagef("push takes one FILE, got %d arguments", len(pos))
	}
	if err != nil {
		return usageExit("policy push", policyUsage, err, stdout, stderr)
	}
	fail := func(err error) int { return failExit("policy push", err, stderr) }
	sp, p, err := readSignedPolicy(pos[0])
	if err != nil {
		return fail(err)
	}
	data, err := sp.Encode()
	if err != nil {
		return fail(err)
	}
	cl, err := hostClient(*host, *dir)
	if err != nil {
		return fail(err)
	}
	if !*asJSON {
		fmt.Fprintf(stdout, "pushing policy v%d for cluster %s (%d signatures: %s)\n", p.Version, p.ClusterID, len(sp.Signatures), strings.Join(signerIDs(sp), ", "))
	}
	r, err := cl.PushPolicy(context.Background(), data)
	if r == nil {
		return fail(err)
	}
	if *asJSON {
		printJSON(stdout, r)
	} else {
		printPush(stdout, r)
	}
	refused := 0
	for _, pr := range r.Parties {
		if pr.Error != "" {
			refused++
		}
	}
	switch {
	case refused > 0:
		return fail(fmt.Errorf("%d of %d parties refused policy v%d", refused, len(r.Parties), p.Version))
	case err != nil:
		return fail(err)
	case len(r.Parties) == 0:
		return fail(errors.New("the host reported no party's answer"))
	}
	return 0
}

func printPush(w io.Writer, r *server.PolicyPushResponse) {
	for _, pr := range r.Parties {
		if pr.Error != "" {
			fmt.Fprintf(w, "  party %s: refused: %s\n", clean(pr.PartyID), clean(pr.Error))
			continue
		}
		when := ""
		if pr.Accepted != pr.Effective {
			when = fmt.Sprintf(" (v%d takes effect %s)", pr.Accepted, time.Unix(pr.NotBefore, 0).UTC().Format(time.RFC3339))
		}
		fmt.Fprintf(w, "  party %s: accepted v%d, effective v%d%s\n", clean(pr.PartyID), pr.Accepted, pr.Effective, when)
	}
}
