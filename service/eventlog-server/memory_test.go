package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog/ccel"
	"github.com/ccnp-eventlog/ccnp-eventlog/hwsource"
	eventlogpb "github.com/ccnp-eventlog/ccnp-eventlog/proto"
	"github.com/ccnp-eventlog/ccnp-eventlog/service"
)

// The largest logs the host backends accept (hwsource's maxAreaSize and
// maxTPMLog): the peak-RSS benchmark fills them with the smallest events
// there are, the most events, and so the most memory, per byte of log.
const (
	largestArea   = 8 << 20
	largestTPMLog = 8 << 20
)

// largestTDXArea is a CCEL log area of largestArea bytes: a Spec ID header,
// then events with one SHA-384 digest and no data (66 bytes each), then
// 0xFF padding.
func largestTDXArea() []byte {
	algs := []eventlog.Alg{eventlog.AlgSHA384}
	b := eventlog.AppendSpecIDHeader(make([]byte, 0, largestArea), 1, algs)
	digest := []eventlog.Digest{{Alg: eventlog.AlgSHA384, Value: bytes.Repeat([]byte{0xA5}, 48)}}
	for i := 0; len(b)+66+8 <= largestArea; i++ {
		b = eventlog.AppendEvent2(b, uint32(1+i%4), eventlog.EvEventTag, digest, nil)
	}
	return append(b, bytes.Repeat([]byte{0xFF}, largestArea-len(b))...)
}

// largestTPMLog is a legacy SHA1-only TPM log of largestTPMLog bytes, of
// events with no data (32 bytes each): the most events per byte of any log
// format.
func largestTPMLogBytes() []byte {
	b := make([]byte, 0, largestTPMLog)
	sha1 := bytes.Repeat([]byte{0x5A}, 20)
	for i := 0; len(b)+32 <= largestTPMLog; i++ {
		b = eventlog.AppendLegacyEvent(b, uint32(i%8), eventlog.EvAction, sha1, nil)
	}
	return b
}

// largestTree writes a host tree holding both logs.
func largestTree(b *testing.B) (root string, tdx, tpm *eventlog.Log) {
	root = b.TempDir()
	area, tpmLog := largestTDXArea(), largestTPMLogBytes()
	table := (&ccel.Table{CCType: ccel.TypeTDX, LAML: uint64(len(area)), LASA: 0x7d649000}).Marshal()
	for path, data := range map[string][]byte{hwsource.CCELTablePath: table, hwsource.CCELDataPath: area, hwsource.TPMLogPath: tpmLog} {
		p := filepath.Join(root, path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o444); err != nil {
			b.Fatal(err)
		}
	}
	var err error
	if tdx, err = eventlog.ParseArea(area); err != nil {
		b.Fatal(err)
	}
	if tpm, err = eventlog.Parse(tpmLog); err != nil {
		b.Fatal(err)
	}
	return root, tdx, tpm
}

// inlineCount is the most events, from the first, whose content fits in
// the inline limit.
func inlineCount(l *eventlog.Log, kind eventlog.Kind, format eventlogpb.FORMAT) int {
	size := func(n int) int64 {
		if format == eventlogpb.FORMAT_TCG_RAW {
			return eventlog.RawSize(l, l.Events[:n])
		}
		return eventlog.CCNPJSONSize(l, l.Events[:n], eventlog.JSONOptions{Kind: kind, Address: 0x7d649000})
	}
	return sort.Search(len(l.Events)+1, func(n int) bool { return size(n) > service.DefaultMaxInlineBytes }) - 1
}

// BenchmarkPeakRSS: a server's peak resident set size serving the largest
// log of each category the host backends accept, whole, in each format, to
// a file and inline. Each case runs its own server process, so that its
// VmHWM is its own: it starts (and parses both logs), answers b.N times,
// and reports its peak. Inline, the whole log is refused (it is far past
// the inline limit) before anything is built, and the most events that fit
// are sent. make bench runs it once (-benchtime 1x).
func BenchmarkPeakRSS(b *testing.B) {
	root, tdx, tpm := largestTree(b)
	for _, c := range []struct {
		cat  eventlogpb.CATEGORY
		kind eventlog.Kind
		log  *eventlog.Log
	}{{eventlogpb.CATEGORY_TDX_EVENTLOG, eventlog.TDX, tdx}, {eventlogpb.CATEGORY_TPM_EVENTLOG, eventlog.TPM, tpm}} {
		for _, format := range []eventlogpb.FORMAT{eventlogpb.FORMAT_CCNP_JSON, eventlogpb.FORMAT_TCG_RAW} {
			for _, inline := range []bool{false, true} {
				name := fmt.Sprintf("%s/%d-events/%s/file", c.kind, len(c.log.Events), format)
				if inline {
					name = fmt.Sprintf("%s/%d-events/%s/inline", c.kind, len(c.log.Events), format)
				}
				b.Run(name, func(b *testing.B) {
					s := startServer(b, "EVENTLOG_HWSOURCE=host", "EVENTLOG_ROOT="+root,
						// Room for the whole log's JSON, several times its size.
						"EVENTLOG_MAX_DIR_BYTES="+strconv.Itoa(1<<30))
					// SERVING: both logs read and parsed.
					started := s.peakRSS(b)
					client := s.clients(b, 1)[0]
					req := &eventlogpb.GetEventlogRequest{EventlogCategory: c.cat, Format: format, Inline: inline}
					var content int64
					for b.Loop() {
						r, err := client.GetEventlog(context.Background(), req)
						if inline {
							if status.Code(err) != codes.ResourceExhausted {
								b.Fatalf("the whole log inline: %v, want RESOURCE_EXHAUSTED", err)
							}
							fit := &eventlogpb.GetEventlogRequest{EventlogCategory: c.cat, Format: format, Inline: true, Count: int32(inlineCount(c.log, c.kind, format))}
							r, err = client.GetEventlog(context.Background(), fit)
							if err != nil {
								b.Fatal(err)
							}
							content = int64(len(r.EventlogData))
							continue
						}
						if err != nil {
							b.Fatal(err)
						}
						fi, err := os.Stat(r.EventlogDataLoc)
						if err != nil || r.EventCount != uint32(len(c.log.Events)) {
							b.Fatalf("%v %v", r, err)
						}
						content = fi.Size()
					}
					b.ReportMetric(float64(started)/(1<<20), "start-RSS-MiB")
					b.ReportMetric(float64(s.peakRSS(b))/(1<<20), "peak-RSS-MiB")
					b.ReportMetric(float64(content)/(1<<20), "content-MiB")
					b.ReportMetric(0, "ns/op")
				})
			}
		}
	}
}
