package hwsource_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ccnp-eventlog/ccnp-eventlog/hwsource"
	"github.com/ccnp-eventlog/ccnp-eventlog/internal/boundedread"
	"github.com/ccnp-eventlog/ccnp-eventlog/internal/corpus"
)

// gatedSource is the real TPM backend on a real tree, whose reads wait at
// a gate the test opens: a source that is slow to answer, or never does,
// as one on a hung file system would be. It counts its reads.
type gatedSource struct {
	hwsource.Source
	gate  chan struct{}
	reads atomic.Int32
}

func (g *gatedSource) ReadLog(ctx context.Context) (hwsource.Log, error) {
	g.reads.Add(1)
	<-g.gate // like a read(2) that does not return: ctx cannot cut it short
	return g.Source.ReadLog(ctx)
}

// tpmTree writes a real TPM log under a new root and returns the root and
// the log's path.
func tpmTree(t *testing.T) (root, logPath string) {
	t.Helper()
	root = t.TempDir()
	logPath = filepath.Join(root, hwsource.TPMLogPath)
	b := corpus.Read(t, "tpm/tpm_rhel8-uefi.bin")
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(logPath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return root, logPath
}

func newCache(src hwsource.Source, retry, readTimeout time.Duration) *hwsource.LogCache {
	return hwsource.NewLogCache(src, hwsource.CacheOptions{Retry: retry, ReadTimeout: readTimeout})
}

// While a read is slow, requests wait for the one read in flight on their
// own deadlines: no second read starts, and a request that gives up
// returns at its deadline, not the read's.
func TestSlowSourceIsReadOnce(t *testing.T) {
	root, _ := tpmTree(t)
	src := &gatedSource{Source: hwsource.NewTPM(root), gate: make(chan struct{})}
	c := newCache(src, time.Minute, time.Minute)

	const waiters = 50
	var wg sync.WaitGroup
	var gaveUp atomic.Int32
	for range waiters {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			start := time.Now()
			_, err := c.Log(ctx)
			if errors.Is(err, context.DeadlineExceeded) && time.Since(start) < 5*time.Second {
				gaveUp.Add(1)
			}
		})
	}
	wg.Wait()
	if n := gaveUp.Load(); n != waiters {
		t.Errorf("%d of %d requests returned at their own deadline", n, waiters)
	}
	if n := src.reads.Load(); n != 1 {
		t.Errorf("%d reads started for %d requests, want 1", n, waiters)
	}

	// Those that wait long enough get the read's result.
	results := make(chan error, 10)
	for range 10 {
		go func() {
			p, err := c.Log(context.Background())
			if err == nil && len(p.Parsed.Events) == 0 {
				err = errors.New("no events")
			}
			results <- err
		}()
	}
	time.Sleep(50 * time.Millisecond)
	close(src.gate)
	for range 10 {
		if err := <-results; err != nil {
			t.Error(err)
		}
	}
	if n := src.reads.Load(); n != 1 {
		t.Errorf("%d reads in all, want 1", n)
	}
}

// A read that never returns is answered as timed out once requests have
// waited readTimeout for it, and then at once, from memory, without
// starting another read: one goroutine stays stuck, not one per request.
func TestHungSourceTimesOut(t *testing.T) {
	root, _ := tpmTree(t)
	src := &gatedSource{Source: hwsource.NewTPM(root), gate: make(chan struct{})}
	defer close(src.gate)
	const readTimeout = 300 * time.Millisecond
	c := newCache(src, 200*time.Millisecond, readTimeout)

	start := time.Now()
	_, err := c.Log(context.Background())
	took := time.Since(start)
	var timeout *hwsource.TimeoutError
	if !errors.As(err, &timeout) || took < readTimeout || took > readTimeout+5*time.Second {
		t.Fatalf("after %s: %v, want a *hwsource.TimeoutError after %s", took, err, readTimeout)
	}
	// Remembered, and past the retry still stuck: answered at once.
	for _, after := range []time.Duration{0, 300 * time.Millisecond} {
		time.Sleep(after)
		start = time.Now()
		if _, err := c.Log(context.Background()); !errors.As(err, &timeout) || time.Since(start) > time.Second {
			t.Errorf("%s later: %v after %s, want the timeout at once", after, err, time.Since(start))
		}
	}
	if n := src.reads.Load(); n != 1 {
		t.Errorf("%d reads started, want the one that is stuck", n)
	}
}

// A failed read is remembered for retry: requests in between get the same
// error without reading; after it, one read picks up a source that has
// appeared since.
func TestFailureRememberedUntilRetry(t *testing.T) {
	root, logPath := tpmTree(t)
	if err := os.Rename(logPath, logPath+".later"); err != nil {
		t.Fatal(err)
	}
	src := &gatedSource{Source: hwsource.NewTPM(root), gate: make(chan struct{})}
	close(src.gate)
	const retry = 500 * time.Millisecond
	c := newCache(src, retry, time.Minute)

	ctx := context.Background()
	_, first := c.Log(ctx)
	if !errors.Is(first, fs.ErrNotExist) {
		t.Fatalf("no log: %v", first)
	}
	failedAt := time.Now()
	// The log appears, but within retry the failure stands, unread.
	if err := os.Rename(logPath+".later", logPath); err != nil {
		t.Fatal(err)
	}
	for range 100 {
		if _, err := c.Log(ctx); err != first {
			if time.Since(failedAt) < retry {
				t.Fatalf("within the retry interval: %v, want the remembered error", err)
			}
			break
		}
	}
	if n := src.reads.Load(); n != 1 {
		t.Errorf("%d reads within the retry interval, want 1", n)
	}
	time.Sleep(time.Until(failedAt.Add(retry)))
	if _, err := c.Log(ctx); err != nil {
		t.Fatalf("after the retry interval: %v", err)
	}
	if n := src.reads.Load(); n != 2 {
		t.Errorf("%d reads, want 2", n)
	}
}

// A FIFO at the log's path is refused at once, not waited on, and the
// refusal too is remembered.
func TestFIFOAtLogPath(t *testing.T) {
	root, logPath := tpmTree(t)
	if err := os.Remove(logPath); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(logPath, 0o644); err != nil {
		t.Fatal(err)
	}
	c := newCache(hwsource.NewTPM(root), time.Minute, time.Minute)
	start := time.Now()
	_, err := c.Log(context.Background())
	if took := time.Since(start); took > time.Second {
		t.Errorf("took %s", took)
	}
	if !errors.As(err, new(*boundedread.FileTypeError)) || err.Error() != logPath+" is a named pipe, not a regular file" {
		t.Errorf("%v, want a *boundedread.FileTypeError naming the path", err)
	}
}

// Then runs once, in the read: callers get the log only after it returned.
func TestThenRunsInTheRead(t *testing.T) {
	root, _ := tpmTree(t)
	var calls, done atomic.Int32
	c := hwsource.NewLogCache(hwsource.NewTPM(root), hwsource.CacheOptions{Retry: time.Minute, ReadTimeout: time.Minute,
		Then: func(ctx context.Context, l *hwsource.Log) {
			calls.Add(1)
			if _, ok := ctx.Deadline(); !ok || len(l.Parsed.Events) == 0 {
				t.Errorf("Then got no deadline or no log")
			}
			time.Sleep(100 * time.Millisecond)
			done.Add(1)
		}})
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			if _, err := c.Log(context.Background()); err != nil || done.Load() != 1 {
				t.Errorf("Log returned (%v) before Then had", err)
			}
		})
	}
	wg.Wait()
	if n := calls.Load(); n != 1 {
		t.Errorf("Then called %d times, want once", n)
	}
}
