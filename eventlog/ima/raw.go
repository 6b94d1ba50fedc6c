package ima

import (
	"io"
	"slices"
)

// AppendRaw appends the entries byte for byte as the list holds them: the
// kernel's binary format, which has no header, so any run of entries is a
// list of its own.
func AppendRaw(dst []byte, entries Entries) []byte {
	dst = slices.Grow(dst, int(RawSize(entries)))
	for e := range entries.All() {
		dst = append(dst, e.Raw...)
	}
	return dst
}

// RawSize is the length of what AppendRaw appends.
func RawSize(entries Entries) int64 {
	var n int64
	for e := range entries.All() {
		n += int64(len(e.Raw))
	}
	return n
}

// chunk is about how much the Write functions hold before they write.
const chunk = 32 << 10

// WriteRaw writes what AppendRaw appends to out, in chunks of about 32 KiB:
// few writes, and never the whole in memory.
func WriteRaw(out io.Writer, entries Entries) error {
	buf := make([]byte, 0, chunk)
	for e := range entries.All() {
		raw := e.Raw
		if len(buf)+len(raw) > chunk && len(buf) > 0 {
			if _, err := out.Write(buf); err != nil {
				return err
			}
			buf = buf[:0]
		}
		if len(raw) >= chunk {
			if _, err := out.Write(raw); err != nil {
				return err
			}
			continue
		}
		buf = append(buf, raw...)
	}
	if len(buf) > 0 {
		_, err := out.Write(buf)
		return err
	}
	return nil
}
