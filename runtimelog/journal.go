// Package runtimelog keeps a node's runtime event log: the events measured
// into the runtime register (TDX RTMR3, TPM PCR 23) after boot, each with the
// container that recorded it, in a journal that survives server restarts.
//
// The register and the journal must never disagree, and a server can die at
// any moment. So a record is appended to the journal and made durable
// (fdatasync) before the register is extended, and never the other way
// round. After a crash the journal holds at most one record the register may
// lack, the last one, and the live register tells which (Reconcile): it holds
// either the replay of the whole journal (the extend happened) or the replay
// without its last record (extend it now). Anything else means the register
// or the journal was changed behind the server's back; that is reported,
// never repaired by guess.
//
// A register is reset when the machine reboots, while the journal stays on
// disk: each journal names the boot it belongs to, and a journal of an
// earlier boot is set aside rather than replayed into registers that never
// held it.
//
// File format (all integers little-endian):
//
//	header   "CCNP-RTL" u16 version(1) u8 kind u16 n  boot ID (n bytes)  u32 CRC-32C of the bytes before it
//	entry*   u32 length  u32 CRC-32C(payload)  payload (length bytes):
//	         u64 sequence (1, 2, ...)  u16 n  container ID (n bytes)  u32 uid  i64 time (Unix ns)
//	         u32 m  TCG event record (m bytes), exactly as it appears in the event log
package runtimelog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"github.com/ccnp-eventlog/ccnp-eventlog/internal/boundedread"
	"github.com/ccnp-eventlog/ccnp-eventlog/internal/durable"
)

// Record is one runtime event and who recorded it.
type Record struct {
	// Seq numbers the journal's records from 1.
	Seq uint64
	// ContainerID is the container the event is attributed to.
	ContainerID string
	// UID is the caller's uid.
	UID uint32
	// Time is when the server recorded the event.
	Time time.Time
	// Event is the TCG event record (TCG_PCR_EVENT2, or TCG_PCR_EVENT in a
	// legacy SHA1-only log) as it goes into the event log.
	Event []byte
}

const (
	magic   = "CCNP-RTL"
	version = 1
	// maxEntry bounds one entry when reading: far above any record the
	// server writes (their data is limited to kilobytes), it only keeps a
	// corrupt length from making the reader allocate gigabytes.
	maxEntry = 16 << 20
	// maxJournal bounds the journal file read at start.
	maxJournal = 1 << 30
	// PreviousBootSuffix is appended to the name of a journal of an earlier boot.
	PreviousBootSuffix = ".previous-boot"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// CorruptError reports a journal that cannot be trusted: not a torn last
// append, which Open repairs, but damage in the middle or in the header.
type CorruptError struct {
	Path   string
	Offset int64
	Reason string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("runtime log %s is corrupt at byte %d: %s (move it aside to start a new one; the registers will then disagree with it until the next reboot)", e.Path, e.Offset, e.Reason)
}

// Dir is a state directory holding one journal per log kind. It is locked
// for the life of the process: two servers appending to one journal would
// interleave records the registers hold in another order.
type Dir struct {
	path string
	lock *os.File
}

// OpenDir creates (mode 0700) and locks a state directory.
func OpenDir(path string) (*Dir, error) {
	if err := os.MkdirAll(path, 0o700); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	// It holds every container's events and IDs: private to the server,
	// whatever mode an existing directory had.
	if err := os.Chmod(path, 0o700); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	lockPath := filepath.Join(path, "lock")
	f, err := os.OpenFile(lockPath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("state directory %s is in use by another server (it holds %s): two servers must not share one", path, lockPath)
		}
		return nil, fmt.Errorf("state directory: lock %s: %w", lockPath, err)
	}
	return &Dir{path: path, lock: f}, nil
}

// Path is the directory's path.
func (d *Dir) Path() string { return d.path }

// Close releases the directory.
func (d *Dir) Close() error { return d.lock.Close() }

