package hwsource

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"time"
	"unsafe"

	labi "github.com/google/go-tdx-guest/client/linuxabi"
	"golang.org/x/sys/unix"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"github.com/ccnp-eventlog/ccnp-eventlog/internal/boundedread"
	"github.com/ccnp-eventlog/ccnp-eventlog/tdxquote"
)

// How a TD's live registers are read depends on the kernel generation:
//
//   - Linux 6.16+: the tdx_guest driver's sysfs measurements
//     (measurements/rtmr[0-3]:sha384, mrtd:sha384), through which RTMRs
//     are also extended.
//   - Linux 5.19-6.15: only a TDREPORT, from the TDX_CMD_GET_REPORT0 ioctl
//     of /dev/tdx_guest. RTMRs cannot be extended from user space.
//   - Neither (an older kernel, or a server given only the staged CCEL
//     copies): no live registers.
//
// NewTDX decides which from what exists under its root when it is built,
// so whether the node can extend RTMR3 is known before any request.

const (
	// TDXGuestDevicePath is the tdx_guest driver's device (Linux 5.19+).
	TDXGuestDevicePath = "dev/tdx_guest"
	// MRTDPath is the TD's MRTD in the sysfs measurements (Linux 6.16+).
	MRTDPath = RTMRDir + "/mrtd:sha384"
)

// ReportDevice is where TDREPORTs come from: the tdx_guest driver's
// TDX_CMD_GET_REPORT0 ioctl, or a simulated TD. The real backend and the
// simulator's kernel profiles read registers through it with
// TDReportRegisters, so the code that reads a real device is the code the
// simulated one exercises.
type ReportDevice interface {
	// GetReport returns the TDREPORT_STRUCT (1024 bytes) the TDX module
	// makes for reportData.
	GetReport(reportData [tdxquote.ReportDataSize]byte) ([]byte, error)
	Close() error
}

// TDReportRegisters gets a TDREPORT from dev and returns its registers:
// RTMR0..3 at CC MR indexes 1..4 and MRTD at 0, in the SHA-384 bank.
func TDReportRegisters(dev ReportDevice) (eventlog.Bank, error) {
	// The report data only binds a report to a verifier's nonce; for reading
	// registers any value does.
	b, err := dev.GetReport([tdxquote.ReportDataSize]byte{})
	if err != nil {
		return nil, err
	}
	r, err := tdxquote.ParseReport(b)
	if err != nil {
		return nil, err
	}
	bank := r.Bank()
	bank.Set(eventlog.AlgSHA384, 0, r.MRTD[:])
	return bank, nil
}

// CannotExtend is implemented by sources that know, from what the node
// offers, that their registers cannot be extended: it says why, naming what
// it would take. The service asks for it when a source is not an Extender.
type CannotExtend interface {
	CannotExtend() error
}

// tdxRegisters is how a tdxSource reads live registers.
type tdxRegisters interface {
	read(ctx context.Context) (eventlog.Bank, error)
	from() string
}

// chooseTDXRegisters looks at what the node offers under root.
func chooseTDXRegisters(root string) tdxRegisters {
	sysfs := hostPath(root, RTMRDir)
	if _, err := os.Stat(sysfs); !errors.Is(err, fs.ErrNotExist) {
		return sysfsRTMRs{root: root}
	}
	device := hostPath(root, TDXGuestDevicePath)
	if _, err := os.Stat(device); !errors.Is(err, fs.ErrNotExist) {
		return tdReportRegisters{path: device}
	}
	return noRTMRs{sysfs: sysfs, device: device}
}

// sysfsRTMRs reads the tdx_guest driver's sysfs measurements (6.16+).
type sysfsRTMRs struct{ root string }

func (s sysfsRTMRs) from() string {
	return "tdx_guest sysfs " + hostPath(s.root, RTMRDir) + " (Linux 6.16+)"
}

func (s sysfsRTMRs) read(context.Context) (eventlog.Bank, error) {
	bank := eventlog.Bank{}
	for i := range 4 {
		v, err := readSysfsRegister(hostPath(s.root, RTMRPath(i)))
		if err != nil {
			return nil, err
		}
		bank.Set(eventlog.AlgSHA384, uint32(i+1), v)
	}
	// MRTD is only shown, never compared: a tree without it is no error.
	if v, err := readSysfsRegister(hostPath(s.root, MRTDPath)); err == nil {
		bank.Set(eventlog.AlgSHA384, 0, v)
	}
	return bank, nil
}

func readSysfsRegister(path string) ([]byte, error) {
	b, err := readLimited(path, 256)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("%w: no live RTMRs at %s (they need Linux 6.16+ with the tdx_guest driver): %w", ErrNotAvailable, path, err)
	case errors.Is(err, fs.ErrPermission):
		return nil, fmt.Errorf("%w: %w (the RTMR files are readable by root only: run as root)", ErrNotAvailable, err)
	case err != nil:
		return nil, fmt.Errorf("%w: %w", ErrNotAvailable, err)
	}
	v, err := decodeRegister(b, eventlog.AlgSHA384.Size())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}

// tdReportRegisters reads registers from TDREPORTs of /dev/tdx_guest
// (5.19-6.15, or any kernel without the sysfs measurements).
type tdReportRegisters struct{ path string }

func (d tdReportRegisters) from() string {
	return "TDREPORT from " + d.path + " (TDX_CMD_GET_REPORT0; Linux 5.19-6.15: read only)"
}

