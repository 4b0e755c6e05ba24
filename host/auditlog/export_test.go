package auditlog_test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sealsign/sealsign/enclave/audit"
	"github.com/sealsign/sealsign/host/auditlog"
	"github.com/sealsign/sealsign/host/auditlog/auditlogtest"
)

func TestRawRoundTrip(t *testing.T) {
	c := auditlogtest.New(t)
	c.Demo()
	a := c.Party("a").Entries
	var buf bytes.Buffer
	if err := auditlog.WriteRaw(&buf, a); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), bytes.Join(a, nil)) {
		t.Fatal("raw file is not the entries concatenated")
	}
	var got [][]byte
	for e, err := range auditlog.ReadRaw(bytes.NewReader(buf.Bytes())) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, e)
	}
	if !slices.EqualFunc(got, a, bytes.Equal) {
		t.Fatal("ReadRaw does not return the entries written")
	}
	if err := auditlog.WriteRaw(&buf, [][]byte{append(slices.Clone(a[0]), 0)}); err == nil {
		t.Fatal("WriteRaw accepted an entry with trailing bytes")
	}

	// A file cut inside an entry is malformed at that entry.
	cut := buf.Bytes()[:len(bytes.Join(a[:7], nil))+10]
	_, err := auditlog.Verify(auditlog.ReadRaw(bytes.NewReader(cut)), auditlog.Options{Manifest: c.Manifest, PartyID: "a"})
	checkPosition(t, err, "malformed", 7, 8)
	if !strings.Contains(err.Error(), "file ends inside entry 7") {
		t.Fatalf("error %q", err)
	}

	// The host's JSON answer and a JSON Lines export read as the same log.
	host, _ := json.Marshal(map[string]any{"party_id": "a", "entries": a})
	l, _ := auditlog.Verify(auditlog.Slice(a), auditlog.Options{Manifest: c.Manifest})
	var lines bytes.Buffer
	recs := make([]*auditlog.Record, len(l.Records))
	for i := range l.Records {
		recs[i] = &l.Records[i]
	}
	if err := auditlog.WriteJSONL(&lines, "a", recs); err != nil {
		t.Fatal(err)
	}
	for name, file := range map[string][]byte{"raw": buf.Bytes()[:len(bytes.Join(a, nil))], "host": append([]byte("\n "), host...), "jsonl": lines.Bytes()} {
		l, err := auditlog.Verify(auditlog.ReadFile(bytes.NewReader(file)), auditlog.Options{Manifest: c.Manifest, PartyID: "a"})
		if err != nil || l.Head != c.Party("a").Head() {
			t.Errorf("%s file: %v", name, err)
		}
	}
}

func exportLogs(t *testing.T) (*auditlogtest.Cluster, []*auditlog.Log) {
	c := auditlogtest.New(t)
	c.Demo()
	return c, verifyAll(t, c)
}

