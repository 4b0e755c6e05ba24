package transport

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sealsign/sealsign/enclave/api"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want Addr
		err  bool
	}{
		{in: "unix:/tmp/e.sock", want: Addr{Network: "unix", Path: "/tmp/e.sock"}},
		{in: "vsock:3:5000", want: Addr{Network: "vsock", CID: 3, Port: 5000}},
		{in: "vsock::5000", want: Addr{Network: "vsock", AnyCID: true, Port: 5000}},
		{in: "vsock:3:0", err: true},
		{in: "vsock:x:5000", err: true},
		{in: "vsock:3", err: true},
		{in: "tcp:1.2.3.4:5", err: true},
		{in: "unix:", err: true},
		{in: "noscheme", err: true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := Parse(tc.in)
			if tc.err {
				if err == nil {
					t.Fatalf("Parse(%q) = %+v, want error", tc.in, got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Parse(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			}
			if back, _ := Parse(got.String()); back != got {
				t.Fatalf("String round trip: %q → %+v", got.String(), back)
			}
		})
	}
}

// TestUnixFrames runs the frame protocol over a real unix socket.
func TestUnixFrames(t *testing.T) {
	a, _ := Parse("unix:" + filepath.Join(t.TempDir(), "e.sock"))
	l, err := Listen(a)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	fi, err := os.Stat(a.Path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		conn := api.NewConn(c, map[string]api.Handler{
			"echo": func(_ context.Context, b []byte) (any, error) {
				var s string
				if err := api.Unmarshal(b, &s); err != nil {
					return nil, err
				}
				return s + "!", nil
			},
		})
		conn.Serve(context.Background())
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Dial(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	conn := api.NewConn(c, nil)
	go conn.Serve(ctx)
	var out string
	if err := conn.Call(ctx, "echo", "hi", &out); err != nil || out != "hi!" {
		t.Fatalf("echo = %q, %v", out, err)
	}
	conn.Close()
}

// TestVsock exercises the vsock path as far as this machine allows: a
// listener on the local CID when the kernel offers vsock, and dialing an
// address nobody listens on fails with an error rather than hanging.
func TestVsock(t *testing.T) {
	if _, err := os.Stat("/dev/vsock"); err != nil {
		t.Logf("no /dev/vsock here (%v); only the error paths are checked", err)
	}
	a, _ := Parse("vsock::52011")
	l, err := Listen(a)
	if err == nil {
		if l.Addr().Network() != "vsock" {
			t.Fatalf("listener network = %q", l.Addr().Network())
		}
		l.Close()
	} else if want := "transport: listen vsock::52011"; len(err.Error()) < len(want) || err.Error()[:len(want)] != want {
		t.Fatalf("listen error %q does not name the address", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	d, _ := Parse("vsock:3:52012")
	if c, err := Dial(ctx, d); err == nil {
		c.Close()
		t.Fatal("dial to the (absent) Nitro parent succeeded")
	}
	if _, err := Dial(ctx, Addr{Network: "vsock", AnyCID: true, Port: 1}); err == nil {
		t.Fatal("dial without CID succeeded")
	}
}
