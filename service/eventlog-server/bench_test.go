package main

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	eventlogpb "github.com/ccnp-eventlog/ccnp-eventlog/proto"
)

// The benchmarks drive a real server process over its Unix socket, as the
// node's workloads do. The server is this test binary run again with
// benchServerEnv set: TestMain then runs the serve command instead of tests.
const benchServerEnv = "EVENTLOG_BENCH_SERVE"

func TestMain(m *testing.M) {
	if os.Getenv(benchServerEnv) == "1" {
		os.Exit(dispatch([]string{"serve"}))
	}
	if socket := os.Getenv(connectorEnv); socket != "" {
		os.Exit(runConnector(socket))
	}
	if socket := os.Getenv(floorServerEnv); socket != "" {
		os.Exit(serveFloor(socket))
	}
	// The test binary linked as grpc_health_probe is the server's binary
	// run under that name (healthprobe_test.go).
	if filepath.Base(os.Args[0]) == grpcHealthProbeName {
		os.Exit(run(os.Args))
	}
	os.Exit(m.Run())
}

type serverProcess struct {
	cmd    *exec.Cmd
	socket string
	outDir string
}

// startServer starts a server process, on simulated hardware unless env
// says otherwise, and returns once its health is SERVING (its sources read);
// its flags are EVENTLOG_* environment variables.
func startServer(b testing.TB, env ...string) *serverProcess {
	b.Helper()
	return launchServer(b, healthpb.HealthCheckResponse_SERVING, env...)
}

// startUnhealthyServer starts a server process that cannot serve (no
// source works), and returns once it answers health checks.
func startUnhealthyServer(b testing.TB, env ...string) *serverProcess {
	b.Helper()
	return launchServer(b, healthpb.HealthCheckResponse_NOT_SERVING, env...)
}

// spawnServer starts a server process, on simulated hardware unless env
// says otherwise, and returns at once; its flags are EVENTLOG_* environment
// variables.
func spawnServer(b testing.TB, env ...string) *serverProcess {
	b.Helper()
	return spawn(b, serverCommand(b), env...)
}

// spawn is spawnServer with the server run by cmd.
func spawn(b testing.TB, cmd *exec.Cmd, env ...string) *serverProcess {
	b.Helper()
	// The output directory is tmpfs in production (/run): use tmpfs here too.
	tmp := "/dev/shm"
	if _, err := os.Stat(tmp); err != nil {
		tmp = ""
	}
	dir, err := os.MkdirTemp(tmp, "elbench")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	s := &serverProcess{socket: filepath.Join(dir, "eventlog.sock"), outDir: filepath.Join(dir, "out"), cmd: cmd}
	s.cmd.Env = append(os.Environ(), benchServerEnv+"=1",
		"EVENTLOG_HWSOURCE=simulated",
		"EVENTLOG_SOCKET="+s.socket,
		"EVENTLOG_OUTPUT_DIR="+s.outDir,
		// Not the default under /var/lib: tests keep to their directory.
		"EVENTLOG_STATE_DIR="+filepath.Join(dir, "state"))
	s.cmd.Env = append(s.cmd.Env, env...)
	for _, kv := range env { // the last of a variable wins, as for the server
		if v, ok := strings.CutPrefix(kv, "EVENTLOG_SOCKET="); ok {
			s.socket = v
		}
	}
	// Request logging stays on, as in production; its lines go nowhere
	// unless BENCH_SERVER_STDERR names a file for them (with
	// GODEBUG=gctrace=1, the server's heap can be watched there).
	if f := os.Getenv("BENCH_SERVER_STDERR"); f != "" {
		if s.cmd.Stderr, err = os.Create(f); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.cmd.Process.Kill(); s.cmd.Wait() })
	return s
}

