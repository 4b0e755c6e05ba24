package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sealsign/sealsign/attestation"
	"github.com/sealsign/sealsign/attestation/peer"
	"github.com/sealsign/sealsign/enclave/api"
	"github.com/sealsign/sealsign/host/client"
)

func init() { commands["attest"] = attestMain }

const attestUsage = `sealsign attest — verify AWS Nitro attestation documents

Usage:
  sealsign attest verify FILE [flags]
  sealsign attest fetch --url URL --manifest FILE [flags]

verify  checks one document: COSE_Sign1 structure, ES384 signature, the
        certificate chain to the trust root at the verification time, and the
        policy the flags give. FILE holds the raw COSE bytes, or the same as
        base64 or hex (detected); "-" reads standard input.
fetch   asks a running party (its host's HTTP API) for a fresh document bound
        to a random nonce and verifies it against that party's entry in the
        cluster manifest: its pinned PCRs, user_data = the manifest hash,
        public_key = the identity the host reports.

Flags (verify; fetch takes --root, --allow-debug, --max-age, --json too):
  --at RFC3339         verification time (default: now). Leaf certificates
                       live about 3 hours: an archived document verifies
                       only at a time inside its window
  --max-age DURATION   reject documents older than this at the verification
                       time, e.g. 5m (default: none for verify, 5m for fetch)
  --pcr N=HEX          require PCR N (0..31) to be HEX (repeatable); a PCR
                       named here that the document lacks fails
  --nonce HEX          require this nonce ("" requires none)
  --user-data HEX      require this user_data ("" requires none)
  --public-key HEX     require this public_key ("" requires none)
  --match-instance-id  require PCR4 to measure the EC2 instance in module_id
  --root PEM           trust the certificates in this PEM file instead of the
                       AWS root (repeatable); dev documents need their dev root
  --allow-debug        accept debug-mode enclaves (PCR0 all zero), whose
                       memory the parent instance can read: development only
  --json               print the decoded document (unauthenticated when
                       invalid), the certificate chain, the checks performed
                       and the verdict as JSON

Without --root the only trust anchor is the AWS Nitro Enclaves root built
into sealsign, pinned by its DER SHA-256 641a0321…bb5b. A document from a
dev NSM never verifies against it.

Examples:
  sealsign attest verify doc.cose --at 2022-11-09T23:00:00Z
  sealsign attest verify doc.b64 --max-age 5m --nonce c678c861…6245 \
      --pcr 0=22f9e1c9…7d01 --pcr 1=bcdf05fe…e63f
  base64 -w0 doc.cose | sealsign attest verify - --at 2022-11-09T23:00:00Z --json | jq .checks
  sealsign attest verify dev-doc.cose --root ~/.sealsign/dev/ca.pem
  sealsign attest fetch --url http://127.0.0.1:7701 --manifest ~/.sealsign/dev/manifest.json

Exit codes: 0 valid, 1 invalid or unreadable (reason on stderr, and in the
JSON "error"), 2 usage.
`

// attestNow and attestStdin are injected by tests.
var (
	attestNow             = time.Now
	attestStdin io.Reader = os.Stdin
)

// maxAttestInput bounds FILE: a document is at most 16 KiB, 32 KiB as hex.
const maxAttestInput = 64 << 10

func attestMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, attestUsage)
		return 2
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprint(stdout, attestUsage)
		return 0
	case "verify":
		return attestVerify(args[1:], stdout, stderr)
	case "fetch":
		return attestFetch(args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "sealsign: attest: unknown verb %q\n\n%s", args[0], attestUsage)
	return 2
}

// attestUsageError is a command-line mistake (exit 2).
type attestUsageError struct{ msg string }

func (e attestUsageError) Error() string { return e.msg }

func attestUsagef(format string, a ...any) error { return attestUsageError{fmt.Sprintf(format, a...)} }

// attestFlags are the policy flags verify and fetch share.
type attestFlags struct {
	maxAge     time.Duration
	roots      attestListFlag
	allowDebug bool
	asJSON     bool
}

func (f *attestFlags) register(fs *flag.FlagSet, defaultMaxAge time.Duration) {
	fs.DurationVar(&f.maxAge, "max-age", defaultMaxAge, "reject documents older than this")
	fs.Var(&f.roots, "root", "trust the certificates in this PEM file instead of the AWS root (repeatable)")
	fs.BoolVar(&f.allowDebug, "allow-debug", false, "accept debug-mode enclaves (development only)")
	fs.BoolVar(&f.asJSON, "json", false, "print a JSON report")
}

