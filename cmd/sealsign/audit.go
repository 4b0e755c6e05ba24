package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"iter"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sealsign/sealsign/enclave/api"
	"github.com/sealsign/sealsign/enclave/audit"
	"github.com/sealsign/sealsign/governance/keys"
	"github.com/sealsign/sealsign/host/auditlog"
	"github.com/sealsign/sealsign/host/client"
	"github.com/sealsign/sealsign/host/devcluster"
)

func init() { commands["audit"] = auditMain }

const auditUsage = `Usage:
  sealsign audit verify [SOURCES] [--manifest FILE] [--party ID] [--anchor PARTY:SEQ:HASH]... [--json]
  sealsign audit export --format jsonl|csv --out DIR [SOURCES] [--manifest FILE]
                        [--from RFC3339] [--to RFC3339] [--key ID] [--client ID] [--ceremony KIND]
                        [--sign-key FILE] [--json]
  sealsign audit verify-export DIR [--manifest FILE | --dir DIR | --pubkey FILE] [--allow-unsigned] [--json]
  sealsign audit report [SOURCES] [--manifest FILE] [--key ID] [--json]
  sealsign audit hash VALUE [--host URL | --dir DIR] [--json]

Every party's enclave keeps an audit log: each entry signed by the key of
the enclave boot that wrote it and chained to the one before; each boot
entry carries the attestation binding that key to a measured enclave.

verify         checks each party's log: every link, signature and checkpoint,
               and every boot entry's attestation under the manifest (the
               party's kind and pinned PCRs, user_data = the manifest hash,
               the attested identity naming the party and the signer key),
               at the boot entry's own time. Then the logs against each
               other: every request signed has, on each of its signers, the
               same request and payload hash, an allow verdict under the
               same policy version, the same sessions and digests, and the
               same signatures. A deleted, reordered, altered or replaced
               entry is reported at its position (index from 0, seq from 1);
               a log cut short is found with --anchor, an export's manifest
               (verify-export), or the other parties' records.
export         verifies, then writes per party <party>.jsonl or <party>.csv
               (entries matching the filters, each row with its raw signed
               entry), <party>.cbor-seq (every entry, raw: "verify --file"
               reads it) and export-manifest.json (files and SHA-256,
               filters, seq ranges, each party's head), signed with
               --sign-key (a governance key; domain "sealsign/v1/audit-export")
               into export-manifest.json.sig. Refuses a log that does not
               verify. --from is inclusive, --to exclusive.
verify-export  checks an export: the signature (by an admin of --manifest, or
               the key in --pubkey), every file's SHA-256, and with a
               manifest each raw file again, up to the recorded head, and
               every exported row against it.
report         the ceremonies: keygens and policy updates, who authorised
               them, parties, threshold, public key, each party's attested
               measurement at the time, and the transcript hash (SHA-256
               over the chain hashes of the ceremony's entries, party by
               party in id order, seq order within a party).

SOURCES (one kind; default: the dev appliance in $SEALSIGN_DEV_DIR or
./.sealsign-dev):
  --dir DIR     every party of the dev appliance in DIR (DIR/cluster.json),
                verified against DIR/manifest.json
  --host URL    a party's host API; all pages of GET /v1/audit (repeatable)
  --file FILE   an audit file: a raw export (.cbor-seq), a saved
                GET /v1/audit answer, or an unfiltered JSON Lines export
                (repeatable)
  --manifest FILE  the cluster manifest; required with --host and --file
  --party ID    with --dir: only this party; with one --host or --file: the
                party it must be (else the party of its first entry)
  --anchor PARTY:SEQ:HASH  a head known from elsewhere (a checkpoint you kept,
                an export manifest): the party's log must contain it
                (repeatable)

Examples:
  sealsign audit verify
  sealsign audit verify --host http://127.0.0.1:7701 --manifest manifest.json --json
  sealsign audit export --format csv --from 2026-01-01T00:00:00Z --key 1f2e… --out audit-2026 --sign-key admin-1.key
  sealsign audit verify-export audit-2026 --manifest manifest.json
  sealsign audit verify --file audit-2026/a.cbor-seq --manifest manifest.json
  sealsign audit report --key 1f2e…

Exit codes: 0 every check passed, 1 a check failed (the position and kind
on stderr) or a source could not be read, 2 usage.
`

