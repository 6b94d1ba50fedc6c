package e2e

import (
	"bufio"
	"context"
	"crypto/sha512"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/ccnp-eventlog/ccnp-eventlog/hwsource"
	eventlogpb "github.com/ccnp-eventlog/ccnp-eventlog/proto"
)

// integrityService is the health service name of the continuous
// verification (service.IntegrityService).
const integrityService = "eventlog.integrity"

// scrape is one scrape of a /metrics endpoint: each sample's value by its
// series as the text format writes it, name{label="value",...} with the
// labels in name order (`eventlog_server_connections_open`,
// `eventlog_server_register_match{category="TDX_EVENTLOG",register="RTMR0"}`).
type scrape map[string]float64

// scrapeMetrics GETs url and parses the text format.
func scrapeMetrics(ctx context.Context, url string) (scrape, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("GET %s: %s: %s", url, resp.Status, b)
	}
	return parseMetrics(resp.Body)
}

func parseMetrics(r io.Reader) (scrape, error) {
	s := scrape{}
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			return nil, fmt.Errorf("not a sample: %q", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", line, err)
		}
		s[line[:i]] = v
	}
	return s, sc.Err()
}

// series names a sample as the text format writes it; labels are
// name, value pairs in name order.
func series(name string, labels ...string) string {
	if len(labels) == 0 {
		return name
	}
	var b strings.Builder
	for i := 0; i+1 < len(labels); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%q", labels[i], labels[i+1])
	}
	return name + "{" + b.String() + "}"
}

func requestsSeries(method, code string, cat, level string) string {
	return series("eventlog_server_requests_total", "category", cat, "code", code, "level", level, "method", method)
}

func registerMatch(cat eventlogpb.CATEGORY, register string) string {
	return series("eventlog_server_register_match", "category", cat.String(), "register", register)
}

// freeLocalAddr is a loopback address with a port no one listens on now.
func freeLocalAddr() string {
	GinkgoHelper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	Expect(err).NotTo(HaveOccurred())
	addr := l.Addr().String()
	l.Close()
	return addr
}

// checkService asks a server's health service about one service name.
func checkService(ctx context.Context, srv Server, service string) (healthpb.HealthCheckResponse_ServingStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	r, err := healthpb.NewHealthClient(dial(srv.Socket())).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	return r.GetStatus(), err
}

