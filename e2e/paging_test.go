package e2e

import (
	"bytes"
	"fmt"
	"strconv"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"google.golang.org/grpc/codes"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"github.com/ccnp-eventlog/ccnp-eventlog/internal/tpm2eventlog"
	eventlogpb "github.com/ccnp-eventlog/ccnp-eventlog/proto"
)

// A page is a request's start_position and count, and the events (by
// number) it must return, for a log of n events.
type page func(n int) (start, count int32, first, last int)

var _ = Describe("Paging through a log", Label("paging"), Ordered, ContinueOnFailure, func() {
	hw := simulatedHardware(SimulatedHardware{Seed: 3})
	var (
		srv    Server
		client eventlogpb.EventlogClient
		srcs   map[eventlogpb.CATEGORY]*sourceLog
	)
	BeforeAll(func(ctx SpecContext) {
		var hardware Hardware
		hardware, srcs = hw.setUp()
		srv = target.StartServer(ctx, ServerConfig{Hardware: hardware})
		client = newClient(srv)
	})

	for _, cat := range hw.categories {
		Context("of "+categoryName(cat), func() {
			var src *sourceLog
			BeforeEach(func() { src = requireSource(hw, srcs, cat) })

			DescribeTable("returns the events asked for, in both formats",
				func(ctx SpecContext, p page) {
					start, count, first, last := p(src.total())
					for _, format := range []eventlogpb.FORMAT{ccnpJSON, tcgRaw} {
						By(fmt.Sprintf("asking for start_position %d, count %d in %s", start, count, format))
						reply := mustGetEventlog(ctx, client, request(cat, start, count, format))
						expectServed(srv, reply, src, format, first, last)
						if tool, err := tpm2eventlog.Find(); err == nil && format == tcgRaw && cat == tpm && src.log.Agile() {
							By("reading the raw slice with tpm2_eventlog")
							expectTPM2EventlogAgrees(ctx, tool, srv.LocalPath(reply.EventlogDataLoc), src, first, last)
						}
					}
				},
				Entry("the first event (start 1, count 1)", page(func(n int) (int32, int32, int, int) { return 1, 1, 1, 1 })),
				Entry("the first event (start 0 means the first too)", page(func(n int) (int32, int32, int, int) { return 0, 1, 1, 1 })),
				Entry("a middle event", page(func(n int) (int32, int32, int, int) { return int32(n / 2), 1, n / 2, n / 2 })),
				Entry("the last event", page(func(n int) (int32, int32, int, int) { return int32(n), 1, n, n })),
				Entry("start 2, count 5: events 2 to 6", page(func(n int) (int32, int32, int, int) { return 2, 5, 2, 6 })),
				Entry("count 0: all the rest", page(func(n int) (int32, int32, int, int) { return int32(n - 3), 0, n - 3, n })),
				Entry("a count past the end: the rest, no error", page(func(n int) (int32, int32, int, int) { return int32(n - 2), 10, n - 2, n })),
			)

			It("answers OUT_OF_RANGE, naming the number of events, for a start past the last event", func(ctx SpecContext) {
				n := src.total()
				for _, start := range []int32{int32(n + 1), 1 << 30} {
					_, err := getEventlog(ctx, client, request(cat, start, 0, ccnpJSON))
					Expect(err).To(haveStatus(codes.OutOfRange, containAll(
						"start position "+strconv.Itoa(int(start)),
						"the log has "+strconv.Itoa(n)+" events")))
				}
			})

			DescribeTable("answers INVALID_ARGUMENT for",
				func(ctx SpecContext, req *eventlogpb.GetEventlogRequest, msg string) {
					req.EventlogCategory = cat
					_, err := getEventlog(ctx, client, req)
					Expect(err).To(haveStatus(codes.InvalidArgument, ContainSubstring(msg)))
				},
				Entry("a negative start", request(0, -1, 0, ccnpJSON), "start_position (-1)"),
				Entry("a negative count", request(0, 1, -5, ccnpJSON), "count (-5)"),
				Entry("an unknown format", request(0, 1, 1, eventlogpb.FORMAT(7)), "unknown format 7"),
				Entry("an unknown level", &eventlogpb.GetEventlogRequest{EventlogLevel: eventlogpb.LEVEL(9)}, "unknown eventlog_level 9"),
			)
		})
	}

	It("answers INVALID_ARGUMENT for an unknown category", func(ctx SpecContext) {
		_, err := getEventlog(ctx, client, request(eventlogpb.CATEGORY(5), 1, 1, ccnpJSON))
		Expect(err).To(haveStatus(codes.InvalidArgument, ContainSubstring("unknown eventlog_category 5")))
	})
})

