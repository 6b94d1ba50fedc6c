package eventlog_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"github.com/ccnp-eventlog/ccnp-eventlog/internal/corpus"
	"github.com/ccnp-eventlog/ccnp-eventlog/internal/tpm2eventlog"
)

// TestTPM2EventlogAgrees has tpm2_eventlog (tpm2-tools), an independent
// decoder, read the raw output of every crypto-agile corpus TPM log, whole
// and sliced: it must see the same events and compute the same PCRs.
//
// Two things it cannot check, where this parser must be right on its own
// (TestCorpus checks those logs against expected.json):
//   - Debian's tpm2_eventlog 5.4 cannot read legacy SHA1-only (TCG 1.2)
//     logs: it prints no events for tpm_debian-10.bin and crashes on
//     legacy_option_rom_eventlog.bin;
//   - it stops at events with index 0xFFFFFFFF.
//
// And it extends EV_NO_ACTION events (see compareTPM2PCRs), so PCR0 of the
// logs with a StartupLocality event is where it and we disagree.
func TestTPM2EventlogAgrees(t *testing.T) {
	tool, err := tpm2eventlog.Find()
	if err != nil {
		t.Skipf("%v: no independent decoder to compare with", err)
	}
	compared := 0
	for _, name := range slices.Sorted(maps.Keys(corpus.Expected(t))) {
		if !strings.HasPrefix(name, "tpm/") {
			continue
		}
		l, _ := corpus.Parse(t, name)
		var cannot []string
		if !l.Agile() {
			cannot = append(cannot, "it is a legacy SHA1-only log")
		}
		if slices.ContainsFunc(l.Events, func(e eventlog.Event) bool { return e.Index == 0xFFFFFFFF }) {
			cannot = append(cannot, "it has events at index 0xFFFFFFFF")
		}
		if cannot != nil {
			t.Run(name, func(t *testing.T) {
				// Run it anyway, so the test log says what it does today.
				y, err := tpm2eventlog.RunOn(context.Background(), tool, l.Raw)
				n := 0
				if y != nil {
					n = len(y.Events)
				}
				t.Logf("not compared: tpm2_eventlog 5.4 cannot read this log (%s); our parser must be right on its own, "+
					"as TestCorpus checks (%d events). tpm2_eventlog printed %d events (%v)",
					strings.Join(cannot, ", "), len(l.Events)+1, n, err)
			})
			continue
		}
		n := len(l.Events)
		for _, s := range [][2]int{{0, 0}, {n / 4, n / 2}, {n - 1, 0}} {
			t.Run(fmt.Sprintf("%s/start=%d,count=%d", name, s[0], s[1]), func(t *testing.T) {
				sel, err := l.Slice(s[0], s[1])
				if err != nil {
					t.Fatal(err)
				}
				raw := eventlog.AppendRaw(nil, l, sel)
				y, err := tpm2eventlog.RunOn(context.Background(), tool, raw)
				if err != nil {
					t.Fatal(err)
				}
				back, err := eventlog.Parse(raw)
				if err != nil {
					t.Fatal(err)
				}
				compareTPM2Events(t, back, y)
				compareTPM2PCRs(t, back, raw, y)
				compared++
			})
		}
	}
	if compared == 0 {
		t.Error("no corpus log was compared with tpm2_eventlog")
	}
}

