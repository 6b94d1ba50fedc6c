package outdir

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ccnp-eventlog/ccnp-eventlog/internal/asnobody"
	"github.com/ccnp-eventlog/ccnp-eventlog/internal/dirfd"
)

// nobody is the unprivileged caller of these tests, when they run as root.
const nobody = asnobody.UID

// privateFile is a File for the subdirectory sub, given to owner.
func privateFile(sub string, owner Owner, label string, b []byte) File {
	f := content(label, b)
	f.Sub, f.Owner = sub, &owner
	return f
}

func stat(t *testing.T, path string) (uid uint32, mode fs.FileMode) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Uid, fi.Mode()
}

// sharedTempDir is a temporary directory every user can cross, for tests
// in which nobody must reach files (t.TempDir's directories are private).
func sharedTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "outdir")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func mustOpenPrivate(t *testing.T, out string) (*Dir, *Dir) {
	t.Helper()
	pub := mustOpen(t, out, testLimits)
	d, err := pub.OpenPrivate("containers", testLimits)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return pub, d
}

// asNobody runs a shell command as uid nobody and returns its error output
// ("" when it succeeded).
func asNobody(t *testing.T, script string, args ...string) string {
	t.Helper()
	cmd := exec.Command("sh", append([]string{"-c", script, "sh"}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	out, err := cmd.CombinedOutput()
	if err == nil {
		return ""
	}
	return strings.TrimSpace(string(out)) + " (" + err.Error() + ")"
}

// TestPrivateDir: the directory and its subdirectories are the server's,
// mode 0711; each file is its caller's, mode 0400. The caller reads its file
// by its path, and can neither list, create, rename nor remove anything. A
// reopened directory adopts the files; the sweep removes old files and the
// subdirectories left empty.
func TestPrivateDir(t *testing.T) {
	out := sharedTempDir(t)
	_, d := mustOpenPrivate(t, out)
	caller := Owner{uint32(os.Geteuid()), uint32(os.Getegid())}
	if os.Geteuid() == 0 {
		caller = Owner{nobody, nobody}
	}
	st, err := d.Put(privateFile("c1", caller, "saas-tdx-1-1", []byte("mine")))
	if err != nil {
		t.Fatal(err)
	}
	containers, sub := filepath.Join(out, "containers"), filepath.Join(out, "containers", "c1")
	if st.Path != filepath.Join(sub, st.Name) {
		t.Errorf("path %s, want in %s", st.Path, sub)
	}
	for path, want := range map[string]struct {
		uid  uint32
		mode fs.FileMode
	}{
		containers: {uint32(os.Geteuid()), fs.ModeDir | 0o711},
		sub:        {uint32(os.Geteuid()), fs.ModeDir | 0o711},
		st.Path:    {caller.UID, 0o400},
	} {
		if uid, mode := stat(t, path); uid != want.uid || mode != want.mode {
			t.Errorf("%s: uid %d mode %v, want %d %v", path, uid, mode, want.uid, want.mode)
		}
	}
	if os.Geteuid() == 0 {
		if msg := asNobody(t, `cat "$1"`, st.Path); msg != "" {
			t.Errorf("the caller cannot read its file: %s", msg)
		}
		// What an attacker would try, to have the server follow a link.
		for what, script := range map[string]string{
			"list the containers":         `ls "$1"/..`,
			"list its directory":          `ls "$1"`,
			"rename its directory":        `mv "$1" "$1.old"`,
			"put a link in its directory": `ln -s /etc/shadow "$1"/eventlog-x.json`,
			"rename its file":             `mv "$2" "$2.old"`,
			"remove its file":             `rm -f "$2"`,
			"put a link in containers":    `ln -s /etc "$1"/../c2`,
		} {
			msg := asNobody(t, script, sub, st.Path)
			if !strings.Contains(msg, "Permission denied") {
				t.Errorf("the caller could %s: %q", what, msg)
			}
		}
	}

	// A restarted server adopts the files, so their lifetimes still count.
	_, re := mustOpenPrivate(t, out)
	if f := re.files[key{"c1", st.Name}]; f == nil || f.uid != caller.UID {
		t.Errorf("reopening did not adopt the file: %v", re.files)
	}
	if p, ok := re.Reuse("c1", st.Name); !ok || p != st.Path {
		t.Errorf("Reuse after reopening: %s %v", p, ok)
	}
	// Past their age, files go, and so do the directories they leave empty.
	re.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	re.Sweep()
	if entries, _ := os.ReadDir(containers); len(entries) != 0 {
		t.Errorf("after the sweep the directory holds %v", entries)
	}
}

// TestPrivateDirTakesOverWhatIsThere: a containers directory as an earlier
// version left it (each subdirectory the caller's, mode 0700) or as a
// hostile user prepared it (before the server first ran, in an output
// directory others could write): the directories are given to the server
// through their descriptors; what the callers put inside (links, FIFOs,
// directories, hard links) is never followed, opened or counted; a link
// where a subdirectory goes is never followed.
func TestPrivateDirTakesOverWhatIsThere(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("giving directories to another uid takes root")
	}
	out := sharedTempDir(t)
	secret := newRootFile(t)
	secretDir := filepath.Join(t.TempDir(), "root-dir")
	os.Mkdir(secretDir, 0o700)
	os.WriteFile(filepath.Join(secretDir, "eventlog-root.json"), []byte("root's"), 0o600)

	containers := filepath.Join(out, "containers")
	legacy := filepath.Join(containers, "legacy")
	os.MkdirAll(legacy, 0o700)
	os.Chmod(containers, 0o777)
	for _, p := range []string{containers, legacy} {
		os.Chown(p, nobody, nobody)
	}
	inLegacy := func(name string) string { return filepath.Join(legacy, name) }
	os.WriteFile(inLegacy("eventlog-saas-tdx-1-1-0123456789abcdef.json"), []byte("its own"), 0o400)
	os.Chown(inLegacy("eventlog-saas-tdx-1-1-0123456789abcdef.json"), nobody, nobody)
	os.Symlink(secret.path, inLegacy("eventlog-link.json"))
	os.Symlink(secret.path, inLegacy(tempPrefix+"link"))
	unix.Mkfifo(inLegacy("eventlog-fifo.json"), 0o666)
	os.Mkdir(inLegacy("eventlog-dir.json"), 0o755)
	os.Link(secret.path, inLegacy("eventlog-hardlink.json"))
	os.Symlink(secretDir, filepath.Join(containers, "linked"))
	os.WriteFile(filepath.Join(containers, "file"), nil, 0o644)

	_, d := mustOpenPrivate(t, out)
	for _, p := range []string{containers, legacy} {
		if uid, mode := stat(t, p); uid != 0 || mode != fs.ModeDir|0o711 {
			t.Errorf("%s: uid %d mode %v, want root's, 0711", p, uid, mode)
		}
	}
	if len(d.files) != 1 || d.total != int64(len("its own")) {
		t.Errorf("adopted %v (%d bytes), want only the regular file", d.files, d.total)
	}
	if _, ok := d.subdirs["linked"]; ok {
		t.Error("a symbolic link was taken for a subdirectory")
	}
	// Writing to where a link or a file stands refuses, naming the path.
	for sub, want := range map[string]error{"linked": dirfd.ErrSymlink, "file": dirfd.ErrNotDirectory} {
		_, err := d.Put(privateFile(sub, Owner{nobody, nobody}, "saas-tdx-1-1", []byte("x")))
		var e *Error
		if !errors.Is(err, want) || !errors.As(err, &e) || !strings.Contains(err.Error(), filepath.Join(containers, sub)) {
			t.Errorf("a file in %s: %v, want %v naming the path", sub, err, want)
		}
	}
	if uid, mode := stat(t, secretDir); uid != 0 || mode != fs.ModeDir|0o700 {
		t.Errorf("the linked directory changed: uid %d mode %v", uid, mode)
	}
	if entries, _ := os.ReadDir(secretDir); len(entries) != 1 {
		t.Errorf("something was written in the linked directory: %v", entries)
	}
	secret.check(t)
}

// TestPrivateDirRefusesALinkedContainers: the containers directory itself
// replaced by a link (to the socket's directory, say) is refused, and what
// it points to keeps its mode.
func TestPrivateDirRefusesALinkedContainers(t *testing.T) {
	out := t.TempDir()
	target := filepath.Join(t.TempDir(), "uds")
	os.Mkdir(target, 0o755)
	pub := mustOpen(t, out, testLimits)
	os.Symlink(target, filepath.Join(out, "containers"))
	_, err := pub.OpenPrivate("containers", testLimits)
	if !errors.Is(err, dirfd.ErrSymlink) || !strings.Contains(err.Error(), filepath.Join(out, "containers")) {
		t.Errorf("%v, want ErrSymlink naming the path", err)
	}
	if _, mode := stat(t, target); mode != fs.ModeDir|0o755 {
		t.Errorf("the link's target changed mode: %v", mode)
	}
}

// TestPrivateDirWithoutRoot: a server that is not root serves files to its
// own uid, and tells callers of other uids to ask for inline content.
func TestPrivateDirWithoutRoot(t *testing.T) {
	if os.Geteuid() == 0 {
		asnobody.Run(t, nil, "TestPrivateDirWithoutRoot")
		return
	}
	out := t.TempDir()
	_, d := mustOpenPrivate(t, out)
	me := Owner{uint32(os.Geteuid()), uint32(os.Getegid())}
	if _, err := d.Put(privateFile("mine", me, "saas-tdx-1-1", []byte("x"))); err != nil {
		t.Errorf("a file for the server's own uid: %v", err)
	}
	_, err := d.Put(privateFile("theirs", Owner{me.UID + 1, 1}, "saas-tdx-1-1", []byte("x")))
	if !errors.Is(err, ErrCannotChown) || !strings.Contains(err.Error(), "inline") {
		t.Fatalf("a file for another uid: %v, want ErrCannotChown pointing to inline content", err)
	}
	if _, err := os.Stat(filepath.Join(out, "containers", "theirs")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a directory made in vain was left behind: %v", err)
	}
	if n, names := onDisk(t, filepath.Join(out, "containers", "mine")); len(names) != 1 || d.total != n {
		t.Errorf("%d bytes counted, %v on disk: a file never written is still counted", d.total, names)
	}
}
