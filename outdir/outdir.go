// Package outdir keeps the directory the server writes replies' files to:
// each file named by its content (written once to a temporary name, then
// renamed into place, never rewritten while a client may read it), the whole
// bounded in size and age, and a path handed out kept readable for a
// minimum time.
//
// Everything is done through descriptors. The directory is held open from
// the start; a private directory's per-caller subdirectories are opened
// without following symbolic links; files are created with O_EXCL and
// O_NOFOLLOW, given their mode and owner through the open file, renamed and
// removed relative to the directory's descriptor. What anyone else puts
// where the server's files or directories go (a symbolic link, a FIFO, a
// directory, a hard link to another file) is never followed, opened or
// counted.
//
// A public directory (Open) holds files everyone may read. A private one
// (Dir.OpenPrivate) holds one subdirectory per caller: the directory and the
// subdirectories belong to the server, mode 0711 (others can cross them,
// not list them), and each file belongs to its caller's uid, mode 0400. A
// caller reads its files by the path it is handed, and can neither create,
// rename nor remove anything there.
//
// Lifetimes are kept in memory: a file's minimum lifetime counts from when
// it was last handed out. The files a previous run left are adopted as if
// handed out when the directory is opened, so that a restart never cuts a
// promise short, and no file is ever touched to remember one.
//
// A file handed out again is not looked at on disk: an inotify watch on the
// directory tells the server what others change there, and a file removed,
// replaced or written to by anyone else is written again by the next
// request for it (watch.go).
package outdir

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ccnp-eventlog/ccnp-eventlog/internal/dirfd"
)

// The server's files start with prefix; a directory may hold other files (a
// client's, an admin's), which are never touched.
const (
	prefix     = "eventlog-"
	tempPrefix = ".eventlog-tmp-"
	// privateMode is a private directory's, and its subdirectories'.
	privateMode = 0o711
)

// Limits bound a directory.
type Limits struct {
	// MaxBytes is the most the server's files may take together.
	MaxBytes int64
	// MaxAge is how long a file is kept after it was last handed out.
	MaxAge time.Duration
	// MinLifetime is how long a handed-out path is guaranteed to stay
	// readable, even when the directory is full: a write that would need to
	// remove a younger file fails instead.
	MinLifetime time.Duration
}

// Validate says what is wrong with l, if anything.
func (l Limits) Validate() error {
	switch {
	case l.MaxBytes <= 0:
		return fmt.Errorf("output directory size limit must be positive, not %d", l.MaxBytes)
	case l.MinLifetime <= 0:
		return fmt.Errorf("minimum file lifetime must be positive, not %s", l.MinLifetime)
	case l.MaxAge < l.MinLifetime:
		return fmt.Errorf("maximum file age %s is shorter than the minimum lifetime %s", l.MaxAge, l.MinLifetime)
	}
	return nil
}

var (
	// ErrFull is wrapped when the directory is at its size limit and
	// nothing in it is old enough to be removed.
	ErrFull = errors.New("output directory full")
	// ErrCannotChown is wrapped when the server may not give a file to the
	// caller's uid: it is neither root nor that uid.
	ErrCannotChown = errors.New("cannot give the file to the caller's uid")
)

// Error is a file that could not be written, with where.
type Error struct {
	Path string
	Err  error
}

