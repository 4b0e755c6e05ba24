package tpm

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/fxamacker/cbor/v2"

	"github.com/sealsign/sealsign/attestation"
	hsmtpm "github.com/sealsign/sealsign/hsm/tpm"
)

var update = flag.Bool("update", false, "regenerate testdata/ak.der and testdata/evidence.cbor from the simulator seeded by testdata/sim.seed")

// Fixture parameters; testdata/README.md describes how the files were made.
var (
	fixturePCRs        = []int{0, 7, 16}
	fixtureMeasurement = []byte("sealsign-enclave fixture")
	fixturePublicKey   = []byte("identity: ed25519 and hpke public keys (fixture)")
	fixtureUserData    = sha256Sum([]byte("cluster manifest (fixture)"))
	fixtureNonce       = func() []byte {
		n := make([]byte, 32)
		for i := range n {
			n[i] = byte(i + 1)
		}
		return n
	}()
)

func sha256Sum(b []byte) []byte {
	d := sha256.Sum256(b)
	return d[:]
}

// fixturePCR16 is PCR 16 after one extend with the fixture measurement,
// from a reset (all-zero) PCR: SHA-256(0³² ‖ SHA-256(measurement)).
func fixturePCR16() []byte {
	return sha256Sum(append(make([]byte, 32), sha256Sum(fixtureMeasurement)...))
}

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatalf("read fixture: %v (regenerate with go test -run TestFixture -update)", err)
	}
	return b
}

func fixtureAK(t testing.TB) *ecdsa.PublicKey {
	t.Helper()
	pub, err := x509.ParsePKIXPublicKey(readFixture(t, "ak.der"))
	if err != nil {
		t.Fatal(err)
	}
	return pub.(*ecdsa.PublicKey)
}

func fixtureOptions(t testing.TB) VerifyOptions {
	return VerifyOptions{
		AKPublic:  fixtureAK(t),
		PCRs:      map[int][]byte{16: fixturePCR16()},
		PublicKey: fixturePublicKey,
		UserData:  fixtureUserData,
		Nonce:     fixtureNonce,
	}
}

// attestFixture produces evidence like the fixture's on tp.
func attestFixture(t testing.TB, tp *hsmtpm.TPM) (*AK, []byte) {
	t.Helper()
	if err := tp.ExtendPCR(16, fixtureMeasurement); err != nil {
		t.Fatal(err)
	}
	ak := newAK(t, tp)
	att, err := NewAttester(ak, fixturePCRs)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := att.Attest(fixturePublicKey, fixtureUserData, fixtureNonce)
	if err != nil {
		t.Fatalf("Attest: %v", err)
	}
	return ak, ev
}