func TestFilter(t *testing.T) {
	c, logs := exportLogs(t)
	a := logs[0]
	seqs := func(f auditlog.Filter) []string {
		var out []string
		for _, r := range f.Select(a) {
			id := ""
			switch b := r.Body.(type) {
			case *audit.Request:
				id = b.RequestID
			case *audit.Verdict:
				id = b.RequestID
			case *audit.Session:
				id = b.RequestID
			case *audit.Result:
				id = b.RequestID
			case *audit.Ceremony:
				id = b.Kind
			}
			out = append(out, r.Type+":"+id)
		}
		return out
	}
	if got := len(auditlog.Filter{}.Select(a)); got != len(a.Records) {
		t.Fatalf("zero filter selects %d of %d", got, len(a.Records))
	}
	if got, want := seqs(auditlog.Filter{ClientKeyID: "client-2"}), []string{"request:req-4", "verdict:req-4", "session:req-4", "result:req-4"}; !slices.Equal(got, want) {
		t.Errorf("client filter: %v, want %v", got, want)
	}
	if got, want := seqs(auditlog.Filter{Ceremony: "keygen"}), []string{"ceremony:keygen"}; !slices.Equal(got, want) {
		t.Errorf("ceremony filter: %v, want %v", got, want)
	}
	key := seqs(auditlog.Filter{KeyID: "key-1"})
	if len(key) != 1+3*4+1 || slices.Contains(key, "boot:") || slices.Contains(key, "verdict:req-5") {
		t.Errorf("key filter: %v", key) // keygen, 3 requests of a with 4+ entries (req-2 has 2 sessions)
	}
	if got := seqs(auditlog.Filter{KeyID: "other"}); len(got) != 0 {
		t.Errorf("other key: %v", got)
	}
	// Time: [from, to) — the second hour holds b's reboot and what follows.
	from := auditlogtest.Start.Add(time.Hour)
	for _, r := range (auditlog.Filter{From: from}).Select(a) {
		if r.Time.Before(from) {
			t.Fatalf("entry seq %d at %s before --from", r.Seq, r.Time)
		}
	}
	before := auditlog.Filter{To: from}.Select(a)
	after := auditlog.Filter{From: from}.Select(a)
	if len(before)+len(after) != len(a.Records) || len(before) == 0 || len(after) == 0 {
		t.Fatalf("time split %d + %d of %d", len(before), len(after), len(a.Records))
	}
	_ = c
}

func TestExport(t *testing.T) {
	for _, format := range []string{auditlog.FormatJSONL, auditlog.FormatCSV} {
		t.Run(format, func(t *testing.T) {
			c, logs := exportLogs(t)
			dir := filepath.Join(t.TempDir(), "export")
			f := auditlog.Filter{KeyID: "key-1"}
			em, err := auditlog.Export(dir, logs, auditlog.ExportOptions{Format: format, Filter: f, Manifest: c.Manifest, Now: c.Now})
			if err != nil {
				t.Fatal(err)
			}
			if len(em.Parties) != 3 || em.Parties[0].Head.Seq != logs[0].Head.Seq || em.Parties[0].Raw.Entries != len(logs[0].Records) {
				t.Fatalf("manifest %+v", em.Parties[0])
			}
			if _, err := auditlog.Export(dir, logs, auditlog.ExportOptions{Format: format, Manifest: c.Manifest}); err == nil {
				t.Fatal("export into an export directory")
			}
			// Unsigned: refused unless allowed.
			if _, err := auditlog.VerifyExport(dir, auditlog.VerifyExportOptions{Manifest: c.Manifest}); err == nil || !strings.Contains(err.Error(), "not signed") {
				t.Fatalf("unsigned: %v", err)
			}
			if _, err := auditlog.VerifyExport(dir, auditlog.VerifyExportOptions{Manifest: c.Manifest, AllowUnsigned: true}); err != nil {
				t.Fatal(err)
			}
			if _, err := auditlog.SignExport(dir, c.Admins[0]); err != nil {
				t.Fatal(err)
			}
			chk, err := auditlog.VerifyExport(dir, auditlog.VerifyExportOptions{Manifest: c.Manifest})
			if err != nil || chk.SignedBy != "admin-1" || chk.Files != 6 || len(chk.Logs) != 3 {
				t.Fatalf("verify export: %v %+v", err, chk)
			}
			if _, err := auditlog.VerifyExport(dir, auditlog.VerifyExportOptions{PublicKey: &c.Admins[0].Public}); err != nil {
				t.Fatalf("with the public key: %v", err)
			}
			if _, err := auditlog.VerifyExport(dir, auditlog.VerifyExportOptions{PublicKey: &c.Admins[1].Public}); err == nil {
				t.Fatal("signature checked against the wrong admin")
			}
			// The raw file is the whole log, verifiable on its own.
			raw, _ := os.Open(filepath.Join(dir, "a.cbor-seq"))
			defer raw.Close()
			if l, err := auditlog.Verify(auditlog.ReadRaw(raw), auditlog.Options{Manifest: c.Manifest, PartyID: "a"}); err != nil || l.Head != logs[0].Head {
				t.Fatalf("raw export: %v", err)
			}
			// Every selected row carries its entry.
			sel := readSelected(t, filepath.Join(dir, "a."+format), format)
			want := f.Select(logs[0])
			if len(sel) != len(want) || len(sel) == 0 {
				t.Fatalf("%d rows, want %d", len(sel), len(want))
			}
			for i, row := range sel {
				if row["seq"] != want[i].Seq || row["raw"] == "" || row["type"] != want[i].Type {
					t.Fatalf("row %d: %v", i, row)
				}
			}
		})
	}
}