// auditNow is the export's clock; tests pin it.
var auditNow = time.Now

func auditMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, auditUsage)
		return 2
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprint(stdout, auditUsage)
		return 0
	case "verify":
		return auditVerify(args[1:], stdout, stderr)
	case "export":
		return auditExport(args[1:], stdout, stderr)
	case "verify-export":
		return auditVerifyExport(args[1:], stdout, stderr)
	case "report":
		return auditReport(args[1:], stdout, stderr)
	case "hash":
		return auditHashMain(args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "sealsign: audit: unknown verb %q\n\n%s", args[0], auditUsage)
	return 2
}

// auditSources are the flags naming the logs to read.
type auditSources struct {
	dir, manifest, party string
	hosts, files         listFlag
	anchors              listFlag
}

func (s *auditSources) register(fs *flag.FlagSet) {
	fs.StringVar(&s.dir, "dir", "", "dev appliance directory")
	fs.Var(&s.hosts, "host", "a party's host API URL (repeatable)")
	fs.Var(&s.files, "file", "an audit file (repeatable)")
	fs.StringVar(&s.manifest, "manifest", "", "cluster manifest (JSON)")
	fs.StringVar(&s.party, "party", "", "party id")
	fs.Var(&s.anchors, "anchor", "known head PARTY:SEQ:HASH (repeatable)")
}

// auditSource is one party's log to verify.
type auditSource struct {
	name  string // for messages: "http://…" or a file name
	party string // the party it must be ("" for a file: its first entry's)
	open  func(ctx context.Context, progress func(int)) (partyID string, entries iter.Seq2[[]byte, error], closeFn func(), err error)
}

// check validates the flags (usage errors) before anything is read.
func (s *auditSources) check() error {
	kinds := 0
	for _, set := range []bool{s.dir != "", len(s.hosts) > 0, len(s.files) > 0} {
		if set {
			kinds++
		}
	}
	if kinds > 1 {
		return usagef("give one kind of source: --dir, --host or --file")
	}
	if (len(s.hosts) > 0 || len(s.files) > 0) && s.manifest == "" {
		return usagef("--manifest FILE is required with --host and --file: it pins what each log's attestations must prove")
	}
	if s.party != "" && len(s.hosts)+len(s.files) > 1 {
		return usagef("--party names the party of one --host or --file, and %d are given", len(s.hosts)+len(s.files))
	}
	_, err := s.parseAnchors()
	return err
}

func (s *auditSources) parseAnchors() (map[string][]audit.Head, error) {
	out := map[string][]audit.Head{}
	for _, a := range s.anchors {
		parts := strings.Split(a, ":")
		if len(parts) != 3 {
			return nil, usagef("--anchor %q: want PARTY:SEQ:HASH", a)
		}
		seq, err := strconv.ParseUint(parts[1], 10, 64)
		if err != nil || seq == 0 {
			return nil, usagef("--anchor %q: seq %q is not a number from 1", a, parts[1])
		}
		h, err := hex.DecodeString(parts[2])
		if err != nil || len(h) != 32 {
			return nil, usagef("--anchor %q: hash is not 32 bytes of hex", a)
		}
		head := audit.Head{Seq: seq}
		copy(head.Hash[:], h)
		out[parts[0]] = append(out[parts[0]], head)
	}
	return out, nil
}

