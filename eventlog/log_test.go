package eventlog_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"github.com/ccnp-eventlog/ccnp-eventlog/internal/corpus"
)

var sha1sha256 = []eventlog.Alg{eventlog.AlgSHA1, eventlog.AlgSHA256}

// specIDHeader builds a first record holding a Spec ID Event03 whose
// algorithm count field says count while it lists algs, with vendor info
// of vendorSize bytes announced and vendor present: the fields the parser
// must not trust.
func specIDHeader(count uint32, algs []eventlog.AlgSize, vendorSize byte, vendor []byte) []byte {
	d := []byte("Spec ID Event03\x00")
	d = binary.LittleEndian.AppendUint32(d, 0)
	d = append(d, 0, 2, 0, 2)
	d = binary.LittleEndian.AppendUint32(d, count)
	for _, a := range algs {
		d = binary.LittleEndian.AppendUint16(d, uint16(a.Alg))
		d = binary.LittleEndian.AppendUint16(d, a.Size)
	}
	d = append(d, vendorSize)
	d = append(d, vendor...)
	return eventlog.AppendLegacyEvent(nil, 0, eventlog.EvNoAction, make([]byte, 20), d)
}

// seventeenAlgs lists one algorithm more than a TPM can have banks.
func seventeenAlgs() []eventlog.AlgSize {
	var algs []eventlog.AlgSize
	for i := range 17 {
		algs = append(algs, eventlog.AlgSize{Alg: eventlog.Alg(0x100 + i), Size: 32})
	}
	return algs
}

// patch returns a copy of b with v written little-endian at off.
func patch[T uint16 | uint32](b []byte, off int, v T) []byte {
	b = bytes.Clone(b)
	switch v := any(v).(type) {
	case uint16:
		binary.LittleEndian.PutUint16(b[off:], v)
	case uint32:
		binary.LittleEndian.PutUint32(b[off:], v)
	}
	return b
}

// checkFormatError checks that err is a *FormatError for event at offset,
// whose reason and message say what and where.
func checkFormatError(t *testing.T, err error, offset, event int, reason string) {
	t.Helper()
	var fe *eventlog.FormatError
	if !errors.As(err, &fe) {
		t.Fatalf("error %v (%T) is not a *eventlog.FormatError", err, err)
	}
	if fe.Offset != offset || fe.Event != event {
		t.Errorf("error at event %d offset %d, want event %d offset %d: %v", fe.Event, fe.Offset, event, offset, err)
	}
	if !strings.Contains(fe.Reason, reason) {
		t.Errorf("reason %q does not contain %q", fe.Reason, reason)
	}
	if where := fmt.Sprintf("event %d at byte offset %d", event, offset); !strings.Contains(err.Error(), where) {
		t.Errorf("message %q does not say %q", err, where)
	}
}

