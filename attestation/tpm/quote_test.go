package tpm

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"maps"
	"strings"
	"testing"

	"github.com/google/go-tpm/tpm2"

	"github.com/sealsign/sealsign/attestation"
)

var testNonce = bytes.Repeat([]byte{0x5a}, 32)

func TestQuoteVerifies(t *testing.T) {
	tp := openTPM(t)
	if err := tp.ExtendPCR(16, []byte("enclave")); err != nil {
		t.Fatal(err)
	}
	ak := newAK(t, tp)
	all := make([]int, NumPCRs)
	for i := range all {
		all[i] = i
	}
	for _, tc := range []struct {
		name string
		pcrs []int
	}{
		{"one pcr", []int{16}},
		{"boot and enclave", []int{0, 7, 16}},
		{"all 24, more than one TPM2_PCR_Read returns", all},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, err := ak.Quote(tc.pcrs, testNonce)
			if err != nil {
				t.Fatalf("Quote: %v", err)
			}
			if len(q.PCRs) != len(tc.pcrs) {
				t.Fatalf("quote reports %d PCRs, want %d", len(q.PCRs), len(tc.pcrs))
			}
			want, err := tp.ReadPCRs([]int{16})
			if err != nil {
				t.Fatal(err)
			}
			if !slicesContains(tc.pcrs, 16) {
				want = nil
			}
			if err := VerifyQuote(q, ak.Public(), testNonce, want); err != nil {
				t.Fatalf("VerifyQuote: %v", err)
			}
		})
	}
	// An empty nonce is a nonce too.
	q, err := ak.Quote([]int{7}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyQuote(q, ak.Public(), nil, nil); err != nil {
		t.Fatalf("VerifyQuote with empty nonce: %v", err)
	}
}

func slicesContains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func TestQuoteArguments(t *testing.T) {
	tp := openTPM(t)
	ak := newAK(t, tp)
	for _, pcrs := range [][]int{nil, {24}, {-1}, {3, 3}} {
		if _, err := ak.Quote(pcrs, testNonce); err == nil {
			t.Errorf("Quote(%v) accepted", pcrs)
		}
	}
	if _, err := ak.Quote([]int{16}, make([]byte, MaxNonceSize+1)); err == nil || !strings.Contains(err.Error(), "hash it with SHA-256") {
		t.Errorf("Quote with a 33-byte nonce: %v", err)
	}
	ak.Close()
	if _, err := ak.Quote([]int{16}, testNonce); !errors.Is(err, ErrDevice) {
		t.Errorf("Quote after Close: %v; want ErrDevice", err)
	}
}

// checkErr asserts err is a *CheckError for check, of kind, whose message
// names the check.
func checkErr(t *testing.T, err error, check string, kind error) *CheckError {
	t.Helper()
	var ce *CheckError
	if !errors.As(err, &ce) {
		t.Fatalf("error %v (%T) is not a *CheckError", err, err)
	}
	if ce.Check != check || !errors.Is(err, kind) {
		t.Fatalf("error %q: check %q kind %v; want check %q kind %v", err, ce.Check, ce.Kind, check, kind)
	}
	if !strings.HasPrefix(err.Error(), "tpm: "+check) {
		t.Fatalf("error %q does not start with %q", err, "tpm: "+check)
	}
	return ce
}

