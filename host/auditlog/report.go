package auditlog

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/sealsign/sealsign/enclave/audit"
)

// Ceremony is one key or governance ceremony as the logs of the parties
// record it: a keygen of one key, a policy update to one version, …
type Ceremony struct {
	Kind  string `json:"kind"`
	KeyID string `json:"key_id,omitempty"`
	Epoch uint64 `json:"epoch,omitempty"`
	// Version is a policy update's policy version.
	Version string `json:"version,omitempty"`
	// AuthorisedBy are the admin key ids that authorised it, as recorded.
	AuthorisedBy []string `json:"authorised_by"`
	// Parties are the parties the ceremony names (a keygen's), else those
	// whose logs record it.
	Parties   []string          `json:"parties"`
	Threshold uint64            `json:"threshold,omitempty"`
	PublicKey Hex               `json:"public_key,omitempty"`
	Detail    map[string]string `json:"detail,omitempty"`
	// Entries are the parties' records of it, in party order.
	Entries []CeremonyEntry `json:"entries"`
	// Missing are parties named by the ceremony whose given, verified logs
	// do not record it; Differences are facts the parties' records
	// disagree on.
	Missing     []string `json:"missing,omitempty"`
	Differences []string `json:"differences,omitempty"`
	// Transcript is the transcript hash (package documentation).
	Transcript Hex `json:"transcript"`
}

// CeremonyEntry is one party's record of a ceremony.
type CeremonyEntry struct {
	Party   string    `json:"party"`
	Seq     uint64    `json:"seq"`
	Time    time.Time `json:"time"`
	Hash    Hex       `json:"hash"`
	Outcome string    `json:"outcome"`
	Error   string    `json:"error,omitempty"`
	// Boot is the boot of the enclave that wrote the entry: its attested
	// measurement. Nil when the entry's run began before the verified
	// segment.
	Boot *Boot `json:"boot"`
}

// Ceremonies lists the ceremonies the verified logs record, in order of
// first appearance, keygens and every other kind alike; keyID, if set,
// keeps only ceremonies of that key. Entries recording one ceremony are
// grouped by kind, key id, epoch and (policy updates) version.
func Ceremonies(logs []*Log, keyID string) []*Ceremony {
	type group struct {
		c     *Ceremony
		first time.Time
		named map[string]bool
	}
	groups := map[string]*group{}
	sorted := slices.SortedFunc(slices.Values(logs), func(a, b *Log) int { return strings.Compare(a.PartyID, b.PartyID) })
	given := map[string]bool{}
	for _, l := range sorted {
		if !l.Verified() {
			continue
		}
		given[l.PartyID] = true
		for i := range l.Records {
			r := &l.Records[i]
			cb, ok := r.Body.(*audit.Ceremony)
			if !ok || keyID != "" && cb.KeyID != keyID {
				continue
			}
			id := fmt.Sprintf("%s\x00%s\x00%d\x00%s", cb.Kind, cb.KeyID, cb.Epoch, cb.Detail["version"])
			g := groups[id]
			if g == nil {
				g = &group{c: &Ceremony{Kind: cb.Kind, KeyID: cb.KeyID, Epoch: cb.Epoch, Version: cb.Detail["version"],
					AuthorisedBy: cb.AuthorisedBy, Parties: cb.Parties, Threshold: cb.Threshold, PublicKey: cb.PublicKey, Detail: cb.Detail},
					first: r.Time, named: map[string]bool{}}
				groups[id] = g
			} else {
				differ := func(what string, a, b any) {
					g.c.Differences = append(g.c.Differences, fmt.Sprintf("party %s records %s %v, party %s %v", l.PartyID, what, a, g.c.Entries[0].Party, b))
				}
				if !slices.Equal(cb.AuthorisedBy, g.c.AuthorisedBy) {
					differ("authorised by", cb.AuthorisedBy, g.c.AuthorisedBy)
				}
				if !slices.Equal(cb.Parties, g.c.Parties) {
					differ("parties", cb.Parties, g.c.Parties)
				}
				if cb.Threshold != g.c.Threshold {
					differ("threshold", cb.Threshold, g.c.Threshold)
				}
				if !bytes.Equal(cb.PublicKey, g.c.PublicKey) {
					differ("public key", Hex(cb.PublicKey), g.c.PublicKey)
				}
				if r.Time.Before(g.first) {
					g.first = r.Time
				}
			}
			for _, p := range cb.Parties {
				g.named[p] = true
			}
			e := CeremonyEntry{Party: l.PartyID, Seq: r.Seq, Time: r.Time, Hash: bytes.Clone(r.Hash[:]), Outcome: cb.Outcome, Error: cb.Error}
			if r.Boot >= 0 {
				b := l.Boots[r.Boot]
				e.Boot = &b
			}
			g.c.Entries = append(g.c.Entries, e)
		}
	}
	var out []*group
	for _, g := range groups {
		c := g.c
		recorded := map[string]bool{}
		h := sha256.New()
		for _, e := range c.Entries {
			recorded[e.Party] = true
			h.Write(e.Hash)
		}
		c.Transcript = h.Sum(nil)
		if len(c.Parties) == 0 {
			c.Parties = slices.Sorted(maps.Keys(recorded))
		}
		for _, p := range slices.Sorted(maps.Keys(g.named)) {
			if !recorded[p] && given[p] {
				c.Missing = append(c.Missing, p)
			}
		}
		out = append(out, g)
	}
	slices.SortFunc(out, func(a, b *group) int {
		if c := a.first.Compare(b.first); c != 0 {
			return c
		}
		return strings.Compare(a.c.Kind+a.c.KeyID+a.c.Version, b.c.Kind+b.c.KeyID+b.c.Version)
	})
	res := make([]*Ceremony, len(out))
	for i, g := range out {
		res[i] = g.c
	}
	return res
}

