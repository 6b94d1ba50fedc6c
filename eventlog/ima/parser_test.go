package ima_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog/ima"
)

// ngList builds an ima-ng list of n entries after a boot_aggregate, with a
// violation at every tenth.
func ngList(t testing.TB, o binary.ByteOrder, n int) []byte {
	t.Helper()
	var b []byte
	for i := range n {
		name := fmt.Sprintf("/usr/lib/x86_64-linux-gnu/libexample-%d.so.%d", i, i%7)
		if i == 0 {
			name = ima.BootAggregateName
		}
		digest := bytes.Repeat([]byte{byte(i), byte(i >> 8)}, 16)
		data := ima.NgData(o, "sha256", digest, name)
		if i%10 == 9 {
			b = ima.AppendViolation(b, o, 20, 10, "ima-ng", ima.NgData(o, "sha256", make([]byte, 32), name))
			continue
		}
		var err error
		if b, err = ima.AppendEntry(b, o, eventlog.AlgSHA1, 10, "ima-ng", data); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

func sameEntries(t *testing.T, got, want []ima.Entry) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d entries, want %d", len(got), len(want))
	}
	for i := range got {
		g, w := &got[i], &want[i]
		if g.Num != w.Num || g.Offset != w.Offset || g.PCR != w.PCR || g.TemplateName != w.TemplateName ||
			!bytes.Equal(g.TemplateHash, w.TemplateHash) || !bytes.Equal(g.TemplateData, w.TemplateData) || !bytes.Equal(g.Raw, w.Raw) {
			t.Fatalf("entry %d differs:\n got %+v\nwant %+v", i+1, g, w)
		}
	}
}

// A list read while the kernel appends ends inside an entry: every prefix
// parses to the entries it holds whole, and the rest is pending.
func TestTornList(t *testing.T) {
	for _, name := range []string{"mixed-le.bin", "mixed-be.bin"} {
		b := readList(t, name)
		whole, err := ima.Parse(b, ima.Options{})
		if err != nil {
			t.Fatal(err)
		}
		for n := 0; n <= len(b); n++ {
			l, err := ima.Parse(b[:n], ima.Options{})
			if err != nil {
				t.Fatalf("%s: prefix of %d bytes: %v", name, n, err)
			}
			k := 0
			for k < whole.Len() && whole.Entry(k+1).Offset+int64(len(whole.Entry(k+1).Raw)) <= int64(n) {
				k++
			}
			sameEntries(t, entries(l), entries(whole)[:k])
			if l.Size+int64(l.Pending) != int64(n) {
				t.Fatalf("%s: prefix of %d bytes: size %d + pending %d", name, n, l.Size, l.Pending)
			}
		}
	}
}

