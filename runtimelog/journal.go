// Package runtimelog keeps a node's runtime event log: the events measured
// into the runtime register (TDX RTMR3, TPM PCR 23) after boot, each with the
// container that recorded it, in a journal that survives server restarts.
//
// Log is that runtime log in a running server: Record measures an event
// (the journal first, then the register), Open settles at start what a
// crash left, and View is what readers see, published anew by each record:
// the platform log with the runtime events appended, and each container's
// own log. Journal is the file alone.
//
// The register and the journal must never disagree, and a server can die at
// any moment. So a record is appended to the journal and made durable
// (fdatasync) before the register is extended, and never the other way
// round. Records that arrive together are appended as a group with one
// fdatasync (a group commit, at most 64 records), then extended one by one
// in journal order. After a crash the journal holds at most one group of
// records the register may lack, always the last records, and the live
// register tells how many (Unextended): it holds the replay of the whole
// journal, or of the journal without its last m records, m at most the
// group's size (extend those now, in order). Anything else means the
// register or the journal was changed behind the server's back; that is
// reported, never repaired by guess.
//
// A crash during an append can also leave the last record cut short. It is
// cut off only once the live register shows it was never extended, that is
// when the register holds the replay of the records before it (RepairTail):
// corruption of a complete record that was extended can look the same, and
// cutting that off would destroy the evidence and put the journal and the
// register out of step for good.
//
// A register is reset when the machine reboots, while the journal stays on
// disk: each journal names the boot it belongs to, and a journal of an
// earlier boot is set aside rather than replayed into registers that never
// held it.
//
// A record may carry the caller's idempotency key, so that a client that
// retries a record (it saw the connection fail, the server restart) gets the
// first outcome back instead of a second extend: the key is in the journal
// with the record, durable before the extend, so it survives a crash too.
//
// File format (all integers little-endian):
//
//	header   "CCNP-RTL" u16 version(2) u8 kind u16 n  boot ID (n bytes)  u32 CRC-32C of the bytes before it
//	entry*   u32 length  u32 CRC-32C(payload)  payload (length bytes):
//	         u64 sequence (1, 2, ...)  u16 n  container ID (n bytes)  u32 uid  i64 time (Unix ns)
//	         u16 k  idempotency key (k bytes, 0 for none)
//	         u32 m  TCG event record (m bytes), exactly as it appears in the event log
//
// Version 1 (before idempotency keys) has the same header and entries without
// the key. Open reads both, and migrates a version 1 journal to version 2 by
// rewriting it whole, atomically (internal/durable): a crash during the
// migration leaves the version 1 file, which the next Open migrates again. A
// version 1 journal with a damaged last record is left as it is until
// RepairTail settles it (the evidence is kept when it cannot be).
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
	"github.com/ccnp-eventlog/ccnp-eventlog/internal/dirfd"
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
	// Key is the caller's idempotency key, "" for none. It names the record
	// among its container's: the server checks that a container does not
	// use one key twice.
	Key string
	// Event is the TCG event record (TCG_PCR_EVENT2, or TCG_PCR_EVENT in a
	// legacy SHA1-only log) as it goes into the event log.
	Event []byte
}