func (e *Error) Error() string { return "writing " + e.Path + ": " + e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Owner is the uid and gid a private file is given to.
type Owner struct{ UID, GID uint32 }

// Dir is an output directory, public or private.
type Dir struct {
	path string
	fd   *os.File // held open: everything is done relative to it
	// life guards fd: every operation holds it shared, Close exclusively,
	// so that the descriptor is never closed under an operation (its number
	// could name another file by then).
	life    sync.RWMutex
	closed  bool
	limits  Limits
	now     func() time.Time
	private bool
	// perm is the mode of the files written.
	perm fs.FileMode
	// uid and gid are the server's: its files' and directories' owner.
	uid, gid int

	mu    sync.Mutex
	files map[key]*file
	// total counts the files' bytes, and the room reserved by writes in
	// progress.
	total int64
	// subdirs are a private directory's subdirectories, with the writes in
	// progress in each: a sweep removes an empty one only when nothing is
	// being written to it.
	subdirs map[string]int
	// evicted counts the files removed to make room or for their age.
	evicted uint64

	// watch tells of changes others make to the directory (watch.go); nil
	// when it cannot be watched, for the reason watchErr. epoch counts the
	// times events were lost.
	watch    *watcher
	watchErr error
	epoch    uint64
}

// key names a file: its subdirectory ("" in a public directory) and name.
type key struct{ sub, name string }

type file struct {
	size int64
	// used is when the path was last handed out; the file's lifetime counts
	// from there.
	used time.Time
	// uid owns the file on disk: the server's, or its caller's.
	uid uint32
	// ino is its inode: a file put in its place has another.
	ino uint64
	// path is where it is handed out.
	path string
	// checked is the directory's epoch when the file was last known to be
	// as written (watch.go); 0: never.
	checked uint64
}

// Open opens (creating it if needed) a public directory, whose files
// everyone may read, and adopts the files a previous run left there. The
// directory's parent is trusted (it is the operator's choice); the directory
// itself is refused if it is a symbolic link.
func Open(path string, limits Limits) (*Dir, error) {
	if err := limits.Validate(); err != nil {
		return nil, err
	}
	f, err := dirfd.Open(path, 0o755)
	if err != nil {
		return nil, fmt.Errorf("output directory: %w", err)
	}
	d := newDir(f, limits, false)
	// Watched before its files are looked at: what changes after is seen.
	d.startWatch()
	if err := d.adopt(d.fd, "", func(st *unix.Stat_t) bool { return int(st.Uid) == d.uid }); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// OpenPrivate opens (creating it if needed) the private directory name
// inside d, and adopts the files a previous run left in its subdirectories.
// The directory and every subdirectory are given to the server, mode 0711,
// whoever had them before.
func (d *Dir) OpenPrivate(name string, limits Limits) (*Dir, error) {
	if err := limits.Validate(); err != nil {
		return nil, err
	}
	if !d.enter() {
		return nil, errClosed
	}
	defer d.life.RUnlock()
	f, err := dirfd.OpenAt(d.fd, name, privateMode)
	if err == nil {
		err = dirfd.Own(f, d.uid, d.gid, privateMode)
		if err != nil {
			f.Close()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("private output directory: %w", err)
	}
	p := newDir(f, limits, true)
	p.startWatch()
	names, err := list(f)
	if err != nil {
		p.Close()
		return nil, err
	}
	for _, sub := range names {
		var st unix.Stat_t
		if validSub(sub) != nil || unix.Fstatat(int(f.Fd()), sub, &st, unix.AT_SYMLINK_NOFOLLOW) != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
			continue // not the server's: never followed
		}
		sf, err := p.openSub(sub, false)
		if err == nil {
			p.addWatch(sub, sf) // unwatched, its files are checked on disk
			// Any owner: each file belongs to its caller.
			err = p.adopt(sf, sub, func(*unix.Stat_t) bool { return true })
			sf.Close()
		}
		if err != nil {
			p.Close()
			return nil, err
		}
		p.mu.Lock()
		p.subdirs[sub] = 0
		p.mu.Unlock()
	}
	return p, nil
}

func newDir(f *os.File, limits Limits, private bool) *Dir {
	d := &Dir{path: f.Name(), fd: f, limits: limits, now: time.Now, private: private,
		perm: 0o644, uid: os.Geteuid(), gid: os.Getegid(), files: map[key]*file{}}
	if private {
		d.perm, d.subdirs = 0o400, map[string]int{}
	}
	return d
}

// Path is the directory's path.
func (d *Dir) Path() string { return d.path }

// Stats are a directory's accounting at one moment.
type Stats struct {
	// Bytes are the server's files' sizes, with the room reserved by
	// writes in progress: what MaxBytes bounds.
	Bytes int64
	// Files are the server's files in it.
	Files int
	// Evicted counts the files removed since it was opened, to make room
	// for new ones or past their maximum age.
	Evicted uint64
}

// Stats returns the directory's accounting now. It is for monitoring: it
// takes the directory's lock for no longer than a copy, and no operation
// takes a lock or counts anything for it.
func (d *Dir) Stats() Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	return Stats{Bytes: d.total, Files: len(d.files), Evicted: d.evicted}
}

// Close releases the directory's descriptor, once the operations in
// progress are done; later ones fail (Put), or find nothing (Reuse, Sweep).
func (d *Dir) Close() error {
	d.life.Lock()
	if d.closed {
		d.life.Unlock()
		return nil
	}
	d.closed = true
	err := d.fd.Close()
	d.life.Unlock()
	d.stopWatch() // its reader may be waiting for life
	return err
}

var errClosed = errors.New("the output directory is closed: the server is stopping")

// enter starts an operation: it holds d.life shared, unless d is closed.
func (d *Dir) enter() bool {
	d.life.RLock()
	if d.closed {
		d.life.RUnlock()
		return false
	}
	return true
}

// OpenToOthers reports whether users other than the server can create,
// rename or remove entries in the directory: files the server hands out
// there can then be replaced behind its back (never followed by it).
func (d *Dir) OpenToOthers() bool {
	if !d.enter() {
		return false
	}
	defer d.life.RUnlock()
	var st unix.Stat_t
	if unix.Fstat(int(d.fd.Fd()), &st) != nil {
		return false
	}
	return st.Mode&0o022 != 0 || (int(st.Uid) != d.uid && st.Uid != 0)
}

// list names the entries of the directory f, through a descriptor of its own
// (f's offset is left alone).
func list(f *os.File) ([]string, error) {
	fd, err := unix.Openat(int(f.Fd()), ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: f.Name(), Err: err}
	}
	l := os.NewFile(uintptr(fd), f.Name())
	defer l.Close()
	return l.Readdirnames(-1)
}