// readSelected reads rows of a selected file as maps with seq, type, raw.
func readSelected(t *testing.T, path, format string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	if format == auditlog.FormatCSV {
		rows, err := csv.NewReader(f).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows[1:] {
			m := map[string]any{}
			for i, c := range rows[0] {
				m[c] = r[i]
			}
			var seq uint64
			json.Unmarshal([]byte(r[1]), &seq)
			m["seq"] = seq
			out = append(out, m)
		}
		return out
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var line auditlog.ExportLine
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatal(err)
		}
		out = append(out, map[string]any{"seq": line.Seq, "type": line.Type, "raw": base64.StdEncoding.EncodeToString(line.Raw)})
	}
	return out
}

// TestExportTamper: every change to a signed export is found.
func TestExportTamper(t *testing.T) {
	tests := []struct {
		name   string
		change func(t *testing.T, dir string, c *auditlogtest.Cluster)
		msg    string
	}{
		{"file changed", func(t *testing.T, dir string, _ *auditlogtest.Cluster) {
			b, _ := os.ReadFile(filepath.Join(dir, "b.jsonl"))
			os.WriteFile(filepath.Join(dir, "b.jsonl"), bytes.Replace(b, []byte(`"seq":3,`), []byte(`"seq":4,`), 1), 0o644)
		}, "b.jsonl is"},
		{"manifest changed", func(t *testing.T, dir string, _ *auditlogtest.Cluster) {
			b, _ := os.ReadFile(filepath.Join(dir, auditlog.ManifestFile))
			os.WriteFile(filepath.Join(dir, auditlog.ManifestFile), bytes.Replace(b, []byte(`"key_id": "key-1"`), []byte(`"key_id": "key-2"`), 1), 0o644)
		}, "does not verify"},
		{"signature removed", func(t *testing.T, dir string, _ *auditlogtest.Cluster) {
			os.Remove(filepath.Join(dir, auditlog.SignatureFile))
		}, "not signed"},
		{"signed by a non-admin", func(t *testing.T, dir string, c *auditlogtest.Cluster) {
			os.Remove(filepath.Join(dir, auditlog.SignatureFile))
			k := c.Admins[0]
			k.Public.ID = "mallory"
			auditlog.SignExport(dir, k)
		}, `"mallory", which is not an admin`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, logs := exportLogs(t)
			dir := t.TempDir()
			if _, err := auditlog.Export(dir, logs, auditlog.ExportOptions{Format: auditlog.FormatJSONL, Filter: auditlog.Filter{KeyID: "key-1"}, Manifest: c.Manifest, Now: c.Now}); err != nil {
				t.Fatal(err)
			}
			if _, err := auditlog.SignExport(dir, c.Admins[0]); err != nil {
				t.Fatal(err)
			}
			tt.change(t, dir, c)
			_, err := auditlog.VerifyExport(dir, auditlog.VerifyExportOptions{Manifest: c.Manifest})
			if err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("error %v, want one containing %q", err, tt.msg)
			}
		})
	}
}

