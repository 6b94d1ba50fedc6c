package simulator

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"github.com/ccnp-eventlog/ccnp-eventlog/hwsource"
	gotpmsim "github.com/google/go-tpm-tools/simulator"
	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
	"github.com/google/go-tpm/tpmutil"
)

// Defaults and limits of a simulated TPM log.
const (
	DefaultTPMEvents = 60
	MaxTPMEvents     = 20000
)

// TPMConfig describes a simulated TPM machine.
type TPMConfig struct {
	// Seed determines every byte of the log.
	Seed int64
	// Events is the number of events after the Spec ID header; 0 means
	// DefaultTPMEvents. The boot sequence has a fixed part (about 40
	// events); GRUB commands make up the rest.
	Events int
	// IMAEntries is the number of entries of the kernel's IMA measurement
	// list at start, extended into PCR 10 (see TPM.IMAList); 0 means
	// DefaultIMAEntries.
	IMAEntries int
}

// tpmAlgs are the banks of the simulated log: SHA-1 and SHA-256, as most
// UEFI firmware logs them.
var tpmAlgs = []eventlog.Alg{eventlog.AlgSHA1, eventlog.AlgSHA256}

// ErrSimulatorBusy is returned by NewTPM while another simulated TPM is open
// in the process: the go-tpm-tools simulator is one C library instance per
// process, and its Get blocks until the holder closes it. Failing at once is
// better than a hang.
var ErrSimulatorBusy = errors.New("the go-tpm-tools simulator is already open in this process (it is a process-wide singleton): close the other simulated TPM first")

var simulatorOpen atomic.Bool

// ErrNoCgo is returned by NewTPM in a binary built without cgo
// (CGO_ENABLED=0, as static binaries are): the go-tpm-tools simulator is C.
// The simulated TDX source is pure Go and works in such binaries.
var ErrNoCgo = errors.New("the simulated TPM needs a binary built with cgo (CGO_ENABLED=1 and the OpenSSL headers, libssl-dev): the go-tpm-tools simulator is C; this binary was built without cgo")

var (
	_ hwsource.Extender = (*TPM)(nil)
	_ transport.TPM     = (*TPM)(nil)
)

// TPM is a simulated TPM machine: a synthetic crypto-agile boot log, every
// event of which was extended into the go-tpm-tools simulator's PCRs. Live
// PCRs are read back from the simulator through hwsource.ReadPCRs, as from a
// real TPM. Safe for concurrent use: commands to the simulator are serialized.
type TPM struct {
	cfg    TPMConfig
	log    []byte
	bootID string

	// booted is closed once the simulator has booted, or failed to:
	// bootErr says which.
	booted  chan struct{}
	bootErr error

	mu  sync.Mutex
	sim *gotpmsim.Simulator // nil once closed, or when the boot failed
	ima []byte              // the IMA measurement list; only ever appended to
}

// NewTPM starts the simulator and boots the simulated machine: it builds the
// log and extends every measured event into the simulator's PCRs. Close it
// to stop the simulator.
func NewTPM(cfg TPMConfig) (*TPM, error) {
	t, err := StartTPM(cfg)
	if err != nil {
		return nil, err
	}
	<-t.booted
	if t.bootErr != nil {
		return nil, t.bootErr // the failed boot has undone itself
	}
	return t, nil
}

// StartTPM is NewTPM returning once the log is made, with the simulator
// booting in the background: starting it and extending the boot's events
// takes a server's start tens of milliseconds (OpenSSL's and the reference
// TPM's initialisation, a TPM command per event), which the TDX log need
// not wait for. The log is served at once; what needs the simulator (its
// PCRs, extends, the IMA list, whose boot_aggregate is read from them)
// waits for the boot, and fails with its error if it failed.
func StartTPM(cfg TPMConfig) (*TPM, error) {
	if cfg.Events == 0 {
		cfg.Events = DefaultTPMEvents
	}
	if cfg.Events < 0 || cfg.Events > MaxTPMEvents {
		return nil, fmt.Errorf("simulated TPM: %d events is outside 1..%d", cfg.Events, MaxTPMEvents)
	}
	if cfg.IMAEntries == 0 {
		cfg.IMAEntries = DefaultIMAEntries
	}
	if cfg.IMAEntries < 0 || cfg.IMAEntries > MaxIMAEntries {
		return nil, fmt.Errorf("simulated TPM: %d IMA entries is outside 1..%d", cfg.IMAEntries, MaxIMAEntries)
	}
	steps, err := bootSteps(onTPM, cfg.Seed, cfg.Events)
	if err != nil {
		return nil, fmt.Errorf("simulated TPM: %w", err)
	}
	log := eventlog.AppendSpecIDHeader(nil, 0, tpmAlgs)
	for _, s := range steps {
		log = eventlog.AppendEvent2(log, s.pcr, s.typ, stepDigests(s), s.data)
	}

	if !cgoEnabled {
		return nil, ErrNoCgo
	}
	if !simulatorOpen.CompareAndSwap(false, true) {
		return nil, ErrSimulatorBusy
	}
	id := make([]byte, 16)
	rand.Read(id)
	t := &TPM{cfg: cfg, log: log, bootID: "simulated-tpm-" + hex.EncodeToString(id), booted: make(chan struct{})}
	go func() {
		defer close(t.booted)
		t.mu.Lock()
		defer t.mu.Unlock()
		if t.bootErr = t.boot(steps); t.bootErr != nil {
			if t.sim != nil {
				t.sim.Close()
				t.sim = nil
			}
			simulatorOpen.Store(false)
		}
	}()
	return t, nil
}

