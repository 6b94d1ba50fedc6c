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
	specIDSignature  = "Spec ID Event03\x00"
	// digestSlabSize is how many digests are allocated at once, so that a
	// parse costs a few allocations rather than one per event.
	digestSlabSize = 512
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
	sizes  []AlgSize // Spec ID algorithm list
	slab   []Digest
}

func parse(b []byte, padded bool) (*Log, error) {
	p := parser{b: b, padded: padded}
	if p.atEnd(0) {
		return nil, &FormatError{Reason: "the log is empty"}
	}
	hdr, err := p.legacyEvent(0, 0)
	if err != nil {
		return nil, err
	}
	l := &Log{Header: hdr}
	if hdr.Type == EvNoAction && bytes.HasPrefix(hdr.Data, []byte(specIDSignature)) {
		if l.SpecID, err = parseSpecID(hdr.Data); err != nil {
			return nil, &FormatError{Offset: 0, Event: 0, Reason: err.Error()}
		}
		l.Header.Digests = nil // the Spec ID event's SHA1 field is not a measurement
		p.sizes = l.SpecID.Algs
	}
	off := len(hdr.Raw)
	// Each record is at least 16 bytes, so this bounds the events slice by
	// the input without a count pass.
	l.Events = make([]Event, 0, min((len(b)-off)/legacyHeaderSize+1, 1024))
	for n := 1; !p.atEnd(off); n++ {
		var e Event
		if l.SpecID != nil {
			e, err = p.agileEvent(off, n)
		} else {
			e, err = p.legacyEvent(off, n)
		}
		if err != nil {
			return nil, err
		}
		l.Events = append(l.Events, e)
		off += len(e.Raw)
	}
	l.Raw = b[:off:off]
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

// legacyEvent parses a TCG_PCR_EVENT: the first record of every log, and all
// records of a legacy SHA1-only log.
func (p *parser) legacyEvent(off, n int) (Event, error) {
	rec := p.b[off:]
	if len(rec) < legacyHeaderSize {
		return Event{}, &FormatError{off, n, fmt.Sprintf("truncated record: %d bytes left, a TCG_PCR_EVENT header needs %d", len(rec), legacyHeaderSize)}
	}
	size := binary.LittleEndian.Uint32(rec[28:])
	if uint64(size) > uint64(len(rec)-legacyHeaderSize) {
		return Event{}, &FormatError{off, n, fmt.Sprintf("event data size %d exceeds the %d bytes left", size, len(rec)-legacyHeaderSize)}
	}
	end := legacyHeaderSize + int(size)
	return Event{
		Num:     n,
		Offset:  off,
		Index:   binary.LittleEndian.Uint32(rec),
		Type:    EventType(binary.LittleEndian.Uint32(rec[4:])),
		Digests: p.sha1(rec[8:28:28]),
		Data:    rec[legacyHeaderSize:end:end],
		Raw:     rec[:end:end],
	}, nil
}

// agileEvent parses a TCG_PCR_EVENT2.
func (p *parser) agileEvent(off, n int) (Event, error) {
	rec := p.b[off:]
	if len(rec) < 12 {
		return Event{}, &FormatError{off, n, fmt.Sprintf("truncated record: %d bytes left, a TCG_PCR_EVENT2 header needs 12", len(rec))}
	}
	e := Event{
		Num:    n,
		Offset: off,
		Index:  binary.LittleEndian.Uint32(rec),
		Type:   EventType(binary.LittleEndian.Uint32(rec[4:])),
	}
	count := binary.LittleEndian.Uint32(rec[8:])
	pos := 12
	// Every digest takes at least its 2-byte algorithm ID: a count the
	// remaining bytes cannot hold is rejected before anything is allocated.
	if uint64(count)*2 > uint64(len(rec)-pos) {
		return Event{}, &FormatError{off, n, fmt.Sprintf("digest count %d cannot fit in the %d bytes left", count, len(rec)-pos)}
	}
	digests := p.alloc(int(count))
	for i := range digests {
		if len(rec)-pos < 2 {
			return Event{}, &FormatError{off, n, fmt.Sprintf("truncated digest %d of %d", i+1, count)}
		}
		alg := Alg(binary.LittleEndian.Uint16(rec[pos:]))
		size, ok := p.digestSize(alg)
		if !ok {
			return Event{}, &FormatError{off, n, fmt.Sprintf("digest %d uses algorithm 0x%04x, which the Spec ID event does not list (its digest size is unknown)", i+1, uint16(alg))}
		}
		pos += 2
		if len(rec)-pos < size {
			return Event{}, &FormatError{off, n, fmt.Sprintf("truncated %s digest: %d bytes left, %d needed", alg, len(rec)-pos, size)}
		}
		digests[i] = Digest{alg, rec[pos : pos+size : pos+size]}
		pos += size
	}
	e.Digests = digests
	if len(rec)-pos < 4 {
		return Event{}, &FormatError{off, n, "truncated record: no room for the event size"}
	}
	size := binary.LittleEndian.Uint32(rec[pos:])
	pos += 4
	if uint64(size) > uint64(len(rec)-pos) {
		return Event{}, &FormatError{off, n, fmt.Sprintf("event size %d exceeds the %d bytes left", size, len(rec)-pos)}
	}
	end := pos + int(size)
	e.Data = rec[pos:end:end]
	e.Raw = rec[:end:end]
	return e, nil
}

func (p *parser) digestSize(alg Alg) (int, bool) {
	for _, a := range p.sizes {
		if a.Alg == alg {
			return int(a.Size), true
		}
	}
	return 0, false
}

// alloc returns a slice of n digests carved from a shared slab.
func (p *parser) alloc(n int) []Digest {
	if n > len(p.slab) {
		if n > digestSlabSize/4 {
			return make([]Digest, n)
		}
		p.slab = make([]Digest, digestSlabSize)
	}
	d := p.slab[:n:n]
	p.slab = p.slab[n:]
	return d
}

func (p *parser) sha1(v []byte) []Digest {
	d := p.alloc(1)
	d[0] = Digest{AlgSHA1, v}
	return d
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
		return nil, fmt.Errorf("Spec ID event lists %d algorithms but has room for %d", n, (len(d)-pos)/4)
	}
	if n == 0 {
		return nil, fmt.Errorf("Spec ID event lists no digest algorithm")
	}
	s.Algs = make([]AlgSize, n)
	for i := range s.Algs {
		a := AlgSize{Alg(binary.LittleEndian.Uint16(d[pos:])), binary.LittleEndian.Uint16(d[pos+2:])}
		if want := a.Alg.Size(); want != 0 && int(a.Size) != want {
			return nil, fmt.Errorf("Spec ID event gives %s a digest size of %d, the algorithm's is %d", a.Alg, a.Size, want)
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
		return nil, fmt.Errorf("Spec ID vendor info size %d exceeds the %d bytes left", vlen, len(d)-pos)
	}
	s.VendorInfo = d[pos : pos+vlen : pos+vlen]
	return s, nil
}
