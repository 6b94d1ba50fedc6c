package efi

import (
	"encoding/binary"
	"hash/crc32"
)

// Partition is one GPT partition entry.
type Partition struct {
	Type, ID   GUID
	First      uint64 // first LBA
	Last       uint64 // last LBA, inclusive
	Attributes uint64
	Name       string // at most 36 UTF-16 characters
}

// Disk is a GPT disk as firmware sees it when it measures the boot disk.
type Disk struct {
	ID         GUID
	Sectors    uint64 // disk size in 512-byte LBAs
	Partitions []Partition
}

const (
	gptHeaderSize = 92
	gptEntrySize  = 128
	gptEntries    = 128 // entries in the partition array, used or not
)

// AppendGPTEvent appends a UEFI_GPT_DATA, the data of EV_EFI_GPT_EVENT: the
// primary GPT header, then the number of used partition entries and the
// entries. The header's CRCs are computed as on a real disk: over the header,
// and over the whole 128-entry partition array.
func AppendGPTEvent(dst []byte, d Disk) []byte {
	entries := make([]byte, gptEntries*gptEntrySize)
	for i, p := range d.Partitions {
		e := entries[i*gptEntrySize:]
		copy(e[0:], p.Type[:])
		copy(e[16:], p.ID[:])
		binary.LittleEndian.PutUint64(e[32:], p.First)
		binary.LittleEndian.PutUint64(e[40:], p.Last)
		binary.LittleEndian.PutUint64(e[48:], p.Attributes)
		name := AppendUTF16(nil, p.Name, false)
		copy(e[56:gptEntrySize], name)
	}

	h := make([]byte, gptHeaderSize)
	copy(h, "EFI PART")
	binary.LittleEndian.PutUint32(h[8:], 0x00010000) // revision 1.0
	binary.LittleEndian.PutUint32(h[12:], gptHeaderSize)
	binary.LittleEndian.PutUint64(h[24:], 1)                                       // this header's LBA
	binary.LittleEndian.PutUint64(h[32:], d.Sectors-1)                             // backup header's LBA
	binary.LittleEndian.PutUint64(h[40:], 2+gptEntries*gptEntrySize/512)           // first usable LBA
	binary.LittleEndian.PutUint64(h[48:], d.Sectors-2-gptEntries*gptEntrySize/512) // last usable LBA
	copy(h[56:], d.ID[:])
	binary.LittleEndian.PutUint64(h[72:], 2) // partition array LBA
	binary.LittleEndian.PutUint32(h[80:], gptEntries)
	binary.LittleEndian.PutUint32(h[84:], gptEntrySize)
	binary.LittleEndian.PutUint32(h[88:], crc32.ChecksumIEEE(entries))
	binary.LittleEndian.PutUint32(h[16:], crc32.ChecksumIEEE(h))

	dst = append(dst, h...)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(len(d.Partitions)))
	return append(dst, entries[:len(d.Partitions)*gptEntrySize]...)
}
