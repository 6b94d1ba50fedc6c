package main

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/ccnp-eventlog/ccnp-eventlog/connlimit"
	"github.com/ccnp-eventlog/ccnp-eventlog/hwsource"
	eventlogpb "github.com/ccnp-eventlog/ccnp-eventlog/proto"
	"github.com/ccnp-eventlog/ccnp-eventlog/simulator"
)

func TestConnLimits(t *testing.T) {
	log, _ := testLogger()
	lim, err := connLimits(connlimit.Limits{PerUID: 128, Total: 1024}, log)
	if err != nil {
		t.Fatal(err)
	}
	// The server's own uid, which exec probes run as, is not refused for
	// the total.
	if !slices.Equal(lim.TotalExempt, []uint32{uint32(os.Geteuid())}) {
		t.Errorf("TotalExempt = %v, want the server's uid %d", lim.TotalExempt, os.Geteuid())
	}
	if lim.Logger != log || lim.PerUID <= 0 || lim.Total <= 0 {
		t.Errorf("%+v", lim)
	}
	for _, bad := range []connlimit.Limits{{PerUID: -1}, {Total: -5}} {
		if _, err := connLimits(bad, log); err == nil || !strings.Contains(err.Error(), "must not be negative") {
			t.Errorf("%+v: %v", bad, err)
		}
	}
}

// TestCrashPoint: the e2e specs' crash points are installed around the
// sources that extend registers, and only from a known value.
func TestCrashPoint(t *testing.T) {
	log, _ := testLogger()
	td, err := simulator.NewTDX(simulator.TDXConfig{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	srcs := map[eventlogpb.CATEGORY]hwsource.Source{
		eventlogpb.CATEGORY_TDX_EVENTLOG: td,
		eventlogpb.CATEGORY_TPM_EVENTLOG: td.OnKernel(simulator.Kernel68), // cannot extend
	}
	if _, err := withCrashPoint(srcs, "sometime", log); err == nil || !strings.Contains(err.Error(), "unknown crash point") {
		t.Errorf("an unknown crash point: %v", err)
	}
	same, err := withCrashPoint(srcs, "", log)
	if err != nil || same[eventlogpb.CATEGORY_TDX_EVENTLOG] != hwsource.Source(td) {
		t.Errorf("without a crash point the sources changed: %v", err)
	}
	crashing, err := withCrashPoint(srcs, "after-extend", log)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := crashing[eventlogpb.CATEGORY_TDX_EVENTLOG].(*crashingExtender); !ok {
		t.Errorf("the TDX source that extends is %T, not wrapped", crashing[eventlogpb.CATEGORY_TDX_EVENTLOG])
	}
	if _, ok := crashing[eventlogpb.CATEGORY_TPM_EVENTLOG].(hwsource.CannotExtend); !ok {
		t.Errorf("the source that cannot extend lost its reason: %T", crashing[eventlogpb.CATEGORY_TPM_EVENTLOG])
	}
}
