package verify_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"github.com/ccnp-eventlog/ccnp-eventlog/simulator"
	"github.com/ccnp-eventlog/ccnp-eventlog/verify"
)

func simulatedTDX(t *testing.T) (*eventlog.Log, eventlog.Bank) {
	t.Helper()
	td, err := simulator.NewTDX(simulator.TDXConfig{Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := td.ReadLog(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	l := raw.Parsed
	live, err := td.Registers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return l, live
}

func TestSimulatedTDXMatches(t *testing.T) {
	l, live := simulatedTDX(t)
	r, err := verify.Check(l, eventlog.TDX, live, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Verified() || r.Mismatched() {
		t.Fatalf("simulated registers do not verify: %+v", r.Registers)
	}
	names := map[string]bool{}
	for _, reg := range r.Registers {
		names[reg.Name] = true
		if reg.Alg != eventlog.AlgSHA384 || reg.Events == 0 || !bytes.Equal(reg.Live, reg.Replayed) {
			t.Errorf("%s: %+v", reg.Name, reg)
		}
	}
	for _, want := range []string{"RTMR0", "RTMR1", "RTMR2"} {
		if !names[want] {
			t.Errorf("%s is missing from the report", want)
		}
	}
}

func TestChangedRegisterIsNamed(t *testing.T) {
	l, live := simulatedTDX(t)
	live.Get(eventlog.AlgSHA384, 2)[0] ^= 1 // RTMR1
	r, err := verify.Check(l, eventlog.TDX, live, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Verified() || !r.Mismatched() {
		t.Fatal("a changed RTMR1 verified")
	}
	for _, reg := range r.Registers {
		if want := map[bool]verify.Status{true: verify.Mismatch, false: verify.Match}[reg.Name == "RTMR1"]; reg.Status != want {
			t.Errorf("%s: %s, want %s", reg.Name, reg.Status, want)
		}
	}
}

func TestUnloggedRTMR3IsAQuirk(t *testing.T) {
	l, live := simulatedTDX(t)
	extended := bytes.Repeat([]byte{0xAB}, 48)
	live.Set(eventlog.AlgSHA384, 4, extended)
	r, err := verify.Check(l, eventlog.TDX, live, nil)
	if err != nil {
		t.Fatal(err)
	}
	var rtmr3 *verify.Register
	for i := range r.Registers {
		if r.Registers[i].Name == "RTMR3" {
			rtmr3 = &r.Registers[i]
		}
	}
	if rtmr3 == nil || rtmr3.Status != verify.Mismatch || rtmr3.Events != 0 || !bytes.Equal(rtmr3.Replayed, make([]byte, 48)) {
		t.Fatalf("RTMR3 extended without log entries: %+v", rtmr3)
	}
	if len(r.Quirks) != 1 || r.Quirks[0].Name != "rtmr3-unlogged" {
		t.Errorf("quirks: %+v", r.Quirks)
	}

	// Left at its reset value, an unlogged register is not reported at all.
	live.Set(eventlog.AlgSHA384, 4, make([]byte, 48))
	r, _ = verify.Check(l, eventlog.TDX, live, nil)
	if !r.Verified() || len(r.Quirks) != 0 {
		t.Errorf("an untouched RTMR3: verified %v, quirks %+v", r.Verified(), r.Quirks)
	}
}

func TestNoLiveRegistersIsNotAvailable(t *testing.T) {
	l, _ := simulatedTDX(t)
	r, err := verify.Check(l, eventlog.TDX, nil, errors.New("no tdx_guest driver"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Verified() || r.Mismatched() || len(r.Registers) == 0 {
		t.Fatalf("verified %v mismatched %v with %d registers", r.Verified(), r.Mismatched(), len(r.Registers))
	}
	for _, reg := range r.Registers {
		if reg.Status != verify.NotAvailable || reg.Live != nil || reg.Replayed == nil {
			t.Errorf("%s: %+v", reg.Name, reg)
		}
	}
}

func TestOVMFDuplicateSeparatorIsNamed(t *testing.T) {
	b, err := os.ReadFile("../eventlog/testdata/corpus/tdx/cos-113-dupe-separator.unpadded.bin")
	if err != nil {
		t.Fatal(err)
	}
	l, err := eventlog.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	replayed, _ := eventlog.Replay(l)
	r, err := verify.Check(l, eventlog.TDX, replayed, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Verified() {
		t.Errorf("the quirk is served and replayed: registers should match, got %+v", r.Registers)
	}
	if len(r.Quirks) != 1 || r.Quirks[0].Name != "ovmf-rtmr0-duplicate-separator" || r.Quirks[0].Register != "RTMR0" || len(r.Quirks[0].Events) != 2 {
		t.Fatalf("quirks: %+v", r.Quirks)
	}
	for _, n := range r.Quirks[0].Events {
		if e := l.Event(n); e.Type != eventlog.EvSeparator || e.Index != 1 {
			t.Errorf("event %d is %s at index %d", n, e.Type, e.Index)
		}
	}
	if !strings.Contains(r.Quirks[0].Description, "OVMF") {
		t.Errorf("description: %s", r.Quirks[0].Description)
	}
}

// Several separators per RTMR are normal when PCRs 0-7 map onto RTMR0-1, as
// in the older OVMF log of the corpus: not the quirk.
func TestOrdinarySeparatorsAreNoQuirk(t *testing.T) {
	for _, name := range []string{"ovmf-64k.data.bin", "cos-113-tdx.data.bin"} {
		b, err := os.ReadFile("../eventlog/testdata/corpus/tdx/" + name)
		if err != nil {
			t.Fatal(err)
		}
		l, err := eventlog.ParseArea(b)
		if err != nil {
			t.Fatal(err)
		}
		r, err := verify.Check(l, eventlog.TDX, nil, errors.New("no live registers"))
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Quirks) != 0 {
			t.Errorf("%s: quirks %+v", name, r.Quirks)
		}
	}
}

// Replay uses digests, so changed data leaves the registers matching: the
// event's own digest check must catch it.
func TestAlteredEventDataIsMismatch(t *testing.T) {
	l, live := simulatedTDX(t)
	var altered *eventlog.Event
	for i := range l.Events {
		if l.Events[i].Type == eventlog.EvEFIVariableDriverConfig {
			altered = &l.Events[i]
			break
		}
	}
	if altered == nil {
		t.Fatal("the simulated log has no EV_EFI_VARIABLE_DRIVER_CONFIG event")
	}
	altered.Data[len(altered.Data)-1] ^= 0x80
	r, err := verify.Check(l, eventlog.TDX, live, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Verified() || !r.Mismatched() {
		t.Fatal("altered event data verified")
	}
	name := eventlog.TDX.RegisterName(altered.Index)
	for _, reg := range r.Registers {
		if reg.Name == name {
			if reg.Status != verify.Mismatch || len(reg.Altered) != 1 || reg.Altered[0] != altered.Num || !bytes.Equal(reg.Live, reg.Replayed) {
				t.Errorf("%s: %+v", name, reg)
			}
		} else if reg.Status != verify.Match {
			t.Errorf("%s: %s, want MATCH", reg.Name, reg.Status)
		}
	}
}
