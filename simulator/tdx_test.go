package simulator

import (
	"bytes"
	"context"
	"crypto/sha512"
	"fmt"
	"strings"
	"testing"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog/ccel"
)

// tdxConfigs are the seeds and sizes the TDX tests run: the default, a
// larger log, and thousands of events in the 1 MiB area newer OVMF uses.
var tdxConfigs = []TDXConfig{
	{Seed: 1},
	{Seed: 42, Events: 200, AreaSize: 128 << 10},
	{Seed: -3, Events: 41},
	{Seed: 7, Events: 6000, AreaSize: MaxAreaSize},
}

func TestTDXReplayGivesRegisters(t *testing.T) {
	for _, cfg := range tdxConfigs {
		t.Run(fmt.Sprintf("seed%d-events%d", cfg.Seed, cfg.Events), func(t *testing.T) {
			td, err := NewTDX(cfg)
			if err != nil {
				t.Fatal(err)
			}
			events, areaSize := cfg.Events, cfg.AreaSize
			if events == 0 {
				events = DefaultTDXEvents
			}
			if areaSize == 0 {
				areaSize = DefaultAreaSize
			}
			if !td.Simulated() || td.Kind() != eventlog.TDX || td.Name() != fmt.Sprintf("simulated TDX (seed %d, %d events)", cfg.Seed, events) {
				t.Errorf("Simulated() %v, Kind() %v, Name() %q", td.Simulated(), td.Kind(), td.Name())
			}

			table, err := ccel.Parse(td.Table())
			if err != nil {
				t.Fatal(err)
			}
			raw, err := td.ReadLog(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if table.CCType != ccel.TypeTDX || table.LAML != uint64(areaSize) || table.LASA != raw.Address || !raw.Area || len(raw.Data) != areaSize {
				t.Errorf("table {CC type %d, LAML %d, LASA %#x}, Log {Area %v, Address %#x, %d bytes}; want TDX, LAML = area = %d",
					table.CCType, table.LAML, table.LASA, raw.Area, raw.Address, len(raw.Data), areaSize)
			}
			l := raw.Parsed
			if len(l.Events) != events {
				t.Errorf("%d events, want %d", len(l.Events), events)
			}
			if !bytes.Equal(l.Raw, td.Log()) || !bytes.Equal(raw.Data[len(l.Raw):], bytes.Repeat([]byte{0xff}, areaSize-len(l.Raw))) {
				t.Errorf("the area is not the log followed by 0xFF padding")
			}
			// As TDVF: the Spec ID header at CC MR index 1, SHA-384 only.
			if l.Header.Index != 1 || len(l.Algs()) != 1 || l.Algs()[0] != eventlog.AlgSHA384 {
				t.Errorf("header at index %d listing %v, want index 1 listing sha384", l.Header.Index, l.Algs())
			}

			replayed, err := eventlog.Replay(l)
			if err != nil {
				t.Fatal(err)
			}
			live, err := td.Registers(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			for idx := uint32(1); idx <= 4; idx++ {
				want := replayed.Get(eventlog.AlgSHA384, idx)
				if want == nil {
					want = make([]byte, 48) // an RTMR nothing extends stays zero
				}
				if got := live.Get(eventlog.AlgSHA384, idx); !bytes.Equal(got, want) {
					t.Errorf("%s: live %x, replay %x", eventlog.TDX.RegisterName(idx), got, want)
				}
			}
			if len(replayed[eventlog.AlgSHA384]) != 3 || len(live[eventlog.AlgSHA384]) != 4 || len(live) != 1 {
				t.Errorf("replay extends %d RTMRs, live bank has %d banks, %d RTMRs; want RTMR0..2 extended, RTMR0..3 live",
					len(replayed[eventlog.AlgSHA384]), len(live), len(live[eventlog.AlgSHA384]))
			}
		})
	}
}

// TestTDXLooksLikeTDVF checks the log holds what a TDVF boot log holds, in
// the registers TDVF puts it in.
func TestTDXLooksLikeTDVF(t *testing.T) {
	td, err := NewTDX(TDXConfig{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	l, err := eventlog.Parse(td.Log())
	if err != nil {
		t.Fatal(err)
	}
	type where struct {
		typ eventlog.EventType
		mr  uint32
	}
	count := map[where]int{}
	var variables, ipl []string
	for _, e := range l.Events {
		count[where{e.Type, e.Index}]++
		switch e.Type {
		case eventlog.EvEFIVariableDriverConfig:
			variables = append(variables, variableName(t, e.Data))
		case eventlog.EvIPL:
			ipl = append(ipl, string(e.Data))
		case eventlog.EvEFIVariableBoot:
			// Firmware measures a boot variable's value, not the whole
			// UEFI_VARIABLE_DATA (as in the corpus's real TDX logs).
			value := e.Data[32+2*len(variableName(t, e.Data)):]
			if d := sha512.Sum384(value); !bytes.Equal(e.Digest(eventlog.AlgSHA384), d[:]) {
				t.Errorf("event %d (%s): digest is not the SHA-384 of the variable's value", e.Num, variableName(t, e.Data))
			}
		}
		if e.Index < 1 || e.Index > 3 {
			t.Errorf("event %d (%s) is in CC MR %d, a boot log uses RTMR0..2 (1..3)", e.Num, e.Type, e.Index)
		}
	}
	for _, w := range []struct {
		where
		n int
	}{
		{where{eventlog.EvEFIHandoffTables2, 1}, 1},
		{where{eventlog.EvEFIPlatformFirmwareBlob2, 1}, 1},
		{where{eventlog.EvEFIVariableDriverConfig, 1}, 5},
		{where{eventlog.EvSeparator, 1}, 2}, // PCR7 and PCR1: OVMF's two separators in RTMR0
		{where{eventlog.EvSeparator, 2}, 5}, // PCR2..6
		{where{eventlog.EvEFIVariableBoot, 1}, 3},
		{where{eventlog.EvEFIGPTEvent, 2}, 1},
		{where{eventlog.EvEFIBootServicesApp, 2}, 3},
		{where{eventlog.EvEFIVariableAuthority, 1}, 3},
		{where{eventlog.EvEventTag, 3}, 2},
		{where{eventlog.EvEFIAction, 2}, 3},
	} {
		if count[w.where] != w.n {
			t.Errorf("%d %s events in CC MR %d, want %d", count[w.where], w.typ, w.mr, w.n)
		}
	}
	if got := strings.Join(variables, ","); got != "SecureBoot,PK,KEK,db,dbx" {
		t.Errorf("Secure Boot variables measured: %s", got)
	}
	if !strings.Contains(strings.Join(ipl, "\n"), "kernel_cmdline: /boot/vmlinuz-") {
		t.Errorf("no kernel command line among the EV_IPL events")
	}
}

func TestTDXDeterministic(t *testing.T) {
	a, err := NewTDX(TDXConfig{Seed: 11, Events: 100})
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewTDX(TDXConfig{Seed: 11, Events: 100})
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewTDX(TDXConfig{Seed: 12, Events: 100})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Area(), b.Area()) || !bytes.Equal(a.Table(), b.Table()) || !a.rtmrs.Equal(b.rtmrs) {
		t.Errorf("one seed gave two different TDs")
	}
	if bytes.Equal(a.Log(), c.Log()) || a.rtmrs.Equal(c.rtmrs) {
		t.Errorf("seeds 11 and 12 gave the same log")
	}
}

func TestTDXConfigErrors(t *testing.T) {
	fixed := minEvents(onTDX)
	for _, tt := range []struct {
		cfg  TDXConfig
		want string
	}{
		{TDXConfig{Events: 900}, "more than the 65536-byte log area"},
		{TDXConfig{Events: 100000, AreaSize: MaxAreaSize}, "cannot fit"},
		{TDXConfig{Events: fixed - 1}, fmt.Sprintf("%d fixed events, %d were asked", fixed, fixed-1)},
		{TDXConfig{AreaSize: MaxAreaSize + 1}, "outside 1..1048576"},
		{TDXConfig{Events: -1}, "cannot fit"},
	} {
		_, err := NewTDX(tt.cfg)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("NewTDX(%+v) error = %v, want one saying %q", tt.cfg, err, tt.want)
		}
	}
	// The log may fill the area to its last byte.
	probe, err := NewTDX(TDXConfig{Seed: 5, Events: 60})
	if err != nil {
		t.Fatal(err)
	}
	exact, err := NewTDX(TDXConfig{Seed: 5, Events: 60, AreaSize: len(probe.Log())})
	if err != nil {
		t.Fatalf("a log exactly the size of its area: %v", err)
	}
	l, err := eventlog.ParseArea(exact.Area())
	if err != nil || len(l.Events) != 60 {
		t.Errorf("ParseArea of a full area: %v, %d events", err, len(l.Events))
	}
	if _, err := NewTDX(TDXConfig{Seed: 5, Events: 60, AreaSize: len(probe.Log()) - 1}); err == nil {
		t.Errorf("a log one byte larger than its area was accepted")
	}
}

// variableName decodes the name of a UEFI_VARIABLE_DATA.
func variableName(t *testing.T, d []byte) string {
	t.Helper()
	if len(d) < 32 {
		t.Fatalf("UEFI_VARIABLE_DATA of %d bytes", len(d))
	}
	n := int(d[16])
	var name []rune
	for i := range n {
		name = append(name, rune(d[32+2*i])|rune(d[33+2*i])<<8)
	}
	return string(name)
}