// load reads the manifest and lists the sources.
func (s *auditSources) load() (*api.Manifest, string, []auditSource, error) {
	manifestPath := s.manifest
	var srcs []auditSource
	switch {
	case len(s.hosts) > 0:
		for _, h := range s.hosts {
			srcs = append(srcs, hostSource(h, s.party))
		}
	case len(s.files) > 0:
		for _, f := range s.files {
			srcs = append(srcs, fileSource(f, s.party))
		}
	default:
		dir := devDir(s.dir)
		c, err := devcluster.Load(dir)
		if err != nil {
			return nil, "", nil, fmt.Errorf("%v (start one with 'sealsign dev up', or pass --host or --file)", err)
		}
		if manifestPath == "" {
			manifestPath = filepath.Join(dir, "manifest.json")
		}
		for _, p := range c.Parties {
			if s.party == "" || s.party == p.ID {
				srcs = append(srcs, hostSource(p.URL, p.ID))
			}
		}
		if len(srcs) == 0 {
			return nil, "", nil, fmt.Errorf("party %q is not in the dev appliance in %s", s.party, dir)
		}
	}
	data, err := os.ReadFile(manifestPath)
	if err != nil {
		return nil, "", nil, fmt.Errorf("manifest: %w", err)
	}
	m, err := api.ParseManifest(data)
	if err != nil {
		return nil, "", nil, fmt.Errorf("%s: %w", manifestPath, err)
	}
	return m, manifestPath, srcs, nil
}

func hostSource(url, party string) auditSource {
	return auditSource{name: url, party: party, open: func(ctx context.Context, progress func(int)) (string, iter.Seq2[[]byte, error], func(), error) {
		cl := client.New(url)
		page := func(ctx context.Context, from uint64) (string, [][]byte, error) {
			a, err := cl.Audit(ctx, from)
			if err != nil {
				return "", nil, err
			}
			return a.PartyID, a.Entries, nil
		}
		r, err := auditlog.Open(ctx, page, progress)
		if err != nil {
			return "", nil, nil, err
		}
		if party != "" && r.PartyID != party {
			return "", nil, nil, fmt.Errorf("the host at %s fronts party %q, want %q", url, r.PartyID, party)
		}
		return r.PartyID, r.Entries(), func() {}, nil
	}}
}

func fileSource(path, party string) auditSource {
	return auditSource{name: path, party: party, open: func(context.Context, func(int)) (string, iter.Seq2[[]byte, error], func(), error) {
		f, err := os.Open(path)
		if err != nil {
			return "", nil, nil, err
		}
		return party, auditlog.ReadFile(f), func() { f.Close() }, nil
	}}
}

// auditParty is one party's verification, as verify prints it.
type auditParty struct {
	Party       string             `json:"party"`
	Source      string             `json:"source"`
	Verified    bool               `json:"verified"`
	Entries     int                `json:"entries"`
	Head        *auditlog.HeadJSON `json:"head,omitempty"`
	Boots       []auditlog.Boot    `json:"boots"`
	Checkpoints int                `json:"checkpoints"`
	Requests    int                `json:"requests"`
	Allowed     int                `json:"allowed"`
	Denied      int                `json:"denied"`
	Signed      int                `json:"signed"`
	Ceremonies  int                `json:"ceremonies"`
	Error       *auditErrorJSON    `json:"error,omitempty"`

	log *auditlog.Log
}

type auditErrorJSON struct {
	Index   *int    `json:"index,omitempty"`
	Seq     *uint64 `json:"seq,omitempty"`
	Kind    string  `json:"kind,omitempty"`
	Message string  `json:"message"`
}

