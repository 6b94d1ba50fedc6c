package eventlog_test

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"github.com/ccnp-eventlog/ccnp-eventlog/internal/corpus"
)

// corpusSlices are the (start, count) pairs every corpus log is sliced by,
// for a log of n events after its header.
func corpusSlices(n int) [][2]int {
	return [][2]int{
		{0, 0},         // everything
		{1, 1},         // the first event
		{n/2 + 1, 5},   // from the middle
		{n, 0},         // the last event
		{n, 1},         // the last event, counted
		{n - 2, 10},    // running past the end: the last 3
		{2, n + 1000},  // count past the end
		{n / 3, n / 3}, // a third from the first third
	}
}

// TestCorpusRawSlices writes slices of every corpus log as raw TCG logs
// (AppendRaw) and parses them back: the header and the selected events must
// come back byte for byte, in order.
func TestCorpusRawSlices(t *testing.T) {
	for _, name := range slices.Sorted(maps.Keys(corpus.Expected(t))) {
		l, _ := corpus.Parse(t, name)
		n := len(l.Events)
		for _, s := range corpusSlices(n) {
			t.Run(fmt.Sprintf("%s/start=%d,count=%d", name, s[0], s[1]), func(t *testing.T) {
				sel, err := l.Slice(s[0], s[1])
				if err != nil {
					t.Fatal(err)
				}
				first := max(s[0], 1)
				want := min(n-first+1, s[1])
				if s[1] == 0 {
					want = n - first + 1
				}
				if len(sel) != want || sel[0].Num != first {
					t.Fatalf("Slice gave %d events from %d, want %d from %d", len(sel), sel[0].Num, want, first)
				}
				raw := eventlog.AppendRaw(nil, l, sel)
				back, err := eventlog.Parse(raw)
				if err != nil {
					t.Fatalf("the raw slice does not parse: %v", err)
				}
				if !bytes.Equal(back.Header.Raw, l.Header.Raw) {
					t.Errorf("header differs")
				}
				if !slices.Equal(back.Algs(), l.Algs()) {
					t.Errorf("algorithms %v, want %v", back.Algs(), l.Algs())
				}
				sameEvents(t, back.Events, sel)
				if !bytes.Equal(back.Raw, raw) {
					t.Errorf("re-parsed log covers %d of %d bytes", len(back.Raw), len(raw))
				}
			})
		}
		t.Run(name+"/start past the end", func(t *testing.T) {
			_, err := l.Slice(n+1, 0)
			var re *eventlog.RangeError
			if !errors.As(err, &re) || re.Total != n || re.Start != n+1 {
				t.Fatalf("Slice(%d, 0) = %v, want a RangeError naming %d events", n+1, err, n)
			}
		})
	}
}

func TestSlice(t *testing.T) {
	log, _ := agileLog(0, sha1sha256, append(bootEvents, bootEvents[1])...) // 5 events
	l, err := eventlog.Parse(log)
	if err != nil {
		t.Fatal(err)
	}
	empty, err := eventlog.Parse(eventlog.AppendSpecIDHeader(nil, 0, sha1sha256))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name         string
		log          *eventlog.Log
		start, count int
		want         []int  // event numbers
		err          string // error text; "" for none
	}{
		{"all from 0", l, 0, 0, []int{1, 2, 3, 4, 5}, ""},
		{"all from 1", l, 1, 0, []int{1, 2, 3, 4, 5}, ""},
		{"start 0 count 1 is the first event", l, 0, 1, []int{1}, ""},
		{"start 1 count 1 is the first event", l, 1, 1, []int{1}, ""},
		{"5 events from the second", l, 2, 5, []int{2, 3, 4, 5}, ""},
		{"middle", l, 3, 2, []int{3, 4}, ""},
		{"last", l, 5, 0, []int{5}, ""},
		{"last counted", l, 5, 1, []int{5}, ""},
		{"count past the end", l, 4, 1 << 40, []int{4, 5}, ""},
		{"start past the end", l, 6, 0, nil, "the log has 5 events"},
		{"start far past the end", l, 1 << 40, 1, nil, "the log has 5 events"},
		{"negative start", l, -1, 0, nil, "must not be negative"},
		{"negative count", l, 0, -1, nil, "must not be negative"},
		{"empty log from 0", empty, 0, 0, []int{}, ""},
		{"empty log from 1", empty, 1, 3, []int{}, ""},
		{"empty log from 2", empty, 2, 0, nil, "the log has 0 events"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sel, err := tc.log.Slice(tc.start, tc.count)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Slice(%d, %d) error %v, want %q", tc.start, tc.count, err, tc.err)
				}
				var re *eventlog.RangeError
				switch {
				case tc.start < 0 || tc.count < 0:
					if !errors.Is(err, eventlog.ErrNegative) {
						t.Errorf("error %v is not ErrNegative", err)
					}
				case !errors.As(err, &re) || re.Total != len(tc.log.Events) || re.Start != tc.start:
					t.Errorf("error %#v is not a RangeError{Start: %d, Total: %d}", err, tc.start, len(tc.log.Events))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			nums := []int{}
			for _, e := range sel {
				nums = append(nums, e.Num)
			}
			if !slices.Equal(nums, tc.want) {
				t.Errorf("Slice(%d, %d) = events %v, want %v", tc.start, tc.count, nums, tc.want)
			}
			// The slice must not let an append overwrite the log's events.
			if cap(sel) != len(sel) {
				t.Errorf("slice has spare capacity %d", cap(sel)-len(sel))
			}
		})
	}
}