// adopt takes over the files a previous run left in dir: regular files of
// the server's, with one link, whose owner suits owned. Anything else is
// left alone and never opened. A temporary file is a write a crash cut
// short, and is removed.
func (d *Dir) adopt(dir *os.File, sub string, owned func(*unix.Stat_t) bool) error {
	names, err := list(dir)
	if err != nil {
		return err
	}
	now := d.now()
	dfd := int(dir.Fd())
	for _, name := range names {
		var st unix.Stat_t
		if unix.Fstatat(dfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
			continue
		}
		switch {
		case strings.HasPrefix(name, tempPrefix) && owned(&st):
			unix.Unlinkat(dfd, name, 0)
		case strings.HasPrefix(name, prefix) && st.Nlink == 1 && owned(&st):
			k := key{sub, name}
			d.mu.Lock() // the watcher runs already
			d.files[k] = &file{size: st.Size, used: now, uid: st.Uid, ino: st.Ino, path: d.pathOf(k), checked: d.epoch}
			d.total += st.Size
			d.mu.Unlock()
		}
	}
	return nil
}

// openSub opens a private directory's subdirectory, creating it if asked,
// and makes sure it is the server's, mode 0711.
func (d *Dir) openSub(sub string, create bool) (*os.File, error) {
	var f *os.File
	var err error
	if create {
		f, err = dirfd.OpenAt(d.fd, sub, privateMode)
	} else {
		var fd int
		fd, err = unix.Openat(int(d.fd.Fd()), sub, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: filepath.Join(d.path, sub), Err: err}
		}
		f = os.NewFile(uintptr(fd), filepath.Join(d.path, sub))
	}
	if err != nil {
		return nil, err
	}
	if err := dirfd.Own(f, d.uid, d.gid, privateMode); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func (d *Dir) pathOf(k key) string { return filepath.Join(d.path, k.sub, k.name) }