// launchServer starts a server process and waits, for 30 seconds at most,
// until its health is want: a server answers health checks before it has
// read its sources, NOT_SERVING until then.
func launchServer(b testing.TB, want healthpb.HealthCheckResponse_ServingStatus, env ...string) *serverProcess {
	b.Helper()
	s := spawnServer(b, env...)
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st, err := probe(ctx, s.socket, "")
		cancel()
		if err == nil && st == want {
			return s
		}
		if time.Now().After(deadline) {
			b.Fatalf("the server did not come up %s within 30s: last answer %s (%v)", want, st, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// peakRSS reads the server's high-water resident set size, in bytes.
func (s *serverProcess) peakRSS(b *testing.B) int64 { return s.statusBytes(b, "VmHWM") }

// currentRSS reads the server's resident set size now, in bytes.
func (s *serverProcess) currentRSS(b *testing.B) int64 { return s.statusBytes(b, "VmRSS") }

// statusBytes reads one of the sizes /proc/PID/status gives in kB, in bytes.
func (s *serverProcess) statusBytes(b *testing.B, field string) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb << 10
		}
	}
	b.Fatalf("no %s in /proc/%d/status", field, s.cmd.Process.Pid)
	return 0
}

func (s *serverProcess) clients(b *testing.B, n int) []eventlogpb.EventlogClient {
	cs := make([]eventlogpb.EventlogClient, n)
	for i := range cs {
		conn, err := grpc.NewClient("unix://"+s.socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { conn.Close() })
		cs[i] = eventlogpb.NewEventlogClient(conn)
	}
	return cs
}

// loadStats is what one run of requests measured.
type loadStats struct {
	rate     float64 // requests/s
	p50, p99 time.Duration
	cpu      float64 // the server's CPU seconds per request, when measured
}

