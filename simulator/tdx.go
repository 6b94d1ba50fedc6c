// Package simulator provides simulated hardware sources for machines without
// TDX or a TPM: a TD whose CCEL log and RTMRs look like TDVF's, a TPM on the
// go-tpm-tools simulator, and fake host trees the real backends can read.
//
// Simulated sources are chosen explicitly and say so: Simulated() is true and
// Name() says what is simulated.
package simulator

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"sync"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog/ccel"
	"github.com/ccnp-eventlog/ccnp-eventlog/hwsource"
	"github.com/ccnp-eventlog/ccnp-eventlog/internal/durable"
)

// Defaults and limits of a simulated TDX log.
const (
	DefaultTDXEvents = 44
	DefaultAreaSize  = 64 << 10 // TDVF's log area; newer OVMF uses 1 MiB
	MaxAreaSize      = 1 << 20
)

// TDXConfig describes a simulated TD.
type TDXConfig struct {
	// Seed determines every byte of the log: a seed always gives the same
	// log, table and registers.
	Seed int64
	// Events is the number of events after the Spec ID header; 0 means
	// DefaultTDXEvents. The boot sequence has a fixed part (about 40
	// events); GRUB commands make up the rest.
	Events int
	// AreaSize is the size of the CCEL log area; 0 means DefaultAreaSize.
	// The log must fit in it.
	AreaSize int
	// StateFile, when set, keeps the RTMRs in a file, as a real TD keeps
	// them while servers on it come and go: a TDX opened on the file of an
	// earlier one with the same log resumes its registers and boot ID,
	// including every extend made through it. A file written for another
	// log (another seed or size) is a new boot. Without a file every TDX is
	// a new boot.
	StateFile string
}

var _ hwsource.Extender = (*TDX)(nil)

// TDX is a simulated TD: a TDVF-like boot log in a CCEL log area, the CCEL
// table pointing at it, and RTMRs that start as the TDX module leaves them
// after the boot and can be extended. Safe for concurrent use.
type TDX struct {
	cfg   TDXConfig
	table []byte
	area  []byte
	used  int
	lasa  uint64
	// logSHA256 identifies the boot log (hex SHA-256) in the state file: a
	// file written for another log is another machine's.
	logSHA256 string

	mu     sync.RWMutex
	rtmrs  eventlog.Bank
	bootID string
}

// rtmrSize is the size of an RTMR: a SHA-384 digest.
const rtmrSize = sha512.Size384

// NewTDX builds the simulated TD's log, table and registers.
func NewTDX(cfg TDXConfig) (*TDX, error) {
	if cfg.Events == 0 {
		cfg.Events = DefaultTDXEvents
	}
	if cfg.AreaSize == 0 {
		cfg.AreaSize = DefaultAreaSize
	}
	if cfg.AreaSize < 0 || cfg.AreaSize > MaxAreaSize {
		return nil, fmt.Errorf("simulated TDX: log area size %d is outside 1..%d bytes", cfg.AreaSize, MaxAreaSize)
	}
	// Every TCG_PCR_EVENT2 with one SHA-384 digest takes at least 66 bytes:
	// refuse a count that cannot fit before building anything.
	const minRecord = 12 + 2 + rtmrSize + 4
	if cfg.Events < 0 || cfg.Events > cfg.AreaSize/minRecord {
		return nil, fmt.Errorf("simulated TDX: %d events cannot fit in a %d-byte log area (at most %d)", cfg.Events, cfg.AreaSize, cfg.AreaSize/minRecord)
	}
	steps, err := bootSteps(onTDX, cfg.Seed, cfg.Events)
	if err != nil {
		return nil, fmt.Errorf("simulated TDX: %w", err)
	}

	// TDVF writes the Spec ID header at CC MR index 1 (RTMR0), listing
	// SHA-384 only. The log is made in place in its area: a 1 MiB area is
	// most of a server's start on the simulated TD, and copies count.
	area := make([]byte, 0, cfg.AreaSize)
	log := eventlog.AppendSpecIDHeader(area, 1, []eventlog.Alg{eventlog.AlgSHA384})
	var regs [4][rtmrSize]byte // RTMR0..3: the TDX module starts each at zero
	for _, s := range steps {
		mr, err := ccMRIndex(s.pcr)
		if err != nil {
			return nil, err
		}
		digest := sha512.Sum384(s.measured)
		log = eventlog.AppendEvent2(log, mr, s.typ, []eventlog.Digest{{Alg: eventlog.AlgSHA384, Value: digest[:]}}, s.data)
		extend(&regs[mr-1], digest[:])
	}
	rtmrs := eventlog.Bank{}
	for i := range regs {
		rtmrs.Set(eventlog.AlgSHA384, uint32(i+1), regs[i][:])
	}
	if len(log) > cfg.AreaSize {
		return nil, fmt.Errorf("simulated TDX: the log of %d events is %d bytes, more than the %d-byte log area: raise the area size or lower the event count",
			cfg.Events, len(log), cfg.AreaSize)
	}

	t := &TDX{cfg: cfg, used: len(log), rtmrs: rtmrs}
	// Unused log area is erased flash: 0xFF.
	t.area = log[:cfg.AreaSize]
	for i := len(log); i < len(t.area); i++ {
		t.area[i] = 0xFF
	}
	logSum := sha256.Sum256(log)
	t.logSHA256 = hex.EncodeToString(logSum[:])
	// Firmware reserves the area in low memory, below 2 GiB.
	t.lasa = (0x80000000 - uint64(cfg.AreaSize)) &^ 0xFFF
	t.table = (&ccel.Table{
		Revision:        1,
		OEMID:           "INTEL",
		OEMTableID:      "CCNPSIM",
		OEMRevision:     2,
		CreatorID:       "CCNP",
		CreatorRevision: 1,
		CCType:          ccel.TypeTDX,
		LAML:            uint64(cfg.AreaSize),
		LASA:            t.lasa,
	}).Marshal()
	if err := t.power(); err != nil {
		return nil, err
	}
	return t, nil
}

