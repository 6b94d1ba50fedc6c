// Package ccel reads and writes the ACPI CC Event Log table (CCEL), through
// which TDX firmware tells the guest where its RTMR event log lives.
package ccel

import (
	"encoding/binary"
	"fmt"
)

// TableSize is the size of a CCEL table as ACPI 6.5 defines it.
const TableSize = 56

// CC types of the CCEL table.
const (
	TypeSEV = 1
	TypeTDX = 2
)

// Table is a parsed CCEL table.
type Table struct {
	Revision        uint8
	OEMID           string
	OEMTableID      string
	OEMRevision     uint32
	CreatorID       string
	CreatorRevision uint32
	// CCType is the confidential computing technology: 2 is Intel TDX.
	CCType    uint8
	CCSubType uint8
	// LAML is the log area's minimum length; LASA its physical start address.
	LAML uint64
	LASA uint64
}

// Error says what is wrong with a table.
type Error struct {
	Offset int
	Reason string
}

func (e *Error) Error() string {
	return fmt.Sprintf("malformed CCEL table at byte offset %d: %s", e.Offset, e.Reason)
}

// Parse parses and checks a CCEL table: signature, length, checksum.
func Parse(b []byte) (*Table, error) {
	if len(b) < TableSize {
		return nil, &Error{len(b), fmt.Sprintf("truncated: %d bytes, a CCEL table has %d", len(b), TableSize)}
	}
	if string(b[:4]) != "CCEL" {
		return nil, &Error{0, fmt.Sprintf("signature is %q, not \"CCEL\"", b[:4])}
	}
	length := binary.LittleEndian.Uint32(b[4:])
	if length < TableSize || uint64(length) > uint64(len(b)) {
		return nil, &Error{4, fmt.Sprintf("length field says %d bytes, the table has %d and needs at least %d", length, len(b), TableSize)}
	}
	if sum := byteSum(b[:length]); sum != 0 {
		return nil, &Error{9, fmt.Sprintf("checksum byte 0x%02x leaves a sum of 0x%02x, not 0", b[9], sum)}
	}
	return &Table{
		Revision:        b[8],
		OEMID:           trim(b[10:16]),
		OEMTableID:      trim(b[16:24]),
		OEMRevision:     binary.LittleEndian.Uint32(b[24:]),
		CreatorID:       trim(b[28:32]),
		CreatorRevision: binary.LittleEndian.Uint32(b[32:]),
		CCType:          b[36],
		CCSubType:       b[37],
		LAML:            binary.LittleEndian.Uint64(b[40:]),
		LASA:            binary.LittleEndian.Uint64(b[48:]),
	}, nil
}

// CCTypeName names the table's CC type.
func (t *Table) CCTypeName() string {
	switch t.CCType {
	case TypeSEV:
		return "SEV"
	case TypeTDX:
		return "TDX"
	}
	return fmt.Sprintf("unknown (%d)", t.CCType)
}

// Marshal encodes the table with a correct length and checksum.
func (t *Table) Marshal() []byte {
	b := make([]byte, TableSize)
	copy(b, "CCEL")
	binary.LittleEndian.PutUint32(b[4:], TableSize)
	b[8] = t.Revision
	// ID fields are space padded, as EDK2 writes them: a table built from
	// a parsed one is then the same bytes.
	copy(b[10:24], "              ")
	copy(b[28:32], "    ")
	copy(b[10:16], t.OEMID)
	copy(b[16:24], t.OEMTableID)
	binary.LittleEndian.PutUint32(b[24:], t.OEMRevision)
	copy(b[28:32], t.CreatorID)
	binary.LittleEndian.PutUint32(b[32:], t.CreatorRevision)
	b[36] = t.CCType
	b[37] = t.CCSubType
	binary.LittleEndian.PutUint64(b[40:], t.LAML)
	binary.LittleEndian.PutUint64(b[48:], t.LASA)
	b[9] = -byteSum(b)
	return b
}

// byteSum adds up b modulo 256. ACPI tables carry a checksum byte that makes
// the sum of the whole table 0.
func byteSum(b []byte) byte {
	var sum byte
	for _, c := range b {
		sum += c
	}
	return sum
}

func trim(b []byte) string {
	n := len(b)
	for n > 0 && (b[n-1] == 0 || b[n-1] == ' ') {
		n--
	}
	return string(b[:n])
}
