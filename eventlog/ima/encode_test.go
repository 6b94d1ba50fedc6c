package ima_test

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog/ima"
)

func TestSlice(t *testing.T) {
	l, err := ima.Parse(ngList(t, binary.LittleEndian, 10), ima.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		start, count  int
		first, number int
	}{
		{0, 0, 1, 10}, {1, 0, 1, 10}, {2, 5, 2, 5}, {10, 0, 10, 1}, {10, 5, 10, 1}, {3, 100, 3, 8}, {0, 1, 1, 1},
	} {
		sel, err := l.Slice(c.start, c.count)
		es := collect(sel)
		if err != nil || len(es) != c.number || sel.Len() != c.number || es[0].Num != c.first || sel.First().Num != c.first {
			t.Errorf("Slice(%d, %d) = %d entries from %v, %v", c.start, c.count, len(es), es, err)
		}
	}
	var rangeErr *ima.RangeError
	var tcgRange *eventlog.RangeError
	if _, err := l.Slice(11, 0); !errors.As(err, &rangeErr) || rangeErr.Total != 10 || !errors.As(err, &tcgRange) || !strings.Contains(err.Error(), "has 10 entries") {
		t.Errorf("Slice(11, 0): %v", err)
	}
	for _, c := range [][2]int{{-1, 0}, {0, -1}} {
		if _, err := l.Slice(c[0], c[1]); !errors.Is(err, eventlog.ErrNegative) {
			t.Errorf("Slice(%d, %d): %v", c[0], c[1], err)
		}
	}
	// Across the parser's blocks of entries (64, 128, ... 4096 entries).
	big, err := ima.Parse(ngList(t, binary.LittleEndian, 20_000), ima.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range [][2]int{{1, 0}, {60, 10}, {64, 1}, {65, 1}, {190, 5000}, {5000, 9000}, {19_999, 0}, {1, 20_000}, {8000, 100}} {
		sel, err := big.Slice(c[0], c[1])
		es := collect(sel)
		want := c[1]
		if want == 0 {
			want = 20_000 - c[0] + 1
		}
		if err != nil || len(es) != want || sel.Len() != want {
			t.Fatalf("Slice(%d, %d): %d entries, %v", c[0], c[1], len(es), err)
		}
		for i := range es {
			if es[i].Num != c[0]+i || big.Entry(c[0]+i).Offset != es[i].Offset {
				t.Fatalf("Slice(%d, %d): entry %d is number %d", c[0], c[1], i, es[i].Num)
			}
		}
	}
	if big.Entry(0) != nil || big.Entry(20_001) != nil || big.Entry(20_000).Num != 20_000 {
		t.Error("Entry outside 1..N, or the last")
	}

	empty := &ima.List{}
	if es, err := empty.Slice(0, 0); es.Len() != 0 || es.First() != nil || err != nil {
		t.Errorf("an empty list's Slice(0, 0) = %v, %v", es, err)
	}
	if _, err := empty.Slice(2, 0); !errors.As(err, &rangeErr) {
		t.Errorf("an empty list's Slice(2, 0) = %v", err)
	}
}

// limitWriter fails once it has taken n bytes, and counts its writes.
type limitWriter struct {
	buf    bytes.Buffer
	n      int
	writes int
}

func (w *limitWriter) Write(b []byte) (int, error) {
	w.writes++
	if w.buf.Len()+len(b) > w.n {
		return 0, errors.New("disk full")
	}
	return w.buf.Write(b)
}

func TestRaw(t *testing.T) {
	b := readList(t, "mixed-le.bin")
	l, _ := ima.Parse(b, ima.Options{})
	if got := ima.AppendRaw(nil, all(l)); !bytes.Equal(got, b) {
		t.Fatal("AppendRaw of every entry is not the list")
	}
	sel, _ := l.Slice(3, 4)
	some := collect(sel)
	raw := ima.AppendRaw(nil, sel)
	if !bytes.Equal(raw, b[some[0].Offset:some[3].Offset+int64(len(some[3].Raw))]) || ima.RawSize(sel) != int64(len(raw)) {
		t.Fatal("AppendRaw of entries 3-6 is not their bytes")
	}
	// A slice is a list of its own.
	again, err := ima.Parse(raw, ima.Options{})
	if err != nil || len(entries(again)) != 4 || entries(again)[0].TemplateName != some[0].TemplateName {
		t.Fatalf("a raw slice parses to %v, %v", again, err)
	}

	// Large entries, written in pieces and around the chunk.
	big := ngList(t, binary.LittleEndian, 2000)
	for _, size := range []int{10, 100 << 10, 40 << 10} {
		big = ima.AppendEntryHash(big, binary.LittleEndian, 10, make([]byte, 20), "ima-x", bytes.Repeat([]byte{1}, size))
	}
	bl, err := ima.Parse(big, ima.Options{})
	if err != nil {
		t.Fatal(err)
	}
	w := &limitWriter{n: 1 << 30}
	if err := ima.WriteRaw(w, all(bl)); err != nil || !bytes.Equal(w.buf.Bytes(), big) {
		t.Fatalf("WriteRaw: %v, %d bytes of %d", err, w.buf.Len(), len(big))
	}
	if w.writes > len(big)/(16<<10) {
		t.Errorf("WriteRaw made %d writes for %d bytes", w.writes, len(big))
	}
	if err := ima.WriteRaw(&limitWriter{n: 1000}, all(bl)); err == nil || err.Error() != "disk full" {
		t.Errorf("WriteRaw to a full disk: %v", err)
	}
}

// decodedList is the JSON document, as a client decodes it.
type decodedList struct {
	Kind                  string
	TemplateHashAlgorithm string
	ByteOrder             string
	TotalEntries          int
	EntryCount            int
	FirstEntry            int
	Entries               []struct {
		EntryNum     int
		Pcr          uint32
		TemplateHash string
		TemplateName string
		Violation    bool
		Fields       map[string]string
		TemplateData *string
	}
}

func TestCCNPJSON(t *testing.T) {
	exp := readExpected(t)
	for _, el := range exp.Lists {
		l, err := ima.Parse(readList(t, el.File), ima.Options{HashAlg: mustAlg(t, el.HashAlg)})
		if err != nil {
			t.Fatal(err)
		}
		out := ima.AppendCCNPJSON(nil, l, all(l))
		var d decodedList
		if err := json.Unmarshal(out, &d); err != nil {
			t.Fatalf("%s: %v\n%s", el.File, err, out)
		}
		if d.Kind != "IMA" || d.TemplateHashAlgorithm != el.HashAlg || d.ByteOrder != el.ByteOrder || d.TotalEntries != len(el.Entries) ||
			d.EntryCount != len(el.Entries) || d.FirstEntry != 1 || len(d.Entries) != len(el.Entries) {
			t.Fatalf("%s: header %+v", el.File, d)
		}
		for i, want := range el.Entries {
			got := d.Entries[i]
			if got.EntryNum != want.Num || got.Pcr != want.PCR || got.TemplateHash != want.TemplateHash || got.TemplateName != want.TemplateName || got.Violation != want.Violation {
				t.Errorf("%s entry %d: %+v, want %+v", el.File, i+1, got, want)
			}
			if want.Fields == nil {
				// An unknown template: its data, as hex.
				if got.Fields != nil || got.TemplateData == nil || *got.TemplateData != want.TemplateData {
					t.Errorf("%s entry %d (%s): fields %v data %v", el.File, i+1, want.TemplateName, got.Fields, got.TemplateData)
				}
				continue
			}
			if !mapsEqual(got.Fields, want.Fields) || got.TemplateData != nil {
				t.Errorf("%s entry %d fields:\n got %q (data %v)\nwant %q", el.File, i+1, got.Fields, got.TemplateData, want.Fields)
			}
		}

		// A slice; streamed, and its size told beforehand.
		some, _ := l.Slice(2, 3)
		part := ima.AppendCCNPJSON(nil, l, some)
		if err := json.Unmarshal(part, &d); err != nil || d.EntryCount != 3 || d.FirstEntry != 2 || d.TotalEntries != len(el.Entries) || d.Entries[2].EntryNum != 4 {
			t.Errorf("%s: slice 2+3: %+v %v", el.File, d, err)
		}
		var buf bytes.Buffer
		if err := ima.WriteCCNPJSON(&buf, l, all(l)); err != nil || !bytes.Equal(buf.Bytes(), out) {
			t.Errorf("%s: WriteCCNPJSON differs from AppendCCNPJSON (%v)", el.File, err)
		}
		if n := ima.CCNPJSONSize(l, some); n != int64(len(part)) {
			t.Errorf("%s: CCNPJSONSize %d, the document has %d bytes", el.File, n, len(part))
		}
	}
}

func TestCCNPJSONNotUTF8(t *testing.T) {
	o := binary.LittleEndian
	name := "/tmp/\xff\xfe latin-1 caf\xe9"
	b, _ := ima.AppendEntry(nil, o, eventlog.AlgSHA1, 10, "ima-ng", ima.NgData(o, "sha256", make([]byte, 32), name))
	b, _ = ima.AppendEntry(b, o, eventlog.AlgSHA1, 10, "\x01odd\"name", []byte{1, 2})
	l, err := ima.Parse(b, ima.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var d decodedList
	if err := json.Unmarshal(ima.AppendCCNPJSON(nil, l, all(l)), &d); err != nil {
		t.Fatal(err)
	}
	e := d.Entries[0]
	if e.Fields["n-ng"] != "/tmp/\ufffd\ufffd latin-1 caf\ufffd" || e.TemplateData == nil || *e.TemplateData != hex.EncodeToString(entries(l)[0].TemplateData) {
		t.Errorf("a name that is not UTF-8: %q, data %v", e.Fields["n-ng"], e.TemplateData)
	}
	if d.Entries[1].TemplateName != "\x01odd\"name" || d.Entries[1].Fields != nil {
		t.Errorf("an odd template name: %+v", d.Entries[1])
	}
}

// A large buffer field is written in pieces: the writer never holds it whole.
func TestCCNPJSONLargeField(t *testing.T) {
	o := binary.LittleEndian
	buf := bytes.Repeat([]byte{0xab}, 300<<10)
	data := ima.AppendField(ima.AppendField(ima.AppendField(nil, o, ima.DigestField("sha256", make([]byte, 32))), o, ima.NameField("big")), o, buf)
	b, _ := ima.AppendEntry(nil, o, eventlog.AlgSHA1, 10, "ima-buf", data)
	l, err := ima.Parse(b, ima.Options{})
	if err != nil {
		t.Fatal(err)
	}
	w := &maxWriteWriter{}
	if err := ima.WriteCCNPJSON(w, l, all(l)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(w.buf.Bytes(), ima.AppendCCNPJSON(nil, l, all(l))) {
		t.Fatal("streamed and appended documents differ")
	}
	if w.max > 128<<10 {
		t.Errorf("a write of %d bytes: the encoder held the field whole", w.max)
	}
}

type maxWriteWriter struct {
	buf bytes.Buffer
	max int
}

func (w *maxWriteWriter) Write(b []byte) (int, error) {
	w.max = max(w.max, len(b))
	return w.buf.Write(b)
}
