//go:build linux

package nitro_test

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"unsafe"

	"github.com/fxamacker/cbor/v2"
	"github.com/hf/nsm"

	"github.com/sealsign/sealsign/attestation/nitro"
)

// A fake /dev/nsm behind hf/nsm's injectable Open and Syscall: it receives
// the ioctl exactly as the kernel driver would (struct nsm_message: two
// iovecs, request and response), decodes the CBOR request hf/nsm wrote and
// writes a canned CBOR response into the response buffer.

// nsmIoctl is NSM_IOCTL_REQUEST of the kernel driver
// (drivers/misc/nsm.c): _IOWR(0x0A, 0, struct nsm_raw), a 32-byte struct.
const nsmIoctl = 0xc0200a00

// nsmMessage mirrors the struct hf/nsm passes (and the kernel reads).
type nsmMessage struct {
	Request  syscall.Iovec
	Response syscall.Iovec
}

// fakeRequest is one decoded request.
type fakeRequest struct {
	Name string // "Attestation", "GetRandom", …
	// Attestation fields; Null records a field sent as CBOR null (absent).
	PublicKey, UserData, Nonce []byte
	Null                       map[string]bool
}

// fakeDevice answers requests with handle's CBOR, or fails the ioctl with
// the errno handle returns.
type fakeDevice struct {
	t      testing.TB
	fd     uintptr
	handle func(req fakeRequest) ([]byte, syscall.Errno)

	mu       sync.Mutex
	requests []fakeRequest
	closes   int
}

var (
	fakeDevices sync.Map // fd → *fakeDevice
	nextFakeFD  atomic.Uintptr
)

func newFakeDevice(t testing.TB, handle func(fakeRequest) ([]byte, syscall.Errno)) *fakeDevice {
	d := &fakeDevice{t: t, fd: 1<<20 + nextFakeFD.Add(1), handle: handle}
	fakeDevices.Store(d.fd, d)
	t.Cleanup(func() { fakeDevices.Delete(d.fd) })
	return d
}

func (d *fakeDevice) Fd() uintptr { return d.fd }

func (d *fakeDevice) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closes++
	return nil
}

func (d *fakeDevice) options() nsm.Options {
	return nsm.Options{
		Open:    func() (nsm.FileDescriptor, error) { return d, nil },
		Syscall: fakeSyscall,
	}
}

func (d *fakeDevice) log() []fakeRequest {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]fakeRequest(nil), d.requests...)
}

// fakeSyscall is the injected syscall. hf/nsm passes the address of the
// nsmMessage on its own stack as a uintptr (a3). A uintptr is not updated
// when the goroutine's stack moves, so it is turned back into a pointer
// before anything can move the stack: the function is nosplit (no stack
// growth check) and converts first; from then on the runtime adjusts the
// pointer like any other.
//
//go:nosplit
func fakeSyscall(trap, a1, a2, a3 uintptr) (r1, r2 uintptr, errno syscall.Errno) {
	msg := *(**nsmMessage)(unsafe.Pointer(&a3))
	return serveIoctl(trap, a1, a2, msg)
}

func serveIoctl(trap, fd, cmd uintptr, msg *nsmMessage) (uintptr, uintptr, syscall.Errno) {
	v, ok := fakeDevices.Load(fd)
	if !ok {
		return 0, 0, syscall.EBADF
	}
	d := v.(*fakeDevice)
	if trap != syscall.SYS_IOCTL || cmd != nsmIoctl {
		d.t.Errorf("syscall %d command %#x, want ioctl (%d) %#x", trap, cmd, syscall.SYS_IOCTL, nsmIoctl)
		return 0, 0, syscall.ENOTTY
	}
	in := unsafe.Slice(msg.Request.Base, msg.Request.Len)
	out := unsafe.Slice(msg.Response.Base, msg.Response.Len)
	// The driver's limits (drivers/misc/nsm.c: NSM_REQUEST_MAX_SIZE 4 KiB,
	// NSM_RESPONSE_MAX_SIZE 12 KiB): hf/nsm must offer a full response buffer
	// and never send a larger request.
	if len(in) > 0x1000 || len(out) != 0x3000 {
		d.t.Errorf("fake NSM: request of %d bytes (max 4096), response buffer of %d bytes (want 12288)", len(in), len(out))
		return 0, 0, syscall.EINVAL
	}
	req, err := decodeFakeRequest(in)
	if err != nil {
		d.t.Errorf("fake NSM: %v (request %x)", err, in)
		return 0, 0, syscall.EINVAL
	}
	d.mu.Lock()
	d.requests = append(d.requests, req)
	d.mu.Unlock()
	resp, errno := d.handle(req)
	if errno != 0 {
		return 0, 0, errno
	}
	if len(resp) > len(out) {
		return 0, 0, syscall.EMSGSIZE
	}
	msg.Response.SetLen(copy(out, resp))
	return 0, 0, 0
}