// verifyAll verifies every source; a source that cannot be read is
// reported like a log that does not verify.
func verifyAll(m *api.Manifest, srcs []auditSource, anchors map[string][]audit.Head, progress io.Writer) []*auditParty {
	ctx := context.Background()
	var out []*auditParty
	for _, s := range srcs {
		rep := &auditParty{Party: s.party, Source: s.name, Boots: []auditlog.Boot{}}
		out = append(out, rep)
		fetched := func(n int) {
			if progress != nil && n >= 10000 {
				fmt.Fprintf(progress, "  %s: %d entries fetched\n", s.name, n)
			}
		}
		pid, entries, closeFn, err := s.open(ctx, fetched)
		if err != nil {
			rep.Error = &auditErrorJSON{Message: err.Error()}
			continue
		}
		if pid != "" {
			rep.Party = pid
		}
		l, err := auditlog.Verify(entries, auditlog.Options{Manifest: m, PartyID: pid, Anchors: anchors[pid]})
		closeFn()
		if l == nil { // options refused (a party the manifest lacks)
			rep.Error = &auditErrorJSON{Message: err.Error()}
			continue
		}
		if pid == "" && anchors[l.PartyID] != nil && err == nil {
			// A file names its party in its entries: check its anchors now.
			l, err = reverify(s, m, l.PartyID, anchors[l.PartyID])
		}
		rep.fill(l, err)
	}
	return out
}

func reverify(s auditSource, m *api.Manifest, party string, anchors []audit.Head) (*auditlog.Log, error) {
	_, entries, closeFn, err := s.open(context.Background(), nil)
	if err != nil {
		return nil, err
	}
	defer closeFn()
	return auditlog.Verify(entries, auditlog.Options{Manifest: m, PartyID: party, Anchors: anchors})
}

func (rep *auditParty) fill(l *auditlog.Log, err error) {
	rep.log = l
	if l == nil {
		rep.Error = &auditErrorJSON{Message: err.Error()}
		return
	}
	if l.PartyID != "" {
		rep.Party = l.PartyID
	}
	rep.Verified = err == nil
	rep.Entries, rep.Checkpoints = len(l.Records), l.Checkpoints
	rep.Boots = append(rep.Boots, l.Boots...)
	h := auditlog.HeadJSON{Seq: l.Head.Seq, Hash: l.Head.Hash[:], Time: time.Unix(0, l.Head.Time).UTC()}
	rep.Head = &h
	for _, r := range l.Records {
		switch b := r.Body.(type) {
		case *audit.Request:
			rep.Requests++
		case *audit.Verdict:
			switch b.Outcome {
			case audit.OutcomeAllow:
				rep.Allowed++
			case audit.OutcomeDeny:
				rep.Denied++
			}
		case *audit.Result:
			if b.Outcome == audit.OutcomeSigned {
				rep.Signed++
			}
		case *audit.Ceremony:
			rep.Ceremonies++
		}
	}
	if err != nil {
		rep.Error = &auditErrorJSON{Message: err.Error()}
		var ce *audit.ChainError
		if errors.As(err, &ce) {
			idx, seq := ce.Index, ce.Seq
			rep.Error.Index, rep.Error.Seq, rep.Error.Kind = &idx, &seq, auditlog.KindName(err)
		}
	}
}

func logsOf(reps []*auditParty) []*auditlog.Log {
	var out []*auditlog.Log
	for _, r := range reps {
		if r.log != nil {
			out = append(out, r.log)
		}
	}
	return out
}

type auditVerifyJSON struct {
	OK        bool            `json:"ok"`
	Manifest  string          `json:"manifest"`
	ClusterID string          `json:"cluster_id"`
	Parties   []*auditParty   `json:"parties"`
	Cross     *auditlog.Cross `json:"cross"`
}

// verifiedLogs is what audit verify and report share: parse their flags
// (fs has the command's own registered; src's are added here), load the
// manifest and sources, and verify every log. It returns the exit code to
// use when it did not get that far.
func verifiedLogs(verb string, fs *flag.FlagSet, args []string, stdout, stderr io.Writer) (m *api.Manifest, mpath string, reps []*auditParty, asJSON bool, code int, ok bool) {
	var src auditSources
	src.register(fs)
	jsonFlag := fs.Bool("json", false, "print JSON")
	pos, err := parseFlags(fs, args)
	if err == nil && len(pos) != 0 {
		err = usagef("%s takes no arguments, got %q", verb, pos)
	}
	if err == nil {
		err = src.check()
	}
	if err != nil {
		return nil, "", nil, false, usageExit("audit "+verb, auditUsage, err, stdout, stderr), false
	}
	m, mpath, srcs, err := src.load()
	if err != nil {
		return nil, "", nil, false, failExit("audit "+verb, err, stderr), false
	}
	anchors, _ := src.parseAnchors()
	var progress io.Writer
	if !*jsonFlag {
		progress = stderr
	}
	return m, mpath, verifyAll(m, srcs, anchors, progress), *jsonFlag, 0, true
}