// boot starts the simulator, extends the boot's events and starts the IMA
// list. t.mu is held.
func (t *TPM) boot(steps []step) error {
	sim, err := gotpmsim.GetWithFixedSeedInsecure(t.cfg.Seed)
	if err != nil {
		return fmt.Errorf("simulated TPM: start the go-tpm-tools simulator: %w", err)
	}
	t.sim = sim
	if err := t.extendBoot(steps); err != nil {
		return err
	}
	return t.startIMA()
}

// Booted waits, within ctx, until the simulator has booted (StartTPM), and
// returns the boot's error, wrapping hwsource.ErrNotAvailable.
func (t *TPM) Booted(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case <-t.booted:
	case <-ctx.Done():
		return fmt.Errorf("waiting for the simulated TPM to boot: %w", ctx.Err())
	}
	if t.bootErr != nil {
		return fmt.Errorf("%w: %w", hwsource.ErrNotAvailable, t.bootErr)
	}
	return nil
}

// startIMA logs and extends the IMA measurements the kernel makes once the
// firmware and boot loader are done: a boot_aggregate of the PCRs they
// extended, then the files the system runs.
func (t *TPM) startIMA() error {
	tpm := transport.FromReadWriter(t.sim)
	pcrs, err := hwsource.ReadPCRs(tpm, tpmAlgs, []uint32{0, 1, 2, 3, 4, 5, 6, 7, 8, 9})
	if err != nil {
		return fmt.Errorf("simulated IMA: read PCRs 0-9: %w", err)
	}
	list, err := imaList(t.cfg.Seed, t.cfg.IMAEntries, pcrs)
	if err != nil {
		return err
	}
	if err := extendIMA(tpm, list); err != nil {
		return err
	}
	t.ima = list
	return nil
}

// stepDigests returns an event's digests in the log's banks. EV_NO_ACTION
// events carry zero digests.
func stepDigests(s step) []eventlog.Digest {
	if s.typ == eventlog.EvNoAction {
		ds := make([]eventlog.Digest, len(tpmAlgs))
		for i, a := range tpmAlgs {
			ds[i] = eventlog.Digest{Alg: a, Value: make([]byte, a.Size())}
		}
		return ds
	}
	return eventlog.Measure(s.measured, tpmAlgs)
}

// maxEventData is the most data TPM2_PCR_Event takes (TPM2B_EVENT).
const maxEventData = 1024

// extendBoot extends the simulator's PCRs as firmware would. An event whose
// digest is the hash of its data goes in with TPM2_PCR_Event, so the TPM
// hashes the data itself: if the log's digest were wrong, replay would not
// match. The other events go in with TPM2_PCR_Extend and the log's digests.
func (t *TPM) extendBoot(steps []step) error {
	tpm := transport.FromReadWriter(t.sim)
	for i, s := range steps {
		if s.typ == eventlog.EvNoAction {
			continue
		}
		var err error
		if bytes.Equal(s.data, s.measured) && len(s.data) <= maxEventData {
			pcr := tpm2.AuthHandle{Handle: tpm2.TPMHandle(s.pcr), Auth: tpm2.PasswordAuth(nil)}
			_, err = tpm2.PCREvent{PCRHandle: pcr, EventData: tpm2.TPM2BEvent{Buffer: s.data}}.Execute(tpm)
		} else {
			err = hwsource.ExtendPCR(tpm, s.pcr, stepDigests(s))
		}
		if err != nil {
			return fmt.Errorf("simulated TPM: extend event %d (%s) into PCR%d: %w", i+1, s.typ, s.pcr, err)
		}
	}
	return nil
}

