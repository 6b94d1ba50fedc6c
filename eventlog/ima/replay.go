package ima

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"strings"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
)

// DefaultBanks are the PCR banks Replay computes when not told: SHA-1 and
// SHA-256, the banks of nearly every TPM.
var DefaultBanks = []eventlog.Alg{eventlog.AlgSHA1, eventlog.AlgSHA256}

// imaNameField is the size the kernel pads an "ima" template's file name
// to before hashing it (IMA_EVENT_NAME_LEN_MAX + 1).
const imaNameField = 256

// TemplateDigest returns alg's digest of the entry's template data, the
// way the kernel hashes it: the data as the list holds it, except for the
// "ima" template, whose digest field is followed by the file name padded
// with zeros to 256 bytes (no size). It is the template hash when alg is
// the list's, and what the kernel extends into alg's bank.
func TemplateDigest(e *Entry, alg eventlog.Alg) ([]byte, error) {
	h := alg.New()
	if h == nil {
		return nil, fmt.Errorf("cannot hash with %s: the algorithm is not supported", alg)
	}
	writeHashed(h, e)
	return h.Sum(nil), nil
}

func writeHashed(h hash.Hash, e *Entry) {
	if e.TemplateName != "ima" {
		h.Write(e.TemplateData)
		return
	}
	var name [imaNameField]byte
	copy(name[:], e.TemplateData[imaDigestSize+4:])
	h.Write(e.TemplateData[:imaDigestSize])
	h.Write(name[:])
}

// Digests returns what the kernel extends into each bank for the entry of a
// list whose template hashes are listAlg's: the template hash into that
// bank, each other bank's digest of the template data into the others,
// and all ones (0xff...) into every bank for a violation.
//
// Kernels before 5.8 instead extended every bank with the SHA-1 template
// hash, zero-padded: their non-SHA-1 PCR 10 cannot be replayed this way.
func Digests(e *Entry, listAlg eventlog.Alg, algs []eventlog.Alg) ([]eventlog.Digest, error) {
	ds := make([]eventlog.Digest, 0, len(algs))
	for _, alg := range algs {
		h := alg.New()
		if h == nil {
			return nil, fmt.Errorf("cannot replay the %s bank: the algorithm is not supported", alg)
		}
		ds = append(ds, eventlog.Digest{Alg: alg, Value: extendDigest(e, listAlg, alg, h, nil)})
	}
	return ds, nil
}

// extendDigest appends to dst what the entry extends into alg's bank; h is
// a hash of alg.
func extendDigest(e *Entry, listAlg, alg eventlog.Alg, h hash.Hash, dst []byte) []byte {
	switch {
	case e.Violation():
		for range h.Size() {
			dst = append(dst, 0xff)
		}
		return dst
	case alg == listAlg:
		return append(dst, e.TemplateHash...)
	}
	h.Reset()
	writeHashed(h, e)
	return h.Sum(dst)
}

// Replay computes the registers the list's entries extend (PCR 10, or
// whichever PCR each entry names) in the banks algs, or DefaultBanks. Each
// starts from zeros; see Digests for what each entry extends.
func Replay(l *List, algs ...eventlog.Alg) (eventlog.Bank, error) {
	if len(algs) == 0 {
		algs = DefaultBanks
	}
	bank := eventlog.Bank{}
	for _, alg := range algs {
		h := alg.New()
		if h == nil {
			return nil, fmt.Errorf("cannot replay the %s bank: the algorithm is not supported", alg)
		}
		// Nearly every entry extends PCR 10: its value is kept at hand
		// rather than looked up in the bank for each.
		var digest, reg []byte
		regIndex := uint32(0)
		for e := range l.All() {
			digest = extendDigest(e, l.HashAlg, alg, h, digest[:0])
			if reg == nil || e.PCR != regIndex {
				if reg = bank.Get(alg, e.PCR); reg == nil {
					reg = make([]byte, h.Size())
					bank.Set(alg, e.PCR, reg)
				}
				regIndex = e.PCR
			}
			h.Reset()
			h.Write(reg)
			h.Write(digest)
			h.Sum(reg[:0]) // in place: the bank holds reg
		}
	}
	return bank, nil
}

// HashError is an entry whose template hash is not the digest of its
// template data: the entry was changed after the kernel logged it.
type HashError struct {
	Entry  int
	Offset int64
	Want   []byte // the digest of the template data
	Got    []byte // the template hash the list holds
}

func (e *HashError) Error() string {
	return fmt.Sprintf("IMA measurement list entry %d at byte offset %d: the template hash is %x, the template data hashes to %x", e.Entry, e.Offset, e.Got, e.Want)
}

