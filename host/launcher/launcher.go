// Package launcher starts a dev enclave as a local child process and reports
// its failures with the enclave's own words. (In production the enclave is
// started by nitro-cli and reached over vsock; nothing here applies.)
package launcher

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/sealsign/sealsign/enclave/transport"
)

// Process is a running dev enclave.
type Process struct {
	cmd    *exec.Cmd
	tail   *tailBuffer
	exited chan struct{}
	err    error
}

// Start runs bin with args and env added to the current environment; the
// enclave's stderr goes to logw and is kept for error messages.
func Start(bin string, args, env []string, logw io.Writer) (*Process, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	tail := &tailBuffer{max: 4096}
	var w io.Writer = tail
	if logw != nil {
		w = io.MultiWriter(tail, logw)
	}
	cmd.Stdout = w
	cmd.Stderr = w
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("launcher: start enclave %s: %w", bin, err)
	}
	p := &Process{cmd: cmd, tail: tail, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// Exited is closed when the enclave process has ended.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Failure describes how the process ended, with its last output lines.
func (p *Process) Failure() error {
	return fmt.Errorf("launcher: enclave exited (%v): %s", p.err, strings.TrimSpace(p.tail.String()))
}

// Stop asks the enclave to exit and waits briefly, then kills it.
func (p *Process) Stop() {
	p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
	}
}

// WaitDial dials addr until it answers, the process exits, or ctx ends.
func (p *Process) WaitDial(ctx context.Context, addr transport.Addr) (io.ReadWriteCloser, error) {
	for {
		c, err := transport.Dial(ctx, addr)
		if err == nil {
			return c, nil
		}
		select {
		case <-p.exited:
			return nil, p.Failure()
		case <-ctx.Done():
			return nil, fmt.Errorf("launcher: enclave did not listen on %s: %w", addr, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// tailBuffer keeps the last max bytes written.
type tailBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
}

func (t *tailBuffer) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf.Write(b)
	if t.buf.Len() > t.max {
		rest := t.buf.Bytes()[t.buf.Len()-t.max:]
		t.buf = *bytes.NewBuffer(append([]byte(nil), rest...))
	}
	return len(b), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.buf.String()
}
