package outdir

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ccnp-eventlog/ccnp-eventlog/internal/dirfd"
)

var testLimits = Limits{MaxBytes: 1 << 20, MaxAge: time.Hour, MinLifetime: time.Minute}

// content is a File of b, in a public directory.
func content(label string, b []byte) File {
	return File{Label: label, Ext: "bin", Size: int64(len(b)), Write: func(w io.Writer) error {
		// In pieces, as the encoders write.
		for b := b; len(b) > 0; {
			n := min(len(b), 4096)
			if _, err := w.Write(b[:n]); err != nil {
				return err
			}
			b = b[n:]
		}
		return nil
	}}
}

// nameOf is the name Put gives f's content.
func nameOf(f File) string {
	h := sha256.New()
	f.Write(h)
	return fileName(f, hex.EncodeToString(h.Sum(nil)))
}

func mustOpen(t *testing.T, dir string, l Limits) *Dir {
	t.Helper()
	d, err := Open(dir, l)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func mustPut(t *testing.T, d *Dir, f File) Stored {
	t.Helper()
	st, err := d.Put(f)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// onDisk sums the regular files in dir, and names them.
func onDisk(t *testing.T, dir string) (int64, []string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	var names []string
	for _, e := range entries {
		if e.Type().IsRegular() {
			fi, _ := e.Info()
			n += fi.Size()
			names = append(names, e.Name())
		}
	}
	return n, names
}

func TestPutNamesByContent(t *testing.T) {
	dir := t.TempDir()
	d := mustOpen(t, dir, testLimits)
	b := bytes.Repeat([]byte("event "), 30000) // several pieces
	st := mustPut(t, d, content("tdx-1-44", b))
	sum := sha256.Sum256(b)
	if want := filepath.Join(dir, "eventlog-tdx-1-44-"+hex.EncodeToString(sum[:8])+".bin"); st.Path != want || st.Name != filepath.Base(want) || st.SHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("stored %+v, want %s and the whole digest", st, want)
	}
	if got, _ := os.ReadFile(st.Path); !bytes.Equal(got, b) {
		t.Error("the file does not hold the content")
	}
	if fi, _ := os.Stat(st.Path); fi.Mode().Perm() != 0o644 {
		t.Errorf("a public file has mode %v, want 0644", fi.Mode().Perm())
	}
	if p, ok := d.Reuse("", st.Name); !ok || p != st.Path {
		t.Errorf("Reuse = %s %v", p, ok)
	}
	// A content whose length is not what was announced is a bug: refused,
	// nothing left behind, nothing counted.
	bad := content("tdx-2-2", []byte("short"))
	bad.Size = 100
	if _, err := d.Put(bad); err == nil || !strings.Contains(err.Error(), "not the 100 announced") {
		t.Errorf("a short content: %v", err)
	}
	if n, names := onDisk(t, dir); n != int64(len(b)) || len(names) != 1 || d.total != n {
		t.Errorf("after a failed put: %d bytes counted, %d in %v on disk", d.total, n, names)
	}
}

// TestConcurrentPutsOfOneFile: clients asking for the same events at once
// put the same file at once. It is counted once, so the directory's size
// limit keeps meaning what is on disk, and every path returned is in place.
func TestConcurrentPutsOfOneFile(t *testing.T) {
	dir := t.TempDir()
	d := mustOpen(t, dir, testLimits)
	const clients = 16
	for round := range 20 {
		// 20 of them fit, with room left for every client's reservation
		// of the last: each put reserves its size before it writes (the
		// name, its content's digest, is known only after), so 16
		// concurrent puts of one file need 16 times its size free.
		f := content("same", bytes.Repeat([]byte{byte(round)}, 24<<10))
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				st, err := d.Put(f)
				if err != nil {
					t.Error(err)
					return
				}
				if fi, err := os.Stat(st.Path); err != nil || fi.Size() != f.Size {
					t.Errorf("put returned %s before it was in place: %v", st.Path, err)
				}
			}()
		}
		close(start)
		wg.Wait()
	}
	n, names := onDisk(t, dir)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.total != n || len(d.files) != len(names) || len(names) != 20 {
		t.Errorf("the directory counts %d bytes in %d files; %d bytes in %d files are on disk", d.total, len(d.files), n, len(names))
	}
}