func attestVerify(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("attest verify", flag.ContinueOnError)
	var common attestFlags
	common.register(fs, 0)
	at := fs.String("at", "", "verification time, RFC 3339 (default: now)")
	pcrs := attestPCRFlag{}
	fs.Var(pcrs, "pcr", "require PCR N to be HEX: N=HEX (repeatable)")
	var nonce, userData, publicKey attestHexFlag
	fs.Var(&nonce, "nonce", "require this nonce (hex)")
	fs.Var(&userData, "user-data", "require this user_data (hex)")
	fs.Var(&publicKey, "public-key", "require this public_key (hex)")
	matchID := fs.Bool("match-instance-id", false, "require PCR4 to measure the instance in module_id")

	pos, err := attestParseFlags(fs, args)
	if err != nil {
		return attestFinish("verify", err, stdout, stderr)
	}
	if len(pos) != 1 {
		return attestFinish("verify", attestUsagef("verify takes one FILE (or - for standard input), got %d arguments", len(pos)), stdout, stderr)
	}
	opts := attestation.VerifyOptions{
		Time:            attestNow(),
		MaxAge:          common.maxAge,
		PCRs:            pcrs,
		AllowDebug:      common.allowDebug,
		MatchInstanceID: *matchID,
		Nonce:           nonce.b,
		UserData:        userData.b,
		PublicKey:       publicKey.b,
	}
	if *at != "" {
		t, err := time.Parse(time.RFC3339Nano, *at)
		if err != nil {
			return attestFinish("verify", attestUsagef("--at %q is not an RFC 3339 time (e.g. 2022-11-09T23:00:00Z)", *at), stdout, stderr)
		}
		opts.Time = t
	}
	if common.maxAge < 0 {
		return attestFinish("verify", attestUsagef("--max-age %v is negative", common.maxAge), stdout, stderr)
	}
	in := attestInput{File: pos[0]}
	doc, err := in.read()
	if err != nil {
		return attestFail(err, common.asJSON, nil, stdout, stderr)
	}
	if opts.Roots, err = common.trustRoots(); err != nil {
		return attestFail(err, common.asJSON, &in, stdout, stderr)
	}
	return attestCheck(doc, opts, &in, common.asJSON, *at != "", stdout, stderr)
}

// trustRoots returns the --root certificates, or the pinned AWS root.
func (f *attestFlags) trustRoots() ([]*x509.Certificate, error) {
	if len(f.roots) == 0 {
		return attestation.AWSRoots(), nil
	}
	var roots []*x509.Certificate
	for _, path := range f.roots {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("attest: --root: %w", err)
		}
		certs, err := attestParsePEMCerts(b)
		if err != nil {
			return nil, fmt.Errorf("attest: --root %s: %w", path, err)
		}
		roots = append(roots, certs...)
	}
	return roots, nil
}

func attestParsePEMCerts(b []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for rest := b; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New(`no PEM "CERTIFICATE" block`)
	}
	return certs, nil
}

// attestInput is where a document came from and how it was encoded.
type attestInput struct {
	File   string `json:"file,omitempty"`
	URL    string `json:"url,omitempty"`
	Format string `json:"format"` // "cose", "base64", "hex"
	Bytes  int    `json:"bytes"`  // of the decoded document
}

func (in *attestInput) read() ([]byte, error) {
	var r io.Reader
	name := in.File
	if in.File == "-" {
		r, name = attestStdin, "standard input"
	} else {
		f, err := os.Open(in.File)
		if err != nil {
			return nil, fmt.Errorf("attest: %w", err)
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, maxAttestInput+1))
	if err != nil {
		return nil, fmt.Errorf("attest: read %s: %w", name, err)
	}
	if len(b) > maxAttestInput {
		return nil, fmt.Errorf("attest: %s is larger than %d KiB: not an attestation document (at most %d KiB of COSE)", name, maxAttestInput>>10, attestation.MaxDocumentSize>>10)
	}
	doc, format, err := attestDecode(b)
	if err != nil {
		return nil, fmt.Errorf("attest: %s: %w", name, err)
	}
	in.Format, in.Bytes = format, len(doc)
	return doc, nil
}

