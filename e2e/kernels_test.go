package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog/ccel"
	"github.com/ccnp-eventlog/ccnp-eventlog/hwsource"
	eventlogpb "github.com/ccnp-eventlog/ccnp-eventlog/proto"
	"github.com/ccnp-eventlog/ccnp-eventlog/simulator"
	"github.com/ccnp-eventlog/ccnp-eventlog/tdxquote"
)

// What a server can do with a TD depends on the guest kernel: Linux 6.16+
// shows the RTMRs in sysfs and extends them; 5.19-6.15 (Ubuntu 24.04's 6.8,
// RHEL 9 and 10) has them only in a TDREPORT and cannot extend; a server
// given only the staged CCEL copies has no registers at all. Each profile
// runs as simulated hardware (--sim-kernel) and as a fake host tree the
// real backends read (fakehost --kernel).

// kernelCase is what a profile offers.
type kernelCase struct {
	kernel simulator.Kernel
	// liveFrom is in the table's "live registers:" line; "" when the
	// registers are not available.
	simLiveFrom, treeLiveFrom string
	extends                   bool
}

var kernelCases = []kernelCase{
	{simulator.Kernel616, "the simulated TDX module's RTMRs", "tdx_guest sysfs", true},
	{simulator.Kernel68, "TDREPORT from the simulated TD", "TDREPORT from", false},
	{simulator.KernelStaged, "", "", false},
}

// kernelTree writes a fake host tree of the profile with fakehost; for 6.8
// it also starts fakehost --serve, the simulated TD's /dev/tdx_guest, for
// the rest of the spec.
func kernelTree(ctx context.Context, seed int64, k simulator.Kernel) string {
	GinkgoHelper()
	requireFeatures(FeatureHostTrees)
	root := target.NewHostTree()
	if k != simulator.Kernel68 {
		writeFakeHost(root, seed, "--kernel", string(k))
		return root
	}
	serveFakeHost(ctx, root, seed, "serving the simulated TD's /dev/tdx_guest", "--kernel", "6.8", "--serve")
	return root
}

// treeCCEL is where a profile's tree keeps the CCEL table and log area.
func treeCCEL(root string, k simulator.Kernel) (table, area string) {
	if k == simulator.KernelStaged {
		return filepath.Join(root, hwsource.StagedCCELTablePath), filepath.Join(root, hwsource.StagedCCELDataPath)
	}
	return filepath.Join(root, hwsource.CCELTablePath), filepath.Join(root, hwsource.CCELDataPath)
}

// expectKernelProfile checks what every profile must do on srv: serve the
// log, verify it against the registers it has (or say they are not
// available), and refuse container-level events unless it can extend.
func expectKernelProfile(ctx context.Context, srv Server, kc kernelCase, liveFrom string, events int) {
	GinkgoHelper()
	reply, err := newClient(srv).GetEventlog(ctx, &eventlogpb.GetEventlogRequest{EventlogCategory: tdx})
	Expect(err).NotTo(HaveOccurred())
	Expect(reply.TotalEvents).To(BeEquivalentTo(events))

	table, code := runVerify(ctx, srv, tdx)
	if liveFrom == "" {
		Expect(code).To(Equal(verifyNotAvailable), table)
		Expect(table).To(ContainSubstring("live registers: not available"))
	} else {
		Expect(code).To(Equal(verifyMatches), table)
		Expect(table).To(ContainSubstring("live registers: " + liveFrom))
	}
	if kc.kernel == simulator.Kernel68 {
		Expect(table).To(MatchRegexp(`MRTD [0-9a-f]+…[0-9a-f]+: not in log`), "the TDREPORT's MRTD is shown")
	}

	if !kc.extends {
		Eventually(srv.Logs).Should(ContainSubstring("container-level events off"), "the start-up log says the kernel cannot extend")
		Expect(srv.Logs()).To(ContainSubstring("Linux 6.16+"))
		if _, local := target.(*localTarget); local && os.Geteuid() == 0 {
			c := newFakeContainer(layoutContainerd)
			for range 2 {
				// The record client prints the status code and message.
				_, err := c.tryRecord(ctx, srv, "an event")
				Expect(err).To(HaveOccurred())
				Expect(err.Error()).To(And(ContainSubstring("FailedPrecondition"), ContainSubstring("Linux 6.16+"), ContainSubstring("rtmr3:sha384")))
			}
		}
	}
}

