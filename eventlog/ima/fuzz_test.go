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
