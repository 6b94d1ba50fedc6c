package e2e

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	eventlogpb "github.com/ccnp-eventlog/ccnp-eventlog/proto"
)

// grpcurlReply is a GetEventlog reply as grpcurl prints it (protobuf's
// JSON mapping: lowerCamelCase names, zero values left out).
type grpcurlReply struct {
	EventlogDataLoc string `json:"eventlogDataLoc"`
	EventCount      int    `json:"eventCount"`
	TotalEvents     int    `json:"totalEvents"`
	Format          string `json:"format"`
	Sha256          string `json:"sha256"`
	FirstEvent      int    `json:"firstEvent"`
	Source          string `json:"source"`
	Simulated       bool   `json:"simulated"`
}

// grpcurl runs the pinned grpcurl with the arguments a user types after
// "grpcurl", and returns what it printed; it must succeed.
func grpcurl(ctx context.Context, args ...string) string {
	GinkgoHelper()
	By("running grpcurl " + strings.Join(quoteArgs(args), " "))
	stdout, stderr, code := runCommand(ctx, bin.GRPCurl, args...)
	Expect(code).To(Equal(0), "grpcurl failed: %s%s", stdout, stderr)
	return stdout
}

// quoteArgs quotes the arguments that need it for a shell, to show the
// command as a user types it.
func quoteArgs(args []string) []string {
	q := make([]string, len(args))
	for i, a := range args {
		if strings.ContainsAny(a, " {}\"") {
			a = "'" + a + "'"
		}
		q[i] = a
	}
	return q
}

var _ = Describe("Using the service with grpcurl, as the upstream docs do", Label("grpcurl"), Ordered, func() {
	hw := simulatedHardware(SimulatedHardware{Seed: 5})
	var (
		srv  Server
		srcs map[eventlogpb.CATEGORY]*sourceLog
	)
	BeforeAll(func(ctx SpecContext) {
		var hardware Hardware
		hardware, srcs = hw.setUp()
		srv = target.StartServer(ctx, ServerConfig{Hardware: hardware})
	})

	// getWithGrpcurl runs an upstream GetEventlog command and checks the
	// reply it prints and the file that reply points at.
	getWithGrpcurl := func(ctx context.Context, cat eventlogpb.CATEGORY, data string, first, last int) {
		GinkgoHelper()
		src := requireSource(hw, srcs, cat)
		out := grpcurl(ctx, "-plaintext", "-d", data, "-unix", srv.Socket(), "Eventlog/GetEventlog")
		var reply grpcurlReply
		Expect(json.Unmarshal([]byte(out), &reply)).To(Succeed(), "grpcurl printed: %s", out)
		Expect(reply.EventCount).To(Equal(last - first + 1))
		Expect(reply.TotalEvents).To(Equal(src.total()))
		Expect(reply.FirstEvent).To(Equal(first))
		Expect(reply.Simulated).To(BeTrue())
		Expect(reply.Format).To(BeEmpty(), "the default format, CCNP_JSON, is the zero value grpcurl leaves out")
		content := readReply(srv, &eventlogpb.GetEventlogReply{EventlogDataLoc: reply.EventlogDataLoc, Sha256: reply.Sha256})
		expectCCNPJSONFile(content, src, first, last)
	}

	It("returns the whole TDX log for the upstream command", func(ctx SpecContext) {
		getWithGrpcurl(ctx, tdx, `{"eventlog_level": 0, "eventlog_category": 0}`, 1, srcs[tdx].total())
	})

	It("returns events 2 to 6 of the TDX log for start_position 2, count 5", func(ctx SpecContext) {
		getWithGrpcurl(ctx, tdx, `{"eventlog_level": 0, "eventlog_category": 0, "start_position": 2, "count": 5}`, 2, 6)
	})

	It("returns events 2 to 6 of the TPM log for start_position 2, count 5", func(ctx SpecContext) {
		getWithGrpcurl(ctx, tpm, `{"eventlog_level": 0, "eventlog_category": 1, "start_position": 2, "count": 5}`, 2, 6)
	})

	It("prints the error's code and message for a start past the end", func(ctx SpecContext) {
		args := []string{"-plaintext", "-d", `{"eventlog_level": 0, "eventlog_category": 0, "start_position": 100000}`, "-unix", srv.Socket(), "Eventlog/GetEventlog"}
		By("running grpcurl " + strings.Join(quoteArgs(args), " "))
		stdout, stderr, code := runCommand(ctx, bin.GRPCurl, args...)
		Expect(code).NotTo(Equal(0))
		Expect(stdout + stderr).To(containAll("Code: OutOfRange", "start position 100000", "the log has "+strconv.Itoa(srcs[tdx].total())+" events"))
	})

	It("lists the Eventlog service through reflection", func(ctx SpecContext) {
		out := grpcurl(ctx, "-plaintext", "-unix", srv.Socket(), "list")
		Expect(strings.Fields(out)).To(ContainElements("Eventlog", "grpc.health.v1.Health"))
		out = grpcurl(ctx, "-plaintext", "-unix", srv.Socket(), "describe", "Eventlog")
		Expect(out).To(ContainSubstring("rpc GetEventlog ( .GetEventlogRequest ) returns ( .GetEventlogReply )"))
	})

	It("reports SERVING to grpc.health.v1 and to eventlog-server probe", func(ctx SpecContext) {
		out := grpcurl(ctx, "-plaintext", "-unix", srv.Socket(), "grpc.health.v1.Health/Check")
		Expect(out).To(MatchJSON(`{"status": "SERVING"}`))
		out = grpcurl(ctx, "-plaintext", "-d", `{"service": "Eventlog"}`, "-unix", srv.Socket(), "grpc.health.v1.Health/Check")
		Expect(out).To(MatchJSON(`{"status": "SERVING"}`))

		By("running eventlog-server probe --socket " + srv.Socket())
		stdout, stderr, code := runCommand(ctx, bin.Server, "probe", "--socket", srv.Socket())
		Expect(code).To(Equal(0), "probe: %s%s", stdout, stderr)
		Expect(strings.TrimSpace(stdout)).To(Equal("SERVING"))
	})
})
