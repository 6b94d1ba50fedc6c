package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog/ima"
	"github.com/ccnp-eventlog/ccnp-eventlog/hwsource"
	"github.com/ccnp-eventlog/ccnp-eventlog/simulator"
)

func TestFakehost(t *testing.T) {
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	code := run([]string{"--out", dir, "--seed", "5", "--tdx-events", "70", "--tpm-events", "80", "--area-size", "131072", "--tdx-live=false"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "tdx: [RTMR0 RTMR1 RTMR2]") || !strings.Contains(stdout.String(), "PCR9 PCR14]") {
		t.Errorf("output does not list the expected registers in order:\n%s", stdout.String())
	}
	area, err := os.ReadFile(filepath.Join(dir, hwsource.CCELDataPath))
	if err != nil {
		t.Fatal(err)
	}
	l, err := eventlog.ParseArea(area)
	if err != nil || len(area) != 131072 || len(l.Events) != 70 {
		t.Errorf("CCEL area of %d bytes with %v events (%v), want 131072 bytes, 70 events", len(area), len(l.Events), err)
	}
	tpmLog, err := os.ReadFile(filepath.Join(dir, hwsource.TPMLogPath))
	if err != nil {
		t.Fatal(err)
	}
	if l, err := eventlog.Parse(tpmLog); err != nil || len(l.Events) != 80 {
		t.Errorf("TPM log: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, hwsource.RTMRDir)); !os.IsNotExist(err) {
		t.Errorf("--tdx-live=false wrote RTMR files")
	}
	if _, err := simulator.ReadExpectedRegisters(filepath.Join(dir, simulator.ExpectedRegistersFile)); err != nil {
		t.Error(err)
	}
}

func TestFakehostErrors(t *testing.T) {
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "--out DIR is required"},
		{[]string{"--out", t.TempDir(), "extra"}, 2, "no arguments"},
		{[]string{"--out", t.TempDir(), "--seed", "x"}, 2, "invalid value"},
		{[]string{"--out", t.TempDir(), "--tdx-events", "900"}, 1, "more than the 65536-byte log area"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(tt.args, &stdout, &stderr)
		if code != tt.code || !strings.Contains(stderr.String(), tt.want) {
			t.Errorf("fakehost %q: exit %d, stderr %q; want exit %d saying %q", tt.args, code, stderr.String(), tt.code, tt.want)
		}
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"--help"}, &stdout, &stderr); code != 0 || !strings.Contains(stderr.String(), "-area-size") {
		t.Errorf("--help: exit %d, output %q", code, stderr.String())
	}
}

// TestFakehostWithoutCgo: a static (CGO_ENABLED=0) build cannot run the C
// TPM simulator; it must say so, not fail obscurely.
func TestFakehostWithoutCgo(t *testing.T) {
	if testing.Short() {
		t.Skip("builds fakehost without cgo")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to build with")
	}
	bin := filepath.Join(t.TempDir(), "fakehost")
	build := exec.Command(goTool, "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(bin, "--out", t.TempDir())
	cmd.Stderr = &stderr
	err = cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(stderr.String(), "built without cgo") {
		t.Errorf("fakehost built without cgo: %v, stderr %q; want exit 1 saying it needs cgo", err, stderr.String())
	}
}

// The tree's IMA list, and --ima-append growing it in place.
func TestFakehostIMA(t *testing.T) {
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	if code := run([]string{"--out", dir, "--seed", "4", "--ima-entries", "12"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "IMA list of 12 entries") || !strings.Contains(stdout.String(), "ima: [PCR10]") {
		t.Errorf("output does not tell the IMA list:\n%s", stdout.String())
	}
	path := filepath.Join(dir, simulator.IMAListPath)
	parse := func() *ima.List {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		l, err := ima.Parse(b, ima.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	if l := parse(); l.Len() != 12 {
		t.Fatalf("%d entries, want 12", l.Len())
	}
	stdout.Reset()
	if code := run([]string{"--out", dir, "--ima-append", "3"}, &stdout, &stderr); code != 0 {
		t.Fatalf("--ima-append: exit %d: %s", code, stderr.String())
	}
	l := parse()
	exp, err := simulator.ReadExpectedRegisters(filepath.Join(dir, simulator.ExpectedRegistersFile))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := exp.IMABank()
	got, _ := ima.Replay(l)
	if l.Len() != 15 || !got.Equal(want) || !strings.Contains(stdout.String(), "appended 3 entries") {
		t.Errorf("after --ima-append 3: %d entries, replay %v, expected %v; output %q", l.Len(), got, want, stdout.String())
	}

	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--out", t.TempDir(), "--ima-append", "2"}, 1, "expected-registers.json"},
		{[]string{"--out", dir, "--ima-append", "-1"}, 1, "outside 1.."},
		{[]string{"--out", dir, "--ima-append", "1", "--kernel", "6.16"}, 2, "no --serve, --serve-tpm or --kernel"},
		{[]string{"--out", t.TempDir(), "--ima-entries", "-5"}, 1, "IMA entries is outside"},
	} {
		stderr.Reset()
		if code := run(tt.args, &stdout, &stderr); code != tt.code || !strings.Contains(stderr.String(), tt.want) {
			t.Errorf("fakehost %q: exit %d, stderr %q; want exit %d saying %q", tt.args, code, stderr.String(), tt.code, tt.want)
		}
	}
}
