package attestation

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// maxFutureSkew is how far a document's timestamp may lie after the
// verification time when MaxAge is set: clocks of the verifier and the
// Nitro hypervisor differ a little.
const maxFutureSkew = 2 * time.Minute

// VerifyOptions is the trust anchor and the measurement policy a document
// must satisfy. The zero value is unusable on purpose: the caller names the
// roots and the time.
type VerifyOptions struct {
	// Roots are the trust anchors; required, so no caller trusts an anchor
	// it did not name. The document's chain must end in one of them.
	// cabundle[0] (the root copy the NSM sends) is never trusted.
	// Production verification passes AWSRoots(), the AWS Nitro root pinned
	// by AWSRootSHA256. A dev NSM's root (package devnsm) is accepted only
	// where a caller passes it here explicitly, never in place of AWS's.
	Roots []*x509.Certificate

	// Time is the verification time; required. Live checks pass time.Now()
	// (and a MaxAge); archived documents pass a time inside their
	// certificate window, e.g. the document's own timestamp.
	Time time.Time

	// MaxAge, when positive, rejects documents whose timestamp is older than
	// Time-MaxAge or later than Time plus a two-minute clock skew. Zero skips
	// the age check (the ~3 h leaf certificate still bounds the window).
	MaxAge time.Duration

	// PCRs are required measurements by index (0..31), each 32, 48 or 64
	// bytes. Every PCR named here must be present in the document with
	// exactly this value. Empty means the document is only authenticated,
	// not matched against any measurement.
	PCRs map[uint][]byte

	// MatchInstanceID requires PCR4 to be the measurement of the EC2
	// instance id that module_id starts with. Only for AWS documents.
	MatchInstanceID bool

	// AllowDebug accepts documents from enclaves in debug mode (PCR0 all
	// zero), whose memory the parent instance can read. It exists for
	// development against real Nitro hardware; never set it in production.
	AllowDebug bool

	// Nonce, UserData and PublicKey, when non-nil, must equal the document's
	// fields byte for byte (an absent field equals only an empty value).
	Nonce     []byte
	UserData  []byte
	PublicKey []byte
}

func (o *VerifyOptions) check() error {
	bad := func(reason string) error {
		return &CheckError{Check: "options", Reason: reason, Kind: ErrOptions}
	}
	if len(o.Roots) == 0 {
		return bad("no trust roots: pass attestation.AWSRoots() for AWS Nitro documents, or a dev party's root explicitly, in Roots")
	}
	for i, r := range o.Roots {
		if r == nil {
			return bad(fmt.Sprintf("Roots[%d] is nil", i))
		}
	}
	if o.Time.IsZero() {
		return bad("verification time is zero: pass time.Now() for a live check or a time inside an archived document's window")
	}
	if o.MaxAge < 0 {
		return bad(fmt.Sprintf("MaxAge %v is negative", o.MaxAge))
	}
	for _, i := range sortedIndices(o.PCRs) {
		if i >= MaxPCRs {
			return bad(fmt.Sprintf("PCR index %d out of range 0..%d", i, MaxPCRs-1))
		}
		if !validPCRLen(len(o.PCRs[i])) {
			return bad(fmt.Sprintf("expected pcr%d has %d bytes, want 32, 48 or 64", i, len(o.PCRs[i])))
		}
	}
	for _, f := range []struct {
		name string
		b    []byte
	}{{"Nonce", o.Nonce}, {"UserData", o.UserData}, {"PublicKey", o.PublicKey}} {
		if len(f.b) > MaxAuxSize {
			return bad(fmt.Sprintf("expected %s has %d bytes, more than a document can carry (%d)", f.name, len(f.b), MaxAuxSize))
		}
	}
	return nil
}

// Verify decodes a Nitro attestation document (COSE_Sign1, tagged or not)
// and returns it only if every check passes:
//
//   - structure: strict CBOR, ES384 protected header, 96-byte signature,
//     mandatory fields present, every field within the CDDL size limits;
//   - chain: the leaf (ECDSA P-384, not a CA) chains through cabundle[1:]
//     to one of opts.Roots at opts.Time, and the document's timestamp lies
//     within the leaf's validity;
//   - signature: the COSE signature verifies under the leaf key;
//   - policy: age (MaxAge), debug mode, PCRs, instance id, nonce,
//     user_data and public_key as opts require.
//
// On failure it returns a nil Document and a *CheckError naming the first
// failed check; errors.Is with the Err… sentinels classifies it. Verify
// never panics, whatever the input.
func Verify(doc []byte, opts VerifyOptions) (*Document, error) {
	res, err := VerifyDetailed(doc, opts)
	if err != nil {
		return nil, err
	}
	return res.Document, nil
}

