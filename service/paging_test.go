package service_test

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	eventlogpb "github.com/ccnp-eventlog/ccnp-eventlog/proto"
	"github.com/ccnp-eventlog/ccnp-eventlog/service"
)

func zeroBasedStart(o *service.Options) { o.ZeroBasedStart = true }

// rawSlice asks for a raw slice and returns the reply and the file parsed.
func rawSlice(t *testing.T, s *server, req *eventlogpb.GetEventlogRequest) (*eventlogpb.GetEventlogReply, *eventlog.Log) {
	t.Helper()
	req.Format = eventlogpb.FORMAT_TCG_RAW
	r, err := s.get(t, req)
	if err != nil {
		t.Fatalf("start %d count %d: %v", req.StartPosition, req.Count, err)
	}
	b, err := os.ReadFile(r.EventlogDataLoc)
	if err != nil {
		t.Fatal(err)
	}
	l, err := eventlog.Parse(b)
	if err != nil {
		t.Fatalf("%s: %v", r.EventlogDataLoc, err)
	}
	return r, l
}

// With ZeroBasedStart, start_position is the number of events to skip, as
// the upstream server's code counted it; everything else stays ours.
func TestZeroBasedStartSkipsEvents(t *testing.T) {
	h := newHostTree(t, "cos-113-tdx", "tpm_rhel8-uefi.bin")
	s := start(t, h.root, nil, zeroBasedStart)
	for cat, src := range map[eventlogpb.CATEGORY]*eventlog.Log{
		eventlogpb.CATEGORY_TDX_EVENTLOG: parseCorpus(t, h.tdx, true),
		eventlogpb.CATEGORY_TPM_EVENTLOG: parseCorpus(t, h.tpm, false),
	} {
		t.Run(cat.String(), func(t *testing.T) {
			n := int32(len(src.Events))
			for _, p := range []struct{ start, count, first, last int32 }{
				{0, 0, 1, n},          // the whole log
				{0, n, 1, n},          // count N from the start: N events
				{0, 1, 1, 1},          // the first event
				{1, 1, 2, 2},          // 1 skips one: the second event
				{2, 5, 3, 7},          // upstream's server: start 2 is the third event
				{n - 1, 0, n, n},      // the last event
				{n - 3, 10, n - 2, n}, // past the end: the rest, as by default
			} {
				r, l := rawSlice(t, s, &eventlogpb.GetEventlogRequest{EventlogCategory: cat, StartPosition: p.start, Count: p.count})
				want := int(p.last - p.first + 1)
				if int(r.EventCount) != want || len(l.Events) != want || r.FirstEvent != uint32(p.first) || r.TotalEvents != uint32(n) {
					t.Fatalf("start %d count %d: reply first %d, %d of %d events, file %d; want first %d, %d of %d",
						p.start, p.count, r.FirstEvent, r.EventCount, r.TotalEvents, len(l.Events), p.first, want, n)
				}
				for i, e := range l.Events {
					if !bytes.Equal(e.Raw, src.Events[int(p.first)-1+i].Raw) {
						t.Fatalf("start %d count %d: record %d of the file is not event %d", p.start, p.count, i, int(p.first)+i)
					}
				}
			}
			// Skipping every event leaves nothing: OUT_OF_RANGE, in the
			// caller's terms.
			for _, skip := range []int32{n, n + 1, 1<<31 - 1} {
				_, err := s.get(t, &eventlogpb.GetEventlogRequest{EventlogCategory: cat, StartPosition: skip})
				wantCode(t, err, codes.OutOfRange, "start position "+strconv.Itoa(int(skip)), fmt.Sprintf("the log has %d events", n),
					"--zero-based-start", fmt.Sprintf("at most %d", n-1))
			}
			_, err := s.get(t, &eventlogpb.GetEventlogRequest{EventlogCategory: cat, StartPosition: -1})
			wantCode(t, err, codes.InvalidArgument, "start_position (-1)")
		})
	}
}

