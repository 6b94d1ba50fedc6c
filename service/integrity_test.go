package service_test

import (
	"context"
	"crypto/sha512"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"github.com/ccnp-eventlog/ccnp-eventlog/hwsource"
	"github.com/ccnp-eventlog/ccnp-eventlog/internal/unixsock"
	"github.com/ccnp-eventlog/ccnp-eventlog/metrics"
	"github.com/ccnp-eventlog/ccnp-eventlog/outdir"
	eventlogpb "github.com/ccnp-eventlog/ccnp-eventlog/proto"
	"github.com/ccnp-eventlog/ccnp-eventlog/service"
	"github.com/ccnp-eventlog/ccnp-eventlog/simulator"
)

// mserver is a server as serve runs it with --metrics-addr and
// --verify-interval: request metrics, state at scrape, the continuous
// verification.
type mserver struct {
	*rserver
	reg  *prometheus.Registry
	logs *syncBuffer
}

func (e *runtimeEnv) startMonitored(t *testing.T, srcs map[eventlogpb.CATEGORY]hwsource.Source, interval, timeout time.Duration) *mserver {
	t.Helper()
	logs := &syncBuffer{}
	svc, err := service.New(srcs, service.Options{
		OutputDir: e.outDir,
		Limits:    outdir.Limits{MaxBytes: 16 << 20, MaxAge: time.Hour, MinLifetime: time.Minute},
		Logger:    slog.New(slog.NewTextHandler(logs, nil)),
		Runtime:   e.opts,
		Identity:  e.ident,
	})
	if err != nil {
		t.Fatal(err)
	}
	requests := metrics.NewRequests(&eventlogpb.Eventlog_ServiceDesc, &healthpb.Health_ServiceDesc)
	integrity := metrics.NewIntegrity(interval)
	reg, err := metrics.NewRegistry(requests, integrity, metrics.State{OutputDirs: svc.OutputStats, RuntimeLogs: svc.RuntimeStats})
	if err != nil {
		t.Fatal(err)
	}
	socket := filepath.Join(e.dir, "eventlog.sock")
	lis, err := unixsock.Listen(socket, 0o666)
	if err != nil {
		t.Fatal(err)
	}
	g, hs := svc.NewGRPCServer(grpc.ChainUnaryInterceptor(requests.Interceptor))
	ctx, cancel := context.WithCancel(context.Background())
	go svc.WatchHealth(ctx, hs, 50*time.Millisecond)
	go svc.WatchIntegrity(ctx, interval, timeout, hs, integrity)
	go g.Serve(lis)
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	s := &mserver{reg: reg, logs: logs, rserver: &rserver{
		server: &server{svc: svc, socket: socket, outDir: e.outDir, client: eventlogpb.NewEventlogClient(conn), health: healthpb.NewHealthClient(conn)},
	}}
	var once sync.Once
	s.stop = func() { once.Do(func() { conn.Close(); cancel(); g.Stop(); svc.Close() }) }
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			t.Logf("the server's log:\n%s", logs.String())
		}
	})
	waitHealth(t, s.server, healthpb.HealthCheckResponse_SERVING)
	return s
}

// values returns the samples of metric name, by their labels rendered as
// "k=v,k=v" in the registry's order.
func (s *mserver) values(t *testing.T, name string) map[string]float64 {
	t.Helper()
	mfs, err := s.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			out[strings.Join(labels, ",")] = value(m)
		}
	}
	return out
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Counter != nil:
		return m.Counter.GetValue()
	}
	return float64(m.GetHistogram().GetSampleCount())
}

