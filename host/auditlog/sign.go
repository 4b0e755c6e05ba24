package auditlog

import (
	"bytes"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/sealsign/sealsign/enclave/api"
	"github.com/sealsign/sealsign/enclave/audit"
	"github.com/sealsign/sealsign/governance/keys"
)

// ExportSignature is export-manifest.json.sig: a governance key's
// signature over the exact bytes of export-manifest.json under
// ExportDomain.
//
// Append fields only.
type ExportSignature struct {
	Domain    string `json:"domain"`
	KeyID     string `json:"key_id"`
	Algorithm string `json:"algorithm"`
	Signature []byte `json:"signature"` // base64
}

// maxManifestFile bounds export-manifest.json and its signature file.
const maxManifestFile = 16 << 20

// SignExport signs dir's export-manifest.json with k and writes the
// signature next to it. An existing signature is never replaced.
func SignExport(dir string, k *keys.PrivateKey) (*ExportSignature, error) {
	body, err := readLimited(filepath.Join(dir, ManifestFile), maxManifestFile)
	if err != nil {
		return nil, err
	}
	sig, err := k.Sign(ExportDomain, body)
	if err != nil {
		return nil, fmt.Errorf("auditlog: sign export: %w", err)
	}
	es := &ExportSignature{Domain: ExportDomain, KeyID: k.Public.ID, Algorithm: k.Public.Algorithm, Signature: sig}
	b, _ := json.MarshalIndent(es, "", "  ")
	if _, err := writeNew(dir, SignatureFile, nil, func(w io.Writer) error { _, err := w.Write(append(b, '\n')); return err }); err != nil {
		return nil, err
	}
	return es, nil
}

// VerifyExportOptions configures VerifyExport.
type VerifyExportOptions struct {
	// Manifest is the cluster manifest: its governance admins are the keys
	// a signature may come from, and with it every raw file is verified
	// again (chain, attestations, the recorded head) and every selected
	// entry matched to its raw log.
	Manifest *api.Manifest
	// PublicKey is the signer's key, for an export signed by a key the
	// manifest does not list as an admin (an auditor's).
	PublicKey *keys.PublicKey
	// AllowUnsigned accepts an export without a signature, checking only
	// that the files are the ones the manifest lists. Anyone who can
	// write the directory can write such an export.
	AllowUnsigned bool
}

// ExportCheck is what VerifyExport checked.
type ExportCheck struct {
	Manifest *ExportManifest `json:"manifest"`
	// SignedBy is the key id of the signature, "" if unsigned.
	SignedBy string `json:"signed_by,omitempty"`
	Files    int    `json:"files"`
	// Logs are the raw files verified again (with Options.Manifest).
	Logs []*Log `json:"-"`
}

// VerifyExport checks an export directory: the signature over
// export-manifest.json, each file's size and SHA-256, and, given the
// cluster manifest, each party's raw file as a log reaching exactly the
// recorded head and each selected entry as one of that log's.
func VerifyExport(dir string, opts VerifyExportOptions) (*ExportCheck, error) {
	body, err := readLimited(filepath.Join(dir, ManifestFile), maxManifestFile)
	if err != nil {
		return nil, err
	}
	em := new(ExportManifest)
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(em); err != nil {
		return nil, fmt.Errorf("auditlog: %s: %v", ManifestFile, err)
	}
	if em.Format != ExportFormat {
		return nil, fmt.Errorf("auditlog: %s: format %q, want %q", ManifestFile, em.Format, ExportFormat)
	}
	chk := &ExportCheck{Manifest: em}
	if err := checkSignature(dir, body, opts, chk); err != nil {
		return chk, err
	}
	if opts.Manifest != nil {
		mh, err := opts.Manifest.Hash()
		if err != nil {
			return chk, err
		}
		if !bytes.Equal(mh, em.ManifestHash) {
			return chk, fmt.Errorf("auditlog: the export was made under manifest %s, not the one given (%s)", short(em.ManifestHash), short(mh))
		}
	}
	names := map[string]bool{ManifestFile: true, SignatureFile: true}
	for _, p := range em.Parties {
		for _, f := range []ExportFile{p.Raw, p.Selected} {
			if filepath.Base(f.Name) != f.Name || f.Name == "." || f.Name == ".." || names[f.Name] {
				return chk, fmt.Errorf("auditlog: %s lists file %q: not a plain file name of the export, or listed twice", ManifestFile, f.Name)
			}
			names[f.Name] = true
			sum, n, err := hashFile(filepath.Join(dir, f.Name))
			if err != nil {
				return chk, fmt.Errorf("auditlog: %w", err)
			}
			if n != f.Bytes || !bytes.Equal(sum, f.SHA256) {
				return chk, fmt.Errorf("auditlog: %s is %d bytes with sha256 %x, %s lists %d bytes with sha256 %x: the file was changed", f.Name, n, sum, ManifestFile, f.Bytes, []byte(f.SHA256))
			}
			chk.Files++
		}
		if opts.Manifest == nil {
			continue
		}
		l, err := verifyExportedParty(dir, em, p, opts.Manifest)
		if l != nil {
			chk.Logs = append(chk.Logs, l)
		}
		if err != nil {
			return chk, err
		}
	}
	return chk, nil
}

