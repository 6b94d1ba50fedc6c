package efi

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"hash/crc32"
	"testing"
)

func TestGUID(t *testing.T) {
	// EFI_GLOBAL_VARIABLE as it appears in real event logs.
	want, _ := hex.DecodeString("61dfe48bca93d211aa0d00e098032b8c")
	if !bytes.Equal(GlobalVariable[:], want) {
		t.Errorf("GlobalVariable = %x, want %x", GlobalVariable[:], want)
	}
	if s := GlobalVariable.String(); s != "8be4df61-93ca-11d2-aa0d-00e098032b8c" {
		t.Errorf("String() = %s", s)
	}
	for _, bad := range []string{"", "8be4df61-93ca-11d2-aa0d", "8be4df61-93ca-11d2-aa0d-00e098032b8z"} {
		if _, err := ParseGUID(bad); err == nil {
			t.Errorf("ParseGUID(%q) succeeded", bad)
		}
	}
	g := GUIDFromBytes([16]byte{0: 1, 7: 0xff, 8: 0xff})
	if s := g.String(); s[14] != '4' || (s[19] != '8' && s[19] != '9' && s[19] != 'a' && s[19] != 'b') {
		t.Errorf("GUIDFromBytes gave %s, not a version 4 RFC 4122 GUID", s)
	}
}

func TestVariableData(t *testing.T) {
	d := AppendVariableData(nil, GlobalVariable, "SecureBoot", []byte{1})
	// 16 GUID + 8 name length + 8 data length + 10 UTF-16 chars + 1 byte.
	if len(d) != 53 || binary.LittleEndian.Uint64(d[16:]) != 10 || binary.LittleEndian.Uint64(d[24:]) != 1 || d[52] != 1 {
		t.Errorf("UEFI_VARIABLE_DATA = %x", d)
	}
	if string(d[32:34]) != "S\x00" {
		t.Errorf("name is not UTF-16LE: %x", d[32:52])
	}
}

func TestSignatureList(t *testing.T) {
	owner := MustGUID("11111111-2222-3333-4444-555555555555")
	l := AppendSignatureList(nil, CertSHA256, []Signature{{owner, make([]byte, 32)}, {owner, make([]byte, 32)}})
	if len(l) != 28+2*48 || binary.LittleEndian.Uint32(l[16:]) != uint32(len(l)) || binary.LittleEndian.Uint32(l[24:]) != 48 {
		t.Errorf("EFI_SIGNATURE_LIST = %x", l)
	}
}

func TestDevicePath(t *testing.T) {
	p := DevicePath(nil).ACPI(0x0a03, 0).PCI(3, 0).File(`\A`).End()
	// Walk the nodes by their lengths: they must end exactly at the end node.
	var types []byte
	for off := 0; off < len(p); {
		if off+4 > len(p) {
			t.Fatalf("node at %d overruns the path", off)
		}
		types = append(types, p[off])
		n := int(binary.LittleEndian.Uint16(p[off+2:]))
		if n < 4 {
			t.Fatalf("node at %d has length %d", off, n)
		}
		if p[off] == 0x7f {
			if off+n != len(p) {
				t.Errorf("end node at %d is not last", off)
			}
			break
		}
		off += n
	}
	if !bytes.Equal(types, []byte{2, 1, 4, 0x7f}) {
		t.Errorf("node types %x, want ACPI, PCI, media, end", types)
	}
	// ACPI(PNP0A03,0) as firmware writes it.
	if got := hex.EncodeToString(p[:12]); got != "02010c00d041030a00000000" {
		t.Errorf("ACPI node %s", got)
	}
}

func TestGPTEvent(t *testing.T) {
	d := Disk{ID: MustGUID("42cdf23d-715e-4b14-96e0-2b6346fd34b3"), Sectors: 1 << 21, Partitions: []Partition{
		{Type: ESPPartitionType, ID: MustGUID("df05cf93-44e6-463e-a90c-aec7e7606cf4"), First: 2048, Last: 4095, Name: "EFI"},
		{Type: LinuxFSPartitionType, ID: MustGUID("e5d1d39d-da1d-4430-9689-356bfa3f5236"), First: 4096, Last: 1<<21 - 34, Name: "root"},
	}}
	ev := AppendGPTEvent(nil, d)
	if len(ev) != 92+8+2*128 {
		t.Fatalf("UEFI_GPT_DATA is %d bytes, want %d", len(ev), 92+8+2*128)
	}
	h := bytes.Clone(ev[:92])
	crc := binary.LittleEndian.Uint32(h[16:])
	binary.LittleEndian.PutUint32(h[16:], 0)
	if string(h[:8]) != "EFI PART" || crc32.ChecksumIEEE(h) != crc {
		t.Errorf("header signature %q, CRC %08x, want EFI PART and %08x", h[:8], crc, crc32.ChecksumIEEE(h))
	}
	entries := make([]byte, 128*128)
	copy(entries, ev[100:])
	if binary.LittleEndian.Uint32(ev[88:]) != crc32.ChecksumIEEE(entries) {
		t.Errorf("partition array CRC does not cover the 128-entry array")
	}
	if binary.LittleEndian.Uint64(ev[92:]) != 2 || binary.LittleEndian.Uint64(ev[100+128+32:]) != 4096 {
		t.Errorf("partition count or second partition's first LBA wrong")
	}
}

func TestFixedStructures(t *testing.T) {
	for _, tt := range []struct {
		name string
		b    []byte
		n    int
	}{
		{"UEFI_PLATFORM_FIRMWARE_BLOB", AppendFirmwareBlob(nil, 1, 2), 16},
		{"UEFI_PLATFORM_FIRMWARE_BLOB2", AppendFirmwareBlob2(nil, "Fv", 1, 2), 1 + 2 + 16},
		{"UEFI_HANDOFF_TABLE_POINTERS", AppendHandoffTables(nil, []ConfigTable{{SMBIOS3Table, 1}}), 8 + 24},
		{"UEFI_HANDOFF_TABLE_POINTERS2", AppendHandoffTables2(nil, "TdxTable\x00", []ConfigTable{{ACPI20Table, 1}}), 1 + 9 + 8 + 24},
		{"UEFI_IMAGE_LOAD_EVENT", AppendImageLoadEvent(nil, 1, 2, 3, DevicePath(nil).End()), 32 + 4},
		{"EFI_LOAD_OPTION", AppendLoadOption(nil, true, "ab", DevicePath(nil).End(), nil), 4 + 2 + 6 + 4},
		{"TCG_PCClientTaggedEvent", AppendTaggedEvent(nil, LinuxInitrdTag, []byte("x")), 9},
	} {
		if len(tt.b) != tt.n {
			t.Errorf("%s is %d bytes, want %d", tt.name, len(tt.b), tt.n)
		}
	}
}
