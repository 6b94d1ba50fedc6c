package hwsource

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"slices"
	"sync/atomic"
	"time"

	"github.com/google/go-tpm/tpm2/transport"
	"github.com/google/go-tpm/tpm2/transport/linuxudstpm"
	"golang.org/x/sys/unix"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"github.com/ccnp-eventlog/ccnp-eventlog/internal/boundedread"
)

// Host paths of the TPM event log and device. securityfs exposes the log to
// root only; the Helm chart's init container can stage a copy under /run.
const (
	TPMLogPath       = "sys/kernel/security/tpm0/binary_bios_measurements"
	StagedTPMLogPath = StagedDir + "/tpm0/binary_bios_measurements"
	// TPMDevicePath is the kernel's resource-managed TPM device; several
	// processes can use it at once.
	TPMDevicePath = "dev/tpmrm0"
	// RawTPMDevicePath is the raw device, used when there is no tpmrm0.
	RawTPMDevicePath = "dev/tpm0"
)

type tpmSource struct {
	logs    []string // in order of preference
	devices []string
	root    string
	// algs are the digest algorithms of the last log read, which say
	// which PCR banks Registers reads.
	algs atomic.Pointer[[]eventlog.Alg]
}

// NewTPM returns the real TPM source: the event log from securityfs under root
// (or its staged copy) and live PCRs read with go-tpm through root/dev/tpmrm0,
// else root/dev/tpm0. A Unix socket at either device path is used as a TPM
// reached over a socket (swtpm, or the simulator's TPM.Serve), which is how
// the real code path runs without TPM hardware. It is an Extender: PCRs are
// extended through the same device. An empty root is "/".
func NewTPM(root string) Source {
	return &tpmSource{
		logs:    []string{hostPath(root, TPMLogPath), hostPath(root, StagedTPMLogPath)},
		devices: []string{hostPath(root, TPMDevicePath), hostPath(root, RawTPMDevicePath)},
		root:    root,
	}
}

func (s *tpmSource) Name() string {
	return "TPM log (" + s.logs[0] + ", or the staged copy " + s.logs[1] + ")"
}

func (s *tpmSource) Kind() eventlog.Kind { return eventlog.TPM }
func (s *tpmSource) Simulated() bool     { return false }

// ReadLog reads the first readable log to EOF and parses it.
func (s *tpmSource) ReadLog(ctx context.Context) (Log, error) {
	if err := ctx.Err(); err != nil {
		return Log{}, err
	}
	var denied, missing []error
	for _, path := range s.logs {
		b, err := readLimited(path, maxTPMLog)
		switch {
		case err == nil:
			l, err := ParseLog(b, false, path)
			if err != nil {
				return Log{}, err
			}
			l.Path = path
			algs := l.Parsed.Algs()
			s.algs.Store(&algs)
			return l, nil
		case errors.Is(err, fs.ErrPermission):
			denied = append(denied, err)
		case errors.Is(err, fs.ErrNotExist):
			missing = append(missing, err)
		default:
			return Log{}, err
		}
	}
	if len(denied) > 0 {
		return Log{}, fmt.Errorf("cannot read the TPM event log: %w (binary_bios_measurements is readable by root only: run as root, or stage a copy at %s, as the Helm chart's init container does)",
			joinErrors(denied), s.logs[1])
	}
	return Log{}, fmt.Errorf("no TPM event log at %s (no TPM, TPM disabled in firmware, or securityfs not mounted): %w",
		orList(s.logs), joinErrors(missing))
}

// logAlgs returns the log's algorithms, from the last log read; the log is
// read only if none has been (a firmware log does not change after boot).
// nil when it cannot be read.
func (s *tpmSource) logAlgs(ctx context.Context) []eventlog.Alg {
	if algs := s.algs.Load(); algs != nil {
		return *algs
	}
	if _, err := s.ReadLog(ctx); err != nil {
		return nil
	}
	return *s.algs.Load()
}

// Registers reads PCRs 0..23 of every bank the log uses (every allocated
// bank when the log cannot be read) from the TPM device.
func (s *tpmSource) Registers(ctx context.Context) (eventlog.Bank, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	t, path, err := s.open()
	if err != nil {
		return nil, err
	}
	defer t.Close()
	banks, err := PCRBanks(t)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrNotAvailable, path, err)
	}
	algs := banks
	if logAlgs := s.logAlgs(ctx); logAlgs != nil {
		algs = slices.DeleteFunc(slices.Clone(logAlgs), func(a eventlog.Alg) bool { return !slices.Contains(banks, a) })
	}
	if len(algs) == 0 {
		return nil, fmt.Errorf("%w: the TPM at %s has no PCR bank for the log's algorithms (it has %v)", ErrNotAvailable, path, banks)
	}
	bank, err := ReadPCRs(t, algs, PCClientPCRs)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrNotAvailable, path, err)
	}
	return bank, nil
}

// open opens the first TPM device that exists: a character device, or a
// Unix socket to a TPM reached over one. Nothing at the path can make it
// block: the device is opened without blocking and checked on the open file
// (a FIFO, a regular file or a directory put there is refused at once).
func (s *tpmSource) open() (transport.TPMCloser, string, error) {
	var missing []error
	for _, path := range s.devices {
		fi, err := os.Lstat(path)
		if errors.Is(err, fs.ErrNotExist) {
			missing = append(missing, err)
			continue
		}
		if err != nil {
			return nil, "", fmt.Errorf("%w: %w", ErrNotAvailable, err)
		}
		var t transport.TPMCloser
		if fi.Mode().Type() == fs.ModeSocket {
			t, err = openSocketTPM(path)
		} else {
			t, err = openDeviceTPM(path)
		}
		var typeErr *boundedread.FileTypeError
		switch {
		case errors.As(err, &typeErr):
			return nil, "", fmt.Errorf("%w: %w", ErrNotAvailable, err)
		case errors.Is(err, fs.ErrPermission):
			return nil, "", fmt.Errorf("%w: %w (run as root, or as a member of the group owning the device, usually tss)", ErrNotAvailable, err)
		case err != nil:
			return nil, "", fmt.Errorf("%w: open %s: %w", ErrNotAvailable, path, err)
		}
		return t, path, nil
	}
	return nil, "", fmt.Errorf("%w: no TPM device at %s (no TPM, or its driver is not loaded): %w", ErrNotAvailable, orList(s.devices), joinErrors(missing))
}

// openDeviceTPM opens a TPM character device as linuxtpm.Open does, but on
// the descriptor it checked: linuxtpm stats the path, then opens it
// blocking, which a FIFO swapped in between (or any FIFO, opened for
// reading only) would hang.
func openDeviceTPM(path string) (transport.TPMCloser, error) {
	f, err := boundedread.Open(path, unix.O_RDWR, fs.ModeDevice|fs.ModeCharDevice, "a TPM device (a character device, or a Unix socket to a TPM)")
	if err != nil {
		return nil, err
	}
	return transport.FromReadWriteCloser(f), nil
}

// openSocketTPM opens a TPM reached over a Unix socket. linuxudstpm connects
// lazily, on the first command; connecting once here makes a socket nobody
// listens on, or one the caller may not use, fail at open with a clear error.
func openSocketTPM(path string) (transport.TPMCloser, error) {
	if err := probeSocket(path); err != nil {
		return nil, err
	}
	return linuxudstpm.Open(path)
}

func probeSocket(path string) error {
	c, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		return err
	}
	return c.Close()
}

func (s *tpmSource) RegistersFrom() string { return "TPM device " + orList(s.devices) }
