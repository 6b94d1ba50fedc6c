package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	eventlogpb "github.com/ccnp-eventlog/ccnp-eventlog/proto"
)

var _ = Describe("Serving many clients at once", Label("load"), Ordered, func() {
	const clients = 100
	hw := simulatedHardware(SimulatedHardware{Seed: 13, TDXEvents: 240, TPMEvents: 240, AreaSize: 128 << 10})
	var (
		srv  Server
		srcs map[eventlogpb.CATEGORY]*sourceLog
		cats []eventlogpb.CATEGORY
	)
	BeforeAll(func(ctx SpecContext) {
		var hardware Hardware
		hardware, srcs = hw.setUp()
		for _, cat := range hw.categories {
			if srcs[cat] != nil && unsupported(hw.categoryRequires[cat]) == "" {
				cats = append(cats, cat)
			}
		}
		srv = target.StartServer(ctx, ServerConfig{Hardware: hardware})
	})

	It(fmt.Sprintf("gives each of %d concurrent clients, asking for different slices in both formats, a complete and right file", clients), func(ctx SpecContext) {
		type call struct {
			req     *eventlogpb.GetEventlogRequest
			first   int
			last    int
			reply   *eventlogpb.GetEventlogReply
			err     error
			content []byte // read as soon as the reply came
			readErr error
		}
		calls := make([]*call, clients)
		for i := range calls {
			cat := cats[i%len(cats)]
			format := []eventlogpb.FORMAT{ccnpJSON, tcgRaw}[i/len(cats)%2]
			n := srcs[cat].total()
			// 37 is prime to n: every client of a category and format
			// starts at a different event.
			start := 1 + (i*37)%n
			count := 1 + (i*7)%40
			calls[i] = &call{req: request(cat, int32(start), int32(count), format), first: start, last: min(start+count-1, n)}
		}

		By(fmt.Sprintf("connecting %d clients, each on its own connection", clients))
		conns := make([]eventlogpb.EventlogClient, clients)
		for i := range conns {
			conns[i] = newClient(srv)
		}

		By("having them all ask at once")
		began := time.Now()
		var wg sync.WaitGroup
		release := make(chan struct{})
		for i, c := range calls {
			wg.Go(func() {
				<-release
				c.reply, c.err = getEventlog(ctx, conns[i], c.req)
				if c.err == nil {
					c.content, c.readErr = os.ReadFile(srv.LocalPath(c.reply.EventlogDataLoc))
				}
			})
		}
		close(release)
		wg.Wait()
		GinkgoWriter.Printf("%d concurrent calls answered in %s\n", clients, time.Since(began).Round(time.Millisecond))

		By("checking every reply and the file it points at")
		var names []string
		for _, c := range calls {
			Expect(c.err).NotTo(HaveOccurred(), "GetEventlog(%v)", c.req)
			Expect(c.readErr).NotTo(HaveOccurred())
			src := srcs[c.req.EventlogCategory]
			expectReplyDescribes(srv, c.reply, src, c.req.Format, c.first, c.last)
			Expect(sha256Hex(c.content)).To(Equal(c.reply.Sha256), "the file %s, read as soon as the reply came, is not what the reply says", c.reply.EventlogDataLoc)
			expectFileHolds(c.content, src, c.req.Format, c.first, c.last)
			names = append(names, filepath.Base(c.reply.EventlogDataLoc))
		}

		By("checking that the output directory holds those files, and no file half written")
		slices.Sort(names)
		Expect(serverFiles(srv)).To(Equal(slices.Compact(names)))
	})
})

// unsupported is why the target lacks one of features, or "".
func unsupported(features []Feature) string {
	for _, f := range features {
		if why := target.Unsupported(f); why != "" {
			return why
		}
	}
	return ""
}