func (d tdReportRegisters) read(context.Context) (eventlog.Bank, error) {
	dev, err := OpenReportDevice(d.path)
	if err != nil {
		return nil, err
	}
	defer dev.Close()
	bank, err := TDReportRegisters(dev)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrNotAvailable, d.path, err)
	}
	return bank, nil
}

type noRTMRs struct{ sysfs, device string }

func (n noRTMRs) from() string { return "none (no " + n.sysfs + ", no " + n.device + ")" }

func (n noRTMRs) read(context.Context) (eventlog.Bank, error) {
	return nil, fmt.Errorf("%w: no live RTMRs: neither %s (Linux 6.16+) nor %s (Linux 5.19+) exists here: %w", ErrNotAvailable, n.sysfs, n.device, fs.ErrNotExist)
}

// reportTimeout bounds a simulated device's answer; the ioctl itself is a
// TDCALL, which returns at once or fails.
const reportTimeout = 5 * time.Second

// OpenReportDevice opens a TD's report device at path: a character device
// is the tdx_guest driver, asked with its TDX_CMD_GET_REPORT0 ioctl; a Unix
// socket is a simulated TD (simulator.ServeReports) that takes the 64 bytes
// of report data and answers the 1024-byte TDREPORT. Anything else is
// refused without being opened for I/O.
func OpenReportDevice(path string) (ReportDevice, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotAvailable, err)
	}
	switch {
	case fi.Mode()&fs.ModeCharDevice != 0:
		return openTDXGuest(path)
	case fi.Mode()&fs.ModeSocket != 0:
		c, err := net.DialTimeout("unix", path, reportTimeout)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrNotAvailable, err)
		}
		return &socketReportDevice{conn: c.(*net.UnixConn)}, nil
	}
	return nil, fmt.Errorf("%w: %s is a %s, not the tdx_guest device", ErrNotAvailable, path, boundedread.TypeName(fi.Mode()))
}

// tdxGuest is /dev/tdx_guest, asked through its ioctl.
type tdxGuest struct{ f *os.File }

func openTDXGuest(path string) (*tdxGuest, error) {
	// Checked on the open descriptor: should path have turned into a FIFO
	// or anything else since the Stat, it is refused without waiting.
	f, err := boundedread.Open(path, unix.O_RDWR|unix.O_NOCTTY, fs.ModeDevice|fs.ModeCharDevice, "the tdx_guest device")
	if errors.Is(err, fs.ErrPermission) {
		return nil, fmt.Errorf("%w: %w (the device is root's: run as root, or give the server's group access to it; in a container the device must also be allowed: a device plugin's resource, or a privileged container)", ErrNotAvailable, err)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotAvailable, err)
	}
	return &tdxGuest{f: f}, nil
}

func (d *tdxGuest) GetReport(reportData [tdxquote.ReportDataSize]byte) ([]byte, error) {
	req := labi.TdxReportReq{ReportData: reportData}
	rc, err := d.f.SyscallConn()
	if err != nil {
		return nil, err
	}
	var errno unix.Errno
	if err := rc.Control(func(fd uintptr) {
		_, _, errno = unix.Syscall(unix.SYS_IOCTL, fd, labi.IocTdxGetReport, uintptr(unsafe.Pointer(&req)))
	}); err != nil {
		return nil, err
	}
	switch errno {
	case 0:
		return req.TdReport[:], nil
	case unix.ENOTTY, unix.EINVAL:
		return nil, fmt.Errorf("TDX_CMD_GET_REPORT0: %w (not the tdx_guest driver's device?)", errno)
	}
	return nil, fmt.Errorf("TDX_CMD_GET_REPORT0: %w", errno)
}

func (d *tdxGuest) Close() error { return d.f.Close() }

// socketReportDevice is a simulated TD on a Unix socket: one request per
// connection.
type socketReportDevice struct {
	conn *net.UnixConn
	used bool
}

func (d *socketReportDevice) GetReport(reportData [tdxquote.ReportDataSize]byte) ([]byte, error) {
	if d.used {
		return nil, errors.New("one report per connection")
	}
	d.used = true
	d.conn.SetDeadline(time.Now().Add(reportTimeout))
	if _, err := d.conn.Write(reportData[:]); err != nil {
		return nil, fmt.Errorf("sending the report data: %w", err)
	}
	d.conn.CloseWrite()
	b := make([]byte, tdxquote.ReportSize)
	if _, err := io.ReadFull(d.conn, b); err != nil {
		return nil, fmt.Errorf("reading the TDREPORT: %w", err)
	}
	return b, nil
}

func (d *socketReportDevice) Close() error { return d.conn.Close() }

// cannotExtendTDX says why a node's RTMRs cannot be extended.
func cannotExtendTDX(root string, regs tdxRegisters) error {
	sysfs := hostPath(root, RTMRDir)
	if _, ok := regs.(tdReportRegisters); ok {
		return fmt.Errorf("RTMRs cannot be extended on this node: extending needs Linux 6.16+ (the tdx_guest driver's %s/rtmr3:sha384), and this kernel offers only TDREPORTs (%s), which are read only",
			sysfs, regs.(tdReportRegisters).path)
	}
	return fmt.Errorf("RTMRs cannot be extended on this node: extending needs Linux 6.16+ (the tdx_guest driver's %s/rtmr3:sha384), which is not there", sysfs)
}
