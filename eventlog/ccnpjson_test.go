package eventlog_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"github.com/ccnp-eventlog/ccnp-eventlog/internal/corpus"
)

// The shapes the upstream CCNP server encodes and its Go SDK decodes, written
// out here so that the test holds the contract rather than our own types.

type TDEventLogSpecIdHeader struct {
	Address     uint64
	Length      int
	HeaderData  []byte
	Rtmr        uint32
	Etype       uint32
	DigestCount uint32
	DigestSizes map[uint16]uint16
}

type TDEventLog struct {
	Rtmr        uint32
	Etype       uint32
	DigestCount uint32
	Digests     []string
	Data        []byte
	Event       []byte
	Length      int
	EventSize   uint32
	AlgorithmId uint16
}

type TDEventLogs struct {
	Header    TDEventLogSpecIdHeader
	EventLogs []TDEventLog
}

// The TPM variant: Pcr where TDX has Rtmr.

type TPMEventLogSpecIdHeader struct {
	Address     uint64
	Length      int
	HeaderData  []byte
	Pcr         uint32
	Etype       uint32
	DigestCount uint32
	DigestSizes map[uint16]uint16
}

type TPMEventLog struct {
	Pcr         uint32
	Etype       uint32
	DigestCount uint32
	Digests     []string
	Data        []byte
	Event       []byte
	Length      int
	EventSize   uint32
	AlgorithmId uint16
}

type TPMEventLogs struct {
	Header    TPMEventLogSpecIdHeader
	EventLogs []TPMEventLog
}

// readableEvent holds the fields this project adds to each event.
type readableEvent struct {
	EventNum   int
	TypeName   string
	Register   string
	DigestsHex map[string]string
}

// ccnpSchema is every field the encoder may write. Decoding with
// DisallowUnknownFields into it catches a misspelt or stray key.
type ccnpSchema struct {
	Header struct {
		TDEventLogSpecIdHeader
		Pcr *uint32
		readableEvent
		SpecID *struct {
			Signature     string
			PlatformClass uint32
			SpecVersion   string
			UintnSize     uint8
			Algorithms    []struct {
				AlgorithmId uint16
				Name        string
				DigestSize  uint16
			}
			VendorInfo []byte
		}
	}
	EventLogs []struct {
		TDEventLog
		Pcr *uint32
		readableEvent
	}
	Kind        string
	TotalEvents int
	EventCount  int
	FirstEvent  int
}

func TestCCNPJSONCorpus(t *testing.T) {
	for _, name := range slices.Sorted(maps.Keys(corpus.Expected(t))) {
		l, input := corpus.Parse(t, name)
		kind := eventlog.DetectKind(l, input)
		if want := map[bool]eventlog.Kind{true: eventlog.TDX, false: eventlog.TPM}[strings.HasPrefix(name, "tdx/")]; kind != want {
			t.Errorf("%s: DetectKind = %v, want %v", name, kind, want)
		}
		n := len(l.Events)
		for _, s := range [][2]int{{0, 0}, {n / 2, 7}, {n, 0}} {
			t.Run(fmt.Sprintf("%s/start=%d,count=%d", name, s[0], s[1]), func(t *testing.T) {
				sel, err := l.Slice(s[0], s[1])
				if err != nil {
					t.Fatal(err)
				}
				const address = 0x7d649000
				out := eventlog.AppendCCNPJSON(nil, l, sel, eventlog.JSONOptions{Kind: kind, Address: address})
				if !json.Valid(out) {
					t.Fatalf("invalid JSON: %.200s", out)
				}
				checkUpstream(t, out, l, sel, kind, address)
				checkReadable(t, out, l, sel, kind)
			})
		}
	}
}

