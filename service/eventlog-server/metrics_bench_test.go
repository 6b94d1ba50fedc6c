package main

import (
	"fmt"
	"net"
	"os"
	"strings"
	"testing"

	eventlogpb "github.com/ccnp-eventlog/ccnp-eventlog/proto"
)

// BenchmarkGetEventlogMetrics: full-log throughput of a 300-event simulated
// TDX log with 8 clients, on a server without metrics and on one with
// --metrics-addr (every request counted and timed by the interceptor),
// side by side. Besides throughput, which a loaded machine disturbs, it
// reports the server's CPU time per request (user and system, from
// /proc/PID/stat), which load disturbs less.
func BenchmarkGetEventlogMetrics(b *testing.B) {
	pinLoad(b)
	for _, on := range []bool{false, true} {
		name := "metrics=off"
		env := []string{"EVENTLOG_SIM_TDX_EVENTS=300", "EVENTLOG_SIM_AREA_SIZE=262144"}
		if on {
			name = "metrics=on"
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			addr := l.Addr().String()
			l.Close()
			env = append(env, "EVENTLOG_METRICS_ADDR="+addr)
		}
		b.Run(name+"/full/clients=8", func(b *testing.B) {
			s := startServer(b, env...)
			req := &eventlogpb.GetEventlogRequest{}
			clients := s.clients(b, 8)
			before := s.cpuTime(b)
			load(b, clients, func(int, int) *eventlogpb.GetEventlogRequest { return req })
			b.ReportMetric(float64(s.cpuTime(b)-before)/float64(b.N+len(clients))*1e6, "server-cpu-µs/req")
		})
	}
}

// cpuTime is the server process's CPU time so far, user and system, in
// seconds.
func (s *serverProcess) cpuTime(b *testing.B) float64 {
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	f := strings.Fields(string(st[strings.LastIndexByte(string(st), ')')+2:]))
	var utime, stime float64
	if _, err := fmt.Sscan(f[11], &utime); err != nil {
		b.Fatal(err)
	}
	if _, err := fmt.Sscan(f[12], &stime); err != nil {
		b.Fatal(err)
	}
	return (utime + stime) / clockTicks
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's times: 100 on every
// Linux architecture Go supports.
const clockTicks = 100
