package ima_test

import (
	"encoding/binary"
	"io"
	"runtime"
	"testing"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog/ima"
)

// The benchmarks run on synthetic ima-ng lists shaped like a real one: about
// 136 bytes an entry (a sha256 file digest and a 45-byte path), a violation
// every tenth entry.

func benchList(b *testing.B, n int) []byte {
	b.Helper()
	return ngList(b, binary.LittleEndian, n)
}

// BenchmarkParse100k parses a 100,000-entry list in one call, as a source
// does with what it reads at start.
func BenchmarkParse100k(b *testing.B) {
	list := benchList(b, 100_000)
	b.SetBytes(int64(len(list)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ima.Parse(list, ima.Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppend1000 picks up 1,000 entries appended to a list whose
// 100,000 first entries the parser already has (target: under 10 ms). The
// appended bytes come in 4 KiB reads, as from securityfs, each read a new
// buffer (so entries torn across reads are copied).
func BenchmarkAppend1000(b *testing.B) {
	list := benchList(b, 101_000)
	first, err := ima.Parse(list, ima.Options{})
	if err != nil {
		b.Fatal(err)
	}
	cut := entries(first)[100_000].Offset
	appended := list[cut:]
	reads := make([][]byte, 0, len(appended)/4096+1)
	for off := 0; off < len(appended); off += 4096 {
		reads = append(reads, appended[off:min(off+4096, len(appended))])
	}
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		p, _ := ima.NewParser(ima.Options{})
		if _, err := p.Append(list[:cut]); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		n := 0
		for _, r := range reads {
			k, err := p.Append(r)
			if err != nil {
				b.Fatal(err)
			}
			n += k
		}
		if n != 1000 {
			b.Fatalf("picked up %d entries", n)
		}
	}
}

// BenchmarkMemoryPerEntry reports what a parsed entry keeps in memory
// beyond the list's own bytes (the Entry, and its share of the slice
// holding it), as the heap measures it after a GC.
func BenchmarkMemoryPerEntry(b *testing.B) {
	const n = 100_000
	list := benchList(b, n)
	var keep *ima.List
	var before, after runtime.MemStats
	for b.Loop() {
		keep = nil
		runtime.GC()
		runtime.ReadMemStats(&before)
		p, _ := ima.NewParser(ima.Options{})
		// In 64 KiB reads, as a source reads a list it does not know the
		// size of.
		for off := 0; off < len(list); off += 64 << 10 {
			if _, err := p.Append(list[off:min(off+64<<10, len(list))]); err != nil {
				b.Fatal(err)
			}
		}
		keep = p.List()
		runtime.GC()
		runtime.ReadMemStats(&after)
	}
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "heap-B/entry")
	b.ReportMetric(float64(len(list))/n, "list-B/entry")
	runtime.KeepAlive(keep)
}

// BenchmarkSlice100JSON and BenchmarkSlice100Raw encode a 100-entry slice
// of a 100,000-entry list: the work of one paged request.
func BenchmarkSlice100JSON(b *testing.B) {
	l, err := ima.Parse(benchList(b, 100_000), ima.Options{})
	if err != nil {
		b.Fatal(err)
	}
	var out []byte
	b.ReportAllocs()
	for b.Loop() {
		s, _ := l.Slice(50_000, 100)
		out = ima.AppendCCNPJSON(out[:0], l, s)
	}
}

func BenchmarkSlice100Raw(b *testing.B) {
	l, err := ima.Parse(benchList(b, 100_000), ima.Options{})
	if err != nil {
		b.Fatal(err)
	}
	var out []byte
	b.ReportAllocs()
	for b.Loop() {
		s, _ := l.Slice(50_000, 100)
		out = ima.AppendRaw(out[:0], s)
	}
}

// BenchmarkWriteJSON100k streams the whole 100,000-entry list's JSON: the
// encoder's memory (B/op) stays a fixed buffer.
func BenchmarkWriteJSON100k(b *testing.B) {
	list := benchList(b, 100_000)
	l, err := ima.Parse(list, ima.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(list)))
	b.ReportAllocs()
	for b.Loop() {
		if err := ima.WriteCCNPJSON(io.Discard, l, all(l)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkWriteRaw100k(b *testing.B) {
	list := benchList(b, 100_000)
	l, err := ima.Parse(list, ima.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(list)))
	b.ReportAllocs()
	for b.Loop() {
		if err := ima.WriteRaw(io.Discard, all(l)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReplay100k replays the SHA-1 and SHA-256 banks of PCR 10.
func BenchmarkReplay100k(b *testing.B) {
	l, err := ima.Parse(benchList(b, 100_000), ima.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ima.Replay(l); err != nil {
			b.Fatal(err)
		}
	}
}
