package main

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/ccnp-eventlog/ccnp-eventlog/connlimit"
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
