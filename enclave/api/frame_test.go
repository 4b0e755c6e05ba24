package api

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

func encode(t *testing.T, f *Frame) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := WriteFrame(&b, f); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestReadFrame(t *testing.T) {
	good := encode(t, &Frame{ID: 7, Method: "status", Body: []byte{0xf6}})
	prefixed := func(body []byte) []byte {
		b := make([]byte, 4, 4+len(body))
		binary.BigEndian.PutUint32(b, uint32(len(body)))
		return append(b, body...)
	}
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"good", good, nil},
		{"oversized announcement", []byte{0xff, 0xff, 0xff, 0xff}, ErrFrameTooLarge},
		{"just over the limit", binary.BigEndian.AppendUint32(nil, MaxFrameSize+1), ErrFrameTooLarge},
		{"truncated body", good[:len(good)-2], ErrTruncatedFrame},
		{"truncated prefix", good[:2], ErrTruncatedFrame},
		{"empty frame", []byte{0, 0, 0, 0}, ErrMalformedFrame},
		{"not cbor", prefixed([]byte{0xff, 0x00}), ErrMalformedFrame},
		{"cbor array", prefixed([]byte{0x80}), ErrMalformedFrame},
		{"unknown field", prefixed([]byte{0xa2, 0x01, 0x01, 0x18, 0x63, 0x01}), ErrMalformedFrame},
		{"duplicate key", prefixed([]byte{0xa2, 0x01, 0x01, 0x01, 0x02}), ErrMalformedFrame},
		{"request without method", prefixed([]byte{0xa1, 0x01, 0x01}), ErrMalformedFrame},
		{"clean eof", nil, io.EOF},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := ReadFrame(bytes.NewReader(tc.in))
			if tc.want == nil {
				if err != nil || f.ID != 7 || f.Method != "status" {
					t.Fatalf("ReadFrame = %+v, %v", f, err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("ReadFrame error = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestWriteFrameRejectsOversized(t *testing.T) {
	big, err := Marshal(make([]byte, MaxFrameSize))
	if err != nil {
		t.Fatal(err)
	}
	err = WriteFrame(io.Discard, &Frame{ID: 1, Method: "x", Body: big})
	if !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("WriteFrame error = %v, want ErrFrameTooLarge", err)
	}
}

// TestConnSurvivesMalformedFrame: a malformed frame gets an error reply and
// the connection keeps serving; an oversized one ends the connection.
func TestConnSurvivesMalformedFrame(t *testing.T) {
	server, client := net.Pipe()
	conn := NewConn(server, map[string]Handler{
		"ping":  func(context.Context, []byte) (any, error) { return "pong", nil },
		"boom":  func(context.Context, []byte) (any, error) { panic("bug") },
		"error": func(context.Context, []byte) (any, error) { return nil, Errorf(CodeBadRequest, "no") },
	})
	go conn.Serve(context.Background())
	client.SetDeadline(time.Now().Add(5 * time.Second))

	client.Write([]byte{0, 0, 0, 2, 0xff, 0x00})
	f, err := ReadFrame(client)
	if err != nil || f.Error == nil || f.Error.Code != CodeMalformed {
		t.Fatalf("reply to malformed frame = %+v, %v", f, err)
	}
	for _, m := range []struct{ method, code string }{{"ping", ""}, {"boom", CodeInternal}, {"error", CodeBadRequest}, {"nope", CodeUnknownMethod}} {
		client.Write(encode(t, &Frame{ID: 9, Method: m.method}))
		f, err = ReadFrame(client)
		if err != nil || f.ID != 9 || !f.Reply {
			t.Fatalf("%s: reply = %+v, %v", m.method, f, err)
		}
		if got := ""; f.Error != nil {
			got = f.Error.Code
			if got != m.code {
				t.Fatalf("%s: error code %q, want %q", m.method, got, m.code)
			}
		} else if m.code != "" {
			t.Fatalf("%s: no error, want %q", m.method, m.code)
		}
	}
	client.Write([]byte{0x7f, 0xff, 0xff, 0xff})
	f, err = ReadFrame(client)
	if err != nil || f.Error == nil || !strings.Contains(f.Error.Message, "closing") {
		t.Fatalf("reply to oversized frame = %+v, %v", f, err)
	}
	select {
	case <-conn.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("connection still open after an oversized frame")
	}
}

func TestCallRoundTrip(t *testing.T) {
	a, b := net.Pipe()
	srv := NewConn(a, map[string]Handler{
		"add": func(_ context.Context, body []byte) (any, error) {
			var in [2]int
			if err := Unmarshal(body, &in); err != nil {
				return nil, err
			}
			return in[0] + in[1], nil
		},
	})
	cli := NewConn(b, nil)
	ctx := context.Background()
	go srv.Serve(ctx)
	go cli.Serve(ctx)
	var sum int
	if err := cli.Call(ctx, "add", [2]int{2, 3}, &sum); err != nil || sum != 5 {
		t.Fatalf("add = %d, %v", sum, err)
	}
	srv.Close()
	<-cli.Done()
	if err := cli.Call(ctx, "add", [2]int{1, 1}, &sum); !errors.Is(err, ErrClosed) {
		t.Fatalf("call on closed conn = %v, want ErrClosed", err)
	}
}

func FuzzDecodeFrame(f *testing.F) {
	var b bytes.Buffer
	WriteFrame(&b, &Frame{ID: 1, Method: "run", Body: []byte{0xa0}})
	f.Add(b.Bytes()[4:])
	b.Reset()
	WriteFrame(&b, &Frame{ID: 2, Reply: true, Error: &Error{Code: "x", Message: "y"}})
	f.Add(b.Bytes()[4:])
	f.Add([]byte{0xa0})
	f.Fuzz(func(t *testing.T, body []byte) {
		fr, err := DecodeFrame(body)
		if err != nil {
			if !errors.Is(err, ErrMalformedFrame) {
				t.Fatalf("error %v is not ErrMalformedFrame", err)
			}
			return
		}
		var out bytes.Buffer
		if err := WriteFrame(&out, fr); err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		again, err := ReadFrame(&out)
		if err != nil || again.ID != fr.ID || again.Method != fr.Method || !bytes.Equal(again.Body, fr.Body) {
			t.Fatalf("round trip: %+v, %v", again, err)
		}
	})
}

func FuzzParseManifest(f *testing.F) {
	f.Add([]byte(`{"version":1,"cluster_id":"c","threshold":1,"parties":[{"id":"a","kind":"dev","pcrs":{"0":"00"}},{"id":"b","kind":"dev","pcrs":{"0":"00"}}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseManifest(b)
		if err != nil {
			return
		}
		if _, err := m.Hash(); err != nil {
			t.Fatal(err)
		}
	})
}