func TestParseRejects(t *testing.T) {
	agile, starts := agileLog(0, sha1sha256, bootEvents...)
	legacy, lstarts := legacyLog(bootEvents...)
	n := len(bootEvents)
	// Offsets inside an agile record of sha1sha256: count at 8, the first
	// digest's algorithm at 12, the event size after both digests.
	const countAt, firstAlgAt, sizeAt = 8, 12, 12 + 2 + 20 + 2 + 32
	sha := func(a eventlog.Alg) eventlog.AlgSize { return eventlog.AlgSize{Alg: a, Size: uint16(a.Size())} }

	tests := []struct {
		name   string
		input  []byte
		area   bool
		offset int
		event  int
		reason string
	}{
		{"zero-length log", nil, false, 0, 0, "the log is empty"},
		{"zero-length area", []byte{}, true, 0, 0, "the log is empty"},
		{"area of 0xFF only", bytes.Repeat([]byte{0xFF}, 4096), true, 0, 0, "the log is empty"},
		{"area of zeros only", make([]byte, 4096), true, 0, 0, "the log is empty"},
		{"header shorter than a TCG_PCR_EVENT", agile[:31], false, 0, 0, "31 bytes left"},
		{"huge header data size", patch(agile, 28, uint32(0xFFFFFFF0)), false, 0, 0, "event data size 4294967280 exceeds"},
		{"huge event size", patch(agile, starts[2]+sizeAt, uint32(0xFFFFFFFF)), false, starts[2], 2, "event size 4294967295 exceeds"},
		{"event size one past the end", patch(agile, starts[n]+sizeAt, uint32(len(agile)-starts[n]-sizeAt-4+1)), false, starts[n], n, "exceeds the"},
		{"huge digest count", patch(agile, starts[3]+countAt, uint32(0xFFFFFFFF)), false, starts[3], 3, "digest count 4294967295 cannot fit"},
		{"huge digest count in an area", patch(agile, starts[1]+countAt, uint32(0x7FFFFFFF)), true, starts[1], 1, "digest count 2147483647 cannot fit"},
		{"unknown algorithm", patch(agile, starts[2]+firstAlgAt, uint16(0x0027)), false, starts[2], 2, "algorithm 0x0027, which the Spec ID event does not list"},
		{"algorithm of another event's size", patch(agile, starts[4]+firstAlgAt, uint16(eventlog.AlgSHA384)), true, starts[4], 4, "algorithm 0x000c"},
		{"trailing bytes too short for a record", append(bytes.Clone(agile), 1, 2, 3, 4, 5), false, len(agile), n + 1, "5 bytes left"},
		{"0xFF padding read to EOF", append(bytes.Clone(agile), bytes.Repeat([]byte{0xFF}, 64)...), false, len(agile), n + 1, "digest count 4294967295"},
		{"Spec ID listing no algorithm", specIDHeader(0, nil, 0, nil), false, 0, 0, "lists no digest algorithm"},
		{"Spec ID listing more algorithms than it holds", specIDHeader(1000, []eventlog.AlgSize{sha(eventlog.AlgSHA256)}, 0, nil), false, 0, 0, "lists 1000 algorithms but has room for 1"},
		{"Spec ID listing 2^32-1 algorithms", specIDHeader(0xFFFFFFFF, []eventlog.AlgSize{sha(eventlog.AlgSHA256)}, 0, nil), false, 0, 0, "lists 4294967295 algorithms"},
		{"Spec ID listing 17 algorithms", specIDHeader(17, seventeenAlgs(), 0, nil), false, 0, 0, "lists 17 algorithms, more than the 16 PCR banks"},
		{"Spec ID with a wrong digest size", specIDHeader(1, []eventlog.AlgSize{{Alg: eventlog.AlgSHA256, Size: 31}}, 0, nil), false, 0, 0, "gives sha256 a digest size of 31"},
		{"Spec ID with a zero digest size", specIDHeader(1, []eventlog.AlgSize{{Alg: 0x0027, Size: 0}}, 0, nil), false, 0, 0, "gives alg_0x0027 a digest size of 0"},
		{"Spec ID without vendor info size", specIDHeader(1, []eventlog.AlgSize{sha(eventlog.AlgSHA256)}, 0, nil)[:32+32], false, 0, 0, "data size"},
		{"Spec ID vendor info past its end", specIDHeader(1, []eventlog.AlgSize{sha(eventlog.AlgSHA256)}, 5, []byte{1, 2}), false, 0, 0, "vendor info size 5 exceeds the 2 bytes left"},
		{"legacy huge data size", patch(legacy, lstarts[2]+28, uint32(0x80000000)), false, lstarts[2], 2, "event data size 2147483648 exceeds"},
		{"legacy trailing bytes", append(bytes.Clone(legacy), make([]byte, 31)...), false, len(legacy), n, "31 bytes left"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			parse := eventlog.Parse
			if tc.area {
				parse = eventlog.ParseArea
			}
			l, err := parse(tc.input)
			if err == nil {
				t.Fatalf("parsed %d events from a bad log", len(l.Events))
			}
			if l != nil {
				t.Errorf("a failed parse returned a log")
			}
			checkFormatError(t, err, tc.offset, tc.event, tc.reason)
		})
	}
}

