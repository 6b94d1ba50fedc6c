package eventlog_test

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"github.com/ccnp-eventlog/ccnp-eventlog/internal/corpus"
)

// chunkWriter records what it is given, and the largest single write.
type chunkWriter struct {
	bytes.Buffer
	largest int
	writes  int
}

func (w *chunkWriter) Write(p []byte) (int, error) {
	w.largest = max(w.largest, len(p))
	w.writes++
	return w.Buffer.Write(p)
}

// streamLogs are the corpus, a large synthetic log, and a log with one
// event of 1 MiB of data: the streaming encoders must cut it in pieces.
func streamLogs(t *testing.T) map[string]*eventlog.Log {
	logs := map[string]*eventlog.Log{}
	for _, name := range slices.Sorted(maps.Keys(corpus.Expected(t))) {
		logs[name], _ = corpus.Parse(t, name)
	}
	var err error
	if logs["synthetic 1 MiB area"], err = eventlog.ParseArea(syntheticArea(1 << 20)); err != nil {
		t.Fatal(err)
	}
	big, _ := agileLog(1, []eventlog.Alg{eventlog.AlgSHA384}, append(bootEvents, testEvent{3, eventlog.EvEventTag, bytes.Repeat([]byte{0xC3}, 1<<20)})...)
	if logs["one 1 MiB event"], err = eventlog.Parse(big); err != nil {
		t.Fatal(err)
	}
	return logs
}

// TestStreamingEncoders: WriteCCNPJSON and WriteRaw write what the append
// encoders append, byte for byte, in bounded pieces; the size functions
// say how long it is without encoding.
func TestStreamingEncoders(t *testing.T) {
	for name, l := range streamLogs(t) {
		n := len(l.Events)
		for _, s := range [][2]int{{0, 0}, {n / 2, 7}, {n, 0}} {
			sel, err := l.Slice(s[0], s[1])
			if err != nil {
				t.Fatal(err)
			}
			t.Run(fmt.Sprintf("%s/start=%d,count=%d", name, s[0], s[1]), func(t *testing.T) {
				for _, kind := range []eventlog.Kind{eventlog.TDX, eventlog.TPM} {
					o := eventlog.JSONOptions{Kind: kind, Address: 0x7d649000}
					want := eventlog.AppendCCNPJSON(nil, l, sel, o)
					var w chunkWriter
					if err := eventlog.WriteCCNPJSON(&w, l, sel, o); err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(w.Bytes(), want) {
						t.Fatalf("%v: WriteCCNPJSON wrote %d bytes that differ from AppendCCNPJSON's %d", kind, w.Len(), len(want))
					}
					if size := eventlog.CCNPJSONSize(l, sel, o); size != int64(len(want)) {
						t.Errorf("%v: CCNPJSONSize = %d, want %d", kind, size, len(want))
					}
					// Pieces of about 32 KiB: never the whole of a large
					// document, never one event's large data at once.
					if w.largest > 80<<10 {
						t.Errorf("%v: a single write of %d bytes (of %d)", kind, w.largest, len(want))
					}
				}
				want := eventlog.AppendRaw(nil, l, sel)
				var w chunkWriter
				if err := eventlog.WriteRaw(&w, l, sel); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(w.Bytes(), want) {
					t.Fatalf("WriteRaw wrote %d bytes that differ from AppendRaw's %d", w.Len(), len(want))
				}
				if size := eventlog.RawSize(l, sel); size != int64(len(want)) {
					t.Errorf("RawSize = %d, want %d", size, len(want))
				}
			})
		}
	}
}

// failingWriter fails after accepting limit bytes.
type failingWriter struct{ limit, n int }

var errWrite = errors.New("disk full")

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.n+len(p) > w.limit {
		return 0, errWrite
	}
	w.n += len(p)
	return len(p), nil
}

// TestStreamingEncodersStopAtAnError: the writer's first error is returned,
// and nothing is written after it.
func TestStreamingEncodersStopAtAnError(t *testing.T) {
	l, err := eventlog.ParseArea(syntheticArea(1 << 20))
	if err != nil {
		t.Fatal(err)
	}
	w := &failingWriter{limit: 100 << 10}
	if err := eventlog.WriteCCNPJSON(w, l, l.Events, eventlog.JSONOptions{Kind: eventlog.TDX}); !errors.Is(err, errWrite) {
		t.Errorf("WriteCCNPJSON: %v, want the writer's error", err)
	}
	w = &failingWriter{limit: 100 << 10}
	if err := eventlog.WriteRaw(w, l, l.Events); !errors.Is(err, errWrite) {
		t.Errorf("WriteRaw: %v, want the writer's error", err)
	}
}