// checkUpstream decodes out as the upstream SDK does and checks every value.
func checkUpstream(t *testing.T, out []byte, l *eventlog.Log, sel []eventlog.Event, kind eventlog.Kind, address uint64) {
	t.Helper()
	// Both variants decode the same fields; the register is Rtmr or Pcr.
	var td TDEventLogs
	var tpm TPMEventLogs
	if err := json.Unmarshal(out, &td); err != nil {
		t.Fatalf("decoding as TDEventLogs: %v", err)
	}
	if err := json.Unmarshal(out, &tpm); err != nil {
		t.Fatalf("decoding as the TPM variant: %v", err)
	}
	register := func(index uint32) uint32 {
		if kind == eventlog.TDX {
			return index - 1 // upstream Rtmr: CC MR index 1 is RTMR0
		}
		return index
	}
	regOf := func(rtmr, pcr uint32) uint32 {
		if kind == eventlog.TDX {
			return rtmr
		}
		return pcr
	}
	if strings.Contains(string(out), `"Rtmr"`) != (kind == eventlog.TDX) || strings.Contains(string(out), `"Pcr"`) != (kind == eventlog.TPM) {
		t.Errorf("%v log: the register field is not %s alone", kind, map[eventlog.Kind]string{eventlog.TDX: "Rtmr", eventlog.TPM: "Pcr"}[kind])
	}

	h := td.Header
	wantSizes := map[uint16]uint16{uint16(eventlog.AlgSHA1): 20}
	if l.SpecID != nil {
		wantSizes = map[uint16]uint16{}
		for _, a := range l.SpecID.Algs {
			wantSizes[uint16(a.Alg)] = a.Size
		}
	}
	switch {
	case h.Address != address:
		t.Errorf("Header.Address = %#x, want %#x", h.Address, address)
	case h.Length != len(l.Header.Raw) || !bytes.Equal(h.HeaderData, l.Header.Raw):
		t.Errorf("Header.Length %d / HeaderData %d bytes, want the %d-byte header record", h.Length, len(h.HeaderData), len(l.Header.Raw))
	case regOf(h.Rtmr, tpm.Header.Pcr) != register(l.Header.Index):
		t.Errorf("Header register = %d, want %d", regOf(h.Rtmr, tpm.Header.Pcr), register(l.Header.Index))
	case h.Etype != uint32(l.Header.Type) || h.DigestCount != uint32(len(l.Header.Digests)):
		t.Errorf("Header Etype %d DigestCount %d, want %d %d", h.Etype, h.DigestCount, l.Header.Type, len(l.Header.Digests))
	case !maps.Equal(h.DigestSizes, wantSizes):
		t.Errorf("Header.DigestSizes = %v, want %v", h.DigestSizes, wantSizes)
	}

	if len(td.EventLogs) != len(sel) {
		t.Fatalf("%d EventLogs, want %d", len(td.EventLogs), len(sel))
	}
	for i, e := range sel {
		got := td.EventLogs[i]
		if r := regOf(got.Rtmr, tpm.EventLogs[i].Pcr); r != register(e.Index) {
			t.Errorf("event %d: register %d, want %d", e.Num, r, register(e.Index))
		}
		if got.Etype != uint32(e.Type) || got.DigestCount != uint32(len(e.Digests)) {
			t.Errorf("event %d: Etype %d DigestCount %d, want %d %d", e.Num, got.Etype, got.DigestCount, e.Type, len(e.Digests))
		}
		var digests []string
		for _, d := range e.Digests {
			digests = append(digests, fmt.Sprintf("%v", d.Value)) // as the upstream server printed them
		}
		if !slices.Equal(got.Digests, digests) {
			t.Errorf("event %d: Digests %q, want %q", e.Num, got.Digests, digests)
		}
		if !bytes.Equal(got.Data, e.Raw) || got.Length != len(e.Raw) {
			t.Errorf("event %d: Data (%d bytes) / Length %d, want the %d-byte record", e.Num, len(got.Data), got.Length, len(e.Raw))
		}
		if !bytes.Equal(got.Event, e.Data) || got.EventSize != uint32(len(e.Data)) {
			t.Errorf("event %d: Event (%d bytes) / EventSize %d, want the %d bytes of event data", e.Num, len(got.Event), got.EventSize, len(e.Data))
		}
		if want := e.Digests[len(e.Digests)-1].Alg; got.AlgorithmId != uint16(want) {
			t.Errorf("event %d: AlgorithmId %#x, want %#x (%v)", e.Num, got.AlgorithmId, uint16(want), want)
		}
	}
}

