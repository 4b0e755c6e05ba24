package auditlog

import (
	"context"
	"fmt"
	"iter"

	"github.com/sealsign/sealsign/enclave/audit"
	"github.com/sealsign/sealsign/governance/canon"
)

// PageFunc fetches one page of a party's log from its host, as GET
// /v1/audit?from=SEQ answers (host/client Client.Audit): the party id the
// host fronts and the stored entries from seq from on, in seq order, at
// most a page of them. An empty page is the end of the log.
type PageFunc func(ctx context.Context, from uint64) (partyID string, entries [][]byte, err error)

// Remote is a party's log on its host, read page by page.
type Remote struct {
	// PartyID is the party the host says it fronts (from the first page);
	// Verify with it as Options.PartyID holds every entry to it.
	PartyID string

	ctx      context.Context
	page     PageFunc
	first    [][]byte
	progress func(n int)
}

// Open fetches the first page of a host's log. progress, if set, is called
// after each page with the number of entries fetched so far.
func Open(ctx context.Context, page PageFunc, progress func(n int)) (*Remote, error) {
	pid, es, err := page(ctx, 1)
	if err != nil {
		return nil, fmt.Errorf("auditlog: fetch entries from seq 1: %w", err)
	}
	return &Remote{PartyID: pid, ctx: ctx, page: page, first: es, progress: progress}, nil
}

// Entries yields the host's log page by page. It trusts nothing the host
// says (Verify judges the entries) except to find the next page: the seq
// after the last entry of a page, or, if that entry does not decode, the
// count so far. Verify stops at the first bad entry, and so does the
// fetching: a host cannot keep a verifier reading garbage.
func (r *Remote) Entries() iter.Seq2[[]byte, error] {
	return func(yield func([]byte, error) bool) {
		from, es, n := uint64(1), r.first, 0
		for {
			if len(es) == 0 {
				return
			}
			for _, e := range es {
				if !yield(e, nil) {
					return
				}
			}
			n += len(es)
			if r.progress != nil {
				r.progress(n)
			}
			next := from + uint64(len(es))
			if s, ok := seqOf(es[len(es)-1]); ok && s >= from {
				next = s + 1
			}
			if next <= from {
				yield(nil, fmt.Errorf("auditlog: host's log does not advance past seq %d", from))
				return
			}
			from = next
			pid, page, err := r.page(r.ctx, from)
			if err != nil {
				yield(nil, fmt.Errorf("auditlog: fetch entries from seq %d: %w", from, err))
				return
			}
			if pid != r.PartyID {
				yield(nil, fmt.Errorf("auditlog: host answered for party %q, then for %q", r.PartyID, pid))
				return
			}
			es = page
		}
	}
}

func seqOf(raw []byte) (uint64, bool) {
	var se audit.SignedEntry
	var e audit.Entry
	if canon.Unmarshal(raw, &se) != nil || canon.Unmarshal(se.Entry, &e) != nil {
		return 0, false
	}
	return e.Seq, true
}
