package request

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/sealsign/sealsign/governance/canon"
	"github.com/sealsign/sealsign/governance/keys"
)

func TestParsePath(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     Path
		err      string // substring; "" for success
	}{
		{"master", "m", Path{}, ""},
		{"one level", "m/0", Path{0}, ""},
		{"three levels", "m/1/2/3", Path{1, 2, 3}, ""},
		{"largest index", "m/2147483647", Path{HardenedIndex - 1}, ""},
		{"sixteen levels", "m" + strings.Repeat("/7", 16), slices.Repeat(Path{7}, 16), ""},
		{"empty", "", nil, `want "m"`},
		{"no m", "0/1", nil, `want "m"`},
		{"capital M", "M/0", nil, `want "m"`},
		{"trailing slash", "m/0/", nil, `level 2 is ""`},
		{"bare slash", "m/", nil, `level 1 is ""`},
		{"double slash", "m//1", nil, `level 1 is ""`},
		{"apostrophe hardened", "m/44'/0", nil, "hardened derivation needs the private key"},
		{"h hardened", "m/0/1h", nil, "level 2 (\"1h\") is a hardened index"},
		{"H hardened", "m/0H", nil, "hardened"},
		{"2^31", "m/2147483648", nil, "hardened"},
		{"overflow", "m/99999999999999999999", nil, "hardened"},
		{"seventeen levels", "m" + strings.Repeat("/7", 17), nil, "17 levels, limit 16"},
		{"too long", "m/" + strings.Repeat("1", 300), nil, "characters, limit"},
		{"leading zero", "m/01", nil, "no leading zeros"},
		{"sign", "m/+1", nil, "want a decimal index"},
		{"negative", "m/-1", nil, "want a decimal index"},
		{"space", "m/ 1", nil, "want a decimal index"},
		{"hex", "m/0x10", nil, "want a decimal index"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParsePath(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, ErrPath) {
					t.Fatalf("ParsePath(%q) = %v, %v; want an ErrPath error containing %q", tc.in, got, err, tc.err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) || got == nil {
				t.Fatalf("ParsePath(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
			if s := got.String(); s != tc.in {
				t.Errorf("String() = %q, want %q", s, tc.in)
			}
			if err := got.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
		})
	}
}

func TestPathValidate(t *testing.T) {
	if err := (Path{1, HardenedIndex}).Validate(); err == nil || !strings.Contains(err.Error(), "level 2") {
		t.Errorf("hardened index: %v", err)
	}
	if err := slices.Repeat(Path{0}, MaxPathDepth+1).Validate(); err == nil {
		t.Error("17 levels accepted")
	}
	if err := (Path(nil)).Validate(); err != nil {
		t.Errorf("empty path: %v", err)
	}
}

// TestRequestPath: the path round-trips through a signed request; a request
// without one encodes exactly as before the field existed (no key 11); a
// hardened or over-deep path is refused by New and by Verify.
func TestRequestPath(t *testing.T) {
	r := base()
	r.Path = Path{0, 5}
	signed, err := New(r, edPriv)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Verify(signed, clients(t), cluster, now, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Path, Path{0, 5}) || got.Path.String() != "m/0/5" {
		t.Fatalf("path %v after round trip, want m/0/5", got.Path)
	}

	plain := base()
	withEmpty := base()
	withEmpty.Path = Path{}
	a, _ := canon.Marshal(&plain)
	b, _ := canon.Marshal(&withEmpty)
	if string(a) != string(b) {
		t.Errorf("an empty path changes the encoding:\n%x\n%x", a, b)
	}
	withPath, _ := canon.Marshal(&r)
	if string(withPath) == string(a) {
		t.Error("the path is not in the encoding")
	}
	// The map header counts the fields: 9 without a path, 10 with one.
	if a[0] != 0xa9 || withPath[0] != 0xaa {
		t.Errorf("map headers %#x and %#x, want 0xa9 (9 fields) and 0xaa (10)", a[0], withPath[0])
	}

	for _, bad := range []Path{{HardenedIndex}, slices.Repeat(Path{1}, MaxPathDepth+1)} {
		r := base()
		r.Path = bad
		if _, err := New(r, edPriv); !errors.Is(err, ErrMalformed) || !errors.Is(err, ErrPath) {
			t.Errorf("New with path %v: %v; want ErrMalformed and ErrPath", bad, err)
		}
		// Authentic but invalid: Verify refuses it too.
		if _, err := Verify(signRaw(t, r, edPriv, Domain), clients(t), cluster, now, 0); !errors.Is(err, ErrMalformed) {
			t.Errorf("Verify with path %v: %v; want ErrMalformed", bad, err)
		}
	}
	// A path that is not an array of unsigned integers is not a request.
	body, _ := canon.Marshal(&plain)
	for _, field := range [][]byte{
		{0x0b, 0x81, 0x20},       // 11: [-1]
		{0x0b, 0x61, 0x30},       // 11: "0"
		{0x0b, 0x81, 0xf9, 0, 0}, // 11: [0.0]
	} {
		bad := append([]byte{0xaa}, body[1:]...)
		bad = append(bad, field...) // key 11 sorts last in canonical order
		sig, err := keys.Sign(edPriv, Domain, bad)
		if err != nil {
			t.Fatal(err)
		}
		signed, _ := canon.Marshal(&Signed{Request: bad, Signature: sig})
		if _, err := Verify(signed, clients(t), cluster, now, 0); !errors.Is(err, ErrMalformed) {
			t.Errorf("path field %x: %v; want ErrMalformed", field, err)
		}
	}
}

func FuzzParsePath(f *testing.F) {
	for _, s := range []string{"m", "m/0", "m/1/2/3", "m/2147483647", "m/2147483648", "m/0'", "m/0h", "m//", "m/01", "", "m/" + strings.Repeat("9/", 16)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePath(s)
		if err != nil {
			if p != nil {
				t.Fatal("path returned with an error")
			}
			if !errors.Is(err, ErrPath) {
				t.Fatalf("error %v is not ErrPath", err)
			}
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("accepted %q, which does not validate: %v", s, err)
		}
		if p.String() != s {
			t.Fatalf("%q parses to %v, which prints as %q", s, p, p.String())
		}
	})
}
