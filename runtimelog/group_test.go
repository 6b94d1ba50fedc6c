package runtimelog_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"github.com/ccnp-eventlog/ccnp-eventlog/runtimelog"
)

func container(i int) string { return fmt.Sprintf("%064x", i+1) }

// slowFsyncs counts the journal's fdatasyncs, each taking d: a slow disk,
// so that records arriving together find one in flight.
func slowFsyncs(t *testing.T, d time.Duration) *atomic.Int64 {
	var n atomic.Int64
	runtimelog.CountFsyncs(t, func() { n.Add(1); time.Sleep(d) })
	return &n
}

// TestGroupCommit: records from many containers at once share fdatasyncs,
// each gets its own outcome, and the journal and the register agree, in
// journal order, then and after a restart.
func TestGroupCommit(t *testing.T) {
	td, boot := simulatedTD(t)
	dir, _ := openDir(t)
	many := runtimelog.Limits{MaxEvents: 10, MaxBytes: 1 << 10, MaxLogBytes: 1 << 20}
	rt := runtimelog.New(dir, eventlog.TDX, td, many, quiet)
	rt.Open(context.Background(), boot)
	fsyncs := slowFsyncs(t, 5*time.Millisecond)
	const n = 32
	start := make(chan struct{})
	results := make([]runtimelog.Recorded, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results[i], errs[i] = rt.Record(context.Background(), runtimelog.Request{Container: container(i), Key: fmt.Sprint("k", i), Type: eventlog.EvEventTag, Data: []byte(fmt.Sprint("event ", i))})
		}()
	}
	close(start)
	wg.Wait()
	got := fsyncs.Load()
	t.Logf("%d concurrent records took %d fdatasyncs", n, got)
	if got >= n {
		t.Errorf("%d concurrent records took %d fdatasyncs: not one shared", n, got)
	}
	v := rt.View()
	if v.Records != n {
		t.Fatalf("%d records confirmed, want %d", v.Records, n)
	}
	seen := map[int]bool{}
	for i := range n {
		r := results[i]
		if errs[i] != nil || r.Own != 1 || string(r.Event.Data) != fmt.Sprint("event ", i) || seen[r.Event.Num] {
			t.Errorf("record %d: %+v, %v", i, r, errs[i])
		}
		seen[r.Event.Num] = true
		if own, err := v.Container(container(i)); err != nil || len(own.Events) != 1 {
			t.Errorf("container %d's log: %v", i, err)
		}
		if n, used := rt.KeyUsed(container(i), fmt.Sprint("k", i)); !used || n != 1 {
			t.Errorf("key of record %d: %d %v", i, n, used)
		}
	}
	replaysTo(t, v, td)
	rt.Close()

	again := runtimelog.New(dir, eventlog.TDX, td, many, quiet)
	defer again.Close()
	if v := again.Open(context.Background(), boot); v.Disabled != nil || v.Records != n {
		t.Fatalf("reopened: disabled %v, %d records", v.Disabled, v.Records)
	}
	replaysTo(t, again.View(), td)
	// A retried key, after the restart: its first outcome.
	r, err := again.Record(context.Background(), runtimelog.Request{Container: container(3), Key: "k3", Type: eventlog.EvEventTag, Data: []byte("event 3")})
	if err != nil || !r.Again || r.Event.Num != results[3].Event.Num {
		t.Errorf("retry of k3: %+v %v, want event %d again", r, err, results[3].Event.Num)
	}
}