func TestQuoteRejected(t *testing.T) {
	tp := openTPM(t)
	if err := tp.ExtendPCR(16, []byte("enclave v1")); err != nil {
		t.Fatal(err)
	}
	ak := newAK(t, tp)
	q, err := ak.Quote([]int{7, 16}, testNonce)
	if err != nil {
		t.Fatal(err)
	}
	good := maps.Clone(q.PCRs)
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)

	// A second TPM: its AK and its (valid) quote.
	otherPCR := bytes.Repeat([]byte{0x11}, 32)

	clone := func(edit func(q *Quote)) *Quote {
		c := &Quote{Attest: bytes.Clone(q.Attest), Signature: bytes.Clone(q.Signature), PCRs: maps.Clone(q.PCRs)}
		for i, v := range c.PCRs {
			c.PCRs[i] = bytes.Clone(v)
		}
		if edit != nil {
			edit(c)
		}
		return c
	}
	for _, tc := range []struct {
		name  string
		q     *Quote
		key   any
		nonce []byte
		want  map[int][]byte
		check string
		kind  error
	}{
		{"wrong nonce", clone(nil), ak.Public(), bytes.Repeat([]byte{1}, 32), nil, "extra_data", ErrBinding},
		{"nonce omitted by verifier", clone(nil), ak.Public(), nil, nil, "extra_data", ErrBinding},
		{"wrong AK", clone(nil), &otherKey.PublicKey, testNonce, nil, "signature", ErrSignature},
		{"AK on P-384", clone(nil), &p384.PublicKey, testNonce, nil, "ak_public", ErrAlgorithm},
		{"AK is Ed25519", clone(nil), edPub, testNonce, nil, "ak_public", ErrAlgorithm},
		{"no AK", clone(nil), nil, testNonce, nil, "options", ErrOptions},
		{"changed PCR", clone(nil), ak.Public(), testNonce, map[int][]byte{16: otherPCR}, "pcr16", ErrMeasurement},
		{"wanted PCR not quoted", clone(nil), ak.Public(), testNonce, map[int][]byte{23: otherPCR}, "pcr23", ErrMeasurement},
		{"bad expected PCR", clone(nil), ak.Public(), testNonce, map[int][]byte{16: {1, 2}}, "options", ErrOptions},
		{"expected PCR out of range", clone(nil), ak.Public(), testNonce, map[int][]byte{24: otherPCR}, "options", ErrOptions},
		{"altered attest: magic", clone(func(q *Quote) { q.Attest[0] ^= 1 }), ak.Public(), testNonce, nil, "signature", ErrSignature},
		{"altered attest: extra data", clone(func(q *Quote) { q.Attest[len(q.Attest)-40] ^= 1 }), ak.Public(), testNonce, nil, "signature", ErrSignature},
		{"altered attest: pcr digest", clone(func(q *Quote) { q.Attest[len(q.Attest)-1] ^= 1 }), ak.Public(), testNonce, nil, "signature", ErrSignature},
		{"truncated attest", clone(func(q *Quote) { q.Attest = q.Attest[:len(q.Attest)-1] }), ak.Public(), testNonce, nil, "signature", ErrSignature},
		{"altered signature", clone(func(q *Quote) { q.Signature[len(q.Signature)-1] ^= 1 }), ak.Public(), testNonce, nil, "signature", ErrSignature},
		{"empty signature", clone(func(q *Quote) { q.Signature = nil }), ak.Public(), testNonce, nil, "signature", ErrMalformed},
		{"reported PCR value changed", clone(func(q *Quote) { q.PCRs[16] = otherPCR }), ak.Public(), testNonce, nil, "pcr_digest", ErrQuote},
		{"reported PCR dropped", clone(func(q *Quote) { delete(q.PCRs, 7) }), ak.Public(), testNonce, nil, "pcr_select", ErrQuote},
		{"unquoted PCR reported", clone(func(q *Quote) { q.PCRs[23] = otherPCR }), ak.Public(), testNonce, map[int][]byte{23: otherPCR}, "pcr_select", ErrQuote},
		{"reported PCR short", clone(func(q *Quote) { q.PCRs[16] = q.PCRs[16][:20] }), ak.Public(), testNonce, nil, "pcr16", ErrMalformed},
		{"no PCRs", clone(func(q *Quote) { q.PCRs = nil }), ak.Public(), testNonce, nil, "pcrs", ErrMalformed},
		{"nil quote", nil, ak.Public(), testNonce, nil, "quote", ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := VerifyQuote(tc.q, tc.key, tc.nonce, tc.want)
			ce := checkErr(t, err, tc.check, tc.kind)
			if tc.check == "pcr16" && tc.kind == ErrMeasurement {
				if ce.Want != "1111111111111111111111111111111111111111111111111111111111111111" || len(ce.Got) != 64 {
					t.Fatalf("pcr16 error want %q got %q; want full expected and actual values", ce.Want, ce.Got)
				}
				if !errors.Is(err, attestation.ErrMeasurement) {
					t.Fatalf("pcr mismatch does not match attestation.ErrMeasurement")
				}
			}
		})
	}
	if err := VerifyQuote(q, ak.Public(), testNonce, good); err != nil {
		t.Fatalf("the untouched quote no longer verifies: %v", err)
	}

	// After the PCR changes, a fresh quote shows the new value and fails
	// the old policy.
	if err := tp.ExtendPCR(16, []byte("enclave v2")); err != nil {
		t.Fatal(err)
	}
	q2, err := ak.Quote([]int{7, 16}, testNonce)
	if err != nil {
		t.Fatal(err)
	}
	err = VerifyQuote(q2, ak.Public(), testNonce, good)
	checkErr(t, err, "pcr16", ErrMeasurement)
}

