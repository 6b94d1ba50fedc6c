package hwsource

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog/ima"
	"github.com/ccnp-eventlog/ccnp-eventlog/internal/boundedread"
)

// IMAListPath is where the kernel shows its IMA measurement list, under
// securityfs, relative to the host's root. It is root's only (mode 0440),
// and it is not staged: a copy would stop growing.
const IMAListPath = "sys/kernel/security/ima/binary_runtime_measurements"

// DefaultIMAMaxBytes is IMAOptions.MaxBytes's default (serve's
// --ima-max-bytes). An ima-ng entry with a SHA-256 file digest takes 100 to
// 250 bytes, so 32 MiB is some 150,000 to 300,000 entries, more than a node
// with a distribution's IMA policy logs in months. Held in memory, a list
// costs its bytes plus 112 bytes per entry (ima.Entry): about 50 MiB for
// 32 MiB of real entries, and at most 32 + 108 MiB for a hostile list of
// the smallest entries (33 bytes).
const DefaultIMAMaxBytes = 32 << 20

// IMAOptions configure an IMAList.
type IMAOptions struct {
	// MaxBytes bounds the list held: past it, requests fail with a
	// *boundedread.TooLargeError naming the path and the limit, rather than
	// serve a list that no longer grows. 0: DefaultIMAMaxBytes.
	MaxBytes int64
	// ReadBudget bounds the time one request spends reading: a list that
	// grew by more than it can read in that time is served as far as it was
	// read, and the next request reads on. 0: DefaultIMAReadBudget.
	ReadBudget time.Duration
	// Wait bounds how long a request waits for another's read (a read that
	// never returns, on a hung file system, holds the list). 0:
	// DefaultIMAWait.
	Wait time.Duration
}

// Defaults of IMAOptions.
const (
	// DefaultIMAReadBudget: the whole of a 32 MiB list is read and parsed
	// in about half a second on a loaded 2-core machine (BENCHMARKS.md);
	// what a list grows by between requests, in milliseconds.
	DefaultIMAReadBudget = 5 * time.Second
	DefaultIMAWait       = 30 * time.Second
)

// IMASnapshot is the measurement list as one request sees it.
type IMASnapshot struct {
	// List is the complete entries read so far. It never changes.
	List *ima.List
	// Gen changes whenever List does: it counts the entries, and the times
	// the list was found replaced (a new boot, on a fake host) in the bits
	// above 40.
	Gen uint64
	// AtEnd: the read that made List reached the end of what the kernel
	// showed; false when the read budget stopped it first.
	AtEnd bool
	// Source is where the list is read from.
	Source string
}

// IMAList follows the kernel's IMA measurement list as it grows. securityfs
// reports the file's size as 0, and the list only grows: the list is kept
// open, and each request reads on from where the last one stopped, within
// a bound on time (IMAOptions.ReadBudget) and bytes (MaxBytes), feeding
// what it read to an ima.Parser, so no entry is parsed twice. An entry the
// kernel was still appending (torn at the end of what was read) is not an
// error: it is completed by a later read.
//
// What it keeps is the list's bytes, in blocks of 256 KiB that entries
// alias, and 112 bytes per entry (see DefaultIMAMaxBytes).
//
// Requests take turns reading; the list itself is published for all, and
// once read, a List is shared without a lock.
type IMAList struct {
	feed      imaFeed
	name      string
	simulated bool
	opts      IMAOptions
	turn      chan struct{} // held by the request reading

	// Guarded by turn.
	parser *ima.Parser
	epoch  uint64
	err    error // the list is damaged or too large: until it is replaced

	snap atomic.Pointer[IMASnapshot]
}

// imaFeed is where a list's bytes come from.
type imaFeed interface {
	// sync checks that the list read so far (size bytes, the last entry
	// last, nil before any) is still the one at the source: fresh reports
	// that it is not, or that nothing was read yet, and reading starts
	// over from byte 0.
	sync(size int64, last *ima.Entry) (fresh bool, err error)
	// next returns at most max bytes of the list from byte off on; none at
	// its end. They must not change afterwards: entries alias them.
	next(off int64, max int) ([]byte, error)
}

// NewIMA returns the real backend's list: root/IMAListPath. Nothing is
// read until asked.
func NewIMA(root string, opts IMAOptions) *IMAList {
	path := hostPath(root, IMAListPath)
	return newIMAList(&imaFile{path: path}, path, false, opts)
}

// NewIMABytes returns a list read from memory: list returns the list as it
// is now; what it returned once must never change (it may grow). The
// simulated TPM's list is served so.
func NewIMABytes(name string, list func() ([]byte, error), simulated bool, opts IMAOptions) *IMAList {
	return newIMAList(&imaBytes{list: list}, name, simulated, opts)
}

