package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/fxamacker/cbor/v2"
)

// Handler serves one request method. It returns the reply body (encoded with
// Marshal) or an error; an error that is not an *Error is sent as
// CodeInternal with its text, so handlers must keep secrets out of errors.
type Handler func(ctx context.Context, body []byte) (any, error)

// Conn multiplexes requests in both directions over one frame stream.
// Requests are served concurrently, each in its own goroutine, so a slow
// handler never blocks the read loop.
type Conn struct {
	rwc      io.ReadWriteCloser
	handlers map[string]Handler
	// OnBadFrame, if set, is told about frames that could not be decoded.
	OnBadFrame func(error)

	wmu     sync.Mutex
	nextID  atomic.Uint64
	mu      sync.Mutex
	pending map[uint64]chan *Frame
	closed  chan struct{}
	err     error
}

// NewConn wraps rwc. Call Serve to start reading.
func NewConn(rwc io.ReadWriteCloser, handlers map[string]Handler) *Conn {
	return &Conn{
		rwc:      rwc,
		handlers: handlers,
		pending:  make(map[uint64]chan *Frame),
		closed:   make(chan struct{}),
	}
}

// ErrClosed is returned by Call once the connection has ended.
var ErrClosed = errors.New("api: connection closed")

// Serve reads frames until the stream ends or ctx is cancelled, dispatching
// requests to handlers and replies to waiting calls. A malformed frame is
// answered with a CodeMalformed error and reading goes on; an oversized or
// truncated frame ends the connection, since the stream cannot be resynchronised.
func (c *Conn) Serve(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		<-ctx.Done()
		c.rwc.Close()
	}()
	var err error
	for {
		var f *Frame
		f, err = ReadFrame(c.rwc)
		if err != nil {
			if errors.Is(err, ErrMalformedFrame) {
				if c.OnBadFrame != nil {
					c.OnBadFrame(err)
				}
				c.send(&Frame{Reply: true, Error: &Error{Code: CodeMalformed, Message: err.Error()}})
				continue
			}
			if errors.Is(err, ErrFrameTooLarge) || errors.Is(err, ErrTruncatedFrame) {
				if c.OnBadFrame != nil {
					c.OnBadFrame(err)
				}
				c.send(&Frame{Reply: true, Error: &Error{Code: CodeMalformed, Message: err.Error() + "; closing connection"}})
			}
			break
		}
		if f.Reply {
			c.mu.Lock()
			ch := c.pending[f.ID]
			delete(c.pending, f.ID)
			c.mu.Unlock()
			if ch != nil {
				ch <- f
			}
			continue
		}
		go c.dispatch(ctx, f)
	}
	c.shutdown(err)
	return err
}

func (c *Conn) shutdown(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-c.closed:
		return
	default:
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = ErrClosed
	}
	c.err = err
	close(c.closed)
	c.rwc.Close()
}

// Close ends the connection.
func (c *Conn) Close() error {
	c.shutdown(ErrClosed)
	return nil
}

// Done is closed when the connection has ended.
func (c *Conn) Done() <-chan struct{} { return c.closed }

func (c *Conn) dispatch(ctx context.Context, f *Frame) {
	reply := &Frame{ID: f.ID, Reply: true}
	h, ok := c.handlers[f.Method]
	if !ok {
		reply.Error = Errorf(CodeUnknownMethod, "api: unknown method %q", f.Method)
		c.send(reply)
		return
	}
	body, err := safeCall(ctx, h, f.Body)
	if err == nil {
		var raw []byte
		raw, err = Marshal(body)
		reply.Body = cbor.RawMessage(raw)
	}
	if err != nil {
		var e *Error
		if !errors.As(err, &e) {
			e = &Error{Code: CodeInternal, Message: err.Error()}
		}
		reply.Body = nil
		reply.Error = e
	}
	c.send(reply)
}

// safeCall runs a handler behind a recover boundary: a bug triggered by a
// request becomes an error reply, never a crashed enclave.
func safeCall(ctx context.Context, h Handler, body []byte) (out any, err error) {
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, Errorf(CodeInternal, "api: handler panicked: %v", r)
		}
	}()
	return h(ctx, body)
}

func (c *Conn) send(f *Frame) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return WriteFrame(c.rwc, f)
}

// Call sends a request and decodes the reply body into resp (which may be
// nil). A reply error is returned as *Error.
func (c *Conn) Call(ctx context.Context, method string, req, resp any) error {
	body, err := Marshal(req)
	if err != nil {
		return fmt.Errorf("api: encode %s request: %w", method, err)
	}
	id := c.nextID.Add(1)
	ch := make(chan *Frame, 1)
	c.mu.Lock()
	select {
	case <-c.closed:
		c.mu.Unlock()
		return fmt.Errorf("%s: %w", method, c.err)
	default:
	}
	c.pending[id] = ch
	c.mu.Unlock()
	forget := func() {
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
	}
	if err := c.send(&Frame{ID: id, Method: method, Body: body}); err != nil {
		forget()
		return fmt.Errorf("api: send %s: %w", method, err)
	}
	select {
	case f := <-ch:
		if f.Error != nil {
			return f.Error
		}
		if resp == nil {
			return nil
		}
		if err := Unmarshal(f.Body, resp); err != nil {
			return fmt.Errorf("api: decode %s reply: %w", method, err)
		}
		return nil
	case <-ctx.Done():
		forget()
		return fmt.Errorf("api: %s: %w", method, ctx.Err())
	case <-c.closed:
		return fmt.Errorf("api: %s: %w", method, c.err)
	}
}
