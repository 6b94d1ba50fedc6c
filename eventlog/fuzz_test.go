package eventlog_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog/ccel"
	"github.com/ccnp-eventlog/ccnp-eventlog/internal/corpus"
)

// addSeeds adds every corpus file and a few small built logs, which the
// fuzzer mutates faster than the large real ones.
func addSeeds(f *testing.F) {
	err := filepath.WalkDir(corpus.Dir(f), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".bin") {
			return err
		}
		b, err := os.ReadFile(path)
		f.Add(b)
		return err
	})
	if err != nil {
		f.Fatal(err)
	}
	agile, _ := agileLog(0, sha1sha256, bootEvents...)
	tdvf, _ := agileLog(1, []eventlog.Alg{eventlog.AlgSHA384}, bootEvents...)
	legacy, _ := legacyLog(bootEvents...)
	f.Add(agile)
	f.Add(append(tdvf, bytes.Repeat([]byte{0xFF}, 64)...))
	f.Add(legacy)
}

func FuzzParse(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := eventlog.Parse(b)
		checkParse(t, b, l, err, false)
	})
}

func FuzzParseArea(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := eventlog.ParseArea(b)
		checkParse(t, b, l, err, true)
	})
}

// checkParse checks what a parse of b returned: a located error, or a log
// that covers b's start, writes back to the same bytes and parses again to
// the same events; and everything done with a log works on it.
func checkParse(t *testing.T, b []byte, l *eventlog.Log, err error, area bool) {
	if err != nil {
		var fe *eventlog.FormatError
		if !errors.As(err, &fe) {
			t.Fatalf("error %v (%T) is not a *FormatError", err, err)
		}
		if l != nil || fe.Offset < 0 || fe.Offset > len(b) || fe.Event < 0 || !strings.Contains(err.Error(), "byte offset") {
			t.Fatalf("bad error %#v (log %v) for %d bytes", fe, l != nil, len(b))
		}
		return
	}
	if len(l.Raw) == 0 || &l.Raw[0] != &b[0] || len(l.Raw) > len(b) || (!area && len(l.Raw) != len(b)) {
		t.Fatalf("log covers %d of %d bytes", len(l.Raw), len(b))
	}
	off := len(l.Header.Raw)
	for i, e := range l.Events {
		if e.Num != i+1 || e.Offset != off || !bytes.HasSuffix(e.Raw, e.Data) {
			t.Fatalf("event %d: Num %d at %d, want at %d", i+1, e.Num, e.Offset, off)
		}
		off += len(e.Raw)
	}
	if off != len(l.Raw) {
		t.Fatalf("events end at %d, the log at %d", off, len(l.Raw))
	}
	if raw := eventlog.AppendRaw(nil, l, l.Events); !bytes.Equal(raw, l.Raw) {
		t.Fatalf("AppendRaw wrote %d bytes, the log has %d", len(raw), len(l.Raw))
	}
	// Parse reads any log's own bytes back the same. ParseArea does too
	// for what it parsed, but not for all Parse reads: it stops at a
	// record that starts with 8 zero bytes.
	reparsers := []func([]byte) (*eventlog.Log, error){eventlog.Parse}
	if area {
		reparsers = append(reparsers, eventlog.ParseArea)
	}
	for _, reparse := range reparsers {
		back, err := reparse(l.Raw)
		if err != nil {
			t.Fatalf("the log's own bytes do not parse: %v", err)
		}
		if !bytes.Equal(back.Header.Raw, l.Header.Raw) || (back.SpecID == nil) != (l.SpecID == nil) {
			t.Fatalf("header differs after a re-parse")
		}
		sameEvents(t, back.Events, l.Events)
	}
	if sel, err := l.Slice(0, 0); err != nil || len(sel) != len(l.Events) {
		t.Fatalf("Slice(0, 0) = %d events, %v", len(sel), err)
	}
	kind := eventlog.DetectKind(l, b)
	out := eventlog.AppendCCNPJSON(nil, l, l.Events, eventlog.JSONOptions{Kind: kind})
	if !json.Valid(out) {
		t.Fatalf("AppendCCNPJSON wrote invalid JSON: %.300q", out)
	}
	if n := eventlog.CCNPJSONSize(l, l.Events, eventlog.JSONOptions{Kind: kind}); n != int64(len(out)) {
		t.Fatalf("CCNPJSONSize = %d, AppendCCNPJSON wrote %d bytes", n, len(out))
	}
	// Replay fails only for an algorithm Go cannot hash.
	if _, err := eventlog.Replay(l); err != nil && !strings.Contains(err.Error(), "not supported") {
		t.Fatalf("Replay: %v", err)
	}
}

func FuzzCCELTable(f *testing.F) {
	addSeeds(f)
	f.Add((&ccel.Table{CCType: ccel.TypeTDX, LAML: 1 << 16}).Marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		tab, err := ccel.Parse(b)
		if err != nil {
			var ce *ccel.Error
			if !errors.As(err, &ce) || ce.Offset < 0 || ce.Offset > len(b) || tab != nil {
				t.Fatalf("bad error %v (%T)", err, err)
			}
			return
		}
		if len(b) < ccel.TableSize || string(b[:4]) != "CCEL" {
			t.Fatalf("accepted %d bytes starting %q", len(b), b[:min(4, len(b))])
		}
		m := tab.Marshal()
		back, err := ccel.Parse(m)
		if err != nil {
			t.Fatalf("Marshal wrote a table Parse rejects: %v", err)
		}
		if *back != *tab {
			t.Fatalf("round trip: %+v, want %+v", *back, *tab)
		}
		// The CC type, subtype, LAML and LASA are the input's bytes, as
		// they were (bytes 38-39 are reserved: Marshal writes zeros).
		if !bytes.Equal(m[36:38], b[36:38]) || !bytes.Equal(m[40:56], b[40:56]) {
			t.Fatalf("Marshal changed the CC fields: % x, input % x", m[36:56], b[36:56])
		}
		_ = tab.CCTypeName()
	})
}

