package main

import (
	"context"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	eventlogpb "github.com/ccnp-eventlog/ccnp-eventlog/proto"
)

// BenchmarkColdStart: from starting a server process to the first reply
// of a full log, on the simulated TD: the 300-event log of the load
// benchmarks, and a 5,000-event log filling a 1 MiB CCEL area (its JSON is
// 3.4 MB). The clock starts before the process is; the client connects as
// soon as the socket takes connections and asks at once (a first request
// waits for the log's first read). The time includes the process's start,
// the simulator making its log, the read, parse and encoding. Each of
// min(b.N, 10) runs starts a server of its own; the median and the slowest
// are reported, the median time until the socket took a connection, and
// the median time of the first request itself (sent as soon as the socket
// took the connection: the HTTP/2 handshake, and the reply read, parsed
// and encoded, or waited for).
//
// The server is the binary EVENTLOG_COLDSTART_BINARY names, which `make
// bench` builds as the image does (static, stripped: what a node starts);
// without it, this test binary, whose start is slower (it is dynamically
// linked, and has the tests' packages to initialise too).
func BenchmarkColdStart(b *testing.B) {
	binary := os.Getenv("EVENTLOG_COLDSTART_BINARY")
	if binary == "" {
		b.Log("EVENTLOG_COLDSTART_BINARY unset: timing this test binary as the server, not the image's")
	}
	for _, c := range []struct {
		name string
		env  []string
	}{
		{"300-events", []string{"EVENTLOG_SIM_TDX_EVENTS=300", "EVENTLOG_SIM_AREA_SIZE=262144"}},
		{"1MiB", []string{"EVENTLOG_SIM_TDX_EVENTS=5000", "EVENTLOG_SIM_AREA_SIZE=1048576"}},
	} {
		b.Run(c.name, func(b *testing.B) {
			var times, listening, requests []time.Duration
			var events uint32
			for range min(b.N, 10) {
				cmd := exec.Command(os.Args[0])
				if binary != "" {
					cmd = exec.Command(binary)
				}
				start := time.Now()
				s := spawn(b, cmd, c.env...)
				reply, listen, request := firstReply(b, s.socket, start)
				times = append(times, time.Since(start))
				listening = append(listening, listen)
				requests = append(requests, request)
				events = reply.EventCount
				s.cmd.Process.Kill()
				s.cmd.Wait()
			}
			if events < 300 {
				b.Fatalf("the first reply holds %d events", events)
			}
			for _, d := range [][]time.Duration{times, listening, requests} {
				slices.Sort(d)
			}
			b.ReportMetric(ms(listening[len(listening)/2]), "listen-median-ms")
			b.ReportMetric(ms(requests[len(requests)/2]), "request-median-ms")
			b.ReportMetric(ms(times[len(times)/2]), "median-ms")
			b.ReportMetric(ms(times[len(times)-1]), "max-ms")
			b.ReportMetric(float64(events), "events")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// firstReply connects to socket as soon as it takes connections, and
// returns the first full-log reply, when the socket took a connection, and
// how long the request took.
func firstReply(b *testing.B, socket string, start time.Time) (*eventlogpb.GetEventlogReply, time.Duration, time.Duration) {
	var conn net.Conn
	for {
		var err error
		if conn, err = net.Dial("unix", socket); err == nil {
			break
		}
		if time.Since(start) > 30*time.Second {
			b.Fatalf("the server did not listen within 30s: %v", err)
		}
		time.Sleep(100 * time.Microsecond)
	}
	listen := time.Since(start)
	used := false
	cc, err := grpc.NewClient("passthrough:///"+strconv.Quote(socket), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			if !used {
				used = true
				return conn, nil
			}
			return (&net.Dialer{}).DialContext(ctx, "unix", socket)
		}))
	if err != nil {
		b.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sent := time.Now()
	reply, err := eventlogpb.NewEventlogClient(cc).GetEventlog(ctx, &eventlogpb.GetEventlogRequest{})
	if err != nil {
		b.Fatal(err)
	}
	return reply, listen, time.Since(sent)
}
