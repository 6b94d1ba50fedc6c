package service

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
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
type outDir struct {
	dir    string
	limits DirLimits
	now    func() time.Time

	mu    sync.Mutex
	files map[string]*outFile
	total int64
}

type outFile struct {
	size int64
	// used is when the path was last handed out; the file's lifetime counts
	// from there.
	used time.Time
	// stamped is the file's modification time on disk. It is moved forward
	// (lazily) when the file is handed out again, so that a restarted server
	// still honours the minimum lifetime of paths handed out before.
	stamped time.Time
}

// openOutDir creates the directory if needed and adopts the files a previous
// run left there, so their lifetimes and sizes still count.
func openOutDir(dir string, limits DirLimits) (*outDir, error) {
	if err := limits.validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating output directory: %w", err)
	}
	d := &outDir{dir: dir, limits: limits, now: time.Now, files: map[string]*outFile{}}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("reading output directory: %w", err)
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
			d.files[name] = &outFile{size: info.Size(), used: info.ModTime(), stamped: info.ModTime()}
			d.total += info.Size()
		}
	}
	return d, nil
}

func (d *outDir) path(name string) string { return filepath.Join(d.dir, name) }

// reuse hands out an existing file again, if it is still there.
func (d *outDir) reuse(name string) (string, bool) {
	now := d.now()
	d.mu.Lock()
	f, ok := d.files[name]
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
			d.forget(name)
			return "", false
		}
	} else if _, err := os.Lstat(p); err != nil {
		// Removed behind the server's back: write it again.
		d.forget(name)
		return "", false
	}
	return p, true
}

func (d *outDir) forget(name string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if f, ok := d.files[name]; ok {
		d.total -= f.size
		delete(d.files, name)
	}
}

// put writes content under name (atomically) and returns its path. When the
// directory would exceed its size limit, files past their minimum lifetime are
// removed, least recently handed out first; if that is not enough, put fails
// with errDirFull rather than remove a file a client may still be reading.
func (d *outDir) put(name string, content []byte) (string, error) {
	if p, ok := d.reuse(name); ok {
		return p, nil
	}
	size := int64(len(content))
	now := d.now()
	d.mu.Lock()
	victims, err := d.makeRoom(size, now)
	if err == nil {
		d.files[name] = &outFile{size: size, used: now, stamped: now}
		d.total += size
	}
	d.mu.Unlock()
	d.remove(victims)
	if err != nil {
		return "", &outputError{d.path(name), err}
	}
	p, err := d.write(name, content)
	if err != nil {
		d.forget(name)
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

func (d *outDir) write(name string, content []byte) (string, error) {
	tmp, err := os.CreateTemp(d.dir, tempPrefix+"*")
	if err != nil {
		return "", err
	}
	_, err = tmp.Write(content)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		// Readable by workloads running under other uids: the content is the
		// node's (public) measurement log.
		err = os.Chmod(tmp.Name(), 0o644)
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

// sweep removes files not handed out for longer than MaxAge.
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
}