// TestSizeLimitEvictsLeastRecentlyUsed: files each well under the limit, so
// only the directory's total can refuse one. While every file is younger
// than the minimum lifetime, a file past the total is refused; once they are
// older, the least recently handed out make room, and what is on disk stays
// within the limit.
func TestSizeLimitEvictsLeastRecentlyUsed(t *testing.T) {
	dir := t.TempDir()
	d := mustOpen(t, dir, Limits{MaxBytes: 100 << 10, MaxAge: time.Hour, MinLifetime: time.Minute})
	now := time.Now()
	d.now = func() time.Time { return now }
	files := map[string]File{}
	stored := map[string]string{}
	for _, label := range []string{"a", "b", "c", "d"} {
		files[label] = content(label, bytes.Repeat([]byte(label), 30<<10)) // three fit, a fourth does not
	}
	for _, label := range []string{"a", "b", "c"} {
		stored[label] = mustPut(t, d, files[label]).Name
		now = now.Add(time.Second)
	}
	if _, err := d.Put(files["d"]); !errors.Is(err, ErrFull) || !strings.Contains(err.Error(), filepath.Join(dir, nameOf(files["d"]))) {
		t.Fatalf("a fourth file while the first three are young: %v, want ErrFull naming the file in %s", err, dir)
	}
	// A file already there is handed out again, full or not.
	if st, err := d.Put(files["b"]); err != nil || st.Name != stored["b"] {
		t.Errorf("putting a file already there, in a full directory: %+v %v", st, err)
	}
	// Past the minimum lifetime, "a" and "b" are handed out again: "c" is
	// now the least recently used, and goes for "d".
	now = now.Add(2 * time.Minute)
	for _, label := range []string{"a", "b"} {
		if _, ok := d.Reuse("", stored[label]); !ok {
			t.Fatalf("%s is gone", label)
		}
	}
	now = now.Add(time.Second)
	stored["d"] = mustPut(t, d, files["d"]).Name
	n, names := onDisk(t, dir)
	if n > 100<<10 {
		t.Errorf("%d bytes on disk, past the %d-byte limit", n, 100<<10)
	}
	if want := []string{stored["a"], stored["b"], stored["d"]}; !slices.Equal(names, slices.Sorted(slices.Values(want))) {
		t.Errorf("the directory holds %v, want %v (c was the least recently handed out)", names, want)
	}
	if st, want := d.Stats(), (Stats{Bytes: n, Files: 3, Evicted: 1}); st != want {
		t.Errorf("stats after one eviction: %+v, want %+v", st, want)
	}
	// Past their age, files go.
	now = now.Add(2 * time.Hour)
	d.Sweep()
	if n, names := onDisk(t, dir); n != 0 || d.total != 0 {
		t.Errorf("after the sweep: %v on disk, %d bytes counted", names, d.total)
	}
	if st, want := d.Stats(), (Stats{Evicted: 4}); st != want {
		t.Errorf("stats after the sweep: %+v, want %+v (the three files swept count as evicted)", st, want)
	}
}

// TestReopenAdoptsAsHandedOutNow: a restarted server counts the files a
// previous run left, and keeps each for a minimum lifetime from the restart,
// whatever its modification time says (which a file's owner can set).
func TestReopenAdoptsAsHandedOutNow(t *testing.T) {
	dir := t.TempDir()
	l := Limits{MaxBytes: 100 << 10, MaxAge: time.Hour, MinLifetime: time.Minute}
	first := mustOpen(t, dir, l)
	old := mustPut(t, first, content("old", bytes.Repeat([]byte("o"), 60<<10)))
	long := time.Now().Add(-24 * time.Hour)
	os.Chtimes(old.Path, long, long)
	// A write a crash cut short.
	os.WriteFile(filepath.Join(dir, tempPrefix+"cut"), []byte("half"), 0o600)

	d := mustOpen(t, dir, l)
	if d.total != 60<<10 {
		t.Errorf("reopened, the directory counts %d bytes, want %d", d.total, 60<<10)
	}
	if _, err := os.Lstat(filepath.Join(dir, tempPrefix+"cut")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a temporary file a crash left is still there: %v", err)
	}
	if _, err := d.Put(content("new", bytes.Repeat([]byte("n"), 60<<10))); !errors.Is(err, ErrFull) {
		t.Errorf("a file that needs an adopted one's room, right after the restart: %v, want ErrFull", err)
	}
	now := time.Now().Add(2 * time.Minute)
	d.now = func() time.Time { return now }
	mustPut(t, d, content("new", bytes.Repeat([]byte("n"), 60<<10)))
	if _, err := os.Stat(old.Path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("past its minimum lifetime from the restart, the adopted file was not removed for room: %v", err)
	}
}

