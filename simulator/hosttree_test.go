package simulator

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"github.com/ccnp-eventlog/ccnp-eventlog/hwsource"
)

func TestWriteHostTree(t *testing.T) {
	cfg := HostConfig{Seed: 21, TDXEvents: 120, TPMEvents: 90, AreaSize: 128 << 10, TDXLive: true}
	dir := t.TempDir()
	exp, err := WriteHostTree(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	td, err := NewTDX(TDXConfig{Seed: 21, Events: 120, AreaSize: 128 << 10})
	if err != nil {
		t.Fatal(err)
	}
	read := func(name string) []byte {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o004 == 0 {
			t.Errorf("%s is not world-readable (%v): a non-root server could not read it", name, fi.Mode())
		}
		return b
	}
	if !bytes.Equal(read(hwsource.CCELTablePath), td.Table()) || !bytes.Equal(read(hwsource.CCELDataPath), td.Area()) {
		t.Errorf("the tree's CCEL files are not the simulated TD's")
	}
	for i := range 4 {
		got := read(filepath.Join(hwsource.RTMRDir, "rtmr"+strconv.Itoa(i)+":sha384"))
		if !bytes.Equal(got, td.rtmrs.Get(eventlog.AlgSHA384, uint32(i+1))) {
			t.Errorf("rtmr%d:sha384 = %x, want the TD's RTMR%d", i, got, i)
		}
	}
	tpmLog := read(hwsource.TPMLogPath)
	l, err := eventlog.Parse(tpmLog)
	if err != nil || len(l.Events) != 90 {
		t.Fatalf("TPM log: %v, want 90 events", err)
	}

	// expected-registers.json holds exactly the registers each log
	// extends, by name, as WriteHostTree returned them.
	onDisk, err := ReadExpectedRegisters(filepath.Join(dir, ExpectedRegistersFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(onDisk.TDX) != 3 || onDisk.TDX["RTMR0"]["sha384"] == "" || len(onDisk.TPM) != 11 || onDisk.TPM["PCR14"]["sha256"] == "" {
		t.Errorf("expected registers: %d TDX registers, %d TPM registers; want RTMR0..2 and 11 PCRs", len(onDisk.TDX), len(onDisk.TPM))
	}
	tdxLog, err := eventlog.Parse(td.Log())
	if err != nil {
		t.Fatal(err)
	}
	for kind, log := range map[eventlog.Kind]*eventlog.Log{eventlog.TDX: tdxLog, eventlog.TPM: l} {
		replayed, err := eventlog.Replay(log)
		if err != nil {
			t.Fatal(err)
		}
		fromFile, err := onDisk.Bank(kind)
		if err != nil {
			t.Fatal(err)
		}
		returned, err := exp.Bank(kind)
		if err != nil {
			t.Fatal(err)
		}
		if !fromFile.Equal(replayed) || !returned.Equal(replayed) {
			t.Errorf("%s: expected registers differ from the log's replay", kind)
		}
	}

	// The same seed writes the same tree.
	again := t.TempDir()
	if _, err := WriteHostTree(again, cfg); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{hwsource.CCELTablePath, hwsource.CCELDataPath, hwsource.TPMLogPath, ExpectedRegistersFile} {
		b, err := os.ReadFile(filepath.Join(again, name))
		if err != nil || !bytes.Equal(b, read(name)) {
			t.Errorf("%s differs between two trees of seed 21 (%v)", name, err)
		}
	}
}

func TestWriteHostTreeWithoutLiveRTMRs(t *testing.T) {
	dir := t.TempDir()
	if _, err := WriteHostTree(dir, HostConfig{Seed: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, hwsource.RTMRDir)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("RTMR files written without TDXLive (%v)", err)
	}
}

func TestWriteHostTreeErrors(t *testing.T) {
	// A log that does not fit its area fails before anything is written.
	dir := t.TempDir()
	if _, err := WriteHostTree(dir, HostConfig{Seed: 1, TDXEvents: 5000}); err == nil {
		t.Fatal("5000 events in a 64 KiB area were accepted")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("a failed WriteHostTree left %d entries in the tree", len(entries))
	}
	// A tree that cannot be written is an error, not a partial success.
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := WriteHostTree(file, HostConfig{Seed: 1}); err == nil {
		t.Error("writing a tree under a regular file succeeded")
	}
	// And the simulator was released each time.
	newTPM(t, TPMConfig{Seed: 1})
}
