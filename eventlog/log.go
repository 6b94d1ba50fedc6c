// Package eventlog reads and writes TCG event logs: the TPM log from
// securityfs and the TDX RTMR log from the ACPI CCEL table share its format.
//
// Everything here is a plain function on bytes. Parsed events alias the input
// instead of copying it, so a Log is only valid while its input is unchanged.
package eventlog

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// Event is one record of a log. Its byte fields alias the parsed input.
type Event struct {
	// Num is the event number as tpm2_eventlog counts: 0 is the header
	// (the Spec ID event), the events after it are 1..N.
	Num int
	// Offset is where the record starts, in bytes from the start of the log.
	Offset int
	// Index is the PCR index (TPM) or CC measurement register index (TDX).
	Index   uint32
	Type    EventType
	Digests []Digest
	// Data is the event data (the record's payload).
	Data []byte
	// Raw is the whole record, exactly as it appears in the log.
	Raw []byte
}

// Digest is one digest of an event.
type Digest struct {
	Alg   Alg
	Value []byte
}

// Digest returns the event's digest for alg, or nil.
func (e *Event) Digest(alg Alg) []byte {
	for _, d := range e.Digests {
		if d.Alg == alg {
			return d.Value
		}
	}
	return nil
}

// SpecID is the Spec ID event (TCG_EfiSpecIDEvent) that opens a crypto-agile log.
type SpecID struct {
	Signature     string
	PlatformClass uint32
	VersionMinor  uint8
	VersionMajor  uint8
	Errata        uint8
	UintnSize     uint8
	Algs          []AlgSize
	VendorInfo    []byte
}

// AlgSize is one entry of the Spec ID event's algorithm list.
type AlgSize struct {
	Alg  Alg
	Size uint16
}

// Log is a parsed event log.
type Log struct {
	// Raw is the log from its first byte to the end of its last event.
	// Padding after a CCEL log area's last event is not part of it.
	Raw []byte
	// Header is event 0: the Spec ID event of a crypto-agile log, or the
	// first record of a legacy SHA1-only log (which is a measured event).
	Header Event
	// SpecID is the decoded Spec ID event; nil for a legacy SHA1-only log.
	SpecID *SpecID
	// Events are events 1..N.
	Events []Event
}

// Agile reports whether the log is crypto-agile (TCG_PCR_EVENT2 records).
func (l *Log) Agile() bool { return l.SpecID != nil }

// Algs lists the log's digest algorithms in Spec ID order.
func (l *Log) Algs() []Alg {
	if l.SpecID == nil {
		return []Alg{AlgSHA1}
	}
	algs := make([]Alg, len(l.SpecID.Algs))
	for i, a := range l.SpecID.Algs {
		algs[i] = a.Alg
	}
	return algs
}

// Event returns event n (0 is the header), or nil when there is none.
func (l *Log) Event(n int) *Event {
	switch {
	case n == 0:
		return &l.Header
	case n >= 1 && n <= len(l.Events):
		return &l.Events[n-1]
	}
	return nil
}

// FormatError says where and why a log could not be parsed.
type FormatError struct {
	Offset int // byte offset where the bad record starts
	Event  int // number of the event being parsed
	Reason string
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("malformed event log: event %d at byte offset %d: %s", e.Event, e.Offset, e.Reason)
}

const (
	legacyHeaderSize = 32 // index, type, SHA1 digest, data size
	agileHeaderSize  = 12 // index, type, digest count
	specIDSignature  = "Spec ID Event03\x00"
	// maxAlgorithms is TPM2_NUM_PCR_BANKS, the most PCR banks a TPM has.
	maxAlgorithms = 16
)

// Parse parses a log that ends where its input ends, as binary_bios_measurements
// in securityfs does. Index 0xFFFFFFFF is an ordinary index here: real
// Windows-boot EV_NO_ACTION events use it.
func Parse(b []byte) (*Log, error) { return parse(b, false) }

// ParseArea parses a log stored in a fixed-size log area, as the ACPI CCEL
// table's: the log ends at the area's end, or at the first record boundary
// where the next 8 bytes are all 0xFF (unused, erased space) or all 0x00.
func ParseArea(area []byte) (*Log, error) { return parse(area, true) }

type parser struct {
	b      []byte
	padded bool
	sizes  []AlgSize // Spec ID algorithm list; nil for a legacy log
}

