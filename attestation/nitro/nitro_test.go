//go:build linux

package nitro_test

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"io"
	"io/fs"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hf/nsm"

	"github.com/sealsign/sealsign/attestation"
	"github.com/sealsign/sealsign/attestation/devnsm"
	"github.com/sealsign/sealsign/attestation/nitro"
	"github.com/sealsign/sealsign/enclave/entropy"
)

var now = time.Date(2026, 4, 5, 6, 7, 8, 0, time.UTC)

// devSigner answers Attestation requests like a real NSM would, with
// documents signed by a dev PKI, so what Attest returns can be verified.
type devSigner struct {
	ca  *devnsm.CA
	nsm *devnsm.NSM
}

func newDevSigner(t *testing.T) *devSigner {
	t.Helper()
	ca, err := devnsm.NewCA(rand.Reader, now)
	if err != nil {
		t.Fatal(err)
	}
	n, err := devnsm.New(ca, "i-0123456789abcdef0-enc0123456789abcdef", nil, rand.Reader, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	return &devSigner{ca: ca, nsm: n}
}

func (s *devSigner) handle(t *testing.T) func(fakeRequest) ([]byte, syscall.Errno) {
	return func(req fakeRequest) ([]byte, syscall.Errno) {
		if req.Name != "Attestation" {
			return errorResponse(t, "InvalidOperation"), 0
		}
		doc, err := s.nsm.Attest(req.PublicKey, req.UserData, req.Nonce)
		if err != nil {
			t.Errorf("dev NSM: %v", err)
			return errorResponse(t, "InternalError"), 0
		}
		return attestationResponse(t, doc), 0
	}
}

func open(t *testing.T, d *fakeDevice) *nitro.NSM {
	t.Helper()
	n, err := nitro.OpenWith(d.options())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// TestAttest sends Attestation requests through hf/nsm to the fake device
// and checks what the device received (fields, nulls for empty ones, the
// 4 KiB request limit) and that the returned document verifies with
// exactly the requested bindings.
func TestAttest(t *testing.T) {
	s := newDevSigner(t)
	max := bytes.Repeat([]byte{0xa5}, nitro.MaxFieldSize)
	tests := []struct {
		name                       string
		publicKey, userData, nonce []byte
		nulls                      []string
	}{
		{"all fields", []byte("identity key"), []byte("manifest hash"), []byte("nonce"), nil},
		{"no fields", nil, nil, nil, []string{"public_key", "user_data", "nonce"}},
		{"empty fields are sent as absent", []byte{}, []byte("u"), []byte{}, []string{"public_key", "nonce"}},
		{"maximum fields", max, max, max, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dev := newFakeDevice(t, s.handle(t))
			n := open(t, dev)
			doc, err := n.Attest(tt.publicKey, tt.userData, tt.nonce)
			if err != nil {
				t.Fatal(err)
			}
			reqs := dev.log()
			if len(reqs) != 1 || reqs[0].Name != "Attestation" {
				t.Fatalf("device saw %+v, want one Attestation request", reqs)
			}
			r := reqs[0]
			if !bytes.Equal(r.PublicKey, tt.publicKey) || !bytes.Equal(r.UserData, tt.userData) || !bytes.Equal(r.Nonce, tt.nonce) {
				t.Errorf("device received other fields than requested")
			}
			for _, f := range []string{"public_key", "user_data", "nonce"} {
				want := false
				for _, g := range tt.nulls {
					want = want || g == f
				}
				if r.Null[f] != want {
					t.Errorf("%s sent as null: %v, want %v", f, r.Null[f], want)
				}
			}
			orEmpty := func(b []byte) []byte {
				if b == nil {
					return []byte{}
				}
				return b
			}
			_, err = attestation.Verify(doc, attestation.VerifyOptions{Roots: []*x509.Certificate{s.ca.Cert()}, Time: now, MaxAge: time.Minute,
				AllowDebug: true, PublicKey: orEmpty(tt.publicKey), UserData: orEmpty(tt.userData), Nonce: orEmpty(tt.nonce)})
			if err != nil {
				t.Errorf("document from the NSM does not verify with the requested bindings: %v", err)
			}
		})
	}
}

// TestAttestRealDocument answers with a real AWS document (canned CBOR,
// 7.5 KiB, within hf/nsm's 12 KiB response buffer) and verifies what
// Attest returns under the pinned AWS root.
func TestAttestRealDocument(t *testing.T) {
	doc, err := os.ReadFile("../testdata/us-east-1-2024-09-07-maxfields.cose")
	if err != nil {
		t.Fatal(err)
	}
	ones := bytes.Repeat([]byte{1}, 1024)
	dev := newFakeDevice(t, func(fakeRequest) ([]byte, syscall.Errno) { return attestationResponse(t, doc), 0 })
	got, err := open(t, dev).Attest(ones, ones, ones)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, doc) {
		t.Fatal("Attest changed the NSM's document")
	}
	d, err := attestation.Verify(got, attestation.VerifyOptions{Roots: attestation.AWSRoots(), Time: time.Date(2024, 9, 7, 14, 40, 0, 0, time.UTC),
		PublicKey: ones, UserData: ones, Nonce: ones})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(d.ModuleID, "i-0a22e5c5f24d22174-enc") {
		t.Errorf("module_id %q", d.ModuleID)
	}
	// The same document answering a request for other fields is refused.
	if _, err := open(t, dev).Attest(nil, []byte("other"), ones); err == nil || !strings.Contains(err.Error(), "nitro: attest: the NSM's document has public_key of 1024 bytes, requested 0 bytes") {
		t.Errorf("document binding other fields: %v", err)
	}
}

