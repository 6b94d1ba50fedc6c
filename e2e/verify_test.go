package e2e

import (
	"context"
	"encoding/hex"
	"os"
	"path/filepath"
	"regexp"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"github.com/ccnp-eventlog/ccnp-eventlog/hwsource"
	eventlogpb "github.com/ccnp-eventlog/ccnp-eventlog/proto"
)

// Exit statuses of `eventlog-server verify`.
const (
	verifyMatches      = 0
	verifyMismatch     = 1
	verifyNotAvailable = 3
)

// runVerify runs the binary's verify client against srv, as a user without
// grpcurl does, and returns its table and exit status.
func runVerify(ctx context.Context, srv Server, cat eventlogpb.CATEGORY) (string, int) {
	GinkgoHelper()
	stdout, stderr, code := runCommand(ctx, bin.Server, "verify", "--socket", srv.Socket(), "--category", map[eventlogpb.CATEGORY]string{tdx: "tdx", tpm: "tpm", imaCat: "ima"}[cat])
	Expect(stderr).To(BeEmpty())
	return stdout, code
}

// verifyRow matches a register's row of verify's table.
func verifyRow(register, alg, status string) *regexp.Regexp {
	return regexp.MustCompile(`(?m)^` + register + `\s+` + alg + `\s+\d+\s+` + status + `\s`)
}

// expectRegistersMatch checks the VerifyEventlog reply and verify's table
// against the registers the source is known to hold.
func expectRegistersMatch(ctx context.Context, srv Server, cat eventlogpb.CATEGORY, src *sourceLog) {
	GinkgoHelper()
	reply, err := newClient(srv).VerifyEventlog(ctx, &eventlogpb.VerifyEventlogRequest{EventlogCategory: cat})
	Expect(err).NotTo(HaveOccurred())
	Expect(reply.Verified).To(BeTrue(), "live error: %s", reply.LiveError)
	Expect(reply.LiveError).To(BeEmpty())
	// Every register the log extends is listed, matching the value the
	// hardware is known to hold (registers nothing extended stay at reset
	// and need no explaining).
	extended, err := eventlog.Replay(src.log)
	Expect(err).NotTo(HaveOccurred())
	for alg, regs := range extended {
		for index := range regs {
			name := src.kind.RegisterName(index)
			value := src.registers.Get(alg, index)
			Expect(value).NotTo(BeNil(), "%s %s: not in %s", name, alg, src.registersFrom)
			Expect(reply.Registers).To(ContainElement(And(
				HaveField("Register", name), HaveField("Algorithm", alg.String()),
				HaveField("Status", eventlogpb.REGISTER_STATUS_MATCH),
				HaveField("Live", hex.EncodeToString(value)), HaveField("Replayed", hex.EncodeToString(value)),
			)), "%s %s (from %s)", name, alg, src.registersFrom)
		}
	}

	table, code := runVerify(ctx, srv, cat)
	Expect(code).To(Equal(verifyMatches), table)
	Expect(table).To(ContainSubstring("verified: every register matches the log"))
	for alg, regs := range extended {
		for index := range regs {
			Expect(table).To(MatchRegexp(verifyRow(src.kind.RegisterName(index), alg.String(), "MATCH").String()))
		}
	}
}

