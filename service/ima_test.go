package service_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog/ima"
	"github.com/ccnp-eventlog/ccnp-eventlog/hwsource"
	eventlogpb "github.com/ccnp-eventlog/ccnp-eventlog/proto"
	"github.com/ccnp-eventlog/ccnp-eventlog/service"
	"github.com/ccnp-eventlog/ccnp-eventlog/simulator"
)

const imaCat = eventlogpb.CATEGORY_IMA_EVENTLOG

// imaHost is a fake host tree with its simulated TPM served at
// root/dev/tpmrm0, as fakehost --serve-tpm serves it, and a server reading
// both through the real backends.
type imaHost struct {
	root string
	list string // the list's path
	s    *server
}

func newIMAHost(t *testing.T, entries int, options ...func(*service.Options)) *imaHost {
	t.Helper()
	root := t.TempDir()
	cfg := simulator.HostConfig{Seed: 5, IMAEntries: entries}
	if _, err := simulator.WriteHostTree(root, cfg); err != nil {
		t.Fatal(err)
	}
	tpm, l, err := simulator.ServeHostTPM(root, cfg)
	if err != nil {
		t.Fatal(err)
	}
	go tpm.Serve(l)
	t.Cleanup(func() { l.Close(); tpm.Close() })
	opts := append([]func(*service.Options){func(o *service.Options) { o.IMA = hwsource.NewIMA(root, hwsource.IMAOptions{}) }}, options...)
	return &imaHost{root: root, list: filepath.Join(root, hwsource.IMAListPath), s: start(t, root, nil, opts...)}
}

// raw returns the entries a request gets in TCG_RAW, inline.
func (h *imaHost) raw(t *testing.T, start, count int32) (*eventlogpb.GetEventlogReply, []byte) {
	t.Helper()
	r, err := h.s.get(t, &eventlogpb.GetEventlogRequest{EventlogCategory: imaCat, StartPosition: start, Count: count, Format: eventlogpb.FORMAT_TCG_RAW, Inline: true})
	if err != nil {
		t.Fatal(err)
	}
	return r, r.EventlogData
}

// entriesOf returns the bytes of entries first..last (1-based) of list.
func entriesOf(t *testing.T, list []byte, first, last int) []byte {
	t.Helper()
	l, err := ima.Parse(list, ima.Options{})
	if err != nil {
		t.Fatal(err)
	}
	es, err := l.Slice(first, last-first+1)
	if err != nil {
		t.Fatal(err)
	}
	return ima.AppendRaw(nil, es)
}

