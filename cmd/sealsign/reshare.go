package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/sealsign/sealsign/governance/ceremony"
	"github.com/sealsign/sealsign/host/client"
	"github.com/sealsign/sealsign/host/server"
)

const reshareUsage = `Usage: sealsign key refresh KEYID [flags]
       sealsign key reshare KEYID --parties LIST --threshold T [flags]

refresh gives every party of the key a new share of the same key (proactive
security): the public key stays, the shares change, and each party destroys
the sealing key of the old epoch in its HSM or TPM, so shares of the old
epoch — copies of the sealed blobs included — are useless from then on.

reshare moves the key to another committee: add parties, remove parties,
change the threshold (e.g. --parties a,b,c,d,e --threshold 2 turns a 2-of-3
key into 3-of-5). Every party of both committees is attested before it
takes part; removed parties destroy their shares.

Both are ceremonies the cluster's admins authorise: the command signs a
refresh or reshare ceremony for the key at its current epoch with each
--admin-key (dev appliance: admin-1 and admin-2 when none is given), and
every enclave verifies it. Nothing is destroyed until every member of the
new committee holds its new share; if the command is interrupted, run it
again: it completes an interrupted commit, or starts over from the epoch
still in force.

Flags:
  --host URL         the host of a party holding the key (default: party a
                     of the dev appliance in --dir)
  --dir DIR          dev appliance directory
  --manifest FILE    the cluster manifest (default: the dev appliance's)
  --admin-key FILE   an admin's key file (repeat once per admin of the quorum)
  --parties LIST     reshare: the new committee, comma-separated
  --threshold T      reshare: the new threshold (t+1 parties sign)
  --ttl DURATION     how long the ceremony stays valid (default 10m)

Examples:
  sealsign key refresh 3f1c…
  sealsign key reshare 3f1c… --parties a,b,c,d,e --threshold 2

Exit codes: 0 ok, 1 failed, 2 usage.
`

func reshareMain(verb string, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("key "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, reshareUsage) }
	var t target
	t.register(fs, true)
	partiesFlag := fs.String("parties", "", "new committee (reshare)")
	threshold := fs.Int("threshold", 0, "new threshold (reshare)")
	ttl := fs.Duration("ttl", 10*time.Minute, "ceremony lifetime")
	var adminKeys []string
	fs.Func("admin-key", "admin key file (repeatable)", func(s string) error {
		adminKeys = append(adminKeys, s)
		return nil
	})
	// The key id may come before or after the flags.
	var keyID string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		keyID, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if keyID == "" && fs.NArg() == 1 {
		keyID = fs.Arg(0)
	} else if fs.NArg() != 0 || keyID == "" {
		return usageExit("key "+verb, reshareUsage, usagef("give exactly one KEYID"), stdout, stderr)
	}
	newParties := splitList(*partiesFlag)
	switch {
	case verb == "refresh" && (len(newParties) > 0 || *threshold != 0):
		return usageExit("key refresh", reshareUsage, usagef("refresh keeps the committee: use 'key reshare' with --parties and --threshold"), stdout, stderr)
	case verb == "reshare" && (len(newParties) == 0 || *threshold == 0):
		return usageExit("key reshare", reshareUsage, usagef("reshare needs --parties and --threshold"), stdout, stderr)
	}
	cl, err := t.client()
	if err != nil {
		return failExit("key "+verb, err, stderr)
	}
	ctx := context.Background()
	k, err := cl.Key(ctx, keyID)
	if err != nil {
		return failExit("key "+verb, err, stderr)
	}
	slices.Sort(newParties)
	cer, err := reshareCeremony(&t, verb, k, newParties, *threshold, *ttl, adminKeys, stderr)
	if err != nil {
		if errors.As(err, new(usageError)) {
			return usageExit("key "+verb, reshareUsage, err, stdout, stderr)
		}
		return failExit("key "+verb, err, stderr)
	}
	res, err := cl.Reshare(ctx, keyID, server.ReshareRequest{Ceremony: cer, NewParties: newParties, NewThreshold: *threshold})
	if err != nil {
		return failExit("key "+verb, err, stderr, "if it was interrupted, run the same command again: it completes or restarts the ceremony")
	}
	var done []string
	for _, c := range res.Commits {
		d := fmt.Sprintf("%s %s", c.PartyID, c.Outcome)
		if len(c.Destroyed) > 0 {
			d += fmt.Sprintf(" (destroyed epoch %v)", c.Destroyed)
		}
		done = append(done, d)
	}
	how := "refreshed"
	if verb == "reshare" {
		how = fmt.Sprintf("reshared to %s at threshold %d", strings.Join(res.Key.Parties, ","), res.Key.Threshold)
	}
	if res.Resumed {
		how = "interrupted reshare completed (the ceremony just signed was not needed)"
	}
	fmt.Fprintf(stderr, "sealsign: key %s %s: epoch %d → %d; %s\n", keyID, how, k.Epoch, res.Epoch, strings.Join(done, ", "))
	printJSON(stdout, res)
	return 0
}

// reshareCeremony signs the refresh or reshare ceremony for the key at its
// current epoch (nil for a cluster without governance).
func reshareCeremony(t *target, verb string, k *server.KeyJSON, newParties []string, newT int, ttl time.Duration, files []string, stderr io.Writer) ([]byte, error) {
	m, path, err := t.loadManifest()
	if err != nil {
		return nil, err
	}
	if m == nil {
		return nil, usagef("pass --manifest FILE: the ceremony is for the cluster it names")
	}
	if m.Governance == nil {
		if len(files) > 0 {
			return nil, fmt.Errorf("manifest %s has no governance section: its enclaves reshare without a ceremony; drop --admin-key", path)
		}
		return nil, nil
	}
	kind := ceremony.KindRefresh
	if verb == "reshare" {
		kind = ceremony.KindReshare
		if slices.Equal(newParties, k.Parties) && newT == k.Threshold {
			return nil, usagef("the new committee is the key's own: use 'key refresh'")
		}
	}
	admins, err := ceremonyAdmins(t, m.Governance.AdminQuorum, kind, files, stderr)
	if err != nil {
		return nil, err
	}
	c := ceremony.Ceremony{ClusterID: m.ClusterID, Kind: kind, Algorithm: k.Algorithm, KeyID: k.ID, Epoch: k.Epoch,
		Parties: k.Parties, Threshold: k.Threshold}
	if kind == ceremony.KindReshare {
		c.NewParties, c.NewThreshold = newParties, newT
	}
	return client.SignCeremony(c, ttl, admins...)
}
