package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"google.golang.org/grpc/codes"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog/ima"
	"github.com/ccnp-eventlog/ccnp-eventlog/hwsource"
	eventlogpb "github.com/ccnp-eventlog/ccnp-eventlog/proto"
	"github.com/ccnp-eventlog/ccnp-eventlog/simulator"
)

var imaCat = eventlogpb.CATEGORY_IMA_EVENTLOG

// serveIMATree writes a fake host tree with fakehost and keeps fakehost
// --serve-tpm running for the rest of the spec: the tree's simulated TPM
// at root/dev/tpmrm0, whose PCR 10 the tree's IMA list was extended into.
// The server reads both through the real backends, as on a node with a TPM.
func serveIMATree(ctx context.Context, root string, seed int64, entries int) {
	GinkgoHelper()
	serveFakeHost(ctx, root, seed, "serving the simulated TPM at", "--ima-entries", strconv.Itoa(entries), "--serve-tpm")
}

// appendIMA appends n entries to the tree's list with fakehost, which also
// extends them into the served TPM's PCR 10, as the kernel does.
func appendIMA(ctx context.Context, root string, n int) {
	GinkgoHelper()
	stdout, stderr, code := runCommand(ctx, bin.FakeHost, "--out", root, "--ima-append", strconv.Itoa(n))
	Expect(code).To(Equal(0), "fakehost --ima-append: %s%s", stdout, stderr)
}

// parseIMAList parses list bytes as the kernel writes them.
func parseIMAList(b []byte) *ima.List {
	GinkgoHelper()
	l, err := ima.Parse(b, ima.Options{})
	Expect(err).NotTo(HaveOccurred())
	Expect(l.Pending).To(BeZero())
	return l
}

// getIMA asks for entries, in a file, and returns the reply and the file's
// bytes.
func getIMA(ctx context.Context, srv Server, start, count int32, format eventlogpb.FORMAT) (*eventlogpb.GetEventlogReply, []byte) {
	GinkgoHelper()
	reply, err := newClient(srv).GetEventlog(ctx, &eventlogpb.GetEventlogRequest{EventlogCategory: imaCat, StartPosition: start, Count: count, Format: format})
	Expect(err).NotTo(HaveOccurred())
	return reply, readFile(srv.LocalPath(reply.EventlogDataLoc))
}

// imaJSON is the part of the IMA CCNP JSON document the specs check.
type imaJSON struct {
	Kind         string
	TotalEntries int
	EntryCount   int
	FirstEntry   int
	Entries      []struct {
		EntryNum     int
		Pcr          uint32
		TemplateHash string
		TemplateName string
		Violation    bool
		Fields       map[string]string
	}
}

