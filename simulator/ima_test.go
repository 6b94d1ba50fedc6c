package simulator

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog/ima"
)

// imaListOf is tpm's IMA list now.
func imaListOf(t testing.TB, tpm *TPM) []byte {
	t.Helper()
	list, err := tpm.IMAList()
	if err != nil {
		t.Fatal(err)
	}
	return list
}

// checkIMA checks a simulated TPM's IMA list against its live PCRs: the
// list replays to PCR 10, and its boot_aggregate is the SHA-256 of PCRs 0-9
// as the simulator holds them (hashed here, not with package ima).
func checkIMA(t *testing.T, tpm *TPM) *ima.List {
	t.Helper()
	l, err := ima.Parse(imaListOf(t, tpm), ima.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if l.Pending != 0 {
		t.Fatalf("the list ends %d bytes into an entry", l.Pending)
	}
	if err := ima.CheckTemplateHashes(l); err != nil {
		t.Error(err)
	}
	live, err := tpm.Registers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	replayed, err := ima.Replay(l)
	if err != nil {
		t.Fatal(err)
	}
	for _, alg := range tpmAlgs {
		if got, want := replayed.Get(alg, 10), live.Get(alg, 10); !bytes.Equal(got, want) {
			t.Errorf("PCR10 %s: the list replays to %x, the simulator holds %x", alg, got, want)
		}
	}
	h := sha256.New()
	for i := uint32(0); i <= 9; i++ {
		h.Write(live.Get(eventlog.AlgSHA256, i))
	}
	fields, ok := l.Entry(1).Fields(l.Order)
	if !ok || len(fields) != 2 || fields[1].String() != "boot_aggregate" || fields[0].String() != "sha256:"+hex.EncodeToString(h.Sum(nil)) {
		t.Errorf("entry 1 is %v, want the boot_aggregate sha256:%x", fields, h.Sum(nil))
	}
	if err := ima.CheckBootAggregate(l, live); err != nil {
		t.Error(err)
	}
	return l
}

func TestIMAList(t *testing.T) {
	for _, c := range []struct {
		entries, violations int
	}{{0, 1}, {1, 0}, {2, 0}, {3, 1}, {500, 1}} {
		tpm := newTPM(t, TPMConfig{Seed: 7, Events: 45, IMAEntries: c.entries})
		l := checkIMA(t, tpm)
		want := c.entries
		if want == 0 {
			want = DefaultIMAEntries
		}
		violations := 0
		for e := range l.All() {
			if e.Violation() {
				violations++
			}
			if e.TemplateName != "ima-ng" || e.PCR != 10 {
				t.Errorf("entry %d: %s in PCR%d", e.Num, e.TemplateName, e.PCR)
			}
		}
		if l.Len() != want || violations != c.violations {
			t.Errorf("IMAEntries %d: %d entries, %d violations; want %d, %d", c.entries, l.Len(), violations, want, c.violations)
		}
		if !strings.Contains(tpm.Name(), "IMA entries") {
			t.Errorf("Name() %q does not say the IMA list's size", tpm.Name())
		}
		tpm.Close()
	}
	for _, n := range []int{-1, MaxIMAEntries + 1} {
		if _, err := NewTPM(TPMConfig{Seed: 1, IMAEntries: n}); err == nil {
			t.Errorf("IMAEntries %d: no error", n)
		}
	}
}

// The list grows while the machine runs: appended entries extend PCR 10,
// what was returned before does not change, and a parser kept at the old
// end picks up exactly the new entries.
func TestAppendIMA(t *testing.T) {
	tpm := newTPM(t, TPMConfig{Seed: 3, IMAEntries: 30})
	ctx := context.Background()
	before := imaListOf(t, tpm)
	kept := bytes.Clone(before)
	p, _ := ima.NewParser(ima.Options{})
	if _, err := p.Append(before); err != nil {
		t.Fatal(err)
	}
	if err := tpm.AppendIMA(ctx, "/usr/bin/bash", "/usr/bin/ls", "/usr/bin/with space"); err != nil {
		t.Fatal(err)
	}
	after := imaListOf(t, tpm)
	if !bytes.Equal(before, kept) || !bytes.Equal(after[:len(before)], before) {
		t.Fatal("appending changed the list's earlier bytes")
	}
	n, err := p.Append(after[p.Offset():])
	if err != nil || n != 3 || p.Len() != 33 {
		t.Fatalf("the parser picked up %d entries (%v), has %d", n, err, p.Len())
	}
	if f, _ := p.List().Entry(33).Fields(p.List().Order); f[1].String() != "/usr/bin/with space" {
		t.Errorf("entry 33 measures %v", f)
	}
	checkIMA(t, tpm)

	// Readers while it grows (run with -race).
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := range 40 {
			if err := tpm.AppendIMA(ctx, "/tmp/f"+strings.Repeat("x", i)); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		p, _ := ima.NewParser(ima.Options{})
		for p.Len() < 73 {
			list, err := tpm.IMAList()
			if err != nil {
				t.Error(err)
				return
			}
			if _, err := p.Append(list[p.Offset():]); err != nil {
				t.Error(err)
				return
			}
			if _, err := tpm.Registers(ctx); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	wg.Wait()
	if l := checkIMA(t, tpm); l.Len() != 73 {
		t.Errorf("%d entries, want 73", l.Len())
	}
	tpm.Close()
	if err := tpm.AppendIMA(ctx, "/late"); err == nil {
		t.Error("AppendIMA on a closed TPM: no error")
	}
}

func TestIMADeterministic(t *testing.T) {
	listOf := func(seed int64) []byte {
		tpm := newTPM(t, TPMConfig{Seed: seed, IMAEntries: 20})
		defer tpm.Close()
		return imaListOf(t, tpm)
	}
	a, b, c := listOf(5), listOf(5), listOf(6)
	if !bytes.Equal(a, b) || bytes.Equal(a, c) {
		t.Error("one seed gave two lists, or two seeds one")
	}
}

// The host tree holds the list where securityfs has it, and its PCR 10;
// AppendHostIMA grows the list in place.
func TestHostTreeIMA(t *testing.T) {
	dir := t.TempDir()
	exp, err := WriteHostTree(dir, HostConfig{Seed: 9, IMAEntries: 25})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, IMAListPath)
	list, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	replayedPCR10 := func(b []byte) eventlog.Bank {
		t.Helper()
		l, err := ima.Parse(b, ima.Options{})
		if err != nil {
			t.Fatal(err)
		}
		bank, err := ima.Replay(l)
		if err != nil {
			t.Fatal(err)
		}
		return bank
	}
	want, err := exp.IMABank()
	if err != nil {
		t.Fatal(err)
	}
	if !replayedPCR10(list).Equal(want) || len(exp.IMA) != 1 {
		t.Fatalf("expected IMA registers %v do not match the list's replay", exp.IMA)
	}
	if _, ok := exp.TPM["PCR10"]; ok {
		t.Error("the TPM log's expected registers list PCR10, which only the IMA list extends")
	}

	// A reader that has the file open reads the new entries on from where
	// it stopped, as from securityfs.
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p, _ := ima.NewParser(ima.Options{})
	buf := make([]byte, 1<<16)
	readOn := func() {
		for {
			n, _ := f.Read(buf)
			if n == 0 {
				return
			}
			if _, err := p.Append(bytes.Clone(buf[:n])); err != nil {
				t.Fatal(err)
			}
		}
	}
	readOn()
	exp2, err := AppendHostIMA(dir, 5)
	if err != nil {
		t.Fatal(err)
	}
	readOn()
	if p.Len() != 30 {
		t.Fatalf("the open file gave %d entries after the append, want 30", p.Len())
	}
	grown, _ := os.ReadFile(path)
	onDisk, err := ReadExpectedRegisters(filepath.Join(dir, ExpectedRegistersFile))
	if err != nil {
		t.Fatal(err)
	}
	want2, _ := onDisk.IMABank()
	if !replayedPCR10(grown).Equal(want2) || !want2.Equal(mustBank(t, exp2)) || want2.Equal(want) {
		t.Error("after the append, the expected PCR 10 is not the grown list's replay")
	}
	if !bytes.Equal(grown[:len(list)], list) {
		t.Error("the append changed the list's earlier bytes")
	}
	if onDisk.TPM == nil || onDisk.TDX == nil {
		t.Error("the append lost the other expected registers")
	}

	// A tree whose expectations do not match its list is not appended to.
	onDisk.IMA["PCR10"]["sha1"] = strings.Repeat("00", 20)
	js, _ := json.Marshal(onDisk)
	if err := os.WriteFile(filepath.Join(dir, ExpectedRegistersFile), js, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := AppendHostIMA(dir, 1); err == nil || !strings.Contains(err.Error(), "replays to") {
		t.Errorf("appending to a tree that disagrees with itself: %v", err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(after, grown) {
		t.Error("a refused append changed the list")
	}
	for _, n := range []int{0, -2} {
		if _, err := AppendHostIMA(dir, n); err == nil {
			t.Errorf("AppendHostIMA(%d): no error", n)
		}
	}
	if _, err := AppendHostIMA(t.TempDir(), 1); err == nil {
		t.Error("AppendHostIMA on an empty directory: no error")
	}
}

func mustBank(t *testing.T, e *ExpectedRegisters) eventlog.Bank {
	t.Helper()
	b, err := e.IMABank()
	if err != nil {
		t.Fatal(err)
	}
	return b
}