// Result is what VerifyDetailed checked and found.
type Result struct {
	// Document is the verified document: nil unless every check passed.
	Document *Document
	// Chain is the verified certificate chain, leaf first, ending in the
	// element of VerifyOptions.Roots it leads to: nil unless every check
	// passed.
	Chain []*x509.Certificate
	// Checks are the checks performed, in order. When verification failed,
	// the last one is the failure and holds its error text.
	Checks []Check
}

// Check is one check VerifyDetailed performed.
type Check struct {
	// Name is the stage: "options", "cose", "payload", "leaf", "cabundle",
	// "chain", "timestamp", "signature", "age", "debug", "pcrN",
	// "instance_id", "nonce", "user_data" or "public_key".
	Name string `json:"name"`
	// Status is CheckPassed, CheckFailed or CheckSkipped.
	Status string `json:"status"`
	// Detail says what was compared with what (or, for a failure, the
	// error).
	Detail string `json:"detail"`
}

// Check statuses. A skipped check is one the options turned off (MaxAge
// zero, AllowDebug); it is listed so a report shows the policy was weaker.
const (
	CheckPassed  = "pass"
	CheckFailed  = "fail"
	CheckSkipped = "skip"
)

func (r *Result) pass(name, format string, a ...any) {
	r.Checks = append(r.Checks, Check{Name: name, Status: CheckPassed, Detail: fmt.Sprintf(format, a...)})
}

func (r *Result) skip(name, format string, a ...any) {
	r.Checks = append(r.Checks, Check{Name: name, Status: CheckSkipped, Detail: fmt.Sprintf(format, a...)})
}

func (r *Result) fail(name string, err error) error {
	r.Checks = append(r.Checks, Check{Name: name, Status: CheckFailed, Detail: err.Error()})
	return err
}

// VerifyDetailed is Verify that also reports every check it performed, for
// audit output (sealsign attest verify --json). It always returns a non-nil
// Result; its Document and Chain are set only when err is nil, so a failed
// document can never be mistaken for a verified one. It never panics.
func VerifyDetailed(doc []byte, opts VerifyOptions) (*Result, error) {
	res := new(Result)
	var d *Document
	var err error
	func() {
		defer recoverAsError(&d, &err)
		d, err = verify(doc, &opts, res)
	}()
	if err != nil {
		if n := len(res.Checks); n == 0 || res.Checks[n-1].Status != CheckFailed {
			res.fail("decoder", err) // a panic turned into an error
		}
		res.Document, res.Chain = nil, nil
		return res, err
	}
	res.Document = d
	return res, nil
}

func verify(doc []byte, opts *VerifyOptions, r *Result) (*Document, error) {
	if err := opts.check(); err != nil {
		return nil, r.fail("options", err)
	}
	msg, err := decodeSign1(doc)
	if err != nil {
		return nil, r.fail("cose", err)
	}
	r.pass("cose", "COSE_Sign1 with protected header {1: -35} (ES384) and a %d-byte r‖s signature", es384SigSize)
	d, err := decodePayload(msg.payload)
	if err != nil {
		return nil, r.fail("payload", err)
	}
	r.pass("payload", "module_id, digest %s, timestamp, %d pcrs, certificate and %d cabundle entries present; every field within the size limits",
		d.Digest, len(d.PCRs), len(d.CABundle))
	leaf, err := checkCertificates(d, opts, r)
	if err != nil {
		return nil, err
	}
	if !msg.verifySignature(leaf.PublicKey.(*ecdsa.PublicKey)) {
		return nil, r.fail("signature", &CheckError{Check: "signature", Reason: "invalid",
			Want: "ES384 signature by leaf " + leaf.Subject.String(), Got: "signature does not verify (document altered or not signed by this leaf)",
			Kind: ErrSignature})
	}
	r.pass("signature", "ES384 signature over the COSE Sig_structure verifies under the leaf's P-384 key")
	if err := checkPolicy(d, opts, r); err != nil {
		return nil, err
	}
	return d, nil
}

// recoverAsError is the panic boundary around code that parses hostile
// input (fxamacker/cbor, crypto/x509). Neither is known to panic, and the
// fuzz target would report it if one did; the boundary keeps a future
// library bug from crashing an enclave that verifies a peer's document.
func recoverAsError(d **Document, err *error) {
	if r := recover(); r != nil {
		*d = nil
		*err = &CheckError{Check: "decoder", Reason: "panicked (a verifier bug: please report it with the document)",
			Kind: ErrMalformed, Err: fmt.Errorf("%v", r)}
	}
}