// attestDecode detects the encoding of a document. Raw COSE_Sign1 starts
// with 0x84 (array of 4) or 0xd2 (tag 18), neither of them a text
// character, so text input is hex or base64. Hex is tried first: every hex
// string is also valid base64, but a document's base64 starts with "hE" or
// "0oR", never hex. Decoded text must again start like COSE_Sign1, which
// keeps arbitrary words (often valid base64) from being taken for a document.
func attestDecode(b []byte) ([]byte, string, error) {
	if len(b) == 0 {
		return nil, "", errors.New("empty input")
	}
	if attestLooksCOSE(b) {
		return b, "cose", nil
	}
	s := strings.Join(strings.Fields(string(b)), "")
	s = strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X")
	var decoded []byte
	format := ""
	if s != "" && len(s)%2 == 0 && strings.Trim(s, "0123456789abcdefABCDEF") == "" {
		decoded, _ = hex.DecodeString(s)
		format = "hex"
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if format != "" {
			break
		}
		if d, err := enc.DecodeString(s); err == nil && len(d) > 0 {
			decoded, format = d, "base64"
		}
	}
	switch {
	case format == "":
		return nil, "", fmt.Errorf("not a COSE_Sign1 document: raw bytes start with 0x84 or 0xd2 (got %#02x), and the input is neither hex nor base64", b[0])
	case !attestLooksCOSE(decoded):
		return nil, "", fmt.Errorf("%s input decodes to %d bytes starting with %#02x, not a COSE_Sign1 document (0x84 or 0xd2)", format, len(decoded), decoded[0])
	}
	return decoded, format, nil
}

func attestLooksCOSE(b []byte) bool { return len(b) > 0 && (b[0] == 0x84 || b[0] == 0xd2) }

// attestCheck verifies doc and reports the outcome (exit 0 or 1).
func attestCheck(doc []byte, opts attestation.VerifyOptions, in *attestInput, asJSON, timeGiven bool, stdout, stderr io.Writer) int {
	res, verr := attestation.VerifyDetailed(doc, opts)
	rep := attestReportFor(doc, opts, res, verr, in)
	if asJSON {
		attestPrintJSON(stdout, rep)
	} else if verr == nil {
		attestPrintText(stdout, rep)
	}
	if verr != nil {
		fmt.Fprintf(stderr, "sealsign: %v\n", verr)
		for _, h := range attestHints(verr, rep, opts, timeGiven) {
			fmt.Fprintf(stderr, "sealsign: hint: %s\n", h)
		}
		return 1
	}
	return 0
}

// attestFail reports an error that prevented verification (exit 1).
func attestFail(err error, asJSON bool, in *attestInput, stdout, stderr io.Writer) int {
	if asJSON {
		attestPrintJSON(stdout, &attestReport{Verdict: "invalid", Error: &attestErrorJSON{Message: "sealsign: " + err.Error()}, Input: in})
	}
	fmt.Fprintf(stderr, "sealsign: %v\n", err)
	return 1
}

// attestFinish reports a usage error (exit 2) or help (exit 0).
func attestFinish(verb string, err error, stdout, stderr io.Writer) int {
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, attestUsage)
		return 0
	}
	fmt.Fprintf(stderr, "sealsign: attest %s: %v\nRun \"sealsign attest -h\" for usage.\n", verb, err)
	return 2
}

// attestParseFlags parses flags before and after the positional arguments
// ("verify FILE --json" and "verify --json FILE").
func attestParseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(io.Discard)
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, attestUsageError{err.Error()}
		}
		args = fs.Args()
		if len(args) == 0 {
			return positional, nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}

type attestListFlag []string

func (l *attestListFlag) String() string     { return strings.Join(*l, ",") }
func (l *attestListFlag) Set(v string) error { *l = append(*l, v); return nil }

// attestHexFlag is a byte string given in hex; b stays nil unless the flag
// is given, and "" gives an empty, non-nil value (the field must be absent).
type attestHexFlag struct{ b []byte }

func (h *attestHexFlag) String() string { return hex.EncodeToString(h.b) }
func (h *attestHexFlag) Set(v string) error {
	b, err := hex.DecodeString(strings.TrimPrefix(v, "0x"))
	if err != nil {
		return errors.New("not hex")
	}
	if len(b) > attestation.MaxAuxSize {
		return fmt.Errorf("%d bytes, a document carries at most %d", len(b), attestation.MaxAuxSize)
	}
	h.b = b
	return nil
}

