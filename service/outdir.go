package service

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Files this server writes start with filePrefix; the directory may hold
// other files (a client's, an admin's), which are never touched.
const (
	filePrefix = "eventlog-"
	tempPrefix = ".eventlog-tmp-"
)

// DirLimits bound the output directory.
type DirLimits struct {
	// MaxBytes is the most the server's files may take together.
	MaxBytes int64
	// MaxAge is how long a file is kept after it was last handed out.
	MaxAge time.Duration
	// MinLifetime is how long a handed-out path is guaranteed to stay
	// readable, even when the directory is full: a write that would need to
	// remove a younger file fails instead.
	MinLifetime time.Duration
}

func (l DirLimits) validate() error {
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

// outDir is the directory replies' files are written to. Files are named by
// their content, written to a temporary name and renamed into place, so a
// reader never sees a partial file and a file is never rewritten in place.
//
// A private directory (openPrivateDir) holds one subdirectory per caller:
// file names are "sub/file", and each subdirectory and its files are given to
// the caller's uid.
type outDir struct {
	dir    string
	limits DirLimits
	now    func() time.Time
	// perm is the mode of the files written.
	perm fs.FileMode
	// nested: files live in subdirectories, one level down.
	nested bool

	mu    sync.Mutex
	files map[string]*outFile
	total int64
	// subdirs are the subdirectories of a nested directory, with the
	// writes in progress in each: a sweep removes an empty one only when
	// nothing is being written to it.
	subdirs map[string]int
}

// fileOwner is the uid and gid a private file and its subdirectory are given to.
type fileOwner struct{ uid, gid uint32 }

// errCannotChown is wrapped when the server may not give a file to the
// caller's uid: it is neither root nor that uid.
var errCannotChown = errors.New("cannot give the file to the caller's uid")

type outFile struct {
	size int64
	// used is when the path was last handed out; the file's lifetime counts
	// from there.
	used time.Time
	// stamped is the file's modification time on disk. It is moved forward
	// (lazily) when the file is handed out again, so that a restarted server
	// still honours the minimum lifetime of paths handed out before.
	stamped time.Time
	// writing is closed when the put writing the file is done; nil once the
	// file is in place. Until then the entry holds the file's room, and a
	// put of the same name waits for it: written twice, the file would be
	// counted twice.
	writing chan struct{}
}

// openOutDir creates the directory if needed and adopts the files a previous
// run left there, so their lifetimes and sizes still count. Its files are
// readable by everyone: they hold the node's (public) measurement log.
func openOutDir(dir string, limits DirLimits) (*outDir, error) {
	d := &outDir{dir: dir, limits: limits, now: time.Now, perm: 0o644, files: map[string]*outFile{}}
	return d, d.open(0o755)
}

// openPrivateDir opens a directory of per-caller subdirectories: the
// directory itself can be crossed but not listed by others (mode 0711), each
// subdirectory (0700) and file (0400) belongs to its caller's uid.
func openPrivateDir(dir string, limits DirLimits) (*outDir, error) {
	d := &outDir{dir: dir, limits: limits, now: time.Now, perm: 0o400, nested: true, files: map[string]*outFile{}, subdirs: map[string]int{}}
	if err := d.open(0o711); err != nil {
		return nil, err
	}
	// Whatever mode an existing directory had: others must not list it.
	return d, os.Chmod(dir, 0o711)
}

func (d *outDir) open(mode fs.FileMode) error {
	if err := d.limits.validate(); err != nil {
		return err
	}
	if err := os.MkdirAll(d.dir, mode); err != nil {
		return fmt.Errorf("creating output directory: %w", err)
	}
	if !d.nested {
		return d.adopt("")
	}
	entries, err := os.ReadDir(d.dir)
	if err != nil {
		return fmt.Errorf("reading output directory: %w", err)
	}
	for _, e := range entries {
		if e.IsDir() {
			d.subdirs[e.Name()] = 0
			if err := d.adopt(e.Name()); err != nil {
				return err
			}
		}
	}
	return nil
}

// adopt takes over the files in sub ("" for the directory itself).
func (d *outDir) adopt(sub string) error {
	dir := filepath.Join(d.dir, sub)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("reading output directory: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		switch {
		case strings.HasPrefix(name, tempPrefix):
			os.Remove(filepath.Join(dir, name)) // a write cut short by a crash
		case strings.HasPrefix(name, filePrefix) && e.Type().IsRegular():
			info, err := e.Info()
			if err != nil {
				continue
			}
			d.files[filepath.Join(sub, name)] = &outFile{size: info.Size(), used: info.ModTime(), stamped: info.ModTime()}
			d.total += info.Size()
		}
	}
	return nil
}

