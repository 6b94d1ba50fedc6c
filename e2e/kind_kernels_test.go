package e2e

import (
	"os"
	"path/filepath"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ccnp-eventlog/ccnp-eventlog/simulator"
)

// The release kind/up.sh installs with kind/values-kernel68.yaml: simulated
// hardware on the kernel profile 6.8, as most TDX nodes run, deployed by the
// chart like any other.
var _ = Describe("The kernel 6.8 release on a kind cluster", Label("kind", "kernels"), Ordered, func() {
	var srv *kindServer
	BeforeAll(func(ctx SpecContext) {
		if inUserAppPod() {
			Skip("runs outside the cluster")
		}
		t := kindOnly()
		Expect(t.dep.Releases.Kernel68.Release).NotTo(BeEmpty(), "kind/up.sh installed no kernel68 release (an older build/kind/target.json?)")
		srv = t.release(ctx, t.dep.Releases.Kernel68)
	})

	It("serves the log, and verifies it against the RTMRs of the simulated TD's TDREPORT", func(ctx SpecContext) {
		hw := simulatedHardware(SimulatedHardware{Seed: 1, Kernel: simulator.Kernel68})
		_, srcs := hw.setUp()
		expectKernelProfile(ctx, srv, kernelCases[1], kernelCases[1].simLiveFrom, srcs[tdx].total())
	})

	It("says at start that container-level TDX events need Linux 6.16+", func() {
		Expect(srv.Logs()).To(And(ContainSubstring("container-level events off"), ContainSubstring("Linux 6.16+")))
	})

	It("verifies the log against the simulated TD's quote, and names a changed RTMR", func(ctx SpecContext) {
		td, err := simulator.NewTDX(simulator.TDXConfig{Seed: 1})
		Expect(err).NotTo(HaveOccurred())
		quote := td.UnsignedQuote([64]byte{})
		path := filepath.Join(GinkgoT().TempDir(), "quote")
		Expect(os.WriteFile(path, quote, 0o644)).To(Succeed())
		out, _, code := runCommand(ctx, bin.Server, "verify", "--socket", srv.Socket(), "--quote", path)
		Expect(code).To(Equal(verifyMatches), out)

		quote[48+328] ^= 0x01 // RTMR0
		Expect(os.WriteFile(path, quote, 0o644)).To(Succeed())
		out, _, code = runCommand(ctx, bin.Server, "verify", "--socket", srv.Socket(), "--quote", path)
		Expect(code).To(Equal(verifyMismatch), out)
		Expect(out).To(MatchRegexp(verifyRow("RTMR0", "sha384", "MISMATCH").String()))
	})
})
