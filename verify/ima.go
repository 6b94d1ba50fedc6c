package verify

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"slices"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog/ima"
)

// BootAggregateRegister names the row of an IMA check that compares the
// list's boot_aggregate with the live PCRs it digests.
const BootAggregateRegister = "boot_aggregate"

// CheckIMA replays the kernel's IMA measurement list and compares every
// PCR it extends (PCR 10, and any other a policy names) with live, in each
// live bank (ima.DefaultBanks when live is nil, liveErr saying why). Live
// PCR 10 is compared even when the list has no entry for it.
//
// Where a PCR does not match, it says from which entry on the list no
// longer explains it, where that can be told:
//
//   - the replay of the first k entries gives the live value: entry k+1 is
//     named (Register.FirstUnmatched). The kernel appends an entry to the
//     list before it extends the PCR, so a list read after the PCR may run
//     ahead of it; read them again (the service does) before calling that
//     a mismatch.
//   - an entry whose template hash is not its template data's digest: the
//     entry was changed after it was logged (Register.Altered), which
//     explains a SHA-1 bank (the template hashes are extended) while the
//     other banks, which extend the data's digest, may still match.
//   - otherwise nothing can be told: the PCR holds one digest of the whole
//     sequence, and any entry may be the one that differs.
//
// The boot_aggregate (the list's first entry) is compared with live PCRs
// 0-9 (0-7 for SHA-1) in the bank of its algorithm, as a row named
// BootAggregateRegister; where that cannot be done (no such entry, a bank
// the node does not expose, an algorithm Go does not have) a quirk says why.
func CheckIMA(l *ima.List, live eventlog.Bank, liveErr error) (*Report, error) {
	algs := ima.DefaultBanks
	if liveErr == nil {
		algs = nil
		for alg := range live {
			algs = append(algs, alg)
		}
		slices.Sort(algs)
	}
	r := &Report{LiveErr: liveErr}
	altered, hashErr := alteredEntries(l)
	for _, alg := range algs {
		if alg.New() == nil {
			r.Registers = append(r.Registers, Register{Name: eventlog.TPM.RegisterName(imaPCR), Index: imaPCR, Alg: alg, Status: NotAvailable,
				Note: "cannot replay the " + alg.String() + " bank: Go has no " + alg.String()})
			continue
		}
		regs, err := replayIMA(l, alg, live, liveErr)
		if err != nil {
			return nil, err
		}
		// An entry changed after it was logged: its template hash (which
		// the list's own bank extends) or its data (which the others
		// extend) no longer agree, so one bank may still match; each
		// register it extends is a mismatch, naming it.
		for i := range regs {
			reg := &regs[i]
			var on []int
			for _, n := range altered {
				if l.Entry(n).PCR == reg.Index {
					on = append(on, n)
				}
			}
			if len(on) > 0 && reg.Status != NotAvailable {
				reg.Altered, reg.Status = on, Mismatch
				reg.Note = fmt.Sprintf("the template hash of entry(ies) %s is not the %s digest of its template data: the list was changed after the kernel logged it", joinInts(on), l.HashAlg)
			}
		}
		r.Registers = append(r.Registers, regs...)
	}
	if hashErr != nil {
		r.Quirks = append(r.Quirks, Quirk{Name: "ima-template-hashes-not-checked", Register: eventlog.TPM.RegisterName(imaPCR), Description: hashErr.Error()})
	}
	if l.Pending > 0 {
		r.Quirks = append(r.Quirks, Quirk{Name: "ima-entry-being-written", Register: eventlog.TPM.RegisterName(imaPCR),
			Description: fmt.Sprintf("the list ends with %d bytes of an entry the kernel was still writing: it is not counted", l.Pending)})
	}
	if liveErr == nil {
		reg, quirk := checkBootAggregate(l, live)
		if reg != nil {
			r.Registers = append(r.Registers, *reg)
		}
		if quirk != nil {
			r.Quirks = append(r.Quirks, *quirk)
		}
	}
	last := func(r Register) int { // the boot_aggregate row after the PCRs
		if r.Name == BootAggregateRegister {
			return 1
		}
		return 0
	}
	slices.SortStableFunc(r.Registers, func(a, b Register) int {
		return cmp.Or(cmp.Compare(last(a), last(b)), cmp.Compare(a.Index, b.Index), cmp.Compare(a.Alg, b.Alg))
	})
	return r, nil
}

