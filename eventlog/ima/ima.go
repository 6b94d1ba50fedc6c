// Package ima reads and writes the kernel's IMA measurement list, the binary
// form securityfs shows as ima/binary_runtime_measurements (and, on kernels
// with a list per PCR bank, binary_runtime_measurements_<alg>).
//
// Like package eventlog, everything here is a plain function on bytes:
// parsed entries alias their input instead of copying it. The list only
// grows while the node runs, so a Parser keeps its position and parses only
// what was appended since its last call; a torn last entry (the list read
// while the kernel appends) is where parsing stops until more bytes arrive,
// not an error.
//
// Each entry is, in the kernel's native byte order (little-endian with
// ima_canonical_fmt):
//
//	u32   PCR index
//	[n]   template hash: the bank's digest of the template data (SHA-1, 20
//	      bytes, in binary_runtime_measurements); all zeros for a violation
//	u32   template name size, then the name ("ima-ng"; a custom template
//	      shows its format, "d-ng|n-ng|buf")
//	u32   template data size (absent for the "ima" template)
//	[]    template data: each field as u32 size and bytes; the "ima"
//	      template has a 20-byte digest, then u32 size and the file name
package ima

import (
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
)

// Entry is one measurement of the list. Its byte fields alias the parsed
// input: an Entry is only valid while that input is unchanged.
type Entry struct {
	// Num is the entry's number: 1..N in list order.
	Num int
	// Offset is where the entry starts, in bytes from the start of the list.
	Offset int64
	PCR    uint32
	// TemplateHash is the list's bank's digest of the template data, or
	// all zeros for a violation (see Violation).
	TemplateHash []byte
	TemplateName string
	// TemplateData is the template's fields as the list holds them. For the
	// "ima" template it is the 20-byte digest, the u32 name size and the
	// name; for every other template, each field's u32 size and bytes.
	TemplateData []byte
	// Raw is the whole entry, exactly as it appears in the list.
	Raw []byte
}

// Violation reports whether the entry records a violation (a file opened
// for writing while measured, or measured while open for writing): the
// kernel then logs an all-zero template hash and extends all ones.
func (e *Entry) Violation() bool { return allZero(e.TemplateHash) }

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// List is a parsed measurement list, or the part of a growing one parsed so
// far. Its entries are held in blocks that are never moved, so a list can
// grow by a few entries without copying the ones it has: see Len, Entry,
// All and Slice.
type List struct {
	blocks [][]Entry
	n      int
	// Order is the byte order of the list's integers: the kernel's native
	// order, or little-endian under ima_canonical_fmt. Nil while no entry
	// has been seen.
	Order binary.ByteOrder
	// HashAlg is the algorithm of the template hashes: SHA-1 in
	// binary_runtime_measurements, the bank's in a per-bank list.
	HashAlg eventlog.Alg
	// Size is the number of bytes the complete entries take.
	Size int64
	// Pending is the number of bytes after the last complete entry: the
	// start of an entry the kernel was still appending when it was read.
	Pending int
}

// Options say what a parser cannot learn from the list's bytes.
type Options struct {
	// HashAlg is the template hash algorithm; zero means SHA-1, the
	// algorithm of binary_runtime_measurements. A per-bank list
	// (binary_runtime_measurements_sha256) has that bank's: see FileAlg.
	HashAlg eventlog.Alg
	// Order forces the byte order; nil detects it from the first entry
	// (see Parser).
	Order binary.ByteOrder
}

// FileAlg returns the template hash algorithm of a securityfs list file by
// its name: SHA-1 for binary_runtime_measurements, the named bank for
// binary_runtime_measurements_<alg> (the kernel's names: sha1, sha256,
// sha384, sha512, sm3).
func FileAlg(name string) (eventlog.Alg, bool) {
	const base = "binary_runtime_measurements"
	if name == base {
		return eventlog.AlgSHA1, true
	}
	alg, ok := strings.CutPrefix(name, base+"_")
	if !ok {
		return 0, false
	}
	if alg == "sm3" {
		return eventlog.AlgSM3_256, true
	}
	return eventlog.ParseAlg(alg)
}

// FormatError says where and why a list could not be parsed.
type FormatError struct {
	Offset int64 // byte offset where the bad entry starts
	Entry  int   // number of the entry being parsed
	Reason string
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("malformed IMA measurement list: entry %d at byte offset %d: %s", e.Entry, e.Offset, e.Reason)
}

// Unwrap returns the error as an *eventlog.FormatError, so that what maps a
// malformed event log to an error code maps a malformed list alike.
func (e *FormatError) Unwrap() error {
	return &eventlog.FormatError{Offset: int(e.Offset), Event: e.Entry, Reason: e.Reason}
}

