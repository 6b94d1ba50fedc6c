package eventlog

import (
	"encoding/base64"
	"encoding/hex"
	"io"
	"strconv"
)

// JSONOptions says what AppendCCNPJSON cannot learn from the log itself.
type JSONOptions struct {
	Kind Kind
	// Address is the physical address of the log area (the CCEL table's
	// LASA), reported as the header's Address; 0 when unknown.
	Address uint64
}

// AppendCCNPJSON appends the log's header and the given events in the JSON
// format of the CCNP eventlog server, which the upstream CCNP SDKs read:
// top-level Header and EventLogs with the upstream field names and encodings
// (byte fields in base64, each digest as Go prints a byte slice, "Rtmr" =
// CC MR index - 1 for TDX, "Pcr" for TPM). Readable additions sit beside
// them: EventNum, TypeName, Register, DigestsHex (hex by algorithm name), the
// decoded SpecID, and at top level Kind, TotalEvents, EventCount, FirstEvent.
//
// It is written by hand rather than with encoding/json because it is on the
// service's request path; the tests check it against encoding/json decoding.
func AppendCCNPJSON(dst []byte, l *Log, events []Event, o JSONOptions) []byte {
	w := jsonWriter{b: dst}
	w.ccnp(l, events, o)
	return w.b
}

// WriteCCNPJSON writes what AppendCCNPJSON appends to out, in chunks of
// about jsonChunk bytes: the whole is never in memory, however many events
// and however large their data (a log's JSON is several times its size).
func WriteCCNPJSON(out io.Writer, l *Log, events []Event, o JSONOptions) error {
	w := jsonWriter{b: make([]byte, 0, 2*jsonChunk), out: out}
	w.ccnp(l, events, o)
	w.flush()
	return w.err
}

// CCNPJSONSize is the length of what AppendCCNPJSON appends, computed
// without encoding: it is what a reply will take, known before anything is
// allocated or written.
func CCNPJSONSize(l *Log, events []Event, o JSONOptions) int64 {
	w := jsonWriter{count: true}
	w.ccnp(l, events, o)
	return w.n
}

// ccnp writes the document; AppendCCNPJSON says what it holds.
func (w *jsonWriter) ccnp(l *Log, events []Event, o JSONOptions) {
	w.raw(`{"Header":{"Address":`)
	w.uint(o.Address)
	h := &l.Header
	w.raw(`,"Length":`)
	w.int(len(h.Raw))
	w.raw(`,"HeaderData":`)
	w.base64(h.Raw)
	w.raw(`,`)
	w.register(o.Kind, h.Index)
	w.raw(`,"Etype":`)
	w.uint(uint64(h.Type))
	w.raw(`,"DigestCount":`)
	w.int(len(h.Digests))
	w.raw(`,"DigestSizes":{`)
	if s := l.SpecID; s != nil {
		for i, a := range s.Algs {
			w.comma(i)
			w.raw(`"`)
			w.uint(uint64(a.Alg))
			w.raw(`":`)
			w.uint(uint64(a.Size))
		}
	} else {
		w.raw(`"4":20`)
	}
	w.raw(`}`)
	w.readable(o.Kind, h)
	if s := l.SpecID; s != nil {
		w.raw(`,"SpecID":{"Signature":"`)
		w.raw(s.Signature)
		w.raw(`","PlatformClass":`)
		w.uint(uint64(s.PlatformClass))
		w.raw(`,"SpecVersion":"`)
		w.uint(uint64(s.VersionMajor))
		w.raw(`.`)
		w.uint(uint64(s.VersionMinor))
		w.raw(`.`)
		w.uint(uint64(s.Errata))
		w.raw(`","UintnSize":`)
		w.uint(uint64(s.UintnSize))
		w.raw(`,"Algorithms":[`)
		for i, a := range s.Algs {
			w.comma(i)
			w.raw(`{"AlgorithmId":`)
			w.uint(uint64(a.Alg))
			w.raw(`,"Name":"`)
			w.raw(a.Alg.String())
			w.raw(`","DigestSize":`)
			w.uint(uint64(a.Size))
			w.raw(`}`)
		}
		w.raw(`],"VendorInfo":`)
		w.base64(s.VendorInfo)
		w.raw(`}`)
	}
	w.raw(`},"EventLogs":[`)
	for i := range events {
		e := &events[i]
		w.comma(i)
		w.raw(`{`)
		w.register(o.Kind, e.Index)
		w.raw(`,"Etype":`)
		w.uint(uint64(e.Type))
		w.raw(`,"DigestCount":`)
		w.int(len(e.Digests))
		w.raw(`,"Digests":[`)
		for j, d := range e.Digests {
			w.comma(j)
			w.goBytes(d.Value)
		}
		w.raw(`],"Data":`)
		w.base64(e.Raw)
		w.raw(`,"Event":`)
		w.base64(e.Data)
		w.raw(`,"Length":`)
		w.int(len(e.Raw))
		w.raw(`,"EventSize":`)
		w.int(len(e.Data))
		w.raw(`,"AlgorithmId":`)
		var alg Alg
		if len(e.Digests) > 0 {
			alg = e.Digests[len(e.Digests)-1].Alg
		}
		w.uint(uint64(alg))
		w.readable(o.Kind, e)
		w.raw(`}`)
		w.chunked()
	}
	w.raw(`],"Kind":"`)
	w.raw(o.Kind.String())
	w.raw(`","TotalEvents":`)
	w.int(len(l.Events))
	w.raw(`,"EventCount":`)
	w.int(len(events))
	w.raw(`,"FirstEvent":`)
	if len(events) > 0 {
		w.int(events[0].Num)
	} else {
		w.int(0)
	}
	w.raw("}\n")
}

