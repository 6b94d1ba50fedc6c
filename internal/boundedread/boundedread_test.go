package boundedread_test

import (
	"bytes"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ccnp-eventlog/ccnp-eventlog/internal/boundedread"
)

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	if err := os.WriteFile(path, []byte("0123456789"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, limit := range []int64{10, 11, 1 << 20} {
		if b, err := boundedread.ReadFile(path, limit); err != nil || string(b) != "0123456789" {
			t.Errorf("limit %d: %q, %v", limit, b, err)
		}
	}
	_, err := boundedread.ReadFile(path, 9)
	var tooLarge *boundedread.TooLargeError
	if !errors.As(err, &tooLarge) || tooLarge.Limit != 9 || tooLarge.Path != path {
		t.Errorf("a 10-byte file with a limit of 9: %#v", err)
	}
	_, err = boundedread.ReadFile(filepath.Join(dir, "absent"), 9)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "absent") {
		t.Errorf("an absent file: %v", err)
	}
	// A symbolic link above the last component is followed: only the
	// last component is the file's own.
	if err := os.Symlink(dir, filepath.Join(dir, "link-to-dir")); err != nil {
		t.Fatal(err)
	}
	if b, err := boundedread.ReadFile(filepath.Join(dir, "link-to-dir", "f"), 10); err != nil || string(b) != "0123456789" {
		t.Errorf("through a linked directory: %q, %v", b, err)
	}
}

// refused runs ReadFile on path and checks that it fails at once with a
// *FileTypeError naming the path and the type found.
func refused(t *testing.T, path string, want fs.FileMode) {
	t.Helper()
	start := time.Now()
	b, err := boundedread.ReadFile(path, 1<<20)
	took := time.Since(start)
	var typeErr *boundedread.FileTypeError
	if !errors.As(err, &typeErr) || typeErr.Type != want || typeErr.Path != path {
		t.Fatalf("ReadFile(%s) = %d bytes, %v; want a *FileTypeError for a %s", path, len(b), err, boundedread.TypeName(want))
	}
	msg := err.Error()
	if !strings.Contains(msg, path) || !strings.Contains(msg, "is a "+boundedread.TypeName(want)+", not a regular file") {
		t.Errorf("message %q does not name the path and what it is", msg)
	}
	// It fails on the file's type, never by waiting or reading: well
	// under a second even on a loaded machine.
	if took > time.Second {
		t.Errorf("refusing %s took %s", path, took)
	}
}

func TestRefusesFIFO(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(path, 0o644); err != nil {
		t.Fatal(err)
	}
	// No writer: a blocking open would wait for one forever.
	refused(t, path, fs.ModeNamedPipe)

	// A writer that holds the pipe open and never writes: a read would
	// block forever.
	w, err := os.OpenFile(path, os.O_RDWR, 0) // RDWR: does not wait for a reader
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	refused(t, path, fs.ModeNamedPipe)
}

func TestRefusesSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	refused(t, path, fs.ModeSocket)
}

func TestRefusesDevices(t *testing.T) {
	// The machine's own: reads of /dev/zero never end, of /dev/null end at once.
	refused(t, "/dev/zero", fs.ModeDevice|fs.ModeCharDevice)
	refused(t, "/dev/null", fs.ModeDevice|fs.ModeCharDevice)
	// The same devices planted in a directory, as an attacker with
	// CAP_MKNOD, or a bind mount, would put them at a log's path.
	dir := t.TempDir()
	for name, dev := range map[string]uint64{"zero": unix.Mkdev(1, 5), "null": unix.Mkdev(1, 3)} {
		path := filepath.Join(dir, name)
		if err := unix.Mknod(path, unix.S_IFCHR|0o666, int(dev)); err != nil {
			t.Skipf("cannot make device nodes here (%v): the machine's /dev ones were checked", err)
		}
		refused(t, path, fs.ModeDevice|fs.ModeCharDevice)
	}
}

func TestRefusesDirectory(t *testing.T) {
	refused(t, t.TempDir(), fs.ModeDir)
}

func TestRefusesSymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, []byte("a log"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, to := range map[string]string{"to-file": target, "to-zero": "/dev/zero", "dangling": filepath.Join(dir, "absent")} {
		link := filepath.Join(dir, name)
		if err := os.Symlink(to, link); err != nil {
			t.Fatal(err)
		}
		refused(t, link, fs.ModeSymlink)
		if msg := (&boundedread.FileTypeError{Path: link, Type: fs.ModeSymlink, Want: "a regular file"}).Error(); !strings.Contains(msg, "not followed") {
			t.Errorf("%q does not say links are not followed", msg)
		}
	}
}

func TestRefusesOversizedFileWithoutReadingIt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "huge")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	// Sparse: 1 TiB that costs nothing to make and far too much to read.
	if err := f.Truncate(1 << 40); err != nil {
		t.Fatal(err)
	}
	f.Close()
	start := time.Now()
	_, err = boundedread.ReadFile(path, 64<<20)
	var tooLarge *boundedread.TooLargeError
	if !errors.As(err, &tooLarge) || tooLarge.Path != path || tooLarge.Limit != 64<<20 {
		t.Fatalf("a 1 TiB file: %v", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("refusing a 1 TiB file took %s: it was read", took)
	}
}

// Kernel attribute files are regular files whose stat size says nothing of
// their content: they are read to EOF, within the limit.
func TestReadsKernelAttributes(t *testing.T) {
	for _, path := range []string{
		"/proc/self/cgroup",              // procfs: size 0
		"/proc/self/status",              // procfs: size 0, over 1 KiB: read in more than one buffer
		"/sys/devices/system/cpu/online", // sysfs: size 4096, a few bytes
	} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Logf("%s: %v", path, err)
			continue
		}
		b, err := boundedread.ReadFile(path, 4096)
		if err != nil || len(b) == 0 {
			t.Errorf("%s (stat size %d): %d bytes, %v", path, fi.Size(), len(b), err)
		}
		if path == "/proc/self/status" && (len(b) < 1024 || !bytes.HasPrefix(b, []byte("Name:")) || !bytes.HasSuffix(b, []byte("\n"))) {
			t.Errorf("%s: %d bytes, not the whole file: %q", path, len(b), b)
		}
		if fi.Size() == 4096 && len(b) == 4096 {
			t.Errorf("%s: read its stat size, not its content", path)
		}
		// A limit below the content is still enforced.
		var tooLarge *boundedread.TooLargeError
		if _, err := boundedread.ReadFile(path, 1); len(b) > 1 && !errors.As(err, &tooLarge) {
			t.Errorf("%s with a limit of 1 byte: %v", path, err)
		}
	}
}

func TestOpenDevice(t *testing.T) {
	const want = fs.ModeDevice | fs.ModeCharDevice
	f, err := boundedread.Open("/dev/null", unix.O_RDWR, want, "a TPM device")
	if err != nil {
		t.Fatal(err)
	}
	// Opened blocking: O_NONBLOCK only guarded the open.
	if fl, err := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0); err != nil || fl&unix.O_NONBLOCK != 0 || fl&unix.O_ACCMODE != unix.O_RDWR {
		t.Errorf("flags %#x, %v: want O_RDWR without O_NONBLOCK", fl, err)
	}
	f.Close()

	dir := t.TempDir()
	fifo := filepath.Join(dir, "tpmrm0")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	regular := filepath.Join(dir, "tpm0")
	if err := os.WriteFile(regular, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for path, typ := range map[string]fs.FileMode{fifo: fs.ModeNamedPipe, regular: 0, dir: fs.ModeDir} {
		start := time.Now()
		_, err := boundedread.Open(path, unix.O_RDWR, want, "a TPM device")
		var typeErr *boundedread.FileTypeError
		if !errors.As(err, &typeErr) || typeErr.Type != typ || !strings.Contains(err.Error(), "not a TPM device") {
			t.Errorf("%s: %v, want a %s refused", path, err, boundedread.TypeName(typ))
		}
		if took := time.Since(start); took > time.Second {
			t.Errorf("%s: took %s", path, took)
		}
	}
}

func TestReadAll(t *testing.T) {
	if b, err := boundedread.ReadAll(strings.NewReader("abc"), 3); err != nil || string(b) != "abc" {
		t.Errorf("%q, %v", b, err)
	}
	var tooLarge *boundedread.TooLargeError
	if _, err := boundedread.ReadAll(strings.NewReader("abcd"), 3); !errors.As(err, &tooLarge) {
		t.Errorf("4 bytes with a limit of 3: %v", err)
	}
}
