package ima_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog/ima"
)

// FuzzParse checks what a parse of any bytes gives: a located error, or
// entries that cover the input's start, write back to the same bytes and
// parse again to the same entries; the same entries when the bytes arrive
// in two pieces; and encoders and replay that work on them.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"mixed-le.bin", "mixed-be.bin"} {
		b, err := os.ReadFile(filepath.Join("testdata", "handmade", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, uint16(len(b)/2))
	}
	f.Add(ngList(f, binary.LittleEndian, 12), uint16(100))
	f.Add(ngList(f, binary.BigEndian, 3), uint16(7))
	f.Fuzz(func(t *testing.T, b []byte, split uint16) {
		l, err := ima.Parse(b, ima.Options{})
		if err != nil {
			var fe *ima.FormatError
			if !errors.As(err, &fe) || fe.Offset < 0 || fe.Offset > int64(len(b)) || fe.Entry < 1 {
				t.Fatalf("not a located *FormatError: %v", err)
			}
			return
		}
		if l.Size+int64(l.Pending) != int64(len(b)) {
			t.Fatalf("size %d + pending %d != %d bytes", l.Size, l.Pending, len(b))
		}
		raw := ima.AppendRaw(nil, all(l))
		if !bytes.Equal(raw, b[:l.Size]) {
			t.Fatal("the entries do not write back to the list's bytes")
		}
		again, err := ima.Parse(raw, ima.Options{Order: l.Order})
		if err != nil || len(entries(again)) != len(entries(l)) || again.Pending != 0 {
			t.Fatalf("the complete entries parse again to %v, %v", again, err)
		}

		// Two pieces: the same entries, and the same end.
		p, _ := ima.NewParser(ima.Options{})
		cut := int(split) % (len(b) + 1)
		if _, err := p.Append(bytes.Clone(b[:cut])); err != nil {
			t.Fatalf("first %d bytes: %v", cut, err)
		}
		if _, err := p.Append(bytes.Clone(b[cut:])); err != nil {
			t.Fatalf("after a cut at %d: %v", cut, err)
		}
		pl := p.List()
		if len(entries(pl)) != len(entries(l)) || pl.Size != l.Size || p.Offset() != int64(len(b)) {
			t.Fatalf("in two pieces: %d entries, size %d; whole: %d, %d", len(entries(pl)), pl.Size, len(entries(l)), l.Size)
		}
		le := entries(l)
		for i, e := range entries(pl) {
			if !bytes.Equal(e.Raw, le[i].Raw) || e.Offset != le[i].Offset {
				t.Fatalf("entry %d differs when parsed in two pieces", i+1)
			}
		}

		var d map[string]any
		if err := json.Unmarshal(ima.AppendCCNPJSON(nil, l, all(l)), &d); err != nil {
			t.Fatalf("the JSON does not decode: %v", err)
		}
		if _, err := ima.Replay(l, eventlog.AlgSHA1, eventlog.AlgSHA256); err != nil {
			t.Fatal(err)
		}
		_ = ima.CheckTemplateHashes(l)
		for i, e := range le {
			fields, ok := e.Fields(l.Order)
			if _, known := ima.TemplateFields(e.TemplateName); known != ok {
				t.Fatalf("entry %d: a known template whose fields do not split", i+1)
			}
			for _, f := range fields {
				_ = f.String()
			}
		}
	})
}

// FuzzAppendPieces feeds a list to a Parser in many pieces, of the sizes
// cuts gives (as reads of a growing securityfs file return them), taking a
// List after each: the entries are those of one parse of the whole, and
// every List taken on the way stays the prefix it was, whatever was
// appended after it (the service hands Lists to requests while the parser
// goes on).
func FuzzAppendPieces(f *testing.F) {
	f.Add(ngList(f, binary.LittleEndian, 12), []byte{1, 7, 33, 0, 200, 3})
	f.Add(ngList(f, binary.BigEndian, 5), []byte{13})
	b, err := os.ReadFile(filepath.Join("testdata", "handmade", "mixed-le.bin"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b, []byte{64, 64, 1, 1, 255})
	f.Fuzz(func(t *testing.T, b []byte, cuts []byte) {
		whole, wholeErr := ima.Parse(b, ima.Options{})
		p, _ := ima.NewParser(ima.Options{})
		type taken struct {
			l   *ima.List
			raw []byte
		}
		var lists []taken
		var err error
		for pos, i := 0, 0; pos < len(b); i++ {
			n := len(b) - pos
			if len(cuts) > 0 {
				n = min(int(cuts[i%len(cuts)])+1, n)
			}
			if _, err = p.Append(bytes.Clone(b[pos : pos+n])); err != nil {
				break
			}
			pos += n
			l := p.List()
			lists = append(lists, taken{l, ima.AppendRaw(nil, all(l))})
		}
		if (err == nil) != (wholeErr == nil) {
			t.Fatalf("in pieces: %v; whole: %v", err, wholeErr)
		}
		if err != nil {
			var fe, wfe *ima.FormatError
			if !errors.As(err, &fe) || !errors.As(wholeErr, &wfe) || fe.Entry != wfe.Entry || fe.Offset != wfe.Offset {
				t.Fatalf("in pieces: %v; whole: %v", err, wholeErr)
			}
			return
		}
		got := p.List()
		if !bytes.Equal(ima.AppendRaw(nil, all(got)), ima.AppendRaw(nil, all(whole))) || got.Len() != whole.Len() || got.Pending != whole.Pending {
			t.Fatalf("in pieces: %d entries, %d pending; whole: %d, %d", got.Len(), got.Pending, whole.Len(), whole.Pending)
		}
		for i, tk := range lists {
			if !bytes.Equal(ima.AppendRaw(nil, all(tk.l)), tk.raw) {
				t.Fatalf("the List taken after piece %d changed", i+1)
			}
			if !bytes.HasPrefix(b, tk.raw) {
				t.Fatalf("the List taken after piece %d is not a prefix of the list", i+1)
			}
		}
	})
}