// WriteReport writes the human-readable ceremony report.
func WriteReport(w io.Writer, cs []*Ceremony) error {
	var b strings.Builder
	if len(cs) == 0 {
		b.WriteString("no ceremonies recorded\n")
	}
	for i, c := range cs {
		if i > 0 {
			b.WriteString("\n")
		}
		title := c.Kind
		switch {
		case c.KeyID != "":
			title += " of key " + c.KeyID
			if c.Epoch != 0 {
				title += fmt.Sprintf(" (epoch %d)", c.Epoch)
			}
		case c.Version != "":
			title += " to policy v" + c.Version
		}
		fmt.Fprintf(&b, "ceremony %d: %s\n", i+1, printable(title))
		by := printable(strings.Join(c.AuthorisedBy, ", "))
		if by == "" {
			by = "(not recorded)"
		}
		fmt.Fprintf(&b, "  authorised by  %s\n", by)
		fmt.Fprintf(&b, "  parties        %s", strings.Join(c.Parties, ", "))
		if c.Threshold > 0 {
			fmt.Fprintf(&b, " (threshold %d: any %d sign)", c.Threshold, c.Threshold+1)
		}
		b.WriteString("\n")
		if len(c.PublicKey) > 0 {
			fmt.Fprintf(&b, "  public key     %s\n", c.PublicKey)
		}
		for _, k := range slices.Sorted(maps.Keys(c.Detail)) {
			if k != "version" {
				fmt.Fprintf(&b, "  %-14s %s\n", printable(k), printable(c.Detail[k]))
			}
		}
		b.WriteString("  records:\n")
		for _, e := range c.Entries {
			fmt.Fprintf(&b, "    party %-6s seq %-6d %s  %s", e.Party, e.Seq, e.Time.UTC().Format(time.RFC3339), e.Outcome)
			if e.Error != "" {
				fmt.Fprintf(&b, " (%s)", printable(e.Error))
			}
			b.WriteString("\n")
			if bt := e.Boot; bt != nil {
				fmt.Fprintf(&b, "      measurement %s pcr%d %s (boot seq %d, %s)\n", bt.Kind, bt.PCR, bt.Measurement, bt.Seq, bt.Time.UTC().Format(time.RFC3339))
			} else {
				b.WriteString("      measurement (boot entry before the verified segment)\n")
			}
			fmt.Fprintf(&b, "      entry hash  %s\n", e.Hash)
		}
		if len(c.Missing) > 0 {
			fmt.Fprintf(&b, "  MISSING from the logs of: %s\n", strings.Join(c.Missing, ", "))
		}
		for _, d := range c.Differences {
			fmt.Fprintf(&b, "  DIFFERS: %s\n", d)
		}
		fmt.Fprintf(&b, "  transcript     %s\n", c.Transcript)
		b.WriteString("                 (sha256 over the entry hashes above, in this order)\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// printable quotes what a terminal would interpret (control characters,
// invalid UTF-8) in text taken from log entries.
func printable(s string) string {
	for _, r := range s {
		if !unicode.IsPrint(r) || r == utf8.RuneError {
			q := strconv.QuoteToGraphic(s)
			return q[1 : len(q)-1]
		}
	}
	return s
}
