package pkcs11

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseURI(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want URI
		pin  string
	}{
		{
			name: "softhsm with pin-source file uri",
			in:   "pkcs11:token=party-a?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/pin",
			want: URI{Token: "party-a", ModulePath: "/usr/lib/softhsm/libsofthsm2.so", PINSource: "/run/pin"},
		},
		{
			name: "pin-value",
			in:   "pkcs11:token=party-a?module-path=/m.so&pin-value=1234",
			want: URI{Token: "party-a", ModulePath: "/m.so"},
			pin:  "1234",
		},
		{
			name: "all path attributes",
			in:   "pkcs11:token=t;serial=abc123;slot-id=42;object=seal-key?pin-value=x",
			want: URI{Token: "t", Serial: "abc123", SlotID: 42, HasSlotID: true, Object: "seal-key"},
			pin:  "x",
		},
		{
			name: "module-path in the path part, like smallstep",
			in:   "pkcs11:module-path=/usr/lib/softhsm/libsofthsm2.so;token=smallstep?pin-value=password",
			want: URI{Token: "smallstep", ModulePath: "/usr/lib/softhsm/libsofthsm2.so"},
			pin:  "password",
		},
		{
			name: "percent-decoding, plus is literal",
			in:   "pkcs11:token=My%20Token+1%3B?module-path=/opt/my%20hsm/lib.so&pin-value=a%26b+c",
			want: URI{Token: "My Token+1;", ModulePath: "/opt/my hsm/lib.so"},
			pin:  "a&b+c",
		},
		{
			name: "pin-source as plain path",
			in:   "pkcs11:token=t?pin-source=/etc/pin",
			want: URI{Token: "t", PINSource: "/etc/pin"},
		},
		{
			name: "pin-source as file:/// uri",
			in:   "pkcs11:token=t?pin-source=file:///etc/pin",
			want: URI{Token: "t", PINSource: "/etc/pin"},
		},
		{
			name: "scheme is case-insensitive, attribute names too",
			in:   "PKCS11:TOKEN=t",
			want: URI{Token: "t"},
		},
		{
			name: "slot-id only",
			in:   "pkcs11:slot-id=0",
			want: URI{HasSlotID: true},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, err := ParseURI(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if u.pinValue != tc.pin {
				t.Errorf("pin-value: got %q, want %q", u.pinValue, tc.pin)
			}
			got := *u
			got.pinValue = ""
			if got != tc.want {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
			// String is RFC form and parses back to the same URI.
			again, err := ParseURI(u.String())
			if err != nil {
				t.Fatalf("re-parse %q: %v", u.String(), err)
			}
			again.pinValue = ""
			if *again != tc.want {
				t.Errorf("round trip via %q: got %+v", u.String(), *again)
			}
		})
	}
}

