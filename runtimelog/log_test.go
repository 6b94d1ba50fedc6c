package runtimelog_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"runtime"
	"testing"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"github.com/ccnp-eventlog/ccnp-eventlog/runtimelog"
	"github.com/ccnp-eventlog/ccnp-eventlog/simulator"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

var limits = runtimelog.Limits{MaxEvents: 10, MaxBytes: 1 << 10, MaxLogBytes: 1 << 20}

// simulatedTD returns a simulated TD and its boot log.
func simulatedTD(t *testing.T) (*simulator.TDX, *eventlog.Log) {
	t.Helper()
	td, err := simulator.NewTDX(simulator.TDXConfig{Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	l, err := td.ReadLog(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return td, l.Parsed
}

func stateDir(t *testing.T) *runtimelog.Dir {
	d, _ := openDir(t)
	return d
}

// replaysTo fails unless the view's platform log replays to the live RTMR3.
func replaysTo(t *testing.T, v *runtimelog.View, td *simulator.TDX) {
	t.Helper()
	live, err := td.Registers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := runtimelog.Reconcile(v.Platform, eventlog.TDX, 4, v.Records, live); err != nil {
		t.Fatal(err)
	}
}

// TestRecord: a record returns its event and publishes the new logs, and a
// retried key returns the first outcome without a second extend.
func TestRecord(t *testing.T) {
	td, boot := simulatedTD(t)
	rt := runtimelog.New(stateDir(t), eventlog.TDX, td, limits, quiet)
	defer rt.Close()
	if v := rt.Open(context.Background(), boot); v.Disabled != nil || v.Platform != boot || v.Records != 0 {
		t.Fatalf("opened: disabled %v, records %d, the boot log as platform log: %v", v.Disabled, v.Records, v.Platform == boot)
	}
	req := runtimelog.Request{Container: ctrA, UID: 1000, Key: "k1", Type: eventlog.EvEventTag, Data: []byte("first")}
	r, err := rt.Record(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	v := rt.View()
	if r.Own != 1 || r.Again || r.Event.Num != len(boot.Events)+1 || string(r.Event.Data) != "first" || v.Records != 1 || len(v.Platform.Events) != len(boot.Events)+1 {
		t.Errorf("recorded %+v; view of %d records, %d events", r, v.Records, len(v.Platform.Events))
	}
	replaysTo(t, v, td)
	if fi, err := os.Stat(v.Journal); err != nil || v.JournalBytes != fi.Size() || v.JournalBytes == 0 {
		t.Errorf("the view says the journal holds %d bytes; on disk: %v", v.JournalBytes, fi)
	}
	own, err := v.Container(ctrA)
	if err != nil || len(own.Events) != 1 || string(own.Events[0].Data) != "first" {
		t.Errorf("the container's log: %v", err)
	}
	if l, err := v.Container(ctrB); err != nil || len(l.Events) != 0 {
		t.Errorf("a container without events: %v", err)
	}
	if n, used := rt.KeyUsed(ctrA, "k1"); !used || n != 1 {
		t.Errorf("KeyUsed = %d, %v", n, used)
	}

	again, err := rt.Record(context.Background(), req)
	if err != nil || !again.Again || again.Own != 1 || again.Event.Num != r.Event.Num || rt.View().Records != 1 {
		t.Errorf("the key again: %+v, %v", again, err)
	}
	req.Data = []byte("other")
	var conflict *runtimelog.KeyConflictError
	if _, err := rt.Record(context.Background(), req); !errors.As(err, &conflict) {
		t.Errorf("the key for another event: %v", err)
	}
	replaysTo(t, rt.View(), td)
}

// crashAt stands for the server dying at an extend: the goroutine
// recording stops where the process would, before or after the register is
// extended, and nothing after runs.
type crashAt struct {
	runtimelog.Extender
	afterExtend bool
}

func (c *crashAt) Extend(ctx context.Context, index uint32, digests []eventlog.Digest) error {
	if c.afterExtend {
		if err := c.Extender.Extend(ctx, index, digests); err != nil {
			return err
		}
	}
	runtime.Goexit()
	return nil
}

// TestCrashPoints: a record cut short by a crash at either side of its
// extend is settled by the next Open, extended once.
func TestCrashPoints(t *testing.T) {
	for _, afterExtend := range []bool{false, true} {
		td, boot := simulatedTD(t)
		dir, _ := openDir(t)
		crashing := runtimelog.New(dir, eventlog.TDX, &crashAt{Extender: td, afterExtend: afterExtend}, limits, quiet)
		crashing.Open(context.Background(), boot)
		done := make(chan struct{})
		go func() {
			defer close(done)
			crashing.Record(context.Background(), runtimelog.Request{Container: ctrA, Key: "k", Type: eventlog.EvEventTag, Data: []byte("cut short")})
			t.Error("Record returned past its crash point")
		}()
		<-done
		crashing.Close()

		rt := runtimelog.New(dir, eventlog.TDX, td, limits, quiet)
		v := rt.Open(context.Background(), boot)
		if v.Disabled != nil || v.Records != 1 {
			t.Fatalf("after a crash (after the extend: %v): disabled %v, %d records", afterExtend, v.Disabled, v.Records)
		}
		replaysTo(t, v, td)
		r, err := rt.Record(context.Background(), runtimelog.Request{Container: ctrA, Key: "k", Type: eventlog.EvEventTag, Data: []byte("cut short")})
		if err != nil || !r.Again {
			t.Errorf("the retry of the key the crash cut short: %+v, %v", r, err)
		}
		replaysTo(t, rt.View(), td)
		rt.Close()
	}
}

// TestOpenAfterClose: an Open that comes after Close serves the boot log
// and opens no journal that nothing would close.
func TestOpenAfterClose(t *testing.T) {
	td, boot := simulatedTD(t)
	dir, _ := openDir(t)
	rt := runtimelog.New(dir, eventlog.TDX, td, limits, quiet)
	rt.Close()
	v := rt.Open(context.Background(), boot)
	if v.Platform != boot || v.Disabled == nil {
		t.Errorf("after Close: platform log the boot log %v, disabled %v", v.Platform == boot, v.Disabled)
	}
	if _, err := os.Lstat(dir.JournalPath(eventlog.TDX)); err == nil {
		t.Errorf("an Open after Close made %s", dir.JournalPath(eventlog.TDX))
	}
	if _, err := rt.Record(context.Background(), runtimelog.Request{Container: ctrA, Type: eventlog.EvEventTag, Data: []byte("x")}); !errors.As(err, new(*runtimelog.UnavailableError)) {
		t.Errorf("a record after Close: %v", err)
	}
}