// jsonChunk is about how much WriteCCNPJSON holds before it writes.
const jsonChunk = 32 << 10

// jsonWriter appends to b. With out, it writes b to out whenever b is past
// jsonChunk (at event boundaries, and within a large byte field); with
// count, it appends nothing and counts in n the bytes it would have.
type jsonWriter struct {
	b     []byte
	out   io.Writer
	err   error // out's first error; nothing is written after it
	count bool
	n     int64
}

// chunked writes b to out once it is past jsonChunk.
func (w *jsonWriter) chunked() {
	if w.out != nil && len(w.b) >= jsonChunk {
		w.flush()
	}
}

func (w *jsonWriter) flush() {
	if w.err == nil && len(w.b) > 0 {
		_, w.err = w.out.Write(w.b)
	}
	w.b = w.b[:0]
}

func (w *jsonWriter) raw(s string) {
	if w.count {
		w.n += int64(len(s))
		return
	}
	w.b = append(w.b, s...)
}

func (w *jsonWriter) int(v int) {
	if w.count {
		var d [20]byte
		w.n += int64(len(strconv.AppendInt(d[:0], int64(v), 10)))
		return
	}
	w.b = strconv.AppendInt(w.b, int64(v), 10)
}

func (w *jsonWriter) uint(v uint64) {
	if w.count {
		w.n += int64(decimalLen(v))
		return
	}
	w.b = strconv.AppendUint(w.b, v, 10)
}

func (w *jsonWriter) comma(i int) {
	if i > 0 {
		w.raw(",")
	}
}

// decimalLen is the number of digits of v in decimal.
func decimalLen(v uint64) int {
	n := 1
	for ; v >= 10; v /= 10 {
		n++
	}
	return n
}

// base64 writes v as a JSON string in standard base64. Streaming, a large v
// is encoded a piece at a time: pieces of a multiple of 3 bytes encode to
// the same text as the whole.
func (w *jsonWriter) base64(v []byte) {
	if w.count {
		w.n += int64(2 + base64.StdEncoding.EncodedLen(len(v)))
		return
	}
	w.b = append(w.b, '"')
	if w.out != nil {
		const piece = jsonChunk / 4 * 3
		for len(v) > piece {
			w.chunked()
			w.b = base64.StdEncoding.AppendEncode(w.b, v[:piece])
			v = v[piece:]
		}
		w.chunked()
	}
	w.b = base64.StdEncoding.AppendEncode(w.b, v)
	w.b = append(w.b, '"')
}

// goBytes writes v as fmt's %v prints a byte slice ("[1 2 3]"): the upstream
// server's digest encoding, which the upstream SDKs expect. v is a digest,
// whose size the Spec ID event says (a u16): it is not written in pieces.
func (w *jsonWriter) goBytes(v []byte) {
	if w.count {
		w.n += int64(4 + max(len(v)-1, 0)) // quotes, brackets, spaces
		for _, c := range v {
			w.n += int64(byteDecimalLen(c))
		}
		return
	}
	// Digits appended as bytes, not converted: a reply writes every byte
	// of every digest this way, and a 1 MiB log's are 240,000 numbers.
	b := append(w.b, `"[`...)
	for i, c := range v {
		if i > 0 {
			b = append(b, ' ')
		}
		switch {
		case c >= 100:
			b = append(b, '0'+c/100, '0'+c/10%10, '0'+c%10)
		case c >= 10:
			b = append(b, '0'+c/10, '0'+c%10)
		default:
			b = append(b, '0'+c)
		}
	}
	w.b = append(b, `]"`...)
}

// byteDecimalLen is the number of decimal digits of c.
func byteDecimalLen(c byte) int {
	switch {
	case c >= 100:
		return 3
	case c >= 10:
		return 2
	}
	return 1
}

// register writes the upstream register field: Rtmr (CC MR index - 1, as a
// uint32, so the header's index 0 wraps as it does upstream) or Pcr.
func (w *jsonWriter) register(k Kind, index uint32) {
	if k == TDX {
		w.raw(`"Rtmr":`)
		w.uint(uint64(index - 1))
		return
	}
	w.raw(`"Pcr":`)
	w.uint(uint64(index))
}

// readable writes the fields this project adds to every event.
func (w *jsonWriter) readable(k Kind, e *Event) {
	w.raw(`,"EventNum":`)
	w.int(e.Num)
	w.raw(`,"TypeName":"`)
	w.raw(e.Type.String())
	w.raw(`","Register":"`)
	w.raw(k.RegisterName(e.Index))
	w.raw(`","DigestsHex":{`)
	for i, d := range e.Digests {
		w.comma(i)
		w.raw(`"`)
		w.raw(d.Alg.String())
		w.raw(`":"`)
		if w.count {
			w.n += int64(hex.EncodedLen(len(d.Value)))
		} else {
			w.b = hex.AppendEncode(w.b, d.Value)
		}
		w.raw(`"`)
	}
	w.raw(`}`)
}