var _ = Describe("Kernel generations", Label("kernels"), func() {
	for _, kc := range kernelCases {
		It(fmt.Sprintf("serves simulated hardware on kernel profile %s", kc.kernel), func(ctx SpecContext) {
			hw := simulatedHardware(SimulatedHardware{Seed: 31, Kernel: kc.kernel})
			hardware, srcs := hw.setUp()
			srv := target.StartServer(ctx, ServerConfig{Hardware: hardware, ContainerEvents: true})
			expectKernelProfile(ctx, srv, kc, kc.simLiveFrom, srcs[tdx].total())
		})

		It(fmt.Sprintf("serves a fake host tree of kernel profile %s with the real backends", kc.kernel), func(ctx SpecContext) {
			root := kernelTree(ctx, 33, kc.kernel)
			table, area := treeCCEL(root, kc.kernel)
			t, err := ccel.Parse(readFile(table))
			Expect(err).NotTo(HaveOccurred())
			l := mustParse(readFile(area)[:t.LAML], true)
			srv := target.StartServer(ctx, ServerConfig{Hardware: Hardware{Tree: root}, ContainerEvents: true})
			expectKernelProfile(ctx, srv, kc, kc.treeLiveFrom, len(l.Events))
		})
	}
})

var _ = Describe("Verifying a log against a TD quote", Label("verify", "quote"), func() {
	var root, table, area, quote string
	BeforeEach(func(ctx SpecContext) {
		root = kernelTree(ctx, 35, simulator.Kernel616)
		table, area = treeCCEL(root, simulator.Kernel616)
		quote = filepath.Join(root, simulator.QuoteFile)
	})

	verifyQuote := func(ctx context.Context, args ...string) (string, int) {
		stdout, stderr, code := runCommand(ctx, bin.Server, append([]string{"verify"}, args...)...)
		Expect(stderr).To(BeEmpty())
		return stdout, code
	}

	It("matches the simulated TD's quote offline, and says the signature was not checked", func(ctx SpecContext) {
		out, code := verifyQuote(ctx, "--quote", quote, "--log", area, "--table", table)
		Expect(code).To(Equal(verifyMatches), out)
		Expect(out).To(ContainSubstring("registers: TD quote v4 (TD report body 1.0; signature not checked)"))
		Expect(out).To(ContainSubstring("signature not checked:"))
		for _, r := range []string{"RTMR0", "RTMR1", "RTMR2"} {
			Expect(out).To(MatchRegexp(verifyRow(r, "sha384", "MATCH").String()))
		}

		out, code = verifyQuote(ctx, "--tdreport", filepath.Join(root, simulator.ReportFile), "--log", area, "--table", table)
		Expect(code).To(Equal(verifyMatches), out)
	})

	It("names the RTMR a quote does not agree with, and exits 1", func(ctx SpecContext) {
		b := readFile(quote)
		q, err := tdxquote.ParseQuote(b)
		Expect(err).NotTo(HaveOccurred())
		// Change RTMR1 where it sits in the quote: the TD report body
		// starts at byte 48, its RTMRs at 328 in it.
		b[48+328+48] ^= 0x01
		changed := filepath.Join(GinkgoT().TempDir(), "quote")
		Expect(os.WriteFile(changed, b, 0o644)).To(Succeed())
		Expect(q.RTMR[1][0]).NotTo(Equal(b[48+328+48]))

		out, code := verifyQuote(ctx, "--quote", changed, "--log", area, "--table", table)
		Expect(code).To(Equal(verifyMismatch), out)
		Expect(out).To(MatchRegexp(verifyRow("RTMR1", "sha384", "MISMATCH").String()))
		Expect(out).To(MatchRegexp(verifyRow("RTMR0", "sha384", "MATCH").String()))
		Expect(out).To(ContainSubstring("RTMR1 sha384:"))

		// The same, against a server's log over its socket.
		srv := target.StartServer(ctx, ServerConfig{Hardware: Hardware{Tree: root}})
		out, code = verifyQuote(ctx, "--socket", srv.Socket(), "--quote", quote)
		Expect(code).To(Equal(verifyMatches), out)
		Expect(out).To(ContainSubstring("registers: the request's TD quote v4"))
		out, code = verifyQuote(ctx, "--socket", srv.Socket(), "--quote", changed)
		Expect(code).To(Equal(verifyMismatch), out)
		Expect(out).To(MatchRegexp(verifyRow("RTMR1", "sha384", "MISMATCH").String()))
	})

	It("exits 3 on a quote it cannot read", func(ctx SpecContext) {
		junk := filepath.Join(GinkgoT().TempDir(), "junk")
		Expect(os.WriteFile(junk, []byte("not a quote"), 0o644)).To(Succeed())
		_, stderr, code := runCommand(ctx, bin.Server, "verify", "--quote", junk, "--log", area)
		Expect(code).To(Equal(verifyNotAvailable))
		Expect(stderr).To(ContainSubstring("TD quote: at byte 11"))
	})
})
