// Package transport provides the enclave's stream listener: a unix socket in
// dev mode, vsock in a Nitro Enclave. Both are plain net.Listener/net.Conn,
// so the framing above them is the same.
//
// Addresses: "unix:/path/to/sock", "vsock:CID:PORT" (dial) or "vsock::PORT"
// (listen on the enclave's own CID). The Nitro parent instance is CID 3;
// note that mdlayher/vsock's Host constant is 2, not the Nitro parent.
package transport

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/mdlayher/vsock"
)

// Addr is a parsed transport address.
type Addr struct {
	Network string // "unix" or "vsock"
	Path    string // unix
	CID     uint32 // vsock; 0 with AnyCID when listening
	AnyCID  bool
	Port    uint32 // vsock
}

// ParentCID is the Nitro parent instance's vsock CID.
const ParentCID = 3

// Parse parses an address string.
func Parse(s string) (Addr, error) {
	network, rest, ok := strings.Cut(s, ":")
	if !ok {
		return Addr{}, fmt.Errorf("transport: address %q: want unix:PATH or vsock:CID:PORT", s)
	}
	switch network {
	case "unix":
		if rest == "" {
			return Addr{}, fmt.Errorf("transport: address %q: empty socket path", s)
		}
		if len(rest) > 104 {
			return Addr{}, fmt.Errorf("transport: unix socket path is %d bytes, the kernel limit is about 104", len(rest))
		}
		return Addr{Network: "unix", Path: rest}, nil
	case "vsock":
		cidS, portS, ok := strings.Cut(rest, ":")
		if !ok {
			return Addr{}, fmt.Errorf("transport: address %q: want vsock:CID:PORT", s)
		}
		port, err := strconv.ParseUint(portS, 10, 32)
		if err != nil || port == 0 {
			return Addr{}, fmt.Errorf("transport: address %q: bad port %q", s, portS)
		}
		a := Addr{Network: "vsock", Port: uint32(port)}
		if cidS == "" {
			a.AnyCID = true
			return a, nil
		}
		cid, err := strconv.ParseUint(cidS, 10, 32)
		if err != nil {
			return Addr{}, fmt.Errorf("transport: address %q: bad cid %q", s, cidS)
		}
		a.CID = uint32(cid)
		return a, nil
	}
	return Addr{}, fmt.Errorf("transport: address %q: unknown network %q (want unix or vsock)", s, network)
}

func (a Addr) String() string {
	if a.Network == "unix" {
		return "unix:" + a.Path
	}
	if a.AnyCID {
		return fmt.Sprintf("vsock::%d", a.Port)
	}
	return fmt.Sprintf("vsock:%d:%d", a.CID, a.Port)
}

// Listen listens on a. A stale unix socket file is removed first.
func Listen(a Addr) (net.Listener, error) {
	switch a.Network {
	case "unix":
		if fi, err := os.Lstat(a.Path); err == nil && fi.Mode()&os.ModeSocket != 0 {
			os.Remove(a.Path)
		}
		l, err := net.Listen("unix", a.Path)
		if err != nil {
			return nil, fmt.Errorf("transport: listen %s: %w", a, err)
		}
		os.Chmod(a.Path, 0o600)
		return l, nil
	case "vsock":
		var (
			l   net.Listener
			err error
		)
		if a.AnyCID {
			l, err = vsock.Listen(a.Port, nil)
		} else {
			l, err = vsock.ListenContextID(a.CID, a.Port, nil)
		}
		if err != nil {
			return nil, fmt.Errorf("transport: listen %s: %w", a, err)
		}
		return l, nil
	}
	return nil, fmt.Errorf("transport: unknown network %q", a.Network)
}

// Dial connects to a.
func Dial(ctx context.Context, a Addr) (net.Conn, error) {
	switch a.Network {
	case "unix":
		var d net.Dialer
		c, err := d.DialContext(ctx, "unix", a.Path)
		if err != nil {
			return nil, fmt.Errorf("transport: dial %s: %w", a, err)
		}
		return c, nil
	case "vsock":
		if a.AnyCID {
			return nil, fmt.Errorf("transport: dial %s: a CID is required to dial", a)
		}
		type result struct {
			c   net.Conn
			err error
		}
		ch := make(chan result, 1)
		go func() {
			c, err := vsock.Dial(a.CID, a.Port, nil)
			ch <- result{c, err}
		}()
		select {
		case r := <-ch:
			if r.err != nil {
				return nil, fmt.Errorf("transport: dial %s: %w", a, r.err)
			}
			return r.c, nil
		case <-ctx.Done():
			go func() {
				if r := <-ch; r.c != nil {
					r.c.Close()
				}
			}()
			return nil, fmt.Errorf("transport: dial %s: %w", a, ctx.Err())
		}
	}
	return nil, fmt.Errorf("transport: unknown network %q", a.Network)
}
