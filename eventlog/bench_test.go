package eventlog_test

import (
	"bytes"
	"io"
	"maps"
	"path"
	"slices"
	"testing"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"github.com/ccnp-eventlog/ccnp-eventlog/internal/corpus"
)

// syntheticArea builds a CCEL-like log area of exactly size bytes: a TDVF
// Spec ID header at CC MR index 1, then events shaped like a TDVF boot's
// (firmware blobs, Secure Boot variables, separators, boot applications,
// a kernel command line) with SHA-384 digests, and 0xFF padding after the
// last event that fits.
func syntheticArea(size int) []byte {
	algs := []eventlog.Alg{eventlog.AlgSHA384}
	b := eventlog.AppendSpecIDHeader(make([]byte, 0, size), 1, algs)
	// Event data sizes and types in the proportions of a real TDVF log:
	// mostly small records, some large certificate databases.
	shapes := []struct {
		index uint32
		typ   eventlog.EventType
		size  int
	}{
		{1, eventlog.EvEFIPlatformFirmwareBlob2, 24},
		{1, eventlog.EvEFIVariableDriverConfig, 53},
		{1, eventlog.EvEFIVariableDriverConfig, 1600},
		{1, eventlog.EvEFIVariableDriverConfig, 3700},
		{1, eventlog.EvSeparator, 4},
		{2, eventlog.EvEFIBootServicesApp, 118},
		{2, eventlog.EvEFIVariableBoot, 62},
		{3, eventlog.EvEventTag, 290},
		{3, eventlog.EvIPL, 180},
	}
	var rec []byte
	for i := 0; ; i++ {
		s := shapes[i%len(shapes)]
		data := bytes.Repeat([]byte{byte(i)}, s.size)
		rec = eventlog.AppendEvent2(rec[:0], s.index, s.typ, eventlog.Measure(data, algs), data)
		if len(b)+len(rec)+8 > size {
			break
		}
		b = append(b, rec...)
	}
	return append(b, bytes.Repeat([]byte{0xFF}, size-len(b))...)
}

// benchLogs returns the logs the benchmarks run on: every corpus log and a
// synthetic 1 MiB CCEL log area.
func benchLogs(b *testing.B) []struct {
	name  string
	input []byte
	area  bool
} {
	type benchLog = struct {
		name  string
		input []byte
		area  bool
	}
	var logs []benchLog
	for _, name := range slices.Sorted(maps.Keys(corpus.Expected(b))) {
		_, input := corpus.Parse(b, name)
		logs = append(logs, benchLog{path.Base(name), input, corpus.IsArea(name)})
	}
	return append(logs, benchLog{"synthetic-1MiB-ccel", syntheticArea(1 << 20), true})
}

func parseFor(area bool) func([]byte) (*eventlog.Log, error) {
	if area {
		return eventlog.ParseArea
	}
	return eventlog.Parse
}

// BenchmarkParse reports throughput over the bytes of the log itself: the
// parser reads 8 bytes of a log area's padding, not the rest of it.
func BenchmarkParse(b *testing.B) {
	for _, lg := range benchLogs(b) {
		parse := parseFor(lg.area)
		l, err := parse(lg.input)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(lg.name, func(b *testing.B) {
			b.SetBytes(int64(len(l.Raw)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := parse(lg.input); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(l.Events)+1), "events/op")
		})
	}
}

func BenchmarkAppendCCNPJSON(b *testing.B) {
	for _, lg := range benchLogs(b) {
		l, err := parseFor(lg.area)(lg.input)
		if err != nil {
			b.Fatal(err)
		}
		kind := eventlog.DetectKind(l, lg.input)
		b.Run(lg.name, func(b *testing.B) {
			b.SetBytes(int64(len(l.Raw)))
			b.ReportAllocs()
			var out []byte
			for b.Loop() {
				out = eventlog.AppendCCNPJSON(out[:0], l, l.Events, eventlog.JSONOptions{Kind: kind})
			}
			b.ReportMetric(float64(len(out)), "json-bytes")
		})
	}
}

// BenchmarkWriteCCNPJSON: the streaming encoder, to a writer that discards,
// and the size pass that comes before it.
func BenchmarkWriteCCNPJSON(b *testing.B) {
	for _, lg := range benchLogs(b) {
		l, err := parseFor(lg.area)(lg.input)
		if err != nil {
			b.Fatal(err)
		}
		o := eventlog.JSONOptions{Kind: eventlog.DetectKind(l, lg.input)}
		b.Run(lg.name, func(b *testing.B) {
			b.SetBytes(int64(len(l.Raw)))
			b.ReportAllocs()
			for b.Loop() {
				if err := eventlog.WriteCCNPJSON(io.Discard, l, l.Events, o); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(lg.name+"/size", func(b *testing.B) {
			b.SetBytes(int64(len(l.Raw)))
			b.ReportAllocs()
			for b.Loop() {
				eventlog.CCNPJSONSize(l, l.Events, o)
			}
		})
	}
}

func BenchmarkAppendRaw(b *testing.B) {
	for _, lg := range benchLogs(b) {
		l, err := parseFor(lg.area)(lg.input)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(lg.name, func(b *testing.B) {
			b.SetBytes(int64(len(l.Raw)))
			b.ReportAllocs()
			var out []byte
			for b.Loop() {
				out = eventlog.AppendRaw(out[:0], l, l.Events)
			}
		})
	}
}

func BenchmarkReplay(b *testing.B) {
	for _, lg := range benchLogs(b) {
		l, err := parseFor(lg.area)(lg.input)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(lg.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := eventlog.Replay(l); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(l.Events)), "events/op")
		})
	}
}

func TestSyntheticArea(t *testing.T) {
	const size = 1 << 20
	area := syntheticArea(size)
	if len(area) != size {
		t.Fatalf("synthetic area is %d bytes, want %d", len(area), size)
	}
	l, err := eventlog.ParseArea(area)
	if err != nil {
		t.Fatal(err)
	}
	if pad := size - len(l.Raw); pad < 8 || pad > 8+4000 {
		t.Errorf("log fills %d of %d bytes: padding of %d bytes is not one partial record", len(l.Raw), size, pad)
	}
	if len(l.Events) < 1000 {
		t.Errorf("only %d events in 1 MiB", len(l.Events))
	}
	if k := eventlog.DetectKind(l, area); k != eventlog.TDX {
		t.Errorf("DetectKind = %v, want TDX", k)
	}
	if _, err := eventlog.Replay(l); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d events, %d bytes of log", len(l.Events)+1, len(l.Raw))
}