// Reuse hands out the file name (in the subdirectory sub of a private
// directory; "" in a public one) again, if it is still there, as written.
func (d *Dir) Reuse(sub, name string) (string, bool) {
	if !d.enter() {
		return "", false
	}
	defer d.life.RUnlock()
	return d.reuse(sub, name)
}

func (d *Dir) reuse(sub, name string) (string, bool) {
	k := key{sub, name}
	now := d.now()
	d.mu.Lock()
	f := d.files[k]
	var trusted bool
	if f != nil {
		f.used = now // from now on, no sweep removes it
		trusted = d.trusted(sub, f)
	}
	epoch := d.epoch
	d.mu.Unlock()
	switch {
	case f == nil:
		return "", false
	case trusted:
		return f.path, true
	case !d.intact(k, f):
		// Removed or replaced behind the server's back: write it again.
		d.forget(k, f)
		return "", false
	}
	d.markChecked(k, f, epoch)
	return f.path, true
}

// fstatat looks at a file without following a link; tests count its calls.
var fstatat = unix.Fstatat

// intact reports whether the file k is on disk as the server wrote it: a
// regular file with one link, its inode, owner and size. It is looked at,
// never opened.
func (d *Dir) intact(k key, f *file) bool {
	dfd := int(d.fd.Fd())
	if k.sub != "" {
		fd, err := unix.Openat(dfd, k.sub, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return false
		}
		defer unix.Close(fd)
		dfd = fd
	}
	var st unix.Stat_t
	err := fstatat(dfd, k.name, &st, unix.AT_SYMLINK_NOFOLLOW)
	return err == nil && st.Mode&unix.S_IFMT == unix.S_IFREG && st.Nlink == 1 && st.Uid == f.uid && st.Size == f.size && st.Ino == f.ino
}

// forget stops counting the file f, unless it is gone already: k may
// meanwhile be another put's.
func (d *Dir) forget(k key, f *file) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.files[k] == f {
		d.total -= f.size
		delete(d.files, k)
	}
}

// File is what Put writes.
type File struct {
	// Sub is the caller's subdirectory of a private directory (one path
	// component); empty in a public directory.
	Sub string
	// Owner is who a private file is given to; nil in a public directory.
	Owner *Owner
	// Label and Ext name the file: "eventlog-<Label>-<digest>.<Ext>", where
	// digest is the start of its content's SHA-256.
	Label, Ext string
	// Size is the content's length, known before it is written: room is
	// made for it first.
	Size int64
	// Write writes the content, Size bytes. It may be called twice (once
	// only to hash the content, when the directory is full), and must write
	// the same bytes each time.
	Write func(io.Writer) error
}

// Stored is a file Put wrote, or found already there.
type Stored struct {
	// Path is where clients read it.
	Path string
	// Name is its name, for Reuse.
	Name string
	// SHA256 is its content's digest, in hex.
	SHA256 string
}