const (
	magic = "CCNP-RTL"
	// version is the format this package writes; it reads 1 and 2.
	version = 2
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

// CorruptError reports a journal that cannot be trusted: damage in the
// middle or in the header, or a damaged last record the live register does
// not show to be unextended (RepairTail).
type CorruptError struct {
	Path   string
	Offset int64
	// Record is the number of the damaged record; 0 when the damage is not
	// in one (the header).
	Record uint64
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
	dir, err := dirfd.Open(path, 0o700)
	if err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	defer dir.Close()
	// It holds every container's events and IDs: private to the server,
	// whatever mode an existing directory had (set through the descriptor:
	// the path may have been swapped meanwhile).
	if err := dirfd.Own(dir, -1, -1, 0o700); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	lockPath := filepath.Join(path, "lock")
	fd, err := unix.Openat(int(dir.Fd()), "lock", unix.O_RDWR|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("state directory: open %s: %w", lockPath, err)
	}
	f := os.NewFile(uintptr(fd), lockPath)
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
	// Records are the journal's intact records, oldest first.
	Records []Record
	// SetAside is the path an earlier boot's journal was moved to, if any.
	SetAside string
	// Damaged is the journal's last record when it is cut short or corrupt
	// in a way a crash during its append can leave; nil when there is none.
	// The file is left as it is, and nothing is appended, until RepairTail
	// settles it with the live register.
	Damaged *Damage
	// MigratedFrom is the format version the journal was rewritten from
	// (1), or 0 when it was already in the current one.
	MigratedFrom int
}

// Damage is a damaged last record: what a crash during its append leaves,
// or what corruption of a complete record can look like.
type Damage struct {
	// Record is the number the record has, or would have had.
	Record uint64
	// Offset is where it starts in the file, and Bytes how many bytes
	// there are from there to the end of the file.
	Offset, Bytes int64
	// Reason says what is wrong with it.
	Reason string
}

// Journal is an open runtime log. It is not safe for concurrent use: the
// caller serializes appends with the extends they go with.
type Journal struct {
	path    string
	kind    eventlog.Kind
	bootID  string
	version int // of the file on disk
	f       *os.File
	size    int64 // bytes of valid content
	// starts are where each record of the last Append starts, for undoing
	// them; nil when there is nothing to undo.
	starts []int64
	seq    uint64
	// damaged is the damaged last record Open found and RepairTail has not
	// settled; records are the intact ones, for rewriting a version 1
	// journal without it.
	damaged *Damage
	records []Record
	// broken is set when a failed write could not be undone: the file's
	// tail is unknown, so nothing more is appended.
	broken error
}

// Open opens the journal of kind for the given boot, creating it if needed.
// A journal of another boot is moved aside (replacing an older one set
// aside). A version 1 journal is rewritten in the current version, unless
// its last record is damaged: then the file is left exactly as it is until
// RepairTail settles it.
func (d *Dir) Open(kind eventlog.Kind, bootID string) (*Journal, Opened, error) {
	path := d.JournalPath(kind)
	var op Opened
	b, err := readLimited(path, maxJournal)
	if errors.Is(err, os.ErrNotExist) {
		j, err := create(path, kind, bootID, nil)
		return j, op, err
	}
	if err != nil {
		return nil, op, err
	}
	hdrLen, ver, hdrKind, hdrBoot, err := parseHeader(b)
	if err != nil {
		return nil, op, &CorruptError{Path: path, Reason: err.Error()}
	}
	if hdrKind != kind {
		return nil, op, &CorruptError{Path: path, Reason: fmt.Sprintf("it is a %s journal, not %s", hdrKind, kind)}
	}
	if hdrBoot != bootID {
		op.SetAside = path + PreviousBootSuffix
		if err := os.Rename(path, op.SetAside); err != nil {
			return nil, op, fmt.Errorf("setting aside the runtime log of boot %s: %w", hdrBoot, err)
		}
		j, err := create(path, kind, bootID, nil)
		return j, op, err
	}
	records, valid, damaged, err := parseEntries(path, b, hdrLen, ver)
	if err != nil {
		return nil, op, err
	}
	op.Records, op.Damaged = records, damaged
	if ver != version && damaged == nil {
		j, err := create(path, kind, bootID, records)
		if err != nil {
			return nil, op, fmt.Errorf("migrating from format version %d: %w", ver, err)
		}
		op.MigratedFrom = ver
		return j, op, nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return nil, op, err
	}
	j := &Journal{path: path, kind: kind, bootID: bootID, version: ver, f: f, size: valid, damaged: damaged}
	if n := len(records); n > 0 {
		j.seq = records[n-1].Seq
	}
	if damaged != nil && ver != version {
		j.records = records
	}
	return j, op, nil
}

// ReadFile decodes the journal at path without opening it for appends or
// repairing it, for tools and tests: its kind, its boot ID, its intact
// records, and how many bytes at its end are a damaged last record.
func ReadFile(path string) (kind eventlog.Kind, bootID string, records []Record, damagedBytes int64, err error) {
	b, err := readLimited(path, maxJournal)
	if err != nil {
		return 0, "", nil, 0, err
	}
	n, ver, kind, bootID, err := parseHeader(b)
	if err != nil {
		return 0, "", nil, 0, &CorruptError{Path: path, Reason: err.Error()}
	}
	records, _, damaged, err := parseEntries(path, b, n, ver)
	if err != nil {
		return 0, "", nil, 0, err
	}
	if damaged != nil {
		damagedBytes = damaged.Bytes
	}
	return kind, bootID, records, damagedBytes, nil
}

// create writes a new journal holding the header and records, atomically: a
// crash leaves the file as it was (none, or the one being migrated) or the
// new one whole.
func create(path string, kind eventlog.Kind, bootID string, records []Record) (*Journal, error) {
	if len(bootID) > 0xFFFF {
		return nil, fmt.Errorf("boot ID of %d bytes", len(bootID))
	}
	b := []byte(magic)
	b = binary.LittleEndian.AppendUint16(b, version)
	b = append(b, byte(kind))
	b = binary.LittleEndian.AppendUint16(b, uint16(len(bootID)))
	b = append(b, bootID...)
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	for i := range records {
		e, err := encodeEntry(&records[i])
		if err != nil {
			return nil, err
		}
		b = append(b, e...)
	}

	if err := durable.WriteFile(path, b, 0o600); err != nil {
		return nil, fmt.Errorf("writing runtime log %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return nil, err
	}
	j := &Journal{path: path, kind: kind, bootID: bootID, version: version, f: f, size: int64(len(b))}
	if n := len(records); n > 0 {
		j.seq = records[n-1].Seq
	}
	return j, nil
}

func parseHeader(b []byte) (n, ver int, kind eventlog.Kind, bootID string, err error) {
	const fixed = len(magic) + 2 + 1 + 2
	if len(b) < fixed+4 || string(b[:len(magic)]) != magic {
		return 0, 0, 0, "", errors.New("no runtime log header")
	}
	ver = int(binary.LittleEndian.Uint16(b[len(magic):]))
	if ver != 1 && ver != version {
		return 0, 0, 0, "", fmt.Errorf("format version %d, this server reads 1 and %d", ver, version)
	}
	kind = eventlog.Kind(b[len(magic)+2])
	idLen := int(binary.LittleEndian.Uint16(b[len(magic)+3:]))
	n = fixed + idLen + 4
	if len(b) < n {
		return 0, 0, 0, "", errors.New("truncated header")
	}
	if crc32.Checksum(b[:n-4], castagnoli) != binary.LittleEndian.Uint32(b[n-4:]) {
		return 0, 0, 0, "", errors.New("header checksum mismatch")
	}
	return n, ver, kind, string(b[fixed : fixed+idLen]), nil
}

// parseEntries decodes the entries after the header. It returns the intact
// records, the length of the content up to the last of them, and a damaged
// last record.
//
// An append cut short by a crash leaves one of these shapes at the end of the
// file: fewer bytes than an entry header, only zeros, an entry declaring more
// bytes than the file holds, or an entry that ends exactly at the end of the
// file with a wrong checksum or a malformed payload (the file's size was made
// durable before its data). Corruption of a complete last record can take
// the same shapes, so a damaged last record is not dropped here: RepairTail
// asks the live register. Any other bad entry is corruption.
func parseEntries(path string, b []byte, off, ver int) ([]Record, int64, *Damage, error) {
	var records []Record
	for off < len(b) {
		rest := b[off:]
		rec, n, reason := parseEntry(rest, ver)
		next := uint64(len(records)) + 1
		if reason != "" {
			if torn(rest) {
				return records, int64(off), &Damage{Record: next, Offset: int64(off), Bytes: int64(len(rest)), Reason: tornReason(rest, reason)}, nil
			}
			return nil, 0, nil, &CorruptError{Path: path, Offset: int64(off), Record: next, Reason: fmt.Sprintf("record %d: %s", next, reason)}
		}
		if rec.Seq != next {
			return nil, 0, nil, &CorruptError{Path: path, Offset: int64(off), Record: next, Reason: fmt.Sprintf("record number %d where %d was expected", rec.Seq, next)}
		}
		records = append(records, rec)
		off += n
	}
	return records, int64(off), nil, nil
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

func tornReason(rest []byte, reason string) string {
	if allZero(rest) {
		return fmt.Sprintf("its %d bytes are all zeros", len(rest))
	}
	return reason
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// parseEntry decodes one entry of format version ver; reason says why it is
// not valid.
func parseEntry(b []byte, ver int) (r Record, n int, reason string) {
	if len(b) < 8 {
		return r, 0, fmt.Sprintf("%d bytes, fewer than an entry header", len(b))
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
	if ver >= 2 {
		r.Key = string(rd.bytes(int(rd.u16())))
	}
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

// EntrySize is how many bytes r takes in the journal.
func EntrySize(r *Record) int64 {
	return 8 + 8 + 2 + int64(len(r.ContainerID)) + 4 + 8 + 2 + int64(len(r.Key)) + 4 + int64(len(r.Event))
}

// encodeEntry is r as a journal entry, in the current format.
func encodeEntry(r *Record) ([]byte, error) {
	switch {
	case len(r.ContainerID) > 0xFFFF:
		return nil, fmt.Errorf("container ID of %d bytes", len(r.ContainerID))
	case len(r.Key) > 0xFFFF:
		return nil, fmt.Errorf("idempotency key of %d bytes", len(r.Key))
	case EntrySize(r)-8 > maxEntry:
		return nil, fmt.Errorf("a runtime log entry of %d bytes exceeds %d", EntrySize(r)-8, maxEntry)
	}
	p := make([]byte, 8, EntrySize(r))
	p = binary.LittleEndian.AppendUint64(p, r.Seq)
	p = binary.LittleEndian.AppendUint16(p, uint16(len(r.ContainerID)))
	p = append(p, r.ContainerID...)
	p = binary.LittleEndian.AppendUint32(p, r.UID)
	p = binary.LittleEndian.AppendUint64(p, uint64(r.Time.UnixNano()))
	p = binary.LittleEndian.AppendUint16(p, uint16(len(r.Key)))
	p = append(p, r.Key...)
	p = binary.LittleEndian.AppendUint32(p, uint32(len(r.Event)))
	p = append(p, r.Event...)
	binary.LittleEndian.PutUint32(p, uint32(len(p)-8))
	binary.LittleEndian.PutUint32(p[4:], crc32.Checksum(p[8:], castagnoli))
	return p, nil
}

// Append writes records as the next ones, in order, and makes them
// durable with one fdatasync before it returns: once Append returns nil,
// they survive a crash (a group commit: records that arrived together
// share the wait for the disk). It sets their Seq. A failed write is
// undone, so the journal never ends in a partial record the server knows
// of.
func (j *Journal) Append(records ...*Record) error {
	if j.broken != nil {
		return j.broken
	}
	if j.damaged != nil {
		return fmt.Errorf("runtime log %s ends in a damaged record (%d) not yet settled with the register: nothing can follow it", j.path, j.damaged.Record)
	}
	var b []byte
	starts := make([]int64, len(records))
	seq := j.seq
	for i, r := range records {
		starts[i] = j.size + int64(len(b))
		seq++
		r.Seq = seq
		if r.Time.IsZero() {
			r.Time = time.Now()
		}
		r.Time = r.Time.UTC()
		e, err := encodeEntry(r)
		if err != nil {
			return err
		}
		b = append(b, e...)
	}
	_, err := j.f.Write(b)
	if err == nil {
		err = fdatasync(int(j.f.Fd()))
	}
	if err != nil {
		err = fmt.Errorf("appending to runtime log %s: %w", j.path, err)
		if terr := j.truncate(j.size); terr != nil {
			j.broken = fmt.Errorf("%w; undoing the partial write failed too (%v): restart the server to recover the log", err, terr)
			return j.broken
		}
		return err
	}
	j.starts = starts
	j.size += int64(len(b))
	j.seq = seq
	return nil
}

// fdatasync makes a journal's appends durable; tests count its calls.
var fdatasync = unix.Fdatasync

// UndoLast removes the record the last Append wrote last, durably: for a
// record whose register extend is known not to have happened.
func (j *Journal) UndoLast() error { return j.UndoFrom(j.seq) }

// UndoFrom removes the records from seq on, durably, all of them written
// by the last Append: for records whose register extends are known not to
// have happened (the extend of seq failed, and those after it were never
// tried).
func (j *Journal) UndoFrom(seq uint64) error {
	if j.broken != nil {
		return j.broken
	}
	first := j.seq - uint64(len(j.starts)) + 1
	if len(j.starts) == 0 || seq < first || seq > j.seq {
		return fmt.Errorf("runtime log: record %d is not one the last append wrote, which alone can be undone", seq)
	}
	at := j.starts[seq-first]
	if err := j.truncate(at); err != nil {
		j.broken = fmt.Errorf("undoing records %d..%d of %s: %w: restart the server to recover the log", seq, j.seq, j.path, err)
		return j.broken
	}
	j.size, j.seq = at, seq-1
	j.starts = j.starts[:seq-first]
	if len(j.starts) == 0 {
		j.starts = nil
	}
	return nil
}

// Damaged is the damaged last record Open found and RepairTail has not
// settled, or nil.
func (j *Journal) Damaged() *Damage { return j.damaged }

// RepairTail settles the damaged last record Open found, with the live
// register. full is the boot log followed by every intact record's event.
// If the register holds the replay of full, or of full without up to max-1
// of its last records (appended in one group with the damaged one, whose
// extends follow in journal order), the damaged record was never extended:
// it is cut off (a version 1 journal is migrated at the same time)
// and the journal takes appends again. Otherwise the register holds
// something the journal cannot explain without the damaged record (it was
// extended, or more is wrong): a CorruptError naming the record, its offset
// and the file, which is left exactly as it is.
func (j *Journal) RepairTail(full *eventlog.Log, index uint32, max int, live eventlog.Bank) error {
	d := j.damaged
	if d == nil {
		return nil
	}
	_, err := Unextended(full, j.kind, index, int(j.seq), max-1, live)
	if err != nil {
		return &CorruptError{Path: j.path, Offset: d.Offset, Record: d.Record, Reason: fmt.Sprintf(
			"record %d, the last (%d bytes), is damaged (%s), and the live register does not show it was never extended: %v; the file is kept as it is",
			d.Record, d.Bytes, d.Reason, err)}
	}
	if j.version != version {
		nj, err := create(j.path, j.kind, j.bootID, j.records)
		if err != nil {
			return fmt.Errorf("cutting off the damaged last record of %s (migrating it from format version %d): %w", j.path, j.version, err)
		}
		j.f.Close()
		*j = *nj
		return nil
	}
	if err := j.truncate(j.size); err != nil {
		return fmt.Errorf("cutting off the damaged last record of %s: %w", j.path, err)
	}
	j.damaged = nil
	return nil
}

func (j *Journal) truncate(size int64) error {
	if err := j.f.Truncate(size); err != nil {
		return err
	}
	return fdatasync(int(j.f.Fd()))
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