// TestParseTruncated cuts a small valid log at every byte: a cut at a record
// boundary is a shorter valid log, any other cut is an error naming the
// record it falls in.
func TestParseTruncated(t *testing.T) {
	agile, astarts := agileLog(0, sha1sha256, bootEvents...)
	tdx, tstarts := agileLog(1, []eventlog.Alg{eventlog.AlgSHA384}, testEvent{1, eventlog.EvEFIPlatformFirmwareBlob2, make([]byte, 16)}, testEvent{2, eventlog.EvEventTag, []byte("tag")})
	legacy, lstarts := legacyLog(bootEvents...)
	for _, lg := range []struct {
		name   string
		log    []byte
		starts []int
		agile  bool
	}{
		{"agile", agile, astarts, true},
		{"tdx", tdx, tstarts, true},
		{"legacy", legacy, lstarts, false},
	} {
		for _, parser := range []struct {
			name  string
			parse func([]byte) (*eventlog.Log, error)
			area  bool
		}{{"Parse", eventlog.Parse, false}, {"ParseArea", eventlog.ParseArea, true}} {
			t.Run(lg.name+"/"+parser.name, func(t *testing.T) {
				for cut := 0; cut <= len(lg.log); cut++ {
					// k is the record the cut falls in (or right after).
					k := 0
					for k+1 < len(lg.starts) && lg.starts[k+1] <= cut {
						k++
					}
					prefix := lg.log[:cut:cut]
					l, err := parser.parse(prefix)
					rest := prefix[lg.starts[k]:]
					// A log area also ends where the bytes left are all 0x00
					// or all 0xFF: this cut looks like padding to ParseArea.
					looksPadded := parser.area && len(rest) > 0 && (bytes.Count(rest, []byte{0}) == len(rest) || bytes.Count(rest, []byte{0xFF}) == len(rest))
					switch {
					case cut == 0:
						checkFormatError(t, err, 0, 0, "the log is empty")
					case (cut == lg.starts[k] || looksPadded) && k > 0:
						if err != nil {
							t.Fatalf("cut at %d (end of event %d): %v", cut, k-1, err)
						}
						if len(l.Events) != k-1 || len(l.Raw) != lg.starts[k] {
							t.Errorf("cut at %d: %d events ending at %d, want %d ending at %d", cut, len(l.Events), len(l.Raw), k-1, lg.starts[k])
						}
					default:
						if err == nil {
							t.Fatalf("cut at %d inside event %d (bytes %d..%d) parsed", cut, k, lg.starts[k], lg.starts[k+1])
						}
						checkFormatError(t, err, lg.starts[k], k, "")
					}
				}
			})
		}
	}
}

