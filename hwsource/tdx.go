package hwsource

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strconv"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog/ccel"
)

// Host paths of the TDX event log. The kernel exposes the ACPI CCEL table and
// the log area it points at, both readable by root only; the Helm chart's
// init container copies them under /run so a non-root server can read them.
const (
	CCELTablePath       = "sys/firmware/acpi/tables/CCEL"
	CCELDataPath        = "sys/firmware/acpi/tables/data/CCEL"
	StagedCCELTablePath = StagedDir + "/acpi/tables/CCEL"
	StagedCCELDataPath  = StagedDir + "/acpi/tables/data/CCEL"
	// RTMRDir holds rtmr0:sha384 .. rtmr3:sha384 (Linux 6.16+, tdx_guest).
	RTMRDir = "sys/class/misc/tdx_guest/measurements"
)

// RTMRPath is the host path of RTMRn's tdx_guest file (n is 0..3, not the
// CC MR index): reading it gives the register, writing a digest extends it.
func RTMRPath(n int) string {
	return filepath.Join(RTMRDir, "rtmr"+strconv.Itoa(n)+":sha384")
}

// ErrNotTDX is wrapped by ReadLog errors when the node's CCEL table is for
// another confidential computing technology (AMD SEV). It matches
// fs.ErrNotExist too: the node has no TDX log.
var ErrNotTDX error = notTDX{}

type notTDX struct{}

func (notTDX) Error() string        { return "the CCEL table is not for TDX" }
func (notTDX) Is(target error) bool { return target == fs.ErrNotExist }

// missingAreaError is a CCEL table found without its log area.
type missingAreaError struct {
	table string
	err   error // from opening the log area
}

func (e *missingAreaError) Error() string {
	return "no TDX event log: found the CCEL table " + e.table + " but not its log area (the kernel does not expose data/CCEL): " + e.err.Error()
}

func (e *missingAreaError) Unwrap() error { return e.err }

// ccelFiles is one place a CCEL table and its log area can be read from.
type ccelFiles struct{ table, data string }

type tdxSource struct {
	files []ccelFiles // in order of preference
	root  string
	regs  tdxRegisters
}

// tdxExtender is the TDX source of a node whose kernel can extend RTMRs.
type tdxExtender struct{ *tdxSource }

// NewTDX returns the real TDX source: the CCEL table and log area under root
// (sysfs first, then the staged copies), and the live registers from the
// tdx_guest driver: its sysfs measurements (Linux 6.16+), else a TDREPORT
// from /dev/tdx_guest (Linux 5.19+). Which one is decided now, from what
// exists: with the sysfs measurements the source is an Extender, RTMRs
// being extended through them; without, it is not, and its CannotExtend
// says why. An empty root is "/".
func NewTDX(root string) Source {
	s := &tdxSource{
		files: []ccelFiles{
			{hostPath(root, CCELTablePath), hostPath(root, CCELDataPath)},
			{hostPath(root, StagedCCELTablePath), hostPath(root, StagedCCELDataPath)},
		},
		root: root,
		regs: chooseTDXRegisters(root),
	}
	if _, ok := s.regs.(sysfsRTMRs); ok {
		return &tdxExtender{s}
	}
	return s
}

// CannotExtend says why this node's RTMRs cannot be extended.
func (s *tdxSource) CannotExtend() error { return cannotExtendTDX(s.root, s.regs) }

func (s *tdxSource) Name() string {
	return "TDX CCEL log (" + s.files[0].data + ", or the staged copy " + s.files[1].data + ")"
}

func (s *tdxSource) Kind() eventlog.Kind { return eventlog.TDX }
func (s *tdxSource) Simulated() bool     { return false }