func TestParseURIErrors(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"wrong scheme", "pkcs12:token=a", `pkcs11: uri must start with "pkcs11:"`},
		{"no token selector", "pkcs11:object=k?module-path=/m.so&pin-value=1", "pkcs11: uri selects no token: add token=<label>"},
		{"empty", "pkcs11:", "pkcs11: uri selects no token"},
		{"both pins", "pkcs11:token=a?pin-value=1234&pin-source=/p", "pkcs11: uri has both pin-value and pin-source; give one"},
		{"duplicate", "pkcs11:token=a;token=b", `pkcs11: uri attribute "token" appears twice`},
		{"duplicate module-path across parts", "pkcs11:token=a;module-path=/a?module-path=/b", `pkcs11: uri attribute "module-path" appears twice`},
		{"empty value", "pkcs11:token=", `pkcs11: uri attribute "token" is empty`},
		{"not name=value", "pkcs11:token", `pkcs11: uri path attribute "token" is not name=value`},
		{"bad escape", "pkcs11:token=a%zz", `pkcs11: uri attribute "token" has an invalid percent-encoding`},
		{"slot-id not decimal", "pkcs11:slot-id=0x10", `pkcs11: uri attribute slot-id must be a decimal number, got "0x10"`},
		{"unsupported attribute", "pkcs11:token=a;id=%01", `pkcs11: uri attribute "id" is not supported`},
		{"token in query", "pkcs11:object=k?token=a", `pkcs11: uri attribute "token" belongs in the path part`},
		{"pin in path", "pkcs11:token=a;pin-value=1234", `pkcs11: uri attribute "pin-value" belongs in the query part`},
		{"remote pin-source", "pkcs11:token=a?pin-source=file://host/p", `names a remote host`},
		{"relative file: pin-source", "pkcs11:token=a?pin-source=file:p", `a file: URI needs an absolute path`},
		{"other pin-source scheme", "pkcs11:token=a?pin-source=https://x/p", `only file: and plain paths are supported`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseURI(tc.in)
			if !errors.Is(err, ErrInvalidURI) {
				t.Fatalf("got %v, want ErrInvalidURI", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

func TestURINeverPrintsPIN(t *testing.T) {
	const pin = "s3cret-PIN-value"
	u, err := ParseURI("pkcs11:token=a?module-path=/m.so&pin-value=" + pin)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, out string }{
		{"String", u.String()},
		{"%v pointer", fmt.Sprintf("%v", u)},
		{"%v value", fmt.Sprintf("%v", *u)},
		{"%+v", fmt.Sprintf("%+v", *u)},
		{"%#v", fmt.Sprintf("%#v", *u)},
		{"%s", fmt.Sprintf("%s", u)}, //lint:ignore S1025 the %s verb itself is under test
	} {
		t.Run(tc.name, func(t *testing.T) {
			if strings.Contains(tc.out, pin) {
				t.Fatalf("%s leaks the PIN: %s", tc.name, tc.out)
			}
			if !strings.Contains(tc.out, "pin-value=REDACTED") {
				t.Fatalf("%s does not say the PIN is redacted: %s", tc.name, tc.out)
			}
		})
	}
	if _, err := ParseURI("pkcs11:token=a?pin-value" + pin); err == nil || strings.Contains(err.Error(), pin) {
		t.Fatalf("malformed pin-value attribute: error %v", err)
	}
}

func TestURIPIN(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name    string
		uri     string
		want    string
		wantErr string
	}{
		{"pin-value", "pkcs11:token=a?pin-value=1234", "1234", ""},
		{"file, trailing newline trimmed", "pkcs11:token=a?pin-source=file:" + write("nl", "1234\n"), "1234", ""},
		{"file, CRLF trimmed", "pkcs11:token=a?pin-source=" + write("crlf", "1234\r\n"), "1234", ""},
		{"file, no newline", "pkcs11:token=a?pin-source=" + write("plain", "12 34"), "12 34", ""},
		{"file, only one newline trimmed", "pkcs11:token=a?pin-source=" + write("two", "1234\n\n"), "1234\n", ""},
		{"empty file", "pkcs11:token=a?pin-source=" + write("empty", "\n"), "", "is empty"},
		{"missing file", "pkcs11:token=a?pin-source=" + filepath.Join(dir, "nope"), "", "no such file"},
		{"huge file", "pkcs11:token=a?pin-source=" + write("huge", strings.Repeat("x", maxPINFile+1)), "", "larger than 4096 bytes"},
		{"no pin", "pkcs11:token=a", "", "uri has no pin-value or pin-source"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, err := ParseURI(tc.uri)
			if err != nil {
				t.Fatal(err)
			}
			pin, err := u.PIN()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, ErrInvalidURI) {
					t.Fatalf("got %q, %v; want error containing %q", pin, err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "xxxx") {
					t.Fatalf("error quotes the pin file: %v", err)
				}
				return
			}
			if err != nil || pin != tc.want {
				t.Fatalf("got %q, %v; want %q", pin, err, tc.want)
			}
		})
	}
}