// TestAttestLimits checks fields over MaxFieldSize are refused before any
// request reaches the device.
func TestAttestLimits(t *testing.T) {
	dev := newFakeDevice(t, func(fakeRequest) ([]byte, syscall.Errno) {
		t.Error("request sent despite an oversized field")
		return nil, syscall.EIO
	})
	n := open(t, dev)
	big := make([]byte, nitro.MaxFieldSize+1)
	for _, tt := range []struct {
		name    string
		pk, ud  []byte
		nonce   []byte
		wantMsg string
	}{
		{"public_key", big, nil, nil, "nitro: attest: public_key is 1025 bytes, at most 1024"},
		{"user_data", nil, big, nil, "nitro: attest: user_data is 1025 bytes, at most 1024"},
		{"nonce", nil, nil, big, "nitro: attest: nonce is 1025 bytes, at most 1024"},
	} {
		if _, err := n.Attest(tt.pk, tt.ud, tt.nonce); err == nil || err.Error() != tt.wantMsg {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.wantMsg)
		}
	}
	if len(dev.log()) != 0 {
		t.Error("device saw requests")
	}
}

// TestAttestFailures checks every way the device can fail an Attestation
// request surfaces as a precise error and no document.
func TestAttestFailures(t *testing.T) {
	s := newDevSigner(t)
	otherDoc, err := s.nsm.Attest(nil, []byte("someone else's"), nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		response []byte
		errno    syscall.Errno
		check    func(error) bool
		wantMsg  string
	}{
		{"error InvalidArgument", errorResponse(t, "InvalidArgument"), 0,
			func(err error) bool {
				var re *nitro.RequestError
				return errors.As(err, &re) && re.Request == "Attestation" && re.Code == "InvalidArgument"
			}, "nitro: NSM refused the Attestation request: InvalidArgument"},
		{"error InputTooLarge", errorResponse(t, "InputTooLarge"), 0, nil, "nitro: NSM refused the Attestation request: InputTooLarge"},
		{"ioctl fails", nil, syscall.EIO,
			func(err error) bool {
				var ie *nsm.ErrorIoctlFailed
				return errors.As(err, &ie) && ie.Errno == syscall.EIO
			}, "nitro: attest: ioctl failed on device with errno input/output error"},
		{"empty answer", mustCBOR(t, map[string]any{}), 0, nil, "nitro: attest: the NSM's answer carries no attestation document"},
		{"empty document", attestationResponse(t, []byte{}), 0, nil, "nitro: attest: the NSM's answer carries no attestation document"},
		{"answer of another request", randomResponse(t, []byte{1, 2, 3}), 0, nil, "nitro: attest: the NSM's answer carries no attestation document"},
		{"answer not CBOR", []byte{0xff, 0x00}, 0, nil, "nitro: attest: cbor"},
		{"document not COSE", attestationResponse(t, []byte("not a document")), 0,
			func(err error) bool { return errors.Is(err, attestation.ErrMalformed) },
			"nitro: attest: the NSM returned a malformed document: attestation: cose malformed"},
		{"document for other user_data", attestationResponse(t, otherDoc), 0, nil,
			"nitro: attest: the NSM's document has user_data of 14 bytes, requested 2 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dev := newFakeDevice(t, func(fakeRequest) ([]byte, syscall.Errno) { return tt.response, tt.errno })
			doc, err := open(t, dev).Attest(nil, []byte("ud"), nil)
			if err == nil || doc != nil {
				t.Fatalf("Attest = %d bytes, %v; want an error and no document", len(doc), err)
			}
			if !strings.HasPrefix(err.Error(), tt.wantMsg) {
				t.Errorf("error %q, want prefix %q", err, tt.wantMsg)
			}
			if tt.check != nil && !tt.check(err) {
				t.Errorf("error %v (%T) has the wrong type", err, err)
			}
		})
	}
}

