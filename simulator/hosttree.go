package simulator

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"

	"github.com/google/go-tpm/tpm2/transport/linuxudstpm"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog/ima"
	"github.com/ccnp-eventlog/ccnp-eventlog/hwsource"
)

// Files WriteHostTree writes at the top of the tree, beside the host paths.
const (
	// ExpectedRegistersFile holds the expected registers (ExpectedRegisters).
	ExpectedRegistersFile = "expected-registers.json"
	// QuoteFile is an unsigned version 4 TD quote of the simulated TD: its
	// MRTD and RTMRs, for testing verification against a quote.
	QuoteFile = "td-quote.bin"
	// ReportFile is a TDREPORT of the simulated TD, as /dev/tdx_guest
	// returns one.
	ReportFile = "tdreport.bin"
)

// HostConfig describes the simulated host WriteHostTree writes.
type HostConfig struct {
	// Seed determines both logs.
	Seed int64
	// TDXEvents and TPMEvents are the events after each log's header; 0
	// means DefaultTDXEvents / DefaultTPMEvents.
	TDXEvents, TPMEvents int
	// IMAEntries is the length of the kernel's IMA measurement list; 0
	// means DefaultIMAEntries.
	IMAEntries int
	// AreaSize is the CCEL log area size; 0 means DefaultAreaSize.
	AreaSize int
	// TDXLive also writes the tdx_guest driver's RTMR files, so the real
	// TDX backend finds live registers in the tree.
	TDXLive bool
	// Kernel, when set, lays the TD's files out as that kernel generation
	// shows them: 6.16 writes the CCEL files and the sysfs measurements
	// (TDXLive is implied); 6.8 the CCEL files only (its /dev/tdx_guest is
	// a process serving TDX.ServeReports, see fakehost --serve); staged the
	// CCEL table and log area only under run/firmware/acpi/tables, where
	// the chart's init container copies them.
	Kernel Kernel
	// BootID is written as the kernel's boot ID; empty: a random one, as a
	// new tree is a new boot.
	BootID string
}

// ExpectedRegisters is the content of expected-registers.json: per category,
// register name ("RTMR0", "PCR7") to algorithm name ("sha384") to the hex
// value. It lists the registers the category's log extends, with the values
// the simulated hardware holds: what replaying the log must give.
type ExpectedRegisters struct {
	TDX map[string]map[string]string `json:"tdx"`
	TPM map[string]map[string]string `json:"tpm"`
	// IMA is PCR 10 as the kernel's IMA measurement list (IMAListPath)
	// extends it, apart from the TPM log's registers: the list grows
	// (AppendHostIMA), the TPM log does not.
	IMA map[string]map[string]string `json:"ima,omitempty"`
}

// WriteHostTree writes a fake host under dir, laid out as the real backends
// (hwsource.NewTDX(dir), hwsource.NewTPM(dir)) read a real host:
//
//	sys/firmware/acpi/tables/CCEL                      CCEL table
//	sys/firmware/acpi/tables/data/CCEL                 CCEL log area
//	sys/class/misc/tdx_guest/measurements/rtmrN:sha384 live RTMRs (TDXLive, 6.16)
//	sys/class/misc/tdx_guest/measurements/mrtd:sha384  MRTD (TDXLive, 6.16)
//	sys/kernel/security/tpm0/binary_bios_measurements  TPM log
//	sys/kernel/security/ima/binary_runtime_measurements the kernel's IMA measurement list
//	proc/sys/kernel/random/boot_id                     the kernel's boot ID
//	expected-registers.json                            ExpectedRegisters
//	td-quote.bin, tdreport.bin                         the TD's evidence (QuoteFile, ReportFile)
//
// The tree has no TPM device: the TPM's expected registers come from the
// go-tpm-tools simulator, which must not be open elsewhere in the process
// (ErrSimulatorBusy). Files are world-readable, so a non-root server can
// read the tree.
func WriteHostTree(dir string, cfg HostConfig) (*ExpectedRegisters, error) {
	ctx := context.Background()
	tdx, err := NewTDX(TDXConfig{Seed: cfg.Seed, Events: cfg.TDXEvents, AreaSize: cfg.AreaSize})
	if err != nil {
		return nil, err
	}
	tpm, err := NewTPM(TPMConfig{Seed: cfg.Seed, Events: cfg.TPMEvents, IMAEntries: cfg.IMAEntries})
	if err != nil {
		return nil, err
	}
	defer tpm.Close()
	imaList, err := tpm.IMAList()
	if err != nil {
		return nil, err
	}

	bootID := cfg.BootID
	if bootID == "" {
		bootID = randomUUID()
	}
	files := map[string][]byte{
		hwsource.CCELTablePath: tdx.Table(),
		hwsource.CCELDataPath:  tdx.Area(),
		hwsource.TPMLogPath:    tpm.log,
		IMAListPath:            imaList,
		hwsource.BootIDPath:    []byte(bootID + "\n"),
	}
	switch cfg.Kernel {
	case Kernel616:
		cfg.TDXLive = true
	case KernelStaged:
		delete(files, hwsource.CCELTablePath)
		delete(files, hwsource.CCELDataPath)
		files[hwsource.StagedCCELTablePath] = tdx.Table()
		files[hwsource.StagedCCELDataPath] = tdx.Area()
	}
	rtmrs, _ := tdx.Registers(ctx)
	if cfg.TDXLive && cfg.Kernel != Kernel68 && cfg.Kernel != KernelStaged {
		for i := range 4 {
			files[hwsource.RTMRPath(i)] = rtmrs.Get(eventlog.AlgSHA384, uint32(i+1))
		}
		mrtd := tdx.mrtd()
		files[hwsource.MRTDPath] = mrtd[:]
	}
	files[QuoteFile] = tdx.UnsignedQuote([64]byte{})
	files[ReportFile], _ = tdx.GetReport([64]byte{})
	pcrs, err := tpm.Registers(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the simulated TPM's PCRs: %w", err)
	}

	var exp ExpectedRegisters
	if exp.TDX, err = expected(eventlog.TDX, tdx.Log(), rtmrs); err != nil {
		return nil, err
	}
	if exp.TPM, err = expected(eventlog.TPM, tpm.log, pcrs); err != nil {
		return nil, err
	}
	if exp.IMA, err = expectedIMA(imaList, pcrs); err != nil {
		return nil, err
	}
	js, err := json.MarshalIndent(exp, "", "  ")
	if err != nil {
		return nil, err
	}
	files[ExpectedRegistersFile] = append(js, '\n')

	for name, b := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			return nil, err
		}
	}
	return &exp, nil
}

