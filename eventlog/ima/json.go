package ima

import (
	"encoding/binary"
	"encoding/hex"
	"io"
	"strconv"
	"unicode/utf8"
)

// AppendCCNPJSON appends the list's entries as one JSON document:
//
//	{"Kind": "IMA", "TemplateHashAlgorithm": "sha1", "ByteOrder": "little-endian",
//	 "TotalEntries": N, "EntryCount": c, "FirstEntry": s,
//	 "Entries": [{"EntryNum": 1, "Pcr": 10, "TemplateHash": "<hex>",
//	              "TemplateName": "ima-ng", "Violation": false,
//	              "Fields": {"d-ng": "sha256:<hex>", "n-ng": "boot_aggregate"}}, ...]}
//
// Fields are keyed by the kernel's template field IDs, each valued as
// ascii_runtime_measurements prints it (see Field.String). "TemplateData"
// (hex) holds the template data where the fields cannot hold every byte:
// a template with unknown fields (it has no "Fields"), or a name that is
// not UTF-8 (JSON text cannot carry it, and shows U+FFFD in its place).
// total is N, the entries in the whole list.
//
// It is written by hand rather than with encoding/json because it is on the
// service's request path; the tests check it against encoding/json decoding.
func AppendCCNPJSON(dst []byte, l *List, entries Entries) []byte {
	w := jsonWriter{b: dst}
	w.document(l, entries)
	return w.b
}

// WriteCCNPJSON writes what AppendCCNPJSON appends to out, in chunks of
// about 32 KiB: the whole is never in memory, however many entries.
func WriteCCNPJSON(out io.Writer, l *List, entries Entries) error {
	w := jsonWriter{b: make([]byte, 0, 2*chunk), out: out}
	w.document(l, entries)
	w.flush()
	return w.err
}

// CCNPJSONSize is the length of what AppendCCNPJSON appends. It encodes
// the document to count it, holding no more than WriteCCNPJSON does.
func CCNPJSONSize(l *List, entries Entries) int64 {
	var c counter
	WriteCCNPJSON(&c, l, entries) // a counter never fails
	return c.n
}

type counter struct{ n int64 }

func (c *counter) Write(b []byte) (int, error) { c.n += int64(len(b)); return len(b), nil }

type jsonWriter struct {
	b    []byte
	out  io.Writer // nil: append only
	err  error     // out's first error; nothing is written after it
	text []byte    // scratch for a field's text
}

func (w *jsonWriter) flush() {
	if w.err == nil && len(w.b) > 0 {
		_, w.err = w.out.Write(w.b)
	}
	w.b = w.b[:0]
}

// chunked writes b to out once it is past a chunk.
func (w *jsonWriter) chunked() {
	if w.out != nil && len(w.b) >= chunk {
		w.flush()
	}
}

func (w *jsonWriter) raw(s string) { w.b = append(w.b, s...) }
func (w *jsonWriter) int(v int64)  { w.b = strconv.AppendInt(w.b, v, 10) }

// hexString writes v as a JSON string of hex, a piece at a time when
// streaming (a large buffer field).
func (w *jsonWriter) hexString(v []byte) {
	w.b = append(w.b, '"')
	for w.out != nil && len(v) > chunk {
		w.b = hex.AppendEncode(w.b, v[:chunk])
		v = v[chunk:]
		w.chunked()
	}
	w.b = hex.AppendEncode(w.b, v)
	w.b = append(w.b, '"')
}

// str writes s as a JSON string and reports whether it had to replace
// bytes that are not UTF-8 (JSON text cannot hold them).
func (w *jsonWriter) str(s []byte) (lossy bool) {
	const hexDigits = "0123456789abcdef"
	w.b = append(w.b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				w.b = append(w.b, '\\', c)
			case c < 0x20:
				w.b = append(w.b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				w.b = append(w.b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			w.b = append(w.b, `\ufffd`...)
			lossy = true
		} else {
			w.b = append(w.b, s[i:i+size]...)
		}
		i += size
		if w.out != nil && len(w.b) >= 2*chunk {
			w.flush() // a long name
		}
	}
	w.b = append(w.b, '"')
	return lossy
}

// name writes a template name: the built-in ones need no escaping, and
// are not copied to be checked.
func (w *jsonWriter) name(s string) (lossy bool) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' {
			return w.str([]byte(s))
		}
	}
	w.b = append(w.b, '"')
	w.b = append(w.b, s...)
	w.b = append(w.b, '"')
	return false
}

func orderName(o binary.ByteOrder) string {
	if o == binary.BigEndian {
		return "big-endian"
	}
	return "little-endian"
}

func (w *jsonWriter) document(l *List, entries Entries) {
	w.raw(`{"Kind":"IMA","TemplateHashAlgorithm":"`)
	w.raw(l.HashAlg.String())
	w.raw(`","ByteOrder":"`)
	w.raw(orderName(l.Order))
	w.raw(`","TotalEntries":`)
	w.int(int64(l.Len()))
	w.raw(`,"EntryCount":`)
	w.int(int64(entries.Len()))
	w.raw(`,"FirstEntry":`)
	if first := entries.First(); first != nil {
		w.int(int64(first.Num))
	} else {
		w.int(0)
	}
	w.raw(`,"Entries":[`)
	order := l.Order
	if order == nil {
		order = binary.LittleEndian
	}
	n := 0
	for e := range entries.All() {
		if n > 0 {
			w.raw(",")
		}
		n++
		w.entry(e, order)
		w.chunked()
	}
	w.raw("]}\n")
}

func (w *jsonWriter) entry(e *Entry, order binary.ByteOrder) {
	w.raw(`{"EntryNum":`)
	w.int(int64(e.Num))
	w.raw(`,"Pcr":`)
	w.int(int64(e.PCR))
	w.raw(`,"TemplateHash":`)
	w.hexString(e.TemplateHash)
	w.raw(`,"TemplateName":`)
	lossy := w.name(e.TemplateName)
	if e.Violation() {
		w.raw(`,"Violation":true`)
	} else {
		w.raw(`,"Violation":false`)
	}
	ids, ok := TemplateFields(e.TemplateName)
	if ok && eachField(e, ids, order, nil) == nil {
		w.raw(`,"Fields":{`)
		n := 0
		eachField(e, ids, order, func(id string, data []byte) {
			if n > 0 {
				w.raw(",")
			}
			n++
			w.raw(`"`)
			w.raw(id) // field IDs are the table's: plain ASCII
			w.raw(`":`)
			switch fieldFormats[id] {
			case fmtHex, fmtDigest:
				w.hexString(data)
			default:
				w.text = appendFieldText(w.text[:0], id, data, order)
				lossy = w.str(w.text) || lossy
			}
		})
		w.raw(`}`)
	} else {
		lossy = true
	}
	if lossy {
		w.raw(`,"TemplateData":`)
		w.hexString(e.TemplateData)
	}
	w.raw(`}`)
}
