package session

import (
	"fmt"
	"sync"
	"time"
)

// flushTimeout bounds how long a finished session waits for its last
// messages to be handed to the host.
const flushTimeout = 10 * time.Second

// outbox runs sends in order on one goroutine, so neither tss-lib nor the
// session loop ever waits on the host.
type outbox struct {
	mu     sync.Mutex
	queue  []func() error
	closed bool
	err    error
	wake   chan struct{}
	idle   chan struct{}
}

func newOutbox() *outbox {
	o := &outbox{wake: make(chan struct{}, 1), idle: make(chan struct{})}
	go o.loop()
	return o
}

func (o *outbox) push(f func() error) {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return
	}
	o.queue = append(o.queue, f)
	o.mu.Unlock()
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

func (o *outbox) loop() {
	defer close(o.idle)
	for {
		o.mu.Lock()
		if len(o.queue) == 0 {
			if o.closed {
				o.mu.Unlock()
				return
			}
			o.mu.Unlock()
			<-o.wake
			continue
		}
		f := o.queue[0]
		o.queue = o.queue[1:]
		o.mu.Unlock()
		if err := f(); err != nil {
			o.mu.Lock()
			if o.err == nil {
				o.err = err
			}
			o.mu.Unlock()
		}
	}
}

// finish stops accepting sends and waits for queued ones. It reports the
// first send error, so a result is not claimed while peers never got our
// last round.
func (o *outbox) finish(timeout time.Duration) error {
	o.mu.Lock()
	o.closed = true
	o.mu.Unlock()
	select {
	case o.wake <- struct{}{}:
	default:
	}
	select {
	case <-o.idle:
	case <-time.After(timeout):
		return fmt.Errorf("session: outgoing messages not handed to the host within %s", timeout)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.err != nil {
		return fmt.Errorf("session: relaying a message failed: %w", o.err)
	}
	return nil
}