// randomUUID returns a random version-4 UUID, the form of the kernel's boot ID.
func randomUUID() string {
	var u [16]byte
	rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	h := hex.EncodeToString(u[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// expected lists the live value of every register the log extends, after
// checking that replaying the log gives that value: a mismatch is a
// simulator bug, and a tree that lies would send users chasing it.
func expected(kind eventlog.Kind, raw []byte, live eventlog.Bank) (map[string]map[string]string, error) {
	l, err := eventlog.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("simulated %s log: %w", kind, err)
	}
	replayed, err := eventlog.Replay(l)
	if err != nil {
		return nil, fmt.Errorf("simulated %s log: %w", kind, err)
	}
	out := map[string]map[string]string{}
	for alg, regs := range replayed {
		for idx, v := range regs {
			lv := live.Get(alg, idx)
			if !bytes.Equal(lv, v) {
				return nil, fmt.Errorf("simulated %s: %s %s replays to %x, the simulated hardware holds %x", kind, kind.RegisterName(idx), alg, v, lv)
			}
			name := kind.RegisterName(idx)
			if out[name] == nil {
				out[name] = map[string]string{}
			}
			out[name][alg.String()] = hex.EncodeToString(lv)
		}
	}
	return out, nil
}

// expectedIMA is PCR 10 as the simulated TPM holds it, after checking that
// replaying the IMA list gives that value.
func expectedIMA(list []byte, live eventlog.Bank) (map[string]map[string]string, error) {
	l, err := ima.Parse(list, ima.Options{Order: imaOrder})
	if err != nil {
		return nil, fmt.Errorf("simulated IMA list: %w", err)
	}
	replayed, err := ima.Replay(l, tpmAlgs...)
	if err != nil {
		return nil, fmt.Errorf("simulated IMA list: %w", err)
	}
	for alg, regs := range replayed {
		for idx, v := range regs {
			if lv := live.Get(alg, idx); !bytes.Equal(lv, v) {
				return nil, fmt.Errorf("simulated IMA: PCR%d %s replays to %x, the simulated TPM holds %x", idx, alg, v, lv)
			}
		}
	}
	return imaExpected(l)
}

// AppendHostIMA appends n entries to the IMA measurement list of the host
// tree at dir, as a running kernel would: the list file grows in place, so
// a reader holding it open reads the new entries on from where it was, and
// PCR 10 in the tree's expected registers (which a tree's TPM would hold)
// becomes the grown list's replay. When the tree's TPM is served
// (ServeHostTPM), the entries are then extended into its PCR 10, in the
// kernel's order: logged first, extended after. It returns the new expected
// registers.
func AppendHostIMA(dir string, n int) (*ExpectedRegisters, error) {
	expPath := filepath.Join(dir, ExpectedRegistersFile)
	exp, err := ReadExpectedRegisters(expPath)
	if err != nil {
		return nil, err
	}
	listPath := filepath.Join(dir, IMAListPath)
	list, err := os.ReadFile(listPath)
	if err != nil {
		return nil, err
	}
	added, after, err := appendIMAFiles(list, exp.IMA, n)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	f, err := os.OpenFile(listPath, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return nil, err
	}
	_, err = f.Write(added)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	if err := extendHostTPM(dir, added); err != nil {
		return nil, err
	}
	exp.IMA = after
	js, err := json.MarshalIndent(exp, "", "  ")
	if err != nil {
		return nil, err
	}
	// Replaced whole: a reader sees the old expectations or the new.
	tmp := expPath + ".tmp"
	if err := os.WriteFile(tmp, append(js, '\n'), 0o644); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, expPath); err != nil {
		os.Remove(tmp)
		return nil, err
	}
	return exp, nil
}

// Bank converts one category of the expected registers back to a bank: the
// TDX or the TPM log's (IMABank has the IMA list's).
func (e *ExpectedRegisters) Bank(kind eventlog.Kind) (eventlog.Bank, error) {
	regs := e.TPM
	if kind == eventlog.TDX {
		regs = e.TDX
	}
	return registersBank(kind, regs)
}

// IMABank converts the IMA list's expected PCR 10 to a bank.
func (e *ExpectedRegisters) IMABank() (eventlog.Bank, error) {
	return registersBank(eventlog.TPM, e.IMA)
}

func registersBank(kind eventlog.Kind, regs map[string]map[string]string) (eventlog.Bank, error) {
	bank := eventlog.Bank{}
	for name, values := range regs {
		idx, ok := kind.RegisterIndex(name)
		if !ok {
			return nil, fmt.Errorf("expected registers: %q is not a %s register", name, kind)
		}
		for algName, h := range values {
			alg, ok := eventlog.ParseAlg(algName)
			if !ok {
				return nil, fmt.Errorf("expected registers: %s: unknown algorithm %q", name, algName)
			}
			v, err := hex.DecodeString(h)
			if err != nil {
				return nil, fmt.Errorf("expected registers: %s %s: %w", name, algName, err)
			}
			bank.Set(alg, idx, v)
		}
	}
	return bank, nil
}

// ReadExpectedRegisters reads an expected-registers.json.
func ReadExpectedRegisters(path string) (*ExpectedRegisters, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var e ExpectedRegisters
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &e, nil
}

// ServeHostTPM starts the simulated TPM of the tree WriteHostTree(dir, cfg)
// wrote (the same seed, events and IMA entries give the same PCRs) and
// listens for its commands at dir/dev/tpmrm0, where the real TPM backend
// reaches a TPM over a socket: the tree then has live PCRs, PCR 10 the IMA
// list's. Serve the TPM on the listener, and close both when done. It fails
// when the tree's IMA list has grown since it was written (its TPM cannot
// be rebuilt), or when another simulated TPM is open in the process.
func ServeHostTPM(dir string, cfg HostConfig) (*TPM, net.Listener, error) {
	exp, err := ReadExpectedRegisters(filepath.Join(dir, ExpectedRegistersFile))
	if err != nil {
		return nil, nil, err
	}
	tpm, err := NewTPM(TPMConfig{Seed: cfg.Seed, Events: cfg.TPMEvents, IMAEntries: cfg.IMAEntries})
	if err != nil {
		return nil, nil, err
	}
	pcrs, err := tpm.Registers(context.Background())
	if err == nil {
		var want eventlog.Bank
		if want, err = exp.IMABank(); err == nil {
			for alg, regs := range want {
				for idx, v := range regs {
					if got := pcrs.Get(alg, idx); !bytes.Equal(got, v) {
						err = fmt.Errorf("the tree at %s expects %s %s %x, its rebuilt TPM holds %x: was its IMA list appended to, or written with other settings?", dir, eventlog.TPM.RegisterName(idx), alg, v, got)
					}
				}
			}
		}
	}
	if err != nil {
		tpm.Close()
		return nil, nil, err
	}
	path := filepath.Join(dir, hwsource.TPMDevicePath)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		tpm.Close()
		return nil, nil, err
	}
	os.Remove(path) // a socket left by an earlier run
	l, err := net.Listen("unix", path)
	if err == nil {
		// Anyone may ask, as a server of any uid reads the tree.
		err = os.Chmod(path, 0o666)
	}
	if err != nil {
		tpm.Close()
		return nil, nil, err
	}
	return tpm, l, nil
}

// extendHostTPM extends the IMA entries added to the tree's list into PCR
// 10 of the tree's TPM, if one is served at dir/dev/tpmrm0.
func extendHostTPM(dir string, added []byte) error {
	path := filepath.Join(dir, hwsource.TPMDevicePath)
	if fi, err := os.Lstat(path); err != nil || fi.Mode().Type() != fs.ModeSocket {
		return nil // no TPM: the expected registers say what it would hold
	}
	l, err := ima.Parse(added, ima.Options{Order: imaOrder})
	if err != nil {
		return err
	}
	t, err := linuxudstpm.Open(path)
	if err != nil {
		return fmt.Errorf("the tree's TPM at %s: %w", path, err)
	}
	defer t.Close()
	for e := range l.All() {
		ds, err := ima.Digests(e, l.HashAlg, tpmAlgs)
		if err == nil {
			err = hwsource.ExtendPCR(t, e.PCR, ds)
		}
		if err != nil {
			return fmt.Errorf("the tree's TPM at %s: extend IMA entry into PCR%d: %w (the list was appended to: the tree no longer agrees with its TPM)", path, e.PCR, err)
		}
	}
	return nil
}
