package eventlog

import (
	"bytes"
	"fmt"
	"hash"
	"maps"
	"slices"
)

// Bank holds register values per algorithm, keyed by the log's register index
// (PCR number, or CC MR index for TDX: 1 is RTMR0).
type Bank map[Alg]map[uint32][]byte

// Get returns the value of register index in alg's bank, or nil.
func (b Bank) Get(alg Alg, index uint32) []byte { return b[alg][index] }

// Set stores a register value.
func (b Bank) Set(alg Alg, index uint32, v []byte) {
	if b[alg] == nil {
		b[alg] = map[uint32][]byte{}
	}
	b[alg][index] = v
}

// Indexes returns the register indexes present in any algorithm, sorted.
func (b Bank) Indexes() []uint32 {
	seen := map[uint32]bool{}
	for _, regs := range b {
		for i := range regs {
			seen[i] = true
		}
	}
	return slices.Sorted(maps.Keys(seen))
}

// Equal reports whether two banks hold the same registers and values.
func (b Bank) Equal(o Bank) bool {
	return maps.EqualFunc(b, o, func(x, y map[uint32][]byte) bool {
		return maps.EqualFunc(x, y, bytes.Equal)
	})
}

// startupLocality is the signature of the EV_NO_ACTION event that records the
// locality from which TPM2_Startup was sent; it sets PCR0's starting value.
const startupLocality = "StartupLocality\x00"

// Replay computes the registers the log's measured events extend: for each
// digest, new = H(old || digest), starting from zeros. EV_NO_ACTION events
// are never replayed; a StartupLocality event starts PCR0 at the locality
// (zeros with the locality in the last byte), as a TPM does. TDX RTMRs follow
// the same rule with SHA-384 from 48 zero bytes.
//
// Only registers that at least one event extends appear in the result. An
// algorithm Go cannot compute (SM3) is an error; its values are unknowable.
func Replay(l *Log) (Bank, error) {
	return replay(l, func(uint32) bool { return true })
}

// ReplayRegister is Replay of the events that extend register index alone:
// the bank holds that register, if any event extends it.
func ReplayRegister(l *Log, index uint32) (Bank, error) {
	return replay(l, func(i uint32) bool { return i == index })
}

func replay(l *Log, extends func(index uint32) bool) (Bank, error) {
	bank := Bank{}
	var locality byte
	hashes := map[Alg]hash.Hash{} // one per algorithm, reset for each extend
	replay := func(e *Event) error {
		if e.Type == EvNoAction {
			if bytes.HasPrefix(e.Data, []byte(startupLocality)) && len(e.Data) > len(startupLocality) && e.Index == 0 {
				locality = e.Data[len(startupLocality)]
			}
			return nil
		}
		if !extends(e.Index) {
			return nil
		}
		for _, d := range e.Digests {
			h := hashes[d.Alg]
			if h == nil {
				if h = d.Alg.New(); h == nil {
					return fmt.Errorf("event %d: cannot replay %s: the algorithm is not supported", e.Num, d.Alg)
				}
				hashes[d.Alg] = h
			}
			bank.extend(h, d.Alg, e.Index, d.Value, locality)
		}
		return nil
	}
	if !l.Agile() {
		// A legacy log's first record is a measurement, not a Spec ID event.
		if err := replay(&l.Header); err != nil {
			return nil, err
		}
	}
	for i := range l.Events {
		if err := replay(&l.Events[i]); err != nil {
			return nil, err
		}
	}
	return bank, nil
}

// extend sets register index of alg's bank to H(old || digest), with h
// (alg's hash), from its reset value (zeros, the locality last for PCR0)
// when it has none yet.
func (b Bank) extend(h hash.Hash, alg Alg, index uint32, digest []byte, locality byte) {
	old := b.Get(alg, index)
	if old == nil {
		old = make([]byte, h.Size())
		if index == 0 {
			old[len(old)-1] = locality
		}
	}
	h.Reset()
	h.Write(old)
	h.Write(digest)
	b.Set(alg, index, h.Sum(old[:0]))
}