// CheckTemplateHashes checks that every entry's template hash is the digest
// of its template data, violations aside, and returns a *HashError for the
// first that is not. An algorithm Go cannot compute (SM3) is an error.
func CheckTemplateHashes(l *List) error {
	h := l.HashAlg.New()
	if h == nil {
		return fmt.Errorf("cannot check %s template hashes: the algorithm is not supported", l.HashAlg)
	}
	var sum []byte
	for e := range l.All() {
		if e.Violation() {
			continue
		}
		h.Reset()
		writeHashed(h, e)
		if sum = h.Sum(sum[:0]); !bytes.Equal(sum, e.TemplateHash) {
			return &HashError{Entry: e.Num, Offset: e.Offset, Want: bytes.Clone(sum), Got: e.TemplateHash}
		}
	}
	return nil
}

// BootAggregateName is the file name of the entry the kernel logs first:
// a digest of the PCRs the firmware and boot loader extended.
const BootAggregateName = "boot_aggregate"

// BootAggregate computes the boot_aggregate the kernel logs for alg from
// the PCRs of alg's bank in pcrs: alg's hash of PCRs 0-7, and for any
// algorithm but SHA-1 also PCRs 8-9 (the kernel command line and image in
// a typical allocation; left out of SHA-1 to keep the old value). Every
// one of those PCRs must be in pcrs.
func BootAggregate(pcrs eventlog.Bank, alg eventlog.Alg) ([]byte, error) {
	h := alg.New()
	if h == nil {
		return nil, fmt.Errorf("cannot compute a %s boot_aggregate: the algorithm is not supported", alg)
	}
	last := uint32(9)
	if alg == eventlog.AlgSHA1 {
		last = 7
	}
	for i := uint32(0); i <= last; i++ {
		v := pcrs.Get(alg, i)
		if len(v) != h.Size() {
			return nil, fmt.Errorf("a %s boot_aggregate needs PCRs 0-%d of the %s bank: PCR %d is missing", alg, last, alg, i)
		}
		h.Write(v)
	}
	return h.Sum(nil), nil
}

// BootAggregateDigest returns the algorithm and digest an entry records as
// its boot_aggregate: an "ima" template's SHA-1 digest, or a d-ng field's
// ("sha256:..."; d-ngv2's "ima:sha256:..."). ok is false when the entry is not a boot_aggregate or
// its digest names an algorithm outside eventlog's.
func BootAggregateDigest(e *Entry, order binary.ByteOrder) (alg eventlog.Alg, digest []byte, ok bool) {
	fields, ok := e.Fields(order)
	if !ok || len(fields) < 2 || fields[1].String() != BootAggregateName {
		return 0, nil, false
	}
	if fields[0].ID == "d" {
		return eventlog.AlgSHA1, fields[0].Data, true
	}
	name, digest, ok := fields[0].Digest()
	if !ok {
		return 0, nil, false
	}
	if i := strings.LastIndexByte(name, ':'); i >= 0 {
		name = name[i+1:] // d-ngv2's digest type ("ima:sha256")
	}
	if alg, ok = eventlog.ParseAlg(name); !ok || len(digest) != alg.Size() {
		return 0, nil, false
	}
	return alg, digest, true
}

// ErrNoBootAggregate says the list has no boot_aggregate entry to check.
var ErrNoBootAggregate = errors.New("the IMA measurement list has no boot_aggregate entry")

// BootAggregateError is a boot_aggregate that does not match the PCRs.
type BootAggregateError struct {
	Entry int
	Alg   eventlog.Alg
	Want  []byte // computed from the PCRs
	Got   []byte // logged
}

func (e *BootAggregateError) Error() string {
	last := 9
	if e.Alg == eventlog.AlgSHA1 {
		last = 7
	}
	return fmt.Sprintf("IMA measurement list entry %d: the %s boot_aggregate is %x, PCRs 0-%d of the %s bank give %x", e.Entry, e.Alg, e.Got, last, e.Alg, e.Want)
}

// CheckBootAggregate checks the list's boot_aggregate (its first entry by
// that name, normally entry 1) against pcrs, in the bank its algorithm
// names. A kernel that found no TPM logs zeros: that too is a mismatch.
func CheckBootAggregate(l *List, pcrs eventlog.Bank) error {
	for e := range l.All() {
		alg, got, ok := BootAggregateDigest(e, l.Order)
		if !ok {
			continue
		}
		want, err := BootAggregate(pcrs, alg)
		if err != nil {
			return fmt.Errorf("entry %d: %w", e.Num, err)
		}
		if !bytes.Equal(want, got) {
			return &BootAggregateError{Entry: e.Num, Alg: alg, Want: want, Got: got}
		}
		return nil
	}
	return ErrNoBootAggregate
}