func auditVerify(args []string, stdout, stderr io.Writer) int {
	m, mpath, reps, asJSON, code, done := verifiedLogs("verify", flag.NewFlagSet("audit verify", flag.ContinueOnError), args, stdout, stderr)
	if !done {
		return code
	}
	cross := auditlog.CrossCheck(logsOf(reps))
	ok := cross.OK()
	for _, r := range reps {
		ok = ok && r.Verified
	}
	if asJSON {
		printJSON(stdout, auditVerifyJSON{OK: ok, Manifest: mpath, ClusterID: m.ClusterID, Parties: reps, Cross: cross})
	} else {
		for _, r := range reps {
			printAuditParty(stdout, r)
		}
		printCross(stdout, cross, partiesOf(reps))
	}
	if ok {
		return 0
	}
	for _, r := range reps {
		if !r.Verified {
			fmt.Fprintf(stderr, "sealsign: audit verify: party %s (%s): %s\n", orUnknown(r.Party), r.Source, clean(r.Error.Message))
		}
	}
	for _, f := range cross.Findings {
		fmt.Fprintf(stderr, "sealsign: audit verify: cross-party: %s\n", clean(f.String()))
	}
	return 1
}

func orUnknown(s string) string {
	if s == "" {
		return "?"
	}
	return s
}

func printAuditParty(w io.Writer, r *auditParty) {
	state := "verified"
	if !r.Verified {
		state = "FAILED"
		if e := r.Error; e != nil && e.Index != nil {
			state = fmt.Sprintf("FAILED at entry %d (seq %d): %s", *e.Index, *e.Seq, e.Kind)
		}
	}
	fmt.Fprintf(w, "party %s (%s): %s\n", orUnknown(r.Party), r.Source, state)
	if r.Error != nil {
		fmt.Fprintf(w, "  error        %s\n", clean(r.Error.Message))
		if r.log == nil {
			return
		}
		fmt.Fprintf(w, "  before it    %d entries verified\n", r.Entries)
	} else {
		first := uint64(0)
		if len(r.log.Records) > 0 {
			first = r.log.Records[0].Seq
		}
		fmt.Fprintf(w, "  entries      %d (seq %d..%d)\n", r.Entries, first, r.Head.Seq)
		fmt.Fprintf(w, "  head         seq %d  %s  %s\n", r.Head.Seq, r.Head.Hash, r.Head.Time.Format(time.RFC3339Nano))
	}
	fmt.Fprintf(w, "  boots        %d\n", len(r.Boots))
	for _, b := range r.Boots {
		fmt.Fprintf(w, "    seq %-6d %s  %s pcr%d %s  module %s  key %s\n", b.Seq, b.Time.UTC().Format(time.RFC3339), b.Kind, b.PCR, b.Measurement, clean(b.ModuleID), b.SignerKey[:8])
	}
	fmt.Fprintf(w, "  checkpoints  %d checked\n", r.Checkpoints)
	fmt.Fprintf(w, "  requests     %d (verdicts: %d allow, %d deny); %d signed; %d ceremonies\n", r.Requests, r.Allowed, r.Denied, r.Signed, r.Ceremonies)
}

