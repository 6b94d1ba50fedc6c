package eventlog

import "slices"

// AppendRaw appends a valid TCG log holding the header and the given events,
// byte for byte as they appear in the source log.
func AppendRaw(dst []byte, l *Log, events []Event) []byte {
	n := len(l.Header.Raw)
	for i := range events {
		n += len(events[i].Raw)
	}
	dst = slices.Grow(dst, n)
	dst = append(dst, l.Header.Raw...)
	for i := range events {
		dst = append(dst, events[i].Raw...)
	}
	return dst
}