// Put writes f's content under its name and returns its path. When the
// directory would exceed its size limit, files past their minimum lifetime
// are removed, least recently handed out first; if that is not enough, Put
// fails with ErrFull rather than remove a file a client may still be reading
// (unless the file is there already, which is then handed out again).
//
// The content is written to a temporary file in bounded pieces while it is
// hashed, then renamed to the name its digest gives: it is never whole in
// memory.
func (d *Dir) Put(f File) (Stored, error) {
	if err := d.check(f); err != nil {
		return Stored{}, &Error{filepath.Join(d.path, f.Sub), err}
	}
	if !d.enter() {
		return Stored{}, &Error{filepath.Join(d.path, f.Sub), errClosed}
	}
	defer d.life.RUnlock()
	victims, err := d.reserve(f.Sub, f.Size)
	d.remove(victims)
	if err != nil {
		where := filepath.Join(d.path, f.Sub)
		if errors.Is(err, ErrFull) {
			st, ok := d.reuseContent(f)
			if ok {
				return st, nil
			}
			if st.Path != "" {
				where = st.Path // the file that does not fit
			}
		}
		return Stored{}, &Error{where, err}
	}
	st, err := d.write(f)
	if err != nil {
		d.mu.Lock()
		d.total -= f.Size
		d.done(f.Sub)
		if d.private {
			// The caller gets no directory the server made in vain.
			d.removeIfEmpty(f.Sub, d.subs())
		}
		d.mu.Unlock()
		return Stored{}, err
	}
	return st, nil
}

func (d *Dir) check(f File) error {
	switch {
	case f.Size < 0 || f.Write == nil:
		return errors.New("no content")
	case d.private && (f.Owner == nil || validSub(f.Sub) != nil):
		return fmt.Errorf("a private file needs an owner and a subdirectory (one path component), not %q", f.Sub)
	case !d.private && (f.Owner != nil || f.Sub != ""):
		return errors.New("a public directory's files have no owner and no subdirectory")
	case f.Label == "" || f.Ext == "" || strings.ContainsAny(f.Label+f.Ext, "/\x00") || len(prefix+f.Label+f.Ext)+18 > 255:
		return fmt.Errorf("%q and %q make no file name", f.Label, f.Ext)
	}
	return nil
}

// validSub checks a subdirectory's name: one path component, not hidden
// (temporary files start with a dot).
func validSub(sub string) error {
	if sub == "" || strings.HasPrefix(sub, ".") || strings.ContainsAny(sub, "/\x00") {
		return fmt.Errorf("%q is not a subdirectory name", sub)
	}
	return nil
}

func fileName(f File, digest string) string {
	return prefix + f.Label + "-" + digest[:16] + "." + f.Ext
}

// reserve makes room for size more bytes in sub, and counts them. It returns
// the files to remove for it.
func (d *Dir) reserve(sub string, size int64) ([]key, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	victims, err := d.makeRoom(size, d.now())
	if err != nil {
		return nil, err
	}
	d.total += size
	if d.private {
		d.subdirs[sub]++
	}
	return victims, nil
}

// done ends a write in sub. d.mu is held.
func (d *Dir) done(sub string) {
	if d.private {
		d.subdirs[sub]--
	}
}

// makeRoom picks the files to remove so that size more bytes fit, and stops
// counting them. d.mu is held.
func (d *Dir) makeRoom(size int64, now time.Time) ([]key, error) {
	if size > d.limits.MaxBytes {
		return nil, fmt.Errorf("%w: a %d-byte file exceeds the %d-byte limit", ErrFull, size, d.limits.MaxBytes)
	}
	if d.total+size <= d.limits.MaxBytes {
		return nil, nil
	}
	type cand struct {
		k    key
		used time.Time
	}
	var cands []cand
	for k, f := range d.files {
		if now.Sub(f.used) >= d.limits.MinLifetime {
			cands = append(cands, cand{k, f.used})
		}
	}
	sort.Slice(cands, func(i, j int) bool { return cands[i].used.Before(cands[j].used) })
	need := d.total + size - d.limits.MaxBytes
	var victims []key
	for _, c := range cands {
		if need <= 0 {
			break
		}
		need -= d.files[c.k].size
		victims = append(victims, c.k)
	}
	if need > 0 {
		return nil, fmt.Errorf("%w: %d of %d bytes are held by files handed out less than %s ago", ErrFull, d.total, d.limits.MaxBytes, d.limits.MinLifetime)
	}
	for _, v := range victims {
		d.total -= d.files[v].size
		delete(d.files, v)
	}
	d.evicted += uint64(len(victims))
	return victims, nil
}

