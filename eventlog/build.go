package eventlog

import (
	"encoding/binary"
	"slices"
)

// AppendSpecIDHeader appends a crypto-agile log's first record: a
// TCG_PCR_EVENT at the given index (0 for TPM firmware, 1 for TDVF) holding a
// Spec ID Event03 for algs, with no vendor info.
func AppendSpecIDHeader(dst []byte, index uint32, algs []Alg) []byte {
	data := []byte(specIDSignature)
	data = binary.LittleEndian.AppendUint32(data, 0) // platform class: client
	data = append(data, 0, 2, 0, 2)                  // spec 2.0, errata 0, UINTN of 8 bytes
	data = binary.LittleEndian.AppendUint32(data, uint32(len(algs)))
	for _, a := range algs {
		data = binary.LittleEndian.AppendUint16(data, uint16(a))
		data = binary.LittleEndian.AppendUint16(data, uint16(a.Size()))
	}
	data = append(data, 0) // vendor info size
	return AppendLegacyEvent(dst, index, EvNoAction, make([]byte, 20), data)
}

// AppendLegacyEvent appends a TCG_PCR_EVENT (SHA1-only) record.
func AppendLegacyEvent(dst []byte, index uint32, typ EventType, sha1 []byte, data []byte) []byte {
	dst = slices.Grow(dst, legacyHeaderSize+len(data))
	dst = binary.LittleEndian.AppendUint32(dst, index)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(typ))
	dst = append(dst, sha1[:20]...)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(data)))
	return append(dst, data...)
}

// AppendEvent2 appends a TCG_PCR_EVENT2 record with the given digests.
func AppendEvent2(dst []byte, index uint32, typ EventType, digests []Digest, data []byte) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, index)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(typ))
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(digests)))
	for _, d := range digests {
		dst = binary.LittleEndian.AppendUint16(dst, uint16(d.Alg))
		dst = append(dst, d.Value...)
	}
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(data)))
	return append(dst, data...)
}

// Measure returns the digests of data for each algorithm, as firmware
// computes them for events whose digest is the hash of their data.
func Measure(data []byte, algs []Alg) []Digest {
	ds := make([]Digest, 0, len(algs))
	for _, a := range algs {
		h := a.New()
		if h == nil {
			continue
		}
		h.Write(data)
		ds = append(ds, Digest{a, h.Sum(nil)})
	}
	return ds
}

// StartupLocalityData is the data of the EV_NO_ACTION event that records the
// TPM's startup locality.
func StartupLocalityData(locality byte) []byte {
	return append([]byte(startupLocality), locality)
}
