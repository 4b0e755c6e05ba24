// Package nitro is the Nitro Security Module of a party running in an AWS
// Nitro Enclave: attestation documents and hardware randomness through
// /dev/nsm, over github.com/hf/nsm.
//
// An *NSM is an attester (Attest: a COSE_Sign1 document binding a public
// key, user data and a nonce, signed by AWS's PKI) and an io.Reader of NSM
// randomness (Read: GetRandom requests, for the enclave's entropy mixer).
// Verify its documents with attestation.Verify and attestation.AWSRoots().
//
// Each request is an ioctl that traps to the Nitro hypervisor and reserves
// 16 KiB in hf/nsm: attest a few times per protocol run and seed a DRBG from
// Read rather than call it per byte (hf/nsm README, "Performance").
//
// Request and response formats: aws/aws-nitro-enclaves-nsm-api src/api/mod.rs
// (serde CBOR: a request is "GetRandom" or {"Attestation": {user_data,
// nonce, public_key}}; a response is {"Attestation": {document}},
// {"GetRandom": {random}} or {"Error": code}).
package nitro

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/hf/nsm"
	"github.com/hf/nsm/request"
	"github.com/hf/nsm/response"

	"github.com/sealsign/sealsign/attestation"
)

// DevicePath is where the Nitro Security Module appears inside an enclave.
const DevicePath = "/dev/nsm"

// MaxFieldSize bounds each of public_key, user_data and nonce in an
// attestation request: the largest field the verifier accepts (the NSM
// itself returns 1024-byte fields; aws-nitro-enclaves-nsm-api#52). Three of
// them fit in the driver's 4 KiB request limit.
const MaxFieldSize = attestation.MaxAuxSize

// ErrClosed is returned by Attest and Read after Close.
var ErrClosed = errors.New("nitro: NSM session is closed")

// RequestError is an error code the NSM answered a request with.
type RequestError struct {
	Request string             // "Attestation" or "GetRandom"
	Code    response.ErrorCode // e.g. "InvalidArgument", "InputTooLarge"
}

func (e *RequestError) Error() string {
	return fmt.Sprintf("nitro: NSM refused the %s request: %s", e.Request, e.Code)
}

// NSM is an open session with the Nitro Security Module. It is safe for
// concurrent use: Attest and Read may run in parallel (hf/nsm allows
// concurrent sends), and Close waits for the calls in flight.
type NSM struct {
	mu   sync.RWMutex
	sess *nsm.Session // nil once closed
}

var _ io.Reader = (*NSM)(nil)