// remove removes files no longer counted. A file already gone is what was
// wanted; one that cannot be removed (something else took its name) stays
// outside the accounting rather than block new writes.
func (d *Dir) remove(keys []key) {
	for _, k := range keys {
		dfd := int(d.fd.Fd())
		if k.sub != "" {
			fd, err := unix.Openat(dfd, k.sub, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				continue
			}
			unix.Unlinkat(fd, k.name, 0)
			unix.Close(fd)
			continue
		}
		unix.Unlinkat(dfd, k.name, 0)
	}
}

// reuseContent hands out f's file again if it is there, without writing:
// its name is learned by hashing the content. When it is not there, the
// Stored says where it would have gone.
func (d *Dir) reuseContent(f File) (Stored, bool) {
	h := sha256.New()
	if err := f.Write(h); err != nil {
		return Stored{}, false
	}
	digest := hex.EncodeToString(h.Sum(nil))
	k := key{f.Sub, fileName(f, digest)}
	_, ok := d.reuse(k.sub, k.name)
	return Stored{Path: d.pathOf(k), Name: k.name, SHA256: digest}, ok
}

// write writes f to a temporary file, then renames it into place and counts
// it in the room reserved for it.
func (d *Dir) write(f File) (Stored, error) {
	dir := d.fd
	if d.private {
		sub, err := d.openSub(f.Sub, true)
		if err != nil {
			return Stored{}, &Error{filepath.Join(d.path, f.Sub), err}
		}
		defer sub.Close()
		d.addWatch(f.Sub, sub) // unwatched, its files are checked on disk
		dir = sub
	}
	tmp, err := createTemp(dir)
	if err != nil {
		if errors.Is(err, unix.ENOENT) && removed(dir) {
			err = fmt.Errorf("%w: the directory was removed while the server ran (restart the server to create it again)", err)
		}
		return Stored{}, &Error{dir.Name(), err}
	}
	digest, err := d.fill(tmp, f)
	var st unix.Stat_t
	if err == nil {
		if serr := unix.Fstat(int(tmp.Fd()), &st); serr != nil {
			err = &Error{tmp.Name(), serr}
		}
	}
	tmpName := filepath.Base(tmp.Name())
	if cerr := tmp.Close(); err == nil && cerr != nil {
		err = &Error{tmp.Name(), cerr}
	}
	if err != nil {
		unix.Unlinkat(int(dir.Fd()), tmpName, 0)
		return Stored{}, err
	}
	k := key{f.Sub, fileName(f, digest)}
	now := d.now()
	d.mu.Lock()
	defer d.mu.Unlock()
	// Renamed over whatever has the name: the same content written by
	// another put, or something not the server's, which is replaced rather
	// than followed.
	if err := unix.Renameat(int(dir.Fd()), tmpName, int(dir.Fd()), k.name); err != nil {
		unix.Unlinkat(int(dir.Fd()), tmpName, 0)
		if errors.Is(err, unix.EISDIR) || errors.Is(err, unix.ENOTEMPTY) || errors.Is(err, unix.EEXIST) {
			err = fmt.Errorf("%w: a directory is in the way, which is not the server's (someone else can write to %s)", err, dir.Name())
		}
		return Stored{}, &Error{d.pathOf(k), err}
	}
	if old := d.files[k]; old != nil {
		d.total -= old.size // replaced: the reserved room is the file's now
	}
	uid := uint32(d.uid)
	if f.Owner != nil {
		uid = f.Owner.UID
	}
	d.files[k] = &file{size: f.Size, used: now, uid: uid, ino: st.Ino, path: d.pathOf(k), checked: d.epoch}
	d.done(f.Sub)
	return Stored{Path: d.pathOf(k), Name: k.name, SHA256: digest}, nil
}

