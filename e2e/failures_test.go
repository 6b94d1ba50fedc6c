package e2e

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"github.com/ccnp-eventlog/ccnp-eventlog/hwsource"
	eventlogpb "github.com/ccnp-eventlog/ccnp-eventlog/proto"
)

// brokenNode is a host tree holding real logs that something was done to,
// and a server on it.
type brokenNode struct {
	root   string
	srv    Server
	client eventlogpb.EventlogClient
}

// startOnBrokenNode writes a host tree with a TDX and a TPM log from the
// corpus, lets breakIt change it, and starts a server on it.
func startOnBrokenNode(ctx context.Context, cfg ServerConfig, breakIt func(root string)) *brokenNode {
	GinkgoHelper()
	requireFeatures(FeatureHostTrees)
	n := &brokenNode{root: target.NewHostTree()}
	writeCorpusTree(n.root, "cos-113-tdx", "tpm_rhel8-uefi.bin", 0o644)
	breakIt(n.root)
	cfg.Hardware = Hardware{Tree: n.root}
	n.srv = target.StartServer(ctx, cfg)
	n.client = newClient(n.srv)
	return n
}

// serverPath is the path the server reads a host path of the tree at.
func (n *brokenNode) serverPath(hostPath string) string {
	return n.srv.ServerPath(filepath.Join(n.root, hostPath))
}

// expectServes checks that the category still works, whatever happened to
// the other one: the whole raw log is the tree's.
func (n *brokenNode) expectServes(ctx context.Context, cat eventlogpb.CATEGORY) {
	GinkgoHelper()
	src := &sourceLog{kind: eventlog.TPM, log: readTreeLog(n.root, cat), file: treeLogFile(n.root, cat)}
	if cat == tdx {
		src.kind = eventlog.TDX
	}
	reply := mustGetEventlog(ctx, n.client, request(cat, 0, 0, tcgRaw))
	expectReplyDescribes(n.srv, reply, src, tcgRaw, 1, src.total())
	expectSameBytes(readReply(n.srv, reply), expectedRaw(src, 1, src.total()), "the raw file")
}

func (n *brokenNode) expectHealth(ctx context.Context, want healthpb.HealthCheckResponse_ServingStatus) {
	GinkgoHelper()
	Expect(checkHealth(ctx, n.srv.Socket())).To(Equal(want))
}

// corruptDigestAlgorithm makes the first digest of event num in a log file
// use an algorithm its Spec ID event does not list, and returns the byte
// offset of that event's record.
func corruptDigestAlgorithm(path string, area bool, num int) int {
	GinkgoHelper()
	b := readFile(path)
	e := mustParse(b, area).Event(num)
	Expect(e).NotTo(BeNil())
	// TCG_PCR_EVENT2: index, type, digest count, then the first digest's
	// algorithm ID.
	binary.LittleEndian.PutUint16(b[e.Offset+12:], 0x0099)
	Expect(os.WriteFile(path, b, 0o644)).To(Succeed())
	return e.Offset
}