// TestExportRewritten: an export made again from tampered files, with
// its manifest's hashes recomputed (by someone without the signing key,
// so unsigned), still fails: the raw file must be a log reaching the
// recorded head, and selected rows must be its entries.
func TestExportRewritten(t *testing.T) {
	c, logs := exportLogs(t)
	dir := t.TempDir()
	if _, err := auditlog.Export(dir, logs, auditlog.ExportOptions{Format: auditlog.FormatJSONL, Manifest: c.Manifest, Now: c.Now}); err != nil {
		t.Fatal(err)
	}
	rehash := func() {
		b, _ := os.ReadFile(filepath.Join(dir, auditlog.ManifestFile))
		var em auditlog.ExportManifest
		json.Unmarshal(b, &em)
		for i, p := range em.Parties {
			for _, f := range []*auditlog.ExportFile{&em.Parties[i].Raw, &em.Parties[i].Selected} {
				data, _ := os.ReadFile(filepath.Join(dir, f.Name))
				sum := sha256Sum(data)
				f.SHA256, f.Bytes = sum, int64(len(data))
			}
			_ = p
		}
		b, _ = json.MarshalIndent(em, "", "  ")
		os.WriteFile(filepath.Join(dir, auditlog.ManifestFile), b, 0o644)
	}
	a := c.Party("a").Entries
	// Truncate a's raw file by three entries.
	auditlogtest.WriteRaw(t, filepath.Join(dir, "a.cbor-seq"), a[:len(a)-3])
	rehash()
	_, err := auditlog.VerifyExport(dir, auditlog.VerifyExportOptions{Manifest: c.Manifest, AllowUnsigned: true})
	checkPosition(t, err, "truncated", len(a)-3, uint64(len(a)-2))
	// Restore it, and swap a selected row for another party's entry.
	auditlogtest.WriteRaw(t, filepath.Join(dir, "a.cbor-seq"), a)
	lines, _ := os.ReadFile(filepath.Join(dir, "a.jsonl"))
	ls := bytes.SplitAfter(lines, []byte("\n"))
	var other auditlog.ExportLine
	json.Unmarshal(bytes.SplitAfter(mustRead(t, filepath.Join(dir, "b.jsonl")), []byte("\n"))[2], &other)
	var mine auditlog.ExportLine
	json.Unmarshal(ls[2], &mine)
	mine.Raw = other.Raw
	nl, _ := json.Marshal(mine)
	ls[2] = append(nl, '\n')
	os.WriteFile(filepath.Join(dir, "a.jsonl"), bytes.Join(ls, nil), 0o644)
	rehash()
	_, err = auditlog.VerifyExport(dir, auditlog.VerifyExportOptions{Manifest: c.Manifest, AllowUnsigned: true})
	if err == nil || !strings.Contains(err.Error(), "a.jsonl: entry 3 (seq 3) is not the entry of party a's log") {
		t.Fatalf("swapped row: %v", err)
	}
}

func mustRead(t *testing.T, path string) []byte {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestExportRefusesUnverified(t *testing.T) {
	c := auditlogtest.New(t)
	c.Demo()
	bad, _ := verify(t, c, "a", c.Party("a").Entries[1:], auditlog.Options{})
	_, err := auditlog.Export(t.TempDir(), []*auditlog.Log{bad}, auditlog.ExportOptions{Format: auditlog.FormatJSONL, Manifest: c.Manifest})
	if err == nil || !strings.Contains(err.Error(), "refusing to export") {
		t.Fatalf("export of a log that did not verify: %v", err)
	}
}

func TestCSVCells(t *testing.T) {
	c := auditlogtest.New(t)
	c.Party("a").Append(audit.TypeResult, audit.Result{RequestID: "=cmd|' /C calc'!A0", Outcome: audit.OutcomeFailed, Error: "+1", Culprits: []string{"b", "c"}})
	l, err := verify(t, c, "a", c.Party("a").Entries, auditlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := auditlog.WriteCSV(&buf, "a", []*auditlog.Record{&l.Records[1]}); err != nil {
		t.Fatal(err)
	}
	rows, _ := csv.NewReader(&buf).ReadAll()
	row := map[string]string{}
	for i, c := range rows[0] {
		row[c] = rows[1][i]
	}
	if row["request_id"] != "'=cmd|' /C calc'!A0" || row["error"] != "'+1" || row["culprits"] != "b c" || row["type"] != "result" {
		t.Fatalf("row %v", row)
	}
}

func sha256Sum(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}
