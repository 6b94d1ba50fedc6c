package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/ccnp-eventlog/ccnp-eventlog/hwsource"
	"github.com/ccnp-eventlog/ccnp-eventlog/internal/uiddial"
	eventlogpb "github.com/ccnp-eventlog/ccnp-eventlog/proto"
)

// promptly bounds how long the server may take to refuse a file it must
// not read: a read that blocked would take forever, one of 64 MiB seconds.
const promptly = time.Second

// timedGet makes one call and returns how long it took.
func timedGet(ctx context.Context, c eventlogpb.EventlogClient, req *eventlogpb.GetEventlogRequest) (time.Duration, error) {
	start := time.Now()
	_, err := getEventlog(ctx, c, req)
	return time.Since(start), err
}

// plantFIFO replaces a file of a host tree with a named pipe. With a
// writer, the test holds the pipe open and never writes: a reader that got
// past open would then block in read.
func plantFIFO(root, hostPath string, writer bool) {
	GinkgoHelper()
	path := filepath.Join(root, hostPath)
	Expect(os.Remove(path)).To(Succeed())
	Expect(syscall.Mkfifo(path, 0o644)).To(Succeed())
	if writer {
		w, err := os.OpenFile(path, os.O_RDWR, 0) // RDWR: does not wait for a reader
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(w.Close)
	}
}