func readBytes(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestIMAListServed(t *testing.T) {
	h := newIMAHost(t, 30)
	list := readBytes(t, h.list)

	r, b := h.raw(t, 0, 0)
	if !bytes.Equal(b, list) || r.TotalEvents != 30 || r.EventCount != 30 || r.FirstEvent != 1 || r.Source != h.list || r.Simulated {
		t.Fatalf("the whole list: %d bytes (the file has %d), %d of %d from %d, source %q", len(b), len(list), r.EventCount, r.TotalEvents, r.FirstEvent, r.Source)
	}
	r, b = h.raw(t, 5, 3)
	if !bytes.Equal(b, entriesOf(t, list, 5, 7)) || r.FirstEvent != 5 || r.EventCount != 3 {
		t.Errorf("entries 5-7: first %d, count %d", r.FirstEvent, r.EventCount)
	}
	if _, err := h.s.get(t, &eventlogpb.GetEventlogRequest{EventlogCategory: imaCat, StartPosition: 31}); status.Code(err) != codes.OutOfRange {
		t.Errorf("start past the end: %v", err)
	}

	// CCNP JSON, in a file: every entry, decoded.
	r, err := h.s.get(t, &eventlogpb.GetEventlogRequest{EventlogCategory: imaCat, StartPosition: 2, Count: 4})
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Kind         string
		TotalEntries int
		Entries      []struct {
			EntryNum     int
			Pcr          int
			TemplateName string
			Fields       map[string]string
		}
	}
	if err := json.Unmarshal(readBytes(t, r.EventlogDataLoc), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Kind != "IMA" || doc.TotalEntries != 30 || len(doc.Entries) != 4 || doc.Entries[0].EntryNum != 2 || doc.Entries[0].Pcr != 10 ||
		doc.Entries[0].TemplateName != "ima-ng" || doc.Entries[0].Fields["n-ng"] != "/usr/lib/systemd/systemd" {
		t.Errorf("JSON: %+v", doc)
	}
}

func TestIMAListGrowsBetweenRequests(t *testing.T) {
	h := newIMAHost(t, 10)
	first, err := h.s.get(t, &eventlogpb.GetEventlogRequest{EventlogCategory: imaCat, Format: eventlogpb.FORMAT_TCG_RAW})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := simulator.AppendHostIMA(h.root, 5); err != nil {
		t.Fatal(err)
	}
	r, b := h.raw(t, 0, 0)
	if r.TotalEvents != 15 || !bytes.Equal(b, readBytes(t, h.list)) {
		t.Fatalf("after 5 appended: %d entries", r.TotalEvents)
	}
	// The same request now names another file: the list it answers is
	// another.
	again, err := h.s.get(t, &eventlogpb.GetEventlogRequest{EventlogCategory: imaCat, Format: eventlogpb.FORMAT_TCG_RAW})
	if err != nil {
		t.Fatal(err)
	}
	if again.EventlogDataLoc == first.EventlogDataLoc || again.TotalEvents != 15 || !bytes.Equal(readBytes(t, again.EventlogDataLoc), b) {
		t.Errorf("a cached reply of the shorter list: %s, %d entries", again.EventlogDataLoc, again.TotalEvents)
	}
	// An unchanged list answers from the cache: the same file.
	if same, err := h.s.get(t, &eventlogpb.GetEventlogRequest{EventlogCategory: imaCat, Format: eventlogpb.FORMAT_TCG_RAW}); err != nil || same.EventlogDataLoc != again.EventlogDataLoc {
		t.Errorf("unchanged list: %v, %v", same, err)
	}

	// The list grew, and the PCR with it: verified.
	v, err := h.s.verify(t, imaCat)
	if err != nil {
		t.Fatal(err)
	}
	if !v.Verified || v.TotalEvents != 15 {
		t.Fatalf("verify after growth: %v", v)
	}
}

func TestIMAVerify(t *testing.T) {
	h := newIMAHost(t, 20)
	v, err := h.s.verify(t, imaCat)
	if err != nil {
		t.Fatal(err)
	}
	if !v.Verified || v.LiveError != "" || !strings.Contains(v.LiveFrom, "dev/tpmrm0") {
		t.Fatalf("verify: %v", v)
	}
	banks := map[string]bool{}
	aggregate := false
	for _, reg := range v.Registers {
		if reg.Status != eventlogpb.REGISTER_STATUS_MATCH {
			t.Errorf("%v", reg)
		}
		if reg.Register == "PCR10" {
			banks[reg.Algorithm] = reg.Events == 20
		}
		aggregate = aggregate || reg.Register == "boot_aggregate" && reg.Algorithm == "sha256"
	}
	if !banks["sha1"] || !banks["sha256"] || !aggregate {
		t.Errorf("rows: %v", v.Registers)
	}

	// Entries logged that the PCR never saw (a list appended to without
	// the TPM: no socket for AppendHostIMA to extend through): the first
	// is named.
	os.Rename(filepath.Join(h.root, hwsource.TPMDevicePath), filepath.Join(h.root, "tpm.away"))
	if _, err := simulator.AppendHostIMA(h.root, 2); err != nil {
		t.Fatal(err)
	}
	os.Rename(filepath.Join(h.root, "tpm.away"), filepath.Join(h.root, hwsource.TPMDevicePath))
	v, err = h.s.verify(t, imaCat)
	if err != nil {
		t.Fatal(err)
	}
	if v.Verified {
		t.Fatal("verified entries the PCR lacks")
	}
	for _, reg := range v.Registers {
		if reg.Register == "PCR10" && (reg.Status != eventlogpb.REGISTER_STATUS_MISMATCH || reg.FirstUnmatchedEvent != 21 || reg.Events != 22) {
			t.Errorf("%v", reg)
		}
	}
}

func TestIMAVerifyChangedEntry(t *testing.T) {
	h := newIMAHost(t, 20)
	// Entry 9's template hash rewritten in a copy of the list that
	// replaces it, while the server holds the list read at start: another
	// file at the path is read from its start. (Rewritten in place, with
	// the last entry unchanged, the server would not notice: see
	// hwsource.imaFile.)
	list := readBytes(t, h.list)
	l, err := ima.Parse(list, ima.Options{})
	if err != nil {
		t.Fatal(err)
	}
	list[l.Entry(9).Offset+4] ^= 0x5a
	if err := os.WriteFile(h.list+".new", list, 0o444); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(h.list+".new", h.list); err != nil {
		t.Fatal(err)
	}
	v, err := h.s.verify(t, imaCat)
	if err != nil {
		t.Fatal(err)
	}
	if v.Verified {
		t.Fatal("verified a changed list")
	}
	for _, reg := range v.Registers {
		if reg.Register == "PCR10" && (reg.Status != eventlogpb.REGISTER_STATUS_MISMATCH || len(reg.AlteredEvents) != 1 || reg.AlteredEvents[0] != 9) {
			t.Errorf("%v", reg)
		}
	}
}

func TestIMAWithoutTPMOrList(t *testing.T) {
	root := t.TempDir()
	if _, err := simulator.WriteHostTree(root, simulator.HostConfig{Seed: 2}); err != nil {
		t.Fatal(err)
	}
	s := start(t, root, nil, func(o *service.Options) { o.IMA = hwsource.NewIMA(root, hwsource.IMAOptions{}) })
	// No TPM device: the list is served, its register not available.
	if _, err := s.get(t, &eventlogpb.GetEventlogRequest{EventlogCategory: imaCat}); err != nil {
		t.Fatal(err)
	}
	v, err := s.verify(t, imaCat)
	if err != nil {
		t.Fatal(err)
	}
	if v.Verified || !strings.Contains(v.LiveError, "RTMR") {
		t.Errorf("no TPM: %v", v)
	}
	for _, reg := range v.Registers {
		if reg.Status != eventlogpb.REGISTER_STATUS_NOT_AVAILABLE {
			t.Errorf("%v", reg)
		}
	}

	// The list gone (a kernel without IMA): FAILED_PRECONDITION, as for
	// the other categories' missing logs.
	list := filepath.Join(root, hwsource.IMAListPath)
	if err := os.Remove(list); err != nil {
		t.Fatal(err)
	}
	_, err = s.get(t, &eventlogpb.GetEventlogRequest{EventlogCategory: imaCat})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), list) {
		t.Errorf("no list: %v", err)
	}
	// A FIFO in its place: refused at once.
	if err := syscall.Mkfifo(list, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = s.get(t, &eventlogpb.GetEventlogRequest{EventlogCategory: imaCat})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "named pipe") {
		t.Errorf("a FIFO: %v", err)
	}
	// Damaged: DATA_LOSS naming the entry.
	os.Remove(list)
	if err := os.WriteFile(list, bytes.Repeat([]byte{0xff}, 100), 0o444); err != nil {
		t.Fatal(err)
	}
	_, err = s.get(t, &eventlogpb.GetEventlogRequest{EventlogCategory: imaCat})
	if status.Code(err) != codes.DataLoss || !strings.Contains(err.Error(), "entry 1") {
		t.Errorf("damaged: %v", err)
	}
}