// The parser grows with the list: fed in pieces of any size, it parses the
// same entries as a whole parse, each once, and a List it returned earlier
// still holds the same entries, aliasing the same bytes.
func TestGrowingList(t *testing.T) {
	b := ngList(t, binary.LittleEndian, 500)
	whole, err := ima.Parse(b, ima.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for round := range 20 {
		p, err := ima.NewParser(ima.Options{})
		if err != nil {
			t.Fatal(err)
		}
		var snapshots []*ima.List
		total := 0
		for off := 0; off < len(b); {
			n := 1 + r.IntN(1+[]int{3, 60, 300, 5000}[round%4])
			end := min(off+n, len(b))
			// A fresh copy each time, as a read into a new buffer gives.
			added, err := p.Append(bytes.Clone(b[off:end]))
			if err != nil {
				t.Fatal(err)
			}
			total += added
			off = end
			if p.Offset() != int64(off) {
				t.Fatalf("Offset %d after %d bytes", p.Offset(), off)
			}
			if len(snapshots) < 200 || r.IntN(50) == 0 {
				snapshots = append(snapshots, p.List())
			}
		}
		if total != len(entries(whole)) || p.Len() != total {
			t.Fatalf("Append reported %d new entries (Len %d), the list has %d", total, p.Len(), len(entries(whole)))
		}
		last := p.List()
		sameEntries(t, entries(last), entries(whole))
		lastEntries := entries(last)
		for _, s := range snapshots {
			i := 0
			for e := range s.All() {
				if &e.Raw[0] != &lastEntries[i].Raw[0] || s.Entry(i+1) != e {
					t.Fatalf("entry %d was parsed again: an earlier List's copy aliases other bytes", i+1)
				}
				i++
			}
			if i != s.Len() {
				t.Fatalf("All yielded %d entries of %d", i, s.Len())
			}
		}
	}
}

func TestAppendNothing(t *testing.T) {
	p, _ := ima.NewParser(ima.Options{})
	if n, err := p.Append(nil); n != 0 || err != nil || p.Offset() != 0 {
		t.Fatalf("Append(nil) = %d, %v", n, err)
	}
	l := p.List()
	if len(entries(l)) != 0 || l.Order != nil {
		t.Fatalf("an empty list: %+v", l)
	}
	if _, err := ima.NewParser(ima.Options{HashAlg: eventlog.Alg(0x99)}); err == nil {
		t.Error("a parser of an unknown template hash algorithm")
	}
}

// Append must not write into the caller's array past what it was given.
func TestAppendLeavesCallerBytes(t *testing.T) {
	b := ngList(t, binary.LittleEndian, 3)
	buf := make([]byte, len(b)-5, len(b)+100)
	copy(buf, b)
	canary := bytes.Repeat([]byte{0xAA}, 100)
	copy(buf[len(buf):cap(buf)], canary)
	p, _ := ima.NewParser(ima.Options{})
	if _, err := p.Append(buf); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Append(bytes.Clone(b[len(b)-5:])); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf[len(buf):cap(buf)][:100], canary) {
		t.Error("Append wrote past the end of the caller's slice")
	}
	if p.Len() != 3 {
		t.Errorf("%d entries, want 3", p.Len())
	}
}

func TestByteOrder(t *testing.T) {
	le, be := readList(t, "mixed-le.bin"), readList(t, "mixed-be.bin")
	for _, c := range []struct {
		name  string
		b     []byte
		order binary.ByteOrder
		ok    bool
	}{
		{"little-endian read as big-endian", le, binary.BigEndian, false},
		{"big-endian read as little-endian", be, binary.LittleEndian, false},
		{"little-endian forced", le, binary.LittleEndian, true},
		{"big-endian forced", be, binary.BigEndian, true},
	} {
		l, err := ima.Parse(c.b, ima.Options{Order: c.order})
		if (err == nil) != c.ok {
			t.Errorf("%s: %v", c.name, err)
		}
		if err == nil && l.Order != c.order {
			t.Errorf("%s: order %v", c.name, l.Order)
		}
	}
	// PCR 0 and an empty template name would read alike both ways; no
	// template is nameless, and a run of zeros is no list.
	for _, b := range [][]byte{ima.AppendEntryHash(nil, binary.BigEndian, 0, make([]byte, 20), "", nil), make([]byte, 4096)} {
		if _, err := ima.Parse(b, ima.Options{}); err == nil || !strings.Contains(err.Error(), "entry 1 at byte offset 0: template name size 0") {
			t.Errorf("a nameless entry: %v", err)
		}
	}
	// PCR 0 in big-endian is told by its name size.
	be0, _ := ima.AppendEntry(nil, binary.BigEndian, eventlog.AlgSHA1, 0, "ima-ng", ima.NgData(binary.BigEndian, "sha1", make([]byte, 20), "x"))
	if l, err := ima.Parse(be0, ima.Options{}); err != nil || l.Order != binary.BigEndian {
		t.Errorf("big-endian PCR 0: %v %v", l, err)
	}
}

