package service_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
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
		inlineReq := &eventlogpb.GetEventlogRequest{StartPosition: 1, Count: 1, Format: format, Inline: true}
		inlineBefore, err := s.get(t, inlineReq)
		if err != nil || inlineBefore.TotalEvents != before.TotalEvents || len(inlineBefore.EventlogData) == 0 {
			t.Fatalf("%s inline: %v (%v)", format, inlineBefore, err)
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
		// An inline reply cached before the record is not handed out after it.
		if inline, err := s.get(t, inlineReq); err != nil || inline.TotalEvents != want {
			t.Errorf("%s inline: %v (%v), want %d events in all", format, inline, err, want)
		}
	}
}

// TestCachedContainerRepliesAreTheCallersOwn: container-level replies go
// through the reply cache too, keyed by the caller: the same request from
// another container is never answered with the first one's file, and a
// container's new event makes a new file.
func TestCachedContainerRepliesAreTheCallersOwn(t *testing.T) {
	e := newRuntimeEnv(t)
	s := e.start(t, e.newTDX(t))
	req := &eventlogpb.GetEventlogRequest{EventlogLevel: eventlogpb.LEVEL_SAAS, Format: eventlogpb.FORMAT_TCG_RAW}
	fetch := func(id string) (path string, events []string) {
		t.Helper()
		e.as(t, id)
		r, err := s.get(t, req)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(r.EventlogDataLoc)
		if err != nil {
			t.Fatal(err)
		}
		l, err := eventlog.Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		return r.EventlogDataLoc, datas(l)
	}
	e.as(t, ctrA)
	s.mustRecord(t, "a1")
	e.as(t, ctrB)
	s.mustRecord(t, "b1")

	pathA, gotA := fetch(ctrA)
	pathB, gotB := fetch(ctrB)
	againA, againGotA := fetch(ctrA)
	if pathA == pathB || fmt.Sprint(gotA) != "[a1]" || fmt.Sprint(gotB) != "[b1]" {
		t.Errorf("A: %s %v; B: %s %v", pathA, gotA, pathB, gotB)
	}
	if againA != pathA || fmt.Sprint(againGotA) != "[a1]" {
		t.Errorf("A again: %s %v, want %s [a1]", againA, againGotA, pathA)
	}
	// Inline, each container's own too: A's cached reply is never B's.
	inline := &eventlogpb.GetEventlogRequest{EventlogLevel: eventlogpb.LEVEL_SAAS, Format: eventlogpb.FORMAT_TCG_RAW, Inline: true}
	for _, c := range []struct{ id, want string }{{ctrA, "[a1]"}, {ctrB, "[b1]"}, {ctrA, "[a1]"}, {ctrB, "[b1]"}} {
		e.as(t, c.id)
		r, err := s.get(t, inline)
		if err != nil {
			t.Fatal(err)
		}
		l, err := eventlog.Parse(r.EventlogData)
		if err != nil || fmt.Sprint(datas(l)) != c.want {
			t.Errorf("inline as %.12s: %v (%v), want %s", c.id, datas(l), err, c.want)
		}
	}
	first := &eventlogpb.GetEventlogRequest{EventlogLevel: eventlogpb.LEVEL_SAAS, Count: 1}
	before, err := s.get(t, first)
	if err != nil {
		t.Fatal(err)
	}
	e.as(t, ctrA)
	s.mustRecord(t, "a2")
	if path, got := fetch(ctrA); path == pathA || fmt.Sprint(got) != "[a1 a2]" {
		t.Errorf("after A's second event: %s %v", path, got)
	}
	// The same slice, whose event did not change, tells the new total.
	if after, err := s.get(t, first); err != nil || after.TotalEvents != before.TotalEvents+1 || readJSON(t, after.EventlogDataLoc).TotalEvents != int(before.TotalEvents)+1 {
		t.Errorf("the first event of A's log after its second event: %v (%v), want %d events in all", after, err, before.TotalEvents+1)
	}
}