var _ = Describe("The kernel's IMA measurement list", Label("ima"), func() {
	const entries = 40
	var root, list string

	// A tree with its simulated TPM served, and the list's path in it.
	newIMATree := func(ctx context.Context) {
		requireFeatures(FeatureHostTrees)
		root = target.NewHostTree()
		serveIMATree(ctx, root, 41, entries)
		list = filepath.Join(root, hwsource.IMAListPath)
	}

	// The specs that change neither the tree nor the served TPM share one
	// server (on kind, a release installed each time is most of a spec's
	// time); the others have a tree and a server of their own.
	Context("unchanged", Ordered, func() {
		var srv Server
		BeforeAll(func(ctx SpecContext) {
			newIMATree(ctx)
			srv = target.StartServer(ctx, ServerConfig{Hardware: Hardware{Tree: root}})
		})

		It("serves the whole list as the kernel's bytes, and each entry decoded in CCNP JSON", func(ctx SpecContext) {
			want := readFile(list)
			reply, raw := getIMA(ctx, srv, 0, 0, eventlogpb.FORMAT_TCG_RAW)
			Expect(raw).To(Equal(want), "the raw reply is the list, byte for byte")
			Expect(reply.TotalEvents).To(BeEquivalentTo(entries))
			Expect(reply.EventCount).To(BeEquivalentTo(entries))
			Expect(reply.FirstEvent).To(BeEquivalentTo(1))
			Expect(reply.Source).To(Equal(srv.ServerPath(list)))
			Expect(reply.Simulated).To(BeFalse())

			l := parseIMAList(want)
			reply, js := getIMA(ctx, srv, 0, 0, eventlogpb.FORMAT_CCNP_JSON)
			Expect(reply.Sha256).To(Equal(sha256Hex(js)))
			var doc imaJSON
			Expect(json.Unmarshal(js, &doc)).To(Succeed())
			Expect(doc.Kind).To(Equal("IMA"))
			Expect(doc.TotalEntries).To(Equal(entries))
			Expect(doc.Entries).To(HaveLen(entries))
			violations := 0
			for i, e := range doc.Entries {
				le := l.Entry(i + 1)
				Expect(e.EntryNum).To(Equal(i + 1))
				Expect(e.Pcr).To(BeEquivalentTo(10))
				Expect(e.TemplateName).To(Equal("ima-ng"))
				Expect(e.TemplateHash).To(Equal(fmt.Sprintf("%x", le.TemplateHash)))
				fields, ok := le.Fields(l.Order)
				Expect(ok).To(BeTrue())
				Expect(e.Fields).To(HaveKeyWithValue("n-ng", fields[1].String()))
				if e.Violation {
					violations++
				}
			}
			Expect(violations).To(Equal(1), "the simulated list has one violation")
			Expect(doc.Entries[0].Fields["n-ng"]).To(Equal(ima.BootAggregateName))
		})

		It("serves a slice of the list, numbered as in the whole list", func(ctx SpecContext) {
			l := parseIMAList(readFile(list))
			reply, raw := getIMA(ctx, srv, 11, 5, eventlogpb.FORMAT_TCG_RAW)
			es, err := l.Slice(11, 5)
			Expect(err).NotTo(HaveOccurred())
			Expect(raw).To(Equal(ima.AppendRaw(nil, es)))
			Expect(reply.FirstEvent).To(BeEquivalentTo(11))
			Expect(reply.EventCount).To(BeEquivalentTo(5))
			Expect(reply.TotalEvents).To(BeEquivalentTo(entries))

			_, js := getIMA(ctx, srv, entries, 10, eventlogpb.FORMAT_CCNP_JSON)
			var doc imaJSON
			Expect(json.Unmarshal(js, &doc)).To(Succeed())
			Expect(doc.Entries).To(HaveLen(1))
			Expect(doc.Entries[0].EntryNum).To(Equal(entries))

			_, err = newClient(srv).GetEventlog(ctx, &eventlogpb.GetEventlogRequest{EventlogCategory: imaCat, StartPosition: entries + 1})
			Expect(err).To(haveStatus(codes.OutOfRange, ContainSubstring(fmt.Sprintf("has %d entries", entries))))
		})

		It("verifies the list against live PCR 10 and its boot_aggregate against PCRs 0-9: MATCH", func(ctx SpecContext) {
			exp, err := simulator.ReadExpectedRegisters(filepath.Join(root, simulator.ExpectedRegistersFile))
			Expect(err).NotTo(HaveOccurred())
			reply, err := newClient(srv).VerifyEventlog(ctx, &eventlogpb.VerifyEventlogRequest{EventlogCategory: imaCat})
			Expect(err).NotTo(HaveOccurred())
			Expect(reply.Verified).To(BeTrue(), "live error %q, registers %v", reply.LiveError, reply.Registers)
			Expect(reply.TotalEvents).To(BeEquivalentTo(entries))
			for alg, value := range exp.IMA["PCR10"] {
				Expect(reply.Registers).To(ContainElement(And(
					HaveField("Register", "PCR10"), HaveField("Algorithm", alg), HaveField("Events", BeEquivalentTo(entries)),
					HaveField("Status", eventlogpb.REGISTER_STATUS_MATCH), HaveField("Live", value), HaveField("Replayed", value))))
			}
			Expect(reply.Registers).To(ContainElement(And(HaveField("Register", "boot_aggregate"), HaveField("Status", eventlogpb.REGISTER_STATUS_MATCH))))

			table, code := runVerify(ctx, srv, imaCat)
			Expect(code).To(Equal(verifyMatches), table)
			Expect(table).To(MatchRegexp(verifyRow("PCR10", "sha1", "MATCH").String()))
			Expect(table).To(MatchRegexp(verifyRow("PCR10", "sha256", "MATCH").String()))
			Expect(table).To(ContainSubstring("verified: every register matches the log"))
		})

		It("refuses container level: the list carries no container", func(ctx SpecContext) {
			_, err := newClient(srv).GetEventlog(ctx, &eventlogpb.GetEventlogRequest{EventlogLevel: eventlogpb.LEVEL_SAAS, EventlogCategory: imaCat})
			Expect(err).To(haveStatus(codes.FailedPrecondition, ContainSubstring("carries no container")))
		})
	})

	Context("changed", func() {
		BeforeEach(newIMATree)

		It("serves the entries appended while it runs at the next request, and verifies them against PCR 10", func(ctx SpecContext) {
			srv := target.StartServer(ctx, ServerConfig{Hardware: Hardware{Tree: root}})
			reply, _ := getIMA(ctx, srv, 0, 0, eventlogpb.FORMAT_TCG_RAW)
			Expect(reply.TotalEvents).To(BeEquivalentTo(entries))

			appendIMA(ctx, root, 7)
			reply, raw := getIMA(ctx, srv, 0, 0, eventlogpb.FORMAT_TCG_RAW)
			Expect(reply.TotalEvents).To(BeEquivalentTo(entries + 7))
			Expect(raw).To(Equal(readFile(list)))
			reply, raw = getIMA(ctx, srv, entries+1, 0, eventlogpb.FORMAT_TCG_RAW)
			Expect(reply.EventCount).To(BeEquivalentTo(7))
			added := parseIMAList(raw)
			fields, ok := added.Entry(1).Fields(added.Order)
			Expect(ok).To(BeTrue())
			Expect(fields[1].String()).To(Equal(fmt.Sprintf("/usr/local/bin/appended-%d", entries+1)))

			table, code := runVerify(ctx, srv, imaCat)
			Expect(code).To(Equal(verifyMatches), table)
			Expect(table).To(ContainSubstring(fmt.Sprintf("%d entries", entries+7)))
		})

		It("names the entry whose template hash was changed in the list: MISMATCH, exit 1", func(ctx SpecContext) {
			b := readFile(list)
			l := parseIMAList(b)
			const changed = 17
			b[l.Entry(changed).Offset+4] ^= 0x01 // the first byte of its template hash
			Expect(os.WriteFile(list, b, 0o644)).To(Succeed())

			srv := target.StartServer(ctx, ServerConfig{Hardware: Hardware{Tree: root}})
			reply, err := newClient(srv).VerifyEventlog(ctx, &eventlogpb.VerifyEventlogRequest{EventlogCategory: imaCat})
			Expect(err).NotTo(HaveOccurred())
			Expect(reply.Verified).To(BeFalse())
			Expect(reply.Registers).To(ContainElement(And(
				HaveField("Register", "PCR10"), HaveField("Algorithm", "sha1"),
				HaveField("Status", eventlogpb.REGISTER_STATUS_MISMATCH), HaveField("AlteredEvents", Equal([]uint32{changed})))))

			table, code := runVerify(ctx, srv, imaCat)
			Expect(code).To(Equal(verifyMismatch), table)
			Expect(table).To(MatchRegexp(verifyRow("PCR10", "sha1", "MISMATCH").String()))
			Expect(table).To(ContainSubstring(fmt.Sprintf("entry(ies) %d", changed)))
			Expect(table).To(ContainSubstring("NOT VERIFIED"))
		})

	})
})
