package outdir

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

var settles atomic.Int64

// settle waits until d's watcher has handled every change made to the
// directory dir (d's own, or a subdirectory of a private d) before it: it
// makes a change of its own there and waits for d's watcher to handle its
// event (another Dir open on the same directory sees it too).
func settle(t *testing.T, d *Dir, sub ...string) {
	t.Helper()
	if d.Watched() != nil {
		return // checked on disk: nothing to wait for
	}
	name := fmt.Sprintf(".settle-%d", settles.Add(1))
	seen := make(chan struct{})
	var once sync.Once
	f := func(by *Dir, n string) {
		if by == d && n == name {
			once.Do(func() { close(seen) })
		}
	}
	eventSeen.Store(&f)
	defer eventSeen.Store(nil)
	p := filepath.Join(append(append([]string{d.Path()}, sub...), name)...)
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	os.Remove(p)
	select {
	case <-seen:
	case <-time.After(10 * time.Second):
		t.Fatalf("the watcher of %s did not see %s within 10s", d.Path(), name)
	}
}

// countStats counts the server's looks at its files on disk, until the
// test's cleanup: call it before opening the directories it counts for, so
// that they are closed (their watchers stopped) before it is restored.
func countStats(t *testing.T) *atomic.Int64 {
	var n atomic.Int64
	fstatat = func(dirfd int, path string, st *unix.Stat_t, flags int) error {
		n.Add(1)
		return unix.Fstatat(dirfd, path, st, flags)
	}
	t.Cleanup(func() { fstatat = unix.Fstatat })
	return &n
}

// TestReuseWithoutLooking: a file handed out again is not looked at on
// disk while its directory is watched; what others do to it (remove,
// rename away, replace, write to, chown) makes it written again; when events
// were lost, each file is looked at once more, then trusted again.
func TestReuseWithoutLooking(t *testing.T) {
	stats := countStats(t) // restored after the directory is closed
	d := mustOpen(t, t.TempDir(), testLimits)
	if err := d.Watched(); err != nil {
		t.Fatalf("the directory is not watched: %v", err)
	}
	f := content("watched", []byte("watched content"))
	st := mustPut(t, d, f)
	settle(t, d) // the server's own rename is seen, and leaves the file trusted
	stats.Store(0)
	for range 1000 {
		if p, ok := d.Reuse("", st.Name); !ok || p != st.Path {
			t.Fatalf("Reuse = %q %v", p, ok)
		}
	}
	if n := stats.Load(); n != 0 {
		t.Errorf("1000 reuses looked at the file %d times, want 0", n)
	}

	changes := map[string]func(p string){
		"removed":      func(p string) { os.Remove(p) },
		"renamed away": func(p string) { os.Rename(p, p+".away") },
		"replaced":     func(p string) { os.WriteFile(p+".new", []byte("watched content"), 0o644); os.Rename(p+".new", p) },
		"written to":   func(p string) { fh, _ := os.OpenFile(p, os.O_WRONLY, 0); fh.WriteAt([]byte("W"), 0); fh.Close() },
		"chowned":      func(p string) { os.Chown(p, 65534, 65534) },
	}
	for what, change := range changes {
		st := mustPut(t, d, f)
		settle(t, d)
		if _, ok := d.Reuse("", st.Name); !ok {
			t.Fatalf("%s: not handed out before the change", what)
		}
		change(st.Path)
		settle(t, d)
		if _, ok := d.Reuse("", st.Name); ok {
			t.Errorf("a file %s is handed out again", what)
		}
		// The next put writes it again, as the server's own.
		os.Remove(st.Path + ".link")
		os.Remove(st.Path + ".away")
		os.Remove(st.Path)
		settle(t, d)
	}

	// Lost events: each file is looked at once, then trusted again.
	st = mustPut(t, d, f)
	settle(t, d)
	d.event(0, unix.IN_Q_OVERFLOW, "")
	stats.Store(0)
	for range 100 {
		if _, ok := d.Reuse("", st.Name); !ok {
			t.Fatal("not handed out after an overflow")
		}
	}
	if n := stats.Load(); n != 1 {
		t.Errorf("after lost events, 100 reuses looked at the file %d times, want 1", n)
	}
	// A change unseen (as if in the lost events) is found by that look.
	d.event(0, unix.IN_Q_OVERFLOW, "")
	eventSeen.Store(nil)
	d.mu.Lock()
	d.epoch++ // as if the removal below were among the lost events
	d.mu.Unlock()
	os.Remove(st.Path)
	if _, ok := d.Reuse("", st.Name); ok {
		t.Error("a file removed while events were lost is handed out again")
	}
}

// TestWatchedPrivateDir: in a private directory each caller's
// subdirectory is watched: its files are handed out without a look, and a
// file removed, or a subdirectory removed or renamed (by root: they are the
// server's), is written again.
func TestWatchedPrivateDir(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("gives files to another uid: needs root")
	}
	stats := countStats(t) // restored after the directories are closed
	pub := mustOpen(t, t.TempDir(), testLimits)
	d, err := pub.OpenPrivate("containers", testLimits)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	owner := &Owner{UID: 65534, GID: 65534}
	put := func(sub string) Stored {
		f := content("c", []byte("a container's"))
		f.Sub, f.Owner = sub, owner
		return mustPut(t, d, f)
	}
	st := put("c1")
	settle(t, d, "c1")
	stats.Store(0)
	for range 100 {
		if _, ok := d.Reuse("c1", st.Name); !ok {
			t.Fatal("not handed out")
		}
	}
	if n := stats.Load(); n != 0 {
		t.Errorf("100 reuses looked at the file %d times, want 0", n)
	}
	os.Remove(st.Path)
	settle(t, d, "c1")
	if _, ok := d.Reuse("c1", st.Name); ok {
		t.Error("a removed file is handed out again")
	}
	st = put("c1")
	settle(t, d, "c1")
	sub := filepath.Join(d.Path(), "c1")
	if err := os.Rename(sub, sub+".moved"); err != nil {
		t.Fatal(err)
	}
	settle(t, d)
	if _, ok := d.Reuse("c1", st.Name); ok {
		t.Error("a file of a renamed subdirectory is handed out again")
	}
	st = put("c1")
	settle(t, d, "c1")
	if _, ok := d.Reuse("c1", st.Name); !ok {
		t.Error("the subdirectory made again is not watched")
	}
	os.RemoveAll(sub)
	settle(t, d)
	if _, ok := d.Reuse("c1", st.Name); ok {
		t.Error("a file of a removed subdirectory is handed out again")
	}
}
