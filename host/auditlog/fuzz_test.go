package auditlog_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"testing"

	"github.com/sealsign/sealsign/enclave/audit"
	"github.com/sealsign/sealsign/host/auditlog"
	"github.com/sealsign/sealsign/host/auditlog/auditlogtest"
)

// fuzzSeeds are valid and broken audit files: a real log (boot entry with
// a dev NSM attestation, request, verdict, session, result), the log cut
// and reordered, and framing a canonical decoder must refuse.
func fuzzSeeds(f *testing.F) (*auditlogtest.Cluster, [][]byte) {
	c := auditlogtest.New(f, "a", "b")
	c.Sign("req-1", "k", []string{"a", "b"}, auditlogtest.SignOptions{})
	a := c.Party("a").Entries
	raw := bytes.Join(a, nil)
	host, _ := json.Marshal(map[string]any{"party_id": "a", "entries": a})
	seeds := [][]byte{
		raw,
		raw[:len(raw)-7],
		bytes.Join([][]byte{a[0], a[2], a[1]}, nil),
		a[1],
		host,
		[]byte(`{"raw":"oQFA"}` + "\n" + `{"raw":"!"}`),
		{0x9f, 0x01, 0xff},                                     // indefinite-length array
		bytes.Repeat([]byte{0x81}, 40),                         // nesting deeper than allowed
		{0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, // a byte string of 2^64-1 bytes
		{0xbb, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, // a map of 2^63-1 pairs
		{0x1c},
		{},
	}
	for _, id := range []string{"a", "b"} { // a real demo run's logs (testdata/demo)
		b, err := os.ReadFile("testdata/demo/" + id + ".cbor-seq")
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, b, b[:len(b)/2])
	}
	return c, seeds
}

// FuzzReadRaw: the raw-file decoder never panics, yields items that are
// exactly consecutive bytes of the input within the size limit, reports
// framing faults as ErrRawFormat, and what it yields round-trips through
// WriteRaw. (The entries' verification is fuzzed in enclave/audit.)
func FuzzReadRaw(f *testing.F) {
	_, seeds := fuzzSeeds(f)
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var items [][]byte
		var rerr error
		for e, err := range auditlog.ReadRaw(bytes.NewReader(data)) {
			if err != nil {
				rerr = err
				break
			}
			if len(e) == 0 || len(e) > audit.MaxEntrySize {
				t.Fatalf("item of %d bytes", len(e))
			}
			items = append(items, e)
		}
		joined := bytes.Join(items, nil)
		if !bytes.HasPrefix(data, joined) {
			t.Fatal("items are not a prefix of the input")
		}
		if rerr == nil && len(joined) != len(data) {
			t.Fatalf("no error, but %d of %d bytes consumed", len(joined), len(data))
		}
		if rerr != nil && !errors.Is(rerr, auditlog.ErrRawFormat) {
			t.Fatalf("error %v does not wrap ErrRawFormat", rerr)
		}
		var out bytes.Buffer
		if err := auditlog.WriteRaw(&out, items); err != nil || !bytes.Equal(out.Bytes(), joined) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

// FuzzReadFile: the detecting decoder (raw, host answer, JSON Lines) never
// panics and its errors wrap ErrRawFormat.
func FuzzReadFile(f *testing.F) {
	_, seeds := fuzzSeeds(f)
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for e, err := range auditlog.ReadFile(bytes.NewReader(data)) {
			if err != nil {
				if !errors.Is(err, auditlog.ErrRawFormat) {
					t.Fatalf("error %v does not wrap ErrRawFormat", err)
				}
				return
			}
			if e == nil {
				t.Fatal("nil entry without an error")
			}
		}
	})
}