// decodeFakeRequest decodes hf/nsm's encoding of a request: a text string
// for requests without fields, a one-entry map otherwise.
func decodeFakeRequest(b []byte) (fakeRequest, error) {
	var name string
	if cbor.Unmarshal(b, &name) == nil {
		return fakeRequest{Name: name}, nil
	}
	var m map[string]map[string]cbor.RawMessage
	if err := cbor.Unmarshal(b, &m); err != nil || len(m) != 1 {
		return fakeRequest{}, fmt.Errorf("request is neither a name nor a one-entry map: %v", err)
	}
	for name, fields := range m {
		req := fakeRequest{Name: name, Null: map[string]bool{}}
		if name != "Attestation" {
			return req, nil
		}
		for k, raw := range fields {
			var dst *[]byte
			switch k {
			case "public_key":
				dst = &req.PublicKey
			case "user_data":
				dst = &req.UserData
			case "nonce":
				dst = &req.Nonce
			default:
				return req, fmt.Errorf("attestation request field %q unknown", k)
			}
			if bytes.Equal(raw, []byte{0xf6}) {
				req.Null[k] = true
				continue
			}
			if len(raw) == 0 || raw[0]>>5 != 2 {
				return req, fmt.Errorf("attestation request field %q is not a byte string: %x", k, []byte(raw))
			}
			if err := cbor.Unmarshal(raw, dst); err != nil {
				return req, err
			}
		}
		if len(fields) != 3 {
			return req, fmt.Errorf("attestation request has %d fields, want user_data, nonce, public_key", len(fields))
		}
		return req, nil
	}
	return fakeRequest{}, errors.New("unreachable")
}

// Canned responses in the NSM's serde CBOR.

func mustCBOR(t testing.TB, v any) []byte {
	b, err := cbor.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func attestationResponse(t testing.TB, doc []byte) []byte {
	return mustCBOR(t, map[string]any{"Attestation": map[string]any{"document": doc}})
}

func randomResponse(t testing.TB, random []byte) []byte {
	return mustCBOR(t, map[string]any{"GetRandom": map[string]any{"random": random}})
}

func errorResponse(t testing.TB, code string) []byte {
	return mustCBOR(t, map[string]any{"Error": code})
}

// TestFakeSurvivesStackMoves grows the goroutine's stack inside the fake
// ioctl (forcing the runtime to copy it, and hf/nsm's message with it)
// and under constant GC (which shrinks stacks): the fake must still write
// the answer where hf/nsm reads it.
func TestFakeSurvivesStackMoves(t *testing.T) {
	var deep func(n int) int
	deep = func(n int) int {
		var pad [256]byte
		pad[n%256] = byte(n)
		if n == 0 {
			return int(pad[0])
		}
		return deep(n-1) + int(pad[n%256]) - int(byte(n)) // keeps pad live; adds 0
	}
	dev := newFakeDevice(t, func(fakeRequest) ([]byte, syscall.Errno) {
		deep(2000) // ~0.5 MiB of frames
		runtime.GC()
		return randomResponse(t, []byte{1, 2, 3, 4, 5, 6, 7, 8, 9}), 0
	})
	n, err := nitro.OpenWith(dev.options())
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	for i := 0; i < 20; i++ {
		buf := make([]byte, 9)
		if _, err := n.Read(buf); err != nil || !bytes.Equal(buf, []byte{1, 2, 3, 4, 5, 6, 7, 8, 9}) {
			t.Fatalf("read %d: %x, %v", i, buf, err)
		}
	}
}
