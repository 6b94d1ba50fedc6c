package tpm2eventlog_test

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"github.com/ccnp-eventlog/ccnp-eventlog/internal/corpus"
	"github.com/ccnp-eventlog/ccnp-eventlog/internal/tpm2eventlog"
)

func findTool(t *testing.T) string {
	t.Helper()
	tool, err := tpm2eventlog.Find()
	if err != nil {
		t.Skip(err)
	}
	return tool
}

// TestReadsABuiltLog: the events and PCRs tpm2_eventlog prints come back as
// written and as replayed, the data of a type it does not decode as hex.
func TestReadsABuiltLog(t *testing.T) {
	tool := findTool(t)
	algs := []eventlog.Alg{eventlog.AlgSHA1, eventlog.AlgSHA256}
	log := eventlog.AppendSpecIDHeader(nil, 0, algs)
	data := [][]byte{[]byte("post code"), []byte("an action"), {0xde, 0xad, 0xbe, 0xef}}
	types := []eventlog.EventType{eventlog.EvPostCode, eventlog.EvEFIAction, eventlog.EvEventTag}
	pcrs := []uint32{0, 4, 14}
	for i := range data {
		log = eventlog.AppendEvent2(log, pcrs[i], types[i], eventlog.Measure(data[i], algs), data[i])
	}
	out, err := tpm2eventlog.RunOn(context.Background(), tool, log)
	if err != nil {
		t.Fatal(err)
	}
	if out.Stderr != "" {
		t.Errorf("stderr: %s", out.Stderr)
	}
	if len(out.Events) != len(data)+1 || out.Events[0].EventNum != 0 || out.Events[0].EventType != "EV_NO_ACTION" {
		t.Fatalf("events: %+v", out.Events)
	}
	for i, e := range out.Events[1:] {
		if e.EventNum != i+1 || e.PCRIndex != pcrs[i] || e.EventType != types[i].String() || e.EventSize != len(data[i]) || len(e.Digests) != 2 {
			t.Errorf("event %d: %+v", i+1, e)
			continue
		}
		for j, d := range eventlog.Measure(data[i], algs) {
			if e.Digests[j].AlgorithmID != d.Alg.String() || e.Digests[j].Digest != hex.EncodeToString(d.Value) {
				t.Errorf("event %d digest %d: %+v, want %s %x", i+1, j, e.Digests[j], d.Alg, d.Value)
			}
		}
	}
	if got := out.Events[3].DataHex(); got != "deadbeef" {
		t.Errorf("EV_EVENT_TAG data printed as %q, want deadbeef", got)
	}
	// EV_EFI_ACTION's data is text: printed as such, not as hex.
	if got := out.Events[2]; got.DataHex() != "" || got.Event.Value != "an action" {
		t.Errorf("EV_EFI_ACTION data printed as %q, DataHex %q", got.Event.Value, got.DataHex())
	}
	l, err := eventlog.Parse(log)
	if err != nil {
		t.Fatal(err)
	}
	replayed, err := eventlog.Replay(l)
	if err != nil {
		t.Fatal(err)
	}
	for alg, regs := range replayed {
		if len(out.PCRs[alg.String()]) != len(regs) {
			t.Errorf("%s: tpm2_eventlog computed %v, we replay %d PCRs", alg, out.PCRs[alg.String()], len(regs))
		}
		for pcr, v := range regs {
			if got := out.PCRs[alg.String()][pcr]; got != hex.EncodeToString(v) {
				t.Errorf("%s PCR%d: %s, replay %x", alg, pcr, got, v)
			}
		}
	}
}

// TestDecodedFields: the fields of decoded event data are counted at any
// depth, and decoded data has no DataHex.
func TestDecodedFields(t *testing.T) {
	tool := findTool(t)
	out, err := tpm2eventlog.Run(context.Background(), tool, corpus.Path(t, "tpm/tpm_rhel8-uefi.bin"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range out.Events {
		if e.EventType != "EV_EFI_VARIABLE_DRIVER_CONFIG" {
			continue
		}
		n++
		if f := e.Fields(); f["UnicodeName"] != 1 || f["VariableName"] != 1 {
			t.Errorf("event %d: fields %v", e.EventNum, f)
		}
		if e.DataHex() != "" {
			t.Errorf("event %d: decoded data has DataHex %q", e.EventNum, e.DataHex())
		}
	}
	if n == 0 {
		t.Error("no EV_EFI_VARIABLE_DRIVER_CONFIG event: the log is not the one this test was written for")
	}
}

// script writes an executable shell script standing in for tpm2_eventlog.
func script(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tpm2_eventlog")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestFailures(t *testing.T) {
	for _, tc := range []struct {
		name, body, want, stderr string
	}{
		{"exit status", `echo "ERROR: cannot parse" >&2; echo "more" >&2; exit 3`, "exit status 3: ERROR: cannot parse", "ERROR: cannot parse\nmore\n"},
		{"not YAML", `echo "events: [oops"`, "printed YAML that does not parse", ""},
		{"a PCR without 0x", `printf 'pcrs:\n  sha1:\n    0 : 1234\n'`, `sha1 PCR0 is "1234"`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := tpm2eventlog.RunOn(context.Background(), script(t, tc.body), []byte("log"))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to say %q", err, tc.want)
			}
			if out == nil || out.Stderr != tc.stderr {
				t.Errorf("output %+v, want stderr %q", out, tc.stderr)
			}
		})
	}
}

// TestHangIsBounded: a decoder that never ends, with a child holding its
// output open, fails the run once the context ends, and both are killed.
func TestHangIsBounded(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	tool := script(t, "sleep 600 & echo $! >"+pidFile+"; exec sleep 600")
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := tpm2eventlog.RunOn(ctx, tool, []byte("log"))
	if err == nil || !strings.Contains(err.Error(), "deadline exceeded") {
		t.Errorf("error %v, want a deadline", err)
	}
	// WaitDelay (5s) is the most it waits for the orphan's pipe; the rest
	// is slack for a loaded machine.
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("Run returned after %v", d)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	child, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	// Killed, it is a zombie until init reaps it, or gone.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", child))
		if err != nil || strings.Contains(string(stat), ") Z ") {
			break
		}
		if time.Now().After(deadline) {
			syscall.Kill(child, syscall.SIGKILL)
			t.Fatalf("the decoder's child %d is still running", child)
		}
	}
	if tpm2eventlog.Timeout <= 0 || tpm2eventlog.Timeout > 5*time.Minute {
		t.Errorf("Timeout is %v", tpm2eventlog.Timeout)
	}
}
