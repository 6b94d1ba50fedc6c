package runtimelog_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"github.com/ccnp-eventlog/ccnp-eventlog/runtimelog"
	"github.com/ccnp-eventlog/ccnp-eventlog/simulator"
)

// BenchmarkRecord: the runtime log alone (no gRPC, no caller to identify),
// on the simulated TD, its journal on this machine's disk (not tmpfs), b.N
// records from 1 and 8 goroutines at once, each a container of its own.
func BenchmarkRecord(b *testing.B) {
	for _, n := range []int{1, 8} {
		b.Run(fmt.Sprintf("containers=%d", n), func(b *testing.B) {
			td, err := simulator.NewTDX(simulator.TDXConfig{Seed: 7})
			if err != nil {
				b.Fatal(err)
			}
			boot, err := td.ReadLog(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			state, err := os.MkdirTemp("", "rtbench")
			if err != nil {
				b.Fatal(err)
			}
			defer os.RemoveAll(state)
			dir, err := runtimelog.OpenDir(state)
			if err != nil {
				b.Fatal(err)
			}
			defer dir.Close()
			rt := runtimelog.New(dir, eventlog.TDX, td, runtimelog.Limits{MaxEvents: 1 << 20, MaxBytes: 1 << 30, MaxLogBytes: 1 << 30}, quiet)
			defer rt.Close()
			rt.Open(context.Background(), boot.Parsed)
			var fsyncs atomic.Int64
			runtimelog.CountFsyncs(b, func() { fsyncs.Add(1) })
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for c := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := c; i < b.N; i += n {
						if _, err := rt.Record(context.Background(), runtimelog.Request{Container: container(c), Type: eventlog.EvEventTag, Data: []byte(fmt.Sprint("measurement ", i))}); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "rec/s")
			b.ReportMetric(float64(b.N)/float64(fsyncs.Load()), "rec/fsync")
		})
	}
}
