package verify_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog/ima"
	"github.com/ccnp-eventlog/ccnp-eventlog/verify"
)

var le = binary.LittleEndian

// imaNode is a list and the live PCRs that its kernel would have extended:
// PCRs 0-9 of some boot, and PCR 10 the list's replay.
func imaNode(t *testing.T, n int) ([]byte, eventlog.Bank) {
	t.Helper()
	pcrs := eventlog.Bank{}
	for _, alg := range ima.DefaultBanks {
		for i := uint32(0); i < 10; i++ {
			pcrs.Set(alg, i, bytes.Repeat([]byte{byte(i + 1)}, alg.Size()))
		}
	}
	agg, err := ima.BootAggregate(pcrs, eventlog.AlgSHA256)
	if err != nil {
		t.Fatal(err)
	}
	list, err := ima.AppendEntry(nil, le, eventlog.AlgSHA1, 10, "ima-ng", ima.NgData(le, "sha256", agg, ima.BootAggregateName))
	if err != nil {
		t.Fatal(err)
	}
	for i := 2; i <= n; i++ {
		if i == n-1 {
			list = ima.AppendViolation(list, le, 20, 10, "ima-ng", ima.NgData(le, "sha256", make([]byte, 32), "/var/log/x"))
			continue
		}
		name := fmt.Sprintf("/usr/bin/f%d", i)
		d := sha256.Sum256([]byte(name))
		if list, err = ima.AppendEntry(list, le, eventlog.AlgSHA1, 10, "ima-ng", ima.NgData(le, "sha256", d[:], name)); err != nil {
			t.Fatal(err)
		}
	}
	extendLive(t, pcrs, list)
	return list, pcrs
}

// extendLive sets live PCR 10 to list's replay.
func extendLive(t *testing.T, live eventlog.Bank, list []byte) {
	t.Helper()
	replayed, err := ima.Replay(parseIMA(t, list))
	if err != nil {
		t.Fatal(err)
	}
	for _, alg := range ima.DefaultBanks {
		live.Set(alg, 10, replayed.Get(alg, 10))
	}
}

func parseIMA(t *testing.T, b []byte) *ima.List {
	t.Helper()
	l, err := ima.Parse(b, ima.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func checkIMA(t *testing.T, list []byte, live eventlog.Bank) *verify.Report {
	t.Helper()
	r, err := verify.CheckIMA(parseIMA(t, list), live, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// row returns the report's row of register in alg.
func row(t *testing.T, r *verify.Report, name string, alg eventlog.Alg) verify.Register {
	t.Helper()
	for _, reg := range r.Registers {
		if reg.Name == name && reg.Alg == alg {
			return reg
		}
	}
	t.Fatalf("no %s %s row in %+v", name, alg, r.Registers)
	return verify.Register{}
}

func TestCheckIMAMatches(t *testing.T) {
	list, live := imaNode(t, 20)
	r := checkIMA(t, list, live)
	if !r.Verified() {
		t.Fatalf("not verified: %+v", r.Registers)
	}
	for _, alg := range ima.DefaultBanks {
		if reg := row(t, r, "PCR10", alg); reg.Events != 20 || reg.FirstUnmatched != 0 {
			t.Errorf("%s: %+v", alg, reg)
		}
	}
	if reg := row(t, r, verify.BootAggregateRegister, eventlog.AlgSHA256); reg.Status != verify.Match {
		t.Errorf("boot_aggregate: %+v", reg)
	}
}

func TestCheckIMANamesTheEntriesThePCRLacks(t *testing.T) {
	list, live := imaNode(t, 20)
	// Three entries logged after the PCR was read (or never extended).
	more, _ := imaNode(t, 23)
	grown := append(bytes.Clone(list), more[parseIMA(t, more).Entry(21).Offset:]...)
	r := checkIMA(t, grown, live)
	if r.Verified() || !r.Mismatched() {
		t.Fatal("a list ahead of the PCR verified")
	}
	for _, alg := range ima.DefaultBanks {
		reg := row(t, r, "PCR10", alg)
		if reg.Status != verify.Mismatch || reg.FirstUnmatched != 21 {
			t.Errorf("%s: %+v", alg, reg)
		}
	}
}

func TestCheckIMANamesAChangedEntry(t *testing.T) {
	list, live := imaNode(t, 20)
	l := parseIMA(t, list)
	// A template hash rewritten: the SHA-1 bank (template hashes) no
	// longer matches; the SHA-256 bank (the data's digests) does, but the
	// entry is named in both.
	e := l.Entry(7)
	changed := bytes.Clone(list)
	changed[e.Offset+4] ^= 0xff
	r := checkIMA(t, changed, live)
	for _, alg := range ima.DefaultBanks {
		reg := row(t, r, "PCR10", alg)
		if reg.Status != verify.Mismatch || len(reg.Altered) != 1 || reg.Altered[0] != 7 {
			t.Errorf("%s: %+v", alg, reg)
		}
	}

	// The data rewritten and its template hash recomputed: the replay
	// differs, and no entry can be named.
	tampered := bytes.Clone(list[:e.Offset])
	d := sha256.Sum256([]byte("evil"))
	tampered, _ = ima.AppendEntry(tampered, le, eventlog.AlgSHA1, 10, "ima-ng", ima.NgData(le, "sha256", d[:], "/usr/bin/f7"))
	tampered = append(tampered, list[e.Offset+int64(len(e.Raw)):]...)
	r = checkIMA(t, tampered, live)
	reg := row(t, r, "PCR10", eventlog.AlgSHA1)
	if reg.Status != verify.Mismatch || reg.FirstUnmatched != 0 || len(reg.Altered) != 0 {
		t.Errorf("a consistently changed entry: %+v", reg)
	}
}

func TestCheckIMABootAggregate(t *testing.T) {
	list, live := imaNode(t, 5)
	live.Set(eventlog.AlgSHA256, 4, make([]byte, 32)) // PCR 4 is not the boot's
	r := checkIMA(t, list, live)
	reg := row(t, r, verify.BootAggregateRegister, eventlog.AlgSHA256)
	if reg.Status != verify.Mismatch || !r.Mismatched() {
		t.Errorf("boot_aggregate of other PCRs: %+v", reg)
	}
	if row(t, r, "PCR10", eventlog.AlgSHA256).Status != verify.Match {
		t.Error("PCR 10 no longer matches")
	}

	// Without a SHA-256 bank the boot_aggregate cannot be computed: said,
	// not failed.
	delete(live, eventlog.AlgSHA256)
	r = checkIMA(t, list, live)
	if !r.Verified() || len(r.Quirks) != 1 || r.Quirks[0].Name != "ima-boot-aggregate-not-checked" {
		t.Errorf("no SHA-256 bank: verified %v, quirks %+v", r.Verified(), r.Quirks)
	}
}

func TestCheckIMANotAvailable(t *testing.T) {
	list, _ := imaNode(t, 5)
	r, err := verify.CheckIMA(parseIMA(t, list), nil, errors.New("no TPM"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Verified() || r.Mismatched() {
		t.Error("verified or mismatched without live values")
	}
	for _, reg := range r.Registers {
		if reg.Status != verify.NotAvailable {
			t.Errorf("%+v", reg)
		}
	}
}