// fill writes f's content to tmp while hashing it, then gives tmp its mode
// and owner. It returns the content's digest.
func (d *Dir) fill(tmp *os.File, f File) (string, error) {
	h := sha256.New()
	bw := bufio.NewWriterSize(tmp, 64<<10)
	cw := &countingWriter{w: io.MultiWriter(bw, h)}
	err := f.Write(cw)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil && cw.n != f.Size {
		err = fmt.Errorf("the content is %d bytes, not the %d announced", cw.n, f.Size)
	}
	if err == nil {
		err = tmp.Chmod(d.perm) // before the chown: the server owns it until then
	}
	if err == nil && f.Owner != nil && int(f.Owner.UID) != d.uid {
		err = tmp.Chown(int(f.Owner.UID), int(f.Owner.GID))
		if errors.Is(err, fs.ErrPermission) {
			err = fmt.Errorf("%w: this server runs as uid %d, which may not give files to uid %d (run it as root, or with CAP_CHOWN and CAP_DAC_OVERRIDE); or ask for the events inline (GetEventlogRequest.inline), which needs no file", ErrCannotChown, d.uid, f.Owner.UID)
		}
	}
	if err != nil {
		return "", &Error{tmp.Name(), err}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// tempName draws a temporary file's random name; tests replace it.
var tempName = func() string {
	var r [8]byte
	rand.Read(r[:])
	return tempPrefix + hex.EncodeToString(r[:])
}

// createTemp creates a new temporary file in dir: O_EXCL and O_NOFOLLOW, so
// that nothing already there, a symbolic link least of all, is opened.
func createTemp(dir *os.File) (*os.File, error) {
	for range 16 {
		n := tempName()
		fd, err := unix.Openat(int(dir.Fd()), n, unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_WRONLY|unix.O_CLOEXEC, 0o600)
		if errors.Is(err, unix.EEXIST) {
			continue // someone else's, or a symbolic link: another name
		}
		if err != nil {
			return nil, err
		}
		return os.NewFile(uintptr(fd), filepath.Join(dir.Name(), n)), nil
	}
	return nil, errors.New("no free temporary file name")
}

// removed reports whether the directory f has been removed.
func removed(f *os.File) bool {
	var st unix.Stat_t
	return unix.Fstat(int(f.Fd()), &st) == nil && st.Nlink == 0
}

// Sweep removes the files not handed out for longer than MaxAge, and the
// subdirectories of a private directory left empty.
func (d *Dir) Sweep() {
	if !d.enter() {
		return
	}
	defer d.life.RUnlock()
	now := d.now()
	var old []key
	d.mu.Lock()
	for k, f := range d.files {
		if now.Sub(f.used) > d.limits.MaxAge {
			old = append(old, k)
			d.total -= f.size
			delete(d.files, k)
		}
	}
	d.evicted += uint64(len(old))
	d.mu.Unlock()
	d.remove(old)
	if d.private {
		d.removeEmptySubdirs()
	}
}

func (d *Dir) removeEmptySubdirs() {
	d.mu.Lock()
	defer d.mu.Unlock()
	used := d.subs()
	for sub := range d.subdirs {
		d.removeIfEmpty(sub, used)
	}
}

// subs are the subdirectories holding files. d.mu is held.
func (d *Dir) subs() map[string]bool {
	used := map[string]bool{}
	for k := range d.files {
		used[k.sub] = true
	}
	return used
}

// removeIfEmpty removes the subdirectory sub if it holds no file and nothing
// is being written to it. Under d.mu, no put can start writing into it
// meanwhile. A directory holding files the server does not know stays.
func (d *Dir) removeIfEmpty(sub string, used map[string]bool) {
	if d.subdirs[sub] != 0 || used[sub] {
		return
	}
	if err := unix.Unlinkat(int(d.fd.Fd()), sub, unix.AT_REMOVEDIR); err == nil || errors.Is(err, unix.ENOENT) {
		delete(d.subdirs, sub)
	}
}
