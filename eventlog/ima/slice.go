package ima

import (
	"fmt"

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

// Slice selects entries by number as eventlog.Log.Slice selects events:
// start is the number of the first entry returned (0 and 1 both mean the
// first), count is the most entries returned (0 means all the rest). A
// slice running past the end returns the rest; a start past the last entry
// is a *RangeError; a negative start or count wraps eventlog.ErrNegative.
func (l *List) Slice(start, count int) ([]Entry, error) {
	if start < 0 || count < 0 {
		return nil, fmt.Errorf("%w (start %d, count %d)", eventlog.ErrNegative, start, count)
	}
	start = max(start, 1)
	total := len(l.Entries)
	if start > total {
		if start == 1 {
			return nil, nil // an empty list
		}
		return nil, &RangeError{Start: start, Total: total}
	}
	end := total
	if count > 0 && count < total-start+1 {
		end = start - 1 + count
	}
	return l.Entries[start-1 : end : end], nil
}