// parse reads the log twice: the first pass checks every record and counts
// events and digests, the second fills exactly sized slices. Guessing the
// sizes instead cost more than the second pass (clearing memory that was
// never used was most of a parse), and exact sizes bound what a hostile
// input can make us allocate by a fixed multiple of its length.
func parse(b []byte, padded bool) (*Log, error) {
	p := parser{b: b, padded: padded}
	if p.atEnd(0) {
		return nil, &FormatError{Reason: "the log is empty"}
	}
	_, hdrEnd, err := p.legacyRecord(0, 0, nil)
	if err != nil {
		return nil, err
	}
	l := &Log{Header: Event{
		Num:   0,
		Index: binary.LittleEndian.Uint32(b),
		Type:  EventType(binary.LittleEndian.Uint32(b[4:])),
		Data:  b[legacyHeaderSize:hdrEnd:hdrEnd],
		Raw:   b[:hdrEnd:hdrEnd],
	}}
	if l.Header.Type == EvNoAction && bytes.HasPrefix(l.Header.Data, []byte(specIDSignature)) {
		// The Spec ID event's SHA1 field is not a measurement: no Digests.
		if l.SpecID, err = parseSpecID(l.Header.Data); err != nil {
			return nil, &FormatError{Offset: 0, Event: 0, Reason: err.Error()}
		}
		p.sizes = l.SpecID.Algs
	} else {
		l.Header.Digests = []Digest{{AlgSHA1, b[8:28:28]}}
	}
	start := hdrEnd

	events, digests := 0, 0
	off := start
	for ; !p.atEnd(off); events++ {
		nd, _, end, err := p.record(off, events+1, nil)
		if err != nil {
			return nil, err
		}
		digests += nd
		off = end
	}
	l.Raw = b[:off:off]

	l.Events = make([]Event, events)
	ds := make([]Digest, digests)
	off = start
	for i := range l.Events {
		// The first pass accepted these records: this cannot fail.
		nd, data, end, _ := p.record(off, i+1, ds)
		l.Events[i] = Event{
			Num:     i + 1,
			Offset:  off,
			Index:   binary.LittleEndian.Uint32(b[off:]),
			Type:    EventType(binary.LittleEndian.Uint32(b[off+4:])),
			Digests: ds[:nd:nd],
			Data:    b[data:end:end],
			Raw:     b[off:end:end],
		}
		ds = ds[nd:]
		off = end
	}
	return l, nil
}

// atEnd reports whether the log ends at off.
func (p *parser) atEnd(off int) bool {
	rest := p.b[off:]
	if len(rest) == 0 {
		return true
	}
	if !p.padded {
		return false
	}
	rest = rest[:min(len(rest), 8)]
	return allBytes(rest, 0xFF) || allBytes(rest, 0x00)
}

func allBytes(b []byte, v byte) bool {
	for _, c := range b {
		if c != v {
			return false
		}
	}
	return true
}

// record checks the record of event n at off, stores its digests in ds
// unless ds is nil, and returns how many digests it has, where its data
// starts and where it ends.
func (p *parser) record(off, n int, ds []Digest) (digests, data, end int, err error) {
	if p.sizes == nil {
		data, end, err := p.legacyRecord(off, n, ds)
		return 1, data, end, err
	}
	return p.agileRecord(off, n, ds)
}

// legacyRecord checks the TCG_PCR_EVENT of event n at off: the first record
// of every log, and all records of a legacy SHA1-only log. See record.
func (p *parser) legacyRecord(off, n int, ds []Digest) (data, end int, err error) {
	rec := p.b[off:]
	if len(rec) < legacyHeaderSize {
		return 0, 0, &FormatError{off, n, fmt.Sprintf("truncated record: %d bytes left, a TCG_PCR_EVENT header needs %d", len(rec), legacyHeaderSize)}
	}
	size := binary.LittleEndian.Uint32(rec[28:])
	if uint64(size) > uint64(len(rec)-legacyHeaderSize) {
		return 0, 0, &FormatError{off, n, fmt.Sprintf("event data size %d exceeds the %d bytes left", size, len(rec)-legacyHeaderSize)}
	}
	if ds != nil {
		ds[0] = Digest{AlgSHA1, rec[8:28:28]}
	}
	return off + legacyHeaderSize, off + legacyHeaderSize + int(size), nil
}