// attestPCRFlag collects --pcr N=HEX.
type attestPCRFlag map[uint][]byte

func (p attestPCRFlag) String() string { return fmt.Sprint(map[uint][]byte(p)) }
func (p attestPCRFlag) Set(v string) error {
	i, h, ok := strings.Cut(v, "=")
	if !ok {
		return errors.New("want N=HEX, e.g. 0=22f9e1c9…")
	}
	idx, err := strconv.ParseUint(i, 10, 8)
	if err != nil || idx >= attestation.MaxPCRs {
		return fmt.Errorf("PCR index %q is not 0..%d", i, attestation.MaxPCRs-1)
	}
	b, err := hex.DecodeString(strings.TrimPrefix(h, "0x"))
	if err != nil {
		return fmt.Errorf("pcr%d: value is not hex", idx)
	}
	if n := len(b); n != 32 && n != 48 && n != 64 {
		return fmt.Errorf("pcr%d: %d bytes, want 48 (SHA-384; 32 or 64 for other banks)", idx, n)
	}
	if _, dup := p[uint(idx)]; dup {
		return fmt.Errorf("pcr%d given twice", idx)
	}
	p[uint(idx)] = b
	return nil
}

// The JSON report. Field names follow the document's CBOR names.

type attestReport struct {
	Valid    bool                `json:"valid"`
	Verdict  string              `json:"verdict"` // "valid" or "invalid"
	Error    *attestErrorJSON    `json:"error,omitempty"`
	Input    *attestInput        `json:"input,omitempty"`
	Policy   *attestPolicyJSON   `json:"policy,omitempty"`
	Document *attestDocJSON      `json:"document"` // null when the bytes do not even decode
	Chain    []attestCertJSON    `json:"chain,omitempty"`
	Checks   []attestation.Check `json:"checks,omitempty"`
	Party    string              `json:"party,omitempty"` // fetch
}

type attestErrorJSON struct {
	Check   string `json:"check,omitempty"`
	Reason  string `json:"reason,omitempty"`
	Want    string `json:"want,omitempty"`
	Got     string `json:"got,omitempty"`
	Message string `json:"message"`
}

type attestPolicyJSON struct {
	Time            string           `json:"time"`
	MaxAge          string           `json:"max_age,omitempty"`
	Roots           []attestCertJSON `json:"roots"`
	PCRs            attestPCRsJSON   `json:"pcrs,omitempty"`
	AllowDebug      bool             `json:"allow_debug"`
	MatchInstanceID bool             `json:"match_instance_id"`
	Nonce           *string          `json:"nonce,omitempty"`
	UserData        *string          `json:"user_data,omitempty"`
	PublicKey       *string          `json:"public_key,omitempty"`
}

type attestDocJSON struct {
	// Authenticated is false when verification failed: the fields are
	// then only decoded, and nothing in them can be relied on.
	Authenticated bool             `json:"authenticated"`
	ModuleID      string           `json:"module_id"`
	Timestamp     string           `json:"timestamp"`
	TimestampMS   uint64           `json:"timestamp_ms"`
	Digest        string           `json:"digest"`
	Debug         bool             `json:"debug"`
	PCRs          attestPCRsJSON   `json:"pcrs"`
	PublicKey     *string          `json:"public_key"`
	UserData      *string          `json:"user_data"`
	Nonce         *string          `json:"nonce"`
	Certificate   attestCertJSON   `json:"certificate"`
	CABundle      []attestCertJSON `json:"cabundle"`
}

type attestCertJSON struct {
	Subject   string `json:"subject,omitempty"`
	Issuer    string `json:"issuer,omitempty"`
	NotBefore string `json:"not_before,omitempty"`
	NotAfter  string `json:"not_after,omitempty"`
	Key       string `json:"key,omitempty"`
	SHA256    string `json:"sha256"` // of the DER
	Note      string `json:"note,omitempty"`
	Error     string `json:"error,omitempty"` // the DER does not parse
}

// attestPCRsJSON prints PCRs as {"0": hex, "1": hex, …} in index order.
type attestPCRsJSON map[uint][]byte