// Limits of an entry. The kernel's own are smaller: a template name is at
// most 71 bytes (its longest built-in format), an "ima" template's file
// name at most 255, and a PCR index below 64 (the bits of a long).
// Anything past them is a damaged list, named as such, rather than an
// entry to wait for.
const (
	maxPCR          = 63
	maxNameSize     = 255
	maxIMANameSize  = 255
	maxTemplateData = 1 << 20
	imaDigestSize   = 20 // the "ima" template's digest field: SHA-1 or zero-padded MD5
)

// Parse parses a whole list. Bytes after the last complete entry are not an
// error: the list was read while the kernel appended, and List.Pending says
// how many there are.
func Parse(b []byte, o Options) (*List, error) {
	p, err := NewParser(o)
	if err != nil {
		return nil, err
	}
	if _, err := p.Append(b); err != nil {
		return nil, err
	}
	return p.List(), nil
}

// Parser parses a list that grows: each Append parses what was appended
// since the last one, and nothing twice. It is not safe for concurrent use,
// but the Lists it returns are: later Appends never change an entry a List
// already holds.
//
// What it keeps beyond the bytes it is given is bounded by their length:
// an Entry takes 112 bytes and no entry is shorter than 33, so a hostile
// list makes it allocate at most about 3.4 times its size; an entry claiming
// more bytes than have come is waited for, holding only those that have.
type Parser struct {
	hashAlg  eventlog.Alg
	hashSize int
	order    binary.ByteOrder
	blocks   [][]Entry // full blocks, then the one being filled
	n        int       // entries parsed
	size     int64     // bytes of complete entries
	tail     []byte    // the start of an incomplete entry
	err      error     // sticky: the list is damaged where it says
}

// NewParser returns a parser at the start of a list.
func NewParser(o Options) (*Parser, error) {
	alg := o.HashAlg
	if alg == 0 {
		alg = eventlog.AlgSHA1
	}
	size := alg.Size()
	if size == 0 {
		return nil, fmt.Errorf("IMA measurement list: unknown template hash algorithm %s", alg)
	}
	return &Parser{hashAlg: alg, hashSize: size, order: o.Order}, nil
}

// Offset is the number of bytes the parser has taken: where reading the
// list goes on from. Securityfs reports the file's size as 0, so this is the
// only way to know it.
func (p *Parser) Offset() int64 { return p.size + int64(len(p.tail)) }

// Len is the number of complete entries parsed.
func (p *Parser) Len() int { return p.n }

// List returns the entries parsed so far. The List stays valid, and
// unchanged, whatever is appended afterwards.
func (p *Parser) List() *List {
	blocks := make([][]Entry, len(p.blocks))
	for i, b := range p.blocks {
		// Capped: the parser goes on filling the last block, past what
		// this List sees.
		blocks[i] = b[:len(b):len(b)]
	}
	return &List{
		blocks:  blocks,
		n:       p.n,
		Order:   p.order,
		HashAlg: p.hashAlg,
		Size:    p.size,
		Pending: len(p.tail),
	}
}

// Append parses b, the bytes of the list that follow the ones given so far,
// and returns how many entries it completed. Entries alias b (an entry torn
// across two calls aliases a copy): b must not change afterwards.
//
// A damaged list is a *FormatError naming the entry and its byte offset;
// the entries before it are kept, and every later Append returns the same
// error, as nothing after a damaged entry can be framed.
func (p *Parser) Append(b []byte) (int, error) {
	if p.err != nil {
		return 0, p.err
	}
	before := p.n
	if len(p.tail) > 0 {
		used, err := p.completeTail(b)
		if err != nil {
			return p.n - before, p.fail(err)
		}
		b = b[used:]
		if len(p.tail) > 0 {
			return p.n - before, nil // b ended inside the torn entry
		}
	}
	pos := 0
	for pos < len(b) {
		end, err := p.entry(b[pos:], p.size)
		if err != nil {
			return p.n - before, p.fail(err)
		}
		if end < 0 {
			break // torn: wait for more bytes
		}
		pos += end
		p.size += int64(end)
	}
	// Capped, so the next Append copies it instead of writing into b's array.
	p.tail = b[pos:len(b):len(b)]
	if len(p.tail) == 0 {
		p.tail = nil
	}
	return p.n - before, nil
}

func (p *Parser) fail(err error) error {
	p.err = err
	p.tail = nil
	return err
}

// completeTail adds to the torn entry the bytes of b it needs, no more, and
// parses it once it is whole; it returns how many of b's bytes it took.
// Only a torn entry is copied: the entries after it alias b.
func (p *Parser) completeTail(b []byte) (used int, err error) {
	for {
		end, err := p.entry(p.tail, p.size)
		if err != nil {
			return used, err
		}
		if end >= 0 {
			p.size += int64(end)
			p.tail = nil
			return used, nil
		}
		take := min(-end-len(p.tail), len(b)-used)
		if take == 0 {
			return used, nil
		}
		// The parser's own array after the first copy: appending to it
		// doubles, so an entry arriving in small pieces costs linear time.
		p.tail = append(p.tail, b[used:used+take]...)
		used += take
	}
}

