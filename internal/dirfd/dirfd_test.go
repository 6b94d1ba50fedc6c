package dirfd

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func mode(t *testing.T, path string) (uint32, fs.FileMode) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Uid, fi.Mode()
}

// TestOpenCreatesWithExactMode: a directory Open creates has the mode asked
// for, whatever the umask; one that exists is opened as it is.
func TestOpenCreatesWithExactMode(t *testing.T) {
	old := unix.Umask(0o077)
	defer unix.Umask(old)
	p := filepath.Join(t.TempDir(), "a", "b", "out")
	f, err := Open(p, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Name() != p {
		t.Errorf("named %s, want %s", f.Name(), p)
	}
	if _, m := mode(t, p); m != fs.ModeDir|0o755 {
		t.Errorf("created with mode %v under umask 077, want 0755", m)
	}
	os.Chmod(p, 0o700)
	g, err := Open(p, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	g.Close()
	if _, m := mode(t, p); m != fs.ModeDir|0o700 {
		t.Errorf("an existing directory's mode changed to %v", m)
	}
}

// TestOpenRefusesWhatIsNotADirectory: a symbolic link (to a directory or
// to a file) and anything else but a directory are refused, naming the
// path; a FIFO is not opened (it would block).
func TestOpenRefusesWhatIsNotADirectory(t *testing.T) {
	tmp := t.TempDir()
	target := filepath.Join(tmp, "target")
	os.Mkdir(target, 0o700)
	os.WriteFile(filepath.Join(tmp, "file"), nil, 0o600)
	os.Symlink(target, filepath.Join(tmp, "dirlink"))
	os.Symlink(filepath.Join(tmp, "file"), filepath.Join(tmp, "filelink"))
	os.Symlink(filepath.Join(tmp, "nowhere"), filepath.Join(tmp, "dangling"))
	unix.Mkfifo(filepath.Join(tmp, "fifo"), 0o600)
	parent, err := os.Open(tmp)
	if err != nil {
		t.Fatal(err)
	}
	defer parent.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for name, want := range map[string]error{"dirlink": ErrSymlink, "filelink": ErrSymlink, "dangling": ErrSymlink, "file": ErrNotDirectory, "fifo": ErrNotDirectory} {
			for _, open := range []func() (*os.File, error){
				func() (*os.File, error) { return Open(filepath.Join(tmp, name), 0o711) },
				func() (*os.File, error) { return OpenAt(parent, name, 0o711) },
			} {
				f, err := open()
				if err == nil {
					f.Close()
				}
				if !errors.Is(err, want) || !strings.Contains(err.Error(), filepath.Join(tmp, name)) {
					t.Errorf("%s: %v, want %v naming the path", name, err, want)
				}
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("opening blocked: a FIFO was opened")
	}
	if _, m := mode(t, target); m != fs.ModeDir|0o700 {
		t.Errorf("the link's target changed mode: %v", m)
	}
	if _, err := os.Lstat(filepath.Join(tmp, "nowhere")); !errors.Is(err, fs.ErrNotExist) {
		t.Error("a dangling link's target was created")
	}
	for _, name := range []string{"", ".", "..", "a/b"} {
		if _, err := OpenAt(parent, name, 0o711); err == nil {
			t.Errorf("OpenAt(%q) opened something", name)
		}
	}
}

// TestOwn fixes owner and mode through the descriptor: the directory, not
// whatever is at its path by then.
func TestOwn(t *testing.T) {
	tmp := t.TempDir()
	_, tmpMode := mode(t, tmp)
	p := filepath.Join(tmp, "d")
	f, err := Open(p, 0o777)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// The path now names something else: Own must not touch it.
	os.Rename(p, p+".moved")
	os.Symlink(tmp, p)
	uid := os.Geteuid()
	if uid == 0 {
		uid = 65534
	}
	if err := Own(f, uid, -1, 0o711); err != nil {
		t.Fatal(err)
	}
	if u, m := mode(t, p+".moved"); int(u) != uid || m != fs.ModeDir|0o711 {
		t.Errorf("the directory: uid %d mode %v, want %d 0711", u, m, uid)
	}
	if u, m := mode(t, tmp); int(u) != os.Geteuid() || m != tmpMode {
		t.Errorf("what the path names now changed: uid %d mode %v", u, m)
	}
}