// Magic and type are checked after the signature, so they need a validly
// signed non-quote: sign edited TPMS_ATTEST bytes with a software key.
func TestQuoteMagicAndType(t *testing.T) {
	tp := openTPM(t)
	ak := newAK(t, tp)
	q, err := ak.Quote([]int{16}, testNonce)
	if err != nil {
		t.Fatal(err)
	}
	soft, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	resign := func(attest []byte) *Quote {
		d := sha256.Sum256(attest)
		sig, _ := ecdsa.SignASN1(rand.Reader, soft, d[:])
		return &Quote{Attest: attest, Signature: sig, PCRs: q.PCRs}
	}
	if err := VerifyQuote(resign(bytes.Clone(q.Attest)), &soft.PublicKey, testNonce, nil); err != nil {
		t.Fatalf("re-signed genuine attest: %v", err)
	}
	badMagic := bytes.Clone(q.Attest)
	binary.BigEndian.PutUint32(badMagic, 0x12345678)
	ce := checkErr(t, VerifyQuote(resign(badMagic), &soft.PublicKey, testNonce, nil), "magic", ErrQuote)
	if ce.Want != "ff544347" || ce.Got != "12345678" {
		t.Fatalf("magic want %q got %q", ce.Want, ce.Got)
	}
	badType := bytes.Clone(q.Attest)
	binary.BigEndian.PutUint16(badType[4:], 0x8017) // TPM_ST_ATTEST_CERTIFY
	checkErr(t, VerifyQuote(resign(badType), &soft.PublicKey, testNonce, nil), "type", ErrQuote)
	checkErr(t, VerifyQuote(resign(append(bytes.Clone(q.Attest), 0)), &soft.PublicKey, testNonce, nil), "attest", ErrMalformed)
	checkErr(t, VerifyQuote(resign(q.Attest[:10]), &soft.PublicKey, testNonce, nil), "attest", ErrMalformed)
}

// The hand-written TPMS_ATTEST parser agrees with go-tpm's.
func TestParseAttestMatchesGoTPM(t *testing.T) {
	tp := openTPM(t)
	ak := newAK(t, tp)
	q, err := ak.Quote([]int{0, 7, 16, 23}, testNonce)
	if err != nil {
		t.Fatal(err)
	}
	a, cerr := parseAttest(q.Attest)
	if cerr != nil {
		t.Fatal(cerr)
	}
	if cerr := a.parseQuoteInfo(); cerr != nil {
		t.Fatal(cerr)
	}
	ref, err := tpm2.Unmarshal[tpm2.TPMSAttest](q.Attest)
	if err != nil {
		t.Fatal(err)
	}
	qi, err := ref.Attested.Quote()
	if err != nil {
		t.Fatal(err)
	}
	if uint32(ref.Magic) != a.magic || uint16(ref.Type) != a.typ ||
		!bytes.Equal(ref.QualifiedSigner.Buffer, a.qualifiedSigner) || !bytes.Equal(ref.ExtraData.Buffer, a.extraData) ||
		ref.ClockInfo.Clock != a.clock.Clock || ref.ClockInfo.ResetCount != a.clock.ResetCount ||
		ref.ClockInfo.RestartCount != a.clock.RestartCount || bool(ref.ClockInfo.Safe) != a.clock.Safe ||
		ref.FirmwareVersion != a.firmwareVersion || !bytes.Equal(qi.PCRDigest.Buffer, a.pcrDigest) ||
		len(qi.PCRSelect.PCRSelections) != len(a.selections) ||
		uint16(qi.PCRSelect.PCRSelections[0].Hash) != a.selections[0].hash ||
		!bytes.Equal(qi.PCRSelect.PCRSelections[0].PCRSelect, a.selections[0].mask) {
		t.Fatalf("parsers disagree:\n go-tpm %+v %+v\n ours   %+v", ref, qi, a)
	}
	// qualifiedSigner is the AK's name: SHA-256 name algorithm ‖ digest.
	if len(a.qualifiedSigner) != 34 || binary.BigEndian.Uint16(a.qualifiedSigner) != 0x000b {
		t.Fatalf("qualifiedSigner % x is not a SHA-256 name", a.qualifiedSigner)
	}
}

// The AK is a primary key: the same seed gives the same AK after a
// restart (so a manifest can pin it), another seed another AK.
func TestAKStableAcrossRestart(t *testing.T) {
	seed := fixtureSeed(t)
	tp := openTPMSeed(t, seed)
	first := newAK(t, tp).PublicBytes()
	tp.Close()

	tp = openTPMSeed(t, seed)
	if again := newAK(t, tp).PublicBytes(); !bytes.Equal(first, again) {
		t.Fatalf("AK changed across a restart with the same seed")
	}
	tp.Close()

	pinned := readFixture(t, "ak.der")
	if !bytes.Equal(first, pinned) {
		t.Fatalf("AK of testdata/sim.seed is %x, testdata/ak.der pins %x: the AK template or the simulator's key derivation changed", first, pinned)
	}
	pub, err := x509.ParsePKIXPublicKey(first)
	if err != nil {
		t.Fatalf("PublicBytes is not PKIX DER: %v", err)
	}
	if k, ok := pub.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
		t.Fatalf("AK is %T, want ECDSA P-256", pub)
	}

	tp = openTPM(t)
	if other := newAK(t, tp).PublicBytes(); bytes.Equal(first, other) {
		t.Fatalf("two seeds gave the same AK")
	}
}