// TestGroupLimits: records admitted together count against a container's
// limit before any of them is confirmed.
func TestGroupLimits(t *testing.T) {
	td, boot := simulatedTD(t)
	rt := runtimelog.New(stateDir(t), eventlog.TDX, td, limits, quiet) // 10 events a container
	defer rt.Close()
	rt.Open(context.Background(), boot)
	slowFsyncs(t, 5*time.Millisecond)
	var ok, limited atomic.Int64
	var wg sync.WaitGroup
	for i := range 25 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := rt.Record(context.Background(), runtimelog.Request{Container: ctrA, Type: eventlog.EvEventTag, Data: []byte(fmt.Sprint("e", i))})
			switch {
			case err == nil:
				ok.Add(1)
			case errors.As(err, new(*runtimelog.LimitError)):
				limited.Add(1)
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	own, _ := rt.View().Container(ctrA)
	if ok.Load() != 10 || limited.Load() != 15 || len(own.Events) != 10 {
		t.Errorf("25 records at once against a limit of 10: %d recorded, %d refused, %d in the log", ok.Load(), limited.Load(), len(own.Events))
	}
	replaysTo(t, rt.View(), td)
}

// faultAt extends through Extender, but for the extend numbered at
// (counting from 1), where it calls fault instead: the test's crash or
// refusal, injected there.
type faultAt struct {
	runtimelog.Extender
	n, at atomic.Int64
	fault func() error
}

func (f *faultAt) Extend(ctx context.Context, index uint32, digests []eventlog.Digest) error {
	if f.n.Add(1) == f.at.Load() {
		return f.fault()
	}
	return f.Extender.Extend(ctx, index, digests)
}

// TestCrashInAGroup: a crash between the extends of a group leaves its
// last records in the journal and not in the register; the next Open
// extends them, in order, once.
func TestCrashInAGroup(t *testing.T) {
	td, boot := simulatedTD(t)
	dir, _ := openDir(t)
	// The goroutine stops at the extend, as the process would.
	ext := &faultAt{Extender: td, fault: func() error { runtime.Goexit(); return nil }}
	ext.at.Store(3) // the second extend of the second group
	many := runtimelog.Limits{MaxEvents: 10, MaxBytes: 1 << 10, MaxLogBytes: 1 << 20}
	crashing := runtimelog.New(dir, eventlog.TDX, ext, many, quiet)
	crashing.Open(context.Background(), boot)
	// The first record's fdatasync is slow: the others queue meanwhile and
	// make the second group.
	var first atomic.Bool
	runtimelog.CountFsyncs(t, func() {
		if first.CompareAndSwap(false, true) {
			time.Sleep(200 * time.Millisecond)
		}
	})
	const n = 8
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i > 0 {
				time.Sleep(50 * time.Millisecond)
			}
			crashing.Record(context.Background(), runtimelog.Request{Container: container(i), Key: fmt.Sprint("k", i), Type: eventlog.EvEventTag, Data: []byte(fmt.Sprint("event ", i))})
		}()
	}
	wg.Wait()
	crashing.Close()
	_, _, journal, _, err := runtimelog.ReadFile(dir.JournalPath(eventlog.TDX))
	if err != nil || len(journal) != n {
		t.Fatalf("the journal after the crash: %d records, %v; want %d", len(journal), err, n)
	}

	rt := runtimelog.New(dir, eventlog.TDX, td, many, quiet)
	defer rt.Close()
	v := rt.Open(context.Background(), boot)
	if v.Disabled != nil || v.Records != n {
		t.Fatalf("after a crash inside a group: disabled %v, %d records, want %d", v.Disabled, v.Records, n)
	}
	replaysTo(t, v, td)
	for i := range n {
		r, err := rt.Record(context.Background(), runtimelog.Request{Container: container(i), Key: fmt.Sprint("k", i), Type: eventlog.EvEventTag, Data: []byte(fmt.Sprint("event ", i))})
		if err != nil || !r.Again {
			t.Errorf("retry of k%d: %+v %v", i, r, err)
		}
	}
	replaysTo(t, rt.View(), td)
}

// TestUnextended: the live register may lack up to max of the log's last
// records, and no other value is accepted.
func TestUnextended(t *testing.T) {
	var records []runtimelog.Record
	for i := range 5 {
		records = append(records, runtimelog.Record{Seq: uint64(i + 1), ContainerID: ctrA, Event: rtmr3Event(fmt.Sprint("r", i))})
	}
	l := withEvents(t, records...)
	for lacks := 0; lacks <= 5; lacks++ {
		live := registerAfter(t, records[:5-lacks]...)
		for max := 0; max <= 5; max++ {
			m, err := runtimelog.Unextended(l, eventlog.TDX, 4, 5, max, live)
			switch {
			case lacks <= max && (err != nil || m != lacks):
				t.Errorf("lacking %d, max %d: %d, %v", lacks, max, m, err)
			case lacks > max && !errors.As(err, new(*runtimelog.MismatchError)):
				t.Errorf("lacking %d, max %d: %d, %v; want a MismatchError", lacks, max, m, err)
			}
		}
	}
	other := registerAfter(t, runtimelog.Record{Event: rtmr3Event("not in the log")})
	if _, err := runtimelog.Unextended(l, eventlog.TDX, 4, 5, 5, other); !errors.As(err, new(*runtimelog.MismatchError)) {
		t.Errorf("a register no prefix replays to: %v", err)
	}
}

