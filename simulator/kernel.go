package simulator

import (
	"context"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"github.com/ccnp-eventlog/ccnp-eventlog/hwsource"
	"github.com/ccnp-eventlog/ccnp-eventlog/tdxquote"
)

// Kernel is a TDX guest kernel generation, as far as what a server sees of
// the TD depends on it. The simulator reproduces each as a profile.
type Kernel string

const (
	// Kernel616 is Linux 6.16+: the tdx_guest driver's sysfs measurements
	// (rtmr[0-3]:sha384, mrtd:sha384), which read the registers and extend
	// the RTMRs.
	Kernel616 Kernel = "6.16"
	// Kernel68 is Linux 5.19-6.15 (Ubuntu 24.04's 6.8, RHEL 9 and 10): the
	// registers only inside a TDREPORT from /dev/tdx_guest's
	// TDX_CMD_GET_REPORT0; RTMRs cannot be extended.
	Kernel68 Kernel = "6.8"
	// KernelStaged is a server that sees nothing of the TD but the CCEL
	// table and log area its init container staged under /run/firmware, as
	// upstream's chart stages them: no live registers, no extends.
	KernelStaged Kernel = "staged"
)

// Kernels lists the profiles, newest first.
var Kernels = []Kernel{Kernel616, Kernel68, KernelStaged}

// ParseKernel reads a profile's name; "" is Kernel616.
func ParseKernel(s string) (Kernel, error) {
	if s == "" {
		return Kernel616, nil
	}
	for _, k := range Kernels {
		if string(k) == s {
			return k, nil
		}
	}
	return "", fmt.Errorf("unknown kernel profile %q: use 6.16 (sysfs measurements, extend), 6.8 (TDREPORT only) or staged (staged CCEL only)", s)
}

// mrtd is the simulated TD's MRTD: the TDX module measures the initial TD
// pages (TDVF) before anything runs, and no log records it. Simulated, it is
// a digest of the seed.
func (t *TDX) mrtd() [tdxquote.RegisterSize]byte {
	var seed [8]byte
	binary.LittleEndian.PutUint64(seed[:], uint64(t.cfg.Seed))
	return sha512.Sum384(append([]byte("simulated TDVF MRTD "), seed[:]...))
}

// Measurements returns the simulated TD's registers as its evidence carries
// them: MRTD, RTMR0..3 as they are now, and reportData.
func (t *TDX) Measurements(reportData [tdxquote.ReportDataSize]byte) *tdxquote.Measurements {
	m := &tdxquote.Measurements{MRTD: t.mrtd(), ReportData: reportData}
	t.mu.RLock()
	defer t.mu.RUnlock()
	for i := range m.RTMR {
		copy(m.RTMR[i][:], t.rtmrs.Get(eventlog.AlgSHA384, uint32(i+1)))
	}
	return m
}

var _ hwsource.ReportDevice = (*TDX)(nil)

// GetReport makes a TDREPORT of the simulated TD, as TDG.MR.REPORT does
// (with zeros for the TCB information and MAC no simulator can make): the
// simulated /dev/tdx_guest of the 6.8 profile.
func (t *TDX) GetReport(reportData [tdxquote.ReportDataSize]byte) ([]byte, error) {
	return tdxquote.AppendReport(nil, t.Measurements(reportData)), nil
}

// Close does nothing: a simulated TD's report device holds no resource.
func (t *TDX) Close() error { return nil }

// UnsignedQuote returns a version 4 TD quote of the simulated TD's current
// registers, with no signature data: for tests of quote verification, never
// accepted by a verifier that checks signatures.
func (t *TDX) UnsignedQuote(reportData [tdxquote.ReportDataSize]byte) []byte {
	return tdxquote.AppendUnsignedQuoteV4(nil, t.Measurements(reportData))
}

// ServeReports serves the simulated TD's TDREPORTs on l as hwsource reads a
// Unix socket at /dev/tdx_guest: per connection, 64 bytes of report data in,
// the 1024-byte TDREPORT out. A connection has 5 seconds to send its
// request. It returns nil when l is closed.
func (t *TDX) ServeReports(l net.Listener) error {
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		go func() {
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			var data [tdxquote.ReportDataSize]byte
			if _, err := io.ReadFull(c, data[:]); err != nil {
				return
			}
			r, _ := t.GetReport(data)
			c.Write(r)
		}()
	}
}

// OnKernel returns the simulated TD as a server on kernel k sees it: on
// 6.16 the TD itself (an Extender); on 6.8 its registers come from
// TDREPORTs, read by the real backend's code (hwsource.TDReportRegisters)
// from the simulated device, and nothing can be extended; staged, the log
// alone.
func (t *TDX) OnKernel(k Kernel) hwsource.Source {
	switch k {
	case Kernel68:
		return &reportOnlyTD{logOnly{t}}
	case KernelStaged:
		return &stagedTD{logOnly{t}}
	}
	return t
}

// logOnly is the simulated TD's log without its registers: not embedding
// the TD keeps its Extend out of the profiles that cannot extend.
type logOnly struct{ td *TDX }

func (l logOnly) Kind() eventlog.Kind { return eventlog.TDX }
func (l logOnly) Simulated() bool     { return true }
func (l logOnly) ReadLog(ctx context.Context) (hwsource.Log, error) {
	return l.td.ReadLog(ctx)
}

// reportOnlyTD is the 6.8 profile.
type reportOnlyTD struct{ logOnly }

func (r *reportOnlyTD) Name() string { return r.td.Name() + " on Linux 6.8 (TDREPORT only)" }

func (r *reportOnlyTD) Registers(ctx context.Context) (eventlog.Bank, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return hwsource.TDReportRegisters(r.td)
}

func (r *reportOnlyTD) RegistersFrom() string {
	return "TDREPORT from the simulated TD's /dev/tdx_guest (TDX_CMD_GET_REPORT0, as on Linux 5.19-6.15: read only)"
}

func (r *reportOnlyTD) CannotExtend() error {
	return fmt.Errorf("RTMRs cannot be extended on this node: extending needs Linux 6.16+ (the tdx_guest driver's measurements/rtmr3:sha384), and the simulated kernel (profile 6.8) offers only TDREPORTs, which are read only")
}

// stagedTD is the staged profile.
type stagedTD struct{ logOnly }

func (s *stagedTD) Name() string { return s.td.Name() + " (staged CCEL only)" }

func (s *stagedTD) Registers(ctx context.Context) (eventlog.Bank, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("%w: the server sees only the staged CCEL copies (simulated profile staged): no tdx_guest measurements, no /dev/tdx_guest", hwsource.ErrNotAvailable)
}

func (s *stagedTD) RegistersFrom() string { return "none (staged CCEL only)" }

func (s *stagedTD) CannotExtend() error {
	return fmt.Errorf("RTMRs cannot be extended on this node: extending needs Linux 6.16+ (the tdx_guest driver's measurements/rtmr3:sha384), and the server sees only the staged CCEL copies (simulated profile staged)")
}