var _ = Describe("Verifying a log against the live registers", Label("verify"), func() {
	It("finds every register of simulated hardware explained by its log", func(ctx SpecContext) {
		hw := simulatedHardware(SimulatedHardware{Seed: 21})
		hardware, srcs := hw.setUp()
		srv := target.StartServer(ctx, ServerConfig{Hardware: hardware})
		expectRegistersMatch(ctx, srv, tdx, srcs[tdx])
		if target.Unsupported(FeatureSimulatedTPM) == "" && srcs[tpm] != nil {
			expectRegistersMatch(ctx, srv, tpm, srcs[tpm])
		}
	})

	Context("on a fake host tree with live RTMR files", func() {
		var root string
		BeforeEach(func() {
			requireFeatures(FeatureHostTrees)
			root = target.NewHostTree()
			writeFakeHost(root, 23)
		})

		It("finds every RTMR explained by the log", func(ctx SpecContext) {
			srcs := readSimulatorTree(root)
			srv := target.StartServer(ctx, ServerConfig{Hardware: Hardware{Tree: root}})
			expectRegistersMatch(ctx, srv, tdx, srcs[tdx])
		})

		It("names the register whose event data was changed, and exits 1", func(ctx SpecContext) {
			// Change the data of one event after it was measured: its
			// digest, and so the replay, still agree with the RTMRs; only
			// the event's own digest check can tell.
			area := filepath.Join(root, hwsource.CCELDataPath)
			b := readFile(area)
			l := mustParse(b, true)
			var changed *eventlog.Event
			for i := range l.Events {
				if l.Events[i].Type == eventlog.EvEFIVariableDriverConfig {
					changed = &l.Events[i]
					break
				}
			}
			Expect(changed).NotTo(BeNil(), "the simulated log has no EV_EFI_VARIABLE_DRIVER_CONFIG event")
			changed.Data[len(changed.Data)-1] ^= 0x01
			Expect(os.WriteFile(area, b, 0o444)).To(Succeed())
			name := eventlog.TDX.RegisterName(changed.Index)

			srv := target.StartServer(ctx, ServerConfig{Hardware: Hardware{Tree: root}})
			reply, err := newClient(srv).VerifyEventlog(ctx, &eventlogpb.VerifyEventlogRequest{EventlogCategory: tdx})
			Expect(err).NotTo(HaveOccurred())
			Expect(reply.Verified).To(BeFalse())
			for _, reg := range reply.Registers {
				if reg.Register == name {
					Expect(reg.Status).To(Equal(eventlogpb.REGISTER_STATUS_MISMATCH))
					Expect(reg.AlteredEvents).To(Equal([]uint32{uint32(changed.Num)}))
				} else {
					Expect(reg.Status).To(Equal(eventlogpb.REGISTER_STATUS_MATCH), reg.Register)
				}
			}

			table, code := runVerify(ctx, srv, tdx)
			Expect(code).To(Equal(verifyMismatch), table)
			Expect(table).To(MatchRegexp(verifyRow(name, "sha384", "MISMATCH").String()))
			Expect(table).To(ContainSubstring("NOT VERIFIED"))
		})

		It("names the register whose logged digest was changed, and exits 1", func(ctx SpecContext) {
			area := filepath.Join(root, hwsource.CCELDataPath)
			b := readFile(area)
			l := mustParse(b, true)
			last := &l.Events[len(l.Events)-1]
			last.Digests[0].Value[0] ^= 0xFF
			Expect(os.WriteFile(area, b, 0o444)).To(Succeed())

			srv := target.StartServer(ctx, ServerConfig{Hardware: Hardware{Tree: root}})
			table, code := runVerify(ctx, srv, tdx)
			Expect(code).To(Equal(verifyMismatch), table)
			Expect(table).To(MatchRegexp(verifyRow(eventlog.TDX.RegisterName(last.Index), "sha384", "MISMATCH").String()))
		})
	})

	It("says the live registers are not available on a tree of real logs, rather than guessing", func(ctx SpecContext) {
		hw := corpusTree("cos-113-tdx", "tpm_rhel8-uefi.bin", "no live registers")
		requireFeatures(hw.requires...)
		hardware, _ := hw.setUp()
		srv := target.StartServer(ctx, ServerConfig{Hardware: hardware})
		for _, cat := range []eventlogpb.CATEGORY{tdx, tpm} {
			table, code := runVerify(ctx, srv, cat)
			Expect(code).To(Equal(verifyNotAvailable), table)
			Expect(table).To(ContainSubstring("live registers: not available"))
			Expect(table).To(MatchRegexp(`NOT AVAILABLE`))
			Expect(table).NotTo(MatchRegexp(`\sMATCH\s`))
			Expect(table).NotTo(MatchRegexp(`MISMATCH`))
		}
	})
})
