package hwsource_test

import (
	"context"
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

	"github.com/ccnp-eventlog/ccnp-eventlog/hwsource"
	"github.com/ccnp-eventlog/ccnp-eventlog/internal/boundedread"
	"github.com/ccnp-eventlog/ccnp-eventlog/internal/corpus"
)

// plant replaces the file at path (under root) with something that is not
// a regular file, or a regular file far too large: what a user who can
// write where the server reads would put there.
type plant struct {
	name string
	typ  fs.FileMode // the type the error must report; 0: too large
	make func(t *testing.T, path string)
}

var plants = []plant{
	{"named pipe", fs.ModeNamedPipe, func(t *testing.T, path string) {
		if err := syscall.Mkfifo(path, 0o644); err != nil {
			t.Fatal(err)
		}
	}},
	{"named pipe with a silent writer", fs.ModeNamedPipe, func(t *testing.T, path string) {
		if err := syscall.Mkfifo(path, 0o644); err != nil {
			t.Fatal(err)
		}
		w, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { w.Close() })
	}},
	{"socket", fs.ModeSocket, func(t *testing.T, path string) {
		// Bound at a short path (sun_path holds 108 bytes), then moved.
		short, err := os.MkdirTemp("", "s")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(short) })
		l, err := net.Listen("unix", filepath.Join(short, "s"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		if err := os.Rename(filepath.Join(short, "s"), path); err != nil {
			t.Fatal(err)
		}
	}},
	{"/dev/zero", fs.ModeDevice | fs.ModeCharDevice, func(t *testing.T, path string) {
		if err := unix.Mknod(path, unix.S_IFCHR|0o644, int(unix.Mkdev(1, 5))); err != nil {
			t.Skipf("cannot make a device node: %v", err)
		}
	}},
	{"/dev/null", fs.ModeDevice | fs.ModeCharDevice, func(t *testing.T, path string) {
		if err := unix.Mknod(path, unix.S_IFCHR|0o644, int(unix.Mkdev(1, 3))); err != nil {
			t.Skipf("cannot make a device node: %v", err)
		}
	}},
	{"directory", fs.ModeDir, func(t *testing.T, path string) {
		if err := os.Mkdir(path, 0o755); err != nil {
			t.Fatal(err)
		}
	}},
	{"symbolic link to a good copy", fs.ModeSymlink, func(t *testing.T, path string) {
		good := path + ".good"
		if err := os.Rename(path+".orig", good); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(good, path); err != nil {
			t.Fatal(err)
		}
	}},
	{"sparse 1 TiB file", 0, func(t *testing.T, path string) {
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := f.Truncate(1 << 40); err != nil {
			t.Fatal(err)
		}
	}},
}