// stream is a device random source that hands out at most chunk bytes per
// GetRandom request, from a known sequence.
type stream struct {
	mu    sync.Mutex
	next  byte
	chunk int
}

func (s *stream) handle(t *testing.T) func(fakeRequest) ([]byte, syscall.Errno) {
	return func(req fakeRequest) ([]byte, syscall.Errno) {
		if req.Name != "GetRandom" {
			t.Errorf("request %q, want GetRandom", req.Name)
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		b := make([]byte, s.chunk)
		for i := range b {
			b[i] = s.next
			s.next++
		}
		return randomResponse(t, b), 0
	}
}

func sequence(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

// TestRead checks Read keeps sending GetRandom until the buffer is full,
// whatever the device's chunk size, and copies exactly what it got.
func TestRead(t *testing.T) {
	for _, tt := range []struct {
		name         string
		chunk, size  int
		wantRequests int
	}{
		{"short answers", 7, 100, 15},
		{"one byte per answer", 1, 33, 33},
		{"answer larger than the buffer", 256, 10, 1},
		{"exact fit", 32, 64, 2},
		{"empty buffer", 32, 0, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dev := newFakeDevice(t, (&stream{chunk: tt.chunk}).handle(t))
			buf := make([]byte, tt.size)
			n, err := open(t, dev).Read(buf)
			if err != nil || n != tt.size {
				t.Fatalf("Read = %d, %v; want %d, nil", n, err, tt.size)
			}
			if !bytes.Equal(buf, sequence(tt.size)) {
				t.Errorf("Read filled %x, want %x", buf, sequence(tt.size))
			}
			if got := len(dev.log()); got != tt.wantRequests {
				t.Errorf("%d GetRandom requests, want %d", got, tt.wantRequests)
			}
		})
	}
}

// TestReadFailures checks a failing answer mid-way returns the bytes filled
// so far and a precise error.
func TestReadFailures(t *testing.T) {
	for _, tt := range []struct {
		name    string
		fail    func(t *testing.T) ([]byte, syscall.Errno)
		check   func(error) bool
		wantMsg string
	}{
		{"error InternalError", func(t *testing.T) ([]byte, syscall.Errno) { return errorResponse(t, "InternalError"), 0 },
			func(err error) bool {
				var re *nitro.RequestError
				return errors.As(err, &re) && re.Request == "GetRandom" && re.Code == "InternalError"
			}, "nitro: NSM refused the GetRandom request: InternalError"},
		{"no random bytes", func(t *testing.T) ([]byte, syscall.Errno) { return randomResponse(t, []byte{}), 0 }, nil,
			"nitro: get random: the NSM's answer carries no random bytes"},
		{"answer of another request", func(t *testing.T) ([]byte, syscall.Errno) { return attestationResponse(t, []byte{1}), 0 }, nil,
			"nitro: get random: the NSM's answer carries no random bytes"},
		{"ioctl fails", func(t *testing.T) ([]byte, syscall.Errno) { return nil, syscall.EFAULT },
			func(err error) bool {
				var ie *nsm.ErrorIoctlFailed
				return errors.As(err, &ie) && ie.Errno == syscall.EFAULT
			}, "nitro: get random: ioctl failed on device with errno bad address"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			good := (&stream{chunk: 7}).handle(t)
			calls := 0
			dev := newFakeDevice(t, func(req fakeRequest) ([]byte, syscall.Errno) {
				calls++
				if calls <= 2 {
					return good(req)
				}
				return tt.fail(t)
			})
			buf := make([]byte, 64)
			n, err := open(t, dev).Read(buf)
			if n != 14 || !bytes.Equal(buf[:n], sequence(14)) {
				t.Errorf("Read filled %d bytes (%x), want the 14 the device gave", n, buf[:n])
			}
			if err == nil || err.Error() != tt.wantMsg {
				t.Errorf("error %v, want %q", err, tt.wantMsg)
			}
			if tt.check != nil && !tt.check(err) {
				t.Errorf("error %v (%T) has the wrong type", err, err)
			}
		})
	}
}

