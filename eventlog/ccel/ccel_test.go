package ccel_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog/ccel"
)

const corpusDir = "../testdata/corpus/tdx"

func readTable(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(corpusDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCorpusTables parses the CCEL tables captured next to their log areas.
func TestCorpusTables(t *testing.T) {
	for _, tc := range []struct {
		table, data string
		laml, lasa  uint64
	}{
		{"cos-113-tdx.table.bin", "cos-113-tdx.data.bin", 256 << 10, 0xbedbf000},
		{"ovmf-64k.table.bin", "ovmf-64k.data.bin", 64 << 10, 0x7d649000},
	} {
		t.Run(tc.table, func(t *testing.T) {
			b := readTable(t, tc.table)
			tab, err := ccel.Parse(b)
			if err != nil {
				t.Fatal(err)
			}
			if tab.CCType != ccel.TypeTDX || tab.CCTypeName() != "TDX" {
				t.Errorf("CC type %d (%s), want 2 (TDX)", tab.CCType, tab.CCTypeName())
			}
			if tab.LAML != tc.laml || tab.LASA != tc.lasa {
				t.Errorf("LAML %d LASA %#x, want %d %#x", tab.LAML, tab.LASA, tc.laml, tc.lasa)
			}
			// sysfs data/CCEL is the whole log area: LAML bytes.
			if area := readTable(t, tc.data); uint64(len(area)) != tab.LAML {
				t.Errorf("the log area is %d bytes, LAML says %d", len(area), tab.LAML)
			}
			if tab.OEMID != "INTEL" || tab.OEMTableID != "EDK2" || tab.Revision != 1 {
				t.Errorf("OEM %q %q revision %d, want INTEL EDK2 1", tab.OEMID, tab.OEMTableID, tab.Revision)
			}
			// The captured tables use exactly the encoding Marshal writes.
			if m := tab.Marshal(); !bytes.Equal(m, b) {
				t.Errorf("Marshal:\n% x\nwant\n% x", m, b)
			}
		})
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	for _, tab := range []ccel.Table{
		{},
		{Revision: 1, OEMID: "INTEL", OEMTableID: "EDK2", OEMRevision: 2, CreatorID: "ACPI", CreatorRevision: 0x1000013, CCType: ccel.TypeTDX, LAML: 64 << 10, LASA: 0x7d649000},
		{Revision: 0xFF, OEMID: "ABCDEF", OEMTableID: "12345678", OEMRevision: 0xFFFFFFFF, CreatorID: "WXYZ", CreatorRevision: 0xFFFFFFFF, CCType: ccel.TypeSEV, CCSubType: 9, LAML: 1<<64 - 1, LASA: 1<<64 - 1},
	} {
		b := tab.Marshal()
		if len(b) != ccel.TableSize {
			t.Fatalf("Marshal wrote %d bytes", len(b))
		}
		got, err := ccel.Parse(b)
		if err != nil {
			t.Fatalf("%+v: %v", tab, err)
		}
		if *got != tab {
			t.Errorf("round trip gave %+v, want %+v", *got, tab)
		}
	}
}

// TestParseRejects: each way a table can be bad has its own error, naming
// the byte offset of the bad field.
func TestParseRejects(t *testing.T) {
	good := (&ccel.Table{Revision: 1, OEMID: "INTEL", CCType: ccel.TypeTDX, LAML: 64 << 10, LASA: 0x1000}).Marshal()
	with := func(f func(b []byte)) []byte {
		b := bytes.Clone(good)
		f(b)
		return b
	}
	for _, tc := range []struct {
		name   string
		input  []byte
		offset int
		reason string
	}{
		{"empty", nil, 0, "truncated: 0 bytes, a CCEL table has 56"},
		{"short", good[:55], 55, "truncated: 55 bytes"},
		{"bad signature", with(func(b []byte) { copy(b, "TPM2") }), 0, `signature is "TPM2"`},
		{"length below 56", with(func(b []byte) { b[4] = 36; b[9] += 20 }), 4, "length field says 36 bytes"},
		{"length past the input", with(func(b []byte) { b[4] = 57; b[9]-- }), 4, "length field says 57 bytes, the table has 56"},
		{"length of 4 GiB", with(func(b []byte) { copy(b[4:], []byte{0xFF, 0xFF, 0xFF, 0xFF}) }), 4, "length field says 4294967295"},
		{"bad checksum", with(func(b []byte) { b[9]++ }), 9, "leaves a sum of 0x01"},
		{"changed field", with(func(b []byte) { b[48]++ }), 9, "not 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tab, err := ccel.Parse(tc.input)
			if err == nil {
				t.Fatalf("parsed %+v", tab)
			}
			var ce *ccel.Error
			if !errors.As(err, &ce) {
				t.Fatalf("error %v (%T) is not a *ccel.Error", err, err)
			}
			if ce.Offset != tc.offset || !strings.Contains(ce.Reason, tc.reason) {
				t.Errorf("error at offset %d %q, want offset %d and %q", ce.Offset, ce.Reason, tc.offset, tc.reason)
			}
			if !strings.Contains(err.Error(), "byte offset") {
				t.Errorf("message %q does not say where", err)
			}
		})
	}
	// A longer table (a later revision may add fields) is accepted when its
	// length and checksum cover it.
	longer := append(bytes.Clone(good), 0, 0, 0, 0)
	longer[4] = 60
	longer[9] -= 4
	if _, err := ccel.Parse(longer); err != nil {
		t.Errorf("a 60-byte table: %v", err)
	}
}
