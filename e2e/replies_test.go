package e2e

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"github.com/ccnp-eventlog/ccnp-eventlog/internal/tpm2eventlog"
	eventlogpb "github.com/ccnp-eventlog/ccnp-eventlog/proto"
)

// The checks specs make of a GetEventlog reply and of the file it points
// at, against what the suite knows of the source independently (sourceLog),
// and with tpm2_eventlog as a second decoder of raw TPM files.

var (
	ccnpJSON = eventlogpb.FORMAT_CCNP_JSON
	tcgRaw   = eventlogpb.FORMAT_TCG_RAW
)

// expectServed checks a reply for events first..last of src, and the file
// it points at; it returns the file's content.
func expectServed(srv Server, reply *eventlogpb.GetEventlogReply, src *sourceLog, format eventlogpb.FORMAT, first, last int) []byte {
	GinkgoHelper()
	expectReplyDescribes(srv, reply, src, format, first, last)
	content := readReply(srv, reply)
	expectFileHolds(content, src, format, first, last)
	return content
}

// expectFileHolds checks the content of a returned file.
func expectFileHolds(content []byte, src *sourceLog, format eventlogpb.FORMAT, first, last int) {
	GinkgoHelper()
	if format == tcgRaw {
		expectRawFile(content, src, first, last)
	} else {
		expectCCNPJSONFile(content, src, first, last)
	}
}

// expectReplyDescribes checks a reply's fields for events first..last.
func expectReplyDescribes(srv Server, reply *eventlogpb.GetEventlogReply, src *sourceLog, format eventlogpb.FORMAT, first, last int) {
	GinkgoHelper()
	Expect(reply.EventCount).To(BeEquivalentTo(last-first+1), "event_count")
	Expect(reply.TotalEvents).To(BeEquivalentTo(src.total()), "total_events")
	Expect(reply.FirstEvent).To(BeEquivalentTo(first), "first_event")
	Expect(reply.Format).To(Equal(format), "format")
	Expect(reply.Simulated).To(Equal(src.simulated), "simulated")
	if src.file != "" {
		Expect(reply.Source).To(ContainSubstring(srv.ServerPath(src.file)), "source")
	} else {
		Expect(reply.Source).To(ContainSubstring("simulated"), "source")
	}
}

// expectedRaw is what a raw file of events first..last must hold: the
// source's header record and the records of those events, cut from the
// source's bytes where the parser says they are.
func expectedRaw(src *sourceLog, first, last int) []byte {
	f, l := src.log.Event(first), src.log.Event(last)
	out := bytes.Clone(src.log.Header.Raw)
	return append(out, src.log.Raw[f.Offset:l.Offset+len(l.Raw)]...)
}

// expectRawFile checks a raw file: it holds exactly the source's bytes,
// parses on its own as a log of the source's kind with the source's events,
// and, when it is the whole log, replays to the source's registers.
func expectRawFile(content []byte, src *sourceLog, first, last int) {
	GinkgoHelper()
	expectSameBytes(content, expectedRaw(src, first, last), "the raw file")
	l, err := eventlog.Parse(content)
	Expect(err).NotTo(HaveOccurred(), "the raw file does not parse as a TCG event log")
	Expect(eventlog.DetectKind(l, content)).To(Equal(src.kind), "the raw file does not read as a %s log", src.kind)
	Expect(l.SpecID).To(Equal(src.log.SpecID), "the raw file's Spec ID event")
	Expect(l.Events).To(HaveLen(last - first + 1))
	for i, e := range l.Events {
		want := src.log.Event(first + i)
		Expect(e.Index).To(Equal(want.Index), "event %d's register index", want.Num)
		Expect(e.Type).To(Equal(want.Type), "event %d's type", want.Num)
		Expect(e.Digests).To(Equal(want.Digests), "event %d's digests", want.Num)
		Expect(e.Data).To(Equal(want.Data), "event %d's data", want.Num)
	}
	if first == 1 && last == src.total() {
		expectReplayGivesRegisters(l, src)
	}
}

// ccnpFile is a CCNP JSON file as a client decodes it with encoding/json.
type ccnpFile struct {
	Header      ccnpHeader
	EventLogs   []ccnpEvent
	Kind        string
	TotalEvents int
	EventCount  int
	FirstEvent  int
}

type ccnpHeader struct {
	HeaderData []byte // the header record, base64
	Length     int
	Rtmr, Pcr  *uint32
	Etype      uint32
	EventNum   int
	SpecID     *struct {
		Signature  string
		Algorithms []struct {
			AlgorithmId uint16
			Name        string
			DigestSize  uint16
		}
	}
}

type ccnpEvent struct {
	Rtmr, Pcr   *uint32
	Etype       uint32
	DigestCount int
	Digests     []string // as Go prints a []byte: "[1 2 3]"
	Data        []byte   // the whole record, base64
	Event       []byte   // the event data, base64
	Length      int
	EventSize   int
	AlgorithmId uint16
	EventNum    int
	TypeName    string
	Register    string
	DigestsHex  map[string]string
}