// checkReadable decodes out strictly and checks the fields this project adds.
func checkReadable(t *testing.T, out []byte, l *eventlog.Log, sel []eventlog.Event, kind eventlog.Kind) {
	t.Helper()
	var got ccnpSchema
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("strict decode: %v", err)
	}
	if got.Kind != kind.String() || got.TotalEvents != len(l.Events) || got.EventCount != len(sel) || got.FirstEvent != sel[0].Num {
		t.Errorf("Kind %q TotalEvents %d EventCount %d FirstEvent %d, want %q %d %d %d",
			got.Kind, got.TotalEvents, got.EventCount, got.FirstEvent, kind, len(l.Events), len(sel), sel[0].Num)
	}
	checkEvent := func(got readableEvent, e *eventlog.Event) {
		t.Helper()
		want := map[string]string{}
		for _, d := range e.Digests {
			want[d.Alg.String()] = hex.EncodeToString(d.Value)
		}
		if got.EventNum != e.Num || got.TypeName != e.Type.String() || got.Register != kind.RegisterName(e.Index) {
			t.Errorf("event %d: EventNum %d TypeName %s Register %s, want %d %s %s",
				e.Num, got.EventNum, got.TypeName, got.Register, e.Num, e.Type, kind.RegisterName(e.Index))
		}
		if len(got.DigestsHex) != len(e.Digests) || !maps.Equal(got.DigestsHex, want) {
			t.Errorf("event %d: DigestsHex %v, want %v", e.Num, got.DigestsHex, want)
		}
	}
	checkEvent(got.Header.readableEvent, &l.Header)
	for i := range sel {
		checkEvent(got.EventLogs[i].readableEvent, &sel[i])
	}
	s, gs := l.SpecID, got.Header.SpecID
	if (s == nil) != (gs == nil) {
		t.Fatalf("SpecID present %v, want %v", gs != nil, s != nil)
	}
	if s == nil {
		return
	}
	if gs.Signature != "Spec ID Event03" || gs.PlatformClass != s.PlatformClass || gs.UintnSize != s.UintnSize ||
		gs.SpecVersion != fmt.Sprintf("%d.%d.%d", s.VersionMajor, s.VersionMinor, s.Errata) || !bytes.Equal(gs.VendorInfo, s.VendorInfo) {
		t.Errorf("SpecID %+v, want %+v", gs, s)
	}
	if len(gs.Algorithms) != len(s.Algs) {
		t.Fatalf("SpecID lists %d algorithms, want %d", len(gs.Algorithms), len(s.Algs))
	}
	for i, a := range s.Algs {
		if g := gs.Algorithms[i]; g.AlgorithmId != uint16(a.Alg) || g.Name != a.Alg.String() || g.DigestSize != a.Size {
			t.Errorf("SpecID algorithm %d: %+v, want %v size %d", i, g, a.Alg, a.Size)
		}
	}
}

// TestCCNPJSONEdges covers what the corpus does not: no events selected,
// events without digests, unknown types and algorithms with no name.
func TestCCNPJSONEdges(t *testing.T) {
	log := eventlog.AppendSpecIDHeader(nil, 1, []eventlog.Alg{eventlog.AlgSHA384})
	log = eventlog.AppendEvent2(log, 1, 0x1234ABCD, nil, []byte("\"quotes\" and \\ in data"))
	l, err := eventlog.Parse(log)
	if err != nil {
		t.Fatal(err)
	}
	for _, sel := range [][]eventlog.Event{nil, l.Events} {
		out := eventlog.AppendCCNPJSON(nil, l, sel, eventlog.JSONOptions{Kind: eventlog.TDX})
		var got ccnpSchema
		dec := json.NewDecoder(bytes.NewReader(out))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&got); err != nil {
			t.Fatalf("%s: %v", out, err)
		}
		if len(got.EventLogs) != len(sel) || got.EventCount != len(sel) {
			t.Errorf("%d events written, want %d", len(got.EventLogs), len(sel))
		}
		if len(sel) == 0 {
			if got.FirstEvent != 0 || got.EventLogs == nil {
				t.Errorf("no events: FirstEvent %d, EventLogs %v; want 0 and []", got.FirstEvent, got.EventLogs)
			}
			continue
		}
		e := got.EventLogs[0]
		if e.TypeName != "EV_UNKNOWN_0x1234abcd" || e.DigestCount != 0 || e.Digests == nil || len(e.Digests) != 0 || e.AlgorithmId != 0 {
			t.Errorf("event without digests: %+v", e)
		}
		if string(e.Event) != "\"quotes\" and \\ in data" {
			t.Errorf("Event = %q", e.Event)
		}
	}
}