// checkCertificates verifies the leaf and its chain, records the verified
// chain in r and returns the leaf.
func checkCertificates(d *Document, opts *VerifyOptions, r *Result) (*x509.Certificate, error) {
	leaf, err := x509.ParseCertificate(d.Certificate)
	if err != nil {
		return nil, r.fail("leaf", malformed("certificate", "unparsable", "X.509 DER", "", err))
	}
	if err := checkP384("leaf", leaf); err != nil {
		return nil, r.fail("leaf", err)
	}
	if leaf.BasicConstraintsValid && leaf.IsCA {
		return nil, r.fail("leaf", &CheckError{Check: "leaf", Reason: "is a CA", Want: "end-entity certificate", Got: "CA certificate " + leaf.Subject.String(), Kind: ErrChain})
	}
	if leaf.KeyUsage != 0 && leaf.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		return nil, r.fail("leaf", &CheckError{Check: "leaf", Reason: "key usage", Want: "digitalSignature", Got: fmt.Sprintf("key usage %v", leaf.KeyUsage), Kind: ErrChain})
	}
	r.pass("leaf", "%s: ECDSA P-384 end-entity certificate signed with ecdsa-with-SHA384", leaf.Subject)
	// cabundle[0] is the NSM's copy of the root: ignored, the anchor comes
	// only from opts.Roots, pinned out of band (tkhq/qos#772 review: "never
	// trust cabundle[0]").
	inter := x509.NewCertPool()
	for i, der := range d.CABundle[1:] {
		name := fmt.Sprintf("cabundle[%d]", i+1)
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, r.fail("cabundle", malformed(name, "unparsable", "X.509 DER", "", err))
		}
		if err := checkP384(name, c); err != nil {
			return nil, r.fail("cabundle", err)
		}
		inter.AddCert(c)
	}
	r.pass("cabundle", "%d intermediate certificates, all ECDSA P-384 with ecdsa-with-SHA384; cabundle[0] (the NSM's copy of the root) ignored",
		len(d.CABundle)-1)
	roots := x509.NewCertPool()
	for _, c := range opts.Roots {
		roots.AddCert(c)
	}
	at := opts.Time.UTC().Format(time.RFC3339)
	chains, err := leaf.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		CurrentTime:   opts.Time,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		ce := &CheckError{Check: "chain", Reason: "untrusted", Kind: ErrChain, Err: err,
			Want: fmt.Sprintf("chain to %s at %s", rootNames(opts.Roots), at),
			Got:  "leaf " + leaf.Subject.String()}
		var inv x509.CertificateInvalidError
		if errors.As(err, &inv) {
			ce.Reason = "invalid"
			if inv.Reason == x509.Expired {
				ce.Reason = "expired"
				ce.also = ErrExpired
			}
		}
		return nil, r.fail("chain", ce)
	}
	chain := chains[0]
	root := chain[len(chain)-1]
	r.pass("chain", "%d certificates valid at %s, ending in trusted root %s (DER sha256 %s)", len(chain), at, root.Subject, Fingerprint(root))
	// The leaf must have been valid when it signed: a document dated
	// outside its leaf's lifetime was not produced by a genuine NSM.
	if t := d.Time(); t.Before(leaf.NotBefore) || t.After(leaf.NotAfter) {
		return nil, r.fail("timestamp", &CheckError{Check: "timestamp", Reason: "outside leaf validity",
			Want: leaf.NotBefore.UTC().Format(time.RFC3339) + " .. " + leaf.NotAfter.UTC().Format(time.RFC3339),
			Got:  d.Time().Format(time.RFC3339Nano), Kind: ErrChain})
	}
	r.pass("timestamp", "document time %s within the leaf's validity %s .. %s", d.Time().Format(time.RFC3339Nano),
		leaf.NotBefore.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339))
	r.Chain = chain
	return leaf, nil
}

// checkP384 enforces ES384 throughout: an ECDSA P-384 key, signed with
// ECDSA-SHA384 (every certificate AWS issues for Nitro is).
func checkP384(name string, c *x509.Certificate) error {
	pub, ok := c.PublicKey.(*ecdsa.PublicKey)
	if !ok {
		return &CheckError{Check: name, Reason: "key algorithm", Want: "ECDSA P-384", Got: c.PublicKeyAlgorithm.String(), Kind: ErrAlgorithm}
	}
	if pub.Curve != elliptic.P384() {
		return &CheckError{Check: name, Reason: "key curve", Want: "ECDSA P-384", Got: "ECDSA " + pub.Curve.Params().Name, Kind: ErrAlgorithm}
	}
	if c.SignatureAlgorithm != x509.ECDSAWithSHA384 {
		return &CheckError{Check: name, Reason: "signature algorithm", Want: x509.ECDSAWithSHA384.String(), Got: c.SignatureAlgorithm.String(), Kind: ErrAlgorithm}
	}
	return nil
}

func rootNames(roots []*x509.Certificate) string {
	names := make([]string, 0, len(roots))
	for i, r := range roots {
		if i == 3 {
			names = append(names, fmt.Sprintf("%d more", len(roots)-3))
			break
		}
		n := r.Subject.CommonName
		if n == "" {
			n = r.Subject.String()
		}
		names = append(names, "CN="+n)
	}
	return "root " + strings.Join(names, " | ")
}

