package runtimelog

import (
	"bytes"
	"fmt"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
)

// Verdict is what the live register says of a log's runtime records.
type Verdict int

const (
	// InSync: the register holds the replay of the whole log.
	InSync Verdict = iota
	// LastNotExtended: the register holds the replay of the log without its
	// last record, which was appended but not extended: extend it now.
	LastNotExtended
)

func (v Verdict) String() string {
	switch v {
	case InSync:
		return "in sync"
	case LastNotExtended:
		return "last record not extended"
	}
	return fmt.Sprintf("Verdict(%d)", int(v))
}

// MismatchError says the live register holds neither the replay of the log
// nor the replay without its last record: something else extended the
// register, or the log was changed.
type MismatchError struct {
	Register    string // "RTMR3", "PCR23"
	Alg         eventlog.Alg
	Records     int    // runtime records in the log
	Live        []byte // the register's live value
	All         []byte // the replay with every record
	WithoutLast []byte // the replay without the last record; nil without records
}

func (e *MismatchError) Error() string {
	msg := fmt.Sprintf("live %s %s is %x, but the log with its %d runtime records replays to %x", e.Register, e.Alg, e.Live, e.Records, e.All)
	if e.WithoutLast != nil {
		msg += fmt.Sprintf(" and without the last one to %x", e.WithoutLast)
	}
	return msg + ": something other than this server extended the register, or the runtime log was changed; not guessing which"
}

// Reconcile compares the live value of register index with the log l, whose
// last `records` events are the runtime log's records (the events before
// them are the boot log's). It compares every bank of the log's algorithms
// that live holds (a TPM may lack a bank the log lists, which then cannot
// contradict it), and fails when live holds none of them.
func Reconcile(l *eventlog.Log, kind eventlog.Kind, index uint32, records int, live eventlog.Bank) (Verdict, error) {
	if records < 0 || records > len(l.Events) {
		return 0, fmt.Errorf("%d runtime records in a log of %d events", records, len(l.Events))
	}
	all, err := eventlog.ReplayRegister(l, index)
	if err != nil {
		return 0, err
	}
	var without eventlog.Bank
	if records > 0 {
		short := *l
		short.Events = l.Events[:len(l.Events)-1]
		if without, err = eventlog.ReplayRegister(&short, index); err != nil {
			return 0, err
		}
	}
	verdict := InSync
	compared := 0
	for _, alg := range l.Algs() {
		lv := live.Get(alg, index)
		if lv == nil {
			continue
		}
		compared++
		a := valueOrZero(all, alg, index)
		switch {
		case bytes.Equal(lv, a) && (compared == 1 || verdict == InSync):
		case without != nil && bytes.Equal(lv, valueOrZero(without, alg, index)) && (compared == 1 || verdict == LastNotExtended):
			verdict = LastNotExtended
		default:
			e := &MismatchError{Register: kind.RegisterName(index), Alg: alg, Records: records, Live: lv, All: a}
			if without != nil {
				e.WithoutLast = valueOrZero(without, alg, index)
			}
			return 0, e
		}
	}
	if compared == 0 {
		return 0, fmt.Errorf("no live %s bank of the log's algorithms (%v) was read: cannot check the runtime log against the register", kind.RegisterName(index), l.Algs())
	}
	return verdict, nil
}

// valueOrZero is a replayed register, or its reset value (zeros) when no
// event extends it.
func valueOrZero(b eventlog.Bank, alg eventlog.Alg, index uint32) []byte {
	if v := b.Get(alg, index); v != nil {
		return v
	}
	return make([]byte, alg.Size())
}

// Unextended compares the live value of register index with the log l,
// whose last `records` events are the runtime log's records, and tells how
// many of the last records the register lacks, at most max: it holds the
// replay of the log without them. Records are appended in groups made
// durable together before their extends, which follow in journal order (a
// group commit), so a crash can leave up to a group's worth of records in
// the journal and not in the register, always the last ones. Anything else
// is a *MismatchError. It compares the banks as Reconcile does.
func Unextended(l *eventlog.Log, kind eventlog.Kind, index uint32, records, max int, live eventlog.Bank) (int, error) {
	if records < 0 || records > len(l.Events) {
		return 0, fmt.Errorf("%d runtime records in a log of %d events", records, len(l.Events))
	}
	max = min(max, records)
	short := *l
	short.Events = l.Events[:len(l.Events)-max]
	base, err := eventlog.ReplayRegister(&short, index)
	if err != nil {
		return 0, err
	}
	tail := l.Events[len(l.Events)-max:]
	// fits[m] stays true while every bank compared holds the replay
	// without the last m records.
	fits := make([]bool, max+1)
	for m := range fits {
		fits[m] = true
	}
	compared := 0
	var mismatch *MismatchError
	for _, alg := range l.Algs() {
		lv := live.Get(alg, index)
		if lv == nil {
			continue
		}
		h := alg.New()
		if h == nil {
			return 0, fmt.Errorf("cannot replay %s: the algorithm is not supported", alg)
		}
		compared++
		// values[j]: the register with the first j tail records extended.
		values := [][]byte{valueOrZero(base, alg, index)}
		for _, e := range tail {
			v := values[len(values)-1]
			if e.Index == index && e.Type != eventlog.EvNoAction {
				for _, d := range e.Digests {
					if d.Alg == alg {
						h.Reset()
						h.Write(v)
						h.Write(d.Value)
						v = h.Sum(nil)
					}
				}
			}
			values = append(values, v)
		}
		any := false
		for m := range fits {
			fits[m] = fits[m] && bytes.Equal(lv, values[max-m])
			any = any || fits[m]
		}
		if !any && mismatch == nil {
			mismatch = &MismatchError{Register: kind.RegisterName(index), Alg: alg, Records: records, Live: lv, All: values[max]}
			if max > 0 {
				mismatch.WithoutLast = values[max-1]
			}
		}
	}
	if compared == 0 {
		return 0, fmt.Errorf("no live %s bank of the log's algorithms (%v) was read: cannot check the runtime log against the register", kind.RegisterName(index), l.Algs())
	}
	for m, ok := range fits {
		if ok {
			return m, nil
		}
	}
	if mismatch == nil { // each bank fits, but not at the same record
		mismatch = &MismatchError{Register: kind.RegisterName(index), Records: records}
	}
	return 0, mismatch
}
