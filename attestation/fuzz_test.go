package attestation

import (
	"crypto/elliptic"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
)

// FuzzVerify feeds arbitrary bytes and verification times to VerifyDetailed
// (and so Verify) and ParseUnverified, under the embedded AWS root. It
// asserts: no panic; exactly one of document and error; a chain only with a
// document; the last check failed exactly when there is an error; every
// error is a *CheckError with a kind; a verified document also parses; and
// whatever parses re-encodes and decodes to the same document.
func FuzzVerify(f *testing.F) {
	files, err := filepath.Glob("testdata/*.cose")
	if err != nil || len(files) == 0 {
		f.Fatalf("no seed documents in testdata: %v", err)
	}
	times := map[string]int64{
		"qos-mock-2022-07-06.cose":            1657117192,
		"eu-west-1-2022-11-09.cose":           mustTime("2022-11-09T23:00:00Z").Unix(),
		"eu-west-1-2022-11-09-bad-sig.cose":   mustTime("2022-11-09T23:00:00Z").Unix(),
		"us-east-1-2024-09-07-maxfields.cose": mustTime("2024-09-07T14:40:00Z").Unix(),
		"us-east-1-2024-09-07-debug.cose":     mustTime("2024-09-07T14:40:00Z").Unix(),
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		at := times[filepath.Base(name)]
		f.Add(b, at)
		f.Add(append([]byte{0xd2}, b...), at) // tagged
		f.Add(b[:len(b)-1], at)               // truncated
		f.Add(b, at+86400)                    // a day late
	}
	// A document with a P-521 leaf (the key that makes hf/nitrite panic).
	fx := newFixture(f)
	fx.setLeaf(f, newKey(f, elliptic.P521()), nil)
	f.Add(fx.bytes(f), testNow.Unix())
	fx.sig = make([]byte, 96)
	f.Add(fx.bytes(f), testNow.Unix())
	f.Add([]byte{}, int64(0))
	f.Add([]byte{0x84, 0x40, 0xa0, 0x40, 0x40}, int64(1))
	// Hostile shapes: self-described CBOR, tag 24 around the payload, a
	// payload declaring 2^63 bytes.
	euw, err := os.ReadFile("testdata/eu-west-1-2022-11-09.cose")
	if err != nil {
		f.Fatal(err)
	}
	euwAt := mustTime("2022-11-09T23:00:00Z").Unix()
	f.Add(append([]byte{0xd9, 0xd9, 0xf7}, euw...), euwAt)
	if m, err := decodeSign1(euw); err == nil {
		if b, err := encMode.Marshal([]any{m.protected, map[int]int{}, cbor.Tag{Number: 24, Content: m.payload}, m.signature}); err == nil {
			f.Add(b, euwAt)
		}
	}
	f.Add([]byte{0x84, 0x44, 0xa1, 0x01, 0x38, 0x22, 0xa0, 0x5b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1}, euwAt)

	roots := AWSRoots()
	f.Fuzz(func(t *testing.T, data []byte, at int64) {
		for _, allowDebug := range []bool{false, true} {
			res, err := VerifyDetailed(data, VerifyOptions{
				Roots:      roots,
				Time:       time.Unix(at, 0),
				AllowDebug: allowDebug,
				MaxAge:     time.Duration(uint64(at)%7200) * time.Second,
			})
			if res == nil || len(res.Checks) == 0 {
				t.Fatal("VerifyDetailed returned no result or no checks")
			}
			d := res.Document
			var ce *CheckError
			if (d == nil) == (err == nil) || (res.Chain == nil) == (err == nil) {
				t.Fatalf("VerifyDetailed returned document %v, chain %v and error %v", d != nil, res.Chain != nil, err)
			}
			if last := res.Checks[len(res.Checks)-1]; (last.Status == CheckFailed) != (err != nil) {
				t.Fatalf("last check %+v with error %v", last, err)
			}
			if err != nil {
				if !errors.As(err, &ce) || ce.Kind == nil {
					t.Fatalf("error %v is not a classified *CheckError", err)
				}
				if ce.Check == "decoder" {
					t.Fatalf("panic caught by the recover boundary: %v", err)
				}
			}
			p, perr := ParseUnverified(data)
			if err == nil {
				if perr != nil {
					t.Fatalf("verified but does not parse: %v", perr)
				}
				if !reflect.DeepEqual(d, p) {
					t.Fatal("Verify and ParseUnverified disagree")
				}
			}
			if perr != nil {
				if errors.As(perr, &ce) && ce.Check == "decoder" {
					t.Fatalf("ParseUnverified panicked: %v", perr)
				}
				continue
			}
			enc, err := p.MarshalCBOR()
			if err != nil {
				t.Fatalf("re-encode: %v", err)
			}
			q, err := decodePayload(enc)
			if err != nil {
				t.Fatalf("re-encoded document does not decode: %v", err)
			}
			if !reflect.DeepEqual(p, q) {
				t.Fatal("round trip changed the document")
			}
		}
	})
}
