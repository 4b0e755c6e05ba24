package eif

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
)

// Metadata is the JSON of the metadata section (version 4), the fields
// nitro-cli writes (IMGFMT src/defs/mod.rs EifIdentityInfo and
// EifBuildInfo; notes §1.6). No PCR covers it and the hypervisor only
// checks that it exists: it is informational, never evidence.
type Metadata struct {
	ImageName    string
	ImageVersion string
	// BuildMetadata
	BuildTime        string // RFC 3339; fixed for reproducible builds
	BuildTool        string
	BuildToolVersion string
	OperatingSystem  string
	KernelVersion    string
	// DockerInfo and CustomMetadata are arbitrary JSON; nil means null.
	DockerInfo     json.RawMessage
	CustomMetadata json.RawMessage
}

// metadataJSON mirrors the serde layout: struct fields in declaration order.
type metadataJSON struct {
	ImageName      string          `json:"ImageName"`
	ImageVersion   string          `json:"ImageVersion"`
	BuildMetadata  buildInfoJSON   `json:"BuildMetadata"`
	DockerInfo     json.RawMessage `json:"DockerInfo"`
	CustomMetadata json.RawMessage `json:"CustomMetadata"`
}

type buildInfoJSON struct {
	BuildTime        string `json:"BuildTime"`
	BuildTool        string `json:"BuildTool"`
	BuildToolVersion string `json:"BuildToolVersion"`
	OperatingSystem  string `json:"OperatingSystem"`
	KernelVersion    string `json:"KernelVersion"`
}

// MarshalJSON encodes m as nitro-cli does (serde_json::to_vec): compact,
// fields in declaration order, no HTML escaping. DockerInfo and
// CustomMetadata are re-encoded with sorted object keys, as a
// serde_json::Value without preserve_order prints them, so the bytes
// depend only on the JSON values.
func (m *Metadata) MarshalJSON() ([]byte, error) {
	docker, err := canonicalJSON(m.DockerInfo, "DockerInfo")
	if err != nil {
		return nil, err
	}
	custom, err := canonicalJSON(m.CustomMetadata, "CustomMetadata")
	if err != nil {
		return nil, err
	}
	return marshalNoEscape(metadataJSON{
		ImageName:    m.ImageName,
		ImageVersion: m.ImageVersion,
		BuildMetadata: buildInfoJSON{
			BuildTime:        m.BuildTime,
			BuildTool:        m.BuildTool,
			BuildToolVersion: m.BuildToolVersion,
			OperatingSystem:  m.OperatingSystem,
			KernelVersion:    m.KernelVersion,
		},
		DockerInfo:     docker,
		CustomMetadata: custom,
	})
}

func marshalNoEscape(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("eif: json: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

func canonicalJSON(raw json.RawMessage, field string) (json.RawMessage, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return json.RawMessage("null"), nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("eif: metadata %s is not valid JSON: %w", field, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("eif: metadata %s holds more than one JSON value", field)
	}
	return marshalNoEscape(v)
}

// ParseMetadata decodes a metadata section. Like nitro-cli's reader it
// requires ImageName, ImageVersion and the five BuildMetadata strings;
// DockerInfo and CustomMetadata may be any JSON value or absent.
func ParseMetadata(b []byte) (*Metadata, error) {
	var in struct {
		ImageName     *string `json:"ImageName"`
		ImageVersion  *string `json:"ImageVersion"`
		BuildMetadata *struct {
			BuildTime        *string `json:"BuildTime"`
			BuildTool        *string `json:"BuildTool"`
			BuildToolVersion *string `json:"BuildToolVersion"`
			OperatingSystem  *string `json:"OperatingSystem"`
			KernelVersion    *string `json:"KernelVersion"`
		} `json:"BuildMetadata"`
		DockerInfo     json.RawMessage `json:"DockerInfo"`
		CustomMetadata json.RawMessage `json:"CustomMetadata"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&in); err != nil {
		return nil, fmt.Errorf("eif: metadata section is not the JSON object nitro-cli writes: %w", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("eif: metadata section has data after its JSON object")
	}
	missing := func(name string) error {
		return fmt.Errorf("eif: metadata section: missing string field %q", name)
	}
	switch {
	case in.ImageName == nil:
		return nil, missing("ImageName")
	case in.ImageVersion == nil:
		return nil, missing("ImageVersion")
	case in.BuildMetadata == nil:
		return nil, fmt.Errorf("eif: metadata section: missing object %q", "BuildMetadata")
	}
	bm := in.BuildMetadata
	fields := []struct {
		name string
		v    *string
	}{{"BuildTime", bm.BuildTime}, {"BuildTool", bm.BuildTool}, {"BuildToolVersion", bm.BuildToolVersion},
		{"OperatingSystem", bm.OperatingSystem}, {"KernelVersion", bm.KernelVersion}}
	for _, f := range fields {
		if f.v == nil {
			return nil, missing("BuildMetadata." + f.name)
		}
	}
	md := &Metadata{
		ImageName:        *in.ImageName,
		ImageVersion:     *in.ImageVersion,
		BuildTime:        *bm.BuildTime,
		BuildTool:        *bm.BuildTool,
		BuildToolVersion: *bm.BuildToolVersion,
		OperatingSystem:  *bm.OperatingSystem,
		KernelVersion:    *bm.KernelVersion,
	}
	if !isNull(in.DockerInfo) {
		md.DockerInfo = in.DockerInfo
	}
	if !isNull(in.CustomMetadata) {
		md.CustomMetadata = in.CustomMetadata
	}
	return md, nil
}

func isNull(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || string(t) == "null"
}

// ParseKernelConfig reads OperatingSystem and KernelVersion from a kernel
// .config (the bzImage.config blob) the way nitro-cli does: line 3, e.g.
// "# Linux/x86_64 4.14.256-209.484.amzn2.x86_64 Kernel Configuration",
// split at ' ', '/' and '-', words 1 and 3 (CLI src/lib.rs).
func ParseKernelConfig(r io.Reader) (osName, kernelVersion string, err error) {
	sc := bufio.NewScanner(io.LimitReader(r, 1<<20))
	var line string
	for n := 0; n < 3; n++ {
		if !sc.Scan() {
			if err := sc.Err(); err != nil {
				return "", "", fmt.Errorf("eif: kernel config: %w", err)
			}
			return "", "", fmt.Errorf("eif: kernel config has %d lines, want the version on line 3", n)
		}
		line = sc.Text()
	}
	parts := splitAny(line, " /-")
	if len(parts) < 4 || parts[0] != "#" {
		return "", "", fmt.Errorf("eif: kernel config line 3 is %q, want \"# Linux/<arch> <version> Kernel Configuration\"", line)
	}
	return parts[1], parts[3], nil
}

// splitAny splits at every separator byte without merging adjacent ones,
// like Rust's str::split with a char slice.
func splitAny(s, seps string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(seps, s[i]) >= 0 {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// EpochBuildTime is the BuildTime of a build with no other time given:
// the Unix epoch, so that two builds of the same inputs are byte-identical.
const EpochBuildTime = "1970-01-01T00:00:00+00:00"

// FormatBuildTime formats t as chrono's to_rfc3339 does for UTC:
// "2025-10-05T13:12:27.410516995+00:00", without the fraction when it is 0.
func FormatBuildTime(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.999999999-07:00")
}
