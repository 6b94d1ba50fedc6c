package eventlog

import (
	"io"
	"slices"
)

// AppendRaw appends a valid TCG log holding the header and the given events,
// byte for byte as they appear in the source log.
func AppendRaw(dst []byte, l *Log, events []Event) []byte {
	dst = slices.Grow(dst, int(RawSize(l, events)))
	dst = append(dst, l.Header.Raw...)
	for i := range events {
		dst = append(dst, events[i].Raw...)
	}
	return dst
}

// WriteRaw writes what AppendRaw appends to out, record by record, without
// copying: out should be buffered.
func WriteRaw(out io.Writer, l *Log, events []Event) error {
	if _, err := out.Write(l.Header.Raw); err != nil {
		return err
	}
	for i := range events {
		if _, err := out.Write(events[i].Raw); err != nil {
			return err
		}
	}
	return nil
}

// RawSize is the length of what AppendRaw appends.
func RawSize(l *Log, events []Event) int64 {
	n := int64(len(l.Header.Raw))
	for i := range events {
		n += int64(len(events[i].Raw))
	}
	return n
}