// JournalPath is where the journal of kind lives.
func (d *Dir) JournalPath(kind eventlog.Kind) string {
	switch kind {
	case eventlog.TDX:
		return filepath.Join(d.path, "runtime-tdx.log")
	case eventlog.TPM:
		return filepath.Join(d.path, "runtime-tpm.log")
	}
	return filepath.Join(d.path, fmt.Sprintf("runtime-kind%d.log", kind))
}

// Opened says what Open found.
type Opened struct {
	// Records are the journal's records, oldest first.
	Records []Record
	// SetAside is the path an earlier boot's journal was moved to, if any.
	SetAside string
	// TornBytes is the size of a torn last append Open removed: the server
	// stopped while writing it, before it could extend the register.
	TornBytes int64
}

// Journal is an open runtime log. It is not safe for concurrent use: the
// caller serializes appends with the extends they go with.
type Journal struct {
	path string
	f    *os.File
	size int64 // bytes of valid content
	prev int64 // size before the last Append, -1 when there is none to undo
	seq  uint64
	// broken is set when a failed write could not be undone: the file's
	// tail is unknown, so nothing more is appended.
	broken error
}

// Open opens the journal of kind for the given boot, creating it if needed.
// A journal of another boot is moved aside (replacing an older one set
// aside). A torn last append is cut off.
func (d *Dir) Open(kind eventlog.Kind, bootID string) (*Journal, Opened, error) {
	path := d.JournalPath(kind)
	var op Opened
	b, err := readLimited(path, maxJournal)
	if errors.Is(err, os.ErrNotExist) {
		j, err := create(path, kind, bootID)
		return j, op, err
	}
	if err != nil {
		return nil, op, err
	}
	hdrLen, hdrKind, hdrBoot, err := parseHeader(b)
	if err != nil {
		return nil, op, &CorruptError{path, 0, err.Error()}
	}
	if hdrKind != kind {
		return nil, op, &CorruptError{path, 0, fmt.Sprintf("it is a %s journal, not %s", hdrKind, kind)}
	}
	if hdrBoot != bootID {
		op.SetAside = path + PreviousBootSuffix
		if err := os.Rename(path, op.SetAside); err != nil {
			return nil, op, fmt.Errorf("setting aside the runtime log of boot %s: %w", hdrBoot, err)
		}
		j, err := create(path, kind, bootID)
		return j, op, err
	}
	records, valid, err := parseEntries(path, b, hdrLen)
	if err != nil {
		return nil, op, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return nil, op, err
	}
	j := &Journal{path: path, f: f, size: valid, prev: -1}
	if n := len(records); n > 0 {
		j.seq = records[n-1].Seq
	}
	if torn := int64(len(b)) - valid; torn > 0 {
		if err := j.truncate(valid); err != nil {
			f.Close()
			return nil, op, fmt.Errorf("cutting off the torn last record of %s: %w", path, err)
		}
		op.TornBytes = torn
	}
	op.Records = records
	return j, op, nil
}

// ReadFile decodes the journal at path without opening it for appends or
// repairing it, for tools and tests: its kind, its boot ID, its records, and
// how many bytes at its end are a torn append that Open would cut off.
func ReadFile(path string) (kind eventlog.Kind, bootID string, records []Record, tornBytes int64, err error) {
	b, err := readLimited(path, maxJournal)
	if err != nil {
		return 0, "", nil, 0, err
	}
	n, kind, bootID, err := parseHeader(b)
	if err != nil {
		return 0, "", nil, 0, &CorruptError{path, 0, err.Error()}
	}
	records, valid, err := parseEntries(path, b, n)
	if err != nil {
		return 0, "", nil, 0, err
	}
	return kind, bootID, records, int64(len(b)) - valid, nil
}