// TestFailedExtendInAGroup: when an extend in a group fails and the
// register shows it did not happen, that record and the group's records
// after it (never extended) are taken back out of the journal and their
// callers told; the records before it stand, and recording goes on.
func TestFailedExtendInAGroup(t *testing.T) {
	td, boot := simulatedTD(t)
	dir, _ := openDir(t)
	ext := &faultAt{Extender: td, fault: func() error { return errors.New("the register refused the extend") }}
	ext.at.Store(3) // the second extend of the second group
	many := runtimelog.Limits{MaxEvents: 10, MaxBytes: 1 << 10, MaxLogBytes: 1 << 20}
	rt := runtimelog.New(dir, eventlog.TDX, ext, many, quiet)
	defer rt.Close()
	rt.Open(context.Background(), boot)
	var first atomic.Bool
	runtimelog.CountFsyncs(t, func() {
		if first.CompareAndSwap(false, true) {
			time.Sleep(200 * time.Millisecond)
		}
	})
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i > 0 {
				time.Sleep(50 * time.Millisecond)
			}
			_, errs[i] = rt.Record(context.Background(), runtimelog.Request{Container: container(i), Key: fmt.Sprint("k", i), Type: eventlog.EvEventTag, Data: []byte(fmt.Sprint("event ", i))})
		}()
	}
	wg.Wait()
	var failed int
	for i, err := range errs {
		if err != nil {
			failed++
			if !errors.As(err, new(*runtimelog.ExtendError)) {
				t.Errorf("record %d: %v, want an ExtendError", i, err)
			}
		}
	}
	v := rt.View()
	if failed == 0 || v.Records != n-failed || v.Disabled != nil {
		t.Fatalf("%d records failed, %d confirmed, disabled %v", failed, v.Records, v.Disabled)
	}
	_, _, journal, _, err := runtimelog.ReadFile(dir.JournalPath(eventlog.TDX))
	if err != nil || len(journal) != v.Records {
		t.Errorf("the journal holds %d records (%v), the log %d", len(journal), err, v.Records)
	}
	replaysTo(t, v, td)
	for i, err := range errs {
		if err == nil {
			continue
		}
		// Not recorded: a retry under the same key records it now.
		r, err := rt.Record(context.Background(), runtimelog.Request{Container: container(i), Key: fmt.Sprint("k", i), Type: eventlog.EvEventTag, Data: []byte(fmt.Sprint("event ", i))})
		if err != nil || r.Again {
			t.Errorf("retry of the failed k%d: %+v %v", i, r, err)
		}
	}
	if v := rt.View(); v.Records != n {
		t.Errorf("%d records after the retries, want %d", v.Records, n)
	}
	replaysTo(t, rt.View(), td)
}

// TestRacingOneKey: one container sending the same keyed record many times
// at once gets one record, and the others its outcome again.
func TestRacingOneKey(t *testing.T) {
	td, boot := simulatedTD(t)
	rt := runtimelog.New(stateDir(t), eventlog.TDX, td, limits, quiet)
	defer rt.Close()
	rt.Open(context.Background(), boot)
	slowFsyncs(t, 5*time.Millisecond)
	const n = 16
	results := make([]runtimelog.Recorded, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = rt.Record(context.Background(), runtimelog.Request{Container: ctrA, Key: "once", Type: eventlog.EvEventTag, Data: []byte("once")})
		}()
	}
	wg.Wait()
	fresh := 0
	for i := range n {
		if errs[i] != nil || results[i].Event.Num != results[0].Event.Num || results[i].Own != 1 {
			t.Errorf("call %d: %+v %v", i, results[i], errs[i])
		}
		if !results[i].Again {
			fresh++
		}
	}
	if v := rt.View(); fresh != 1 || v.Records != 1 {
		t.Errorf("%d calls recorded anew, %d records; want 1 and 1", fresh, v.Records)
	}
	replaysTo(t, rt.View(), td)
}

// TestCloseUnderRecords: a Close while records are queued and committed
// waits for the group in flight, refuses the rest, and leaves a journal
// the register agrees with.
func TestCloseUnderRecords(t *testing.T) {
	td, boot := simulatedTD(t)
	dir, _ := openDir(t)
	many := runtimelog.Limits{MaxEvents: 100, MaxBytes: 1 << 16, MaxLogBytes: 1 << 20}
	rt := runtimelog.New(dir, eventlog.TDX, td, many, quiet)
	rt.Open(context.Background(), boot)
	slowFsyncs(t, 2*time.Millisecond)
	var ok, refused atomic.Int64
	var wg sync.WaitGroup
	for c := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				_, err := rt.Record(context.Background(), runtimelog.Request{Container: container(c), Type: eventlog.EvEventTag, Data: []byte(fmt.Sprint(c, " ", i))})
				switch {
				case err == nil:
					ok.Add(1)
				case errors.As(err, new(*runtimelog.UnavailableError)):
					refused.Add(1)
				default:
					t.Error(err)
				}
			}
		}()
	}
	time.Sleep(20 * time.Millisecond)
	closed := make(chan struct{})
	go func() { rt.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(30 * time.Second):
		t.Fatal("Close did not return under records")
	}
	wg.Wait()
	if refused.Load() == 0 {
		t.Log("every record finished before Close")
	}
	again := runtimelog.New(dir, eventlog.TDX, td, many, quiet)
	defer again.Close()
	v := again.Open(context.Background(), boot)
	if v.Disabled != nil || v.Records != int(ok.Load()) {
		t.Errorf("reopened: disabled %v, %d records, %d recorded", v.Disabled, v.Records, ok.Load())
	}
	replaysTo(t, v, td)
}
