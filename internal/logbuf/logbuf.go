// Package logbuf buffers a log's lines in memory and writes them out
// together, at least every interval, so that a line costs no system call of
// its own: the request log of a server answering thousands of requests a
// second would otherwise write once per request.
//
// The buffer is bounded. When its reader cannot keep up (a stalled pipe, a
// flood of requests), lines that do not fit are dropped and counted, and the
// count is reported after the next write: the server never holds unbounded
// memory for its log, and a request never waits for the log's reader.
// Lines that must not wait or be dropped (start-up, warnings about the
// server itself) go through Now, which writes them, after everything
// buffered before them, at once.
package logbuf

import (
	"io"
	"sync"
	"time"
)

// Writer is a bounded log buffer in front of out. Each Write must be one
// or more whole lines (as log/slog's handlers write them).
type Writer struct {
	out    io.Writer
	max    int
	onDrop func(lines int)

	mu      sync.Mutex
	buf     []byte
	spare   []byte
	dropped int
	closed  bool

	// wmu orders the writes to out: one at a time, in the order their
	// lines came.
	wmu  sync.Mutex
	kick chan struct{}
	stop chan struct{}
	done chan struct{}
}

// New returns a Writer holding at most max bytes of lines, written to out
// every interval, or sooner when half full; onDrop, if not nil, is told how
// many lines were dropped since the last write, after it (it may log
// through Now).
func New(out io.Writer, max int, interval time.Duration, onDrop func(lines int)) *Writer {
	w := &Writer{out: out, max: max, onDrop: onDrop, buf: make([]byte, 0, max), spare: make([]byte, 0, max),
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go w.run(interval)
	return w
}

// Write buffers p, or drops it (and counts it) when it does not fit. It
// never blocks on out.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return w.writeNow(p)
	}
	if len(w.buf)+len(p) > w.max {
		w.dropped++
		w.mu.Unlock()
		w.wake()
		return len(p), nil
	}
	w.buf = append(w.buf, p...)
	half := len(w.buf) > w.max/2
	w.mu.Unlock()
	if half {
		w.wake()
	}
	return len(p), nil
}

func (w *Writer) wake() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// Now is a writer whose lines are written at once, after every line
// buffered before them.
func (w *Writer) Now() io.Writer { return nowWriter{w} }

type nowWriter struct{ w *Writer }

func (n nowWriter) Write(p []byte) (int, error) { return n.w.writeNow(p) }

func (w *Writer) writeNow(p []byte) (int, error) {
	w.wmu.Lock()
	w.mu.Lock()
	b := append(w.take(), p...)
	dropped := w.dropped
	w.dropped = 0
	w.mu.Unlock()
	_, err := w.out.Write(b)
	w.give(b)
	w.wmu.Unlock()
	w.reportDrops(dropped)
	return len(p), err
}

// take hands out the buffered lines, leaving the spare buffer in their
// place. w.mu and w.wmu are held.
func (w *Writer) take() []byte {
	b := w.buf
	w.buf, w.spare = w.spare[:0], nil
	return b
}

// give takes a written buffer back as the spare, unless it grew past the
// bound (a long line written through Now). w.wmu is held.
func (w *Writer) give(b []byte) {
	if cap(b) > w.max {
		b = make([]byte, 0, w.max)
	}
	w.mu.Lock()
	w.spare = b[:0]
	w.mu.Unlock()
}

// Flush writes the buffered lines.
func (w *Writer) Flush() error {
	w.wmu.Lock()
	w.mu.Lock()
	if len(w.buf) == 0 && w.dropped == 0 {
		w.mu.Unlock()
		w.wmu.Unlock()
		return nil
	}
	b := w.take()
	dropped := w.dropped
	w.dropped = 0
	w.mu.Unlock()
	var err error
	if len(b) > 0 {
		_, err = w.out.Write(b)
	}
	w.give(b)
	w.wmu.Unlock()
	w.reportDrops(dropped)
	return err
}

func (w *Writer) reportDrops(n int) {
	if n > 0 && w.onDrop != nil {
		w.onDrop(n)
	}
}

func (w *Writer) run(interval time.Duration) {
	defer close(w.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
		case <-w.kick:
		}
		w.Flush()
	}
}

// Close writes what is buffered and stops the periodic writes; lines
// written after are written at once.
func (w *Writer) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	w.mu.Unlock()
	close(w.stop)
	<-w.done
	return w.Flush()
}