// wantCCNPEvent is what the JSON of a source event must say.
func wantCCNPEvent(kind eventlog.Kind, e *eventlog.Event) ccnpEvent {
	c := ccnpEvent{
		Etype:       uint32(e.Type),
		DigestCount: len(e.Digests),
		Digests:     []string{},
		Data:        e.Raw,
		Event:       e.Data,
		Length:      len(e.Raw),
		EventSize:   len(e.Data),
		EventNum:    e.Num,
		TypeName:    e.Type.String(),
		Register:    kind.RegisterName(e.Index),
		DigestsHex:  map[string]string{},
	}
	index := e.Index
	if kind == eventlog.TDX {
		rtmr := index - 1 // upstream's Rtmr is the CC MR index - 1
		c.Rtmr = &rtmr
	} else {
		c.Pcr = &index
	}
	for _, d := range e.Digests {
		c.Digests = append(c.Digests, fmt.Sprint(d.Value))
		c.DigestsHex[d.Alg.String()] = hex.EncodeToString(d.Value)
	}
	return c
}

// expectCCNPJSONFile checks a CCNP JSON file: it decodes with
// encoding/json, says what the source's events are, field by field, and
// carries every byte of them: the records it holds, put back together, are
// the raw slice, which parses and (for the whole log) replays to the
// source's registers.
func expectCCNPJSONFile(content []byte, src *sourceLog, first, last int) {
	GinkgoHelper()
	var f ccnpFile
	Expect(json.Unmarshal(content, &f)).To(Succeed(), "the CCNP JSON file does not decode")
	Expect(f.Kind).To(Equal(src.kind.String()), "Kind")
	Expect(f.TotalEvents).To(Equal(src.total()), "TotalEvents")
	Expect(f.EventCount).To(Equal(last-first+1), "EventCount")
	Expect(f.FirstEvent).To(Equal(first), "FirstEvent")

	h := src.log.Header
	Expect(f.Header.HeaderData).To(Equal(h.Raw), "Header.HeaderData")
	Expect(f.Header.Length).To(Equal(len(h.Raw)), "Header.Length")
	Expect(f.Header.Etype).To(BeEquivalentTo(h.Type), "Header.Etype")
	Expect(f.Header.EventNum).To(Equal(0), "Header.EventNum")
	if s := src.log.SpecID; s != nil {
		Expect(f.Header.SpecID).NotTo(BeNil(), "Header.SpecID")
		Expect(f.Header.SpecID.Signature).To(Equal(s.Signature))
		Expect(f.Header.SpecID.Algorithms).To(HaveLen(len(s.Algs)))
		for i, a := range s.Algs {
			got := f.Header.SpecID.Algorithms[i]
			Expect([]any{got.AlgorithmId, got.Name, got.DigestSize}).To(Equal([]any{uint16(a.Alg), a.Alg.String(), a.Size}), "Header.SpecID.Algorithms[%d]", i)
		}
	}

	Expect(f.EventLogs).To(HaveLen(last-first+1), "EventLogs")
	rebuilt := bytes.Clone(f.Header.HeaderData)
	for i, got := range f.EventLogs {
		want := wantCCNPEvent(src.kind, src.log.Event(first+i))
		// AlgorithmId is one of the event's algorithms (upstream names one).
		if len(want.DigestsHex) > 0 {
			Expect(want.DigestsHex).To(HaveKey(eventlog.Alg(got.AlgorithmId).String()), "event %d's AlgorithmId", want.EventNum)
		}
		got.AlgorithmId = 0
		Expect(got).To(Equal(want), "event %d in the CCNP JSON file", want.EventNum)
		rebuilt = append(rebuilt, got.Data...)
	}
	expectSameBytes(rebuilt, expectedRaw(src, first, last), "the records in the CCNP JSON file, put back together")
	if first == 1 && last == src.total() {
		l, err := eventlog.Parse(rebuilt)
		Expect(err).NotTo(HaveOccurred())
		expectReplayGivesRegisters(l, src)
	}
}

// expectReplayGivesRegisters replays a whole log from a file and compares
// with the registers the source's hardware holds.
func expectReplayGivesRegisters(l *eventlog.Log, src *sourceLog) {
	GinkgoHelper()
	replayed, err := eventlog.Replay(l)
	Expect(err).NotTo(HaveOccurred())
	Expect(replayed).NotTo(BeEmpty(), "replaying the log extends no register")
	got := registerTable(src.kind, replayed)
	if !src.live {
		Expect(got).To(Equal(registerTable(src.kind, src.registers)), "registers replayed from the file, against %s", src.registersFrom)
		return
	}
	// A live bank has every register: those the log extends must equal the
	// replay, the others must still hold a reset value.
	live := registerTable(src.kind, src.registers)
	for name, v := range got {
		Expect(live).To(HaveKeyWithValue(name, v), "register replayed from the file, against %s", src.registersFrom)
	}
	for name, v := range live {
		if _, ok := got[name]; !ok {
			Expect(v).To(MatchRegexp(`^(00)+$|^(ff)+$`), "%s (from %s) is not in its reset state, yet the log never extends it", name, src.registersFrom)
		}
	}
}

