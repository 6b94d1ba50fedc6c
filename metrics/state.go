package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// DirStats are one output directory's accounting.
type DirStats struct {
	// Dir names the directory in the label: "shared" (the output
	// directory) or "containers" (the per-container files).
	Dir     string
	Bytes   int64
	Files   int
	Evicted uint64
}

// RuntimeLogStats are one category's runtime log (container-level events).
type RuntimeLogStats struct {
	Category string // the category enum's name
	Records  int
	// Bytes is the journal's size, which --runtime-max-bytes bounds.
	Bytes int64
	// MaxBytes is that bound.
	MaxBytes int64
}

// ConnStats are the socket's connections.
type ConnStats struct {
	Open    int
	Refused uint64
}

// State reads what the server holds, when it is scraped: the server's
// own accounting, so that nothing on the request path counts for metrics.
// A nil function reports nothing.
type State struct {
	OutputDirs  func() []DirStats
	RuntimeLogs func() []RuntimeLogStats
	Connections func() ConnStats
}

var (
	dirBytesDesc = prometheus.NewDesc(namespace+"_output_dir_bytes",
		"Bytes of the server's files in an output directory, with the room reserved by writes in progress (what --max-dir-bytes, or --saas-max-dir-bytes for \"containers\", bounds).",
		[]string{"dir"}, nil)
	dirFilesDesc = prometheus.NewDesc(namespace+"_output_dir_files",
		"The server's files in an output directory.", []string{"dir"}, nil)
	dirEvictionsDesc = prometheus.NewDesc(namespace+"_output_dir_evictions_total",
		"Files the server removed from an output directory since it started: to make room for new ones, or past --max-file-age.",
		[]string{"dir"}, nil)
	rtRecordsDesc = prometheus.NewDesc(namespace+"_runtime_log_records",
		"Container-level events recorded in a category's runtime log since the node booted.", []string{"category"}, nil)
	rtBytesDesc = prometheus.NewDesc(namespace+"_runtime_log_bytes",
		"Bytes of a category's runtime log (its journal in --state-dir).", []string{"category"}, nil)
	rtMaxBytesDesc = prometheus.NewDesc(namespace+"_runtime_log_max_bytes",
		"The bound of a category's runtime log (--runtime-max-bytes): past it, RecordEvent is refused until the node reboots.", []string{"category"}, nil)
	connsOpenDesc = prometheus.NewDesc(namespace+"_connections_open",
		"Connections open on the server's Unix socket.", nil, nil)
	connsRefusedDesc = prometheus.NewDesc(namespace+"_connections_refused_total",
		"Connections the server closed at once since it started: past --max-conns-per-uid or --max-conns.", nil, nil)
)

// Describe implements prometheus.Collector.
func (s State) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{dirBytesDesc, dirFilesDesc, dirEvictionsDesc, rtRecordsDesc, rtBytesDesc, rtMaxBytesDesc, connsOpenDesc, connsRefusedDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (s State) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	if s.OutputDirs != nil {
		for _, d := range s.OutputDirs() {
			gauge(dirBytesDesc, float64(d.Bytes), d.Dir)
			gauge(dirFilesDesc, float64(d.Files), d.Dir)
			ch <- prometheus.MustNewConstMetric(dirEvictionsDesc, prometheus.CounterValue, float64(d.Evicted), d.Dir)
		}
	}
	if s.RuntimeLogs != nil {
		for _, l := range s.RuntimeLogs() {
			gauge(rtRecordsDesc, float64(l.Records), l.Category)
			gauge(rtBytesDesc, float64(l.Bytes), l.Category)
			gauge(rtMaxBytesDesc, float64(l.MaxBytes), l.Category)
		}
	}
	if s.Connections != nil {
		c := s.Connections()
		gauge(connsOpenDesc, float64(c.Open))
		ch <- prometheus.MustNewConstMetric(connsRefusedDesc, prometheus.CounterValue, float64(c.Refused))
	}
}