// Name says what is simulated.
func (t *TPM) Name() string {
	return fmt.Sprintf("simulated TPM (go-tpm-tools simulator, seed %d, %d events, %d IMA entries at start)", t.cfg.Seed, t.cfg.Events, t.cfg.IMAEntries)
}

// Kind is eventlog.TPM.
func (t *TPM) Kind() eventlog.Kind { return eventlog.TPM }

// Simulated is true.
func (t *TPM) Simulated() bool { return true }

// RegistersFrom implements hwsource.Source.
func (t *TPM) RegistersFrom() string { return "the go-tpm-tools simulator's PCRs, read with go-tpm" }

// ReadLog returns a copy of the log, as binary_bios_measurements holds it,
// parsed.
func (t *TPM) ReadLog(ctx context.Context) (hwsource.Log, error) {
	if err := ctx.Err(); err != nil {
		return hwsource.Log{}, err
	}
	return hwsource.ParseLog(slices.Clone(t.log), false, t.Name())
}

// Registers reads PCRs 0..23 of the SHA-1 and SHA-256 banks from the
// simulator.
func (t *TPM) Registers(ctx context.Context) (eventlog.Bank, error) {
	if err := t.Booted(ctx); err != nil {
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.sim == nil {
		return nil, fmt.Errorf("%w: the simulated TPM is closed", hwsource.ErrNotAvailable)
	}
	// The lock is held for the whole read: the PCRs are one snapshot.
	return hwsource.ReadPCRs(transport.FromReadWriter(t.sim), tpmAlgs, hwsource.PCClientPCRs)
}

// Extend extends a PCR with TPM2_PCR_Extend on the simulator.
func (t *TPM) Extend(ctx context.Context, index uint32, digests []eventlog.Digest) error {
	if err := t.Booted(ctx); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.sim == nil {
		return errors.New("the simulated TPM is closed")
	}
	return hwsource.ExtendPCR(transport.FromReadWriter(t.sim), index, digests)
}

// BootID names this simulated TPM's power cycle. The go-tpm-tools simulator
// lives in the process, so every TPM, and every process, is a new boot whose
// PCRs start over.
func (t *TPM) BootID(ctx context.Context) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	return t.bootID, nil
}

// Send runs one TPM command on the simulator: TPM is a go-tpm transport.TPM.
func (t *TPM) Send(command []byte) ([]byte, error) {
	if err := t.Booted(context.Background()); err != nil { // bounded: the boot is CPU work, and ends
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.sim == nil {
		return nil, errors.New("the simulated TPM is closed")
	}
	return tpmutil.RunCommandRaw(t.sim, command)
}

// Close stops the simulator, so another simulated TPM can start.
func (t *TPM) Close() error {
	<-t.booted // a boot under way ends first (CPU work), then is undone
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.sim == nil {
		return nil
	}
	err := t.sim.Close()
	t.sim = nil
	simulatorOpen.Store(false)
	return err
}

// TPM command limits: a command starts with a 10-byte header (tag, size,
// command code); TPMs take at most a few KiB.
const (
	tpmHeaderSize     = 10
	maxTPMCommandSize = 8 << 10
	connTimeout       = 30 * time.Second
)

// Serve answers TPM commands on l until l is closed: one command per
// connection, answered then closed, as swtpm's Unix socket interface works
// and go-tpm's linuxudstpm transport expects. Listening at <root>/dev/tpmrm0
// lets the real TPM backend (hwsource.NewTPM) read this simulator's PCRs.
func (t *TPM) Serve(l net.Listener) error {
	for {
		c, err := l.Accept()
		if errors.Is(err, net.ErrClosed) {
			return nil
		}
		if err != nil {
			return err
		}
		go t.serveConn(c)
	}
}

func (t *TPM) serveConn(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(connTimeout))
	cmd := make([]byte, tpmHeaderSize)
	// A client that connects and leaves (a probe) sends nothing.
	if _, err := io.ReadFull(c, cmd); err != nil {
		return
	}
	size := binary.BigEndian.Uint32(cmd[2:])
	if size < tpmHeaderSize || size > maxTPMCommandSize {
		return
	}
	cmd = append(cmd, make([]byte, size-tpmHeaderSize)...)
	if _, err := io.ReadFull(c, cmd[tpmHeaderSize:]); err != nil {
		return
	}
	rsp, err := t.Send(cmd)
	if err != nil {
		return
	}
	_, _ = c.Write(rsp)
}