func printCross(w io.Writer, c *auditlog.Cross, parties []string) {
	if len(parties) == 0 {
		fmt.Fprintf(w, "cross-party: not checked: no log verified\n")
		return
	}
	state := "ok"
	if !c.OK() {
		state = fmt.Sprintf("FAILED (%d findings)", len(c.Findings))
	}
	fmt.Fprintf(w, "cross-party: %s: %d requests with sessions compared across %s (%d signed), %d keygens, %d reshared epochs\n",
		state, c.Requests, strings.Join(parties, ", "), c.Signed, c.Keys, c.Reshares)
	for _, f := range c.Findings {
		fmt.Fprintf(w, "  finding: %s\n", clean(f.String()))
	}
	for _, f := range c.Notes {
		fmt.Fprintf(w, "  note: %s\n", clean(f.String()))
	}
	for _, u := range c.Unchecked {
		fmt.Fprintf(w, "  not checked: %s\n", clean(u))
	}
}

func auditExport(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("audit export", flag.ContinueOnError)
	var src auditSources
	src.register(fs)
	format := fs.String("format", "", "jsonl or csv")
	out := fs.String("out", "", "export directory")
	from := fs.String("from", "", "first entry time, RFC 3339 (inclusive)")
	to := fs.String("to", "", "end time, RFC 3339 (exclusive)")
	var f auditlog.Filter
	fs.StringVar(&f.KeyID, "key", "", "only entries about this key")
	fs.StringVar(&f.ClientKeyID, "client", "", "only this client's requests")
	fs.StringVar(&f.Ceremony, "ceremony", "", "only ceremonies of this kind")
	signKey := fs.String("sign-key", "", "governance key file to sign the export manifest with")
	asJSON := fs.Bool("json", false, "print the export manifest as JSON")
	usage := func(err error) int { return usageExit("audit export", auditUsage, err, stdout, stderr) }
	pos, err := parseFlags(fs, args)
	switch {
	case err != nil:
	case len(pos) != 0:
		err = usagef("export takes no arguments, got %q", pos)
	case *format != auditlog.FormatJSONL && *format != auditlog.FormatCSV:
		err = usagef("--format must be jsonl or csv, got %q", *format)
	case *out == "":
		err = usagef("--out DIR is required")
	default:
		err = src.check()
	}
	for _, t := range []struct {
		flag string
		in   string
		dst  *time.Time
	}{{"--from", *from, &f.From}, {"--to", *to, &f.To}} {
		if err == nil && t.in != "" {
			tm, perr := time.Parse(time.RFC3339Nano, t.in)
			if perr != nil {
				err = usagef("%s %q is not an RFC 3339 time (e.g. 2026-01-02T00:00:00Z)", t.flag, t.in)
			}
			*t.dst = tm
		}
	}
	if err == nil && !f.From.IsZero() && !f.To.IsZero() && !f.To.After(f.From) {
		err = usagef("--to %s is not after --from %s", *to, *from)
	}
	if err != nil {
		return usage(err)
	}
	fail := func(err error) int { return failExit("audit export", err, stderr) }
	var key *keys.PrivateKey
	if *signKey != "" {
		if key, err = keys.LoadPrivate(*signKey); err != nil {
			return fail(err)
		}
	}
	m, _, srcs, err := src.load()
	if err != nil {
		return fail(err)
	}
	anchors, _ := src.parseAnchors()
	reps := verifyAll(m, srcs, anchors, stderr)
	for _, r := range reps {
		if !r.Verified {
			return fail(fmt.Errorf("party %s (%s) does not verify, refusing to export: %s", orUnknown(r.Party), r.Source, clean(r.Error.Message)))
		}
	}
	em, err := auditlog.Export(*out, logsOf(reps), auditlog.ExportOptions{Format: *format, Filter: f, Manifest: m, Now: auditNow()})
	if err != nil {
		return fail(err)
	}
	var sig *auditlog.ExportSignature
	if key != nil {
		if sig, err = auditlog.SignExport(*out, key); err != nil {
			return fail(err)
		}
	}
	if *asJSON {
		printJSON(stdout, em)
		return 0
	}
	for _, p := range em.Parties {
		fmt.Fprintf(stdout, "party %s: head seq %d %s\n", p.PartyID, p.Head.Seq, p.Head.Hash)
		for _, file := range []auditlog.ExportFile{p.Selected, p.Raw} {
			fmt.Fprintf(stdout, "  %-14s %6d entries  %8d bytes  sha256 %s\n", file.Name, file.Entries, file.Bytes, file.SHA256)
		}
	}
	fmt.Fprintf(stdout, "wrote %s\n", filepath.Join(*out, auditlog.ManifestFile))
	if sig != nil {
		fmt.Fprintf(stdout, "signed by %s (%s): %s\n", sig.KeyID, sig.Algorithm, filepath.Join(*out, auditlog.SignatureFile))
	} else {
		fmt.Fprintf(stderr, "sealsign: audit export: the export is not signed; pass --sign-key FILE so auditors can tell it from one anyone could write\n")
	}
	return 0
}