// TestFixture is the known-answer test: evidence produced once by the
// simulator seeded with testdata/sim.seed still verifies, with the values
// it was made with.
func TestFixture(t *testing.T) {
	if *update {
		tp := openTPMSeed(t, fixtureSeed(t))
		ak, ev := attestFixture(t, tp)
		if err := os.WriteFile("testdata/ak.der", ak.PublicBytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile("testdata/evidence.cbor", ev, 0o644); err != nil {
			t.Fatal(err)
		}
		ak.Close()
		tp.Close()
	}
	raw := readFixture(t, "evidence.cbor")
	ev, err := VerifyEvidence(raw, fixtureOptions(t))
	if err != nil {
		t.Fatalf("VerifyEvidence(fixture): %v", err)
	}
	if ev.Version != 1 || !bytes.Equal(ev.AKPublic, readFixture(t, "ak.der")) ||
		!bytes.Equal(ev.PublicKey, fixturePublicKey) || !bytes.Equal(ev.UserData, fixtureUserData) || !bytes.Equal(ev.Nonce, fixtureNonce) {
		t.Fatalf("fixture evidence fields differ: %+v", ev)
	}
	if len(ev.Quote.PCRs) != 3 || !bytes.Equal(ev.Quote.PCRs[0], make([]byte, 32)) || !bytes.Equal(ev.Quote.PCRs[16], fixturePCR16()) {
		t.Fatalf("fixture PCRs: %x", ev.Quote.PCRs)
	}
	// The reference TPM counts its first TPM2_Startup after manufacture as
	// a reset.
	if ev.Clock.ResetCount != 1 || ev.Clock.RestartCount != 0 || !ev.Clock.Safe {
		t.Fatalf("fixture clock: %+v, want resetCount 1, restartCount 0, safe", ev.Clock)
	}
}

func TestEvidenceRoundTrip(t *testing.T) {
	tp := openTPM(t)
	ak, raw := attestFixture(t, tp)
	opts := fixtureOptions(t)
	opts.AKPublic = ak.Public()
	ev, err := VerifyEvidence(raw, opts)
	if err != nil {
		t.Fatalf("VerifyEvidence: %v", err)
	}
	if !bytes.Equal(ev.AKPublic, ak.PublicBytes()) || !bytes.Equal(ev.PublicKey, fixturePublicKey) ||
		!bytes.Equal(ev.UserData, fixtureUserData) || !bytes.Equal(ev.Nonce, fixtureNonce) ||
		!bytes.Equal(ev.Quote.PCRs[16], fixturePCR16()) {
		t.Fatalf("evidence fields differ: %+v", ev)
	}
	// The quote inside signs ExtraData of the three fields.
	if err := VerifyQuote(&ev.Quote, ak.Public(), ExtraData(fixturePublicKey, fixtureUserData, fixtureNonce), nil); err != nil {
		t.Fatalf("VerifyQuote(evidence quote): %v", err)
	}
	// Only authentication, no policy: still fine.
	if _, err := VerifyEvidence(raw, VerifyOptions{AKPublic: ak.Public()}); err != nil {
		t.Fatalf("VerifyEvidence with only the AK: %v", err)
	}
	// Deterministic encoding: decoding and re-encoding gives the same bytes.
	var w wireEvidence
	if err := strictDec.Unmarshal(raw, &w); err != nil {
		t.Fatal(err)
	}
	again, err := encMode.Marshal(w)
	if err != nil || !bytes.Equal(again, raw) {
		t.Fatalf("evidence is not canonical CBOR")
	}
	// Empty fields are allowed and bound too.
	att, _ := NewAttester(ak, []int{16})
	empty, err := att.Attest(nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyEvidence(empty, VerifyOptions{AKPublic: ak.Public(), Nonce: []byte{}, UserData: []byte{}, PublicKey: []byte{}}); err != nil {
		t.Fatalf("evidence with empty fields: %v", err)
	}
	if _, err := att.Attest(nil, make([]byte, MaxAuxSize+1), nil); err == nil {
		t.Fatalf("Attest accepted oversized user data")
	}
}

// reencode decodes evidence, edits it and encodes it canonically again.
func reencode(t testing.TB, raw []byte, edit func(w *wireEvidence)) []byte {
	t.Helper()
	var w wireEvidence
	if err := strictDec.Unmarshal(raw, &w); err != nil {
		t.Fatal(err)
	}
	edit(&w)
	out, err := encMode.Marshal(w)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// rawMap re-encodes evidence as a generic map, to add or null fields.
func rawMap(t testing.TB, raw []byte, edit func(m map[uint64]any)) []byte {
	t.Helper()
	var m map[uint64]any
	if err := cbor.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	out, err := encMode.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestEvidenceRejected(t *testing.T) {
	raw := readFixture(t, "evidence.cbor")
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherDER, _ := x509.MarshalPKIXPublicKey(&other.PublicKey)
	withOpts := func(edit func(o *VerifyOptions)) VerifyOptions {
		o := fixtureOptions(t)
		edit(&o)
		return o
	}
	same := func(*VerifyOptions) {}
	addPCRs := func(n uint64) func(w *wireEvidence) {
		return func(w *wireEvidence) {
			for i := range n {
				w.PCRs[i+100] = make([]byte, 32)
			}
		}
	}
	for _, tc := range []struct {
		name  string
		raw   []byte
		opts  VerifyOptions
		check string
		kind  error
	}{
		// Bindings the verifier expects.
		{"other public key", raw, withOpts(func(o *VerifyOptions) { o.PublicKey = []byte("another identity") }), "public_key", ErrBinding},
		{"other user data (manifest)", raw, withOpts(func(o *VerifyOptions) { o.UserData = sha256Sum([]byte("another cluster")) }), "user_data", ErrBinding},
		{"other nonce (replay)", raw, withOpts(func(o *VerifyOptions) { o.Nonce = sha256Sum([]byte("fresh challenge")) }), "nonce", ErrBinding},
		{"empty nonce expected", raw, withOpts(func(o *VerifyOptions) { o.Nonce = []byte{} }), "nonce", ErrBinding},
		{"other enclave measurement", raw, withOpts(func(o *VerifyOptions) { o.PCRs = map[int][]byte{16: sha256Sum([]byte("v2"))} }), "pcr16", ErrMeasurement},
		{"unquoted PCR required", raw, withOpts(func(o *VerifyOptions) { o.PCRs = map[int][]byte{23: make([]byte, 32)} }), "pcr23", ErrMeasurement},
		// Trust anchor.
		{"no pinned AK", raw, withOpts(func(o *VerifyOptions) { o.AKPublic = nil }), "options", ErrOptions},
		{"other AK pinned", raw, withOpts(func(o *VerifyOptions) { o.AKPublic = &other.PublicKey }), "ak_public", ErrAttestationKey},
		{"AK in evidence swapped", reencode(t, raw, func(w *wireEvidence) { w.AKPublic = otherDER }), fixtureOptions(t), "ak_public", ErrAttestationKey},
		{"AK swapped and pinned", reencode(t, raw, func(w *wireEvidence) { w.AKPublic = otherDER }), withOpts(func(o *VerifyOptions) { o.AKPublic = &other.PublicKey }), "signature", ErrSignature},
		// Fields rewritten after signing: the quote does not sign them.
		{"user data rewritten", reencode(t, raw, func(w *wireEvidence) { w.UserData = []byte("x") }), withOpts(func(o *VerifyOptions) { o.UserData = nil }), "extra_data", ErrBinding},
		{"public key rewritten", reencode(t, raw, func(w *wireEvidence) { w.PublicKey = []byte("x") }), withOpts(func(o *VerifyOptions) { o.PublicKey = []byte("x") }), "extra_data", ErrBinding},
		{"nonce rewritten", reencode(t, raw, func(w *wireEvidence) { w.Nonce = []byte("x") }), withOpts(func(o *VerifyOptions) { o.Nonce = []byte("x") }), "extra_data", ErrBinding},
		{"PCR value rewritten", reencode(t, raw, func(w *wireEvidence) { w.PCRs[16] = sha256Sum([]byte("v2")) }), withOpts(func(o *VerifyOptions) { o.PCRs = map[int][]byte{16: sha256Sum([]byte("v2"))} }), "pcr_digest", ErrQuote},
		{"attest altered", reencode(t, raw, func(w *wireEvidence) { w.Attest[10] ^= 1 }), fixtureOptions(t), "signature", ErrSignature},
		{"signature altered", reencode(t, raw, func(w *wireEvidence) { w.Signature[8] ^= 1 }), fixtureOptions(t), "signature", ErrSignature},
		// Structure.
		{"empty", nil, fixtureOptions(t), "evidence", ErrMalformed},
		{"oversized", make([]byte, MaxEvidenceSize+1), fixtureOptions(t), "evidence", ErrMalformed},
		{"truncated", raw[:len(raw)-1], fixtureOptions(t), "evidence", ErrMalformed},
		{"trailing byte", append(bytes.Clone(raw), 0), fixtureOptions(t), "evidence", ErrMalformed},
		{"not a map", []byte{0x83, 1, 2, 3}, fixtureOptions(t), "evidence", ErrMalformed},
		{"version 2", reencode(t, raw, func(w *wireEvidence) { w.Version = 2 }), fixtureOptions(t), "version", ErrMalformed},
		{"unknown field", rawMap(t, raw, func(m map[uint64]any) { m[9] = []byte{1} }), fixtureOptions(t), "evidence", ErrMalformed},
		{"null field", rawMap(t, raw, func(m map[uint64]any) { m[8] = nil }), fixtureOptions(t), "evidence", ErrMalformed},
		{"missing field", rawMap(t, raw, func(m map[uint64]any) { delete(m, 7) }), fixtureOptions(t), "evidence", ErrMalformed},
		{"tagged field", rawMap(t, raw, func(m map[uint64]any) { m[7] = cbor.Tag{Number: 24, Content: m[7]} }), fixtureOptions(t), "evidence", ErrMalformed},
		{"non-canonical length", nonCanonical(t, raw), fixtureOptions(t), "evidence", ErrMalformed},
		{"no PCRs", reencode(t, raw, func(w *wireEvidence) { w.PCRs = map[uint64][]byte{} }), fixtureOptions(t), "pcrs", ErrMalformed},
		{"too many PCRs", reencode(t, raw, addPCRs(25)), fixtureOptions(t), "pcrs", ErrMalformed},
		{"PCR map over the decoder's limit", reencode(t, raw, addPCRs(40)), fixtureOptions(t), "evidence", ErrMalformed},
		{"PCR index out of range", reencode(t, raw, func(w *wireEvidence) { w.PCRs[99] = w.PCRs[16] }), fixtureOptions(t), "pcrs", ErrMalformed},
		{"user data too long", reencode(t, raw, func(w *wireEvidence) { w.UserData = make([]byte, MaxAuxSize+1) }), withOpts(same), "user_data", ErrMalformed},
		{"AK not PKIX", reencode(t, raw, func(w *wireEvidence) { w.AKPublic = []byte{} }), fixtureOptions(t), "ak_public", ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := VerifyEvidence(tc.raw, tc.opts)
			if ev != nil {
				t.Fatalf("VerifyEvidence returned evidence with an error")
			}
			checkErr(t, err, tc.check, tc.kind)
		})
	}
}

// nonCanonical re-encodes the version with a needlessly long integer.
func nonCanonical(t testing.TB, raw []byte) []byte {
	t.Helper()
	// raw starts a8 01 01: a map of 8, key 1, version 1.
	if !bytes.HasPrefix(raw, []byte{0xa8, 0x01, 0x01}) {
		t.Fatalf("fixture does not start with a8 01 01: % x", raw[:3])
	}
	return append([]byte{0xa8, 0x01, 0x18, 0x01}, raw[3:]...)
}

func TestEvidenceErrorsMatchNitroSentinels(t *testing.T) {
	raw := readFixture(t, "evidence.cbor")
	o := fixtureOptions(t)
	o.PCRs = map[int][]byte{16: make([]byte, 32)}
	_, err := VerifyEvidence(raw, o)
	if !errors.Is(err, ErrMeasurement) || !errors.Is(err, attestation.ErrMeasurement) {
		t.Fatalf("PCR mismatch %v does not match both ErrMeasurement sentinels", err)
	}
	o = fixtureOptions(t)
	o.Nonce = []byte("other")
	_, err = VerifyEvidence(raw, o)
	if !errors.Is(err, ErrBinding) || !errors.Is(err, attestation.ErrBinding) {
		t.Fatalf("nonce mismatch %v does not match both ErrBinding sentinels", err)
	}
	const want = "tpm: nonce mismatch: want 6f74686572, got 0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20"
	if err.Error() != "tpm: nonce mismatch: want 6f74686572, got 01020304…1f20" {
		t.Fatalf("error %q", err)
	}
	var ce *CheckError
	if errors.As(err, &ce); ce.Got != "0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20" {
		t.Fatalf("CheckError.Got %q, want the full value (as in %q)", ce.Got, want)
	}
}