func TestOpenRefusesWhatIsNotADirectory(t *testing.T) {
	tmp := t.TempDir()
	target := filepath.Join(tmp, "target")
	os.Mkdir(target, 0o700)
	os.Symlink(target, filepath.Join(tmp, "link"))
	os.WriteFile(filepath.Join(tmp, "file"), nil, 0o600)
	unix.Mkfifo(filepath.Join(tmp, "fifo"), 0o600)
	for name, want := range map[string]error{"link": dirfd.ErrSymlink, "file": dirfd.ErrNotDirectory, "fifo": dirfd.ErrNotDirectory} {
		_, err := Open(filepath.Join(tmp, name), testLimits)
		if !errors.Is(err, want) || !strings.Contains(err.Error(), filepath.Join(tmp, name)) {
			t.Errorf("%s: %v, want %v naming the path", name, err, want)
		}
	}
	if fi, _ := os.Stat(target); fi.Mode().Perm() != 0o700 {
		t.Errorf("the symbolic link's target changed mode: %v", fi.Mode())
	}
}

// TestRemovedDirectory: the directory removed under a running server is
// reported as such, not as a missing file.
func TestRemovedDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	d := mustOpen(t, dir, testLimits)
	os.Remove(dir)
	_, err := d.Put(content("x", []byte("x")))
	var e *Error
	if !errors.As(err, &e) || !strings.Contains(err.Error(), "removed while the server ran") || !strings.Contains(err.Error(), dir) {
		t.Errorf("%v, want an *Error saying the directory %s was removed", err, dir)
	}
}

// rootFile is a file as the server's own files are: owned by the test's
// uid (root, as CI runs), mode 0600, an old modification time. An attack
// that makes the server follow a link to it shows in its mode, time or
// content.
type rootFile struct {
	path  string
	mtime time.Time
}