// ReadLog reads the log area of the first CCEL table it can read, checks the
// table (checksum, TDX, area length) and parses the log.
func (s *tdxSource) ReadLog(ctx context.Context) (Log, error) {
	if err := ctx.Err(); err != nil {
		return Log{}, err
	}
	var denied, missing []error
	var noArea error
	for _, f := range s.files {
		l, err := readCCEL(f)
		switch {
		case err == nil:
			return l, nil
		case errors.Is(err, fs.ErrPermission):
			denied = append(denied, err)
		case errors.As(err, new(*missingAreaError)):
			noArea = err
		case errors.Is(err, fs.ErrNotExist) && !errors.Is(err, ErrNotTDX):
			missing = append(missing, err)
		default:
			return Log{}, err
		}
	}
	if len(denied) > 0 {
		return Log{}, fmt.Errorf("cannot read the TDX event log: %w (the CCEL files are readable by root only: run as root, or stage copies under %s, as the Helm chart's init container does)",
			joinErrors(denied), filepath.Dir(s.files[1].table))
	}
	if noArea != nil {
		return Log{}, noArea
	}
	var looked []string
	for _, f := range s.files {
		looked = append(looked, f.table)
	}
	return Log{}, fmt.Errorf("no TDX event log at %s (not a TDX guest, or CCEL not exposed): %w",
		orList(looked), joinErrors(missing))
}

// readCCEL reads and checks one table and its log area.
func readCCEL(f ccelFiles) (Log, error) {
	b, err := readLimited(f.table, maxTableSize)
	if err != nil {
		return Log{}, err
	}
	t, err := ccel.Parse(b)
	if err != nil {
		return Log{}, fmt.Errorf("%s: %w", f.table, err)
	}
	if t.CCType != ccel.TypeTDX {
		return Log{}, fmt.Errorf("%s: %w: its CC type is %d (%s), not %d (TDX), so this node has no TDX RTMR log",
			f.table, ErrNotTDX, t.CCType, t.CCTypeName(), ccel.TypeTDX)
	}
	if t.LAML == 0 || t.LAML > maxAreaSize {
		return Log{}, fmt.Errorf("%s: %w", f.table, &ccel.Error{Offset: 40, Reason: fmt.Sprintf("log area length (LAML) %d is outside 1..%d", t.LAML, maxAreaSize)})
	}
	area, err := readLimited(f.data, maxAreaSize)
	if errors.Is(err, fs.ErrNotExist) {
		return Log{}, &missingAreaError{f.table, err}
	}
	if err != nil {
		return Log{}, err
	}
	if uint64(len(area)) < t.LAML {
		return Log{}, fmt.Errorf("truncated log area: %s holds %d bytes, the CCEL table %s says the area is %d (LAML): %w",
			f.data, len(area), f.table, t.LAML, &ccel.Error{Offset: 40, Reason: "log area shorter than LAML"})
	}
	// Past LAML is not log area (only a hand-made copy can be longer).
	area = area[:t.LAML]
	l, err := ParseLog(area, true, f.data)
	if err != nil {
		return Log{}, err
	}
	l.Address, l.Path = t.LASA, f.data
	return l, nil
}

// Registers reads RTMR0..3, keyed by CC MR index (1 is RTMR0) in the
// SHA-384 bank, and MRTD (index 0) where the node shows it, from the
// sysfs measurements or a TDREPORT, as NewTDX decided.
func (s *tdxSource) Registers(ctx context.Context) (eventlog.Bank, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return s.regs.read(ctx)
}

// decodeRegister accepts a register value as the kernel writes it (the raw
// bytes) or as hex text with an optional trailing newline.
func decodeRegister(b []byte, size int) ([]byte, error) {
	if len(b) == size {
		return b, nil
	}
	text := b
	if n := len(text); n > 0 && text[n-1] == '\n' {
		text = text[:n-1]
	}
	if len(text) == 2*size {
		v := make([]byte, size)
		if _, err := hex.Decode(v, text); err == nil {
			return v, nil
		}
	}
	return nil, fmt.Errorf("holds %d bytes, neither a %d-byte register value nor %d hex digits", len(b), size, 2*size)
}

func (s *tdxSource) RegistersFrom() string { return s.regs.from() }