// adversarialLogs are inputs built to make a parser allocate as much as
// possible per input byte, or to claim sizes it must not believe.
func adversarialLogs() []struct {
	name  string
	input []byte
	area  bool
} {
	const size = 1 << 20
	type adversarial = struct {
		name  string
		input []byte
		area  bool
	}
	var out []adversarial

	// The smallest agile record: no digests, no data, 16 bytes.
	b := eventlog.AppendSpecIDHeader(nil, 0, []eventlog.Alg{eventlog.AlgSHA256})
	for len(b)+16 <= size {
		b = eventlog.AppendEvent2(b, 1, eventlog.EvAction, nil, nil)
	}
	out = append(out, adversarial{"16-byte events", b, false})

	// The smallest digests: an algorithm with 1-byte digests, 3 bytes each.
	tiny := []eventlog.AlgSize{{Alg: 0x7777, Size: 1}}
	digests := make([]eventlog.Digest, 1000)
	for i := range digests {
		digests[i] = eventlog.Digest{Alg: 0x7777, Value: []byte{byte(i)}}
	}
	b = specIDHeader(1, tiny, 0, nil)
	for rec := eventlog.AppendEvent2(nil, 1, eventlog.EvAction, digests, nil); len(b)+len(rec) <= size; {
		b = append(b, rec...)
	}
	out = append(out, adversarial{"3-byte digests", b, false})

	// Sixteen algorithms (the most allowed) of 1-byte digests.
	var sixteen []eventlog.AlgSize
	digests = digests[:0]
	for i := range 16 {
		sixteen = append(sixteen, eventlog.AlgSize{Alg: eventlog.Alg(0x7000 + i), Size: 1})
		digests = append(digests, eventlog.Digest{Alg: eventlog.Alg(0x7000 + i), Value: []byte{1}})
	}
	b = specIDHeader(16, sixteen, 0, nil)
	for rec := eventlog.AppendEvent2(nil, 1, eventlog.EvAction, digests, nil); len(b)+len(rec) <= size; {
		b = append(b, rec...)
	}
	out = append(out, adversarial{"16 algorithms", b, true})

	// The smallest legacy record: 32 bytes.
	b = nil
	for len(b)+32 <= size {
		b = eventlog.AppendLegacyEvent(b, 0, eventlog.EvAction, make([]byte, 20), nil)
	}
	out = append(out, adversarial{"32-byte legacy events", b, false})

	// Sizes and counts a parser must check before it allocates.
	hdr := eventlog.AppendSpecIDHeader(nil, 0, sha1sha256)
	pad := bytes.Repeat([]byte{0x5A}, size)
	withU32 := func(at int, v uint32) []byte {
		b := append(bytes.Clone(hdr), pad...)
		binary.LittleEndian.PutUint32(b[len(hdr)+at:], v)
		return b
	}
	out = append(out,
		adversarial{"digest count 2^32-1", withU32(8, 0xFFFFFFFF), false},
		adversarial{"digest count fits the input", withU32(8, size/2-8), false},
		adversarial{"header data size 2^32-1", patch(append(bytes.Clone(hdr), pad...), 28, uint32(0xFFFFFFFF)), false},
		adversarial{"area of 0xFF", bytes.Repeat([]byte{0xFF}, size), true},
		adversarial{"area of zeros read to EOF", append(bytes.Clone(hdr), make([]byte, size)...), false},
	)
	return out
}

// TestParseAllocationBounded: whatever the input, a parse allocates at most
// a small multiple of the input's size, in a fixed number of allocations.
func TestParseAllocationBounded(t *testing.T) {
	// An Event is 96 bytes for at least 16 of input, a Digest 32 for at
	// least 3: no input can need more than 32/3 of its size, plus the Log.
	const maxRatio = 11
	for _, adv := range adversarialLogs() {
		t.Run(adv.name, func(t *testing.T) {
			parse := parseFor(adv.area)
			l, err := parse(adv.input)
			events := 0
			if err == nil {
				events = len(l.Events)
			}
			allocs := testing.AllocsPerRun(5, func() { _, _ = parse(adv.input) })
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			const runs = 5
			for range runs {
				_, _ = parse(adv.input)
			}
			runtime.ReadMemStats(&after)
			perRun := float64(after.TotalAlloc-before.TotalAlloc) / runs
			ratio := perRun / float64(len(adv.input))
			t.Logf("%d bytes in, %d events, error %v: %.0f bytes allocated (%.2f× the input) in %.0f allocations",
				len(adv.input), events, err != nil, perRun, ratio, allocs)
			if ratio > maxRatio {
				t.Errorf("allocated %.1f× the input, more than %d×", ratio, maxRatio)
			}
			// A parse makes about 6, an error about 8 (its message): far
			// from the events' count, which is what this guards against.
			if allocs > 16 {
				t.Errorf("%.0f allocations: the count must not grow with the input", allocs)
			}
			if err != nil && perRun > 4096 {
				t.Errorf("a rejected input cost %.0f bytes", perRun)
			}
		})
	}
}