// Available reports whether this machine has a Nitro Security Module, that
// is whether the process runs inside a Nitro Enclave with the nsm driver.
func Available() bool {
	fi, err := os.Stat(DevicePath)
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// Open opens the NSM at DevicePath with hf/nsm's default session. Outside a
// Nitro Enclave it fails with an error naming /dev/nsm that wraps the open
// error (errors.Is(err, fs.ErrNotExist) when the device is absent).
func Open() (*NSM, error) {
	sess, err := nsm.OpenDefaultSession()
	if err != nil {
		return nil, fmt.Errorf("nitro: open Nitro Security Module %s: %w (it exists only inside an AWS Nitro Enclave; check nitro.Available first)", DevicePath, unwrapPath(err))
	}
	return &NSM{sess: sess}, nil
}

// OpenWith opens an NSM session with explicit options: opts.Open opens the
// device and opts.Syscall performs the ioctl on it. Tests inject a fake
// device here; production code calls Open.
func OpenWith(opts nsm.Options) (*NSM, error) {
	if opts.Open == nil || opts.Syscall == nil {
		return nil, errors.New("nitro: open: nsm.Options needs both Open and Syscall")
	}
	sess, err := nsm.OpenSession(opts)
	if err != nil {
		return nil, fmt.Errorf("nitro: open NSM device: %w", err)
	}
	return &NSM{sess: sess}, nil
}

// unwrapPath drops *fs.PathError's "open /dev/nsm: " so Open names the path
// once; errors.Is still sees the cause.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Attest asks the NSM for an attestation document binding publicKey,
// userData and nonce (each at most MaxFieldSize bytes; empty ones are sent
// as absent, which the document reports as null). It returns the document as
// the NSM produced it: an untagged COSE_Sign1. The document is checked to be
// well-formed and to carry exactly the requested fields; it is not verified
// (the enclave trusts its own NSM; a peer verifies with attestation.Verify).
//
// Errors: *RequestError when the NSM answers with an error code; a wrapped
// *nsm.ErrorIoctlFailed when the ioctl fails; ErrClosed after Close.
func (n *NSM) Attest(publicKey, userData, nonce []byte) ([]byte, error) {
	req := &request.Attestation{PublicKey: nilIfEmpty(publicKey), UserData: nilIfEmpty(userData), Nonce: nilIfEmpty(nonce)}
	for _, f := range []struct {
		name string
		b    []byte
	}{{"public_key", req.PublicKey}, {"user_data", req.UserData}, {"nonce", req.Nonce}} {
		if len(f.b) > MaxFieldSize {
			return nil, fmt.Errorf("nitro: attest: %s is %d bytes, at most %d", f.name, len(f.b), MaxFieldSize)
		}
	}
	n.mu.RLock()
	defer n.mu.RUnlock()
	if n.sess == nil {
		return nil, ErrClosed
	}
	res, err := n.sess.Send(req)
	if err != nil {
		return nil, fmt.Errorf("nitro: attest: %w", err)
	}
	if res.Error != "" {
		return nil, &RequestError{Request: "Attestation", Code: res.Error}
	}
	if res.Attestation == nil || len(res.Attestation.Document) == 0 {
		return nil, errors.New("nitro: attest: the NSM's answer carries no attestation document")
	}
	doc := res.Attestation.Document
	// A document that does not parse, or binds other values than we asked
	// for, would only be refused later by every peer, far from the cause.
	d, err := attestation.ParseUnverified(doc)
	if err != nil {
		return nil, fmt.Errorf("nitro: attest: the NSM returned a malformed document: %w", err)
	}
	for _, f := range []struct {
		name      string
		want, got []byte
	}{{"public_key", req.PublicKey, d.PublicKey}, {"user_data", req.UserData, d.UserData}, {"nonce", req.Nonce, d.Nonce}} {
		if !bytes.Equal(f.want, f.got) {
			return nil, fmt.Errorf("nitro: attest: the NSM's document has %s of %d bytes, requested %d bytes", f.name, len(f.got), len(f.want))
		}
	}
	return doc, nil
}

// Read fills p with random bytes from the NSM, sending GetRandom requests
// until p is full (each answer carries a device-chosen number of bytes). It
// returns len(p) and nil, or the number of bytes filled and an error:
// *RequestError when the NSM answers with an error code, an error when an
// answer holds no bytes or the ioctl fails, ErrClosed after Close.
func (n *NSM) Read(p []byte) (int, error) {
	n.mu.RLock()
	defer n.mu.RUnlock()
	if n.sess == nil {
		return 0, ErrClosed
	}
	filled := 0
	for filled < len(p) {
		res, err := n.sess.Send(&request.GetRandom{})
		if err != nil {
			return filled, fmt.Errorf("nitro: get random: %w", err)
		}
		if res.Error != "" {
			return filled, &RequestError{Request: "GetRandom", Code: res.Error}
		}
		if res.GetRandom == nil || len(res.GetRandom.Random) == 0 {
			return filled, errors.New("nitro: get random: the NSM's answer carries no random bytes")
		}
		filled += copy(p[filled:], res.GetRandom.Random)
	}
	return filled, nil
}

// Close ends the session; it waits for calls in flight. Closing twice is a
// no-op.
func (n *NSM) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.sess == nil {
		return nil
	}
	err := n.sess.Close()
	n.sess = nil
	if err != nil {
		return fmt.Errorf("nitro: close: %w", err)
	}
	return nil
}

func nilIfEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}