// replayIMA replays alg's bank entry by entry, noting for each PCR the
// last entry after which it held the live value.
func replayIMA(l *ima.List, alg eventlog.Alg, live eventlog.Bank, liveErr error) ([]Register, error) {
	type pcr struct {
		value   []byte
		events  int
		matched int // entries of the whole list after which it held the live value; -1: never
		live    []byte
	}
	pcrs := map[uint32]*pcr{}
	get := func(index uint32) *pcr {
		p := pcrs[index]
		if p == nil {
			p = &pcr{value: make([]byte, alg.Size()), matched: -1}
			if liveErr == nil {
				p.live = live.Get(alg, index)
			}
			if p.live != nil && bytes.Equal(p.live, p.value) {
				p.matched = 0
			}
			pcrs[index] = p
		}
		return p
	}
	get(imaPCR)
	h := alg.New()
	for e := range l.All() {
		ds, err := ima.Digests(e, l.HashAlg, []eventlog.Alg{alg})
		if err != nil {
			return nil, err
		}
		p := get(e.PCR)
		h.Reset()
		h.Write(p.value)
		h.Write(ds[0].Value)
		p.value = h.Sum(p.value[:0])
		p.events++
		if p.live != nil && bytes.Equal(p.live, p.value) {
			p.matched = e.Num
		}
	}
	var regs []Register
	for index, p := range pcrs {
		reg := Register{Name: eventlog.TPM.RegisterName(index), Index: index, Alg: alg, Replayed: p.value, Events: p.events}
		reg.Live, reg.Status, reg.Note = compare(p.value, live, alg, index, liveErr)
		if reg.Status == Mismatch && p.matched >= 0 {
			reg.FirstUnmatched = nextOn(l, index, p.matched)
			reg.Note = fmt.Sprintf("the live value is the replay of the list up to entry %d: entry %d and the %d after it that extend %s are not in it (the kernel logs an entry before it extends the PCR; if they stay out, the list holds entries the PCR never saw)",
				p.matched, reg.FirstUnmatched, countOn(l, index, reg.FirstUnmatched)-1, reg.Name)
		} else if reg.Status == Mismatch {
			reg.Note = "the list's replay differs from the live value, and no shorter replay gives it: any entry may be the one that differs (a PCR holds one digest of the whole sequence)"
		}
		regs = append(regs, reg)
	}
	return regs, nil
}

// nextOn is the number of the first entry after entry after that extends
// index.
func nextOn(l *ima.List, index uint32, after int) int {
	for e := range l.All() {
		if e.Num > after && e.PCR == index {
			return e.Num
		}
	}
	return 0
}

// countOn counts the entries from entry from on that extend index.
func countOn(l *ima.List, index uint32, from int) int {
	n := 0
	for e := range l.All() {
		if e.Num >= from && e.PCR == index {
			n++
		}
	}
	return n
}

// alteredEntries lists the entries whose template hash is not their
// template data's digest (violations aside), or says why that cannot be
// checked.
func alteredEntries(l *ima.List) ([]int, error) {
	h := l.HashAlg.New()
	if h == nil {
		return nil, fmt.Errorf("template hashes not checked: Go has no %s", l.HashAlg)
	}
	var altered []int
	for e := range l.All() {
		if e.Violation() {
			continue
		}
		d, err := ima.TemplateDigest(e, l.HashAlg)
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(d, e.TemplateHash) {
			altered = append(altered, e.Num)
		}
	}
	return altered, nil
}

// checkBootAggregate compares the list's boot_aggregate with the live PCRs.
func checkBootAggregate(l *ima.List, live eventlog.Bank) (*Register, *Quirk) {
	notChecked := func(why string) *Quirk {
		return &Quirk{Name: "ima-boot-aggregate-not-checked", Register: "PCR0-9", Description: "the boot_aggregate was not compared with the live PCRs: " + why}
	}
	err := ima.CheckBootAggregate(l, live)
	var bad *ima.BootAggregateError
	switch {
	case errors.Is(err, ima.ErrNoBootAggregate):
		return nil, notChecked(err.Error())
	case errors.As(err, &bad):
		return &Register{Name: BootAggregateRegister, Alg: bad.Alg, Replayed: bad.Got, Live: bad.Want, Events: 1, Status: Mismatch,
			Note: fmt.Sprintf("entry %d's boot_aggregate is not the digest of the live PCRs 0-%d: the list is not this boot's, or the firmware's PCRs were extended after the kernel started", bad.Entry, aggregateLast(bad.Alg))}, nil
	case err != nil:
		return nil, notChecked(err.Error())
	}
	for e := range l.All() {
		alg, got, ok := ima.BootAggregateDigest(e, l.Order)
		if ok {
			return &Register{Name: BootAggregateRegister, Alg: alg, Replayed: got, Live: got, Events: 1, Status: Match,
				Note: fmt.Sprintf("entry %d: the digest of live PCRs 0-%d", e.Num, aggregateLast(alg))}, nil
		}
	}
	return nil, nil
}

func aggregateLast(alg eventlog.Alg) int {
	if alg == eventlog.AlgSHA1 {
		return 7
	}
	return 9
}

func joinInts(v []int) string {
	var b []byte
	for i, n := range v {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = fmt.Append(b, n)
	}
	return string(b)
}