// TestEntropyMixer uses the NSM as the hardware source of the enclave's
// entropy mixer: the mixer's seed is read through GetRandom requests.
func TestEntropyMixer(t *testing.T) {
	dev := newFakeDevice(t, (&stream{chunk: 16}).handle(t))
	m, err := entropy.New(open(t, dev), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(m, make([]byte, 64)); err != nil {
		t.Fatal(err)
	}
	if reqs := dev.log(); len(reqs) < 2 || reqs[0].Name != "GetRandom" {
		t.Errorf("mixer seeded with %d NSM requests, want at least 2 GetRandom (32 bytes in 16-byte answers)", len(reqs))
	}
	// A failing NSM fails the mixer rather than leaving it seeded by the OS alone.
	bad := newFakeDevice(t, func(fakeRequest) ([]byte, syscall.Errno) { return errorResponse(t, "InternalError"), 0 })
	if _, err := entropy.New(open(t, bad), rand.Reader); err == nil || !strings.Contains(err.Error(), "GetRandom request: InternalError") {
		t.Errorf("mixer over a failing NSM: %v", err)
	}
}

// TestConcurrentUseAndClose runs Attest and Read from many goroutines (run
// with -race), then closes: later calls fail with ErrClosed, the device is
// closed once, and a second Close is a no-op.
func TestConcurrentUseAndClose(t *testing.T) {
	s := newDevSigner(t)
	rnd := (&stream{chunk: 5}).handle(t)
	att := s.handle(t)
	dev := newFakeDevice(t, func(req fakeRequest) ([]byte, syscall.Errno) {
		if req.Name == "GetRandom" {
			return rnd(req)
		}
		return att(req)
	})
	n, err := nitro.OpenWith(dev.options())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			if _, err := n.Attest(nil, []byte{byte(i)}, nil); err != nil {
				t.Error(err)
			}
		}()
		go func() {
			defer wg.Done()
			if _, err := io.ReadFull(n, make([]byte, 33)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := n.Attest(nil, nil, nil); !errors.Is(err, nitro.ErrClosed) {
		t.Errorf("Attest after Close: %v", err)
	}
	if _, err := n.Read(make([]byte, 1)); !errors.Is(err, nitro.ErrClosed) {
		t.Errorf("Read after Close: %v", err)
	}
	dev.mu.Lock()
	defer dev.mu.Unlock()
	if dev.closes != 1 {
		t.Errorf("device closed %d times, want 1", dev.closes)
	}
}

// TestCloseWaitsForCalls closes while Reads are in flight.
func TestCloseWaitsForCalls(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 4)
	good := (&stream{chunk: 8}).handle(t)
	dev := newFakeDevice(t, func(req fakeRequest) ([]byte, syscall.Errno) {
		started <- struct{}{}
		<-release
		return good(req)
	})
	n, err := nitro.OpenWith(dev.options())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 4)
	for i := 0; i < 4; i++ {
		go func() {
			_, err := n.Read(make([]byte, 8))
			done <- err
		}()
	}
	for i := 0; i < 4; i++ {
		<-started
	}
	closed := make(chan error)
	go func() { closed <- n.Close() }()
	select {
	case <-closed:
		t.Fatal("Close returned while reads were in flight")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	for i := 0; i < 4; i++ {
		if err := <-done; err != nil {
			t.Errorf("read in flight during Close: %v", err)
		}
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
}

// TestOpenWith checks the injectable open path's errors.
func TestOpenWith(t *testing.T) {
	if _, err := nitro.OpenWith(nsm.Options{}); err == nil || !strings.Contains(err.Error(), "needs both Open and Syscall") {
		t.Errorf("empty options: %v", err)
	}
	boom := errors.New("permission denied")
	_, err := nitro.OpenWith(nsm.Options{
		Open:    func() (nsm.FileDescriptor, error) { return nil, boom },
		Syscall: fakeSyscall,
	})
	if !errors.Is(err, boom) || err.Error() != "nitro: open NSM device: permission denied" {
		t.Errorf("failing open: %v", err)
	}
}

// TestOpenDefault checks the real device path. On this kind of machine
// (no Nitro Enclave) Open fails naming /dev/nsm; inside an enclave it opens
// and returns a document that verifies under the AWS root.
func TestOpenDefault(t *testing.T) {
	n, err := nitro.Open()
	if !nitro.Available() {
		if err == nil {
			n.Close()
			t.Fatal("Open succeeded although /dev/nsm is not available")
		}
		if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, fs.ErrPermission) {
			t.Errorf("error %v does not wrap the open error", err)
		}
		if !strings.HasPrefix(err.Error(), "nitro: open Nitro Security Module /dev/nsm: ") || strings.Count(err.Error(), "/dev/nsm") != 1 {
			t.Errorf("error %q does not name /dev/nsm once", err)
		}
		t.Logf("as expected outside an enclave: %v", err)
		return
	}
	if err != nil {
		t.Fatalf("/dev/nsm is present but Open fails: %v", err)
	}
	defer n.Close()
	nonce := make([]byte, 32)
	if _, err := io.ReadFull(n, nonce); err != nil {
		t.Fatal(err)
	}
	doc, err := n.Attest(nil, nil, nonce)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := attestation.Verify(doc, attestation.VerifyOptions{Roots: attestation.AWSRoots(), Time: time.Now(), MaxAge: time.Minute,
		Nonce: nonce, AllowDebug: true}); err != nil {
		t.Fatalf("the NSM's document does not verify under the AWS root: %v", err)
	}
}