// Paging with the page starts each convention expects returns every event
// exactly once, and the pages put back together are the log; with the other
// convention's starts the default server repeats each page's boundary event,
// which is why the option exists.
func TestPagingCoversEveryEventOnce(t *testing.T) {
	h := newHostTree(t, "cos-113-tdx", "")
	src := parseCorpus(t, h.tdx, true)
	n := len(src.Events)
	const size = 10
	pages := func(s *server, first int32) []byte {
		raw := bytes.Clone(src.Header.Raw)
		seen := map[int]int{}
		for start := first; ; start += size {
			r, l := rawSlice(t, s, &eventlogpb.GetEventlogRequest{StartPosition: start, Count: size})
			for i, e := range l.Events {
				seen[int(r.FirstEvent)+i]++
				raw = append(raw, e.Raw...)
			}
			if int(r.FirstEvent+r.EventCount) > n {
				break
			}
		}
		for num := 1; num <= n; num++ {
			if seen[num] != 1 {
				t.Errorf("pages from %d: event %d returned %d times", first, num, seen[num])
			}
		}
		return raw
	}
	for _, tc := range []struct {
		name  string
		opts  []func(*service.Options)
		first int32
	}{
		{"default server, pages 1, 11, 21, ...", nil, 1},
		{"--zero-based-start, pages 0, 10, 20, ...", []func(*service.Options){zeroBasedStart}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := start(t, h.root, nil, tc.opts...)
			if raw := pages(s, tc.first); !bytes.Equal(raw, src.Raw) {
				t.Errorf("the pages put together (%d bytes) are not the log (%d bytes)", len(raw), len(src.Raw))
			}
		})
	}

	// The mismatch the option is for: a client paging 0, 10, 20, ... on the
	// default server gets events 10, 20, ... twice (start 0 is event 1).
	s := start(t, h.root, nil)
	a, _ := rawSlice(t, s, &eventlogpb.GetEventlogRequest{StartPosition: 0, Count: size})
	b, _ := rawSlice(t, s, &eventlogpb.GetEventlogRequest{StartPosition: size, Count: size})
	if a.FirstEvent+a.EventCount-1 != b.FirstEvent {
		t.Errorf("default server, pages 0 and %d: first events %d (%d events) and %d, want the boundary event in both", size, a.FirstEvent, a.EventCount, b.FirstEvent)
	}
}

// Container-level logs page the same way.
func TestZeroBasedStartContainerLevel(t *testing.T) {
	e := newRuntimeEnv(t)
	e.zeroBasedStart = true
	s := e.start(t, e.newTDX(t))
	e.as(t, ctrA)
	for _, d := range []string{"one", "two", "three"} {
		s.mustRecord(t, d)
	}
	for _, p := range []struct {
		start, count int32
		want         string
		first        uint32
	}{
		{0, 0, "[one two three]", 1},
		{0, 3, "[one two three]", 1},
		{1, 1, "[two]", 2},
		{2, 0, "[three]", 3},
	} {
		r, err := s.get(t, &eventlogpb.GetEventlogRequest{EventlogLevel: eventlogpb.LEVEL_SAAS, StartPosition: p.start, Count: p.count, Format: eventlogpb.FORMAT_TCG_RAW, Inline: true})
		if err != nil {
			t.Fatalf("start %d count %d: %v", p.start, p.count, err)
		}
		l, err := eventlog.Parse(r.EventlogData)
		if err != nil || fmt.Sprint(datas(l)) != p.want || r.FirstEvent != p.first {
			t.Errorf("start %d count %d: %v, first_event %d (%v); want %s from %d", p.start, p.count, datas(l), r.FirstEvent, err, p.want, p.first)
		}
	}
	_, err := s.get(t, &eventlogpb.GetEventlogRequest{EventlogLevel: eventlogpb.LEVEL_SAAS, StartPosition: 3})
	wantCode(t, err, codes.OutOfRange, "start position 3", "the log has 3 events", "--zero-based-start")
}