type auditVerifyExportJSON struct {
	OK    bool                  `json:"ok"`
	Check *auditlog.ExportCheck `json:"check,omitempty"`
	Cross *auditlog.Cross       `json:"cross,omitempty"`
	Error string                `json:"error,omitempty"`
}

func auditVerifyExport(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("audit verify-export", flag.ContinueOnError)
	manifestPath := fs.String("manifest", "", "cluster manifest (JSON): admins, and the logs verified again")
	dir := fs.String("dir", "", "dev appliance directory (its manifest.json)")
	pubkey := fs.String("pubkey", "", "the signer's public key (JSON, as gov-key create prints it)")
	allowUnsigned := fs.Bool("allow-unsigned", false, "accept an export without a signature (hashes only)")
	asJSON := fs.Bool("json", false, "print JSON")
	usage := func(err error) int { return usageExit("audit verify-export", auditUsage, err, stdout, stderr) }
	pos, err := parseFlags(fs, args)
	switch {
	case err != nil:
	case len(pos) != 1:
		err = usagef("verify-export takes one DIR, got %d arguments", len(pos))
	case *manifestPath != "" && *dir != "":
		err = usagef("give --manifest or --dir, not both")
	case *manifestPath == "" && *dir == "" && *pubkey == "":
		err = usagef("give --manifest FILE (or --dir DIR) to check the signature against the admins and verify the logs again, or --pubkey FILE for the hashes and signature only")
	}
	if err != nil {
		return usage(err)
	}
	fail := func(err error) int {
		if *asJSON {
			printJSON(stdout, auditVerifyExportJSON{Error: err.Error()})
		}
		return failExit("audit verify-export", err, stderr)
	}
	var opts auditlog.VerifyExportOptions
	opts.AllowUnsigned = *allowUnsigned
	if *dir != "" {
		*manifestPath = filepath.Join(*dir, "manifest.json")
	}
	if *manifestPath != "" {
		data, err := os.ReadFile(*manifestPath)
		if err != nil {
			return fail(fmt.Errorf("manifest: %w", err))
		}
		if opts.Manifest, err = api.ParseManifest(data); err != nil {
			return fail(fmt.Errorf("%s: %w", *manifestPath, err))
		}
	}
	if *pubkey != "" {
		data, err := os.ReadFile(*pubkey)
		if err != nil {
			return fail(err)
		}
		var pk keys.PublicKey
		dec := json.NewDecoder(strings.NewReader(string(data)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&pk); err != nil {
			return fail(fmt.Errorf("%s: not a public key as gov-key create prints it: %v", *pubkey, err))
		}
		if err := pk.Validate(); err != nil {
			return fail(fmt.Errorf("%s: %w", *pubkey, err))
		}
		opts.PublicKey = &pk
	}
	chk, err := auditlog.VerifyExport(pos[0], opts)
	if err != nil {
		return fail(err)
	}
	var cross *auditlog.Cross
	if len(chk.Logs) > 0 {
		cross = auditlog.CrossCheck(chk.Logs)
	}
	ok := cross == nil || cross.OK()
	if *asJSON {
		printJSON(stdout, auditVerifyExportJSON{OK: ok, Check: chk, Cross: cross})
	} else {
		em := chk.Manifest
		signed := "UNSIGNED (accepted with --allow-unsigned)"
		if chk.SignedBy != "" {
			signed = "signed by " + chk.SignedBy
		}
		fmt.Fprintf(stdout, "export %s of cluster %s, made %s: %s\n", pos[0], clean(em.ClusterID), em.CreatedAt.Format(time.RFC3339), signed)
		fmt.Fprintf(stdout, "  files        %d match %s\n", chk.Files, auditlog.ManifestFile)
		for _, p := range em.Parties {
			state := "hashes match"
			if opts.Manifest != nil {
				state = "raw log verified to this head; rows match it"
			}
			fmt.Fprintf(stdout, "  party %-6s head seq %d %s: %s\n", clean(p.PartyID), p.Head.Seq, p.Head.Hash, state)
		}
		if cross != nil {
			var parties []string
			for _, l := range chk.Logs {
				parties = append(parties, l.PartyID)
			}
			printCross(stdout, cross, parties)
		} else {
			fmt.Fprintf(stdout, "  logs not verified again (no --manifest)\n")
		}
	}
	if !ok {
		for _, f := range cross.Findings {
			fmt.Fprintf(stderr, "sealsign: audit verify-export: cross-party: %s\n", clean(f.String()))
		}
		return 1
	}
	return 0
}

func auditReport(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("audit report", flag.ContinueOnError)
	keyID := fs.String("key", "", "only ceremonies of this key")
	m, _, reps, asJSON, code, done := verifiedLogs("report", fs, args, stdout, stderr)
	if !done {
		return code
	}
	fail := func(err error) int { return failExit("audit report", err, stderr) }
	var bad []string
	for _, r := range reps {
		if !r.Verified {
			bad = append(bad, fmt.Sprintf("party %s (%s): %s", orUnknown(r.Party), r.Source, clean(r.Error.Message)))
		}
	}
	cs := auditlog.Ceremonies(logsOf(reps), *keyID)
	if asJSON {
		printJSON(stdout, struct {
			OK         bool                 `json:"ok"`
			Ceremonies []*auditlog.Ceremony `json:"ceremonies"`
			Unverified []string             `json:"unverified,omitempty"`
		}{len(bad) == 0, cs, bad})
	} else {
		fmt.Fprintf(stdout, "ceremony report for cluster %s (logs of %s)\n\n", m.ClusterID, strings.Join(partiesOf(reps), ", "))
		if err := auditlog.WriteReport(stdout, cs); err != nil {
			return fail(err)
		}
	}
	if len(bad) > 0 {
		for _, b := range bad {
			fmt.Fprintf(stderr, "sealsign: audit report: %s; its records are not in the report\n", b)
		}
		return 1
	}
	return 0
}

func partiesOf(reps []*auditParty) []string {
	var out []string
	for _, r := range reps {
		if r.Verified {
			out = append(out, r.Party)
		}
	}
	return slices.Compact(out)
}

func auditHashMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("audit hash", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, auditUsage) }
	host := fs.String("host", "", "the party's host API (default: party a of the dev appliance)")
	dir := fs.String("dir", "", "dev appliance directory")
	asJSON := fs.Bool("json", false, "print JSON")
	var value string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		value, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if value == "" && fs.NArg() == 1 {
		value = fs.Arg(0)
	} else if fs.NArg() != 0 || value == "" {
		fmt.Fprint(stderr, "sealsign: audit hash needs exactly one VALUE\n\n"+auditUsage)
		return 2
	}
	cl, err := hostClient(*host, *dir)
	if err != nil {
		fmt.Fprintf(stderr, "sealsign: audit hash: %v\n", err)
		return 1
	}
	res, err := cl.AuditHash(context.Background(), value)
	if err != nil {
		fmt.Fprintf(stderr, "sealsign: audit hash: %v\n", err)
		return 1
	}
	if *asJSON {
		printJSON(stdout, res)
		return 0
	}
	fmt.Fprintf(stdout, "party %s: %s\n", res.PartyID, res.MAC)
	return 0
}