func checkSignature(dir string, body []byte, opts VerifyExportOptions, chk *ExportCheck) error {
	sb, err := readLimited(filepath.Join(dir, SignatureFile), maxManifestFile)
	if errors.Is(err, os.ErrNotExist) {
		if opts.AllowUnsigned {
			return nil
		}
		return fmt.Errorf("auditlog: the export is not signed (no %s): anyone who can write the directory could have made it; sign it, or accept an unsigned export explicitly", SignatureFile)
	}
	if err != nil {
		return err
	}
	var es ExportSignature
	dec := json.NewDecoder(bytes.NewReader(sb))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&es); err != nil {
		return fmt.Errorf("auditlog: %s: %v", SignatureFile, err)
	}
	if es.Domain != ExportDomain {
		return fmt.Errorf("auditlog: %s is a signature under domain %q, want %q", SignatureFile, es.Domain, ExportDomain)
	}
	var pub keys.PublicKey
	switch {
	case opts.PublicKey != nil:
		if opts.PublicKey.ID != es.KeyID {
			return fmt.Errorf("auditlog: the export is signed by key %q, the public key given is %q", es.KeyID, opts.PublicKey.ID)
		}
		pub = *opts.PublicKey
	case opts.Manifest != nil && opts.Manifest.Governance != nil:
		i := slices.IndexFunc(opts.Manifest.Governance.Admins, func(k keys.PublicKey) bool { return k.ID == es.KeyID })
		if i < 0 {
			return fmt.Errorf("auditlog: the export is signed by key %q, which is not an admin of cluster %q; give the signer's public key", es.KeyID, opts.Manifest.ClusterID)
		}
		pub = opts.Manifest.Governance.Admins[i]
	default:
		return fmt.Errorf("auditlog: the export is signed by key %q: give the manifest (whose admins hold it) or the public key to check it", es.KeyID)
	}
	if err := pub.Verify(ExportDomain, body, es.Signature); err != nil {
		return fmt.Errorf("auditlog: %s does not verify over %s: %w", SignatureFile, ManifestFile, err)
	}
	chk.SignedBy = es.KeyID
	return nil
}

func verifyExportedParty(dir string, em *ExportManifest, p ExportParty, m *api.Manifest) (*Log, error) {
	head, err := p.Head.Head()
	if err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join(dir, p.Raw.Name))
	if err != nil {
		return nil, fmt.Errorf("auditlog: %w", err)
	}
	defer f.Close()
	opts := Options{Manifest: m, PartyID: p.PartyID}
	if head.Seq > 0 {
		opts.Anchors = []audit.Head{head}
	}
	l, err := Verify(ReadRaw(f), opts)
	if err != nil {
		return l, fmt.Errorf("auditlog: %s: %w", p.Raw.Name, err)
	}
	if l.Head.Seq != head.Seq || l.Head.Hash != head.Hash {
		return l, fmt.Errorf("auditlog: %s ends at seq %d (%x), %s records the head at seq %d (%x)", p.Raw.Name, l.Head.Seq, l.Head.Hash[:8], ManifestFile, head.Seq, head.Hash[:8])
	}
	if len(l.Records) != p.Raw.Entries {
		return l, fmt.Errorf("auditlog: %s holds %d entries, %s lists %d", p.Raw.Name, len(l.Records), ManifestFile, p.Raw.Entries)
	}
	bySeq := make(map[uint64]*Record, len(l.Records))
	for i := range l.Records {
		bySeq[l.Records[i].Seq] = &l.Records[i]
	}
	sf, err := os.Open(filepath.Join(dir, p.Selected.Name))
	if err != nil {
		return l, fmt.Errorf("auditlog: %w", err)
	}
	defer sf.Close()
	var rows iter.Seq2[[]byte, error]
	switch em.EntryFormat {
	case FormatJSONL:
		rows = ReadFile(sf)
	case FormatCSV:
		rows = csvRaws(sf)
	default:
		return l, fmt.Errorf("auditlog: %s: entry format %q unknown", ManifestFile, em.EntryFormat)
	}
	var sel []*Record
	n := 0
	for raw, err := range rows {
		n++
		if err != nil {
			return l, fmt.Errorf("auditlog: %s: %w", p.Selected.Name, err)
		}
		s, ok := seqOf(raw)
		r := bySeq[s]
		if !ok || r == nil || !bytes.Equal(r.Raw, raw) {
			return l, fmt.Errorf("auditlog: %s: entry %d (seq %d) is not the entry of party %s's log at that seq", p.Selected.Name, n, s, p.PartyID)
		}
		sel = append(sel, r)
	}
	if len(sel) != p.Selected.Entries || !slices.Equal(ranges(sel), p.Selected.Ranges) {
		return l, fmt.Errorf("auditlog: %s holds %d entries in seq ranges %v, %s lists %d in %v", p.Selected.Name, len(sel), ranges(sel), ManifestFile, p.Selected.Entries, p.Selected.Ranges)
	}
	return l, nil
}

// csvRaws yields the raw entries of a CSV export (its "raw" column).
func csvRaws(r io.Reader) iter.Seq2[[]byte, error] {
	return func(yield func([]byte, error) bool) {
		cr := csv.NewReader(r)
		head, err := cr.Read()
		if err != nil {
			yield(nil, fmt.Errorf("%w: CSV header: %v", ErrRawFormat, err))
			return
		}
		col := slices.Index(head, "raw")
		if col < 0 {
			yield(nil, fmt.Errorf("%w: CSV header has no \"raw\" column", ErrRawFormat))
			return
		}
		for line := 2; ; line++ {
			rec, err := cr.Read()
			if err == io.EOF {
				return
			}
			if err != nil {
				yield(nil, fmt.Errorf("%w: CSV row %d: %v", ErrRawFormat, line, err))
				return
			}
			b, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(rec[col], "'"))
			if err != nil {
				yield(nil, fmt.Errorf("%w: CSV row %d: raw is not base64", ErrRawFormat, line))
				return
			}
			if !yield(b, nil) {
				return
			}
		}
	}
}

func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("auditlog: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("auditlog: %w", err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("auditlog: %s is larger than %d bytes", path, limit)
	}
	return b, nil
}