func (p attestPCRsJSON) MarshalJSON() ([]byte, error) {
	idx := make([]uint, 0, len(p))
	for i := range p {
		idx = append(idx, i)
	}
	sort.Slice(idx, func(a, b int) bool { return idx[a] < idx[b] })
	var b bytes.Buffer
	b.WriteByte('{')
	for n, i := range idx {
		if n > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%q:%q", strconv.FormatUint(uint64(i), 10), hex.EncodeToString(p[i]))
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func attestHexOrNull(b []byte) *string {
	if b == nil {
		return nil
	}
	s := hex.EncodeToString(b)
	return &s
}

func attestCert(der []byte, note string) attestCertJSON {
	c, err := x509.ParseCertificate(der)
	if err != nil {
		j := attestCertJSON{Error: err.Error(), Note: note}
		if len(der) > 0 {
			j.SHA256 = attestSHA256(der)
		}
		return j
	}
	return attestCertOf(c, note)
}

func attestSHA256(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

func attestCertOf(c *x509.Certificate, note string) attestCertJSON {
	key := c.PublicKeyAlgorithm.String()
	if pub, ok := c.PublicKey.(*ecdsa.PublicKey); ok {
		key = "ECDSA " + pub.Curve.Params().Name
	}
	if attestation.IsAWSRoot(c) {
		if note == "" {
			note = "the pinned AWS Nitro root"
		} else {
			note += "; same bytes as the pinned AWS Nitro root"
		}
	}
	return attestCertJSON{
		Subject:   c.Subject.String(),
		Issuer:    c.Issuer.String(),
		NotBefore: c.NotBefore.UTC().Format(time.RFC3339),
		NotAfter:  c.NotAfter.UTC().Format(time.RFC3339),
		Key:       key,
		SHA256:    attestation.Fingerprint(c),
		Note:      note,
	}
}

func attestReportFor(doc []byte, opts attestation.VerifyOptions, res *attestation.Result, verr error, in *attestInput) *attestReport {
	rep := &attestReport{Valid: verr == nil, Verdict: "valid", Input: in, Checks: res.Checks}
	pol := &attestPolicyJSON{
		Time:            opts.Time.UTC().Format(time.RFC3339Nano),
		PCRs:            attestPCRsJSON(opts.PCRs),
		AllowDebug:      opts.AllowDebug,
		MatchInstanceID: opts.MatchInstanceID,
		Nonce:           attestHexOrNull(opts.Nonce),
		UserData:        attestHexOrNull(opts.UserData),
		PublicKey:       attestHexOrNull(opts.PublicKey),
	}
	if opts.MaxAge > 0 {
		pol.MaxAge = opts.MaxAge.String()
	}
	for _, r := range opts.Roots {
		pol.Roots = append(pol.Roots, attestCertOf(r, ""))
	}
	rep.Policy = pol
	d := res.Document
	if verr != nil {
		rep.Verdict = "invalid"
		rep.Error = &attestErrorJSON{Message: verr.Error()}
		var ce *attestation.CheckError
		if errors.As(verr, &ce) {
			rep.Error.Check, rep.Error.Reason, rep.Error.Want, rep.Error.Got = ce.Check, ce.Reason, ce.Want, ce.Got
		}
		d, _ = attestation.ParseUnverified(doc) // for display only
	}
	if d == nil {
		return rep
	}
	dj := &attestDocJSON{
		Authenticated: verr == nil,
		ModuleID:      d.ModuleID,
		Timestamp:     d.Time().Format(time.RFC3339Nano),
		TimestampMS:   d.Timestamp,
		Digest:        d.Digest,
		Debug:         d.Debug(),
		PCRs:          attestPCRsJSON(d.PCRs),
		PublicKey:     attestHexOrNull(d.PublicKey),
		UserData:      attestHexOrNull(d.UserData),
		Nonce:         attestHexOrNull(d.Nonce),
		Certificate:   attestCert(d.Certificate, "leaf"),
	}
	for i, der := range d.CABundle {
		note := "intermediate"
		if i == 0 {
			note = "ignored: the NSM's copy of the root"
		}
		dj.CABundle = append(dj.CABundle, attestCert(der, note))
	}
	rep.Document = dj
	for i, c := range res.Chain {
		note := "intermediate"
		switch i {
		case 0:
			note = "leaf"
		case len(res.Chain) - 1:
			note = "trusted root"
		}
		rep.Chain = append(rep.Chain, attestCertOf(c, note))
	}
	return rep
}

func attestPrintJSON(w io.Writer, rep any) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	_ = enc.Encode(rep)
}

func attestPrintText(w io.Writer, rep *attestReport) {
	d := rep.Document
	fmt.Fprintf(w, "valid: attestation document verified at %s\n", rep.Policy.Time)
	if rep.Party != "" {
		fmt.Fprintf(w, "  party        %s\n", rep.Party)
	}
	fmt.Fprintf(w, "  module_id    %s\n", d.ModuleID)
	fmt.Fprintf(w, "  timestamp    %s\n", d.Timestamp)
	fmt.Fprintf(w, "  digest       %s\n", d.Digest)
	if n := len(rep.Chain); n > 0 {
		root := rep.Chain[n-1]
		fmt.Fprintf(w, "  root         %s (sha256 %s)\n", root.Subject, root.SHA256)
	}
	pcrs := map[uint][]byte(d.PCRs)
	idx := make([]uint, 0, len(pcrs))
	for i := range pcrs {
		idx = append(idx, i)
	}
	sort.Slice(idx, func(a, b int) bool { return idx[a] < idx[b] })
	for _, i := range idx {
		fmt.Fprintf(w, "  %-12s %x\n", fmt.Sprintf("pcr%d", i), pcrs[i])
	}
	for _, f := range []struct {
		name string
		v    *string
	}{{"public_key", d.PublicKey}, {"user_data", d.UserData}, {"nonce", d.Nonce}} {
		switch {
		case f.v == nil:
			fmt.Fprintf(w, "  %-12s absent\n", f.name)
		case len(*f.v) > 128:
			fmt.Fprintf(w, "  %-12s %s…%s (%d bytes; --json prints it whole)\n", f.name, (*f.v)[:64], (*f.v)[len(*f.v)-8:], len(*f.v)/2)
		default:
			fmt.Fprintf(w, "  %-12s %s\n", f.name, *f.v)
		}
	}
	var checks []string
	for _, c := range rep.Checks {
		checks = append(checks, c.Name+" "+c.Status)
	}
	fmt.Fprintf(w, "checks: %s\n", strings.Join(checks, ", "))
}

// attestHints suggest the likely fix for common failures.
func attestHints(verr error, rep *attestReport, opts attestation.VerifyOptions, timeGiven bool) []string {
	var hints []string
	var ce *attestation.CheckError
	errors.As(verr, &ce)
	leafWindow := ""
	if rep.Document != nil && rep.Document.Certificate.NotBefore != "" {
		leafWindow = rep.Document.Certificate.NotBefore + " .. " + rep.Document.Certificate.NotAfter
	}
	switch {
	case errors.Is(verr, attestation.ErrExpired) && ce != nil && ce.Check == "chain":
		if timeGiven {
			hints = append(hints, fmt.Sprintf("the leaf certificate is valid %s; --at must lie inside that window", leafWindow))
		} else {
			hints = append(hints, fmt.Sprintf("leaf certificates live about 3 hours: verify an archived document with --at TIME inside its window (%s)", leafWindow))
		}
	case errors.Is(verr, attestation.ErrChain) && ce != nil && ce.Check == "chain":
		allAWS := true
		for _, r := range opts.Roots {
			allAWS = allAWS && attestation.IsAWSRoot(r)
		}
		if allAWS {
			claimed := ""
			if rep.Document != nil && len(rep.Document.CABundle) > 0 && rep.Document.CABundle[0].Subject != "" {
				claimed = fmt.Sprintf(" (its cabundle names root %s)", rep.Document.CABundle[0].Subject)
			}
			hints = append(hints, "the document does not chain to the AWS Nitro root"+claimed+"; a dev party's document verifies only with --root DEV_ROOT.pem")
		}
	case errors.Is(verr, attestation.ErrDebug):
		hints = append(hints, "the enclave runs in debug mode; --allow-debug accepts it, for development only")
	}
	return hints
}

// fetch

func attestFetch(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("attest fetch", flag.ContinueOnError)
	var common attestFlags
	common.register(fs, 5*time.Minute)
	url := fs.String("url", "", "the party's host API, e.g. http://127.0.0.1:7701")
	manifestPath := fs.String("manifest", "", "the cluster manifest (JSON)")
	partyID := fs.String("party", "", "the party expected at --url (default: the one it names)")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long")
	pos, err := attestParseFlags(fs, args)
	if err != nil {
		return attestFinish("fetch", err, stdout, stderr)
	}
	switch {
	case len(pos) != 0:
		return attestFinish("fetch", attestUsagef("fetch takes no arguments, got %q", pos), stdout, stderr)
	case *url == "":
		return attestFinish("fetch", attestUsagef("--url is required"), stdout, stderr)
	case *manifestPath == "":
		return attestFinish("fetch", attestUsagef("--manifest is required"), stdout, stderr)
	case common.maxAge <= 0:
		return attestFinish("fetch", attestUsagef("--max-age must be positive for a live check, got %v", common.maxAge), stdout, stderr)
	}
	in := &attestInput{URL: *url, Format: "cose"}
	fail := func(err error) int { return attestFail(err, common.asJSON, in, stdout, stderr) }

	mb, err := os.ReadFile(*manifestPath)
	if err != nil {
		return fail(fmt.Errorf("attest: manifest: %w", err))
	}
	m, err := api.ParseManifest(mb)
	if err != nil {
		return fail(err)
	}
	manifestHash, err := m.Hash()
	if err != nil {
		return fail(err)
	}
	nonce := make([]byte, 32)
	if _, err := io.ReadFull(rand.Reader, nonce); err != nil {
		return fail(fmt.Errorf("attest: nonce: %w", err))
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	resp, err := client.New(*url).Attestation(ctx, nonce)
	if err != nil {
		return fail(fmt.Errorf("attest: fetch from %s: %w", *url, err))
	}
	id := resp.PartyID
	if *partyID != "" && *partyID != id {
		return fail(fmt.Errorf("attest: %s answers as party %q, want %q", *url, id, *partyID))
	}
	mp, ok := m.Party(id)
	if !ok {
		return fail(fmt.Errorf("attest: party %q (answering at %s) is not in manifest %s (parties %v)", id, *url, *manifestPath, m.PartyIDs()))
	}
	if resp.Identity.PartyID != id {
		return fail(fmt.Errorf("attest: %s answers as party %q with the identity of party %q", *url, id, resp.Identity.PartyID))
	}
	identity, err := api.Marshal(resp.Identity)
	if err != nil {
		return fail(err)
	}
	in.Bytes = len(resp.Document)
	if mp.Kind == peer.KindTPM {
		in.Format = "tpm-evidence"
		return attestFetchTPM(m, id, resp.Document, peer.Expect{Nonce: nonce, UserData: manifestHash, PublicKey: identity}, common.asJSON, in, stdout, stderr)
	}

	opts := attestation.VerifyOptions{
		Time:       attestNow(),
		MaxAge:     common.maxAge,
		PCRs:       mp.PinnedPCRs(),
		AllowDebug: common.allowDebug,
		Nonce:      nonce,
		UserData:   manifestHash,
		PublicKey:  identity,
	}
	switch {
	case len(common.roots) > 0:
		opts.Roots, err = common.trustRoots()
	case mp.Kind == "nitro":
		opts.Roots = attestation.AWSRoots()
	default:
		// A dev party's anchor is the dev root the manifest names: the
		// same policy every enclave of the cluster applies to it.
		var pol peer.Policy
		pol, err = m.AttestationPolicy(id)
		opts.Roots = pol.DevRoots
		if err == nil && len(opts.Roots) == 0 {
			err = fmt.Errorf("attest: party %q is of kind %q but manifest %s lists no dev_roots; pass --root", id, mp.Kind, *manifestPath)
		}
	}
	if err != nil {
		return fail(err)
	}
	res, verr := attestation.VerifyDetailed(resp.Document, opts)
	rep := attestReportFor(resp.Document, opts, res, verr, in)
	rep.Party = id
	if common.asJSON {
		attestPrintJSON(stdout, rep)
	} else if verr == nil {
		attestPrintText(stdout, rep)
	}
	if verr != nil {
		fmt.Fprintf(stderr, "sealsign: party %q at %s: %v\n", id, *url, verr)
		for _, h := range attestHints(verr, rep, opts, false) {
			fmt.Fprintf(stderr, "sealsign: hint: %s\n", h)
		}
		return 1
	}
	return 0
}
