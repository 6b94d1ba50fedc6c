package service

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ccnp-eventlog/ccnp-eventlog/internal/asnobody"
)

var privateLimits = DirLimits{MaxBytes: 1 << 20, MaxAge: time.Hour, MinLifetime: time.Minute}

func owner(t *testing.T, path string) (uint32, os.FileMode) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Uid, fi.Mode().Perm()
}

// TestPrivateDir: files and their subdirectory go to the caller's uid; a
// reopened directory adopts them; the sweep removes old files and the
// subdirectories left empty.
func TestPrivateDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "containers")
	d, err := openPrivateDir(dir, privateLimits)
	if err != nil {
		t.Fatal(err)
	}
	me := &fileOwner{uid: uint32(os.Geteuid()), gid: uint32(os.Getegid())}
	p, err := d.putOwned("c1/eventlog-saas-a.json", []byte("mine"), me)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "mine" {
		t.Errorf("content %q", b)
	}
	for path, want := range map[string]os.FileMode{dir: 0o711, filepath.Dir(p): 0o700, p: 0o400} {
		if uid, mode := owner(t, path); mode != want || uid != me.uid {
			t.Errorf("%s: uid %d mode %v, want %d %v", path, uid, mode, me.uid, want)
		}
	}
	if os.Geteuid() == 0 {
		other := &fileOwner{uid: 4242, gid: 4243}
		p, err := d.putOwned("c2/eventlog-saas-b.json", []byte("theirs"), other)
		if err != nil {
			t.Fatal(err)
		}
		for _, path := range []string{p, filepath.Dir(p)} {
			fi, _ := os.Lstat(path)
			st := fi.Sys().(*syscall.Stat_t)
			if st.Uid != other.uid || st.Gid != other.gid {
				t.Errorf("%s belongs to %d:%d, want %d:%d", path, st.Uid, st.Gid, other.uid, other.gid)
			}
		}
	}

	// A restarted server adopts the files, so their lifetimes still count.
	re, err := openPrivateDir(dir, privateLimits)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := re.files["c1/eventlog-saas-a.json"]; !ok {
		t.Errorf("reopening did not adopt the file: %v", re.files)
	}
	// Past their age, files go, and so do the directories they leave empty.
	re.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	re.sweep()
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("after the sweep the directory holds %v", entries)
	}
}

// TestPrivateDirWithoutRoot: a server that is not root serves files to its
// own uid, and tells callers of other uids to ask for inline content.
func TestPrivateDirWithoutRoot(t *testing.T) {
	if os.Geteuid() == 0 {
		asnobody.Run(t, nil, "TestPrivateDirWithoutRoot")
		return
	}
	dir := filepath.Join(t.TempDir(), "containers")
	d, err := openPrivateDir(dir, privateLimits)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.putOwned("mine/eventlog-saas-a.json", []byte("x"), &fileOwner{uid: uint32(os.Geteuid()), gid: uint32(os.Getegid())}); err != nil {
		t.Errorf("a file for the server's own uid: %v", err)
	}
	_, err = d.putOwned("theirs/eventlog-saas-b.json", []byte("x"), &fileOwner{uid: uint32(os.Geteuid()) + 1, gid: 1})
	if !errors.Is(err, errCannotChown) {
		t.Fatalf("a file for another uid: %v, want errCannotChown", err)
	}
	st, _ := status.FromError(toStatus(err))
	if st.Code() != codes.FailedPrecondition || !strings.Contains(st.Message(), "inline") {
		t.Errorf("status %v, want FAILED_PRECONDITION pointing to inline content", st)
	}
	if _, err := os.Stat(filepath.Join(dir, "theirs")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a directory the caller cannot read was left behind: %v", err)
	}
	if _, ok := d.files["theirs/eventlog-saas-b.json"]; ok {
		t.Error("a file never written is still counted")
	}
}
