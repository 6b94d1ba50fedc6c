package hwsource_test

import (
	"bytes"
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

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"github.com/ccnp-eventlog/ccnp-eventlog/hwsource"
	"github.com/ccnp-eventlog/ccnp-eventlog/simulator"
)

// tree68 writes a 6.8 host tree (CCEL, no sysfs measurements) and returns
// it with the simulated TD it was written from.
func tree68(t testing.TB) (string, *simulator.TDX) {
	t.Helper()
	root := t.TempDir()
	if _, err := simulator.WriteHostTree(root, simulator.HostConfig{Seed: 9, Kernel: simulator.Kernel68}); err != nil {
		t.Fatal(err)
	}
	td, err := simulator.NewTDX(simulator.TDXConfig{Seed: 9})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "dev"), 0o755); err != nil {
		t.Fatal(err)
	}
	return root, td
}

func listen(t testing.TB, path string) net.Listener {
	t.Helper()
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// TestTDXRegistersFromTDREPORT: without the sysfs measurements the real
// backend reads RTMRs and MRTD from a TDREPORT of dev/tdx_guest, here the
// simulated TD serving its device on a Unix socket, and is no Extender.
func TestTDXRegistersFromTDREPORT(t *testing.T) {
	root, td := tree68(t)
	go td.ServeReports(listen(t, filepath.Join(root, hwsource.TDXGuestDevicePath)))

	src := hwsource.NewTDX(root)
	if _, ok := src.(hwsource.Extender); ok {
		t.Error("a TDREPORT-only node's source is an Extender")
	}
	if from := src.RegistersFrom(); !strings.Contains(from, "TDREPORT from "+filepath.Join(root, hwsource.TDXGuestDevicePath)) || !strings.Contains(from, "5.19-6.15") {
		t.Errorf("RegistersFrom() = %q", from)
	}
	live, err := src.Registers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want, _ := td.Registers(context.Background())
	m := td.Measurements([64]byte{})
	want.Set(eventlog.AlgSHA384, 0, m.MRTD[:])
	if !live.Equal(want) {
		t.Errorf("registers %x, the simulated TD holds %x", live, want)
	}
	if err := src.(hwsource.CannotExtend).CannotExtend(); !strings.Contains(err.Error(), "only TDREPORTs") {
		t.Errorf("CannotExtend = %v", err)
	}
}

// TestTDXGuestDeviceRefusals: what stands at dev/tdx_guest and is not the
// device, or a device that does not answer, is an error naming it, at once
// or within the report timeout: never a hang.
func TestTDXGuestDeviceRefusals(t *testing.T) {
	read := func(root string) (time.Duration, error) {
		start := time.Now()
		_, err := hwsource.NewTDX(root).Registers(context.Background())
		return time.Since(start), err
	}
	check := func(t *testing.T, root string, within time.Duration, says ...string) {
		t.Helper()
		took, err := read(root)
		if !errors.Is(err, hwsource.ErrNotAvailable) {
			t.Fatalf("error %v does not wrap ErrNotAvailable", err)
		}
		for _, s := range says {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("error %q does not say %q", err, s)
			}
		}
		if took > within {
			t.Errorf("took %v, more than %v", took, within)
		}
	}

	t.Run("regular file", func(t *testing.T) {
		root, _ := tree68(t)
		dev := filepath.Join(root, hwsource.TDXGuestDevicePath)
		os.WriteFile(dev, make([]byte, 1024), 0o644)
		check(t, root, time.Second, dev, "regular file, not the tdx_guest device")
	})
	t.Run("FIFO", func(t *testing.T) {
		root, _ := tree68(t)
		dev := filepath.Join(root, hwsource.TDXGuestDevicePath)
		if err := syscall.Mkfifo(dev, 0o666); err != nil {
			t.Fatal(err)
		}
		check(t, root, time.Second, dev, "not the tdx_guest device")
	})
	t.Run("socket nobody listens on", func(t *testing.T) {
		root, _ := tree68(t)
		dev := filepath.Join(root, hwsource.TDXGuestDevicePath)
		l := listen(t, dev)
		l.(*net.UnixListener).SetUnlinkOnClose(false)
		l.Close()
		check(t, root, time.Second, dev)
	})
	t.Run("device that never answers", func(t *testing.T) {
		root, _ := tree68(t)
		l := listen(t, filepath.Join(root, hwsource.TDXGuestDevicePath))
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				t.Cleanup(func() { c.Close() })
			}
		}()
		check(t, root, 10*time.Second, "reading the TDREPORT", "timeout")
	})
	t.Run("device that answers a short report", func(t *testing.T) {
		root, _ := tree68(t)
		l := listen(t, filepath.Join(root, hwsource.TDXGuestDevicePath))
		go func() {
			c, err := l.Accept()
			if err == nil {
				c.Read(make([]byte, 64))
				c.Write(bytes.Repeat([]byte{0x81}, 100))
				c.Close()
			}
		}()
		check(t, root, 5*time.Second, "reading the TDREPORT")
	})
	t.Run("device that answers no TDREPORT", func(t *testing.T) {
		root, _ := tree68(t)
		l := listen(t, filepath.Join(root, hwsource.TDXGuestDevicePath))
		go func() {
			c, err := l.Accept()
			if err == nil {
				c.Read(make([]byte, 64))
				c.Write(make([]byte, 1024))
				c.Close()
			}
		}()
		check(t, root, 5*time.Second, "TDREPORT: at byte 0", "not TDX")
	})
	t.Run("a character device that is not tdx_guest", func(t *testing.T) {
		// /dev/null's numbers: the real ioctl path runs, and the driver
		// refuses the command it does not know.
		root, _ := tree68(t)
		dev := filepath.Join(root, hwsource.TDXGuestDevicePath)
		if err := unix.Mknod(dev, unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
			t.Skipf("cannot make a device node here: %v", err)
		}
		check(t, root, time.Second, dev, "TDX_CMD_GET_REPORT0", "not the tdx_guest driver's device")

		// A device another user alone may open (root's, to a server that
		// is not root): the permission error says what to do.
		if err := os.Chown(dev, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		chmod(t, dev, 0o600)
		var err error
		asUnprivileged(t, func() { _, err = hwsource.NewTDX(root).Registers(context.Background()) })
		if !errors.Is(err, fs.ErrPermission) || !strings.Contains(err.Error(), "device plugin") {
			t.Errorf("unprivileged: %v, want a permission error with the remedy", err)
		}
	})
	t.Run("neither measurements nor device", func(t *testing.T) {
		root := t.TempDir()
		_, err := read(root)
		if !errors.Is(err, hwsource.ErrNotAvailable) || !errors.Is(err, fs.ErrNotExist) ||
			!strings.Contains(err.Error(), filepath.Join(root, hwsource.RTMRDir)) || !strings.Contains(err.Error(), filepath.Join(root, hwsource.TDXGuestDevicePath)) {
			t.Errorf("error %v: want ErrNotAvailable, fs.ErrNotExist, naming both places", err)
		}
	})
}

func simulatorHostTree(root string) (*simulator.ExpectedRegisters, error) {
	return simulator.WriteHostTree(root, simulator.HostConfig{Seed: 9, Kernel: simulator.Kernel616})
}
