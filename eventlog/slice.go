package eventlog

import (
	"errors"
	"fmt"
)

// RangeError reports a start position past the last event.
type RangeError struct {
	Start int // the requested start
	Total int // N, the number of events after the header
}

func (e *RangeError) Error() string {
	return fmt.Sprintf("start position %d is past the last event: the log has %d events (numbered 1..%d, 0 is the Spec ID header)", e.Start, e.Total, e.Total)
}

// ErrNegative is returned for a negative start or count.
var ErrNegative = errors.New("start position and count must not be negative")

// Slice selects events by number as tpm2_eventlog numbers them: start is the
// number of the first event returned (0 and 1 both mean the first event after
// the header), count is the most events returned (0 means all the rest).
// A slice running past the end returns the rest; a start past the last event
// is a *RangeError. The header is not part of the result: every file carries
// it anyway.
func (l *Log) Slice(start, count int) ([]Event, error) {
	if start < 0 || count < 0 {
		return nil, fmt.Errorf("%w (start %d, count %d)", ErrNegative, start, count)
	}
	start = max(start, 1)
	total := len(l.Events)
	if start > total {
		if start == 1 {
			return nil, nil // a log with no events after its header
		}
		return nil, &RangeError{Start: start, Total: total}
	}
	end := total
	if count > 0 && count < total-start+1 {
		end = start - 1 + count
	}
	return l.Events[start-1 : end : end], nil
}
