package runtimelog_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/ccnp-eventlog/ccnp-eventlog/internal/dirfd"
	"github.com/ccnp-eventlog/ccnp-eventlog/runtimelog"
)

// TestOpenDirThroughDescriptors: the state directory's mode is fixed
// through its descriptor; a link where it, or its lock, goes is refused,
// and what the link points to is left as it was.
func TestOpenDirThroughDescriptors(t *testing.T) {
	tmp := t.TempDir()
	target := filepath.Join(tmp, "target")
	os.Mkdir(target, 0o755)
	os.Symlink(target, filepath.Join(tmp, "linked"))
	if _, err := runtimelog.OpenDir(filepath.Join(tmp, "linked")); !errors.Is(err, dirfd.ErrSymlink) {
		t.Errorf("a linked state directory: %v, want ErrSymlink", err)
	}
	if fi, _ := os.Stat(target); fi.Mode().Perm() != 0o755 {
		t.Errorf("the link's target changed mode: %v", fi.Mode())
	}

	open := filepath.Join(tmp, "open")
	os.Mkdir(open, 0o755)
	d, err := runtimelog.OpenDir(open)
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	if fi, _ := os.Stat(open); fi.Mode().Perm() != 0o700 {
		t.Errorf("an existing state directory kept mode %v, want 0700", fi.Mode().Perm())
	}

	lockLinked := filepath.Join(tmp, "lock-linked")
	os.Mkdir(lockLinked, 0o700)
	secret := filepath.Join(tmp, "secret")
	os.WriteFile(secret, []byte("root's"), 0o600)
	os.Symlink(secret, filepath.Join(lockLinked, "lock"))
	if _, err := runtimelog.OpenDir(lockLinked); err == nil {
		t.Error("a link where the lock goes was followed")
	}
	if b, _ := os.ReadFile(secret); string(b) != "root's" {
		t.Errorf("the lock link's target changed: %q", b)
	}
	if _, err := os.Lstat(filepath.Join(lockLinked, "lock")); err != nil {
		t.Errorf("the link: %v", err)
	}
}
