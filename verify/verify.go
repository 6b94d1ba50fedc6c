// Package verify explains a node's live measurement registers with its event
// log: it replays the log and compares every register with its live value,
// and names the known firmware quirks it sees instead of absorbing them.
package verify

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
)

// Status is the outcome for one register.
type Status int

const (
	// Match: replaying the log gives the live value.
	Match Status = iota + 1
	// Mismatch: it does not; the log does not explain the register.
	Mismatch
	// NotAvailable: the live value could not be read, so nothing is claimed.
	NotAvailable
)

func (s Status) String() string {
	switch s {
	case Match:
		return "MATCH"
	case Mismatch:
		return "MISMATCH"
	case NotAvailable:
		return "NOT_AVAILABLE"
	}
	return fmt.Sprintf("Status(%d)", int(s))
}

// Register is the comparison for one register in one algorithm's bank.
type Register struct {
	Name  string // "RTMR0", "PCR7"
	Index uint32 // the log's index: PCR number, or CC MR index
	Alg   eventlog.Alg
	// Replayed is the value the log gives: its reset value when no event
	// extends the register.
	Replayed []byte
	// Live is the register's value on the node; nil when not available.
	Live []byte
	// Events is the number of log events that extend the register.
	Events int
	Status Status
	// Note says why, for anything but a plain match.
	Note string
	// Altered lists the events extending this register whose data does not
	// hash to their digest: the log was changed after the measurement.
	Altered []int
	// FirstUnmatched, for an IMA list, is the first entry the live value
	// does not include, where that can be told (CheckIMA); 0 otherwise.
	FirstUnmatched int
}

// Quirk is a known firmware behaviour seen in the log or the registers.
type Quirk struct {
	Name        string
	Register    string
	Events      []int // event numbers involved; empty when none are logged
	Description string
}

// Report is the result of a check.
type Report struct {
	Registers []Register
	Quirks    []Quirk
	// LiveErr says why live values could not be read; nil when they could.
	LiveErr error
	// MRTD is the TD's MRTD (CC MR index 0) when the register source holds
	// it and the log has no event for it, as no TDX log has: shown, never
	// compared.
	MRTD []byte
}

// Verified reports whether every register could be compared and matched.
func (r *Report) Verified() bool {
	if len(r.Registers) == 0 {
		return false
	}
	for _, reg := range r.Registers {
		if reg.Status != Match {
			return false
		}
	}
	return true
}

// Mismatched reports whether any register's live value contradicts the log.
func (r *Report) Mismatched() bool {
	return slices.ContainsFunc(r.Registers, func(reg Register) bool { return reg.Status == Mismatch })
}

// Check replays l and compares the result with live, the node's registers
// (nil, with liveErr saying why, when they cannot be read). A register the log
// extends is compared in every algorithm the log has; a live register the log
// never extends is reported only when it has left its reset value, since then
// something measured into it without logging.
func Check(l *eventlog.Log, kind eventlog.Kind, live eventlog.Bank, liveErr error) (*Report, error) {
	replayed, err := eventlog.Replay(l)
	if err != nil {
		return nil, err
	}
	counts := map[uint32]int{}
	forEachMeasured(l, func(e *eventlog.Event) { counts[e.Index]++ })

	r := &Report{LiveErr: liveErr, Quirks: ovmfSeparatorQuirk(l, kind)}
	for alg, regs := range replayed {
		for index, value := range regs {
			reg := Register{Name: kind.RegisterName(index), Index: index, Alg: alg, Replayed: value, Events: counts[index]}
			reg.Live, reg.Status, reg.Note = compare(value, live, alg, index, liveErr)
			r.Registers = append(r.Registers, reg)
		}
	}
	logAlgs := l.Algs()
	for alg, regs := range live {
		if !slices.Contains(logAlgs, alg) {
			continue // a bank the log does not use cannot contradict it
		}
		for index, value := range regs {
			if replayed.Get(alg, index) != nil {
				continue
			}
			if kind == eventlog.TDX && index == 0 {
				// MRTD: measured by the TDX module before any firmware
				// runs; no log can explain it.
				r.MRTD = value
				continue
			}
			reset := resetValue(kind, index, len(value))
			if bytes.Equal(value, reset) {
				continue // never extended, and the log agrees
			}
			name := kind.RegisterName(index)
			if kind == eventlog.TPM && index == imaPCR {
				// The kernel's IMA extends PCR 10 (with at least its
				// boot_aggregate on any kernel built with IMA): its
				// measurement list explains the register, not the boot log.
				if !slices.ContainsFunc(r.Quirks, func(q Quirk) bool { return q.Name == imaQuirk }) {
					r.Quirks = append(r.Quirks, Quirk{
						Name:     imaQuirk,
						Register: name,
						Description: "PCR10 was extended without entries in the boot log: it is the kernel's IMA register, " +
							"which its measurement list (securityfs ima/binary_runtime_measurements) explains, not the boot log; " +
							"it is not compared here",
					})
				}
				continue
			}
			r.Registers = append(r.Registers, Register{
				Name: name, Index: index, Alg: alg, Replayed: reset, Live: value, Status: Mismatch,
				Note: "extended on the node, but the log has no event for it",
			})
			if kind == eventlog.TDX && index == 4 {
				r.Quirks = append(r.Quirks, Quirk{
					Name:     "rtmr3-unlogged",
					Register: name,
					Description: "RTMR3 was extended without entries in the boot log: it is the runtime register " +
						"(container and OS measurements), which the boot log does not cover",
				})
			}
		}
	}
	markAltered(l, r.Registers)
	slices.SortFunc(r.Registers, func(a, b Register) int {
		return cmp.Or(cmp.Compare(a.Index, b.Index), cmp.Compare(a.Alg, b.Alg))
	})
	return r, nil
}

