package devnsm_test

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sealsign/sealsign/attestation"
	"github.com/sealsign/sealsign/attestation/devnsm"
)

var t0 = time.Date(2026, 3, 1, 9, 30, 15, 123e6, time.UTC)

// clock is an injectable clock tests move by hand.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time                         { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Set(t time.Time)                        { c.mu.Lock(); c.now = t; c.mu.Unlock() }
func (c *clock) Add(d time.Duration)                    { c.Set(c.Now().Add(d)) }
func newClock(t time.Time) *clock                       { return &clock{now: t} }
func roots(cs ...*x509.Certificate) []*x509.Certificate { return cs }

type party struct {
	ca    *devnsm.CA
	nsm   *devnsm.NSM
	clock *clock
	pcr0  []byte
}

func newParty(t *testing.T) *party {
	t.Helper()
	ca, err := devnsm.NewCA(rand.Reader, t0)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "sealsign-enclave")
	if err := os.WriteFile(bin, []byte("pretend enclave binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	pcr0, err := devnsm.MeasureFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	c := newClock(t0)
	n, err := devnsm.New(ca, "party-a", map[uint][]byte{0: pcr0}, rand.Reader, c.Now)
	if err != nil {
		t.Fatal(err)
	}
	return &party{ca: ca, nsm: n, clock: c, pcr0: pcr0}
}

func (p *party) opts(at time.Time) attestation.VerifyOptions {
	return attestation.VerifyOptions{Roots: roots(p.ca.Cert()), Time: at, PCRs: map[uint][]byte{0: p.pcr0}}
}

func awsRoot(t *testing.T) *x509.Certificate {
	b, err := os.ReadFile("../testdata/root.pem")
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func wantCheck(t *testing.T, err error, kind error, check string) {
	t.Helper()
	var ce *attestation.CheckError
	if !errors.Is(err, kind) || !errors.As(err, &ce) || ce.Check != check {
		t.Fatalf("error = %v, want %v on check %q", err, kind, check)
	}
}

func TestAttestVerifies(t *testing.T) {
	p := newParty(t)
	pub := []byte("identity keys of party-a")
	ud := bytes.Repeat([]byte{0xab}, 32)
	nonce := []byte("caller nonce")
	raw, err := p.nsm.Attest(pub, ud, nonce)
	if err != nil {
		t.Fatal(err)
	}
	opts := p.opts(t0)
	opts.PublicKey, opts.UserData, opts.Nonce = pub, ud, nonce
	opts.MaxAge = time.Minute
	d, err := attestation.Verify(raw, opts)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if d.ModuleID != "party-a" || d.Digest != "SHA384" || d.Timestamp != uint64(t0.UnixMilli()) {
		t.Errorf("module_id %q digest %q timestamp %d", d.ModuleID, d.Digest, d.Timestamp)
	}
	if len(d.PCRs) != 16 {
		t.Errorf("%d PCRs, want 16", len(d.PCRs))
	}
	for i := uint(0); i < 16; i++ {
		if len(d.PCRs[i]) != 48 {
			t.Errorf("pcr%d has %d bytes", i, len(d.PCRs[i]))
		}
		if i > 0 && !bytes.Equal(d.PCRs[i], make([]byte, 48)) {
			t.Errorf("pcr%d not zero", i)
		}
	}
	if len(d.CABundle) != 2 || !bytes.Equal(d.CABundle[0], p.ca.Cert().Raw) {
		t.Errorf("cabundle: %d entries, want [root, intermediate]", len(d.CABundle))
	}
	leaf, err := x509.ParseCertificate(d.Certificate)
	if err != nil {
		t.Fatal(err)
	}
	if leaf.Subject.CommonName != "party-a.dev.sealsign" || leaf.IsCA || leaf.NotAfter.Sub(leaf.NotBefore) != devnsm.LeafLifetime+time.Minute {
		t.Errorf("leaf CN %q CA %v validity %v .. %v", leaf.Subject.CommonName, leaf.IsCA, leaf.NotBefore, leaf.NotAfter)
	}
	inter, err := x509.ParseCertificate(d.CABundle[1])
	if err != nil {
		t.Fatal(err)
	}
	if !inter.IsCA || !inter.MaxPathLenZero || inter.CheckSignatureFrom(p.ca.Cert()) != nil {
		t.Errorf("intermediate: CA %v pathLen0 %v", inter.IsCA, inter.MaxPathLenZero)
	}
	if p.ca.Cert().Subject.CommonName != "sealsign-dev.nitro-enclaves" {
		t.Errorf("root CN %q", p.ca.Cert().Subject.CommonName)
	}
}

// TestShapeLikeAWS compares the dev document's bytes with a real AWS one:
// untagged COSE_Sign1, protected {1: -35}, the same nine payload keys in
// the same order, null for absent fields.
func TestShapeLikeAWS(t *testing.T) {
	p := newParty(t)
	dev, err := p.nsm.Attest(nil, []byte("ud"), nil)
	if err != nil {
		t.Fatal(err)
	}
	aws, err := os.ReadFile("../testdata/eu-west-1-2022-11-09.cose") // public_key null
	if err != nil {
		t.Fatal(err)
	}
	prefix := []byte{0x84, 0x44, 0xa1, 0x01, 0x38, 0x22, 0xa0, 0x59} // array(4), bstr(4){1:-35}, {}, bstr(2-byte length)
	for name, b := range map[string][]byte{"dev": dev, "aws": aws} {
		if !bytes.HasPrefix(b, prefix) {
			t.Errorf("%s document starts % x, want % x", name, b[:8], prefix)
		}
		last := -1
		for _, k := range []string{"module_id", "digest", "timestamp", "pcrs", "certificate", "cabundle", "public_key", "user_data", "nonce"} {
			i := bytes.Index(b, append([]byte{0x60 | byte(len(k))}, k...))
			if i <= last {
				t.Errorf("%s: key %q at %d, after previous key at %d", name, k, i, last)
			}
			last = i
		}
		if !bytes.Contains(b, []byte("\x6apublic_key\xf6")) {
			t.Errorf("%s: absent public_key is not null", name)
		}
	}
	if !bytes.Contains(dev, []byte("\x65nonce\xf6")) {
		t.Error("dev: absent nonce is not null")
	}
}

func TestRejections(t *testing.T) {
	p := newParty(t)
	raw, err := p.nsm.Attest([]byte("pk"), []byte("ud"), nil)
	if err != nil {
		t.Fatal(err)
	}
	otherCA, err := devnsm.NewCA(rand.Reader, t0)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("AWS root only", func(t *testing.T) {
		o := p.opts(t0)
		o.Roots = roots(awsRoot(t))
		_, err := attestation.Verify(raw, o)
		wantCheck(t, err, attestation.ErrChain, "chain")
	})
	t.Run("another dev CA", func(t *testing.T) {
		o := p.opts(t0)
		o.Roots = roots(otherCA.Cert())
		_, err := attestation.Verify(raw, o)
		wantCheck(t, err, attestation.ErrChain, "chain")
	})
	t.Run("no roots", func(t *testing.T) {
		o := p.opts(t0)
		o.Roots = nil
		_, err := attestation.Verify(raw, o)
		wantCheck(t, err, attestation.ErrOptions, "options")
	})
	t.Run("wrong PCR0", func(t *testing.T) {
		o := p.opts(t0)
		other := append([]byte(nil), p.pcr0...)
		other[0] ^= 1
		o.PCRs = map[uint][]byte{0: other}
		_, err := attestation.Verify(raw, o)
		wantCheck(t, err, attestation.ErrMeasurement, "pcr0")
		if want := "attestation: pcr0 mismatch: want " + hex.EncodeToString(other)[:8]; !strings.HasPrefix(err.Error(), want) {
			t.Errorf("error %q, want prefix %q", err, want)
		}
	})
	t.Run("wrong user_data", func(t *testing.T) {
		o := p.opts(t0)
		o.UserData = []byte("other manifest")
		_, err := attestation.Verify(raw, o)
		wantCheck(t, err, attestation.ErrBinding, "user_data")
	})
	t.Run("wrong public_key", func(t *testing.T) {
		o := p.opts(t0)
		o.PublicKey = []byte("other key")
		_, err := attestation.Verify(raw, o)
		wantCheck(t, err, attestation.ErrBinding, "public_key")
	})
	t.Run("tampered user_data", func(t *testing.T) {
		b := bytes.Clone(raw)
		i := bytes.Index(b, []byte("\x69user_data\x42ud"))
		b[i+len("\x69user_data\x42")] = 'U'
		_, err := attestation.Verify(b, p.opts(t0))
		wantCheck(t, err, attestation.ErrSignature, "signature")
	})
	t.Run("tampered signature", func(t *testing.T) {
		b := bytes.Clone(raw)
		b[len(b)-10] ^= 0x80
		_, err := attestation.Verify(b, p.opts(t0))
		wantCheck(t, err, attestation.ErrSignature, "signature")
	})
	t.Run("truncated", func(t *testing.T) {
		_, err := attestation.Verify(raw[:len(raw)-1], p.opts(t0))
		wantCheck(t, err, attestation.ErrMalformed, "cose")
	})
}

func TestExpiry(t *testing.T) {
	p := newParty(t)
	raw, err := p.nsm.Attest(nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		at time.Duration
		ok bool
	}{
		{-time.Minute, true},
		{2*time.Hour + 59*time.Minute, true},
		{devnsm.LeafLifetime + time.Second, false},
		{25 * time.Hour, false},
		{-2 * time.Minute, false},
	} {
		_, err := attestation.Verify(raw, p.opts(t0.Add(tt.at)))
		if tt.ok && err != nil {
			t.Errorf("at t0%+v: %v", tt.at, err)
		}
		if !tt.ok {
			if !errors.Is(err, attestation.ErrExpired) {
				t.Errorf("at t0%+v: error %v, want ErrExpired", tt.at, err)
			}
		}
	}
	// A live check with MaxAge rejects an old document before its leaf
	// expires.
	o := p.opts(t0.Add(10 * time.Minute))
	o.MaxAge = 5 * time.Minute
	_, err = attestation.Verify(raw, o)
	wantCheck(t, err, attestation.ErrExpired, "age")
}

func TestIntermediateRenewal(t *testing.T) {
	p := newParty(t)
	inter := func() []byte {
		raw, err := p.nsm.Attest(nil, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := attestation.Verify(raw, p.opts(p.clock.Now())); err != nil {
			t.Fatalf("at %v: %v", p.clock.Now(), err)
		}
		// The document must stay verifiable for its whole leaf lifetime.
		if _, err := attestation.Verify(raw, p.opts(p.clock.Now().Add(devnsm.LeafLifetime-time.Second))); err != nil {
			t.Fatalf("issued at %v, verified near leaf expiry: %v", p.clock.Now(), err)
		}
		d, err := attestation.ParseUnverified(raw)
		if err != nil {
			t.Fatal(err)
		}
		return d.CABundle[1]
	}
	first := inter()
	p.clock.Add(time.Hour)
	if !bytes.Equal(inter(), first) {
		t.Error("intermediate renewed after 1h, want reuse")
	}
	p.clock.Add(20 * time.Hour) // 21h: 3h leaf would outlive the 24h intermediate
	second := inter()
	if bytes.Equal(second, first) {
		t.Error("intermediate not renewed near expiry")
	}
	p.clock.Add(-10 * time.Hour) // clock stepped back before the intermediate
	if bytes.Equal(inter(), second) {
		t.Error("intermediate not renewed after the clock went back")
	}
}

func TestAttestLimits(t *testing.T) {
	p := newParty(t)
	max := bytes.Repeat([]byte{1}, 1024)
	raw, err := p.nsm.Attest(max, max, max)
	if err != nil {
		t.Fatalf("1024-byte fields: %v", err)
	}
	o := p.opts(t0)
	o.PublicKey, o.UserData, o.Nonce = max, max, max
	if _, err := attestation.Verify(raw, o); err != nil {
		t.Fatal(err)
	}
	over := make([]byte, 1025)
	for name, args := range map[string][3][]byte{
		"public_key": {over, nil, nil},
		"user_data":  {nil, over, nil},
		"nonce":      {nil, nil, over},
	} {
		_, err := p.nsm.Attest(args[0], args[1], args[2])
		if err == nil || !strings.HasPrefix(err.Error(), "devnsm: "+name+" is 1025 bytes") {
			t.Errorf("%s of 1025 bytes: %v", name, err)
		}
	}
	// The root does not cover a clock 31 years ahead.
	p.clock.Add(31 * 365 * 24 * time.Hour)
	if _, err := p.nsm.Attest(nil, nil, nil); err == nil || !strings.Contains(err.Error(), "create a new dev CA") {
		t.Errorf("attest outside root validity: %v", err)
	}
}

func TestNewValidation(t *testing.T) {
	ca, err := devnsm.NewCA(nil, t0)
	if err != nil {
		t.Fatal(err)
	}
	pcr := make([]byte, 48)
	for _, tt := range []struct {
		name     string
		ca       *devnsm.CA
		moduleID string
		pcrs     map[uint][]byte
		want     string
	}{
		{"nil CA", nil, "a", nil, "devnsm: no CA"},
		{"empty module id", ca, "", nil, "module id"},
		{"module id with space", ca, "a b", nil, "module id"},
		{"module id too long", ca, strings.Repeat("a", 49), nil, "module id"},
		{"pcr index 32", ca, "a", map[uint][]byte{32: pcr}, "pcr32: index out of range"},
		{"pcr 32 bytes", ca, "a", map[uint][]byte{0: pcr[:32]}, "pcr0 has 32 bytes, want 48"},
		{"ok with pcr16", ca, "a", map[uint][]byte{16: pcr}, ""},
	} {
		_, err := devnsm.New(tt.ca, tt.moduleID, tt.pcrs, nil, nil)
		if tt.want == "" {
			if err != nil {
				t.Errorf("%s: %v", tt.name, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "devnsm: ") {
			t.Errorf("%s: error %v, want %q", tt.name, err, tt.want)
		}
	}
}

// TestPCRsCopied checks that New copies the PCR values it is given.
func TestPCRsCopied(t *testing.T) {
	ca, _ := devnsm.NewCA(nil, t0)
	pcr0 := bytes.Repeat([]byte{7}, 48)
	n, err := devnsm.New(ca, "a", map[uint][]byte{0: pcr0}, nil, func() time.Time { return t0 })
	if err != nil {
		t.Fatal(err)
	}
	want := bytes.Clone(pcr0)
	pcr0[0] = 0
	raw, err := n.Attest(nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := attestation.Verify(raw, attestation.VerifyOptions{Roots: roots(ca.Cert()), Time: t0, PCRs: map[uint][]byte{0: want}}); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentAttest(t *testing.T) {
	p := newParty(t)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			raw, err := p.nsm.Attest(nil, []byte{byte(i)}, nil)
			if err == nil {
				_, err = attestation.Verify(raw, p.opts(t0))
			}
			errs <- err
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

func TestMeasure(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "abc")
	if err := os.WriteFile(f, []byte("abc"), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := devnsm.MeasureFile(f)
	if err != nil {
		t.Fatal(err)
	}
	// FIPS 180-2 SHA-384 test vector for "abc".
	const abc = "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7"
	if got := hex.EncodeToString(m); got != abc {
		t.Errorf("MeasureFile(abc) = %s, want %s", got, abc)
	}
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, bytes.Repeat([]byte("x"), 3<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := devnsm.MeasureFile(big); err != nil {
		t.Error(err)
	}
	if _, err := devnsm.MeasureFile(filepath.Join(dir, "missing")); err == nil || !strings.HasPrefix(err.Error(), "devnsm: measure") {
		t.Errorf("missing file: %v", err)
	}
	self, err := devnsm.MeasureSelf()
	if err != nil {
		t.Fatal(err)
	}
	exe, _ := os.Executable()
	if byPath, err := devnsm.MeasureFile(exe); err != nil || !bytes.Equal(self, byPath) {
		t.Errorf("MeasureSelf differs from MeasureFile(os.Executable()): %v", err)
	}
}