// tdxState is the content of TDXConfig.StateFile.
type tdxState struct {
	// LogSHA256 identifies the boot log the registers belong to.
	LogSHA256 string `json:"log_sha256"`
	BootID    string `json:"boot_id"`
	// RTMRs are RTMR0..3 in hex.
	RTMRs [4]string `json:"rtmrs"`
}

// power starts the TD: a new boot with the boot values computed by NewTDX,
// or, with a state file of the same log, the registers it holds.
func (t *TDX) power() error {
	if t.cfg.StateFile != "" {
		b, err := os.ReadFile(t.cfg.StateFile)
		switch {
		case err == nil:
			var st tdxState
			if err := json.Unmarshal(b, &st); err != nil {
				return fmt.Errorf("simulated TDX state %s: %w (remove it to power the simulated TD on afresh)", t.cfg.StateFile, err)
			}
			if st.LogSHA256 == t.logSHA256 {
				if st.BootID == "" {
					return fmt.Errorf("simulated TDX state %s: no boot_id (remove the file to power the simulated TD on afresh)", t.cfg.StateFile)
				}
				rtmrs := eventlog.Bank{}
				for i, h := range st.RTMRs {
					v, err := hex.DecodeString(h)
					if err != nil || len(v) != rtmrSize {
						return fmt.Errorf("simulated TDX state %s: RTMR%d is %q, not %d bytes of hex (remove the file to power the simulated TD on afresh)", t.cfg.StateFile, i, h, rtmrSize)
					}
					rtmrs.Set(eventlog.AlgSHA384, uint32(i+1), v)
				}
				t.rtmrs, t.bootID = rtmrs, st.BootID
				return nil
			}
		case !errors.Is(err, os.ErrNotExist):
			return fmt.Errorf("simulated TDX state: %w", err)
		}
	}
	id := make([]byte, 16)
	rand.Read(id)
	t.bootID = "simulated-tdx-" + hex.EncodeToString(id)
	return t.save(t.rtmrs)
}