func newIMAList(feed imaFeed, name string, simulated bool, opts IMAOptions) *IMAList {
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultIMAMaxBytes
	}
	if opts.ReadBudget <= 0 {
		opts.ReadBudget = DefaultIMAReadBudget
	}
	if opts.Wait <= 0 {
		opts.Wait = DefaultIMAWait
	}
	return &IMAList{feed: feed, name: name, simulated: simulated, opts: opts, turn: make(chan struct{}, 1)}
}

// Name says where the list comes from.
func (l *IMAList) Name() string { return l.name }

// Simulated reports whether the list is a simulated kernel's.
func (l *IMAList) Simulated() bool { return l.simulated }

// Snapshot reads what was appended to the list since the last call and
// returns the list now.
func (l *IMAList) Snapshot(ctx context.Context) (*IMASnapshot, error) {
	wait := time.NewTimer(l.opts.Wait)
	defer wait.Stop()
	select {
	case l.turn <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-wait.C:
		return nil, &TimeoutError{Source: "IMA measurement list " + l.name, After: l.opts.Wait}
	}
	defer func() { <-l.turn }()
	return l.update(ctx)
}

// readChunk is the most one read asks for.
const readChunk = 256 << 10

func (l *IMAList) update(ctx context.Context) (*IMASnapshot, error) {
	var size int64
	var last *ima.Entry
	prev := l.snap.Load()
	if l.parser != nil {
		size = l.parser.Offset()
		if prev != nil {
			last = prev.List.Entry(prev.List.Len())
		}
	}
	fresh, err := l.feed.sync(size, last)
	if err != nil {
		// Gone, or something else in its place: whatever appears next is
		// read from its start.
		l.parser, l.err = nil, nil
		l.snap.Store(nil)
		return nil, err
	}
	if fresh || l.parser == nil {
		p, err := ima.NewParser(ima.Options{})
		if err != nil {
			return nil, err
		}
		l.parser, l.err, prev = p, nil, nil
		l.epoch++
		l.snap.Store(nil)
	}
	if l.err != nil {
		return nil, l.err
	}
	deadline := time.Now().Add(l.opts.ReadBudget)
	atEnd := false
	for {
		off := l.parser.Offset()
		if off >= l.opts.MaxBytes {
			l.err = &boundedread.TooLargeError{Path: l.name, Limit: l.opts.MaxBytes}
			l.err = fmt.Errorf("the IMA measurement list %s %w, the most this server holds (--ima-max-bytes)", l.name, l.err)
			return nil, l.err
		}
		b, err := l.feed.next(off, int(min(readChunk, l.opts.MaxBytes-off)))
		if err != nil {
			return nil, fmt.Errorf("reading the IMA measurement list %s at byte %d: %w", l.name, off, err)
		}
		if len(b) == 0 {
			atEnd = true
			break
		}
		if _, err := l.parser.Append(b); err != nil {
			l.err = fmt.Errorf("%s: %w", l.name, err)
			return nil, l.err
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			break
		}
	}
	if prev != nil && prev.List.Len() == l.parser.Len() {
		if prev.AtEnd == atEnd && prev.List.Size+int64(prev.List.Pending) == l.parser.Offset() {
			return prev, nil
		}
		// The same entries (Gen stays): only the torn entry's bytes, or
		// where the read stopped, changed.
		s := &IMASnapshot{List: l.parser.List(), Gen: prev.Gen, AtEnd: atEnd, Source: l.name}
		l.snap.Store(s)
		return s, nil
	}
	s := &IMASnapshot{List: l.parser.List(), Gen: l.epoch<<40 | uint64(l.parser.Len()), AtEnd: atEnd, Source: l.name}
	l.snap.Store(s)
	return s, nil
}

// imaFile is the list's file, kept open. Between requests the list may have
// been replaced (on a fake host: a new boot written over the tree). sync
// finds out what it can:
//
//   - another file at the path (renamed over it, or removed and written
//     again): its device and inode differ from the file held;
//   - a file cut shorter than what was read (a regular file's size; a
//     securityfs file reports 0);
//   - a file whose last entry read is no longer there, byte for byte
//     (regular files only: on securityfs a read at another offset makes
//     the kernel walk the list again, and the kernel's own list is never
//     rewritten).
//
// A regular file rewritten in place, to at least the length read, with the
// same bytes where the last entry read was, is not noticed: its earlier
// entries are served as they were read until the file is replaced. The
// kernel's list cannot be rewritten (it is reset only by a reboot, which
// restarts the server); only a fake host's can.
type imaFile struct {
	path       string
	f          *os.File
	dev, ino   uint64
	securityfs bool
	arena      []byte // where reads go: entries alias it, so it is never reused
}

