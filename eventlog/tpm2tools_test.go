package eventlog_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
)

// tpm2Log is what tpm2_eventlog printed about a log.
type tpm2Log struct {
	events []tpm2Event
	// pcrs maps an algorithm name and PCR number to the hex value.
	pcrs map[string]map[uint32]string
}

type tpm2Event struct {
	num       int
	pcr       uint32
	typ       string
	digests   [][2]string // algorithm name, hex
	eventSize int
	// dataHex is the event data when tpm2_eventlog printed it as one hex
	// string rather than decoding it; "" otherwise.
	dataHex string
}

// parseTPM2Eventlog reads the YAML tpm2_eventlog 5.4 prints. It knows the
// few keys compared here and where they sit (two-space indents), and skips
// the decoded event data whatever its shape.
func parseTPM2Eventlog(out []byte) (*tpm2Log, error) {
	y := &tpm2Log{pcrs: map[string]map[uint32]string{}}
	var section, bank string
	inDigests := false
	s := bufio.NewScanner(bytes.NewReader(out))
	s.Buffer(nil, 16<<20) // decoded events can be long lines
	for line := 1; s.Scan(); line++ {
		text := s.Text()
		if !strings.HasPrefix(text, " ") && !strings.HasPrefix(text, "-") {
			section = strings.TrimSuffix(text, ":")
			continue
		}
		key, val, _ := strings.Cut(strings.TrimSpace(text), ":")
		key = strings.TrimSpace(key)
		val = strings.Trim(strings.TrimSpace(val), `"`)
		bad := func(err error) (*tpm2Log, error) {
			return nil, fmt.Errorf("tpm2_eventlog output line %d %q: %v", line, text, err)
		}
		if section == "pcrs" {
			switch {
			case strings.HasPrefix(text, "    "):
				pcr, err := strconv.ParseUint(key, 10, 32)
				if err != nil || !strings.HasPrefix(val, "0x") || bank == "" {
					return bad(fmt.Errorf("not a PCR value"))
				}
				y.pcrs[bank][uint32(pcr)] = strings.TrimPrefix(val, "0x")
			default:
				bank = key
				y.pcrs[bank] = map[uint32]string{}
			}
			continue
		}
		if section != "events" {
			continue
		}
		if key == "- EventNum" {
			n, err := strconv.Atoi(val)
			if err != nil {
				return bad(err)
			}
			y.events = append(y.events, tpm2Event{num: n})
			inDigests = false
			continue
		}
		if len(y.events) == 0 {
			continue
		}
		e := &y.events[len(y.events)-1]
		var err error
		switch {
		case strings.HasPrefix(text, "  PCRIndex:"):
			var v uint64
			v, err = strconv.ParseUint(val, 10, 32)
			e.pcr = uint32(v)
		case strings.HasPrefix(text, "  EventType:"):
			e.typ = val
		case strings.HasPrefix(text, "  Digests:"):
			inDigests = true
		case inDigests && strings.HasPrefix(text, "  - AlgorithmId:"):
			e.digests = append(e.digests, [2]string{val, ""})
		case inDigests && strings.HasPrefix(text, "    Digest:") && len(e.digests) > 0:
			e.digests[len(e.digests)-1][1] = val
		case strings.HasPrefix(text, "  EventSize:"):
			inDigests = false
			e.eventSize, err = strconv.Atoi(val)
		case strings.HasPrefix(text, "  Event: \""):
			e.dataHex = val
		}
		if err != nil {
			return bad(err)
		}
	}
	return y, s.Err()
}

// runTPM2Eventlog runs tpm2_eventlog on a log written to a file, with a
// deadline: a decoder that hangs must fail the test, not stall it.
func runTPM2Eventlog(t *testing.T, tool string, log []byte) (stdout, stderr []byte, err error) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "log.bin")
	if err := os.WriteFile(file, log, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, tool, file)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.Bytes(), errOut.Bytes(), err
}

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
	tool, err := exec.LookPath("tpm2_eventlog")
	if err != nil {
		t.Skip("tpm2_eventlog is not installed (apt-get install tpm2-tools): no independent decoder to compare with")
	}
	compared := 0
	for _, name := range slices.Sorted(maps.Keys(loadCorpus(t))) {
		if !strings.HasPrefix(name, "tpm/") {
			continue
		}
		l, _ := parseCorpusFile(t, name)
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
				out, stderr, err := runTPM2Eventlog(t, tool, l.Raw)
				y, _ := parseTPM2Eventlog(out)
				n := 0
				if y != nil {
					n = len(y.events)
				}
				t.Logf("not compared: tpm2_eventlog 5.4 cannot read this log (%s); our parser must be right on its own, "+
					"as TestCorpus checks (%d events). tpm2_eventlog printed %d events (exit: %v, stderr: %q)",
					strings.Join(cannot, ", "), len(l.Events)+1, n, err, firstLine(stderr))
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
				out, stderr, err := runTPM2Eventlog(t, tool, raw)
				if err != nil {
					t.Fatalf("tpm2_eventlog: %v: %s", err, stderr)
				}
				y, err := parseTPM2Eventlog(out)
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

func firstLine(b []byte) string {
	line, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return line
}

func compareTPM2Events(t *testing.T, l *eventlog.Log, y *tpm2Log) {
	t.Helper()
	if len(y.events) != len(l.Events)+1 {
		t.Fatalf("tpm2_eventlog printed %d events, we parsed %d (with the header)", len(y.events), len(l.Events)+1)
	}
	if h := y.events[0]; h.num != 0 || h.pcr != l.Header.Index || h.typ != l.Header.Type.String() || h.eventSize != len(l.Header.Data) {
		t.Errorf("header: tpm2_eventlog %+v, ours index %d type %v size %d", h, l.Header.Index, l.Header.Type, len(l.Header.Data))
	}
	for i, e := range l.Events {
		ye := y.events[i+1]
		if ye.num != e.Num || ye.pcr != e.Index || ye.typ != e.Type.String() || ye.eventSize != len(e.Data) {
			t.Errorf("event %d: tpm2_eventlog EventNum %d PCR %d %s size %d, ours PCR %d %v size %d",
				e.Num, ye.num, ye.pcr, ye.typ, ye.eventSize, e.Index, e.Type, len(e.Data))
		}
		var ours [][2]string
		for _, d := range e.Digests {
			ours = append(ours, [2]string{d.Alg.String(), hex.EncodeToString(d.Value)})
		}
		if !slices.Equal(ye.digests, ours) {
			t.Errorf("event %d: tpm2_eventlog digests %v, ours %v", e.Num, ye.digests, ours)
		}
		if ye.dataHex != "" && ye.dataHex != hex.EncodeToString(e.Data) {
			t.Errorf("event %d: tpm2_eventlog data %s, ours %x", e.Num, ye.dataHex, e.Data)
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
func compareTPM2PCRs(t *testing.T, l *eventlog.Log, raw []byte, y *tpm2Log) {
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
	if len(y.pcrs) != len(model) {
		t.Errorf("tpm2_eventlog computed %d banks, we %d", len(y.pcrs), len(model))
	}
	for alg, regs := range model {
		theirs := y.pcrs[alg.String()]
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