func TestIMARefusals(t *testing.T) {
	root := t.TempDir()
	s := start(t, root, nil) // no IMA list configured
	if _, err := s.get(t, &eventlogpb.GetEventlogRequest{EventlogCategory: imaCat}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("no IMA source: %v", err)
	}
	s = start(t, root, nil, func(o *service.Options) { o.IMA = hwsource.NewIMA(root, hwsource.IMAOptions{}) })
	_, err := s.get(t, &eventlogpb.GetEventlogRequest{EventlogLevel: eventlogpb.LEVEL_SAAS, EventlogCategory: imaCat})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "carries no container") {
		t.Errorf("SAAS: %v", err)
	}
	_, err = s.client.RecordEvent(context.Background(), &eventlogpb.RecordEventRequest{EventlogCategory: imaCat, Data: []byte("x")})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("RecordEvent: %v", err)
	}
	_, err = s.client.VerifyEventlog(context.Background(), &eventlogpb.VerifyEventlogRequest{EventlogCategory: imaCat, TdReport: make([]byte, 1024)})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("verify with a TDREPORT: %v", err)
	}
}

func TestIMAZeroBasedStart(t *testing.T) {
	h := newIMAHost(t, 10, zeroBasedStart)
	list := readBytes(t, h.list)
	r, b := h.raw(t, 2, 3)
	if r.FirstEvent != 3 || !bytes.Equal(b, entriesOf(t, list, 3, 5)) {
		t.Errorf("skip 2: first %d", r.FirstEvent)
	}
	if _, err := h.s.get(t, &eventlogpb.GetEventlogRequest{EventlogCategory: imaCat, StartPosition: 10}); status.Code(err) != codes.OutOfRange || !strings.Contains(err.Error(), "skip") {
		t.Errorf("skip all: %v", err)
	}
}
