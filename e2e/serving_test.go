package e2e

import (
	. "github.com/onsi/ginkgo/v2"

	eventlogpb "github.com/ccnp-eventlog/ccnp-eventlog/proto"
)

// servedHardware is every hardware setup the content specs run on.
func servedHardware() []hardwareSetup {
	return []hardwareSetup{
		simulatedHardware(SimulatedHardware{Seed: 7}),
		simulatorTree(11),
		corpusTree("cos-113-tdx", "tpm_arch-linux-workstation.bin", "GCE COS TDX guest, 0xFF-padded 256 KiB area; Arch Linux"),
		corpusTree("ovmf-64k", "tpm_glinux-alex.bin", "OVMF, 64 KiB area; StartupLocality 3"),
		corpusTree("cos-113-dupe-separator.unpadded.bin", "tpm_rhel8-uefi.bin", "OVMF's duplicate EV_SEPARATOR, no padding; three banks"),
		corpusTree("", "gdc-host.bin", "SHA-256 only, StartupLocality 3"),
		corpusTree("", "tpm_ubuntu-2104-no-secure-boot.bin", "Ubuntu 21.04"),
		corpusTree("", "event-bootorder.bin", "tpm2-tools fixture"),
		corpusTree("", "tpm_debian-10.bin", "legacy SHA1-only log"),
		corpusTree("", "legacy_option_rom_eventlog.bin", "legacy log, events at index 0xFFFFFFFF"),
	}
}

var _ = Describe("Serving a node's event logs at platform level", Label("content"), func() {
	for _, hw := range servedHardware() {
		Context("on "+hw.name, Ordered, func() {
			var (
				srv    Server
				client eventlogpb.EventlogClient
				srcs   map[eventlogpb.CATEGORY]*sourceLog
			)
			BeforeAll(func(ctx SpecContext) {
				requireFeatures(hw.requires...)
				var hardware Hardware
				hardware, srcs = hw.setUp()
				srv = target.StartServer(ctx, ServerConfig{Hardware: hardware})
				client = newClient(srv)
			})

			for _, cat := range hw.categories {
				Context("asked for "+categoryName(cat), func() {
					var src *sourceLog
					BeforeEach(func() { src = requireSource(hw, srcs, cat) })

					It("returns the whole log in CCNP JSON: the source's events, field by field, replaying to its registers", func(ctx SpecContext) {
						reply := mustGetEventlog(ctx, client, request(cat, 0, 0, ccnpJSON))
						expectServed(srv, reply, src, ccnpJSON, 1, src.total())
					})

					It("returns the whole log as a raw TCG log: the source's bytes, parsing on their own and replaying to its registers", func(ctx SpecContext) {
						reply := mustGetEventlog(ctx, client, request(cat, 0, 0, tcgRaw))
						expectServed(srv, reply, src, tcgRaw, 1, src.total())
					})

					// tpm2_eventlog reads TPM logs only: it rejects TDX logs,
					// whose Spec ID header is at index 1.
					if cat == tpm {
						It("returns a raw log that tpm2_eventlog reads as the source's events and PCRs", func(ctx SpecContext) {
							tool := skipUnlessTPM2EventlogReads(src)
							reply := mustGetEventlog(ctx, client, request(cat, 0, 0, tcgRaw))
							expectReplyDescribes(srv, reply, src, tcgRaw, 1, src.total())
							expectTPM2EventlogAgrees(ctx, tool, srv.LocalPath(reply.EventlogDataLoc), src, 1, src.total())
						})
					}
				})
			}
		})
	}
})
