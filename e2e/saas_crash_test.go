package e2e

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"google.golang.org/protobuf/encoding/protojson"

	eventlogpb "github.com/ccnp-eventlog/ccnp-eventlog/proto"
)

// Containers record without pause, with `record`'s retries, while the
// server is SIGKILLed again and again: at random moments, and at the two
// crash points of a record (after its append, after its extend, before the
// reply). A retry carries the failed call's idempotency key, so each event is
// extended once however often its call failed.
var _ = Describe("Container-level events under repeated SIGKILL", Label("saas"), func() {
	BeforeEach(requireContainerCallers)

	It("records each key that succeeded exactly once, in journal order, and the platform log replays to the live RTMR3", func(ctx SpecContext) {
		requireFeatures(FeatureSignals, FeatureSharedSocket)
		saas := newSAASServer(SimulatedHardware{Seed: 43})
		ctrs := []*fakeContainer{newFakeContainer(layoutContainerd), newFakeContainer(layoutCgroupfs), newFakeContainer(layoutContainerd), newFakeContainer(layoutCgroupfs)}

		// Each server's life: the crash point it is started with (it dies
		// at its first new record), or none (SIGKILLed from here after a
		// while); the last one stays up.
		lives := []string{"", "after-extend", "", "after-append", "", ""}
		var (
			srv      Server
			mu       sync.Mutex
			attempts []recordAttempt
			wg       sync.WaitGroup
		)
		stop := make(chan struct{})
		for i, point := range lives {
			cfg := ServerConfig{Hardware: saas.hardware, ExtraArgs: saas.args(), SocketOf: srv}
			if point != "" {
				cfg.Env = []string{"EVENTLOG_TEST_CRASH_POINT=" + point}
				// Not waited for: it may die before it answers a health check.
				srv = target.LaunchServer(ctx, cfg)
			} else {
				srv = target.StartServer(ctx, cfg)
			}
			if i == 0 {
				socket := srv.Socket() // every server's, as SocketOf shares it
				for ci, c := range ctrs {
					wg.Add(1)
					go func() {
						defer GinkgoRecover()
						defer wg.Done()
						for n := 0; ; n++ {
							select {
							case <-stop:
								return
							default:
							}
							key := fmt.Sprintf("ctr%d-record%d", ci, n)
							a := c.recordRetrying(ctx, socket, "event "+key, key)
							mu.Lock()
							attempts = append(attempts, a)
							mu.Unlock()
						}
					}()
				}
			}
			switch {
			case point != "":
				Expect(srv.WaitExit(ctx).Signal).To(Equal(syscall.SIGKILL), "the server with crash point %s; its log:\n%s", point, srv.Logs())
				Expect(srv.Logs()).To(ContainSubstring("crash point reached"))
			case i < len(lives)-1:
				time.Sleep(500*time.Millisecond + rand.N(time.Second))
				srv.Signal(syscall.SIGKILL)
				Expect(srv.WaitExit(ctx).Signal).To(Equal(syscall.SIGKILL))
			default:
				time.Sleep(time.Second)
				close(stop)
				wg.Wait()
			}
		}

		// Every call succeeded, retries and all.
		byKey := map[string]recordAttempt{}
		again, retries := 0, 0
		for _, a := range attempts {
			retries += strings.Count(a.stderr, "retrying in")
			Expect(a.err).NotTo(HaveOccurred(), "%s recording %s:\n%s", a.ctr, a.key, a.stderr)
			Expect(byKey).NotTo(HaveKey(a.key))
			byKey[a.key] = a
			if a.reply.AlreadyRecorded {
				again++
			}
		}
		GinkgoWriter.Printf("%d records by %d containers across %d server lives, %d retries; %d answered by a retry as already recorded\n", len(attempts), len(ctrs), len(lives), retries, again)
		Expect(again).To(BeNumerically(">=", 2), "the calls cut off at each crash point were retried and answered with their first outcome")

		// The journal holds exactly the keys that succeeded, each once.
		records := saas.journal()
		Expect(records).To(HaveLen(len(byKey)), "records in the runtime log: one per key that succeeded")
		own := map[string]int{}
		var recorded []string
		boot := saas.src.total()
		for i, r := range records {
			a, ok := byKey[r.Key]
			Expect(ok).To(BeTrue(), "record %d has key %q, which no call succeeded with", r.Seq, r.Key)
			delete(byKey, r.Key)
			Expect(r.ContainerID).To(Equal(a.ctr.id), "the container of %s", r.Key)
			Expect(string(eventData(r.Event))).To(Equal(a.data))
			own[r.ContainerID]++
			// Each reply, the first or one given again, is the outcome the
			// journal says.
			Expect(a.reply.EventNum).To(BeEquivalentTo(own[r.ContainerID]), "%s's event number in its container's log", r.Key)
			Expect(a.reply.LogEventNum).To(BeEquivalentTo(boot+i+1), "%s's event number in the platform log", r.Key)
			Expect(a.reply.Digests).To(Equal(map[string]string{"sha384": sha384Hex(a.data)}))
			recorded = append(recorded, a.data)
		}
		Expect(byKey).To(BeEmpty(), "keys that succeeded and are not in the runtime log")

		// The platform log is the boot log and those events in journal
		// order, once each; it replays to the live RTMR3 (VerifyEventlog
		// MATCH), which is the extend of each once.
		saas.expectConsistent(ctx, srv, recorded)
		for _, c := range ctrs {
			var want []string
			for _, r := range records {
				if r.ContainerID == c.id {
					want = append(want, string(eventData(r.Event)))
				}
			}
			Expect(datas(c.ownLog(ctx, srv))).To(Equal(want), "%s's own log", c)
		}
	})
})

// recordAttempt is one `record` run, retries included.
type recordAttempt struct {
	ctr       *fakeContainer
	key, data string
	reply     *eventlogpb.RecordEventReply
	err       error
	stderr    string
}

// recordRetrying runs `record` in the container with key, retrying on
// UNAVAILABLE for long enough to outlast a server restart.
func (c *fakeContainer) recordRetrying(ctx context.Context, socket, data, key string) recordAttempt {
	a := recordAttempt{ctr: c, key: key, data: data}
	var stdout, stderr bytes.Buffer
	cmd := c.command(ctx, 0, "record", "--socket", socket, "--data", data, "--idempotency-key", key, "--retry-for", "60s", "--timeout", "30s", "-o", "json")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	a.err = cmd.Run()
	a.stderr = stderr.String()
	if a.err == nil {
		var r eventlogpb.RecordEventReply
		if a.err = protojson.Unmarshal(stdout.Bytes(), &r); a.err == nil {
			a.reply = &r
		}
	}
	return a
}
