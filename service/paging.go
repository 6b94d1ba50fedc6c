package service

import (
	"errors"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
)

// slice selects the events a request's start_position and count ask for.
//
// By default start_position is the number of the first event returned, as
// tpm2_eventlog numbers them and as upstream's docs describe it (0 and 1 both
// mean the first). With Options.ZeroBasedStart it counts the events to skip,
// as the upstream server's code did (start 2 is event 3), for clients written
// against that server: their pages 0, 10, 20, ... would otherwise return the
// event at each page boundary twice. Either way the reply's first_event says
// which event came first. Validation has rejected negative values already.
func (s *Service) slice(l *eventlog.Log, start, count int32) ([]eventlog.Event, error) {
	return page(s.zeroBasedStart, start, count, l.Slice)
}

// page gives start_position the meaning slice describes, for any log whose
// Slice numbers its entries from 1 (the TCG logs' events, the IMA list's
// entries).
func page[T any](zeroBased bool, start, count int32, slice func(first, count int) (T, error)) (T, error) {
	if !zeroBased || start < 0 {
		return slice(int(start), int(count))
	}
	entries, err := slice(int(start)+1, int(count)) // int: no overflow at MaxInt32
	var rangeErr *eventlog.RangeError
	if errors.As(err, &rangeErr) {
		var none T
		return none, &skipRangeError{skip: start, err: rangeErr}
	}
	return entries, err
}
