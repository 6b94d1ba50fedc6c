package eventlog_test

import (
	"bytes"
	"testing"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
)

// testEvent is one event of a log built for a test.
type testEvent struct {
	index uint32
	typ   eventlog.EventType
	data  []byte
}

// agileLog builds a crypto-agile log: a Spec ID header at headerIndex for
// algs, then events measured with algs. starts[i] is where event i's record
// starts (starts[0] = 0 is the header); the last entry is the log's length.
func agileLog(headerIndex uint32, algs []eventlog.Alg, evs ...testEvent) (log []byte, starts []int) {
	log = eventlog.AppendSpecIDHeader(nil, headerIndex, algs)
	starts = []int{0, len(log)}
	for _, e := range evs {
		log = eventlog.AppendEvent2(log, e.index, e.typ, eventlog.Measure(e.data, algs), e.data)
		starts = append(starts, len(log))
	}
	return log, starts
}

// legacyLog builds a SHA1-only (TCG 1.2) log whose first record is evs[0].
func legacyLog(evs ...testEvent) (log []byte, starts []int) {
	starts = []int{0}
	for _, e := range evs {
		log = eventlog.AppendLegacyEvent(log, e.index, e.typ, eventlog.Measure(e.data, []eventlog.Alg{eventlog.AlgSHA1})[0].Value, e.data)
		starts = append(starts, len(log))
	}
	return log, starts
}

// bootEvents are a few events shaped like a firmware's: none of them starts
// with 8 bytes of 0x00 or 0xFF, so a log area does not end at any of them.
var bootEvents = []testEvent{
	{0, eventlog.EvSCRTMVersion, []byte("1.0\x00")},
	{7, eventlog.EvEFIVariableDriverConfig, bytes.Repeat([]byte{0xA5}, 40)},
	{4, eventlog.EvSeparator, []byte{0, 0, 0, 0}},
	{4, eventlog.EvEFIBootServicesApp, []byte("grubx64.efi")},
}

// sameEvents checks that got are want re-read from another log: the same
// records in the same order, got numbered from 1 and want from want[0].Num.
func sameEvents(t testing.TB, got, want []eventlog.Event) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d events, want %d", len(got), len(want))
	}
	for i := range got {
		g, w := &got[i], &want[i]
		if g.Num != i+1 {
			t.Errorf("event %d: Num = %d, want %d", i, g.Num, i+1)
		}
		if i > 0 && w.Num != want[i-1].Num+1 {
			t.Errorf("source event %d: Num = %d does not follow %d", i, w.Num, want[i-1].Num)
		}
		if g.Index != w.Index || g.Type != w.Type {
			t.Errorf("event %d (source %d): index %d type %v, want index %d type %v", g.Num, w.Num, g.Index, g.Type, w.Index, w.Type)
		}
		if !sameDigests(g.Digests, w.Digests) {
			t.Errorf("event %d (source %d): digests %v, want %v", g.Num, w.Num, g.Digests, w.Digests)
		}
		if !bytes.Equal(g.Data, w.Data) || !bytes.Equal(g.Raw, w.Raw) {
			t.Errorf("event %d (source %d): data or record bytes differ", g.Num, w.Num)
		}
	}
}

func sameDigests(a, b []eventlog.Digest) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Alg != b[i].Alg || !bytes.Equal(a[i].Value, b[i].Value) {
			return false
		}
	}
	return true
}