func TestParseAreaPadding(t *testing.T) {
	log, starts := agileLog(1, []eventlog.Alg{eventlog.AlgSHA384}, bootEvents...)
	for _, tc := range []struct {
		name string
		pad  []byte
	}{
		{"no padding", nil},
		{"0xFF padding", bytes.Repeat([]byte{0xFF}, 64<<10)},
		{"zero padding", make([]byte, 4096)},
		{"3 bytes of 0xFF", []byte{0xFF, 0xFF, 0xFF}},
		{"8 bytes of 0xFF then garbage", append(bytes.Repeat([]byte{0xFF}, 8), "not a record"...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			area := append(bytes.Clone(log), tc.pad...)
			l, err := eventlog.ParseArea(area)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(l.Raw, log) {
				t.Errorf("log ends at %d, want %d", len(l.Raw), len(log))
			}
			if len(l.Events) != len(bootEvents) {
				t.Errorf("%d events, want %d", len(l.Events), len(bootEvents))
			}
			if tc.pad == nil {
				return
			}
			// Parse reads to EOF and does not stop at padding: 0xFF runs
			// are a bad record, zeros are (odd but valid) empty events.
			pl, err := eventlog.Parse(area)
			switch tc.pad[0] {
			case 0xFF:
				checkFormatError(t, err, len(log), len(bootEvents)+1, "")
			case 0x00:
				if err != nil {
					t.Fatal(err)
				}
				// An empty TCG_PCR_EVENT2 is 16 zero bytes: index 0,
				// EV_PREBOOT_CERT, no digests, no data.
				if want := len(bootEvents) + len(tc.pad)/16; len(pl.Events) != want {
					t.Errorf("Parse read %d events from a zero-padded area, want %d", len(pl.Events), want)
				}
				if e := pl.Events[len(pl.Events)-1]; e.Type != eventlog.EvPrebootCert || e.Offset != len(area)-16 {
					t.Errorf("last event %+v is not the last 16 zero bytes", e)
				}
			}
		})
	}
	// A record that starts with fewer than 8 bytes of 0xFF is a record.
	ffIndex := eventlog.AppendEvent2(bytes.Clone(log), 0xFFFFFFFF, eventlog.EvNoAction, eventlog.Measure(nil, []eventlog.Alg{eventlog.AlgSHA384}), nil)
	l, err := eventlog.ParseArea(append(ffIndex, bytes.Repeat([]byte{0xFF}, 100)...))
	if err != nil {
		t.Fatal(err)
	}
	if got := l.Events[len(l.Events)-1]; len(l.Events) != len(starts)-1 || got.Index != 0xFFFFFFFF {
		t.Errorf("ParseArea stopped at an event at index 0xFFFFFFFF: %d events", len(l.Events))
	}
}

// TestParseIndexFFFFFFFF: Windows boot logs hold EV_NO_ACTION events at
// index 0xFFFFFFFF; they are events, not an end marker.
func TestParseIndexFFFFFFFF(t *testing.T) {
	evs := []testEvent{
		bootEvents[0],
		{0xFFFFFFFF, eventlog.EvNoAction, []byte("SP800-155 Event3 and more")},
		{0xFFFFFFFF, eventlog.EvEFIAction, []byte("Calling EFI Application")},
		bootEvents[2],
	}
	agile, _ := agileLog(0, sha1sha256, evs...)
	legacy, _ := legacyLog(append([]testEvent{{0, eventlog.EvSCRTMVersion, []byte("v")}}, evs...)...)
	for name, input := range map[string][]byte{"agile": agile, "legacy": legacy} {
		for pname, parse := range map[string]func([]byte) (*eventlog.Log, error){"Parse": eventlog.Parse, "ParseArea": eventlog.ParseArea} {
			t.Run(name+"/"+pname, func(t *testing.T) {
				l, err := parse(input)
				if err != nil {
					t.Fatal(err)
				}
				if len(l.Raw) != len(input) {
					t.Errorf("log ends at %d of %d", len(l.Raw), len(input))
				}
				var idx []uint32
				for _, e := range l.Events {
					idx = append(idx, e.Index)
				}
				want := []uint32{0, 0xFFFFFFFF, 0xFFFFFFFF, 4}
				if fmt.Sprint(idx) != fmt.Sprint(want) {
					t.Errorf("event indexes %v, want %v", idx, want)
				}
			})
		}
	}
}

