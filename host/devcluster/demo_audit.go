package devcluster

import (
	"context"
	"fmt"
	"os"

	"github.com/sealsign/sealsign/enclave/api"
	"github.com/sealsign/sealsign/host/auditlog"
)

// AuditResult is the demo's last step: every party's audit log, fetched
// from its host and verified as an auditor would (sealsign audit verify):
// chain, signatures, checkpoints, boot attestations under the manifest,
// then the cross-party agreement of every signed request.
type AuditResult struct {
	Parties map[string]AuditPartyResult `json:"parties"`
	// CrossPartyOK: every signer's log records each signed request with
	// the same digests, payload hash, policy version and signatures.
	CrossPartyOK bool `json:"cross_party_ok"`
	Requests     int  `json:"requests_compared"`
	// Reshares: committed reshared epochs recorded alike by every party.
	Reshares int      `json:"reshares_compared"`
	Findings []string `json:"findings,omitempty"`
}

// AuditPartyResult is one party's verified log.
type AuditPartyResult struct {
	Verified    bool   `json:"verified"`
	Entries     int    `json:"entries"`
	Boots       int    `json:"boots"`
	Checkpoints int    `json:"checkpoints"`
	Head        string `json:"head"` // hex chain hash of the last entry
	Error       string `json:"error,omitempty"`
}

func (d *demo) auditStep() error {
	return d.step("audit", "audit: every party's log verified as an auditor would (sealsign audit verify), and across parties", func() error {
		raw, err := os.ReadFile(d.c.Manifest)
		if err != nil {
			return err
		}
		m, err := api.ParseManifest(raw)
		if err != nil {
			return err
		}
		res := AuditResult{Parties: map[string]AuditPartyResult{}}
		var logs []*auditlog.Log
		for _, p := range d.c.Parties {
			cl := d.c.Client(p.ID)
			page := func(ctx context.Context, from uint64) (string, [][]byte, error) {
				a, err := cl.Audit(ctx, from)
				if err != nil {
					return "", nil, err
				}
				return a.PartyID, a.Entries, nil
			}
			r, err := auditlog.Open(d.ctx, page, nil)
			if err != nil {
				return fmt.Errorf("party %s: %w", p.ID, err)
			}
			l, err := auditlog.Verify(r.Entries(), auditlog.Options{Manifest: m, PartyID: p.ID})
			if err != nil && l == nil {
				return fmt.Errorf("party %s: %w", p.ID, err)
			}
			pr := AuditPartyResult{Verified: l.Verified(), Entries: len(l.Records), Boots: len(l.Boots), Checkpoints: l.Checkpoints, Head: fmt.Sprintf("%x", l.Head.Hash)}
			if l.Err != nil {
				pr.Error = l.Err.Error()
			}
			res.Parties[p.ID] = pr
			logs = append(logs, l)
			if !pr.Verified {
				fmt.Fprintf(d.out, "  party %s: FAILED: %s\n", p.ID, pr.Error)
				continue
			}
			fmt.Fprintf(d.out, "  party %s: %d entries verified, %d boots attested (", p.ID, pr.Entries, pr.Boots)
			for i, b := range l.Boots {
				if i > 0 {
					fmt.Fprint(d.out, ", ")
				}
				fmt.Fprintf(d.out, "%s pcr%d %x…", b.Kind, b.PCR, []byte(b.Measurement)[:6])
			}
			fmt.Fprintf(d.out, "), %d checkpoints, head %x…\n", pr.Checkpoints, l.Head.Hash[:8])
		}
		cross := auditlog.CrossCheck(logs)
		res.CrossPartyOK, res.Requests, res.Reshares = cross.OK(), cross.Requests, cross.Reshares
		for _, f := range cross.Findings {
			res.Findings = append(res.Findings, f.String())
		}
		d.res.Audit = res
		for _, pr := range res.Parties {
			if !pr.Verified {
				return fmt.Errorf("an audit log does not verify")
			}
		}
		if !cross.OK() {
			return fmt.Errorf("cross-party check: %v", res.Findings)
		}
		fmt.Fprintf(d.out, "  cross-party: %d signed requests recorded alike by every signer (digests, payload hash, policy version, signatures); %d keygens, %d reshared epochs\n", cross.Requests, cross.Keys, cross.Reshares)
		return nil
	})
}