func (d *outDir) path(name string) string { return filepath.Join(d.dir, name) }

// reuse hands out an existing file again, if it is still there.
func (d *outDir) reuse(name string) (string, bool) {
	now := d.now()
	d.mu.Lock()
	f, ok := d.files[name]
	ok = ok && f.writing == nil
	if ok {
		f.used = now
	}
	restamp := ok && now.Sub(f.stamped) > d.limits.MinLifetime/4
	if restamp {
		f.stamped = now
	}
	d.mu.Unlock()
	if !ok {
		return "", false
	}
	p := d.path(name)
	if restamp {
		if err := os.Chtimes(p, now, now); err != nil {
			d.forget(name, f)
			return "", false
		}
	} else if _, err := os.Lstat(p); err != nil {
		// Removed behind the server's back: write it again.
		d.forget(name, f)
		return "", false
	}
	return p, true
}

// forget stops counting the file f, unless it is gone already: name may
// meanwhile be another put's, writing the file again.
func (d *outDir) forget(name string, f *outFile) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.files[name] == f {
		d.total -= f.size
		delete(d.files, name)
	}
}

// put writes content under name (atomically) and returns its path. When the
// directory would exceed its size limit, files past their minimum lifetime are
// removed, least recently handed out first; if that is not enough, put fails
// with errDirFull rather than remove a file a client may still be reading.
func (d *outDir) put(name string, content []byte) (string, error) {
	return d.putOwned(name, content, nil)
}

// putOwned is put for a private directory: name is "sub/file", and the file
// and its subdirectory are given to owner.
func (d *outDir) putOwned(name string, content []byte, owner *fileOwner) (string, error) {
	for {
		if p, ok := d.reuse(name); ok {
			return p, nil
		}
		d.mu.Lock()
		f, ok := d.files[name]
		if !ok {
			break // with d.mu held
		}
		// Being written by another put, with the same content since names
		// are derived from it; or written since reuse looked.
		writing := f.writing
		d.mu.Unlock()
		if writing != nil {
			<-writing
		}
	}
	size := int64(len(content))
	now := d.now()
	sub := filepath.Dir(name)
	f := &outFile{size: size, used: now, stamped: now, writing: make(chan struct{})}
	victims, err := d.makeRoom(size, now)
	if err == nil {
		d.files[name] = f
		d.total += size
		if d.nested {
			d.subdirs[sub]++
		}
	}
	d.mu.Unlock()
	d.remove(victims)
	if err != nil {
		return "", &outputError{d.path(name), err}
	}
	p, err := d.write(name, content, owner)
	d.mu.Lock()
	if d.nested {
		d.subdirs[sub]--
	}
	if err != nil && d.files[name] == f { // not swept meanwhile
		d.total -= size
		delete(d.files, name)
	}
	close(f.writing)
	f.writing = nil
	d.mu.Unlock()
	if err != nil {
		return "", &outputError{d.path(name), err}
	}
	return p, nil
}

