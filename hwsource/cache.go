package hwsource

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// LogCache holds a source's log once read. Firmware logs do not change
// after boot, so a log is read once. A failed read is remembered for retry
// and answered from memory, then the source is read again, so a source
// that appears later (staged by an init container, a permission fixed) is
// picked up, at most one read per retry.
//
// One goroutine reads a source at a time, and no lock is held while it
// does: callers wait for its result on their own deadline, and for at most
// the read timeout. A read that never returns (a hung file system) keeps
// its one goroutine and is answered as timed out (a failure like any
// other); it blocks nothing else.
type LogCache struct {
	src  Source
	opts CacheOptions
	log  atomic.Pointer[Log]

	// mu guards the fields below; it is never held across a read.
	mu          sync.Mutex
	reading     *read // the read in flight, if any
	failed      error // the last read's error, answered until failedUntil
	failedUntil time.Time
}

// CacheOptions configure a LogCache.
type CacheOptions struct {
	// Retry is how long a failed read is remembered.
	Retry time.Duration
	// ReadTimeout is how long callers wait for a read.
	ReadTimeout time.Duration
	// Then, if set, is called with each log read, in the read: callers wait
	// for it as for the read, and get the log once it has returned. Its
	// context ends at the read's deadline.
	Then func(context.Context, *Log)
}

// TimeoutError is a source whose read has not finished in the time callers
// wait for it: a hung file system or device.
type TimeoutError struct {
	Source string
	After  time.Duration
}

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("reading the %s has not finished after %s: the source does not answer (a hung file system or device?)", e.Source, e.After)
}

// read is one read of a source; done is closed when l or err is set.
type read struct {
	done     chan struct{}
	deadline time.Time
	l        *Log
	err      error
}

// NewLogCache returns a cache of src's log; nothing is read until asked.
func NewLogCache(src Source, opts CacheOptions) *LogCache {
	return &LogCache{src: src, opts: opts}
}

// Log returns the log, reading the source if it has not been.
func (c *LogCache) Log(ctx context.Context) (*Log, error) {
	if l := c.log.Load(); l != nil {
		return l, nil
	}
	r, err := c.read()
	if err != nil {
		return nil, err
	}
	wait := time.NewTimer(time.Until(r.deadline))
	defer wait.Stop()
	select {
	case <-r.done:
		return r.l, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-wait.C:
		return nil, c.timedOut(r)
	}
}

// read returns the read in flight, starting one unless the last failure is
// still to be remembered (it is returned instead).
func (c *LogCache) read() (*read, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r := c.reading; r != nil {
		return r, nil
	}
	if l := c.log.Load(); l != nil { // a read finished since Log looked
		r := &read{done: make(chan struct{}), l: l}
		close(r.done)
		return r, nil
	}
	if c.failed != nil && time.Now().Before(c.failedUntil) {
		return nil, c.failed
	}
	r := &read{done: make(chan struct{}), deadline: time.Now().Add(c.opts.ReadTimeout)}
	c.reading = r
	go c.load(r)
	return r, nil
}

// load reads the source, publishes the result and ends the read. Its
// context is its own: whoever's call started it may go away, while others
// wait for it.
func (c *LogCache) load(r *read) {
	ctx, cancel := context.WithDeadline(context.Background(), r.deadline)
	defer cancel()
	l, err := c.src.ReadLog(ctx)
	if err == nil {
		r.l = &l
		if c.opts.Then != nil {
			c.opts.Then(ctx, r.l)
		}
		c.log.Store(r.l)
	}
	r.err = err
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reading = nil
	if r.err != nil {
		c.failed, c.failedUntil = r.err, time.Now().Add(c.opts.Retry)
	}
	close(r.done)
}

// timedOut is the answer to a call that waited for r past its deadline;
// the read keeps its goroutine until it returns, and no other starts.
func (c *LogCache) timedOut(r *read) error {
	err := &TimeoutError{Source: c.src.Name(), After: c.opts.ReadTimeout}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.reading == r {
		c.failed, c.failedUntil = err, time.Now().Add(c.opts.Retry)
	}
	return err
}
