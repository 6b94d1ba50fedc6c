package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
)

// gather collects c alone, by metric name.
func gather(c prometheus.Collector) (map[string]*dto.MetricFamily, error) {
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		return nil, err
	}
	mfs, err := reg.Gather()
	byName := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		byName[mf.GetName()] = mf
	}
	return byName, err
}

// The state is read when scraped, as it is then.
func TestStateReadAtScrape(t *testing.T) {
	dirs := []DirStats{{Dir: "shared", Bytes: 100, Files: 2, Evicted: 1}}
	open := 3
	s := State{
		OutputDirs: func() []DirStats { return dirs },
		RuntimeLogs: func() []RuntimeLogStats {
			return []RuntimeLogStats{{Category: "TDX_EVENTLOG", Records: 5, Bytes: 4096, MaxBytes: 1 << 20}}
		},
		Connections: func() ConnStats { return ConnStats{Open: open, Refused: 7} },
	}
	want := func(bytes, files, evicted, conns string) string {
		return `
# HELP eventlog_server_connections_open Connections open on the server's Unix socket.
# TYPE eventlog_server_connections_open gauge
eventlog_server_connections_open ` + conns + `
# HELP eventlog_server_connections_refused_total Connections the server closed at once since it started: past --max-conns-per-uid or --max-conns.
# TYPE eventlog_server_connections_refused_total counter
eventlog_server_connections_refused_total 7
# HELP eventlog_server_output_dir_bytes Bytes of the server's files in an output directory, with the room reserved by writes in progress (what --max-dir-bytes, or --saas-max-dir-bytes for "containers", bounds).
# TYPE eventlog_server_output_dir_bytes gauge
eventlog_server_output_dir_bytes{dir="shared"} ` + bytes + `
# HELP eventlog_server_output_dir_evictions_total Files the server removed from an output directory since it started: to make room for new ones, or past --max-file-age.
# TYPE eventlog_server_output_dir_evictions_total counter
eventlog_server_output_dir_evictions_total{dir="shared"} ` + evicted + `
# HELP eventlog_server_output_dir_files The server's files in an output directory.
# TYPE eventlog_server_output_dir_files gauge
eventlog_server_output_dir_files{dir="shared"} ` + files + `
# HELP eventlog_server_runtime_log_bytes Bytes of a category's runtime log (its journal in --state-dir).
# TYPE eventlog_server_runtime_log_bytes gauge
eventlog_server_runtime_log_bytes{category="TDX_EVENTLOG"} 4096
# HELP eventlog_server_runtime_log_max_bytes The bound of a category's runtime log (--runtime-max-bytes): past it, RecordEvent is refused until the node reboots.
# TYPE eventlog_server_runtime_log_max_bytes gauge
eventlog_server_runtime_log_max_bytes{category="TDX_EVENTLOG"} 1.048576e+06
# HELP eventlog_server_runtime_log_records Container-level events recorded in a category's runtime log since the node booted.
# TYPE eventlog_server_runtime_log_records gauge
eventlog_server_runtime_log_records{category="TDX_EVENTLOG"} 5
`
	}
	if err := testutil.CollectAndCompare(s, strings.NewReader(want("100", "2", "1", "3"))); err != nil {
		t.Error(err)
	}
	dirs[0] = DirStats{Dir: "shared", Bytes: 50, Files: 1, Evicted: 2}
	open = 0
	if err := testutil.CollectAndCompare(s, strings.NewReader(want("50", "1", "2", "0"))); err != nil {
		t.Error(err)
	}
	// Without sources, nothing.
	if n := testutil.CollectAndCount(State{}); n != 0 {
		t.Errorf("an empty State reports %d metrics", n)
	}
}