func TestReplayStartupLocality(t *testing.T) {
	measured := []byte("S-CRTM version")
	for _, tc := range []struct {
		name      string
		index     uint32
		data      []byte
		wantStart byte
	}{
		{"no StartupLocality", 0, []byte("SP800-155 Event3"), 0},
		{"locality 0", 0, eventlog.StartupLocalityData(0), 0},
		{"locality 3", 0, eventlog.StartupLocalityData(3), 3},
		{"locality 4", 0, eventlog.StartupLocalityData(4), 4},
		// Only PCR0's start value depends on the locality.
		{"StartupLocality at PCR 1", 1, eventlog.StartupLocalityData(3), 0},
		// The signature alone, with no locality byte, says nothing.
		{"StartupLocality without its byte", 0, []byte("StartupLocality\x00"), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log, _ := agileLog(0, []eventlog.Alg{eventlog.AlgSHA256},
				testEvent{tc.index, eventlog.EvNoAction, tc.data},
				testEvent{0, eventlog.EvSCRTMVersion, measured},
				testEvent{1, eventlog.EvSCRTMVersion, measured})
			l, err := eventlog.Parse(log)
			if err != nil {
				t.Fatal(err)
			}
			bank, err := eventlog.Replay(l)
			if err != nil {
				t.Fatal(err)
			}
			digest := sha256.Sum256(measured)
			extend := func(start byte) []byte {
				old := make([]byte, sha256.Size)
				old[len(old)-1] = start
				v := sha256.Sum256(append(old, digest[:]...))
				return v[:]
			}
			if got, want := bank.Get(eventlog.AlgSHA256, 0), extend(tc.wantStart); !bytes.Equal(got, want) {
				t.Errorf("PCR0 = %x, want %x (start %d)", got, want, tc.wantStart)
			}
			if got, want := bank.Get(eventlog.AlgSHA256, 1), extend(0); !bytes.Equal(got, want) {
				t.Errorf("PCR1 = %x, want %x: only PCR0 starts at the locality", got, want)
			}
			if idx := bank.Indexes(); len(idx) != 2 {
				t.Errorf("registers %v: EV_NO_ACTION must not be replayed", idx)
			}
		})
	}
}

// TestSpecIDBySignature: the Spec ID event is recognised by its signature,
// and other EV_NO_ACTION payloads are ordinary events wherever they are.
func TestSpecIDBySignature(t *testing.T) {
	// A legacy log that opens with an EV_NO_ACTION that is not a Spec ID.
	legacy, _ := legacyLog(testEvent{0, eventlog.EvNoAction, []byte("SP800-155 Event3")}, bootEvents[0])
	l, err := eventlog.Parse(legacy)
	if err != nil {
		t.Fatal(err)
	}
	if l.Agile() || len(l.Header.Digests) != 1 || len(l.Events) != 1 {
		t.Errorf("legacy log read as agile=%v with %d header digests and %d events", l.Agile(), len(l.Header.Digests), len(l.Events))
	}

	// A crypto-agile log with a second Spec ID and other EV_NO_ACTION events.
	second := eventlog.AppendSpecIDHeader(nil, 0, []eventlog.Alg{eventlog.AlgSHA384})
	agile, _ := agileLog(0, sha1sha256,
		testEvent{0, eventlog.EvNoAction, []byte("H-CRTM CompMeas\x00")},
		testEvent{0, eventlog.EvNoAction, second[32:]},
		bootEvents[0])
	l, err = eventlog.Parse(agile)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Events) != 3 || len(l.SpecID.Algs) != 2 || l.Header.Digests != nil {
		t.Fatalf("%d events, %d algorithms, header digests %v", len(l.Events), len(l.SpecID.Algs), l.Header.Digests)
	}
	bank, err := eventlog.Replay(l)
	if err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256(append(make([]byte, 32), l.Events[2].Digest(eventlog.AlgSHA256)...))
	if got := bank.Get(eventlog.AlgSHA256, 0); !bytes.Equal(got, want[:]) {
		t.Errorf("PCR0 = %x, want one extend of the only measured event, %x", got, want)
	}
}

// TestParseAliasesInput checks the parser does not copy event data: the
// events' byte fields point into the input.
func TestParseAliasesInput(t *testing.T) {
	l, input := corpus.Parse(t, "tpm/tpm_rhel8-uefi.bin")
	for _, e := range l.Events {
		if &e.Raw[0] != &input[e.Offset] {
			t.Fatalf("event %d: Raw is a copy", e.Num)
		}
		if len(e.Data) > 0 && &e.Data[len(e.Data)-1] != &e.Raw[len(e.Raw)-1] {
			t.Fatalf("event %d: Data is not the end of Raw", e.Num)
		}
		for _, d := range e.Digests {
			if !bytes.Contains(e.Raw, d.Value) {
				t.Fatalf("event %d: digest not in the record", e.Num)
			}
		}
	}
}