func (r *imaFile) sync(size int64, last *ima.Entry) (bool, error) {
	var st unix.Stat_t
	if err := unix.Lstat(r.path, &st); err != nil {
		r.close()
		if errors.Is(err, unix.ENOENT) {
			return false, fmt.Errorf("no IMA measurement list at %s (a kernel without IMA, or securityfs not mounted there): %w", r.path, fs.ErrNotExist)
		}
		return false, &fs.PathError{Op: "lstat", Path: r.path, Err: err}
	}
	if r.f != nil && (st.Dev != r.dev || st.Ino != r.ino) {
		r.close()
	}
	if r.f == nil {
		return true, r.open()
	}
	if r.securityfs {
		return false, nil
	}
	if err := unix.Fstat(int(r.f.Fd()), &st); err != nil {
		return false, &fs.PathError{Op: "fstat", Path: r.path, Err: err}
	}
	if st.Size < size || !r.holds(last) {
		r.close()
		return true, r.open()
	}
	return false, nil
}

// holds reports whether the file still has the last entry read where it
// was: its last 64 bytes are read again, no more, whatever the entry's size.
func (r *imaFile) holds(last *ima.Entry) bool {
	if last == nil {
		return true
	}
	tail := last.Raw[max(len(last.Raw)-64, 0):]
	at := last.Offset + int64(len(last.Raw)-len(tail))
	buf := make([]byte, len(tail))
	n, err := r.f.ReadAt(buf, at)
	return n == len(buf) && (err == nil || err == io.EOF) && bytes.Equal(buf, tail)
}

func (r *imaFile) open() error {
	f, err := boundedread.Open(r.path, unix.O_RDONLY, 0, "a regular file (the kernel's IMA measurement list)")
	if errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("cannot read the IMA measurement list: %w (the kernel makes it readable by root and group 0 only: run the server as root or in group 0, as the chart does with ima.enabled; it cannot be staged, a copy would not grow)", err)
	}
	if err != nil {
		return err
	}
	var st unix.Stat_t
	var sfs unix.Statfs_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return &fs.PathError{Op: "fstat", Path: r.path, Err: err}
	}
	if err := unix.Fstatfs(int(f.Fd()), &sfs); err != nil {
		f.Close()
		return &fs.PathError{Op: "fstatfs", Path: r.path, Err: err}
	}
	r.f, r.dev, r.ino, r.securityfs = f, st.Dev, st.Ino, sfs.Type == unix.SECURITYFS_MAGIC
	r.arena = nil
	return nil
}

func (r *imaFile) close() {
	if r.f != nil {
		r.f.Close()
		r.f = nil
	}
}

// arenaBlock is the size of the blocks reads go to; a block with less than
// arenaSpare left is left for a new one.
const (
	arenaBlock = 256 << 10
	arenaSpare = 4 << 10
)

// next reads on from the file's position, which is off: reads are
// sequential, as securityfs serves them best.
func (r *imaFile) next(off int64, max int) ([]byte, error) {
	if r.f == nil {
		return nil, fmt.Errorf("%s is not open", r.path)
	}
	if cap(r.arena)-len(r.arena) < arenaSpare {
		r.arena = make([]byte, 0, arenaBlock)
	}
	free := r.arena[len(r.arena):cap(r.arena)]
	if len(free) > max {
		free = free[:max]
	}
	for {
		n, err := r.f.Read(free)
		if n > 0 {
			b := r.arena[len(r.arena) : len(r.arena)+n : len(r.arena)+n]
			r.arena = r.arena[:len(r.arena)+n]
			return b, nil
		}
		if err == io.EOF || err == nil {
			return nil, nil
		}
		if errors.Is(err, unix.EINTR) {
			continue
		}
		return nil, err
	}
}

// imaBytes is a list in memory.
type imaBytes struct {
	list func() ([]byte, error)
	seen []byte // the list as the last sync saw it
}

func (m *imaBytes) sync(size int64, last *ima.Entry) (bool, error) {
	seen, err := m.list()
	if err != nil {
		return false, err
	}
	m.seen = seen
	if int64(len(m.seen)) < size {
		return true, nil
	}
	if last != nil && !bytes.Equal(m.seen[last.Offset:last.Offset+int64(len(last.Raw))], last.Raw) {
		return true, nil
	}
	return false, nil
}

func (m *imaBytes) next(off int64, max int) ([]byte, error) {
	if off >= int64(len(m.seen)) {
		return nil, nil
	}
	b := m.seen[off:]
	if len(b) > max {
		b = b[:max]
	}
	return b, nil
}
