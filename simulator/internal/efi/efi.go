// Package efi encodes the UEFI structures that firmware and boot loaders put
// in event log records (TCG PC Client Platform Firmware Profile, section 10,
// and the UEFI specification): variable data, device paths, image load
// events, load options, GPT data, firmware blobs, handoff tables, tagged
// events.
//
// Every function appends the little-endian encoding to dst and returns it.
package efi

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
	"unicode/utf16"
)

// GUID is an EFI_GUID in its in-memory byte order: the first three fields
// little-endian, the last eight bytes as written.
type GUID [16]byte

// MustGUID parses the registry form "8be4df61-93ca-11d2-aa0d-00e098032b8c".
func MustGUID(s string) GUID {
	g, err := ParseGUID(s)
	if err != nil {
		panic(err)
	}
	return g
}

// ParseGUID parses the registry form of a GUID.
func ParseGUID(s string) (GUID, error) {
	var g GUID
	parts := strings.Split(s, "-")
	if len(parts) != 5 || len(parts[0]) != 8 || len(parts[1]) != 4 || len(parts[2]) != 4 || len(parts[3]) != 4 || len(parts[4]) != 12 {
		return g, fmt.Errorf("GUID %q is not in 8-4-4-4-12 form", s)
	}
	b, err := hex.DecodeString(strings.Join(parts, ""))
	if err != nil {
		return g, fmt.Errorf("GUID %q: %w", s, err)
	}
	binary.LittleEndian.PutUint32(g[0:], binary.BigEndian.Uint32(b[0:]))
	binary.LittleEndian.PutUint16(g[4:], binary.BigEndian.Uint16(b[4:]))
	binary.LittleEndian.PutUint16(g[6:], binary.BigEndian.Uint16(b[6:]))
	copy(g[8:], b[8:])
	return g, nil
}

// GUIDFromBytes makes a version 4 GUID from 16 random bytes.
func GUIDFromBytes(b [16]byte) GUID {
	g := GUID(b)
	g[7] = g[7]&0x0f | 0x40 // version 4, in the little-endian third field
	g[8] = g[8]&0x3f | 0x80 // RFC 4122 variant
	return g
}

func (g GUID) String() string {
	return fmt.Sprintf("%08x-%04x-%04x-%x-%x",
		binary.LittleEndian.Uint32(g[0:]), binary.LittleEndian.Uint16(g[4:]), binary.LittleEndian.Uint16(g[6:]), g[8:10], g[10:])
}

// GUIDs the simulated firmware uses.
var (
	GlobalVariable        = MustGUID("8be4df61-93ca-11d2-aa0d-00e098032b8c")
	ImageSecurityDatabase = MustGUID("d719b2cb-3d3a-4596-a3bc-dad00e67656f")
	ShimLock              = MustGUID("605dab50-e046-4300-abb6-3dd810dd8b23")
	CertX509              = MustGUID("a5c059a1-94e4-4aa7-87b5-ab155c2bf072")
	CertSHA256            = MustGUID("c1c41626-504c-4092-aca9-41f936934328")
	SMBIOS3Table          = MustGUID("f2fd1544-9794-4a2c-992e-e5bbcf20e394")
	ACPI20Table           = MustGUID("8868e871-e4f1-11d3-bc22-0080c73c8881")
	ESPPartitionType      = MustGUID("c12a7328-f81f-11d2-ba4b-00a0c93ec93b")
	LinuxFSPartitionType  = MustGUID("0fc63daf-8483-4772-8e79-3d69d8477de4")
)

// AppendUTF16 appends s as UCS-2 little-endian, NUL-terminated if nul is set.
func AppendUTF16(dst []byte, s string, nul bool) []byte {
	for _, c := range utf16.Encode([]rune(s)) {
		dst = binary.LittleEndian.AppendUint16(dst, c)
	}
	if nul {
		dst = append(dst, 0, 0)
	}
	return dst
}

// AppendVariableData appends a UEFI_VARIABLE_DATA: the variable's vendor GUID
// and name (not NUL-terminated, its length in characters) and its value.
func AppendVariableData(dst []byte, vendor GUID, name string, value []byte) []byte {
	dst = append(dst, vendor[:]...)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(len(utf16.Encode([]rune(name)))))
	dst = binary.LittleEndian.AppendUint64(dst, uint64(len(value)))
	dst = AppendUTF16(dst, name, false)
	return append(dst, value...)
}

// Signature is one EFI_SIGNATURE_DATA: the owner and the signature (a DER
// certificate, or a hash).
type Signature struct {
	Owner GUID
	Data  []byte
}

// AppendSignatureData appends one EFI_SIGNATURE_DATA.
func AppendSignatureData(dst []byte, s Signature) []byte {
	dst = append(dst, s.Owner[:]...)
	return append(dst, s.Data...)
}

// AppendSignatureList appends an EFI_SIGNATURE_LIST of one signature type.
// Every signature in a list has the same size.
func AppendSignatureList(dst []byte, typ GUID, sigs []Signature) []byte {
	size := 16
	if len(sigs) > 0 {
		size += len(sigs[0].Data)
	}
	for _, s := range sigs {
		if 16+len(s.Data) != size {
			panic("efi: signatures of one list differ in size")
		}
	}
	dst = append(dst, typ[:]...)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(28+len(sigs)*size))
	dst = binary.LittleEndian.AppendUint32(dst, 0) // no signature header
	dst = binary.LittleEndian.AppendUint32(dst, uint32(size))
	for _, s := range sigs {
		dst = AppendSignatureData(dst, s)
	}
	return dst
}