// imaPCR is the PCR the kernel's IMA extends (CONFIG_IMA_MEASURE_PCR_IDX,
// 10 on every distribution), and imaQuirk the quirk that says so.
const (
	imaPCR   = 10
	imaQuirk = "ima-pcr10"
)

// dataHashed are the event types whose digest is, by the TCG PC Client
// firmware profile, the hash of the event data itself, and whose data every
// real log of the corpus hashes to its digest. (Other types measure something
// else: an image, a table, a variable's value only.)
var dataHashed = map[eventlog.EventType]bool{
	eventlog.EvSeparator:               true,
	eventlog.EvAction:                  true,
	eventlog.EvEFIAction:               true,
	eventlog.EvEFIVariableDriverConfig: true,
	eventlog.EvEFIGPTEvent:             true,
}

// markAltered finds events whose data no longer hashes to their digests and
// marks the registers they extend as mismatched: replay uses the digests, so
// the registers alone cannot show that the data was changed.
func markAltered(l *eventlog.Log, regs []Register) {
	forEachMeasured(l, func(e *eventlog.Event) {
		if !dataHashed[e.Type] {
			return
		}
		for _, d := range e.Digests {
			m := eventlog.Measure(e.Data, []eventlog.Alg{d.Alg})
			if len(m) == 0 || bytes.Equal(m[0].Value, d.Value) {
				continue
			}
			for i := range regs {
				if regs[i].Index == e.Index && regs[i].Alg == d.Alg {
					regs[i].Altered = append(regs[i].Altered, e.Num)
					regs[i].Status = Mismatch
					regs[i].Note = fmt.Sprintf("the data of event(s) %s does not hash to the logged digest: the log was changed after it was measured",
						strings.Trim(fmt.Sprint(regs[i].Altered), "[]"))
				}
			}
		}
	})
}

func compare(replayed []byte, live eventlog.Bank, alg eventlog.Alg, index uint32, liveErr error) ([]byte, Status, string) {
	if liveErr != nil {
		return nil, NotAvailable, "live value not available"
	}
	v := live.Get(alg, index)
	switch {
	case v == nil:
		return nil, NotAvailable, "the node exposes no " + alg.String() + " value for this register"
	case bytes.Equal(v, replayed):
		return v, Match, ""
	}
	return v, Mismatch, "the register's value (live, or the quote's) differs from the log's replay"
}

// resetValue is a register's value before any extend: zeros, but all ones
// for the TPM's DRTM PCRs 17-22.
func resetValue(kind eventlog.Kind, index uint32, size int) []byte {
	v := make([]byte, size)
	if kind == eventlog.TPM && index >= 17 && index <= 22 {
		for i := range v {
			v[i] = 0xFF
		}
	}
	return v
}

func forEachMeasured(l *eventlog.Log, f func(*eventlog.Event)) {
	if !l.Agile() && l.Header.Type != eventlog.EvNoAction {
		f(&l.Header)
	}
	for i := range l.Events {
		if l.Events[i].Type != eventlog.EvNoAction {
			f(&l.Events[i])
		}
	}
}

// ovmfSeparatorQuirk recognizes the OVMF/TDVF bug fixed in edk2 in 2024
// (TdTcg2Dxe): the EV_SEPARATOR that belongs in RTMR1 was measured into
// RTMR0, so RTMR0 has two separators and RTMR1 none. Several separators per
// RTMR are otherwise normal (PCRs 0-7 map onto RTMR0-1). The log is served as
// the firmware wrote it, and replay counts both, since both were extended.
func ovmfSeparatorQuirk(l *eventlog.Log, kind eventlog.Kind) []Quirk {
	if kind != eventlog.TDX {
		return nil
	}
	seps := map[uint32][]int{}
	forEachMeasured(l, func(e *eventlog.Event) {
		if e.Type == eventlog.EvSeparator {
			seps[e.Index] = append(seps[e.Index], e.Num)
		}
	})
	const rtmr0, rtmr1 = 1, 2 // CC MR indexes
	if len(seps[rtmr0]) < 2 || len(seps[rtmr1]) > 0 {
		return nil
	}
	return []Quirk{{
		Name:     "ovmf-rtmr0-duplicate-separator",
		Register: kind.RegisterName(rtmr0),
		Events:   seps[rtmr0],
		Description: fmt.Sprintf("%d EV_SEPARATOR events in RTMR0 and none in RTMR1: the OVMF/TDVF bug fixed in edk2 in 2024 (TdTcg2Dxe measured RTMR1's separator into RTMR0); "+
			"the events are served as logged and all are replayed, as the firmware extended them", len(seps[rtmr0])),
	}}
}
