package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestIntegrity(t *testing.T) {
	i := NewIntegrity(5 * time.Minute)
	header := `
# HELP eventlog_server_register_match 1 when replaying a category's log gives the register's live value (in every bank compared), 0 when it does not: the log does not explain the register. Absent for registers that cannot be read live. Set by the verification every --verify-interval.
# TYPE eventlog_server_register_match gauge
`
	// Before any verification: no outcome, no timestamp.
	if n := testutil.CollectAndCount(i, "eventlog_server_register_match", "eventlog_server_last_verify_timestamp_seconds"); n != 0 {
		t.Errorf("%d metrics before the first verification", n)
	}
	if err := testutil.CollectAndCompare(i, strings.NewReader(`
# HELP eventlog_server_verify_interval_seconds --verify-interval: how often the logs are verified against the live registers (0: never), for alerts on a stale last_verify_timestamp_seconds.
# TYPE eventlog_server_verify_interval_seconds gauge
eventlog_server_verify_interval_seconds 300
`), "eventlog_server_verify_interval_seconds"); err != nil {
		t.Error(err)
	}
	i.Report("TDX_EVENTLOG", map[string]bool{"RTMR0": true, "RTMR2": false})
	i.Report("TPM_EVENTLOG", map[string]bool{"PCR0": true})
	i.Verified(time.Unix(1700000000, 500000000))
	if err := testutil.CollectAndCompare(i, strings.NewReader(header+`
eventlog_server_register_match{category="TDX_EVENTLOG",register="RTMR0"} 1
eventlog_server_register_match{category="TDX_EVENTLOG",register="RTMR2"} 0
eventlog_server_register_match{category="TPM_EVENTLOG",register="PCR0"} 1
`), "eventlog_server_register_match"); err != nil {
		t.Error(err)
	}
	if err := testutil.CollectAndCompare(i, strings.NewReader(`
# HELP eventlog_server_last_verify_timestamp_seconds When the last verification of the logs against the live registers finished (Unix time). Absent until the first has.
# TYPE eventlog_server_last_verify_timestamp_seconds gauge
eventlog_server_last_verify_timestamp_seconds 1700000000.5
`), "eventlog_server_last_verify_timestamp_seconds"); err != nil {
		t.Error(err)
	}
	// A category's outcome is replaced whole; unreadable removes it.
	i.Report("TDX_EVENTLOG", map[string]bool{"RTMR1": true})
	i.Report("TPM_EVENTLOG", nil)
	if err := testutil.CollectAndCompare(i, strings.NewReader(header+`
eventlog_server_register_match{category="TDX_EVENTLOG",register="RTMR1"} 1
`), "eventlog_server_register_match"); err != nil {
		t.Error(err)
	}
}
