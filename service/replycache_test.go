package service_test

import (
	"testing"

	eventlogpb "github.com/ccnp-eventlog/ccnp-eventlog/proto"
)

// TestCachedRepliesFollowRuntimeEvents: a reply the server cached before a
// RecordEvent is not handed out after it. The same request for the same
// slice (whose events did not change) must tell the log's new total, in the
// reply and, for CCNP JSON, in the file.
func TestCachedRepliesFollowRuntimeEvents(t *testing.T) {
	e := newRuntimeEnv(t)
	s := e.start(t, e.newTDX(t))
	e.as(t, ctrA)
	for _, format := range []eventlogpb.FORMAT{eventlogpb.FORMAT_CCNP_JSON, eventlogpb.FORMAT_TCG_RAW} {
		req := &eventlogpb.GetEventlogRequest{StartPosition: 1, Count: 1, Format: format}
		before, err := s.get(t, req)
		if err != nil {
			t.Fatal(err)
		}
		// Asked twice, the reply comes from the cache.
		if again, err := s.get(t, req); err != nil || again.EventlogDataLoc != before.EventlogDataLoc || again.TotalEvents != before.TotalEvents {
			t.Fatalf("%s: the same request twice: %v then %v (%v)", format, before, again, err)
		}
		s.mustRecord(t, "recorded after a reply for "+format.String())

		after, err := s.get(t, req)
		if err != nil {
			t.Fatal(err)
		}
		want := before.TotalEvents + 1
		if after.TotalEvents != want || after.EventCount != 1 || after.FirstEvent != 1 {
			t.Errorf("%s: after RecordEvent the reply says %d events in all (count %d, first %d), want %d",
				format, after.TotalEvents, after.EventCount, after.FirstEvent, want)
		}
		if format == eventlogpb.FORMAT_CCNP_JSON {
			if f := readJSON(t, after.EventlogDataLoc); f.TotalEvents != int(want) {
				t.Errorf("after RecordEvent the file %s says %d events in all, want %d", after.EventlogDataLoc, f.TotalEvents, want)
			}
		}
		// Inline replies are never cached: they must agree.
		req.Inline = true
		if inline, err := s.get(t, req); err != nil || inline.TotalEvents != want {
			t.Errorf("%s inline: %v (%v), want %d events in all", format, inline, err, want)
		}
	}
}
