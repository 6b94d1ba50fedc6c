package main

import (
	"bytes"
	"encoding/json"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/ccnp-eventlog/ccnp-eventlog/internal/corpus"
)

// expectedRegisters names expected.json's registers as replay does:
// register name -> algorithm -> hex.
func expectedRegisters(t *testing.T, name string, e corpus.Expectation) map[string]map[string]string {
	t.Helper()
	want := map[string]map[string]string{}
	for alg, regs := range e.Replay {
		for idx, v := range regs {
			n, err := strconv.Atoi(idx)
			if err != nil {
				t.Fatalf("expected.json: %s: register %q", name, idx)
			}
			reg := "PCR" + idx
			if strings.HasPrefix(name, "tdx/") {
				reg = "RTMR" + strconv.Itoa(n-1)
			}
			if want[reg] == nil {
				want[reg] = map[string]string{}
			}
			want[reg][alg] = v
		}
	}
	return want
}

// runCmd runs a subcommand's function and returns its exit status and output.
func runCmd(f func([]string, io.Writer, io.Writer) int, args ...string) (status int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	status = f(args, &out, &errOut)
	return status, out.String(), errOut.String()
}

// replayOutput is what replay prints.
type replayOutput struct {
	Events    int                          `json:"events"`
	Registers map[string]map[string]string `json:"registers"`
}

func TestReplayCorpus(t *testing.T) {
	expected := corpus.Expected(t)
	for _, name := range slices.Sorted(maps.Keys(expected)) {
		want := expected[name]
		file := corpus.Path(t, name)
		argSets := map[string][]string{"detected": {file}}
		if strings.HasPrefix(name, "tdx/") {
			argSets["--tdx"] = []string{"--tdx", file}
		}
		for how, args := range argSets {
			t.Run(name+"/"+how, func(t *testing.T) {
				status, stdout, stderr := runCmd(runReplay, args...)
				if status != 0 || stderr != "" {
					t.Fatalf("exit status %d, stderr %q", status, stderr)
				}
				var got replayOutput
				dec := json.NewDecoder(strings.NewReader(stdout))
				dec.DisallowUnknownFields()
				if err := dec.Decode(&got); err != nil {
					t.Fatalf("output is not the replay JSON: %v\n%s", err, stdout)
				}
				if got.Events != want.EventsInclHeader-1 {
					t.Errorf("events = %d, want %d", got.Events, want.EventsInclHeader-1)
				}
				wantRegs := expectedRegisters(t, name, want)
				if !maps.EqualFunc(got.Registers, wantRegs, maps.Equal) {
					t.Errorf("registers:\n%v\nwant\n%v", got.Registers, wantRegs)
				}
			})
		}
	}
}

// TestReplayOrder: registers come in index order (PCR2 before PCR10), and
// algorithms in the log's order.
func TestReplayOrder(t *testing.T) {
	status, stdout, _ := runCmd(runReplay, corpus.Path(t, "tpm/gdc-host.bin"))
	if status != 0 {
		t.Fatal(status)
	}
	if i, j := strings.Index(stdout, `"PCR9"`), strings.Index(stdout, `"PCR14"`); i < 0 || j < i {
		t.Errorf("PCR14 is not after PCR9:\n%s", stdout)
	}
	status, stdout, _ = runCmd(runReplay, corpus.Path(t, "tpm/tpm_rhel8-uefi.bin"))
	if status != 0 {
		t.Fatal(status)
	}
	if i, j, k := strings.Index(stdout, `"sha1"`), strings.Index(stdout, `"sha256"`), strings.Index(stdout, `"sha384"`); !(0 <= i && i < j && j < k) {
		t.Errorf("algorithms are not in Spec ID order (sha1, sha256, sha384):\n%.400s", stdout)
	}
}

func TestReplayErrors(t *testing.T) {
	dir := t.TempDir()
	log := corpus.Read(t, "tpm/gdc-host.bin")
	truncated := filepath.Join(dir, "truncated.bin")
	// gdc-host's event 12 starts at byte 3857 and ends after byte 5000.
	if err := os.WriteFile(truncated, log[:5000], 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.bin")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		args   []string
		status int
		stderr string // a part of the first line
	}{
		{"malformed", []string{truncated}, 1, "truncated.bin: malformed event log: event 12 at byte offset 3857: event size 6559 exceeds the 1093 bytes left"},
		{"empty", []string{empty}, 1, "event 0 at byte offset 0: the log is empty"},
		{"missing", []string{filepath.Join(dir, "nothing")}, 1, "no such file"},
		{"a directory", []string{dir}, 1, "is a directory"},
		{"no file", nil, 2, "want one FILE, got 0"},
		{"two files", []string{truncated, empty}, 2, "want one FILE, got 2"},
		{"unknown flag", []string{"--pcr", truncated}, 2, "flag provided but not defined: -pcr"},
		{"help", []string{"-h"}, 0, "usage: eventlog-server replay"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, stdout, stderr := runCmd(runReplay, tc.args...)
			if status != tc.status {
				t.Errorf("exit status %d, want %d (stderr %q)", status, tc.status, stderr)
			}
			if !strings.Contains(stderr, tc.stderr) {
				t.Errorf("stderr %q does not say %q", stderr, tc.stderr)
			}
			if status == 1 && (strings.Count(stderr, "\n") != 1 || stdout != "") {
				t.Errorf("a failure prints one line on stderr and nothing on stdout; got %q and %q", stderr, stdout)
			}
		})
	}
}

func TestCommandsRegistered(t *testing.T) {
	for _, name := range []string{"decode", "replay"} {
		if c, ok := commands[name]; !ok || c.run == nil || c.summary == "" {
			t.Errorf("subcommand %q is not registered", name)
		}
	}
}
