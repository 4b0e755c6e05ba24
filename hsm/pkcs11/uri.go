package pkcs11

import (
	"bytes"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// URI is a parsed RFC 7512 PKCS#11 URI, limited to the attributes sealsign
// uses:
//
//	pkcs11:token=party-a;object=seal?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/sealsign/pin
//
// Path attributes (separated by ';'): token (token label), serial, slot-id
// (decimal), object (the sealing key's CKA_LABEL). Query attributes
// (separated by '&'): module-path, pin-source (file:/abs/path or a plain
// path) and pin-value. module-path is also accepted in the path part, as
// smallstep does; String emits the RFC form. Values are percent-decoded;
// '+' is a literal plus, not a space.
//
// The PIN is kept in an unexported field: String, GoString and %v print
// pin-value as REDACTED, so a URI can be logged.
type URI struct {
	Token      string // token label
	Serial     string // token serial number
	SlotID     uint   // slot id, meaningful only when HasSlotID
	HasSlotID  bool
	Object     string // key label (CKA_LABEL)
	ModulePath string // PKCS#11 module (.so) to load
	PINSource  string // file holding the user PIN, as a plain path

	pinValue string
}

// ParseURI parses s. It checks the syntax and that the URI selects a token;
// Open checks what needs the module (module-path, PIN). Errors wrap
// ErrInvalidURI and never contain the PIN.
func ParseURI(s string) (*URI, error) {
	const scheme = "pkcs11:"
	if len(s) < len(scheme) || !strings.EqualFold(s[:len(scheme)], scheme) {
		return nil, uriErrorf("uri must start with %q", scheme)
	}
	rest := s[len(scheme):]
	path, query, _ := strings.Cut(rest, "?")

	u := &URI{}
	seen := map[string]bool{}
	set := func(part, name, raw string) error {
		if seen[name] {
			return uriErrorf("uri attribute %q appears twice", name)
		}
		seen[name] = true
		v, err := url.PathUnescape(raw)
		if err != nil {
			return uriErrorf("uri attribute %q has an invalid percent-encoding", name)
		}
		if v == "" {
			return uriErrorf("uri attribute %q is empty", name)
		}
		switch {
		case name == "module-path":
			u.ModulePath = v
		case part == "path" && name == "token":
			u.Token = v
		case part == "path" && name == "serial":
			u.Serial = v
		case part == "path" && name == "object":
			u.Object = v
		case part == "path" && name == "slot-id":
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil || uint64(uint(n)) != n {
				return uriErrorf("uri attribute slot-id must be a decimal number, got %q", v)
			}
			u.SlotID, u.HasSlotID = uint(n), true
		case part == "query" && name == "pin-value":
			u.pinValue = v
		case part == "query" && name == "pin-source":
			p, err := pinSourcePath(v)
			if err != nil {
				return err
			}
			u.PINSource = p
		case isPathAttr(name):
			return uriErrorf("uri attribute %q belongs in the path part (before '?', separated by ';')", name)
		case isQueryAttr(name):
			return uriErrorf("uri attribute %q belongs in the query part (after '?', separated by '&')", name)
		default:
			return uriErrorf("uri attribute %q is not supported; use token, serial, slot-id, object in the path and module-path, pin-source, pin-value in the query", name)
		}
		return nil
	}
	for _, p := range []struct {
		part  string
		attrs []string
	}{{"path", strings.Split(path, ";")}, {"query", strings.Split(query, "&")}} {
		part := p.part
		for _, a := range p.attrs {
			if a == "" {
				continue
			}
			name, raw, ok := strings.Cut(a, "=")
			if !ok || name == "" {
				return nil, uriErrorf("uri %s attribute %q is not name=value", part, redactAttr(a))
			}
			if err := set(part, strings.ToLower(name), raw); err != nil {
				return nil, err
			}
		}
	}
	if u.Token == "" && u.Serial == "" && !u.HasSlotID {
		return nil, uriErrorf("uri selects no token: add token=<label> to the path (serial= and slot-id= also work, but SoftHSM slot ids change)")
	}
	if u.pinValue != "" && u.PINSource != "" {
		return nil, uriErrorf("uri has both pin-value and pin-source; give one")
	}
	return u, nil
}

func isPathAttr(name string) bool {
	switch name {
	case "token", "serial", "slot-id", "object":
		return true
	}
	return false
}

func isQueryAttr(name string) bool { return name == "pin-value" || name == "pin-source" }

// redactAttr keeps a malformed attribute out of errors if it could be a PIN.
func redactAttr(a string) string {
	if strings.HasPrefix(strings.ToLower(a), "pin-value") {
		return "pin-value…"
	}
	return a
}

// pinSourcePath accepts "file:/abs", "file:///abs" and a plain path.
func pinSourcePath(v string) (string, error) {
	if rest, ok := strings.CutPrefix(v, "file:"); ok {
		if strings.HasPrefix(rest, "//") {
			if !strings.HasPrefix(rest, "///") {
				return "", uriErrorf("pin-source %q names a remote host; only local files are supported", v)
			}
			rest = rest[2:]
		}
		if !filepath.IsAbs(rest) {
			return "", uriErrorf("pin-source %q: a file: URI needs an absolute path", v)
		}
		return rest, nil
	}
	if i := strings.IndexAny(v, ":/"); i > 0 && v[i] == ':' {
		return "", uriErrorf("pin-source %q: only file: and plain paths are supported", v)
	}
	return v, nil
}

// maxPINFile bounds what PIN reads from a pin-source.
const maxPINFile = 4096

// PIN returns the user PIN: pin-value, or the contents of pin-source with one
// trailing newline removed. Errors name the file, never its contents.
func (u *URI) PIN() (string, error) {
	if u.pinValue != "" {
		return u.pinValue, nil
	}
	if u.PINSource == "" {
		return "", uriErrorf("uri has no pin-value or pin-source; a user PIN is needed to log in (prefer pin-source=file:/path)")
	}
	f, err := os.Open(u.PINSource)
	if err != nil {
		return "", uriErrorf("pin-source: %v", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPINFile+1))
	if err != nil {
		return "", uriErrorf("pin-source: read %q: %v", u.PINSource, err)
	}
	if len(b) > maxPINFile {
		return "", uriErrorf("pin-source %q is larger than %d bytes; it should hold only the PIN", u.PINSource, maxPINFile)
	}
	b = bytes.TrimSuffix(b, []byte("\n"))
	b = bytes.TrimSuffix(b, []byte("\r"))
	if len(b) == 0 {
		return "", uriErrorf("pin-source %q is empty", u.PINSource)
	}
	return string(b), nil
}

// String returns the URI in RFC 7512 form with pin-value replaced by
// REDACTED. It is for display; a redacted URI does not log in.
func (u URI) String() string {
	var path []string
	add := func(list *[]string, name, v string, esc func(string) string) {
		if v != "" {
			*list = append(*list, name+"="+esc(v))
		}
	}
	add(&path, "token", u.Token, escapePath)
	add(&path, "serial", u.Serial, escapePath)
	if u.HasSlotID {
		path = append(path, "slot-id="+strconv.FormatUint(uint64(u.SlotID), 10))
	}
	add(&path, "object", u.Object, escapePath)
	var query []string
	add(&query, "module-path", u.ModulePath, escapeQuery)
	if u.PINSource != "" {
		prefix := ""
		if filepath.IsAbs(u.PINSource) {
			prefix = "file:"
		}
		query = append(query, "pin-source="+prefix+escapeQuery(u.PINSource))
	}
	if u.pinValue != "" {
		query = append(query, "pin-value=REDACTED")
	}
	s := "pkcs11:" + strings.Join(path, ";")
	if len(query) > 0 {
		s += "?" + strings.Join(query, "&")
	}
	return s
}

// GoString keeps %#v from printing the PIN.
func (u URI) GoString() string { return fmt.Sprintf("pkcs11.URI(%q)", u.String()) }

// escapePath and escapeQuery percent-encode everything outside RFC 7512's
// pk11-pchar and pk11-qchar sets respectively.
func escapePath(s string) string  { return escape(s, "-._~:[]@!$'()*+,=&") }
func escapeQuery(s string) string { return escape(s, "-._~:[]@!$'()*+,=/?|") }

func escape(s, allowed string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte(allowed, c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}
