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
	// Roots are the trust anchors; required. The document's chain must end
	// in one of them. cabundle[0] (the root copy the NSM sends) is never
	// trusted. Production parties pass the AWS Nitro root; a dev party's root
	// is accepted only when passed here explicitly.
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
		return bad("no trust roots: pass the AWS Nitro root, or for a dev party the dev root, in Roots")
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
	var d *Document
	var err error
	func() {
		defer recoverAsError(&d, &err)
		d, err = verify(doc, &opts)
	}()
	return d, err
}

func verify(doc []byte, opts *VerifyOptions) (*Document, error) {
	if err := opts.check(); err != nil {
		return nil, err
	}
	msg, err := decodeSign1(doc)
	if err != nil {
		return nil, err
	}
	d, err := decodePayload(msg.payload)
	if err != nil {
		return nil, err
	}
	leaf, err := checkCertificates(d, opts)
	if err != nil {
		return nil, err
	}
	if !msg.verifySignature(leaf.PublicKey.(*ecdsa.PublicKey)) {
		return nil, &CheckError{Check: "signature", Reason: "invalid",
			Want: "ES384 signature by leaf " + leaf.Subject.String(), Got: "signature does not verify (document altered or not signed by this leaf)",
			Kind: ErrSignature}
	}
	if err := checkPolicy(d, opts); err != nil {
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

// checkCertificates verifies the leaf and its chain and returns the leaf.
func checkCertificates(d *Document, opts *VerifyOptions) (*x509.Certificate, error) {
	leaf, err := x509.ParseCertificate(d.Certificate)
	if err != nil {
		return nil, malformed("certificate", "unparsable", "X.509 DER", "", err)
	}
	if err := checkP384("leaf", leaf); err != nil {
		return nil, err
	}
	if leaf.BasicConstraintsValid && leaf.IsCA {
		return nil, &CheckError{Check: "leaf", Reason: "is a CA", Want: "end-entity certificate", Got: "CA certificate " + leaf.Subject.String(), Kind: ErrChain}
	}
	if leaf.KeyUsage != 0 && leaf.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		return nil, &CheckError{Check: "leaf", Reason: "key usage", Want: "digitalSignature", Got: fmt.Sprintf("key usage %v", leaf.KeyUsage), Kind: ErrChain}
	}
	// cabundle[0] is the NSM's copy of the root: ignored, the anchor comes
	// only from opts.Roots, pinned out of band (tkhq/qos#772 review: "never
	// trust cabundle[0]").
	inter := x509.NewCertPool()
	for i, der := range d.CABundle[1:] {
		name := fmt.Sprintf("cabundle[%d]", i+1)
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, malformed(name, "unparsable", "X.509 DER", "", err)
		}
		if err := checkP384(name, c); err != nil {
			return nil, err
		}
		inter.AddCert(c)
	}
	roots := x509.NewCertPool()
	for _, r := range opts.Roots {
		roots.AddCert(r)
	}
	_, err = leaf.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		CurrentTime:   opts.Time,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		ce := &CheckError{Check: "chain", Reason: "untrusted", Kind: ErrChain, Err: err,
			Want: fmt.Sprintf("chain to %s at %s", rootNames(opts.Roots), opts.Time.UTC().Format(time.RFC3339)),
			Got:  "leaf " + leaf.Subject.String()}
		var inv x509.CertificateInvalidError
		if errors.As(err, &inv) {
			ce.Reason = "invalid"
			if inv.Reason == x509.Expired {
				ce.Reason = "expired"
				ce.also = ErrExpired
			}
		}
		return nil, ce
	}
	// The leaf must have been valid when it signed: a document dated
	// outside its leaf's lifetime was not produced by a genuine NSM.
	if t := d.Time(); t.Before(leaf.NotBefore) || t.After(leaf.NotAfter) {
		return nil, &CheckError{Check: "timestamp", Reason: "outside leaf validity",
			Want: leaf.NotBefore.UTC().Format(time.RFC3339) + " .. " + leaf.NotAfter.UTC().Format(time.RFC3339),
			Got:  t.Format(time.RFC3339Nano), Kind: ErrChain}
	}
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
func checkPolicy(d *Document, opts *VerifyOptions) error {
	if opts.MaxAge > 0 {
		t := d.Time()
		oldest := opts.Time.Add(-opts.MaxAge)
		if t.Before(oldest) {
			return &CheckError{Check: "age", Reason: "too old", Want: "timestamp at or after " + oldest.UTC().Format(time.RFC3339),
				Got: t.Format(time.RFC3339Nano), Kind: ErrExpired}
		}
		if latest := opts.Time.Add(maxFutureSkew); t.After(latest) {
			return &CheckError{Check: "age", Reason: "in the future", Want: "timestamp at or before " + latest.UTC().Format(time.RFC3339),
				Got: t.Format(time.RFC3339Nano), Kind: ErrExpired}
		}
	}
	if !opts.AllowDebug {
		pcr0, ok := d.PCRs[0]
		if !ok {
			return &CheckError{Check: "pcr0", Reason: "missing", Want: "a production measurement", Got: "absent", Kind: ErrMeasurement}
		}
		if allZero(pcr0) {
			return &CheckError{Check: "pcr0", Reason: "all zero (debug enclave: its memory is readable by the parent instance)",
				Want: "non-zero pcr0 of a production enclave (AllowDebug is off)", Got: hex.EncodeToString(pcr0), Kind: ErrDebug}
		}
	}
	for _, i := range sortedIndices(opts.PCRs) {
		want := opts.PCRs[i]
		got, ok := d.PCRs[i]
		name := fmt.Sprintf("pcr%d", i)
		if !ok {
			return &CheckError{Check: name, Reason: "missing", Want: hex.EncodeToString(want), Got: "absent", Kind: ErrMeasurement}
		}
		if !bytes.Equal(want, got) {
			return &CheckError{Check: name, Reason: "mismatch", Want: hex.EncodeToString(want), Got: hex.EncodeToString(got), Kind: ErrMeasurement}
		}
	}
	if opts.MatchInstanceID {
		id, ok := InstanceID(d.ModuleID)
		if !ok {
			return &CheckError{Check: "module_id", Reason: "not an EC2 enclave id", Want: "i-<instance>-enc<enclave>", Got: d.ModuleID, Kind: ErrMeasurement}
		}
		want := InstancePCR(id)
		got, ok := d.PCRs[4]
		switch {
		case !ok:
			return &CheckError{Check: "pcr4", Reason: "missing", Want: hex.EncodeToString(want), Got: "absent", Kind: ErrMeasurement}
		case !bytes.Equal(want, got):
			return &CheckError{Check: "pcr4", Reason: "does not match instance " + id, Want: hex.EncodeToString(want), Got: hex.EncodeToString(got), Kind: ErrMeasurement}
		}
	}
	for _, f := range []struct {
		name      string
		want, got []byte
	}{{"nonce", opts.Nonce, d.Nonce}, {"user_data", opts.UserData, d.UserData}, {"public_key", opts.PublicKey, d.PublicKey}} {
		if f.want != nil && !bytes.Equal(f.want, f.got) {
			return &CheckError{Check: f.name, Reason: "mismatch", Want: hexOrAbsent(f.want), Got: hexOrAbsent(f.got), Kind: ErrBinding}
		}
	}
	return nil
}