func newRootFile(t *testing.T) rootFile {
	t.Helper()
	f := rootFile{filepath.Join(t.TempDir(), "secret"), time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)}
	if err := os.WriteFile(f.path, []byte("root's"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chmod(f.path, 0o600)
	os.Chtimes(f.path, f.mtime, f.mtime)
	return f
}

func (f rootFile) check(t *testing.T) {
	t.Helper()
	fi, err := os.Lstat(f.path)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(f.path)
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode() != 0o600 || !fi.ModTime().Equal(f.mtime) || string(b) != "root's" || int(st.Uid) != os.Geteuid() {
		t.Errorf("the file a link pointed to changed: mode %v, mtime %v, uid %d, content %q", fi.Mode(), fi.ModTime(), st.Uid, b)
	}
}

// TestPublicDirectoryPlantedEntries: the public directory may be writable
// by others (mounted read-write into a careless pod). What they plant under
// the server's names (symbolic links, FIFOs, directories, hard links,
// others' files) is never followed, opened or counted; a planted name the
// server writes to is replaced, not written through.
func TestPublicDirectoryPlantedEntries(t *testing.T) {
	dir := t.TempDir()
	secret := newRootFile(t)
	mine := content("mine", []byte("the server's"))
	{
		d := mustOpen(t, dir, testLimits)
		mustPut(t, d, mine)
	}
	plant := func(name string, how func(string) error) {
		t.Helper()
		if err := how(filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	symlink := func(p string) error { return os.Symlink(secret.path, p) }
	fifo := func(p string) error { return unix.Mkfifo(p, 0o666) }
	mkdir := func(p string) error { return os.Mkdir(p, 0o755) }
	hardlink := func(p string) error { return os.Link(secret.path, p) }
	plant("eventlog-link.json", symlink)
	plant("eventlog-fifo.json", fifo)
	plant("eventlog-dir.json", mkdir)
	plant("eventlog-hardlink.json", hardlink)
	plant(tempPrefix+"link", symlink)
	plant(tempPrefix+"fifo", fifo)
	if os.Geteuid() == 0 {
		p := filepath.Join(dir, "eventlog-nobodys.json")
		os.WriteFile(p, bytes.Repeat([]byte("x"), 1000), 0o644)
		os.Chown(p, 65534, 65534)
	}

	done := make(chan *Dir)
	go func() {
		d, err := Open(dir, testLimits)
		if err != nil {
			t.Error(err)
		}
		done <- d
	}()
	var d *Dir
	select {
	case d = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("opening the directory blocks: a FIFO was opened")
	}
	if d == nil {
		return
	}
	defer d.Close()
	if len(d.files) != 1 || d.total != mine.Size {
		t.Errorf("adopted %v (%d bytes), want only the server's own file", d.files, d.total)
	}
	// Names the server writes to next, planted first: a symbolic link and
	// a FIFO are replaced; a directory is reported, naming the path.
	for i, how := range []func(string) error{symlink, fifo} {
		f := content("next", []byte{byte(i)})
		plant(nameOf(f), how)
		st := mustPut(t, d, f)
		fi, err := os.Lstat(st.Path)
		if err != nil || !fi.Mode().IsRegular() {
			t.Errorf("put over a planted entry: %v %v", fi.Mode(), err)
		}
	}
	// The temporary file's name, planted: another name is drawn.
	names := []string{tempPrefix + "link", tempPrefix + "fresh"}
	tempName = func() string { n := names[0]; names = names[1:]; return n }
	t.Cleanup(func() { tempName = randomTempName })
	mustPut(t, d, content("temp", []byte("through another name")))
	if fi, err := os.Lstat(filepath.Join(dir, tempPrefix+"link")); err != nil || fi.Mode().Type() != fs.ModeSymlink {
		t.Errorf("the planted temporary link: %v %v", fi, err)
	}
	tempName = randomTempName

	blocked := content("blocked", []byte("blocked"))
	plant(nameOf(blocked), mkdir)
	os.WriteFile(filepath.Join(dir, nameOf(blocked), "inside"), nil, 0o644)
	_, err := d.Put(blocked)
	var e *Error
	if !errors.As(err, &e) || !strings.Contains(err.Error(), filepath.Join(dir, nameOf(blocked))) || !strings.Contains(err.Error(), "not the server's") {
		t.Errorf("a directory where a file goes: %v", err)
	}
	// A file the server handed out, replaced behind its back by a link, is
	// not handed out again: it is written again, over the link.
	st := mustPut(t, d, content("swapped", []byte("swapped")))
	os.Remove(st.Path)
	symlink(st.Path)
	settle(t, d)
	if _, ok := d.Reuse("", st.Name); ok {
		t.Error("a file replaced by a symbolic link is handed out again")
	}
	mustPut(t, d, content("swapped", []byte("swapped")))
	if fi, _ := os.Lstat(st.Path); !fi.Mode().IsRegular() {
		t.Errorf("rewritten, the file is %v", fi.Mode())
	}
	// Nor one replaced by someone else's file, or changed in size.
	if os.Geteuid() == 0 {
		os.Remove(st.Path)
		os.WriteFile(st.Path, []byte("swapped"), 0o644)
		os.Chown(st.Path, 65534, 65534)
		settle(t, d)
		if _, ok := d.Reuse("", st.Name); ok {
			t.Error("a file replaced by another uid's is handed out again")
		}
		mustPut(t, d, content("swapped", []byte("swapped")))
	}
	os.WriteFile(st.Path, []byte("longer than it was"), 0o644)
	settle(t, d)
	if _, ok := d.Reuse("", st.Name); ok {
		t.Error("a file whose size changed is handed out again")
	}
	// Swept, only the server's files go.
	now := time.Now().Add(2 * time.Hour)
	d.now = func() time.Time { return now }
	d.Sweep()
	for _, name := range []string{"eventlog-link.json", "eventlog-fifo.json", "eventlog-dir.json", "eventlog-hardlink.json"} {
		if _, err := os.Lstat(filepath.Join(dir, name)); err != nil {
			t.Errorf("the sweep removed %s, which is not the server's: %v", name, err)
		}
	}
	secret.check(t)
}

var randomTempName = tempName

// TestCloseUnderOperations: closing a directory while puts, reuses and
// sweeps run waits for them, and fails the ones after it: the descriptor is
// never used after it is closed (its number could name another file). The
// race detector checks it.
func TestCloseUnderOperations(t *testing.T) {
	d, err := Open(t.TempDir(), testLimits)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				st, err := d.Put(content("c", []byte{byte(i), byte(n)}))
				if err != nil {
					if !errors.Is(err, errClosed) {
						t.Error(err)
					}
					continue
				}
				d.Reuse("", st.Name)
				d.Sweep()
			}
		}()
	}
	time.Sleep(50 * time.Millisecond)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Put(content("after", []byte("x"))); !errors.Is(err, errClosed) {
		t.Errorf("a put after Close: %v", err)
	}
	close(stop)
	wg.Wait()
}