// replace moves the tree's file at path aside (to path.orig) and plants p.
func (p plant) replace(t *testing.T, path string) {
	t.Helper()
	if err := os.Rename(path, path+".orig"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	p.make(t, path)
}

// check asserts that err refuses p at path, promptly.
func (p plant) check(t *testing.T, err error, path string, took time.Duration) {
	t.Helper()
	if took > time.Second {
		t.Errorf("took %s to refuse", took)
	}
	if err == nil {
		t.Fatal("no error")
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("%q does not name %s", err, path)
	}
	if p.typ == 0 {
		var tooLarge *boundedread.TooLargeError
		if !errors.As(err, &tooLarge) || !strings.Contains(err.Error(), "more than") {
			t.Errorf("%v: want a *boundedread.TooLargeError naming the limit", err)
		}
		return
	}
	var typeErr *boundedread.FileTypeError
	if !errors.As(err, &typeErr) || typeErr.Type != p.typ || typeErr.Path != path {
		t.Errorf("%v: want a *boundedread.FileTypeError for a %s at %s", err, boundedread.TypeName(p.typ), path)
	}
	if !strings.Contains(err.Error(), "is a "+boundedread.TypeName(p.typ)) {
		t.Errorf("%q does not say what the file is", err)
	}
}

// Every file the real backends read whole is refused promptly, with its
// path and type, when it is not a regular file (or is far too large): none
// can block a reader or be read without bound.
func TestHostileFileTypes(t *testing.T) {
	files := map[string][]byte{
		hwsource.CCELTablePath:       corpus.Read(t, "tdx/ovmf-64k.table.bin"),
		hwsource.CCELDataPath:        corpus.Read(t, "tdx/ovmf-64k.data.bin"),
		hwsource.StagedCCELTablePath: corpus.Read(t, "tdx/ovmf-64k.table.bin"),
		hwsource.StagedCCELDataPath:  corpus.Read(t, "tdx/ovmf-64k.data.bin"),
		hwsource.TPMLogPath:          corpus.Read(t, "tpm/tpm_rhel8-uefi.bin"),
		hwsource.StagedTPMLogPath:    corpus.Read(t, "tpm/tpm_rhel8-uefi.bin"),
		hwsource.BootIDPath:          []byte("2b7d2ef0-8c46-4b0a-9d48-46a0d1b3b2ff\n"),
	}
	for i := range 4 {
		files[hwsource.RTMRPath(i)] = make([]byte, 48)
	}
	ctx := context.Background()
	readers := []struct {
		path string
		read func(root string) error
	}{
		{hwsource.CCELTablePath, func(root string) error { _, err := hwsource.NewTDX(root).ReadLog(ctx); return err }},
		{hwsource.CCELDataPath, func(root string) error { _, err := hwsource.NewTDX(root).ReadLog(ctx); return err }},
		{hwsource.TPMLogPath, func(root string) error { _, err := hwsource.NewTPM(root).ReadLog(ctx); return err }},
		{hwsource.RTMRPath(2), func(root string) error { _, err := hwsource.NewTDX(root).Registers(ctx); return err }},
		{hwsource.BootIDPath, func(root string) error { _, err := hwsource.ReadBootID(root); return err }},
	}
	for _, r := range readers {
		for _, p := range plants {
			t.Run(filepath.Base(r.path)+"/"+p.name, func(t *testing.T) {
				root := writeTree(t, files)
				path := filepath.Join(root, r.path)
				p.replace(t, path)
				start := time.Now()
				err := r.read(root)
				p.check(t, err, path, time.Since(start))
			})
		}
	}
}

// With no sysfs copy, the staged copy the init container wrote is read:
// the same checks apply to it.
func TestHostileStagedCopies(t *testing.T) {
	ctx := context.Background()
	for _, staged := range []struct {
		files map[string][]byte
		path  string
		read  func(root string) error
	}{{
		map[string][]byte{
			hwsource.StagedCCELTablePath: corpus.Read(t, "tdx/ovmf-64k.table.bin"),
			hwsource.StagedCCELDataPath:  corpus.Read(t, "tdx/ovmf-64k.data.bin"),
		},
		hwsource.StagedCCELDataPath,
		func(root string) error { _, err := hwsource.NewTDX(root).ReadLog(ctx); return err },
	}, {
		map[string][]byte{hwsource.StagedTPMLogPath: corpus.Read(t, "tpm/tpm_rhel8-uefi.bin")},
		hwsource.StagedTPMLogPath,
		func(root string) error { _, err := hwsource.NewTPM(root).ReadLog(ctx); return err },
	}} {
		for _, p := range plants {
			t.Run(filepath.Base(staged.path)+"/"+p.name, func(t *testing.T) {
				root := writeTree(t, staged.files)
				path := filepath.Join(root, staged.path)
				p.replace(t, path)
				start := time.Now()
				p.check(t, staged.read(root), path, time.Since(start))
			})
		}
	}
}

// The TPM device is opened without blocking and checked on the open file:
// a FIFO at /dev/tpmrm0 (which linuxtpm.Open would stat, then open
// blocking) or anything else that is not a character device or a socket is
// refused at once.
func TestHostileTPMDevice(t *testing.T) {
	for _, p := range plants {
		if p.typ == 0 || p.typ == fs.ModeSocket || p.typ == fs.ModeSymlink {
			continue // a socket is a TPM over a socket; size means nothing for a device
		}
		if p.typ&fs.ModeCharDevice != 0 {
			continue // a character device is what a TPM is: opened, then spoken to
		}
		t.Run(p.name, func(t *testing.T) {
			root := writeTree(t, map[string][]byte{hwsource.TPMDevicePath: nil})
			path := filepath.Join(root, hwsource.TPMDevicePath)
			p.replace(t, path)
			start := time.Now()
			_, err := hwsource.NewTPM(root).Registers(context.Background())
			p.check(t, err, path, time.Since(start))
			if !errors.Is(err, hwsource.ErrNotAvailable) || !strings.Contains(err.Error(), "not a TPM device") {
				t.Errorf("%v: want ErrNotAvailable saying it is not a TPM device", err)
			}
		})
	}
	t.Run("symbolic link", func(t *testing.T) {
		root := writeTree(t, map[string][]byte{"dev/fifo": nil})
		fifo := filepath.Join(root, "dev/fifo")
		os.Remove(fifo)
		if err := syscall.Mkfifo(fifo, 0o644); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(root, hwsource.TPMDevicePath)
		if err := os.Symlink(fifo, path); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		_, err := hwsource.NewTPM(root).Registers(context.Background())
		plant{typ: fs.ModeSymlink}.check(t, err, path, time.Since(start))
	})
}
