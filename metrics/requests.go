// Package metrics is the server's Prometheus instrumentation: a gRPC
// interceptor that counts and times requests, collectors that read the
// server's state (output directories, runtime logs, connections) when they
// are scraped, the result of the continuous verification of the logs
// against the live registers, and the HTTP server of /metrics.
//
// Every label value is bounded: a method the server registered, a gRPC code,
// an enum value's name or "unknown"; nothing a caller sends or names (a
// container, a path, a raw number) becomes a label. The request path costs
// an atomic add and a histogram observation: the counters are a fixed table
// allocated up front, exported at scrape time.
package metrics

import (
	"context"
	"sort"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	eventlogpb "github.com/ccnp-eventlog/ccnp-eventlog/proto"
)

// namespace prefixes every metric of the server's own.
const namespace = "eventlog_server"

// Label values: unknownLabel for an enum value the server does not know
// (the request is then refused as INVALID_ARGUMENT), noLabel for a request
// that carries no such field (a health check has no category; RecordEvent
// has no level).
const (
	unknownLabel = "unknown"
	noLabel      = ""
	otherMethod  = "other"
)

// durationBuckets span a cached reply of a small slice (tens of
// microseconds) to a first read of a slow source (seconds).
var durationBuckets = []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10}

// numCodes are the gRPC codes, OK (0) to Unauthenticated (16).
const numCodes = int(codes.Unauthenticated) + 1

// Requests counts and times the server's unary requests by method, gRPC
// code, category and level. It is a prometheus.Collector; Interceptor is
// its gRPC side.
type Requests struct {
	methods map[string]*method // by full method name
	// other counts methods no service given to NewRequests has: none, when
	// every service the server registers was given.
	other *method
	all   []*method // sorted by name: the order of the export

	categories, levels labelTable
	total              *prometheus.Desc
	durations          *prometheus.HistogramVec
}

type method struct {
	name     string
	duration prometheus.Observer
	// counts is indexed by code, category and level (Requests.cell).
	counts []atomic.Uint64
}

// labelTable maps an enum's values to label values: its names, then
// unknownLabel and noLabel.
type labelTable struct {
	names   []string
	index   []int // by value: its name's place, or unknown's
	unknown int
	none    int
}

func newLabelTable(names map[int32]string) labelTable {
	var maxValue int32 = -1
	for v := range names {
		maxValue = max(maxValue, v)
	}
	var t labelTable
	values := make([]int32, 0, len(names))
	for v := range names {
		if v >= 0 {
			values = append(values, v)
		}
	}
	sort.Slice(values, func(i, j int) bool { return values[i] < values[j] })
	t.unknown, t.none = len(values), len(values)+1
	t.index = make([]int, maxValue+1)
	for i := range t.index {
		t.index[i] = t.unknown // a gap in the enum
	}
	for i, v := range values {
		t.names = append(t.names, names[v])
		t.index[v] = i
	}
	t.names = append(t.names, unknownLabel, noLabel)
	return t
}

func (t *labelTable) of(v int32) int {
	if v >= 0 && int(v) < len(t.index) {
		return t.index[v]
	}
	return t.unknown
}

// NewRequests returns the counters of the methods of services, whose
// children are all made now, so that the request path only finds them.
func NewRequests(services ...*grpc.ServiceDesc) *Requests {
	r := &Requests{
		methods:    map[string]*method{},
		categories: newLabelTable(eventlogpb.CATEGORY_name),
		levels:     newLabelTable(eventlogpb.LEVEL_name),
		total: prometheus.NewDesc(namespace+"_requests_total",
			"gRPC requests answered, by method, gRPC code (as grpc-go names it: OK, InvalidArgument, ...), event log category and level (the enum's name; \"unknown\" for a value the server does not know; empty for a request without the field). Unary methods only: reflection and health Watch streams are not counted.",
			[]string{"method", "code", "category", "level"}, nil),
		durations: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace,
			Name:      "request_duration_seconds",
			Help:      "Time the server took to answer a gRPC request, by method, from its arrival in the handler chain to its reply.",
			Buckets:   durationBuckets,
		}, []string{"method"}),
	}
	add := func(name string) *method {
		m := &method{name: name, duration: r.durations.WithLabelValues(name),
			counts: make([]atomic.Uint64, numCodes*len(r.categories.names)*len(r.levels.names))}
		r.all = append(r.all, m)
		return m
	}
	for _, sd := range services {
		for _, md := range sd.Methods {
			full := "/" + sd.ServiceName + "/" + md.MethodName
			r.methods[full] = add(full)
		}
	}
	r.other = add(otherMethod)
	sort.Slice(r.all, func(i, j int) bool { return r.all[i].name < r.all[j].name })
	return r
}

// categorized and leveled are the requests that name a category or a
// level: their generated getters.
type (
	categorized interface {
		GetEventlogCategory() eventlogpb.CATEGORY
	}
	leveled interface {
		GetEventlogLevel() eventlogpb.LEVEL
	}
)

// Interceptor is a grpc.UnaryServerInterceptor that counts and times every
// request. It allocates nothing.
func (r *Requests) Interceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := handler(ctx, req)
	m := r.methods[info.FullMethod]
	if m == nil {
		m = r.other
	}
	m.duration.Observe(time.Since(start).Seconds())
	cat, lvl := r.categories.none, r.levels.none
	if c, ok := req.(categorized); ok {
		cat = r.categories.of(int32(c.GetEventlogCategory()))
	}
	if l, ok := req.(leveled); ok {
		lvl = r.levels.of(int32(l.GetEventlogLevel()))
	}
	m.counts[r.cell(codeIndex(err), cat, lvl)].Add(1)
	return resp, err
}

// codeIndex is err's gRPC code; a code grpc-go does not define (which
// this server never returns) counts as Unknown, so that the label stays
// one of the defined names.
func codeIndex(err error) int {
	c := status.Code(err)
	if int(c) >= numCodes {
		return int(codes.Unknown)
	}
	return int(c)
}

func (r *Requests) cell(code, cat, lvl int) int {
	return (code*len(r.categories.names)+cat)*len(r.levels.names) + lvl
}

// Describe implements prometheus.Collector.
func (r *Requests) Describe(ch chan<- *prometheus.Desc) {
	ch <- r.total
	r.durations.Describe(ch)
}

// Collect implements prometheus.Collector: the counts that are not zero,
// and every method's histogram.
func (r *Requests) Collect(ch chan<- prometheus.Metric) {
	nc, nl := len(r.categories.names), len(r.levels.names)
	for _, m := range r.all {
		for i := range m.counts {
			n := m.counts[i].Load()
			if n == 0 {
				continue
			}
			code, cat, lvl := i/(nc*nl), i/nl%nc, i%nl
			ch <- prometheus.MustNewConstMetric(r.total, prometheus.CounterValue, float64(n),
				m.name, codes.Code(code).String(), r.categories.names[cat], r.levels.names[lvl])
		}
	}
	r.durations.Collect(ch)
}