// Damaged lists are refused where they are damaged, with the entry number
// and byte offset, as an error that also reads as an *eventlog.FormatError.
func TestFormatErrors(t *testing.T) {
	o := binary.LittleEndian
	good := ngList(t, o, 3)
	third := int64(0)
	if l, _ := ima.Parse(good, ima.Options{}); len(entries(l)) == 3 {
		third = entries(l)[2].Offset
	}
	at := func(off int64, patch func(b []byte)) []byte {
		b := bytes.Clone(good)
		patch(b[off:])
		return b
	}
	nameSizeAt := int64(4 + 20)
	for _, c := range []struct {
		name   string
		b      []byte
		entry  int
		offset int64
		reason string
	}{
		{"first entry implausible both ways", at(0, func(b []byte) { o.PutUint32(b, 0x01020304) }), 1, 0, "neither byte order"},
		{"PCR past 63", at(third, func(b []byte) { o.PutUint32(b, 64) }), 3, third, "PCR index 64"},
		{"template name size", at(third+nameSizeAt, func(b []byte) { o.PutUint32(b, 256) }), 3, third, "template name size 256"},
		{"template data size", at(third+nameSizeAt+4+6, func(b []byte) { o.PutUint32(b, 1<<20+1) }), 3, third, "template data size 1048577"},
		{"field size", at(third+nameSizeAt+4+6+4, func(b []byte) { o.PutUint32(b, 0xfffffff0) }), 3, third, "field 1 (d-ng) size"},
	} {
		l, err := ima.Parse(c.b, ima.Options{})
		var fe *ima.FormatError
		if !errors.As(err, &fe) || fe.Entry != c.entry || fe.Offset != c.offset || !strings.Contains(fe.Reason, c.reason) {
			t.Errorf("%s: %v (%v)", c.name, err, l)
			continue
		}
		var tcg *eventlog.FormatError
		if !errors.As(err, &tcg) || tcg.Event != c.entry || int64(tcg.Offset) != c.offset {
			t.Errorf("%s: not an *eventlog.FormatError: %v", c.name, err)
		}
		// The parser keeps what came before, and stops for good.
		p, _ := ima.NewParser(ima.Options{})
		if _, err2 := p.Append(c.b); err2 == nil || p.Len() != c.entry-1 {
			t.Errorf("%s: parser has %d entries after %v", c.name, p.Len(), err2)
		}
		if _, err3 := p.Append(good); err3 == nil || err3.Error() != err.Error() {
			t.Errorf("%s: the error did not stick: %v", c.name, err3)
		}
	}
	// Fields that leave template data over: a damaged entry too.
	data := append(ima.NgData(o, "sha256", make([]byte, 32), "x"), 0)
	extra, _ := ima.AppendEntry(nil, o, eventlog.AlgSHA1, 10, "ima-ng", data)
	if _, err := ima.Parse(extra, ima.Options{}); err == nil || !strings.Contains(err.Error(), "1 bytes of template data after its 2 fields") {
		t.Errorf("trailing template data: %v", err)
	}
	// An unknown template's data is not checked: it is bytes.
	if _, err := ima.Parse(ima.AppendEntryHash(nil, o, 10, make([]byte, 20), "ima-ns", []byte{1, 2, 3}), ima.Options{}); err != nil {
		t.Errorf("unknown template: %v", err)
	}
	// An "ima" template name longer than the kernel's 255 bytes.
	long := ima.IMAData(o, [20]byte{1}, strings.Repeat("a", 256))
	if _, err := ima.Parse(ima.AppendEntryHash(nil, o, 10, make([]byte, 20), "ima", long), ima.Options{}); err == nil || !strings.Contains(err.Error(), "file name size 256") {
		t.Errorf(`"ima" template name of 256 bytes: %v`, err)
	}
}

// An entry arriving in small pieces is waited for, and completes when its
// last byte comes, however large (up to the parser's limit).
func TestLargeEntryInPieces(t *testing.T) {
	o := binary.LittleEndian
	data := bytes.Repeat([]byte{7}, 1<<20)
	b := ima.AppendEntryHash(nil, o, 10, bytes.Repeat([]byte{1}, 20), "ima-x", data)
	p, _ := ima.NewParser(ima.Options{})
	for off := 0; off < len(b); off += 1000 {
		if p.Len() != 0 {
			t.Fatalf("an entry completed after %d of its %d bytes", off, len(b))
		}
		if _, err := p.Append(bytes.Clone(b[off:min(off+1000, len(b))])); err != nil {
			t.Fatal(err)
		}
	}
	l := p.List()
	if len(entries(l)) != 1 || !bytes.Equal(entries(l)[0].Raw, b) || l.Pending != 0 {
		t.Fatalf("%d entries, pending %d", len(entries(l)), l.Pending)
	}
}
