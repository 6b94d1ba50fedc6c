package service_test

import (
	"context"
	"testing"

	eventlogpb "github.com/ccnp-eventlog/ccnp-eventlog/proto"
	"github.com/ccnp-eventlog/ccnp-eventlog/simulator"
)

// BenchmarkGetEventlogInProcess is the service's own cost of a repeated
// platform-level request, without gRPC or the socket: a reply-cache hit,
// for the whole 300-event log and a 5-event slice, to a file and inline.
// The server benchmarks (service/eventlog-server) measure it over the
// socket; this one shows the service's part alone, which load on the
// machine disturbs less.
func BenchmarkGetEventlogInProcess(b *testing.B) {
	td, err := simulator.NewTDX(simulator.TDXConfig{Seed: 1, Events: 300, AreaSize: 256 << 10})
	if err != nil {
		b.Fatal(err)
	}
	s := newTDXService(b, td, b.TempDir())
	defer s.Close()
	for _, c := range []struct {
		name string
		req  *eventlogpb.GetEventlogRequest
	}{
		{"full/file", &eventlogpb.GetEventlogRequest{}},
		{"slice5/file", &eventlogpb.GetEventlogRequest{StartPosition: 10, Count: 5}},
		{"slice5/inline", &eventlogpb.GetEventlogRequest{StartPosition: 10, Count: 5, Inline: true}},
	} {
		b.Run(c.name, func(b *testing.B) {
			if _, err := s.GetEventlog(context.Background(), c.req); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.GetEventlog(context.Background(), c.req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