// integrity waits, 10 seconds at most, for the health of
// eventlog.integrity to be want.
func (s *mserver) integrity(t *testing.T, want healthpb.HealthCheckResponse_ServingStatus) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, err := s.health.Check(context.Background(), &healthpb.HealthCheckRequest{Service: service.IntegrityService})
		if err == nil && r.Status == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("health of %s: %v %v, want %s", service.IntegrityService, r, err, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestIntegrity: the continuous verification finds every register of the
// simulated TD matching, also while containers record events (a record's
// extend is never seen without its event); a register extended behind the
// log's back is reported (register_match 0, eventlog.integrity
// NOT_SERVING, logged once), and the server's own health stays SERVING.
func TestIntegrity(t *testing.T) {
	e := newRuntimeEnv(t)
	td := e.newTDX(t)
	s := e.startMonitored(t, map[eventlogpb.CATEGORY]hwsource.Source{eventlogpb.CATEGORY_TDX_EVENTLOG: td}, 2*time.Millisecond, service.DefaultVerifyTimeout)
	s.integrity(t, healthpb.HealthCheckResponse_SERVING)
	// registers waits for a round that reports want registers: a round
	// that finds the last one still running (every 2ms here, slower under
	// the race detector) withdraws the category's claims until the next
	// one reports.
	registers := func(want int) map[string]float64 {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			got := s.values(t, "eventlog_server_register_match")
			if len(got) == want {
				return got
			}
			if time.Now().After(deadline) {
				t.Fatalf("register_match for %d registers, want %d: %v", len(got), want, got)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	allMatch := func(want int) {
		t.Helper()
		for labels, v := range registers(want) {
			if v != 1 || !strings.HasPrefix(labels, "category=TDX_EVENTLOG,register=RTMR") {
				t.Errorf("register_match{%s} = %v, want 1", labels, v)
			}
		}
	}
	allMatch(3) // RTMR0..2: the simulated boot log does not extend RTMR3

	// Records, while the verification runs every 2ms.
	e.as(t, ctrA)
	const records = 40
	for i := range records {
		s.mustRecord(t, "measurement "+string(rune('a'+i%26)))
		if strings.Contains(s.logs.String(), "does not match") {
			t.Fatalf("a mismatch reported during record %d:\n%s", i, s.logs.String())
		}
	}
	time.Sleep(50 * time.Millisecond)
	s.integrity(t, healthpb.HealthCheckResponse_SERVING)
	allMatch(4) // RTMR3 now, explained by the runtime log
	if got := s.values(t, "eventlog_server_runtime_log_records"); got["category=TDX_EVENTLOG"] != records {
		t.Errorf("runtime_log_records: %v, want %d", got, records)
	}
	if got := s.values(t, "eventlog_server_runtime_log_bytes"); got["category=TDX_EVENTLOG"] <= 0 {
		t.Errorf("runtime_log_bytes: %v", got)
	}
	if got := s.values(t, "eventlog_server_requests_total")["category=TDX_EVENTLOG,code=OK,level=,method=/Eventlog/RecordEvent"]; got != records {
		t.Errorf("%v RecordEvent requests counted, want %d", got, records)
	}

	// RTMR2 extended behind the log's back.
	digest := sha512.Sum384([]byte("not in any log"))
	if err := td.Extend(context.Background(), 3, []eventlog.Digest{{Alg: eventlog.AlgSHA384, Value: digest[:]}}); err != nil {
		t.Fatal(err)
	}
	s.integrity(t, healthpb.HealthCheckResponse_NOT_SERVING)
	time.Sleep(100 * time.Millisecond) // many more verifications
	got := registers(4)
	if got["category=TDX_EVENTLOG,register=RTMR2"] != 0 || got["category=TDX_EVENTLOG,register=RTMR0"] != 1 || got["category=TDX_EVENTLOG,register=RTMR3"] != 1 {
		t.Errorf("register_match after RTMR2 was extended behind the log's back: %v", got)
	}
	if n := strings.Count(s.logs.String(), "does not match"); n != 1 {
		t.Errorf("the mismatch was logged %d times, want once", n)
	}
	for _, line := range strings.Split(s.logs.String(), "\n") {
		if strings.Contains(line, "does not match") && (!strings.Contains(line, "level=ERROR") || !strings.Contains(line, "register=RTMR2") || !strings.Contains(line, "first_diverging_event=")) {
			t.Errorf("the mismatch's line: %s", line)
		}
	}
	waitHealth(t, s.server, healthpb.HealthCheckResponse_SERVING) // the server's own
	if r, err := s.health.Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil || r.Status != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("the server's health with a register mismatched: %v %v", r, err)
	}
	if got := s.values(t, "eventlog_server_last_verify_timestamp_seconds")[""]; time.Since(time.Unix(int64(got), 0)) > 10*time.Second {
		t.Errorf("last verification at %v", got)
	}
	// A bad request is counted under bounded labels.
	_, err := s.get(t, &eventlogpb.GetEventlogRequest{EventlogCategory: 7})
	wantCode(t, err, codes.InvalidArgument)
	if got := s.values(t, "eventlog_server_requests_total")["category=unknown,code=InvalidArgument,level=PAAS,method=/Eventlog/GetEventlog"]; got != 1 {
		t.Errorf("the request for category 7: counted %v times", got)
	}
	if got := s.values(t, "eventlog_server_output_dir_files"); len(got) != 2 {
		t.Errorf("output_dir_files: %v, want the shared and the containers directories", got)
	}
}

// hangingRegisters is a source whose register reads hang, ignoring their
// context, until released: a TPM that stopped answering.
type hangingRegisters struct {
	hwsource.Source
	hang    chan struct{}
	entered chan struct{}
}

func (h *hangingRegisters) Registers(ctx context.Context) (eventlog.Bank, error) {
	select {
	case h.entered <- struct{}{}:
	default:
	}
	<-h.hang
	return h.Source.Registers(ctx)
}

// TestIntegrityBounded: a verification that hangs is given up after its
// timeout, the category reports nothing, and no second one starts while it
// hangs; the others go on. Once it returns, the category is verified again.
func TestIntegrityBounded(t *testing.T) {
	e := newRuntimeEnv(t)
	e.opts.StateDir = "" // no runtime log: its lock is not what hangs here
	hanging := &hangingRegisters{Source: e.newTDX(t), hang: make(chan struct{}), entered: make(chan struct{}, 1)}
	tpm, err := simulator.NewTPM(simulator.TPMConfig{Seed: 6})
	if err != nil {
		t.Skip("no simulated TPM:", err)
	}
	defer tpm.Close()
	s := e.startMonitored(t, map[eventlogpb.CATEGORY]hwsource.Source{eventlogpb.CATEGORY_TDX_EVENTLOG: hanging, eventlogpb.CATEGORY_TPM_EVENTLOG: tpm}, 20*time.Millisecond, 100*time.Millisecond)
	<-hanging.entered
	s.integrity(t, healthpb.HealthCheckResponse_SERVING)
	time.Sleep(500 * time.Millisecond)
	got := s.values(t, "eventlog_server_register_match")
	for labels := range got {
		if strings.Contains(labels, "TDX_EVENTLOG") {
			t.Errorf("register_match{%s} while its registers cannot be read", labels)
		}
	}
	if got["category=TPM_EVENTLOG,register=PCR0"] != 1 {
		t.Errorf("the TPM is not verified while the TDX registers hang: %v", got)
	}
	logs := s.logs.String()
	if !strings.Contains(logs, "did not finish in time") || !strings.Contains(logs, "has not finished: skipped") {
		t.Errorf("the hang is not logged:\n%s", logs)
	}
	close(hanging.hang)
	deadline := time.Now().Add(10 * time.Second)
	for s.values(t, "eventlog_server_register_match")["category=TDX_EVENTLOG,register=RTMR0"] != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the TDX registers are not verified again once they answer")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