// entry parses the entry at the start of rec (list offset off) and returns
// its size, or, when rec ends first, minus the size it needs at least (its
// whole size once its header is there).
func (p *Parser) entry(rec []byte, off int64) (int, error) {
	num := p.n + 1
	fail := func(format string, args ...any) (int, error) {
		return 0, &FormatError{Offset: off, Entry: num, Reason: fmt.Sprintf(format, args...)}
	}
	nameAt := 4 + p.hashSize + 4
	if len(rec) < nameAt {
		return -nameAt, nil
	}
	if p.order == nil {
		order, ok := detectOrder(rec, p.hashSize)
		if !ok {
			return fail("neither byte order gives a plausible PCR index and template name size (PCR %d or %d, name size %d or %d)",
				binary.LittleEndian.Uint32(rec), binary.BigEndian.Uint32(rec),
				binary.LittleEndian.Uint32(rec[4+p.hashSize:]), binary.BigEndian.Uint32(rec[4+p.hashSize:]))
		}
		p.order = order
	}
	o := p.order
	pcr := o.Uint32(rec)
	if pcr > maxPCR {
		return fail("PCR index %d is past %d, the kernel's last", pcr, maxPCR)
	}
	nameSize := o.Uint32(rec[4+p.hashSize:])
	if nameSize > maxNameSize {
		return fail("template name size %d is past %d", nameSize, maxNameSize)
	}
	if nameSize == 0 {
		// The kernel shows a template by its name, or a custom one by its
		// format: never nothing. (A run of zero bytes would otherwise be
		// a list of empty entries.)
		return fail("template name size 0: every template has a name")
	}
	dataAt := nameAt + int(nameSize)
	if len(rec) < dataAt+4 {
		return -(dataAt + 4), nil // the data size, or an "ima" template's digest
	}
	name := templateName(rec[nameAt:dataAt])
	var dataEnd int
	if name == "ima" {
		// No data size: a 20-byte digest, then the file name's size and
		// bytes.
		if len(rec) < dataAt+imaDigestSize+4 {
			return -(dataAt + imaDigestSize + 4), nil
		}
		n := o.Uint32(rec[dataAt+imaDigestSize:])
		if n > maxIMANameSize {
			return fail(`"ima" template file name size %d is past %d`, n, maxIMANameSize)
		}
		dataEnd = dataAt + imaDigestSize + 4 + int(n)
	} else {
		n := o.Uint32(rec[dataAt:])
		if n > maxTemplateData {
			return fail("template data size %d is past %d, the most this parser takes", n, maxTemplateData)
		}
		dataAt += 4
		dataEnd = dataAt + int(n)
	}
	if len(rec) < dataEnd {
		return -dataEnd, nil
	}
	e := Entry{
		Num:          num,
		Offset:       off,
		PCR:          pcr,
		TemplateHash: rec[4 : 4+p.hashSize : 4+p.hashSize],
		TemplateName: name,
		TemplateData: rec[dataAt:dataEnd:dataEnd],
		Raw:          rec[:dataEnd:dataEnd],
	}
	if err := checkFields(&e, o); err != nil {
		return fail("%v", err)
	}
	p.add(e)
	return dataEnd, nil
}

// Entries are kept in blocks of growing size up to maxBlock: a small list
// takes little memory, and a large one grows a block at a time, never
// copying its entries (which would make an append's cost grow with the
// list).
const (
	firstBlock = 64
	maxBlock   = 4096
)

func (p *Parser) add(e Entry) {
	last := len(p.blocks) - 1
	if last < 0 || len(p.blocks[last]) == cap(p.blocks[last]) {
		size := firstBlock
		if last >= 0 {
			size = min(2*cap(p.blocks[last]), maxBlock)
		}
		p.blocks = append(p.blocks, make([]Entry, 0, size))
		last++
	}
	p.blocks[last] = append(p.blocks[last], e)
	p.n++
}

// detectOrder tells the list's byte order from its first entry: the PCR
// index is small (below 64) and so is the template name size (1 to 255),
// which read in the other order is at least 2^24. Were both plausible
// (only a name size of 0, which entry refuses), little-endian wins: the
// order of every common machine and of ima_canonical_fmt.
func detectOrder(rec []byte, hashSize int) (binary.ByteOrder, bool) {
	plausible := func(o binary.ByteOrder) bool {
		return o.Uint32(rec) <= maxPCR && o.Uint32(rec[4+hashSize:]) <= maxNameSize
	}
	switch {
	case plausible(binary.LittleEndian):
		return binary.LittleEndian, true
	case plausible(binary.BigEndian):
		return binary.BigEndian, true
	}
	return nil, false
}

// templateName returns the name as a string, without allocating for the
// kernel's built-in templates.
func templateName(b []byte) string {
	for _, t := range builtinTemplates {
		if string(b) == t.name {
			return t.name
		}
	}
	return string(b)
}
