package tpm

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzVerifyEvidence: the verifier never panics, always answers with a
// *CheckError, and accepts nothing but the fixture's content.
func FuzzVerifyEvidence(f *testing.F) {
	raw := readFixture(f, "evidence.cbor")
	opts := fixtureOptions(f)
	f.Add(raw)
	f.Add(raw[:len(raw)/2])
	f.Add(append(bytes.Clone(raw), 0))
	f.Add([]byte{})
	f.Add([]byte{0xa0})
	f.Add([]byte{0xa1, 0x01, 0x02})
	f.Add([]byte{0xbf, 0x01, 0x01, 0xff})
	for _, off := range []int{3, 20, 100, 150, 250, len(raw) - 1} {
		if off < len(raw) {
			b := bytes.Clone(raw)
			b[off] ^= 0x01
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := VerifyEvidence(data, opts)
		if err != nil {
			var ce *CheckError
			if ev != nil || !errors.As(err, &ce) || ce.Kind == nil {
				t.Fatalf("VerifyEvidence: evidence %v, error %v (%T); want nil and a *CheckError", ev, err, err)
			}
			return
		}
		// Accepted: it must say what the fixture says.
		if !bytes.Equal(ev.PublicKey, fixturePublicKey) || !bytes.Equal(ev.UserData, fixtureUserData) ||
			!bytes.Equal(ev.Nonce, fixtureNonce) || !bytes.Equal(ev.Quote.PCRs[16], fixturePCR16()) {
			t.Fatalf("accepted evidence with other content: %+v", ev)
		}
	})
}

// FuzzParseAttest: the TPMS_ATTEST parser never panics.
func FuzzParseAttest(f *testing.F) {
	var w wireEvidence
	if err := strictDec.Unmarshal(readFixture(f, "evidence.cbor"), &w); err != nil {
		f.Fatal(err)
	}
	f.Add(w.Attest)
	f.Add(w.Attest[:20])
	f.Fuzz(func(t *testing.T, data []byte) {
		a, cerr := parseAttest(data)
		if cerr != nil {
			return
		}
		a.parseQuoteInfo()
	})
}