// The local target only: the suite reaches --metrics-addr on this
// machine's loopback. On kind, a pod scrapes the DaemonSet's pod
// (incluster_metrics_test.go).
var _ = Describe("Prometheus metrics and the continuous verification", Label("metrics"), func() {
	var addr string
	BeforeEach(func() {
		if target.Name() != "local" {
			Skip("the suite scrapes --metrics-addr on 127.0.0.1: the local target only (on kind, a pod scrapes the DaemonSet's pod)")
		}
		addr = freeLocalAddr()
	})
	metricsArgs := func(interval string) []string {
		return []string{"--metrics-addr", addr, "--verify-interval", interval}
	}

	It("counts requests as they are answered, reports the output directory and connections, and finds simulated hardware's registers matching", func(ctx SpecContext) {
		hw := simulatedHardware(SimulatedHardware{Seed: 21})
		hardware, srcs := hw.setUp()
		srv := target.StartServer(ctx, ServerConfig{Hardware: hardware, ExtraArgs: metricsArgs("200ms")})
		url := "http://" + addr + "/metrics"
		get := requestsSeries("/Eventlog/GetEventlog", "OK", "TDX_EVENTLOG", "PAAS")
		bad := requestsSeries("/Eventlog/GetEventlog", "InvalidArgument", "unknown", "PAAS")
		before, err := scrapeMetrics(ctx, url)
		Expect(err).NotTo(HaveOccurred())

		client := newClient(srv)
		for range 3 {
			mustGetEventlog(ctx, client, request(tdx, 0, 0, ccnpJSON))
		}
		_, err = getEventlog(ctx, client, &eventlogpb.GetEventlogRequest{EventlogCategory: 42})
		Expect(err).To(haveStatus(codes.InvalidArgument, ContainSubstring("42")))

		after, err := scrapeMetrics(ctx, url)
		Expect(err).NotTo(HaveOccurred())
		Expect(after[get] - before[get]).To(Equal(3.0))
		Expect(after[bad] - before[bad]).To(Equal(1.0))
		Expect(after[series("eventlog_server_request_duration_seconds_count", "method", "/Eventlog/GetEventlog")]).To(BeNumerically(">=", 4))
		Expect(after[series("eventlog_server_output_dir_files", "dir", "shared")]).To(BeNumerically(">=", 1))
		Expect(after[series("eventlog_server_output_dir_bytes", "dir", "shared")]).To(BeNumerically(">", 0))
		Expect(after).To(HaveKey(series("eventlog_server_output_dir_evictions_total", "dir", "shared")))
		Expect(after[series("eventlog_server_connections_open")]).To(BeNumerically(">=", 1))
		Expect(after).To(HaveKey("go_goroutines"))
		Expect(after).To(HaveKey("process_open_fds"))
		// No label carries what a caller sent.
		for s := range after {
			Expect(s).NotTo(ContainSubstring("42"), "a label value from the request")
		}

		// Every register the simulated logs extend matches.
		Eventually(func(g Gomega) {
			m, err := scrapeMetrics(ctx, url)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(m).To(HaveKey("eventlog_server_last_verify_timestamp_seconds"))
			for _, cat := range []eventlogpb.CATEGORY{tdx, tpm} {
				if srcs[cat] == nil {
					continue // no simulated TPM without cgo
				}
				for _, name := range extendedRegisters(srcs[cat]) {
					g.Expect(m).To(HaveKeyWithValue(registerMatch(cat, name), 1.0))
				}
			}
			if srcs[tpm] != nil {
				// The simulated TPM's IMA list, replayed to its PCR 10.
				g.Expect(m).To(HaveKeyWithValue(registerMatch(imaCat, "PCR10"), 1.0))
			}
		}).WithContext(ctx).WithTimeout(20 * time.Second).Should(Succeed())
		Expect(checkService(ctx, srv, integrityService)).To(Equal(healthpb.HealthCheckResponse_SERVING))
	})

	It("reports a register extended behind the log's back: register_match 0, eventlog.integrity NOT_SERVING, logged once", func(ctx SpecContext) {
		requireFeatures(FeatureHostTrees)
		root := target.NewHostTree()
		writeFakeHost(root, 5, "--kernel", "6.16")
		srv := target.StartServer(ctx, ServerConfig{Hardware: Hardware{Tree: root}, ExtraArgs: metricsArgs("100ms")})
		url := "http://" + addr + "/metrics"
		rtmr2 := registerMatch(tdx, "RTMR2")
		Eventually(func(g Gomega) {
			m, err := scrapeMetrics(ctx, url)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(m).To(HaveKeyWithValue(rtmr2, 1.0))
			g.Expect(m).To(HaveKeyWithValue(registerMatch(tdx, "RTMR0"), 1.0))
			// The tree has no TPM device: its PCRs cannot be read, and
			// nothing is claimed about them.
			for s := range m {
				g.Expect(s).NotTo(HavePrefix(`eventlog_server_register_match{category="TPM_EVENTLOG"`))
			}
		}).WithContext(ctx).WithTimeout(20 * time.Second).Should(Succeed())
		Eventually(checkService).WithContext(ctx).WithArguments(srv, integrityService).WithTimeout(10 * time.Second).
			Should(Equal(healthpb.HealthCheckResponse_SERVING))

		// Something extends RTMR2 without logging it, as the kernel's
		// tdx_guest driver would: SHA-384(RTMR2 || digest).
		extendTreeRTMR(root, 2, []byte("measured behind the log's back"))

		Eventually(func(g Gomega) {
			m, err := scrapeMetrics(ctx, url)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(m).To(HaveKeyWithValue(rtmr2, 0.0))
			g.Expect(m).To(HaveKeyWithValue(registerMatch(tdx, "RTMR0"), 1.0))
		}).WithContext(ctx).WithTimeout(20 * time.Second).Should(Succeed())
		Eventually(checkService).WithContext(ctx).WithArguments(srv, integrityService).WithTimeout(10 * time.Second).
			Should(Equal(healthpb.HealthCheckResponse_NOT_SERVING))
		// The server's own health, and what it serves, are unaffected.
		Expect(checkService(ctx, srv, "")).To(Equal(healthpb.HealthCheckResponse_SERVING))
		Expect(checkService(ctx, srv, "Eventlog")).To(Equal(healthpb.HealthCheckResponse_SERVING))
		mustGetEventlog(ctx, newClient(srv), request(tdx, 0, 0, tcgRaw))
		// Logged once at error level, naming the register, while it lasts.
		time.Sleep(time.Second) // ten more verifications
		var lines []string
		logs := srv.Logs()
		for _, l := range strings.Split(logs, "\n") {
			if strings.Contains(l, "does not match its log") {
				lines = append(lines, l)
			}
		}
		Expect(lines).To(HaveLen(1), logs)
		Expect(lines[0]).To(ContainSubstring("level=ERROR"))
		Expect(lines[0]).To(ContainSubstring("register=RTMR2"))
		Expect(lines[0]).To(ContainSubstring("first_diverging_event="))
	})
})

// extendedRegisters names the registers a source's log extends.
func extendedRegisters(src *sourceLog) []string {
	GinkgoHelper()
	var names []string
	seen := map[string]bool{}
	for _, e := range src.log.Events {
		name := src.kind.RegisterName(e.Index)
		if e.Type == 3 || seen[name] || e.Num == 0 { // EV_NO_ACTION, the header
			continue
		}
		seen[name] = true
		names = append(names, name)
	}
	return names
}

// extendTreeRTMR extends RTMR n of a fake host tree in place, as the
// kernel does on a write to measurements/rtmrN:sha384: the file is
// replaced at once (renamed over), so that the server reads the old value
// or the new, never a part.
func extendTreeRTMR(root string, n int, data []byte) {
	GinkgoHelper()
	path := filepath.Join(root, hwsource.RTMRPath(n))
	old, err := os.ReadFile(path)
	Expect(err).NotTo(HaveOccurred())
	Expect(old).To(HaveLen(48), "%s: the raw register, as fakehost writes it", path)
	digest := sha512.Sum384(data)
	h := sha512.New384()
	h.Write(old)
	h.Write(digest[:])
	tmp := path + ".new"
	Expect(os.WriteFile(tmp, h.Sum(nil), 0o644)).To(Succeed())
	Expect(os.Rename(tmp, path)).To(Succeed())
}