// agileRecord checks the TCG_PCR_EVENT2 of event n at off; see record.
func (p *parser) agileRecord(off, n int, ds []Digest) (digests, data, end int, err error) {
	rec := p.b[off:]
	fail := func(format string, args ...any) (int, int, int, error) {
		return 0, 0, 0, &FormatError{off, n, fmt.Sprintf(format, args...)}
	}
	if len(rec) < agileHeaderSize {
		return fail("truncated record: %d bytes left, a TCG_PCR_EVENT2 header needs %d", len(rec), agileHeaderSize)
	}
	count := binary.LittleEndian.Uint32(rec[8:])
	pos := agileHeaderSize
	// Every digest takes at least its 2-byte algorithm ID: a count the
	// remaining bytes cannot hold is rejected before anything is allocated.
	if uint64(count)*2 > uint64(len(rec)-pos) {
		return fail("digest count %d cannot fit in the %d bytes left", count, len(rec)-pos)
	}
	for i := range int(count) {
		if len(rec)-pos < 2 {
			return fail("truncated digest %d of %d", i+1, count)
		}
		alg := Alg(binary.LittleEndian.Uint16(rec[pos:]))
		size, ok := p.digestSize(alg)
		if !ok {
			return fail("digest %d uses algorithm 0x%04x, which the Spec ID event does not list (its digest size is unknown)", i+1, uint16(alg))
		}
		pos += 2
		if len(rec)-pos < size {
			return fail("truncated %s digest: %d bytes left, %d needed", alg, len(rec)-pos, size)
		}
		if ds != nil {
			ds[i] = Digest{alg, rec[pos : pos+size : pos+size]}
		}
		pos += size
	}
	if len(rec)-pos < 4 {
		return fail("truncated record: no room for the event size")
	}
	size := binary.LittleEndian.Uint32(rec[pos:])
	pos += 4
	if uint64(size) > uint64(len(rec)-pos) {
		return fail("event size %d exceeds the %d bytes left", size, len(rec)-pos)
	}
	return int(count), off + pos, off + pos + int(size), nil
}

func (p *parser) digestSize(alg Alg) (int, bool) {
	for _, a := range p.sizes {
		if a.Alg == alg {
			return int(a.Size), true
		}
	}
	return 0, false
}

// parseSpecID decodes the data of a Spec ID Event03.
func parseSpecID(d []byte) (*SpecID, error) {
	const fixed = 16 + 4 + 4 + 4 // signature, platform class, versions+uintn, algorithm count
	if len(d) < fixed {
		return nil, fmt.Errorf("truncated Spec ID event: %d bytes, at least %d needed", len(d), fixed)
	}
	s := &SpecID{
		Signature:     string(bytes.TrimRight(d[:16], "\x00")),
		PlatformClass: binary.LittleEndian.Uint32(d[16:]),
		VersionMinor:  d[20],
		VersionMajor:  d[21],
		Errata:        d[22],
		UintnSize:     d[23],
	}
	n := binary.LittleEndian.Uint32(d[24:])
	pos := fixed
	if uint64(n)*4 > uint64(len(d)-pos) {
		return nil, fmt.Errorf("the Spec ID event lists %d algorithms but has room for %d", n, (len(d)-pos)/4)
	}
	if n == 0 {
		return nil, fmt.Errorf("the Spec ID event lists no digest algorithm")
	}
	if n > maxAlgorithms {
		// Each digest's size is looked up in this list: a long one would
		// make parsing time grow with its length times the log's.
		return nil, fmt.Errorf("the Spec ID event lists %d algorithms, more than the %d PCR banks a TPM can have", n, maxAlgorithms)
	}
	s.Algs = make([]AlgSize, n)
	for i := range s.Algs {
		a := AlgSize{Alg(binary.LittleEndian.Uint16(d[pos:])), binary.LittleEndian.Uint16(d[pos+2:])}
		if a.Size == 0 {
			// Nothing can be measured in 0 bytes, and 2-byte digests would
			// let a small log make the parser allocate 16 times its size.
			return nil, fmt.Errorf("the Spec ID event gives %s a digest size of 0", a.Alg)
		}
		if want := a.Alg.Size(); want != 0 && int(a.Size) != want {
			return nil, fmt.Errorf("the Spec ID event gives %s a digest size of %d, the algorithm's is %d", a.Alg, a.Size, want)
		}
		s.Algs[i] = a
		pos += 4
	}
	if pos >= len(d) {
		return nil, fmt.Errorf("truncated Spec ID event: no vendor info size")
	}
	vlen := int(d[pos])
	pos++
	if vlen > len(d)-pos {
		return nil, fmt.Errorf("the Spec ID vendor info size %d exceeds the %d bytes left", vlen, len(d)-pos)
	}
	s.VendorInfo = d[pos : pos+vlen : pos+vlen]
	return s, nil
}