// registerTable renders a bank as "sha384 RTMR0" -> hex, for readable diffs.
func registerTable(kind eventlog.Kind, b eventlog.Bank) map[string]string {
	t := map[string]string{}
	for alg, regs := range b {
		for idx, v := range regs {
			t[alg.String()+" "+kind.RegisterName(idx)] = hex.EncodeToString(v)
		}
	}
	return t
}

// expectSameBytes fails with where two byte strings first differ, rather
// than with a dump of both.
func expectSameBytes(got, want []byte, what string) {
	GinkgoHelper()
	if bytes.Equal(got, want) {
		return
	}
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	Fail(fmt.Sprintf("%s: %d bytes where %d were expected; they first differ at byte offset %d", what, len(got), len(want), i))
}

// skipUnlessTPM2EventlogReads skips the spec, saying why, where
// tpm2_eventlog cannot be the independent decoder of a raw file: when it
// is not installed, or for a log tpm2_eventlog 5.4 cannot read.
func skipUnlessTPM2EventlogReads(src *sourceLog) string {
	GinkgoHelper()
	tool, err := tpm2eventlog.Find()
	if err != nil {
		Skip(err.Error() + ": no independent decoder to check the raw file with")
	}
	if !src.log.Agile() {
		Skip("tpm2_eventlog 5.4 cannot read legacy SHA1-only (TCG 1.2) logs: it prints no events or crashes; the raw file was checked against the source's bytes and expected registers")
	}
	if slices.ContainsFunc(src.log.Events, func(e eventlog.Event) bool { return e.Index == 0xFFFFFFFF }) {
		Skip("tpm2_eventlog 5.4 stops at events with index 0xFFFFFFFF, which this log has")
	}
	return tool
}

// expectTPM2EventlogAgrees runs tpm2_eventlog on a raw TPM file, as a user
// would on the path the reply gave, and checks that it reads events
// first..last of the source and, for the whole log, computes the source's
// PCRs.
func expectTPM2EventlogAgrees(ctx context.Context, tool, path string, src *sourceLog, first, last int) {
	GinkgoHelper()
	out, err := tpm2eventlog.Run(ctx, tool, path)
	Expect(err).NotTo(HaveOccurred())

	Expect(out.Events).To(HaveLen(last-first+2), "events tpm2_eventlog read, with the header")
	Expect(out.Events[0].EventNum).To(Equal(0))
	Expect(out.Events[0].EventType).To(Equal(src.log.Header.Type.String()))
	for i, got := range out.Events[1:] {
		want := src.log.Event(first + i)
		Expect(got.EventNum).To(Equal(i+1), "tpm2_eventlog numbers the file's events from 1")
		Expect(got.PCRIndex).To(Equal(want.Index), "event %d's PCR", want.Num)
		Expect(got.EventType).To(Equal(want.Type.String()), "event %d's type", want.Num)
		Expect(got.EventSize).To(Equal(len(want.Data)), "event %d's size", want.Num)
		Expect(got.Digests).To(HaveLen(len(want.Digests)), "event %d's digests", want.Num)
		for j, d := range want.Digests {
			Expect(got.Digests[j].AlgorithmID).To(Equal(d.Alg.String()), "event %d's digest %d", want.Num, j)
			Expect(got.Digests[j].Digest).To(Equal(hex.EncodeToString(d.Value)), "event %d's %s digest", want.Num, d.Alg)
		}
	}
	if first != 1 || last != src.total() {
		return
	}

	// tpm2_eventlog 5.4 extends EV_NO_ACTION events like any other and
	// ignores StartupLocality: PCRs such events name are where it differs
	// from a TPM, so they are left out. Every other PCR it computes must be
	// the source's.
	noAction := map[uint32]bool{}
	for _, e := range src.log.Events {
		if e.Type == eventlog.EvNoAction {
			noAction[e.Index] = true
		}
	}
	want := registerTable(src.kind, src.registers)
	compared := 0
	for alg, pcrs := range out.PCRs {
		for pcr, v := range pcrs {
			if noAction[pcr] {
				continue
			}
			name := alg + " " + src.kind.RegisterName(pcr)
			Expect(want).To(HaveKeyWithValue(name, v), "PCR tpm2_eventlog computed, against %s", src.registersFrom)
			compared++
		}
	}
	Expect(compared).To(BeNumerically(">", 0), "tpm2_eventlog computed no PCR to compare")
	if len(noAction) > 0 {
		GinkgoWriter.Printf("tpm2_eventlog PCRs not compared (EV_NO_ACTION events, which it extends): %v\n", slices.Sorted(maps.Keys(noAction)))
	}
}
