package e2e

import (
	"cmp"
	"context"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	eventlogpb "github.com/ccnp-eventlog/ccnp-eventlog/proto"
)

var _ = Describe("The server's lifecycle", Label("lifecycle"), func() {
	Context("when killed with SIGKILL", Ordered, func() {
		hw := simulatedHardware(SimulatedHardware{Seed: 17})
		var (
			srv    Server
			client eventlogpb.EventlogClient
			src    *sourceLog
			before *eventlogpb.GetEventlogReply
		)
		BeforeAll(func(ctx SpecContext) {
			requireFeatures(FeatureSignals, FeatureRestart)
			hardware, srcs := hw.setUp()
			src = srcs[tdx]
			srv = target.StartServer(ctx, ServerConfig{Hardware: hardware})
			// One client, kept across the crash, as a long-lived workload's.
			client = newClient(srv)
			before = mustGetEventlog(ctx, client, request(tdx, 0, 0, tcgRaw))
		})

		It("dies, leaving its socket behind, and clients get UNAVAILABLE", func(ctx SpecContext) {
			srv.Signal(syscall.SIGKILL)
			Expect(srv.WaitExit(ctx).Signal).To(Equal(syscall.SIGKILL))

			info, err := os.Lstat(srv.Socket())
			Expect(err).NotTo(HaveOccurred(), "a killed server cannot remove its socket")
			Expect(info.Mode().Type()).To(Equal(fs.ModeSocket))
			_, err = net.Dial("unix", srv.Socket())
			Expect(err).To(MatchError(syscall.ECONNREFUSED), "nothing listens on the stale socket")

			_, err = getEventlog(ctx, client, request(tdx, 0, 0, tcgRaw))
			Expect(status.Code(err)).To(Equal(codes.Unavailable))
		})

		It("restarts on the stale socket, and a client that keeps retrying gets answers again", func(ctx SpecContext) {
			srv.Restart(ctx)
			Expect(srv.Logs()).NotTo(ContainSubstring("another server is answering"))
			var reply *eventlogpb.GetEventlogReply
			Eventually(ctx, func() error {
				var err error
				reply, err = getEventlog(ctx, client, request(tdx, 0, 0, tcgRaw))
				return err
			}).WithTimeout(time.Minute).WithPolling(100 * time.Millisecond).Should(Succeed())
			expectServed(srv, reply, src, tcgRaw, 1, src.total())
		})

		It("hands out the file it wrote before the crash again, unchanged", func(ctx SpecContext) {
			Expect(readReply(srv, before)).To(HaveLen(len(expectedRaw(src, 1, src.total()))))
			again := mustGetEventlog(ctx, client, request(tdx, 0, 0, tcgRaw))
			Expect(again.EventlogDataLoc).To(Equal(before.EventlogDataLoc))
			Expect(again.Sha256).To(Equal(before.Sha256))
		})

		It("refuses to start a second server on the socket of a live one", func(ctx SpecContext) {
			requireFeatures(FeatureSharedSocket)
			second := target.LaunchServer(ctx, ServerConfig{Hardware: Hardware{Simulated: &SimulatedHardware{Seed: 17}}, SocketOf: srv})
			Expect(second.WaitExit(ctx).Code).To(Equal(1))
			Expect(second.Logs()).To(ContainSubstring("another server is answering on " + srv.Socket()))

			By("checking that the first server still answers")
			expectServed(srv, mustGetEventlog(ctx, client, request(tdx, 2, 3, ccnpJSON)), src, ccnpJSON, 2, 4)
		})
	})

	Context("when stopped with SIGTERM", Ordered, func() {
		// Requests for most of a 9000-event log in JSON take long enough
		// (hundreds of milliseconds each in a -race build) that they are
		// still in flight when the signal comes.
		const inFlight = 6
		hw := simulatedHardware(SimulatedHardware{Seed: 19, TDXEvents: 9000, AreaSize: 1 << 20})
		var (
			srv Server
			src *sourceLog
		)
		BeforeAll(func(ctx SpecContext) {
			requireFeatures(FeatureSignals)
			hardware, srcs := hw.setUp()
			src = srcs[tdx]
			srv = target.StartServer(ctx, ServerConfig{Hardware: hardware, DrainTimeout: time.Minute})
		})

		It("finishes the requests in flight, then removes its socket and exits 0", func(ctx SpecContext) {
			type call struct {
				first    int
				reply    *eventlogpb.GetEventlogReply
				err      error
				content  []byte
				answered time.Time
			}
			calls := make([]*call, inFlight)
			var sent atomic.Int32
			var wg sync.WaitGroup
			for i := range calls {
				c := &call{first: 1 + i}
				calls[i] = c
				// Each client counts its request once it is on the wire.
				conn, err := grpc.NewClient("unix://"+srv.Socket(), grpc.WithTransportCredentials(insecure.NewCredentials()),
					grpc.WithStatsHandler(onRequestSent(func() { sent.Add(1) })))
				Expect(err).NotTo(HaveOccurred())
				DeferCleanup(conn.Close)
				client := eventlogpb.NewEventlogClient(conn)
				wg.Go(func() {
					c.reply, c.err = getEventlog(ctx, client, request(tdx, int32(c.first), 0, ccnpJSON))
					c.answered = time.Now()
					if c.err == nil {
						c.content, c.err = os.ReadFile(srv.LocalPath(c.reply.EventlogDataLoc))
					}
				})
			}
			Eventually(sent.Load).WithPolling(time.Millisecond).WithTimeout(30 * time.Second).Should(BeEquivalentTo(inFlight))
			srv.Signal(syscall.SIGTERM)
			signalled := time.Now()
			wg.Wait()

			By("checking that every request in flight was answered in full")
			answeredAfter := 0
			for _, c := range calls {
				Expect(c.err).NotTo(HaveOccurred(), "a request in flight when SIGTERM came")
				Expect(sha256Hex(c.content)).To(Equal(c.reply.Sha256))
				expectFileHolds(c.content, src, ccnpJSON, c.first, src.total())
				if c.answered.After(signalled) {
					answeredAfter++
				}
			}
			Expect(answeredAfter).To(BeNumerically(">", 0), "no request was still in flight when SIGTERM came: nothing was drained")
			GinkgoWriter.Printf("%d of %d requests were answered after SIGTERM\n", answeredAfter, inFlight)

			By("checking that the server exited 0 and removed its socket")
			Expect(srv.WaitExit(ctx).Code).To(Equal(0))
			Expect(srv.Socket()).NotTo(BeAnExistingFile())
			Expect(srv.Logs()).To(ContainSubstring("draining in-flight requests"))
		})
	})

	Context("with a small output directory", Ordered, func() {
		// The directory holds the three largest one-event raw files of the
		// log, and no more; the smallest does not fit beside them.
		limits := OutputLimits{MinFileLifetime: 2 * time.Second, MaxFileAge: 4 * time.Second}
		hw := simulatedHardware(SimulatedHardware{Seed: 29})
		var (
			srv     Server
			client  eventlogpb.EventlogClient
			src     *sourceLog
			events  []int // the events asked for, one per file: the three largest, then the smallest
			replies []*eventlogpb.GetEventlogReply
			asked   []time.Time // when each file was asked for
		)
		BeforeAll(func(ctx SpecContext) {
			requireFeatures(FeatureOutputLimits)
			hardware, srcs := hw.setUp()
			src = srcs[tdx]
			events = eventsBySize(src.log)
			events = append(events[len(events)-3:], events[0])
			for _, e := range events[:3] {
				limits.MaxDirBytes += int64(len(expectedRaw(src, e, e)))
			}
			srv = target.StartServer(ctx, ServerConfig{Hardware: hardware, Limits: limits})
			client = newClient(srv)
		})

		askFor := func(ctx context.Context, event int) (*eventlogpb.GetEventlogReply, error) {
			asked = append(asked, time.Now())
			return getEventlog(ctx, client, request(tdx, int32(event), 1, tcgRaw))
		}

		It("answers RESOURCE_EXHAUSTED, naming the directory, once it is full of files younger than their minimum lifetime", func(ctx SpecContext) {
			for _, e := range events[:3] {
				reply, err := askFor(ctx, e)
				Expect(err).NotTo(HaveOccurred())
				replies = append(replies, reply)
			}
			_, err := askFor(ctx, events[3])
			Expect(err).To(haveStatus(codes.ResourceExhausted, ContainSubstring("output directory full")))
			Expect(filepath.Dir(srv.LocalPath(pathInMessage(err)))).To(Equal(filepath.Clean(srv.OutputDir())))

			By("checking that the files handed out are still there, whole")
			for i, r := range replies {
				expectServed(srv, r, src, tcgRaw, events[i], events[i])
			}
		})

		It("makes room by removing the least recently handed out file, once it has lived its minimum lifetime", func(ctx SpecContext) {
			var reply *eventlogpb.GetEventlogReply
			Eventually(ctx, func() error {
				var err error
				reply, err = askFor(ctx, events[3])
				return err
			}).WithTimeout(30 * time.Second).WithPolling(100 * time.Millisecond).Should(Succeed())
			Expect(time.Since(asked[0])).To(BeNumerically(">=", limits.MinFileLifetime),
				"a file was removed before its minimum lifetime")
			replies = append(replies, reply)

			Expect(srv.LocalPath(replies[0].EventlogDataLoc)).NotTo(BeAnExistingFile())
			for i, r := range replies[1:] {
				expectServed(srv, r, src, tcgRaw, events[i+1], events[i+1])
			}
			Expect(dirBytes(srv.OutputDir())).To(BeNumerically("<=", limits.MaxDirBytes))
		})

		It("removes files not handed out for longer than the maximum age", func(ctx SpecContext) {
			// When each file was last asked for: the first is gone already.
			lastAsked := map[string]time.Time{}
			for i, r := range replies[1:3] {
				lastAsked[srv.LocalPath(r.EventlogDataLoc)] = asked[i+1]
			}
			lastAsked[srv.LocalPath(replies[3].EventlogDataLoc)] = asked[len(asked)-1]
			goneAt := map[string]time.Time{}
			Eventually(ctx, func() int {
				for path := range lastAsked {
					if _, seen := goneAt[path]; !seen {
						if _, err := os.Stat(path); err != nil {
							goneAt[path] = time.Now()
						}
					}
				}
				return len(lastAsked) - len(goneAt)
			}).WithTimeout(30*time.Second).WithPolling(50*time.Millisecond).Should(BeZero(), "files left in %s", srv.OutputDir())
			for path, t := range goneAt {
				Expect(t.Sub(lastAsked[path])).To(BeNumerically(">=", limits.MaxFileAge), "%s was removed before its maximum age", path)
			}
		})
	})
})