// checkPolicy applies the caller's measurement and binding policy to an
// authenticated document.
func checkPolicy(d *Document, opts *VerifyOptions, r *Result) error {
	t := d.Time()
	if opts.MaxAge > 0 {
		oldest := opts.Time.Add(-opts.MaxAge)
		if t.Before(oldest) {
			return r.fail("age", &CheckError{Check: "age", Reason: "too old", Want: "timestamp at or after " + oldest.UTC().Format(time.RFC3339),
				Got: t.Format(time.RFC3339Nano), Kind: ErrExpired})
		}
		latest := opts.Time.Add(maxFutureSkew)
		if t.After(latest) {
			return r.fail("age", &CheckError{Check: "age", Reason: "in the future", Want: "timestamp at or before " + latest.UTC().Format(time.RFC3339),
				Got: t.Format(time.RFC3339Nano), Kind: ErrExpired})
		}
		r.pass("age", "timestamp %s within %s .. %s (MaxAge %v, clock skew %v)", t.Format(time.RFC3339Nano),
			oldest.UTC().Format(time.RFC3339), latest.UTC().Format(time.RFC3339), opts.MaxAge, maxFutureSkew)
	} else {
		r.skip("age", "no MaxAge: only the leaf certificate's validity bounds the document's age")
	}
	if !opts.AllowDebug {
		pcr0, ok := d.PCRs[0]
		if !ok {
			return r.fail("debug", &CheckError{Check: "pcr0", Reason: "missing", Want: "a production measurement", Got: "absent", Kind: ErrMeasurement})
		}
		if allZero(pcr0) {
			return r.fail("debug", &CheckError{Check: "pcr0", Reason: "all zero (debug enclave: its memory is readable by the parent instance)",
				Want: "non-zero pcr0 of a production enclave (AllowDebug is off)", Got: hex.EncodeToString(pcr0), Kind: ErrDebug})
		}
		r.pass("debug", "pcr0 is not all zero: not a debug-mode enclave")
	} else {
		r.skip("debug", "AllowDebug: debug-mode enclaves (pcr0 all zero) accepted; this document is debug=%v", d.Debug())
	}
	for _, i := range sortedIndices(opts.PCRs) {
		want := opts.PCRs[i]
		got, ok := d.PCRs[i]
		name := fmt.Sprintf("pcr%d", i)
		if !ok {
			return r.fail(name, &CheckError{Check: name, Reason: "missing", Want: hex.EncodeToString(want), Got: "absent", Kind: ErrMeasurement})
		}
		if !bytes.Equal(want, got) {
			return r.fail(name, &CheckError{Check: name, Reason: "mismatch", Want: hex.EncodeToString(want), Got: hex.EncodeToString(got), Kind: ErrMeasurement})
		}
		r.pass(name, "equals the expected %s", hex.EncodeToString(want))
	}
	if opts.MatchInstanceID {
		id, ok := InstanceID(d.ModuleID)
		if !ok {
			return r.fail("instance_id", &CheckError{Check: "module_id", Reason: "not an EC2 enclave id", Want: "i-<instance>-enc<enclave>", Got: d.ModuleID, Kind: ErrMeasurement})
		}
		want := InstancePCR(id)
		got, ok := d.PCRs[4]
		switch {
		case !ok:
			return r.fail("instance_id", &CheckError{Check: "pcr4", Reason: "missing", Want: hex.EncodeToString(want), Got: "absent", Kind: ErrMeasurement})
		case !bytes.Equal(want, got):
			return r.fail("instance_id", &CheckError{Check: "pcr4", Reason: "does not match instance " + id, Want: hex.EncodeToString(want), Got: hex.EncodeToString(got), Kind: ErrMeasurement})
		}
		r.pass("instance_id", "pcr4 is the measurement of instance %s from module_id", id)
	}
	for _, f := range []struct {
		name      string
		want, got []byte
	}{{"nonce", opts.Nonce, d.Nonce}, {"user_data", opts.UserData, d.UserData}, {"public_key", opts.PublicKey, d.PublicKey}} {
		if f.want == nil {
			continue
		}
		if !bytes.Equal(f.want, f.got) {
			return r.fail(f.name, &CheckError{Check: f.name, Reason: "mismatch", Want: hexOrAbsent(f.want), Got: hexOrAbsent(f.got), Kind: ErrBinding})
		}
		if len(f.want) == 0 {
			r.pass(f.name, "absent, as expected")
		} else {
			r.pass(f.name, "equals the expected %s", abbreviate(hex.EncodeToString(f.want)))
		}
	}
	return nil
}