// makeRoom picks the files to remove so that size more bytes fit. d.mu is held.
func (d *outDir) makeRoom(size int64, now time.Time) ([]string, error) {
	if size > d.limits.MaxBytes {
		return nil, fmt.Errorf("%w: a %d-byte file exceeds the %d-byte limit", errDirFull, size, d.limits.MaxBytes)
	}
	if d.total+size <= d.limits.MaxBytes {
		return nil, nil
	}
	type cand struct {
		name string
		used time.Time
	}
	var cands []cand
	for name, f := range d.files {
		if now.Sub(f.used) >= d.limits.MinLifetime {
			cands = append(cands, cand{name, f.used})
		}
	}
	sort.Slice(cands, func(i, j int) bool { return cands[i].used.Before(cands[j].used) })
	need := d.total + size - d.limits.MaxBytes
	var victims []string
	for _, c := range cands {
		if need <= 0 {
			break
		}
		need -= d.files[c.name].size
		victims = append(victims, c.name)
	}
	if need > 0 {
		return nil, fmt.Errorf("%w: %d of %d bytes are held by files handed out less than %s ago", errDirFull, d.total, d.limits.MaxBytes, d.limits.MinLifetime)
	}
	for _, v := range victims {
		d.total -= d.files[v].size
		delete(d.files, v)
	}
	return victims, nil
}

func (d *outDir) remove(names []string) {
	for _, n := range names {
		// A file already gone is what was wanted; one that cannot be removed
		// stays outside the accounting rather than block new writes.
		os.Remove(d.path(n))
	}
}

func (d *outDir) write(name string, content []byte, owner *fileOwner) (string, error) {
	dir := filepath.Dir(d.path(name))
	if d.nested {
		if err := makeOwnedDir(dir, owner); err != nil {
			return "", err
		}
	}
	tmp, err := os.CreateTemp(dir, tempPrefix+"*")
	if err != nil {
		return "", err
	}
	_, err = tmp.Write(content)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), d.perm)
	}
	if err == nil {
		err = chownTo(tmp.Name(), owner)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), d.path(name))
	}
	if err != nil {
		os.Remove(tmp.Name())
		return "", err
	}
	return d.path(name), nil
}

// makeOwnedDir makes a caller's subdirectory, mode 0700, owned by owner.
// Only the server can create entries in the directory above it, so what is
// there is the server's own doing.
func makeOwnedDir(dir string, owner *fileOwner) error {
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if owner == nil || (ok && st.Uid == owner.uid && st.Gid == owner.gid) {
		return nil
	}
	if err := chownTo(dir, owner); err != nil {
		os.Remove(dir) // empty: the caller gets no directory it cannot read
		return err
	}
	return nil
}

// chownTo gives path to owner. A server running as the owner's uid has
// nothing to give; any other non-root server cannot.
func chownTo(path string, owner *fileOwner) error {
	if owner == nil || int(owner.uid) == os.Geteuid() {
		return nil
	}
	err := os.Lchown(path, int(owner.uid), int(owner.gid))
	if errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("%w: this server runs as uid %d, which may not give files to uid %d (run it as root, or with CAP_CHOWN and CAP_DAC_OVERRIDE); or ask for the events inline (GetEventlogRequest.inline), which needs no file", errCannotChown, os.Geteuid(), owner.uid)
	}
	return err
}

// sweep removes files not handed out for longer than MaxAge, and the
// subdirectories of a private directory left empty.
func (d *outDir) sweep() {
	now := d.now()
	var old []string
	d.mu.Lock()
	for name, f := range d.files {
		if now.Sub(f.used) > d.limits.MaxAge {
			old = append(old, name)
			d.total -= f.size
			delete(d.files, name)
		}
	}
	d.mu.Unlock()
	d.remove(old)
	if d.nested {
		d.removeEmptySubdirs()
	}
}

func (d *outDir) removeEmptySubdirs() {
	d.mu.Lock()
	defer d.mu.Unlock()
	used := map[string]bool{}
	for name := range d.files {
		used[filepath.Dir(name)] = true
	}
	for sub, writing := range d.subdirs {
		if writing == 0 && !used[sub] {
			// Under the lock: no put can start writing into it meanwhile.
			// A directory holding files the server does not know stays.
			if err := os.Remove(filepath.Join(d.dir, sub)); err == nil || errors.Is(err, fs.ErrNotExist) {
				delete(d.subdirs, sub)
			}
		}
	}
}
