package auditlog

import (
	"bufio"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"github.com/sealsign/sealsign/enclave/api"
	"github.com/sealsign/sealsign/enclave/audit"
)

// Export formats.
const (
	FormatJSONL = "jsonl"
	FormatCSV   = "csv"
)

// Files of an export directory.
const (
	ManifestFile  = "export-manifest.json"
	SignatureFile = ManifestFile + ".sig"
	// ExportFormat names the layout of export-manifest.json. Version 1:
	// fields are only appended.
	ExportFormat = "sealsign-audit-export/1"
	// ExportDomain is what a signature over export-manifest.json is made
	// under (governance/keys Message).
	ExportDomain = "sealsign/v1/audit-export"
)

// Filter selects the entries an export lists. Every field set must match
// (AND); the zero Filter selects everything.
type Filter struct {
	// From (inclusive) and To (exclusive) bound entry times.
	From time.Time `json:"from,omitzero"`
	To   time.Time `json:"to,omitzero"`
	// KeyID selects entries about a key: its requests (and their
	// approvals, verdicts, sessions and results) and its ceremonies.
	KeyID string `json:"key_id,omitempty"`
	// ClientKeyID selects the requests of one client, with their
	// approvals, verdicts, sessions and results.
	ClientKeyID string `json:"client_key_id,omitempty"`
	// Ceremony selects ceremony entries of one kind ("keygen",
	// "policy-update", …).
	Ceremony string `json:"ceremony,omitempty"`
}

// Select returns the records of l the filter matches, in log order. Boot
// and checkpoint entries concern no key, client or ceremony: they are
// selected only when the filter names none (time alone).
func (f Filter) Select(l *Log) []*Record {
	type req struct{ key, client string }
	reqs := map[string]req{}
	for i := range l.Records {
		if r, ok := l.Records[i].Body.(*audit.Request); ok {
			if _, seen := reqs[r.RequestID]; !seen {
				reqs[r.RequestID] = req{r.KeyID, r.ClientKeyID}
			}
		}
	}
	scoped := f.KeyID != "" || f.ClientKeyID != "" || f.Ceremony != ""
	var out []*Record
	for i := range l.Records {
		r := &l.Records[i]
		if !f.From.IsZero() && r.Time.Before(f.From) || !f.To.IsZero() && !r.Time.Before(f.To) {
			continue
		}
		var key, client, reqID, ceremony string
		switch b := r.Body.(type) {
		case *audit.Request:
			reqID = b.RequestID
		case *audit.Verdict:
			reqID = b.RequestID
		case *audit.Approval:
			reqID = b.RequestID
		case *audit.Session:
			reqID, key = b.RequestID, b.KeyID
		case *audit.Result:
			reqID = b.RequestID
		case *audit.Ceremony:
			key, ceremony = b.KeyID, b.Kind
		default:
			if scoped {
				continue
			}
		}
		if rq, ok := reqs[reqID]; ok && reqID != "" {
			if key == "" {
				key = rq.key
			}
			client = rq.client
		}
		if f.KeyID != "" && key != f.KeyID || f.ClientKeyID != "" && client != f.ClientKeyID || f.Ceremony != "" && ceremony != f.Ceremony {
			continue
		}
		out = append(out, r)
	}
	return out
}

// BodyFields is an entry body as JSON-ready values keyed by the body's
// JSON field names: byte strings as hex, lists of them as lists of hex,
// denials as objects. Empty optional fields are left out.
func BodyFields(body any) map[string]any {
	v := reflect.ValueOf(body)
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return map[string]any{}
		}
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return map[string]any{}
	}
	return structFields(v)
}

func structFields(v reflect.Value) map[string]any {
	out := map[string]any{}
	t := v.Type()
	for i := range t.NumField() {
		name, omitEmpty := jsonName(t.Field(i))
		if name == "" {
			continue
		}
		fv := v.Field(i)
		if omitEmpty && fv.IsZero() {
			continue
		}
		out[name] = plain(fv)
	}
	return out
}

func jsonName(f reflect.StructField) (string, bool) {
	if !f.IsExported() {
		return "", false
	}
	tag := f.Tag.Get("json")
	if tag == "-" {
		return "", false
	}
	name, opts, _ := strings.Cut(tag, ",")
	if name == "" {
		name = f.Name
	}
	return name, strings.Contains(opts, "omitempty")
}

func plain(v reflect.Value) any {
	switch v.Kind() {
	case reflect.Array, reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			b := make([]byte, v.Len())
			reflect.Copy(reflect.ValueOf(b), v)
			return hex.EncodeToString(b)
		}
		out := make([]any, v.Len())
		for i := range out {
			out[i] = plain(v.Index(i))
		}
		return out
	case reflect.Map:
		out := map[string]any{}
		it := v.MapRange()
		for it.Next() {
			out[fmt.Sprint(it.Key().Interface())] = plain(it.Value())
		}
		return out
	case reflect.Struct:
		return structFields(v)
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return plain(v.Elem())
	}
	return v.Interface()
}