var _ = Describe("Telling clients what is wrong with the node", Label("errors"), func() {
	Context("on a node without a TDX log", Ordered, func() {
		var n *brokenNode
		BeforeAll(func(ctx SpecContext) {
			n = startOnBrokenNode(ctx, ServerConfig{}, func(root string) {
				Expect(os.RemoveAll(filepath.Join(root, "sys/firmware/acpi"))).To(Succeed())
			})
		})

		It("answers FAILED_PRECONDITION for the TDX log, naming the CCEL table's path", func(ctx SpecContext) {
			_, err := getEventlog(ctx, n.client, request(tdx, 0, 0, ccnpJSON))
			Expect(err).To(haveStatus(codes.FailedPrecondition, ContainSubstring(n.serverPath(hwsource.CCELTablePath))))
		})

		It("still serves the TPM log, and reports SERVING", func(ctx SpecContext) {
			n.expectServes(ctx, tpm)
			n.expectHealth(ctx, healthpb.HealthCheckResponse_SERVING)
		})
	})

	Context("on a node without a TPM log", Ordered, func() {
		var n *brokenNode
		BeforeAll(func(ctx SpecContext) {
			n = startOnBrokenNode(ctx, ServerConfig{}, func(root string) {
				Expect(os.RemoveAll(filepath.Join(root, "sys/kernel/security"))).To(Succeed())
			})
		})

		It("answers FAILED_PRECONDITION for the TPM log, naming binary_bios_measurements' path", func(ctx SpecContext) {
			_, err := getEventlog(ctx, n.client, request(tpm, 0, 0, tcgRaw))
			Expect(err).To(haveStatus(codes.FailedPrecondition, ContainSubstring(n.serverPath(hwsource.TPMLogPath))))
		})

		It("still serves the TDX log", func(ctx SpecContext) {
			n.expectServes(ctx, tdx)
		})
	})

	Context("on a node without any event log", Ordered, func() {
		var n *brokenNode
		BeforeAll(func(ctx SpecContext) {
			n = startOnBrokenNode(ctx, ServerConfig{}, func(root string) {
				Expect(os.RemoveAll(filepath.Join(root, "sys"))).To(Succeed())
			})
		})

		It("answers FAILED_PRECONDITION for both logs", func(ctx SpecContext) {
			_, err := getEventlog(ctx, n.client, request(tdx, 0, 0, ccnpJSON))
			Expect(err).To(haveStatus(codes.FailedPrecondition, ContainSubstring(n.serverPath(hwsource.CCELTablePath))))
			_, err = getEventlog(ctx, n.client, request(tpm, 0, 0, ccnpJSON))
			Expect(err).To(haveStatus(codes.FailedPrecondition, ContainSubstring(n.serverPath(hwsource.TPMLogPath))))
		})

		It("reports NOT_SERVING, and eventlog-server probe fails", func(ctx SpecContext) {
			n.expectHealth(ctx, healthpb.HealthCheckResponse_NOT_SERVING)
			stdout, _, code := runCommand(ctx, bin.Server, "probe", "--socket", n.srv.Socket())
			Expect(code).To(Equal(1))
			Expect(strings.TrimSpace(stdout)).To(Equal("NOT_SERVING"))
		})
	})

	// Root reads any file whatever its mode, so the local target runs this
	// server as nobody when the suite runs as root (as CI does).
	Context("on a node whose logs only root may read, with an unprivileged server", Ordered, func() {
		var n *brokenNode
		BeforeAll(func(ctx SpecContext) {
			requireFeatures(FeatureUnprivilegedServer)
			n = startOnBrokenNode(ctx, ServerConfig{Unprivileged: true}, func(root string) {
				for _, p := range []string{hwsource.CCELTablePath, hwsource.CCELDataPath, hwsource.TPMLogPath} {
					Expect(os.Chmod(filepath.Join(root, p), 0)).To(Succeed())
				}
			})
		})

		It("answers PERMISSION_DENIED for the TDX log, naming the file and how to fix it", func(ctx SpecContext) {
			_, err := getEventlog(ctx, n.client, request(tdx, 0, 0, ccnpJSON))
			Expect(err).To(haveStatus(codes.PermissionDenied, containAll(
				n.serverPath(hwsource.CCELTablePath), "permission denied", "run as root, or stage copies")))
		})

		It("answers PERMISSION_DENIED for the TPM log, naming the file and how to fix it", func(ctx SpecContext) {
			_, err := getEventlog(ctx, n.client, request(tpm, 0, 0, ccnpJSON))
			Expect(err).To(haveStatus(codes.PermissionDenied, containAll(
				n.serverPath(hwsource.TPMLogPath), "permission denied", "run as root, or stage a copy")))
		})

		It("reports NOT_SERVING", func(ctx SpecContext) {
			n.expectHealth(ctx, healthpb.HealthCheckResponse_NOT_SERVING)
		})
	})

	Context("on a node whose logs are corrupted", Ordered, func() {
		var (
			n                  *brokenNode
			tdxOffset, tpmOff  int
			tdxEvent, tpmEvent = 9, 17
		)
		BeforeAll(func(ctx SpecContext) {
			n = startOnBrokenNode(ctx, ServerConfig{}, func(root string) {
				tdxOffset = corruptDigestAlgorithm(filepath.Join(root, hwsource.CCELDataPath), true, tdxEvent)
				tpmOff = corruptDigestAlgorithm(filepath.Join(root, hwsource.TPMLogPath), false, tpmEvent)
			})
		})

		It("answers DATA_LOSS for the TDX log, naming the file, the event and its byte offset", func(ctx SpecContext) {
			_, err := getEventlog(ctx, n.client, request(tdx, 0, 0, ccnpJSON))
			Expect(err).To(haveStatus(codes.DataLoss, containAll(
				n.serverPath(hwsource.CCELDataPath), fmt.Sprintf("event %d at byte offset %d", tdxEvent, tdxOffset), "algorithm 0x0099")))
		})

		It("answers DATA_LOSS for the TPM log, naming the file, the event and its byte offset", func(ctx SpecContext) {
			_, err := getEventlog(ctx, n.client, request(tpm, 3, 2, tcgRaw))
			Expect(err).To(haveStatus(codes.DataLoss, containAll(
				n.serverPath(hwsource.TPMLogPath), fmt.Sprintf("event %d at byte offset %d", tpmEvent, tpmOff), "algorithm 0x0099")))
		})
	})

	Context("on a node whose CCEL table fails its checksum", Ordered, func() {
		var n *brokenNode
		BeforeAll(func(ctx SpecContext) {
			n = startOnBrokenNode(ctx, ServerConfig{}, func(root string) {
				path := filepath.Join(root, hwsource.CCELTablePath)
				b := readFile(path)
				b[9]++ // the checksum byte
				Expect(os.WriteFile(path, b, 0o644)).To(Succeed())
			})
		})

		It("answers DATA_LOSS for the TDX log, naming the table and the byte offset", func(ctx SpecContext) {
			_, err := getEventlog(ctx, n.client, request(tdx, 0, 0, ccnpJSON))
			Expect(err).To(haveStatus(codes.DataLoss, containAll(n.serverPath(hwsource.CCELTablePath), "byte offset 9", "checksum")))
		})

		It("still serves the TPM log", func(ctx SpecContext) {
			n.expectServes(ctx, tpm)
		})
	})
})