// create writes a new journal holding only its header, atomically: a crash
// leaves either no journal or a complete header.
func create(path string, kind eventlog.Kind, bootID string) (*Journal, error) {
	if len(bootID) > 0xFFFF {
		return nil, fmt.Errorf("boot ID of %d bytes", len(bootID))
	}
	hdr := []byte(magic)
	hdr = binary.LittleEndian.AppendUint16(hdr, version)
	hdr = append(hdr, byte(kind))
	hdr = binary.LittleEndian.AppendUint16(hdr, uint16(len(bootID)))
	hdr = append(hdr, bootID...)
	hdr = binary.LittleEndian.AppendUint32(hdr, crc32.Checksum(hdr, castagnoli))

	if err := durable.WriteFile(path, hdr, 0o600); err != nil {
		return nil, fmt.Errorf("creating runtime log %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return nil, err
	}
	return &Journal{path: path, f: f, size: int64(len(hdr)), prev: -1}, nil
}

func parseHeader(b []byte) (n int, kind eventlog.Kind, bootID string, err error) {
	const fixed = len(magic) + 2 + 1 + 2
	if len(b) < fixed+4 || string(b[:len(magic)]) != magic {
		return 0, 0, "", errors.New("no runtime log header")
	}
	if v := binary.LittleEndian.Uint16(b[len(magic):]); v != version {
		return 0, 0, "", fmt.Errorf("format version %d, this server reads %d", v, version)
	}
	kind = eventlog.Kind(b[len(magic)+2])
	idLen := int(binary.LittleEndian.Uint16(b[len(magic)+3:]))
	n = fixed + idLen + 4
	if len(b) < n {
		return 0, 0, "", errors.New("truncated header")
	}
	if crc32.Checksum(b[:n-4], castagnoli) != binary.LittleEndian.Uint32(b[n-4:]) {
		return 0, 0, "", errors.New("header checksum mismatch")
	}
	return n, kind, string(b[fixed : fixed+idLen]), nil
}

// parseEntries decodes the entries after the header. It returns the records
// and the length of the valid content, which ends before a torn last append.
//
// An append cut short by a crash leaves one of these shapes at the end of the
// file: fewer bytes than an entry header, an entry declaring more bytes than
// the file holds, or an entry that ends exactly at the end of the file with
// a wrong checksum or only zeros (the file's size was made durable before its
// data). Any other bad entry is corruption. The rule can only err towards
// dropping a record that was in fact extended, which the register check
// after Open reports; it never makes a record appear that was not appended.
func parseEntries(path string, b []byte, off int) ([]Record, int64, error) {
	var records []Record
	for off < len(b) {
		rest := b[off:]
		rec, n, reason := parseEntry(rest)
		if reason != "" {
			if torn(rest) {
				return records, int64(off), nil
			}
			return nil, 0, &CorruptError{path, int64(off), fmt.Sprintf("record %d: %s", len(records)+1, reason)}
		}
		if rec.Seq != uint64(len(records))+1 {
			return nil, 0, &CorruptError{path, int64(off), fmt.Sprintf("record number %d where %d was expected", rec.Seq, len(records)+1)}
		}
		records = append(records, rec)
		off += n
	}
	return records, int64(off), nil
}

// torn reports whether rest, a bad entry and everything after it, has the
// shape of an append a crash cut short.
func torn(rest []byte) bool {
	if len(rest) < 8 || allZero(rest) {
		return true
	}
	size := int64(binary.LittleEndian.Uint32(rest))
	return size <= maxEntry && 8+size >= int64(len(rest))
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// parseEntry decodes one entry; reason says why it is not valid.
func parseEntry(b []byte) (r Record, n int, reason string) {
	if len(b) < 8 {
		return r, 0, "truncated entry header"
	}
	size := binary.LittleEndian.Uint32(b)
	if size > maxEntry {
		return r, 0, fmt.Sprintf("entry length %d exceeds %d", size, maxEntry)
	}
	if int64(len(b)-8) < int64(size) {
		return r, 0, fmt.Sprintf("entry of %d bytes with %d left", size, len(b)-8)
	}
	p := b[8 : 8+size]
	if crc32.Checksum(p, castagnoli) != binary.LittleEndian.Uint32(b[4:]) {
		return r, 0, "checksum mismatch"
	}
	rd := reader{b: p}
	r.Seq = rd.u64()
	r.ContainerID = string(rd.bytes(int(rd.u16())))
	r.UID = rd.u32()
	r.Time = time.Unix(0, int64(rd.u64())).UTC()
	r.Event = bytes.Clone(rd.bytes(int(rd.u32())))
	if rd.short || len(rd.b) != 0 {
		return Record{}, 0, "malformed entry payload"
	}
	return r, 8 + int(size), ""
}

type reader struct {
	b     []byte
	short bool
}

func (r *reader) bytes(n int) []byte {
	if r.short || n > len(r.b) {
		r.short = true
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) u16() uint16 {
	if b := r.bytes(2); b != nil {
		return binary.LittleEndian.Uint16(b)
	}
	return 0
}

func (r *reader) u32() uint32 {
	if b := r.bytes(4); b != nil {
		return binary.LittleEndian.Uint32(b)
	}
	return 0
}

func (r *reader) u64() uint64 {
	if b := r.bytes(8); b != nil {
		return binary.LittleEndian.Uint64(b)
	}
	return 0
}

// Append writes r as the next record and makes it durable before it
// returns: once Append returns nil, the record survives a crash. It sets
// r.Seq. A failed write is undone, so the journal never ends in a partial
// record the server knows of.
func (j *Journal) Append(r *Record) error {
	if j.broken != nil {
		return j.broken
	}
	if len(r.ContainerID) > 0xFFFF {
		return fmt.Errorf("container ID of %d bytes", len(r.ContainerID))
	}
	r.Seq = j.seq + 1
	if r.Time.IsZero() {
		r.Time = time.Now()
	}
	r.Time = r.Time.UTC()
	p := binary.LittleEndian.AppendUint64(nil, r.Seq)
	p = binary.LittleEndian.AppendUint16(p, uint16(len(r.ContainerID)))
	p = append(p, r.ContainerID...)
	p = binary.LittleEndian.AppendUint32(p, r.UID)
	p = binary.LittleEndian.AppendUint64(p, uint64(r.Time.UnixNano()))
	p = binary.LittleEndian.AppendUint32(p, uint32(len(r.Event)))
	p = append(p, r.Event...)
	if len(p) > maxEntry {
		return fmt.Errorf("a runtime log entry of %d bytes exceeds %d", len(p), maxEntry)
	}
	e := binary.LittleEndian.AppendUint32(make([]byte, 0, 8+len(p)), uint32(len(p)))
	e = binary.LittleEndian.AppendUint32(e, crc32.Checksum(p, castagnoli))
	e = append(e, p...)

	_, err := j.f.Write(e)
	if err == nil {
		err = unix.Fdatasync(int(j.f.Fd()))
	}
	if err != nil {
		err = fmt.Errorf("appending to runtime log %s: %w", j.path, err)
		if terr := j.truncate(j.size); terr != nil {
			j.broken = fmt.Errorf("%w; undoing the partial write failed too (%v): restart the server to recover the log", err, terr)
			return j.broken
		}
		return err
	}
	j.prev = j.size
	j.size += int64(len(e))
	j.seq = r.Seq
	return nil
}

// UndoLast removes the record the last Append wrote, durably: for a record
// whose register extend is known not to have happened.
func (j *Journal) UndoLast() error {
	if j.broken != nil {
		return j.broken
	}
	if j.prev < 0 {
		return errors.New("runtime log: no append to undo")
	}
	if err := j.truncate(j.prev); err != nil {
		j.broken = fmt.Errorf("undoing the last record of %s: %w: restart the server to recover the log", j.path, err)
		return j.broken
	}
	j.size, j.prev = j.prev, -1
	j.seq--
	return nil
}

func (j *Journal) truncate(size int64) error {
	if err := j.f.Truncate(size); err != nil {
		return err
	}
	return unix.Fdatasync(int(j.f.Fd()))
}

// Path is the journal's file.
func (j *Journal) Path() string { return j.path }

// Size is the journal's size in bytes.
func (j *Journal) Size() int64 { return j.size }

// Close closes the journal.
func (j *Journal) Close() error { return j.f.Close() }

func readLimited(path string, limit int64) ([]byte, error) {
	b, err := boundedread.ReadFile(path, limit)
	var tooLarge *boundedread.TooLargeError
	if errors.As(err, &tooLarge) {
		return nil, fmt.Errorf("runtime log %s is larger than %d bytes", path, limit)
	}
	return b, err
}