// Clients page through a log with a fixed page size. Ours number events from
// 1 (pages 1, 11, 21, ...); clients written against the upstream server count
// start_position as events to skip (pages 0, 10, 20, ...), which a server run
// with --zero-based-start serves. Each way, every event comes back exactly
// once, and the pages put together replay to the registers.
var _ = Describe("Paging page by page", Label("paging"), Ordered, ContinueOnFailure, func() {
	const pageSize = 10
	hw := simulatedHardware(SimulatedHardware{Seed: 4})
	var srcs map[eventlogpb.CATEGORY]*sourceLog
	servers := map[string]eventlogpb.EventlogClient{}
	serverOf := map[string]Server{}
	BeforeAll(func(ctx SpecContext) {
		var hardware Hardware
		hardware, srcs = hw.setUp()
		for name, args := range map[string][]string{"default": nil, "zero-based": {"--zero-based-start"}} {
			srv := target.StartServer(ctx, ServerConfig{Hardware: hardware, ExtraArgs: args})
			serverOf[name], servers[name] = srv, newClient(srv)
		}
	})

	for _, cat := range hw.categories {
		Context("of "+categoryName(cat), func() {
			var src *sourceLog
			BeforeEach(func() { src = requireSource(hw, srcs, cat) })

			DescribeTable("returns every event exactly once, in both formats",
				func(ctx SpecContext, server string, firstStart int32, firstEvent func(start int32) int) {
					srv, client := serverOf[server], servers[server]
					n := src.total()
					for _, format := range []eventlogpb.FORMAT{ccnpJSON, tcgRaw} {
						seen := make([]int, n+1)
						raw := bytes.Clone(src.log.Header.Raw) // the pages' records, put back together
						for start := firstStart; ; start += pageSize {
							first := firstEvent(start)
							last := min(first+pageSize-1, n)
							By(fmt.Sprintf("asking for start_position %d, count %d in %s: events %d to %d", start, pageSize, format, first, last))
							reply := mustGetEventlog(ctx, client, request(cat, start, pageSize, format))
							content := expectServed(srv, reply, src, format, first, last)
							for num := first; num <= last; num++ {
								seen[num]++
							}
							if format == tcgRaw {
								raw = append(raw, content[len(src.log.Header.Raw):]...)
							}
							if last == n {
								break
							}
						}
						Expect(seen[1:]).To(HaveEach(1), "times each event 1..%d was returned", n)
						if format == tcgRaw {
							By("replaying the pages put together")
							expectSameBytes(raw, src.log.Raw, "the raw pages put together")
							l, err := eventlog.Parse(raw)
							Expect(err).NotTo(HaveOccurred())
							expectReplayGivesRegisters(l, src)
						}
					}
				},
				Entry("on the default server, pages 1, 11, 21, ...", "default", int32(1), func(start int32) int { return int(start) }),
				Entry("with --zero-based-start, pages 0, 10, 20, ...", "zero-based", int32(0), func(start int32) int { return int(start) + 1 }),
			)

			It("returns count N from the start as N events on both servers", func(ctx SpecContext) {
				for _, server := range []string{"default", "zero-based"} {
					By("on the " + server + " server")
					reply := mustGetEventlog(ctx, servers[server], request(cat, 0, pageSize, tcgRaw))
					expectServed(serverOf[server], reply, src, tcgRaw, 1, pageSize)
				}
			})

			It("with --zero-based-start, counts start 2 as events to skip, as the upstream server did", func(ctx SpecContext) {
				reply := mustGetEventlog(ctx, servers["zero-based"], request(cat, 2, 5, ccnpJSON))
				expectServed(serverOf["zero-based"], reply, src, ccnpJSON, 3, 7)
			})

			It("with --zero-based-start, answers OUT_OF_RANGE for a start that skips every event", func(ctx SpecContext) {
				n := src.total()
				_, err := getEventlog(ctx, servers["zero-based"], request(cat, int32(n), 0, ccnpJSON))
				Expect(err).To(haveStatus(codes.OutOfRange, containAll(
					"start position "+strconv.Itoa(n), "the log has "+strconv.Itoa(n)+" events", "--zero-based-start")))
				By("while the default server returns the last event for the same start")
				reply := mustGetEventlog(ctx, servers["default"], request(cat, int32(n), 0, ccnpJSON))
				expectServed(serverOf["default"], reply, src, ccnpJSON, n, n)
			})
		})
	}
})