// ExportLine is one line of a JSON Lines export.
type ExportLine struct {
	Party     string         `json:"party"`
	Seq       uint64         `json:"seq"`
	Time      string         `json:"time"` // RFC 3339, nanoseconds, UTC
	TimeNS    int64          `json:"time_ns"`
	Type      string         `json:"type"`
	Hash      Hex            `json:"hash"` // audit.Hash of Raw
	Prev      Hex            `json:"prev"`
	SignerKey Hex            `json:"signer_key"`
	Body      map[string]any `json:"body"`
	// Raw is the SignedEntry as stored (base64): the line's proof.
	Raw []byte `json:"raw"`
}

func lineOf(party string, r *Record) ExportLine {
	return ExportLine{Party: party, Seq: r.Seq, Time: r.Time.UTC().Format(time.RFC3339Nano), TimeNS: r.Time.UnixNano(), Type: r.Type,
		Hash: r.Hash[:], Prev: r.Prev[:], SignerKey: r.SignerKey, Body: BodyFields(r.Body), Raw: r.Raw}
}

// WriteJSONL writes one ExportLine per record.
func WriteJSONL(w io.Writer, party string, recs []*Record) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	for _, r := range recs {
		if err := enc.Encode(lineOf(party, r)); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// CSVColumns are the columns of a CSV export: the entry's position, every
// body field of every entry type (by JSON name, in the order of the types'
// declarations; a field name shared by types shares a column), then the
// entry's hashes and raw bytes.
func CSVColumns() []string {
	cols := []string{"party", "seq", "time", "type"}
	seen := map[string]bool{}
	for _, bt := range bodyTypes {
		t := reflect.TypeOf(bt.zero()).Elem()
		for i := range t.NumField() {
			if name, _ := jsonName(t.Field(i)); name != "" && !seen[name] {
				seen[name] = true
				cols = append(cols, name)
			}
		}
	}
	return append(cols, "hash", "prev", "signer_key", "raw")
}

// WriteCSV writes a header (CSVColumns) and one row per record. Lists are
// space-separated; objects (denials, details) are compact JSON. A cell
// that a spreadsheet would take for a formula (starting with =, +, -, @,
// tab or carriage return) is prefixed with a single quote; hashes, ids
// and the raw entry never start so.
func WriteCSV(w io.Writer, party string, recs []*Record) error {
	cols := CSVColumns()
	cw := csv.NewWriter(w)
	if err := cw.Write(cols); err != nil {
		return err
	}
	row := make([]string, len(cols))
	for _, r := range recs {
		l := lineOf(party, r)
		vals := map[string]any{"party": l.Party, "seq": l.Seq, "time": l.Time, "type": l.Type,
			"hash": l.Hash.String(), "prev": l.Prev.String(), "signer_key": l.SignerKey.String(), "raw": l.Raw}
		for k, v := range l.Body {
			vals[k] = v
		}
		for i, c := range cols {
			row[i] = cell(vals[c])
		}
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

func cell(v any) string {
	var s string
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		s = v
	case []byte:
		b, _ := json.Marshal(v) // base64, quoted
		s = strings.Trim(string(b), `"`)
	case []any:
		parts := make([]string, len(v))
		simple := true
		for i, x := range v {
			if str, ok := x.(string); ok {
				parts[i] = str
			} else {
				simple = false
			}
		}
		if simple {
			s = strings.Join(parts, " ")
		} else {
			b, _ := json.Marshal(v)
			s = string(b)
		}
	case map[string]any:
		b, _ := json.Marshal(v)
		s = string(b)
	default:
		s = fmt.Sprint(v)
	}
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		s = "'" + s
	}
	return s
}

// ExportManifest is export-manifest.json.
//
// Format ExportFormat. Append fields only.
type ExportManifest struct {
	Format       string        `json:"format"`
	CreatedAt    time.Time     `json:"created_at"`
	ClusterID    string        `json:"cluster_id"`
	ManifestHash Hex           `json:"manifest_hash"`
	EntryFormat  string        `json:"entry_format"` // FormatJSONL or FormatCSV
	Filter       Filter        `json:"filter"`
	Parties      []ExportParty `json:"parties"`
}

// ExportParty is one party's part of an export.
type ExportParty struct {
	PartyID string   `json:"party_id"`
	Head    HeadJSON `json:"head"`
	// Raw is every entry of the party's log; Selected those the filter
	// matched.
	Raw      ExportFile `json:"raw"`
	Selected ExportFile `json:"selected"`
}

// HeadJSON is an audit.Head in JSON.
type HeadJSON struct {
	Seq  uint64    `json:"seq"`
	Hash Hex       `json:"hash"`
	Time time.Time `json:"time"`
}

func headJSON(h audit.Head) HeadJSON {
	return HeadJSON{Seq: h.Seq, Hash: h.Hash[:], Time: time.Unix(0, h.Time).UTC()}
}

// Head is the audit.Head.
func (h HeadJSON) Head() (audit.Head, error) {
	out := audit.Head{Seq: h.Seq, Time: h.Time.UnixNano()}
	if h.Seq == 0 {
		return audit.Head{}, nil
	}
	if len(h.Hash) != 32 {
		return audit.Head{}, fmt.Errorf("auditlog: head hash is %d bytes, want 32", len(h.Hash))
	}
	copy(out.Hash[:], h.Hash)
	return out, nil
}

// ExportFile is one file of an export.
type ExportFile struct {
	Name    string `json:"name"`
	SHA256  Hex    `json:"sha256"`
	Bytes   int64  `json:"bytes"`
	Entries int    `json:"entries"`
	// Ranges are the seqs of the entries, as inclusive [first, last] runs.
	Ranges [][2]uint64 `json:"ranges"`
}

// ExportOptions configures Export.
type ExportOptions struct {
	Format   string // FormatJSONL or FormatCSV
	Filter   Filter
	Manifest *api.Manifest // the manifest the logs were verified under
	Now      time.Time     // the export's created_at
}

// Export writes logs to dir (created if missing): per party the selected
// entries as <party>.jsonl or <party>.csv and all entries as
// <party>.cbor-seq, then export-manifest.json. It refuses logs that did
// not verify, and files that exist already (an export is never mixed into
// another).
func Export(dir string, logs []*Log, opts ExportOptions) (*ExportManifest, error) {
	if opts.Format != FormatJSONL && opts.Format != FormatCSV {
		return nil, fmt.Errorf("auditlog: export format %q unknown (want %q or %q)", opts.Format, FormatJSONL, FormatCSV)
	}
	if opts.Manifest == nil {
		return nil, errors.New("auditlog: export needs the manifest the logs were verified under")
	}
	mh, err := opts.Manifest.Hash()
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, l := range logs {
		if !l.Verified() {
			return nil, fmt.Errorf("auditlog: party %q's log did not verify (%v): refusing to export it", l.PartyID, l.Err)
		}
		if seen[l.PartyID] {
			return nil, fmt.Errorf("auditlog: party %q's log given twice", l.PartyID)
		}
		seen[l.PartyID] = true
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("auditlog: export: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dir, ManifestFile)); err == nil {
		return nil, fmt.Errorf("auditlog: %s already holds an export (%s); choose another directory", dir, ManifestFile)
	}
	em := &ExportManifest{Format: ExportFormat, CreatedAt: opts.Now.UTC(), ClusterID: opts.Manifest.ClusterID, ManifestHash: mh,
		EntryFormat: opts.Format, Filter: opts.Filter, Parties: []ExportParty{}}
	for _, l := range logs {
		all := make([]*Record, len(l.Records))
		raws := make([][]byte, len(l.Records))
		for i := range l.Records {
			all[i], raws[i] = &l.Records[i], l.Records[i].Raw
		}
		sel := opts.Filter.Select(l)
		ep := ExportParty{PartyID: l.PartyID, Head: headJSON(l.Head)}
		if ep.Raw, err = writeNew(dir, l.PartyID+RawExt, all, func(w io.Writer) error { return WriteRaw(w, raws) }); err != nil {
			return nil, err
		}
		write := func(w io.Writer) error { return WriteJSONL(w, l.PartyID, sel) }
		if opts.Format == FormatCSV {
			write = func(w io.Writer) error { return WriteCSV(w, l.PartyID, sel) }
		}
		if ep.Selected, err = writeNew(dir, l.PartyID+"."+opts.Format, sel, write); err != nil {
			return nil, err
		}
		em.Parties = append(em.Parties, ep)
	}
	b, err := json.MarshalIndent(em, "", "  ")
	if err != nil {
		return nil, err
	}
	if _, err := writeNew(dir, ManifestFile, nil, func(w io.Writer) error { _, err := w.Write(append(b, '\n')); return err }); err != nil {
		return nil, err
	}
	return em, nil
}

// writeNew creates dir/name, which must not exist, and describes it.
func writeNew(dir, name string, recs []*Record, write func(io.Writer) error) (ExportFile, error) {
	path := filepath.Join(dir, name)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return ExportFile{}, fmt.Errorf("auditlog: export: %w", err)
	}
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(f, h)}
	err = write(cw)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return ExportFile{}, fmt.Errorf("auditlog: export %s: %w", name, err)
	}
	return ExportFile{Name: name, SHA256: h.Sum(nil), Bytes: cw.n, Entries: len(recs), Ranges: ranges(recs)}, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func ranges(recs []*Record) [][2]uint64 {
	out := [][2]uint64{}
	for _, r := range recs {
		if n := len(out); n > 0 && out[n-1][1]+1 == r.Seq {
			out[n-1][1] = r.Seq
			continue
		}
		out = append(out, [2]uint64{r.Seq, r.Seq})
	}
	return out
}

func hashFile(path string) ([]byte, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	var h hash.Hash = sha256.New()
	n, err := io.Copy(h, f)
	return h.Sum(nil), n, err
}
