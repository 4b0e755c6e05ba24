package eif

import (
	"strings"
	"testing"
	"time"
)

func TestMetadataJSON(t *testing.T) {
	md := miniSpec().Metadata
	got, err := md.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != miniMetadata {
		t.Fatalf("metadata JSON\n %s\nwant %s", got, miniMetadata)
	}
	back, err := ParseMetadata(got)
	if err != nil {
		t.Fatal(err)
	}
	if back.ImageName != md.ImageName || back.KernelVersion != md.KernelVersion || back.DockerInfo != nil || back.CustomMetadata != nil {
		t.Fatalf("round trip %+v", back)
	}
}

func TestParseMetadataRejects(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`[]`, "not the JSON object nitro-cli writes"},
		{`{} {}`, "data after its JSON object"},
		{`{"ImageVersion":"1","BuildMetadata":{}}`, `missing string field "ImageName"`},
		{`{"ImageName":"a","ImageVersion":"1"}`, `missing object "BuildMetadata"`},
		{`{"ImageName":1}`, "not the JSON object"},
	} {
		_, err := ParseMetadata([]byte(tc.in))
		wantErr(t, err, tc.want)
	}
}

func TestParseKernelConfig(t *testing.T) {
	cfg := "#\n# Automatically generated file; DO NOT EDIT.\n# Linux/x86_64 4.14.256-209.484.amzn2.x86_64 Kernel Configuration\n#\nCONFIG_64BIT=y\n"
	osName, version, err := ParseKernelConfig(strings.NewReader(cfg))
	if err != nil || osName != "Linux" || version != "4.14.256" {
		t.Fatalf("got %q %q %v, want Linux 4.14.256", osName, version, err)
	}
	_, _, err = ParseKernelConfig(strings.NewReader("#\n#\n"))
	wantErr(t, err, "kernel config has 2 lines, want the version on line 3")
	_, _, err = ParseKernelConfig(strings.NewReader("#\n#\nCONFIG_X=y\n"))
	wantErr(t, err, `kernel config line 3 is "CONFIG_X=y"`)
}

func TestFormatBuildTime(t *testing.T) {
	if got := FormatBuildTime(time.Unix(0, 0)); got != EpochBuildTime {
		t.Fatalf("epoch = %q, want %q", got, EpochBuildTime)
	}
	if got := FormatBuildTime(time.Date(2025, 10, 5, 13, 12, 27, 410516995, time.UTC)); got != "2025-10-05T13:12:27.410516995+00:00" {
		t.Fatalf("got %q, want chrono's to_rfc3339 form", got)
	}
}
