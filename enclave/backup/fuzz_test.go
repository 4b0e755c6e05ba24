package backup

import (
	"bytes"
	"testing"

	"github.com/sealsign/sealsign/enclave/api"
)

// FuzzParse feeds hostile bytes to the backup decoders: no panic, and
// whatever decodes re-encodes to exactly the input (one encoding per
// value). Seeds: real backups of both algorithms, truncated and flipped.
func FuzzParse(f *testing.F) {
	for _, alg := range algs {
		fx := newFixture(f, alg)
		b := fx.make("a")
		f.Add(b)
		f.Add(b[:len(b)/2])
		flipped := bytes.Clone(b)
		flipped[len(flipped)/3] ^= 0xff
		f.Add(flipped)
		f.Add(fx.share("a"))
	}
	f.Add([]byte{})
	f.Add([]byte{0xa0})
	f.Fuzz(func(t *testing.T, b []byte) {
		file, h, err := Parse(b)
		if err == nil {
			again, err := file.Encode()
			if err != nil || !bytes.Equal(again, b) {
				t.Fatalf("decoded file does not re-encode to its input: %v", err)
			}
			h.Check()
			if _, err := ParseShare(b, h); err == nil {
				t.Fatal("a backup file parsed as a share")
			}
		}
		hdr := &Header{Format: FormatV2, Algorithm: api.AlgEdDSAEd25519}
		ParseShare(b, hdr)
	})
}
