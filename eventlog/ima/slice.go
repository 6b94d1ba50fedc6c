package ima

import (
	"fmt"
	"iter"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
)

// RangeError reports a start position past the last entry.
type RangeError struct {
	Start int // the requested start
	Total int // N, the number of entries
}

func (e *RangeError) Error() string {
	return fmt.Sprintf("start position %d is past the last entry: the IMA measurement list has %d entries (numbered 1..%d)", e.Start, e.Total, e.Total)
}

// Unwrap returns the error as an *eventlog.RangeError, so that a start past
// the end of a list maps to the same error code as one past an event log's.
func (e *RangeError) Unwrap() error { return &eventlog.RangeError{Start: e.Start, Total: e.Total} }

// Len is the number of entries, N.
func (l *List) Len() int { return l.n }

// Entry returns entry num (1..N), or nil when there is none.
func (l *List) Entry(num int) *Entry {
	if num < 1 || num > l.n {
		return nil
	}
	i := num - 1
	for _, b := range l.blocks {
		if i < len(b) {
			return &b[i]
		}
		i -= len(b)
	}
	return nil
}

// All yields the entries in order, without copying them.
func (l *List) All() iter.Seq[*Entry] {
	return func(yield func(*Entry) bool) {
		for _, b := range l.blocks {
			for i := range b {
				if !yield(&b[i]) {
					return
				}
			}
		}
	}
}

// Entries is a run of consecutive entries of a list, as Slice selects
// them. It aliases the list's entries: selecting and encoding any number of
// entries copies none of them.
type Entries struct {
	blocks [][]Entry // the blocks the run touches, trimmed to it
	n      int
}

// Len is the number of entries.
func (es Entries) Len() int { return es.n }

// First is the first entry, or nil for an empty run.
func (es Entries) First() *Entry {
	if es.n == 0 {
		return nil
	}
	return &es.blocks[0][0]
}

// All yields the entries in order.
func (es Entries) All() iter.Seq[*Entry] {
	return func(yield func(*Entry) bool) {
		for _, b := range es.blocks {
			for i := range b {
				if !yield(&b[i]) {
					return
				}
			}
		}
	}
}

// Slice selects entries by number as eventlog.Log.Slice selects events:
// start is the number of the first entry returned (0 and 1 both mean the
// first), count is the most entries returned (0 means all the rest). A
// slice running past the end returns the rest; a start past the last entry
// is a *RangeError; a negative start or count wraps eventlog.ErrNegative.
func (l *List) Slice(start, count int) (Entries, error) {
	if start < 0 || count < 0 {
		return Entries{}, fmt.Errorf("%w (start %d, count %d)", eventlog.ErrNegative, start, count)
	}
	start = max(start, 1)
	total := l.n
	if start > total {
		if start == 1 {
			return Entries{}, nil // an empty list
		}
		return Entries{}, &RangeError{Start: start, Total: total}
	}
	if count == 0 || count > total-start+1 {
		count = total - start + 1
	}
	es := Entries{n: count}
	skip, left := start-1, count
	for _, b := range l.blocks {
		if skip >= len(b) {
			skip -= len(b)
			continue
		}
		b = b[skip:min(len(b), skip+left)]
		es.blocks = append(es.blocks, b)
		skip, left = 0, left-len(b)
		if left == 0 {
			break
		}
	}
	return es, nil
}