// onRequestSent is a client stats handler calling sent once per request
// written to the connection.
type onRequestSent func()

func (f onRequestSent) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }
func (f onRequestSent) HandleRPC(_ context.Context, s stats.RPCStats) {
	if _, ok := s.(*stats.OutPayload); ok {
		f()
	}
}
func (f onRequestSent) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return ctx
}
func (f onRequestSent) HandleConn(context.Context, stats.ConnStats) {}

// eventsBySize lists a log's event numbers from the smallest record to the
// largest.
func eventsBySize(l *eventlog.Log) []int {
	nums := make([]int, len(l.Events))
	for i := range nums {
		nums[i] = i + 1
	}
	slices.SortStableFunc(nums, func(a, b int) int { return cmp.Compare(len(l.Event(a).Raw), len(l.Event(b).Raw)) })
	return nums
}

// pathInMessage is the path an output error names ("writing PATH: ...").
func pathInMessage(err error) string {
	GinkgoHelper()
	m := regexp.MustCompile(`writing (\S+): `).FindStringSubmatch(status.Convert(err).Message())
	Expect(m).NotTo(BeNil(), "the error names no path: %v", err)
	return m[1]
}

// dirBytes is the size of the regular files in a directory.
func dirBytes(dir string) int64 {
	GinkgoHelper()
	entries, err := os.ReadDir(dir)
	Expect(err).NotTo(HaveOccurred())
	var total int64
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		Expect(err).NotTo(HaveOccurred())
		total += info.Size()
	}
	return total
}
