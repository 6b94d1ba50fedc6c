package metrics

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	eventlogpb "github.com/ccnp-eventlog/ccnp-eventlog/proto"
)

const (
	getMethod    = "/Eventlog/GetEventlog"
	recordMethod = "/Eventlog/RecordEvent"
	healthMethod = "/grpc.health.v1.Health/Check"
)

// call runs req through the interceptor to a handler answering err.
func call(r *Requests, method string, req any, err error) {
	r.Interceptor(context.Background(), req, &grpc.UnaryServerInfo{FullMethod: method}, func(context.Context, any) (any, error) {
		return nil, err
	})
}

// The counters are labelled by method, code, and the request's own
// category and level: enum names, "unknown" for values the server does not
// know, empty where the request has no such field.
func TestRequestsCounts(t *testing.T) {
	r := NewRequests(&eventlogpb.Eventlog_ServiceDesc, &healthpb.Health_ServiceDesc)
	tpm := &eventlogpb.GetEventlogRequest{EventlogCategory: eventlogpb.CATEGORY_TPM_EVENTLOG, EventlogLevel: eventlogpb.LEVEL_SAAS}
	for range 3 {
		call(r, getMethod, tpm, nil)
	}
	call(r, getMethod, &eventlogpb.GetEventlogRequest{}, status.Error(codes.OutOfRange, "past the end"))
	// Values no enum has: one label value each, however many there are.
	for _, v := range []int32{99, -1, 1 << 30} {
		call(r, getMethod, &eventlogpb.GetEventlogRequest{EventlogCategory: eventlogpb.CATEGORY(v), EventlogLevel: eventlogpb.LEVEL(v)}, status.Error(codes.InvalidArgument, "unknown"))
	}
	call(r, recordMethod, &eventlogpb.RecordEventRequest{EventlogCategory: eventlogpb.CATEGORY_TDX_EVENTLOG}, nil)
	call(r, healthMethod, &healthpb.HealthCheckRequest{}, nil)
	// A method no service given has, and a code grpc-go does not define.
	call(r, "/Other/Method", &healthpb.HealthCheckRequest{}, status.Error(codes.Code(42), "odd"))

	want := `
# HELP eventlog_server_requests_total gRPC requests answered, by method, gRPC code (as grpc-go names it: OK, InvalidArgument, ...), event log category and level (the enum's name; "unknown" for a value the server does not know; empty for a request without the field). Unary methods only: reflection and health Watch streams are not counted.
# TYPE eventlog_server_requests_total counter
eventlog_server_requests_total{category="TPM_EVENTLOG",code="OK",level="SAAS",method="/Eventlog/GetEventlog"} 3
eventlog_server_requests_total{category="TDX_EVENTLOG",code="OutOfRange",level="PAAS",method="/Eventlog/GetEventlog"} 1
eventlog_server_requests_total{category="unknown",code="InvalidArgument",level="unknown",method="/Eventlog/GetEventlog"} 3
eventlog_server_requests_total{category="TDX_EVENTLOG",code="OK",level="",method="/Eventlog/RecordEvent"} 1
eventlog_server_requests_total{category="",code="OK",level="",method="/grpc.health.v1.Health/Check"} 1
eventlog_server_requests_total{category="",code="Unknown",level="",method="other"} 1
`
	if err := testutil.CollectAndCompare(r, strings.NewReader(want), "eventlog_server_requests_total"); err != nil {
		t.Error(err)
	}
	// Every method has its histogram, with the requests it answered.
	if n := testutil.CollectAndCount(r, "eventlog_server_request_duration_seconds"); n != len(eventlogpb.Eventlog_ServiceDesc.Methods)+len(healthpb.Health_ServiceDesc.Methods)+1 {
		t.Errorf("%d duration histograms", n)
	}
	wantDurations := map[string]uint64{getMethod: 7, recordMethod: 1, healthMethod: 1, otherMethod: 1, "/Eventlog/VerifyEventlog": 0}
	mfs, err := gather(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range mfs["eventlog_server_request_duration_seconds"].GetMetric() {
		method := m.GetLabel()[0].GetValue()
		if want, ok := wantDurations[method]; ok && m.GetHistogram().GetSampleCount() != want {
			t.Errorf("%s: %d durations observed, want %d", method, m.GetHistogram().GetSampleCount(), want)
		}
	}
}

// The request path allocates nothing for metrics.
func TestInterceptorAllocatesNothing(t *testing.T) {
	r := NewRequests(&eventlogpb.Eventlog_ServiceDesc)
	req := &eventlogpb.GetEventlogRequest{EventlogCategory: eventlogpb.CATEGORY_TPM_EVENTLOG}
	reply := &eventlogpb.GetEventlogReply{}
	info := &grpc.UnaryServerInfo{FullMethod: getMethod}
	handler := func(context.Context, any) (any, error) { return reply, nil }
	ctx := context.Background()
	if n := testing.AllocsPerRun(1000, func() { r.Interceptor(ctx, req, info, handler) }); n != 0 {
		t.Errorf("%v allocations per request", n)
	}
}

func BenchmarkInterceptor(b *testing.B) {
	r := NewRequests(&eventlogpb.Eventlog_ServiceDesc)
	req := &eventlogpb.GetEventlogRequest{EventlogCategory: eventlogpb.CATEGORY_TPM_EVENTLOG}
	info := &grpc.UnaryServerInfo{FullMethod: getMethod}
	handler := func(context.Context, any) (any, error) { return req, nil }
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r.Interceptor(ctx, req, info, handler)
		}
	})
}
