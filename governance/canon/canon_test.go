package canon

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
)

type sample struct {
	A uint64            `cbor:"1,keyasint"`
	B string            `cbor:"2,keyasint"`
	C []byte            `cbor:"3,keyasint,omitempty"`
	D [4]byte           `cbor:"4,keyasint"`
	M map[string]uint64 `cbor:"5,keyasint,omitempty"`
}

func hexb(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRoundTrip(t *testing.T) {
	in := sample{A: 500, B: "x", C: []byte{1}, D: [4]byte{1, 2, 3, 4}, M: map[string]uint64{"bb": 2, "a": 1}}
	b, err := Marshal(&in)
	if err != nil {
		t.Fatal(err)
	}
	// Hand-assembled: map(5); 1: uint16 500; 2: "x"; 3: h'01'; 4: h'01020304';
	// 5: {"a": 1, "bb": 2} with keys in length-first bytewise order.
	want := "a5 01 1901f4 02 6178 03 4101 04 4401020304 05 a2 6161 01 626262 02"
	if !bytes.Equal(b, hexb(t, want)) {
		t.Fatalf("Marshal = %x, want %s", b, want)
	}
	var out sample
	if err := Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if out.A != 500 || out.B != "x" || out.D != in.D || out.M["bb"] != 2 {
		t.Fatalf("round trip: %+v", out)
	}
}

func TestUnmarshalRejects(t *testing.T) {
	tests := []struct {
		name string
		data string
		msg  string
	}{
		{"keys out of order", "a2 02 6178 01 01", "not core deterministic"},
		{"non-minimal integer", "a2 01 1801 02 6178", "not core deterministic"},
		{"non-minimal length", "a2 01 01 02 780178", "not core deterministic"},
		{"non-minimal map header", "b90002 01 01 02 6178", "not core deterministic"},
		{"duplicate struct key", "a3 01 01 01 02 02 6178", "duplicate map key"},
		{"duplicate inner map key", "a3 01 01 02 6178 05 a2 6161 01 6161 02", "duplicate map key"},
		{"unknown field", "a3 01 01 02 6178 18 63 01", "unknown field"},
		{"indefinite map", "bf 01 01 02 6178 ff", "indefinite-length"},
		{"indefinite bytes", "a3 01 01 02 6178 03 5f 4101 ff", "indefinite-length"},
		{"tag", "a2 01 c1 01 02 6178", "tag"},
		{"invalid utf-8", "a2 01 01 02 61ff", "UTF-8"},
		{"array length mismatch", "a3 01 01 02 6178 04 43010203", "not core deterministic"},
		{"trailing bytes", "a2 01 01 02 6178 00", "extraneous data"},
		{"truncated", "a2 01 01 02 62 78", "unexpected EOF"},
		{"wrong type", "a2 01 6178 02 6178", "cannot unmarshal"},
		{"empty", "", "EOF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s sample
			err := Unmarshal(hexb(t, tt.data), &s)
			if err == nil {
				t.Fatalf("accepted: %+v", s)
			}
			if !strings.HasPrefix(err.Error(), "canon: ") || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("error %q, want one containing %q", err, tt.msg)
			}
		})
	}
}

func TestUnmarshalLimits(t *testing.T) {
	var v any
	if err := Unmarshal(make([]byte, MaxSize+1), &v); err == nil || !strings.Contains(err.Error(), "exceeds the 1048576-byte limit") {
		t.Fatalf("oversize: %v", err)
	}
	deep := append(bytes.Repeat([]byte{0x81}, maxNesting+1), 0x00)
	if err := Unmarshal(deep, &v); err == nil || !strings.Contains(err.Error(), "nested") {
		t.Fatalf("nesting %d: %v", maxNesting+1, err)
	}
	ok := append(bytes.Repeat([]byte{0x81}, maxNesting-1), 0x00)
	if err := Unmarshal(ok, &v); err != nil {
		t.Fatalf("nesting %d refused: %v", maxNesting-1, err)
	}
	long := []byte{0x9a, 0x00, 0x01, 0x00, 0x00} // array of 65536: over maxArrayElements
	if err := Unmarshal(long, &v); err == nil {
		t.Fatal("array over the element limit accepted")
	}
}

func TestDigest(t *testing.T) {
	got := Digest("sealsign/v1/test", []byte("data"))
	want := sha256.Sum256([]byte("sealsign/v1/test\x00data"))
	if got != want {
		t.Fatalf("Digest = %x, want %x", got, want)
	}
	// Known answer, computed independently with Python:
	// hashlib.sha256(b"sealsign/v1/test\x00data").hexdigest()
	if hex.EncodeToString(got[:]) != wantDigestVector {
		t.Fatalf("Digest = %x, want %s", got, wantDigestVector)
	}
	if Digest("a", []byte("bc")) == Digest("ab", []byte("c")) {
		t.Fatal("domain and data not separated")
	}
}

const wantDigestVector = "48cecab3780bdd2b0dd69aa528f0d1b82fd28596cbb51a925d40a3a9be1bf55d"
