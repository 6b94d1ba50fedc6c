package unixsock_test

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ccnp-eventlog/ccnp-eventlog/internal/dirfd"
	"github.com/ccnp-eventlog/ccnp-eventlog/internal/unixsock"
)

// TestSocketDirectory: the socket is placed only in a directory where no
// one else can replace it, and never through a link.
func TestSocketDirectory(t *testing.T) {
	tmp := t.TempDir()
	os.Chmod(tmp, 0o755)
	secret := filepath.Join(tmp, "secret")
	os.WriteFile(secret, []byte("root's"), 0o600)
	old := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	os.Chtimes(secret, old, old)

	// A link where the socket's directory goes, or where the socket goes.
	real := filepath.Join(tmp, "real")
	os.Mkdir(real, 0o755)
	os.Symlink(real, filepath.Join(tmp, "linked"))
	if _, err := unixsock.Listen(filepath.Join(tmp, "linked", "eventlog.sock"), 0o666); !errors.Is(err, dirfd.ErrSymlink) {
		t.Errorf("a linked socket directory: %v, want ErrSymlink", err)
	}
	os.Symlink(secret, filepath.Join(real, "eventlog.sock"))
	if _, err := unixsock.Listen(filepath.Join(real, "eventlog.sock"), 0o666); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("a link where the socket goes: %v", err)
	}
	if fi, _ := os.Stat(secret); fi.Mode() != 0o600 || !fi.ModTime().Equal(old) {
		t.Errorf("the link's target changed: %v %v", fi.Mode(), fi.ModTime())
	}

	// Directories others can write to, or that belong to someone else.
	open := filepath.Join(tmp, "open")
	os.Mkdir(open, 0o777)
	os.Chmod(open, 0o777)
	if _, err := unixsock.Listen(filepath.Join(open, "eventlog.sock"), 0o666); err == nil || !strings.Contains(err.Error(), "mode 0777") {
		t.Errorf("a directory everyone can write: %v", err)
	}
	os.Chmod(open, 0o775)
	if _, err := unixsock.Listen(filepath.Join(open, "eventlog.sock"), 0o666); err == nil || !strings.Contains(err.Error(), "mode 0775") {
		t.Errorf("a directory its group can write: %v", err)
	}
	if os.Geteuid() == 0 {
		theirs := filepath.Join(tmp, "theirs")
		os.Mkdir(theirs, 0o755)
		os.Chown(theirs, 65534, 65534)
		if _, err := unixsock.Listen(filepath.Join(theirs, "eventlog.sock"), 0o666); err == nil || !strings.Contains(err.Error(), "belongs to uid 65534") {
			t.Errorf("a directory of another uid: %v", err)
		}
	}
	// Sticky, as /tmp: others cannot rename or remove the server's socket.
	sticky := filepath.Join(tmp, "sticky")
	os.Mkdir(sticky, 0o777)
	os.Chmod(sticky, 0o777|fs.ModeSticky)
	l, err := unixsock.Listen(filepath.Join(sticky, "eventlog.sock"), 0o660)
	if err != nil {
		t.Fatalf("a sticky directory: %v", err)
	}
	if fi, err := os.Lstat(filepath.Join(sticky, "eventlog.sock")); err != nil || fi.Mode() != fs.ModeSocket|0o660 {
		t.Errorf("socket: %v %v, want mode 0660", fi.Mode(), err)
	}
	l.Close()
	if entries, _ := os.ReadDir(sticky); len(entries) != 0 {
		t.Errorf("closed, the listener left %v", entries)
	}
}

// TestSocketLongPath: a socket whose private directory's path would be too
// long for a socket address: it is bound through the directory's descriptor.
func TestSocketLongPath(t *testing.T) {
	// 107 bytes is the most a socket address holds: the socket's path
	// fits, its private directory's does not.
	dir := filepath.Join("/tmp", strings.Repeat("d", 86))
	os.RemoveAll(dir)
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "eventlog.sock")
	l, err := unixsock.Listen(path, 0o666)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if a := l.Addr().String(); !strings.HasPrefix(a, "/proc/self/fd/") {
		t.Errorf("bound at %s, not through the directory's descriptor", a)
	}
	go func() {
		if c, err := l.Accept(); err == nil {
			c.Close()
		}
	}()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("connecting to %s: %v", path, err)
	}
	c.Close()
	if fi, err := os.Lstat(path); err != nil || fi.Mode() != fs.ModeSocket|0o666 {
		t.Errorf("socket: %v %v", fi.Mode(), err)
	}
}

// TestSocketCloseRemovesOnlyItsOwn: a server whose socket another server
// took for stale and replaced leaves the other's socket alone.
func TestSocketCloseRemovesOnlyItsOwn(t *testing.T) {
	path := filepath.Join(t.TempDir(), "eventlog.sock")
	first, err := unixsock.Listen(path, 0o666)
	if err != nil {
		t.Fatal(err)
	}
	// The first stops answering without closing (hung, say): a second
	// server replaces its socket.
	os.Rename(path, path+".first")
	second, err := unixsock.Listen(path, 0o666)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	os.Remove(path + ".first")
	first.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Errorf("closing the first server removed the second's socket: %v", err)
	}
}

// TestStaleSocket: a socket nobody answers on is replaced; a live one, or
// a file that is not a socket, is not.
func TestStaleSocket(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "eventlog.sock")
	// A socket left behind by a server that died: nobody answers on it.
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatal("the stale socket should still exist")
	}
	live, err := unixsock.Listen(path, 0o600)
	if err != nil {
		t.Fatalf("a stale socket must be replaced: %v", err)
	}
	defer live.Close()
	go func() {
		for {
			c, err := live.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	if info, err := os.Stat(path); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("socket mode: %v %v, want 0600", info.Mode(), err)
	}
	// A live server must not be replaced.
	if _, err := unixsock.Listen(path, 0o600); err == nil || !strings.Contains(err.Error(), "another server") {
		t.Errorf("listening over a live server: %v", err)
	}
	// Nor a file that is not a socket.
	file := filepath.Join(dir, "not-a-socket")
	os.WriteFile(file, []byte("x"), 0o644)
	if _, err := unixsock.Listen(file, 0o600); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("listening over a regular file: %v", err)
	}
	// The socket's directory is created.
	deep := filepath.Join(dir, "a", "b", "eventlog.sock")
	l2, err := unixsock.Listen(deep, 0o666)
	if err != nil {
		t.Fatal(err)
	}
	l2.Close()
}