var _ = Context("hostile local user", Label("hostile"), func() {
	// A FIFO at a log path used to hang the category for good: the open
	// blocked while holding the category's lock, health stayed NOT_SERVING,
	// waiting handlers piled up, and SIGTERM waited out the drain.
	for _, tc := range []struct {
		cat      eventlogpb.CATEGORY
		other    eventlogpb.CATEGORY
		hostPath string
		writer   bool
	}{
		{tdx, tpm, hwsource.CCELDataPath, true},
		{tpm, tdx, hwsource.TPMLogPath, false},
	} {
		Context(fmt.Sprintf("who puts a FIFO at %s's path (%s)", categoryName(tc.cat), tc.hostPath), Ordered, func() {
			var (
				root   string
				srv    Server
				client eventlogpb.EventlogClient
			)
			BeforeAll(func(ctx SpecContext) {
				requireFeatures(FeatureHostTrees)
				root = target.NewHostTree()
				writeFakeHost(root, 31)
				plantFIFO(root, tc.hostPath, tc.writer)
				// A long drain: a stop that waited for stuck requests would
				// show as one that takes this long.
				srv = target.StartServer(ctx, ServerConfig{Hardware: Hardware{Tree: root}, DrainTimeout: 30 * time.Second})
				client = newClient(srv)
			})

			It("answers FAILED_PRECONDITION naming the path and what it is, within a second, every time", func(ctx SpecContext) {
				path := srv.ServerPath(filepath.Join(root, tc.hostPath))
				for range 10 {
					took, err := timedGet(ctx, client, request(tc.cat, 0, 0, ccnpJSON))
					Expect(err).To(haveStatus(codes.FailedPrecondition, containAll(path, "is a named pipe, not a regular file")))
					Expect(took).To(BeNumerically("<", promptly), "refusing the FIFO took %s", took)
				}
			})

			It("keeps serving the other category, and reports SERVING", func(ctx SpecContext) {
				n := &brokenNode{root: root, srv: srv, client: client}
				n.expectServes(ctx, tc.other)
				n.expectHealth(ctx, healthpb.HealthCheckResponse_SERVING)
			})

			It("stops promptly on SIGTERM while clients keep asking for the FIFO's log", func(ctx SpecContext) {
				requireFeatures(FeatureSignals)
				stop := make(chan struct{})
				var wg sync.WaitGroup
				for range 8 {
					wg.Go(func() {
						for {
							select {
							case <-stop:
								return
							default:
							}
							getEventlog(ctx, client, request(tc.cat, 0, 0, ccnpJSON))
						}
					})
				}
				time.Sleep(200 * time.Millisecond)
				start := time.Now()
				srv.Signal(syscall.SIGTERM)
				st := srv.WaitExit(ctx)
				took := time.Since(start)
				close(stop)
				wg.Wait()
				Expect(st.Code).To(Equal(0), "exit status %s; its log:\n%s", st, srv.Logs())
				Expect(took).To(BeNumerically("<", 10*time.Second), "the server took %s to stop (its drain timeout is 30s)", took)
			})
		})
	}

	// A directory, /dev/zero or a huge file used to give INTERNAL and be
	// read again, up to 64 MiB, on every request.
	Context("who puts a directory and a huge file at the log paths", Ordered, func() {
		var (
			root   string
			srv    Server
			client eventlogpb.EventlogClient
		)
		BeforeAll(func(ctx SpecContext) {
			requireFeatures(FeatureHostTrees)
			root = target.NewHostTree()
			writeFakeHost(root, 37)
			table := filepath.Join(root, hwsource.CCELTablePath)
			Expect(os.Remove(table)).To(Succeed())
			Expect(os.Mkdir(table, 0o755)).To(Succeed())
			log := filepath.Join(root, hwsource.TPMLogPath)
			Expect(os.Truncate(log, 1<<40)).To(Succeed()) // sparse: 1 TiB that costs nothing
			srv = target.StartServer(ctx, ServerConfig{Hardware: Hardware{Tree: root}})
			client = newClient(srv)
		})

		It("answers FAILED_PRECONDITION for the directory, naming it, within a second", func(ctx SpecContext) {
			for range 5 {
				took, err := timedGet(ctx, client, request(tdx, 0, 0, ccnpJSON))
				Expect(err).To(haveStatus(codes.FailedPrecondition, containAll(
					srv.ServerPath(filepath.Join(root, hwsource.CCELTablePath)), "is a directory, not a regular file")))
				Expect(took).To(BeNumerically("<", promptly))
			}
		})

		It("answers FAILED_PRECONDITION for the huge file, naming it and the limit, without reading it", func(ctx SpecContext) {
			for range 5 {
				took, err := timedGet(ctx, client, request(tpm, 0, 0, tcgRaw))
				Expect(err).To(haveStatus(codes.FailedPrecondition, containAll(
					srv.ServerPath(filepath.Join(root, hwsource.TPMLogPath)), fmt.Sprintf("holds more than %d bytes", 8<<20))))
				Expect(took).To(BeNumerically("<", promptly))
			}
		})
	})

	// One uid used to hold 10,500 idle connections, until the server ran
	// out of file descriptors; nobody else could connect, and nothing was
	// logged.
	Context("who floods the socket with connections", Ordered, func() {
		const (
			perUID    = 128 // the server's default --max-conns-per-uid
			flood     = 200
			handshake = 2 * time.Second
		)
		var (
			srv      Server
			held     []net.Conn
			refused  int
			hw       Hardware
			treeRoot string
		)
		BeforeAll(func(ctx SpecContext) {
			requireFeatures(FeatureHostTrees)
			if os.Geteuid() != 0 {
				Skip("connecting as uid 65534 needs root")
			}
			treeRoot = target.NewHostTree()
			writeCorpusTree(treeRoot, "cos-113-tdx", "tpm_rhel8-uefi.bin", 0o644)
			hw = Hardware{Tree: treeRoot}
			srv = target.StartServer(ctx, ServerConfig{Hardware: hw, ExtraArgs: []string{"--handshake-timeout=" + handshake.String()}})
			// Another unprivileged uid than the flood's: this connection
			// must not count against the flooder's cap.
			if c, err := uiddial.Dial(nobody-1, srv.Socket()); errors.Is(err, unix.EACCES) {
				Skip(fmt.Sprintf("an unprivileged uid cannot reach the server's socket from here: %v", err))
			} else if err == nil {
				c.Close()
			}

			By(fmt.Sprintf("opening %d connections as uid %d, each beginning HTTP/2 and then idling", flood, nobody))
			for range flood {
				c, err := uiddial.Dial(nobody, srv.Socket())
				// The log only if it failed: on kind, Logs() is a kubectl run.
				Expect(err).NotTo(HaveOccurred(), func() string { return "the server's log:\n" + srv.Logs() })
				DeferCleanup(func() { c.Close() })
				// The client preface and an empty SETTINGS frame: past the
				// handshake timeout, the connection is merely idle.
				_, err = c.Write([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00"))
				if err == nil {
					held = append(held, c)
				} else {
					refused++ // closed by the server before the write
				}
			}
			By("telling which the server kept: it closed the others at once")
			var kept []net.Conn
			for _, c := range held {
				if isOpen(c) {
					kept = append(kept, c)
				} else {
					refused++
				}
			}
			held = kept
		})

		It("keeps the flooding uid to its cap", func() {
			Expect(held).To(HaveLen(perUID), "connections from uid %d the server kept", nobody)
			Expect(refused).To(Equal(flood - perUID))
		})

		It("still answers another uid's GetEventlog, and eventlog-server probe passes", func(ctx SpecContext) {
			client := newClient(srv) // as root
			reply := mustGetEventlog(ctx, client, request(tdx, 0, 0, tcgRaw))
			Expect(reply.TotalEvents).To(BeEquivalentTo(len(readTreeLog(treeRoot, tdx).Events)))
			stdout, stderr, code := runCommand(ctx, bin.Server, "probe", "--socket", srv.Socket())
			Expect(code).To(Equal(0), "probe: %s%s", stdout, stderr)
			Expect(strings.TrimSpace(stdout)).To(Equal("SERVING"))
		})

		It("logs that the cap was hit: the first refusal at once, not a line per connection", func() {
			logs := srv.Logs()
			lines := regexp.MustCompile(`(?m)^.*connections refused: connection cap reached.*uid=65534.*$`).FindAllString(logs, -1)
			Expect(lines).NotTo(BeEmpty(), "no refusal logged; the server's log:\n%s", logs)
			Expect(lines[0]).To(SatisfyAll(ContainSubstring("cap=per-uid"), ContainSubstring(fmt.Sprintf("limit=%d", perUID)), ContainSubstring("refused=1 ")))
			Expect(len(lines)).To(BeNumerically("<=", 2), "one line per uid per minute, not one per refused connection:\n%s", strings.Join(lines, "\n"))
		})

		It("closes a connection that never begins HTTP/2 after --handshake-timeout", func(ctx SpecContext) {
			// Room for one more from the flooder.
			Expect(held[0].Close()).To(Succeed())
			var silent net.Conn
			Eventually(func() bool {
				c, err := uiddial.Dial(nobody, srv.Socket())
				Expect(err).NotTo(HaveOccurred())
				if !isOpen(c) {
					c.Close()
					return false
				}
				silent = c
				return true
			}).WithTimeout(10 * time.Second).Should(BeTrue())
			defer silent.Close()
			start := time.Now()
			silent.SetReadDeadline(time.Now().Add(time.Minute))
			_, err := io.Copy(io.Discard, silent) // the server's settings, then its close
			Expect(err).NotTo(HaveOccurred(), "the server did not close the silent connection")
			Expect(time.Since(start)).To(BeNumerically("<", handshake+10*time.Second))
		})

		It("serves the flooding uid again once its connections are gone", func(ctx SpecContext) {
			for _, c := range held {
				c.Close()
			}
			conn, err := grpc.NewClient("unix://"+srv.Socket(), grpc.WithTransportCredentials(insecure.NewCredentials()),
				grpc.WithContextDialer(func(context.Context, string) (net.Conn, error) { return uiddial.Dial(nobody, srv.Socket()) }))
			Expect(err).NotTo(HaveOccurred())
			defer conn.Close()
			client := eventlogpb.NewEventlogClient(conn)
			Eventually(ctx, func() error {
				_, err := getEventlog(ctx, client, request(tdx, 0, 0, tcgRaw))
				return err
			}).WithTimeout(30 * time.Second).Should(Succeed())
		})
	})
})

// isOpen reports whether the server holds c open, waiting for what it
// sends first: HTTP/2 settings on a connection it serves, its end on one it
// refused. Waiting for either, not for a short silence, matters on a loaded
// machine: a connection still in the listen backlog is silent, yet the
// server will refuse it once it gets to it.
func isOpen(c net.Conn) bool {
	GinkgoHelper()
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	defer c.SetReadDeadline(time.Time{})
	_, err := c.Read(make([]byte, 1))
	switch {
	case err == nil:
		return true // the server's settings: it serves this connection
	case errors.Is(err, io.EOF), errors.Is(err, unix.ECONNRESET):
		return false
	}
	Fail("reading a connection, the server neither served nor closed it: " + err.Error())
	return false
}
