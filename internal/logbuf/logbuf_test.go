package logbuf

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// sink records what is written to it, and can be made to block, as a
// stalled pipe does.
type sink struct {
	mu     sync.Mutex
	b      bytes.Buffer
	writes int
	gate   chan struct{} // when not nil, each write waits for it
}

func (s *sink) Write(p []byte) (int, error) {
	s.mu.Lock()
	gate := s.gate
	s.mu.Unlock()
	if gate != nil {
		<-gate
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes++
	return s.b.Write(p)
}

func (s *sink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestLinesWaitForTheIntervalOrNow(t *testing.T) {
	out := &sink{}
	w := New(out, 1<<20, time.Hour, nil)
	defer w.Close()
	for i := range 100 {
		fmt.Fprintf(w, "request %d\n", i)
	}
	if out.String() != "" {
		t.Fatalf("buffered lines were written before the interval: %q", out.String())
	}
	fmt.Fprintf(w.Now(), "urgent\n")
	got := out.String()
	if !strings.HasSuffix(got, "request 99\nurgent\n") || strings.Count(got, "\n") != 101 || out.writes != 1 {
		t.Errorf("Now wrote %d times: %q..., want the 100 buffered lines then its own, in one write", out.writes, got[:min(len(got), 40)])
	}
}

func TestFlushedEveryInterval(t *testing.T) {
	out := &sink{}
	w := New(out, 1<<20, 50*time.Millisecond, nil)
	defer w.Close()
	fmt.Fprintf(w, "one\n")
	deadline := time.Now().Add(10 * time.Second)
	for out.String() != "one\n" {
		if time.Now().After(deadline) {
			t.Fatal("a buffered line was not written within 10s of a 50ms interval")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestCloseWritesWhatIsBuffered(t *testing.T) {
	out := &sink{}
	w := New(out, 1<<20, time.Hour, nil)
	fmt.Fprintf(w, "last words\n")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if out.String() != "last words\n" {
		t.Errorf("after Close: %q", out.String())
	}
	fmt.Fprintf(w, "after close\n")
	if !strings.HasSuffix(out.String(), "after close\n") {
		t.Errorf("a line after Close was not written at once: %q", out.String())
	}
}

// TestStalledReaderDropsAndCounts: while the reader does not read, the
// buffer holds at most its bound, the lines past it are dropped, writers
// never wait, and the drop is reported once the reader is back.
func TestStalledReaderDropsAndCounts(t *testing.T) {
	gate := make(chan struct{})
	out := &sink{gate: gate}
	var mu sync.Mutex
	var reported int
	const max = 4096
	w := New(out, max, 10*time.Millisecond, func(n int) { mu.Lock(); reported += n; mu.Unlock() })
	line := strings.Repeat("x", 99) + "\n"
	done := make(chan struct{})
	go func() {
		for range 10000 { // 1 MB of lines against a 4 KiB bound
			w.Write([]byte(line))
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("writers waited for a stalled reader")
	}
	// Two buffers at most: the one filling and the spare, or, while the
	// stalled reader holds the spare (nil here), the one being written.
	// Whether the writers finished before the first write began is the
	// scheduler's to say: both cases hold the same.
	w.mu.Lock()
	held := cap(w.buf) + cap(w.spare)
	if w.spare == nil {
		held += max
	}
	w.mu.Unlock()
	if held > 2*max {
		t.Errorf("%d bytes held, with the buffer being written, for a %d-byte bound (two buffers)", held, max)
	}
	out.mu.Lock()
	out.gate = nil
	out.mu.Unlock()
	close(gate)
	w.Close()
	written := strings.Count(out.String(), "\n")
	mu.Lock()
	defer mu.Unlock()
	if written > 2*max/len(line) {
		t.Errorf("%d lines were held for a stalled reader, with room for %d", written, 2*max/len(line))
	}
	if written+reported != 10000 {
		t.Errorf("%d lines written and %d reported dropped, want 10000 in all", written, reported)
	}
}

func TestConcurrentWritersKeepLinesWhole(t *testing.T) {
	out := &sink{}
	w := New(out, 1<<16, time.Millisecond, nil)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 1000 {
				if i%100 == 0 {
					fmt.Fprintf(w.Now(), "g%d now %d\n", g, i)
				} else {
					fmt.Fprintf(w, "g%d line %d\n", g, i)
				}
			}
		}()
	}
	wg.Wait()
	w.Close()
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 8000 {
		t.Fatalf("%d lines, want 8000", len(lines))
	}
	last := map[string]int{}
	for _, l := range lines {
		var g, i int
		var kind string
		if _, err := fmt.Sscanf(l, "g%d %s %d", &g, &kind, &i); err != nil {
			t.Fatalf("torn line %q", l)
		}
		k := fmt.Sprint(g)
		if prev, ok := last[k]; ok && i <= prev {
			t.Fatalf("writer %d's line %d after its line %d", g, i, prev)
		}
		last[k] = i
	}
}
