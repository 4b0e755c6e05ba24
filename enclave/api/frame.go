package api

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/fxamacker/cbor/v2"
)

// MaxFrameSize bounds one frame's body. The largest legitimate frame is an
// ECDSA keygen round message with its modulus and factor proofs (well under
// 1 MiB) or a restore batch of sealed blobs.
const MaxFrameSize = 8 << 20

// Frame is one message on the host ↔ enclave stream: a 4-byte big-endian
// length followed by that many bytes of deterministic CBOR.
//
// A request has Reply=false and a Method; its answer carries the same ID with
// Reply=true and either Body or Error. Both sides may send requests.
type Frame struct {
	ID     uint64          `cbor:"1,keyasint"`
	Reply  bool            `cbor:"2,keyasint,omitempty"`
	Method string          `cbor:"3,keyasint,omitempty"`
	Body   cbor.RawMessage `cbor:"4,keyasint,omitempty"`
	Error  *Error          `cbor:"5,keyasint,omitempty"`
}

// Errors returned by ReadFrame. A malformed frame leaves the stream in sync
// (its length was read); an oversized or truncated one does not, and the
// connection must be closed.
var (
	ErrFrameTooLarge  = errors.New("api: frame too large")
	ErrMalformedFrame = errors.New("api: malformed frame")
	ErrTruncatedFrame = errors.New("api: truncated frame")
)

// WriteFrame encodes f and writes it with its length prefix in one Write.
func WriteFrame(w io.Writer, f *Frame) error {
	body, err := Marshal(f)
	if err != nil {
		return fmt.Errorf("api: encode frame: %w", err)
	}
	if len(body) > MaxFrameSize {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, len(body), MaxFrameSize)
	}
	buf := make([]byte, 4+len(body))
	binary.BigEndian.PutUint32(buf, uint32(len(body)))
	copy(buf[4:], body)
	_, err = w.Write(buf)
	return err
}

// ReadFrame reads one frame. io.EOF is returned only on a clean end of stream
// between frames.
func ReadFrame(r io.Reader) (*Frame, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: length prefix cut short", ErrTruncatedFrame)
		}
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > MaxFrameSize {
		return nil, fmt.Errorf("%w: %d bytes announced, limit %d", ErrFrameTooLarge, n, MaxFrameSize)
	}
	if n == 0 {
		return nil, fmt.Errorf("%w: empty frame", ErrMalformedFrame)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, fmt.Errorf("%w: want %d bytes: %v", ErrTruncatedFrame, n, err)
	}
	return DecodeFrame(body)
}

// DecodeFrame decodes a frame body (without its length prefix).
func DecodeFrame(body []byte) (*Frame, error) {
	f := new(Frame)
	if err := Unmarshal(body, f); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedFrame, err)
	}
	if !f.Reply && f.Method == "" {
		return nil, fmt.Errorf("%w: request without a method", ErrMalformedFrame)
	}
	if f.Reply && f.Method != "" {
		return nil, fmt.Errorf("%w: reply carries method %q", ErrMalformedFrame, f.Method)
	}
	return f, nil
}

// Error is a typed error carried in a reply frame. Code is stable and
// machine-readable; Message is for humans and never holds secret material.
type Error struct {
	Code    string `cbor:"1,keyasint" json:"code"`
	Message string `cbor:"2,keyasint" json:"message"`
}

func (e *Error) Error() string { return e.Message }

// Error codes.
const (
	CodeMalformed     = "malformed"
	CodeUnknownMethod = "unknown_method"
	CodeBadRequest    = "bad_request"
	CodeNotFound      = "not_found"
	CodeUnavailable   = "unavailable"
	CodeRejected      = "rejected" // a peer message failed authentication, replay or consistency checks
	CodeStale         = "stale"    // a peer message for a session that has already ended here
	CodeSession       = "session_failed"
	CodeSealing       = "sealing"
	CodeAttestation   = "attestation"
	CodeInternal      = "internal"
)

// Errorf builds an *Error.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// CodeOf returns the code of err if it is (or wraps) an *Error, else CodeInternal.
func CodeOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}