// save writes the registers to the state file, if any, atomically and
// durably: a simulated extend is as final as a real one once it returns.
func (t *TDX) save(rtmrs eventlog.Bank) error {
	if t.cfg.StateFile == "" {
		return nil
	}
	st := tdxState{LogSHA256: t.logSHA256, BootID: t.bootID}
	for i := range st.RTMRs {
		st.RTMRs[i] = hex.EncodeToString(rtmrs.Get(eventlog.AlgSHA384, uint32(i+1)))
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := durable.WriteFile(t.cfg.StateFile, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("simulated TDX state: %w", err)
	}
	return nil
}

// ccMRIndex maps a PC Client PCR to the CC measurement register TDVF logs it
// in: PCR1 and PCR7 to RTMR0 (index 1), PCR2..6 to RTMR1, PCR8..15 to RTMR2.
// PCR0 maps to MRTD, which the TDX module measures and no log records.
func ccMRIndex(pcr uint32) (uint32, error) {
	switch {
	case pcr == 1 || pcr == 7:
		return 1, nil
	case pcr >= 2 && pcr <= 6:
		return 2, nil
	case pcr >= 8 && pcr <= 15:
		return 3, nil
	}
	return 0, fmt.Errorf("simulated TDX: PCR%d has no RTMR", pcr)
}

// Name says what is simulated.
func (t *TDX) Name() string {
	if t.cfg.StateFile != "" {
		return fmt.Sprintf("simulated TDX (seed %d, %d events, RTMRs kept in %s)", t.cfg.Seed, t.cfg.Events, t.cfg.StateFile)
	}
	return fmt.Sprintf("simulated TDX (seed %d, %d events)", t.cfg.Seed, t.cfg.Events)
}

// Kind is eventlog.TDX.
func (t *TDX) Kind() eventlog.Kind { return eventlog.TDX }

// Simulated is true.
func (t *TDX) Simulated() bool { return true }

// RegistersFrom implements hwsource.Source.
func (t *TDX) RegistersFrom() string { return "the simulated TDX module's RTMRs" }

// ReadLog returns the whole log area, padding included, as the real
// backend reads data/CCEL, parsed. The area is not copied (a 1 MiB copy is
// 256 fresh pages in every cold start): it never changes after the boot, and
// nothing writes into a log read, whose events' slices are capped so that an
// append copies.
func (t *TDX) ReadLog(ctx context.Context) (hwsource.Log, error) {
	if err := ctx.Err(); err != nil {
		return hwsource.Log{}, err
	}
	l, err := hwsource.ParseLog(t.area[:len(t.area):len(t.area)], true, t.Name())
	l.Address = t.lasa
	return l, err
}

// Registers returns RTMR0..3 as the TDX module holds them: their values
// after the boot (an RTMR the log does not extend is zero) extended by every
// Extend since, keyed by CC MR index 1..4.
func (t *TDX) Registers(ctx context.Context) (eventlog.Bank, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	return cloneBank(t.rtmrs), nil
}

// Extend extends an RTMR as TDG.MR.RTMR.EXTEND does: RTMR = SHA-384(RTMR ||
// digest), for CC MR index 1..4 (RTMR0..3) and one SHA-384 digest. With a
// state file the new value is durable when Extend returns.
func (t *TDX) Extend(ctx context.Context, index uint32, digests []eventlog.Digest) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if index < 1 || index > 4 {
		return fmt.Errorf("simulated TDX: CC MR index %d is not an RTMR (1..4 are RTMR0..3)", index)
	}
	if len(digests) != 1 || digests[0].Alg != eventlog.AlgSHA384 || len(digests[0].Value) != rtmrSize {
		return fmt.Errorf("simulated TDX: an RTMR extend takes one %d-byte SHA-384 digest", rtmrSize)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	next := cloneBank(t.rtmrs)
	next.Set(eventlog.AlgSHA384, index, extendRTMR(t.rtmrs.Get(eventlog.AlgSHA384, index), digests[0].Value))
	if err := t.save(next); err != nil {
		return err
	}
	t.rtmrs = next
	return nil
}

// extendRTMR returns what TDG.MR.RTMR.EXTEND makes of an RTMR: SHA-384(RTMR
// || digest). The simulated boot and Extend both extend through it; replay
// (eventlog.Replay) computes the same independently, which is what the tests
// compare.
func extendRTMR(rtmr, digest []byte) []byte {
	var r [rtmrSize]byte
	copy(r[:], rtmr)
	extend(&r, digest)
	return r[:]
}

// extend is extendRTMR in place, without allocating: the boot of a 1 MiB
// log extends thousands of times.
func extend(rtmr *[rtmrSize]byte, digest []byte) {
	var in [2 * rtmrSize]byte
	copy(in[:], rtmr[:])
	copy(in[rtmrSize:], digest)
	*rtmr = sha512.Sum384(in[:])
}

// BootID names the simulated TD's boot: new for every TDX, kept in the
// state file across processes.
func (t *TDX) BootID(ctx context.Context) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	return t.bootID, nil
}

// Table returns the CCEL table: what /sys/firmware/acpi/tables/CCEL holds.
func (t *TDX) Table() []byte { return slices.Clone(t.table) }

// Area returns the log area: what /sys/firmware/acpi/tables/data/CCEL holds.
func (t *TDX) Area() []byte { return slices.Clone(t.area) }

// Log returns the log without the area's padding.
func (t *TDX) Log() []byte { return slices.Clone(t.area[:t.used]) }

func cloneBank(b eventlog.Bank) eventlog.Bank {
	c := eventlog.Bank{}
	for alg, regs := range b {
		c[alg] = maps.Clone(regs)
		for i, v := range c[alg] {
			c[alg][i] = slices.Clone(v)
		}
	}
	return c
}