func compareTPM2Events(t *testing.T, l *eventlog.Log, y *tpm2eventlog.Output) {
	t.Helper()
	if len(y.Events) != len(l.Events)+1 {
		t.Fatalf("tpm2_eventlog printed %d events, we parsed %d (with the header)", len(y.Events), len(l.Events)+1)
	}
	if h := y.Events[0]; h.EventNum != 0 || h.PCRIndex != l.Header.Index || h.EventType != l.Header.Type.String() || h.EventSize != len(l.Header.Data) {
		t.Errorf("header: tpm2_eventlog EventNum %d PCR %d %s size %d, ours index %d type %v size %d",
			h.EventNum, h.PCRIndex, h.EventType, h.EventSize, l.Header.Index, l.Header.Type, len(l.Header.Data))
	}
	for i, e := range l.Events {
		ye := &y.Events[i+1]
		if ye.EventNum != e.Num || ye.PCRIndex != e.Index || ye.EventType != e.Type.String() || ye.EventSize != len(e.Data) {
			t.Errorf("event %d: tpm2_eventlog EventNum %d PCR %d %s size %d, ours PCR %d %v size %d",
				e.Num, ye.EventNum, ye.PCRIndex, ye.EventType, ye.EventSize, e.Index, e.Type, len(e.Data))
		}
		var ours []tpm2eventlog.Digest
		for _, d := range e.Digests {
			ours = append(ours, tpm2eventlog.Digest{AlgorithmID: d.Alg.String(), Digest: hex.EncodeToString(d.Value)})
		}
		if !slices.Equal(ye.Digests, ours) {
			t.Errorf("event %d: tpm2_eventlog digests %v, ours %v", e.Num, ye.Digests, ours)
		}
		if data := ye.DataHex(); data != "" && data != hex.EncodeToString(e.Data) {
			t.Errorf("event %d: tpm2_eventlog data %s, ours %x", e.Num, data, e.Data)
		}
	}
}

// compareTPM2PCRs checks the PCRs tpm2_eventlog computed. tpm2_eventlog 5.4
// extends EV_NO_ACTION events' digests like any other (for StartupLocality,
// zeros, and it starts PCR0 at zero whatever the locality): that is why it
// disagrees on PCR0 of logs with a StartupLocality event. So every PCR is
// checked against our replay of the log with its EV_NO_ACTION events
// retyped as measurements, which is how tpm2_eventlog reads it, and every
// PCR no EV_NO_ACTION event names must also equal our own replay.
func compareTPM2PCRs(t *testing.T, l *eventlog.Log, raw []byte, y *tpm2eventlog.Output) {
	t.Helper()
	ours, err := eventlog.Replay(l)
	if err != nil {
		t.Fatal(err)
	}
	asTPM2 := bytes.Clone(raw)
	noAction := map[uint32]bool{}
	for _, e := range l.Events {
		if e.Type == eventlog.EvNoAction {
			binary.LittleEndian.PutUint32(asTPM2[e.Offset+4:], uint32(eventlog.EvPostCode))
			noAction[e.Index] = true
		}
	}
	ml, err := eventlog.Parse(asTPM2)
	if err != nil {
		t.Fatal(err)
	}
	model, err := eventlog.Replay(ml)
	if err != nil {
		t.Fatal(err)
	}
	if len(y.PCRs) != len(model) {
		t.Errorf("tpm2_eventlog computed %d banks, we %d", len(y.PCRs), len(model))
	}
	for alg, regs := range model {
		theirs := y.PCRs[alg.String()]
		if got, want := slices.Sorted(maps.Keys(theirs)), slices.Sorted(maps.Keys(regs)); !slices.Equal(got, want) {
			t.Errorf("%s: tpm2_eventlog computed PCRs %v, we %v", alg, got, want)
		}
		for pcr, v := range regs {
			if theirs[pcr] != hex.EncodeToString(v) {
				t.Errorf("%s PCR%d: tpm2_eventlog %s, ours (replaying EV_NO_ACTION as it does) %x", alg, pcr, theirs[pcr], v)
			}
			if noAction[pcr] {
				continue
			}
			if mine := ours.Get(alg, pcr); theirs[pcr] != hex.EncodeToString(mine) {
				t.Errorf("%s PCR%d: tpm2_eventlog %s, ours %x", alg, pcr, theirs[pcr], mine)
			}
		}
	}
	for pcr := range noAction {
		t.Logf("PCR%d has EV_NO_ACTION events, which tpm2_eventlog 5.4 extends and we do not: compared with our replay of the log as tpm2_eventlog reads it", pcr)
	}
}