// measure sends n requests from the clients, each on its own connection,
// as fast as the server answers, after one each to connect and warm the
// server's caches.
func measure(b *testing.B, clients []eventlogpb.EventlogClient, n int, request func(client, i int) *eventlogpb.GetEventlogRequest) loadStats {
	for c, cl := range clients {
		if _, err := cl.GetEventlog(context.Background(), request(c, 0)); err != nil {
			b.Fatal(err)
		}
	}
	var next atomic.Int64
	latencies := make([][]time.Duration, len(clients))
	var wg sync.WaitGroup
	start := time.Now()
	for c, cl := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)); i <= n; i = int(next.Add(1)) {
				t := time.Now()
				if _, err := cl.GetEventlog(context.Background(), request(c, i)); err != nil {
					b.Error(err)
					return
				}
				latencies[c] = append(latencies[c], time.Since(t))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	all := slices.Concat(latencies...)
	if len(all) == 0 {
		return loadStats{}
	}
	slices.Sort(all)
	pct := func(p float64) time.Duration { return all[int(p*float64(len(all)-1))] }
	return loadStats{rate: float64(len(all)) / elapsed.Seconds(), p50: pct(0.50), p99: pct(0.99)}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// load sends b.N requests from the clients and reports throughput and
// latency percentiles.
func load(b *testing.B, clients []eventlogpb.EventlogClient, request func(client, i int) *eventlogpb.GetEventlogRequest) {
	b.ResetTimer()
	st := measure(b, clients, b.N, request)
	b.StopTimer()
	b.ReportMetric(st.rate, "req/s")
	b.ReportMetric(ms(st.p50), "p50-ms")
	b.ReportMetric(ms(st.p99), "p99-ms")
	b.ReportMetric(0, "ns/op") // per-request time is what req/s and the percentiles say
}

// BenchmarkGetEventlog: the full log and a 5-event slice of a 300-event
// simulated TDX log, with 1 and 8 clients, against the server and, in the
// same run, against the floor (floor_test.go: a gRPC server that answers
// every request with one fixed reply, the server's reply for the full
// log). Each case runs five rounds of b.N requests to each, interleaved
// (which goes first alternates), and reports the medians of the five:
// requests/s and latency of each, and the server's rate over the floor's
// (ratio), which load on the machine disturbs less than either rate, and
// each server process's CPU time per request (utime + stime), which it
// disturbs less still. The servers run on CPU 0, the clients on the other
// CPUs (pinLoad).
func BenchmarkGetEventlog(b *testing.B) {
	pinLoad(b)
	s := startServer(b, "EVENTLOG_SIM_TDX_EVENTS=300", "EVENTLOG_SIM_AREA_SIZE=262144")
	full, err := s.clients(b, 1)[0].GetEventlog(context.Background(), &eventlogpb.GetEventlogRequest{})
	if err != nil {
		b.Fatal(err)
	}
	floor := startReplyFloor(b, full)
	const rounds = 5
	for _, slice := range []struct {
		name         string
		start, count int32
	}{{"full", 0, 0}, {"slice5", 100, 5}} {
		for _, n := range []int{1, 8} {
			b.Run(fmt.Sprintf("%s/clients=%d", slice.name, n), func(b *testing.B) {
				req := &eventlogpb.GetEventlogRequest{StartPosition: slice.start, Count: slice.count}
				request := func(int, int) *eventlogpb.GetEventlogRequest { return req }
				server, floorClients := s.clients(b, n), floor.clients(b, n)
				var ours, floors []loadStats
				var ratios []float64
				// run measures a round against p, with p's CPU time per request.
				run := func(p *serverProcess, clients []eventlogpb.EventlogClient) loadStats {
					before := p.cpuTime(b)
					st := measure(b, clients, b.N, request)
					st.cpu = (p.cpuTime(b) - before) / float64(b.N+len(clients))
					return st
				}
				b.ResetTimer()
				for r := range rounds {
					var o, f loadStats
					if r%2 == 0 {
						o, f = run(s, server), run(floor, floorClients)
					} else {
						f, o = run(floor, floorClients), run(s, server)
					}
					ours, floors = append(ours, o), append(floors, f)
					ratios = append(ratios, o.rate/f.rate)
				}
				b.StopTimer()
				slices.Sort(ratios)
				b.ReportMetric(median(ours, func(l loadStats) float64 { return l.rate }), "req/s")
				b.ReportMetric(median(ours, func(l loadStats) float64 { return ms(l.p50) }), "p50-ms")
				b.ReportMetric(median(ours, func(l loadStats) float64 { return ms(l.p99) }), "p99-ms")
				b.ReportMetric(median(floors, func(l loadStats) float64 { return l.rate }), "floor-req/s")
				b.ReportMetric(median(floors, func(l loadStats) float64 { return ms(l.p99) }), "floor-p99-ms")
				b.ReportMetric(median(ours, func(l loadStats) float64 { return l.cpu * 1e6 }), "server-cpu-µs/req")
				b.ReportMetric(median(floors, func(l loadStats) float64 { return l.cpu * 1e6 }), "floor-cpu-µs/req")
				b.ReportMetric(ratios[len(ratios)/2], "ratio")
				b.ReportMetric(0, "ns/op")
				if b.N > 1 {
					b.Logf("server/floor per round, sorted: %.2f", ratios)
				}
			})
		}
	}
}

// median is the median of v over l.
func median[T any](l []T, v func(T) float64) float64 {
	x := make([]float64, len(l))
	for i := range l {
		x[i] = v(l[i])
	}
	slices.Sort(x)
	return x[len(x)/2]
}

// BenchmarkMemory100Clients: 100 clients asking for random slices of up to
// 64 events, in both formats, of a log filling a 1 MiB CCEL area; reports the
// server's peak RSS. Nearly every request writes a new file, so the files'
// minimum lifetime is cut to seconds: with the default (5 minutes) the
// directory fills and the server answers RESOURCE_EXHAUSTED, as designed.
func BenchmarkMemory100Clients(b *testing.B) {
	const events = 5000
	s := startServer(b, "EVENTLOG_SIM_TDX_EVENTS="+strconv.Itoa(events), "EVENTLOG_SIM_AREA_SIZE=1048576",
		"EVENTLOG_MIN_FILE_LIFETIME=1s", "EVENTLOG_MAX_FILE_AGE=5s", "EVENTLOG_MAX_DIR_BYTES=1073741824")
	rngs := make([]*rand.Rand, 100)
	for i := range rngs {
		rngs[i] = rand.New(rand.NewPCG(uint64(i), 1))
	}
	load(b, s.clients(b, 100), func(c, _ int) *eventlogpb.GetEventlogRequest {
		r := rngs[c]
		return &eventlogpb.GetEventlogRequest{
			StartPosition: int32(1 + r.IntN(events)),
			Count:         int32(1 + r.IntN(64)),
			Format:        eventlogpb.FORMAT(r.IntN(2)),
		}
	})
	b.ReportMetric(float64(s.peakRSS(b))/(1<<20), "peak-RSS-MiB")
}

// BenchmarkRecordEvent: container-level records over the socket, one client,
// each durable in the runtime log (on tmpfs here) before the simulated RTMR3
// is extended, without and with an idempotency key; and a retry of a
// recorded key, which the server answers from its key index without touching
// the log or the register. Each starts on a server of its own with an empty
// runtime log. New records come from 100 containers in turn (the client's
// cgroup, in the fake /proc the server reads, is rewritten before each), as
// a node's do.
func BenchmarkRecordEvent(b *testing.B) {
	proc := b.TempDir()
	self := filepath.Join(proc, strconv.Itoa(os.Getpid()))
	os.MkdirAll(self, 0o755)
	// Real cgroups, made by root, as the server checks.
	top := "/ccnp-eventlog-bench-" + strconv.Itoa(os.Getpid()) + "/docker/"
	for c := range 100 {
		makeCgroupV2(b, top+fmt.Sprintf("%064x", c+1))
	}
	as := func(c int) {
		id := fmt.Sprintf("%064x", c%100+1)
		if err := os.WriteFile(filepath.Join(self, "cgroup"), []byte("0::"+top+id+"\n"), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	run := func(b *testing.B, req func(i int) *eventlogpb.RecordEventRequest, before func(i int)) {
		as(0)
		s := startServer(b, "EVENTLOG_PROC_ROOT="+proc, "EVENTLOG_RUNTIME_MAX_BYTES=1073741824", "EVENTLOG_SAAS_MAX_DIR_BYTES=1073741824", "EVENTLOG_CRI_SOCKET=none")
		client := s.clients(b, 1)[0]
		before(-1) // the first call opens the runtime log
		if _, err := client.RecordEvent(context.Background(), req(-1)); err != nil {
			b.Fatal(err)
		}
		latencies := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		start := time.Now()
		for i := range b.N {
			before(i)
			t := time.Now()
			if _, err := client.RecordEvent(context.Background(), req(i)); err != nil {
				b.Fatal(err)
			}
			latencies = append(latencies, time.Since(t))
		}
		elapsed := time.Since(start)
		b.StopTimer()
		slices.Sort(latencies)
		pct := func(p float64) float64 {
			return float64(latencies[int(p*float64(len(latencies)-1))].Microseconds()) / 1000
		}
		b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
		b.ReportMetric(pct(0.50), "p50-ms")
		b.ReportMetric(pct(0.99), "p99-ms")
		b.ReportMetric(0, "ns/op")
	}
	for _, keyed := range []bool{false, true} {
		b.Run(fmt.Sprintf("new/keyed=%v", keyed), func(b *testing.B) {
			run(b, func(i int) *eventlogpb.RecordEventRequest {
				r := &eventlogpb.RecordEventRequest{Data: []byte(fmt.Sprintf("measurement %d", i))}
				if keyed {
					r.IdempotencyKey = fmt.Sprintf("bench-%d", i)
				}
				return r
			}, func(i int) { as((i + 1) % 100) })
		})
	}
	b.Run("retry-of-a-recorded-key", func(b *testing.B) {
		req := &eventlogpb.RecordEventRequest{Data: []byte("retried"), IdempotencyKey: "bench-retried"}
		run(b, func(int) *eventlogpb.RecordEventRequest { return req }, func(int) {})
	})
}