// A DevicePath is a sequence of EFI device path nodes, without the end node.
type DevicePath []byte

func (p DevicePath) node(typ, subtype byte, body []byte) DevicePath {
	p = append(p, typ, subtype)
	p = binary.LittleEndian.AppendUint16(p, uint16(4+len(body)))
	return append(p, body...)
}

// ACPI appends an ACPI device path node for a PNP ID (0x0a03: a PCI root bridge).
func (p DevicePath) ACPI(pnp uint16, uid uint32) DevicePath {
	var b []byte
	b = binary.LittleEndian.AppendUint32(b, uint32(pnp)<<16|0x41d0) // EISA "PNP" vendor
	b = binary.LittleEndian.AppendUint32(b, uid)
	return p.node(0x02, 0x01, b)
}

// PCI appends a PCI device path node.
func (p DevicePath) PCI(device, function byte) DevicePath {
	return p.node(0x01, 0x01, []byte{function, device})
}

// SCSI appends a messaging SCSI node (virtio-scsi disks in cloud VMs).
func (p DevicePath) SCSI(target, lun uint16) DevicePath {
	b := binary.LittleEndian.AppendUint16(nil, target)
	return p.node(0x03, 0x02, binary.LittleEndian.AppendUint16(b, lun))
}

// HardDrive appends a media node for a GPT partition.
func (p DevicePath) HardDrive(number uint32, start, size uint64, partition GUID) DevicePath {
	b := binary.LittleEndian.AppendUint32(nil, number)
	b = binary.LittleEndian.AppendUint64(b, start)
	b = binary.LittleEndian.AppendUint64(b, size)
	b = append(b, partition[:]...)
	b = append(b, 0x02, 0x02) // GPT partition format, GUID signature
	return p.node(0x04, 0x01, b)
}

// File appends a media file path node.
func (p DevicePath) File(path string) DevicePath {
	return p.node(0x04, 0x04, AppendUTF16(nil, path, true))
}

// Fv appends a firmware volume node.
func (p DevicePath) Fv(name GUID) DevicePath {
	return p.node(0x04, 0x07, name[:])
}

// FvFile appends a firmware volume file node (an application built into the
// firmware, like the UEFI shell or UiApp).
func (p DevicePath) FvFile(name GUID) DevicePath {
	return p.node(0x04, 0x06, name[:])
}

// End returns the path terminated with an end-of-path node.
func (p DevicePath) End() []byte {
	return append(p, 0x7f, 0xff, 0x04, 0x00)
}

// AppendImageLoadEvent appends a UEFI_IMAGE_LOAD_EVENT, the data of
// EV_EFI_BOOT_SERVICES_APPLICATION and driver events.
func AppendImageLoadEvent(dst []byte, location, length, linkTime uint64, path []byte) []byte {
	dst = binary.LittleEndian.AppendUint64(dst, location)
	dst = binary.LittleEndian.AppendUint64(dst, length)
	dst = binary.LittleEndian.AppendUint64(dst, linkTime)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(len(path)))
	return append(dst, path...)
}

// AppendLoadOption appends an EFI_LOAD_OPTION, the value of a Boot####
// variable.
func AppendLoadOption(dst []byte, active bool, description string, path []byte, optional []byte) []byte {
	var attrs uint32
	if active {
		attrs = 1 // LOAD_OPTION_ACTIVE
	}
	dst = binary.LittleEndian.AppendUint32(dst, attrs)
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(path)))
	dst = AppendUTF16(dst, description, true)
	dst = append(dst, path...)
	return append(dst, optional...)
}

// AppendFirmwareBlob appends a UEFI_PLATFORM_FIRMWARE_BLOB.
func AppendFirmwareBlob(dst []byte, base, length uint64) []byte {
	dst = binary.LittleEndian.AppendUint64(dst, base)
	return binary.LittleEndian.AppendUint64(dst, length)
}

// AppendFirmwareBlob2 appends a UEFI_PLATFORM_FIRMWARE_BLOB2: a described blob.
func AppendFirmwareBlob2(dst []byte, description string, base, length uint64) []byte {
	dst = append(dst, byte(len(description)))
	dst = append(dst, description...)
	return AppendFirmwareBlob(dst, base, length)
}

// ConfigTable is an EFI_CONFIGURATION_TABLE entry.
type ConfigTable struct {
	Vendor  GUID
	Address uint64
}

// AppendHandoffTables appends a UEFI_HANDOFF_TABLE_POINTERS.
func AppendHandoffTables(dst []byte, tables []ConfigTable) []byte {
	dst = binary.LittleEndian.AppendUint64(dst, uint64(len(tables)))
	for _, t := range tables {
		dst = append(dst, t.Vendor[:]...)
		dst = binary.LittleEndian.AppendUint64(dst, t.Address)
	}
	return dst
}

// AppendHandoffTables2 appends a UEFI_HANDOFF_TABLE_POINTERS2: described tables.
func AppendHandoffTables2(dst []byte, description string, tables []ConfigTable) []byte {
	dst = append(dst, byte(len(description)))
	dst = append(dst, description...)
	return AppendHandoffTables(dst, tables)
}

// AppendTaggedEvent appends a TCG_PCClientTaggedEvent, the data of EV_EVENT_TAG.
func AppendTaggedEvent(dst []byte, id uint32, data []byte) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, id)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(data)))
	return append(dst, data...)
}

// Tagged event IDs the Linux EFI stub uses when it measures into PCR9.
const (
	LinuxLoadOptionsTag = 0x8F3B22EC
	LinuxInitrdTag      = 0x8F3B22ED
)
