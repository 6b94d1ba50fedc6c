package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"github.com/ccnp-eventlog/ccnp-eventlog/hwsource"
	"github.com/ccnp-eventlog/ccnp-eventlog/simulator"
)

func TestGet(t *testing.T) {
	s := startServer(t)
	var out bytes.Buffer
	if code := get([]string{"--socket", s.socket, "--start", "2", "--count", "5"}, &out); code != 0 {
		t.Fatalf("exit %d", code)
	}
	path := strings.TrimSpace(out.String())
	if filepath.Dir(path) != s.outDir || !strings.HasSuffix(path, ".json") {
		t.Errorf("printed %q, want a JSON file in %s", path, s.outDir)
	}

	out.Reset()
	if code := get([]string{"--socket", s.socket, "--category", "tpm", "--start", "2", "--count", "5", "-o", "table"}, &out); code != 0 {
		t.Fatalf("exit %d", code)
	}
	rows := regexp.MustCompile(`(?m)^(\d+)\s+PCR\d+\s+EV_\w+\s+\d+\s+sha256:[0-9a-f]+`).FindAllStringSubmatch(out.String(), -1)
	if len(rows) != 5 || rows[0][1] != "2" || rows[4][1] != "6" {
		t.Errorf("table rows %v, want events 2..6:\n%s", rows, out.String())
	}

	out.Reset()
	if code := get([]string{"--socket", s.socket, "--start", "44", "-o", "json"}, &out); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if !strings.Contains(out.String(), `"EventNum":44`) || !strings.Contains(out.String(), `"Register":"RTMR`) {
		t.Errorf("json output: %.300s", out.String())
	}

	if code := get([]string{"--socket", s.socket, "--start", "45"}, &out); code != 1 {
		t.Errorf("start past the end: exit %d, want 1", code)
	}
	if code := get([]string{"--socket", s.socket, "--category", "sgx"}, &out); code != 2 {
		t.Errorf("unknown category: exit %d, want 2", code)
	}
}

func TestVerifyExitStatus(t *testing.T) {
	// Simulated hardware: every register matches.
	s := startServer(t)
	var out bytes.Buffer
	if code := verifyCmd([]string{"--socket", s.socket}, &out); code != 0 {
		t.Fatalf("exit %d:\n%s", code, out.String())
	}
	for _, want := range []string{"RTMR0", "RTMR1", "RTMR2", "MATCH", "verified: every register matches the log"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}

	// A fake host tree whose log was changed after measurement: mismatch.
	root := t.TempDir()
	if _, err := simulator.WriteHostTree(root, simulator.HostConfig{Seed: 2, TDXLive: true}); err != nil {
		t.Fatal(err)
	}
	area := filepath.Join(root, hwsource.CCELDataPath)
	b, _ := os.ReadFile(area)
	l, err := eventlog.ParseArea(b)
	if err != nil {
		t.Fatal(err)
	}
	l.Events[len(l.Events)-1].Digests[0].Value[0] ^= 1 // the last event: RTMR2 in a TDVF-like log
	os.WriteFile(area, b, 0o644)
	changed := startServer(t, "EVENTLOG_HWSOURCE=host", "EVENTLOG_ROOT="+root)
	out.Reset()
	if code := verifyCmd([]string{"--socket", changed.socket}, &out); code != 1 {
		t.Fatalf("changed log: exit %d, want 1:\n%s", code, out.String())
	}
	reg := eventlog.TDX.RegisterName(l.Events[len(l.Events)-1].Index)
	if !regexp.MustCompile(`(?m)^` + reg + `\s+sha384\s+\d+\s+MISMATCH`).MatchString(out.String()) {
		t.Errorf("%s is not named as mismatched:\n%s", reg, out.String())
	}

	// The corpus: no live registers, so nothing is claimed.
	corpus := t.TempDir()
	for from, to := range map[string]string{
		"cos-113-tdx.table.bin": hwsource.CCELTablePath,
		"cos-113-tdx.data.bin":  hwsource.CCELDataPath,
	} {
		b, err := os.ReadFile(filepath.Join("../../eventlog/testdata/corpus/tdx", from))
		if err != nil {
			t.Fatal(err)
		}
		os.MkdirAll(filepath.Dir(filepath.Join(corpus, to)), 0o755)
		os.WriteFile(filepath.Join(corpus, to), b, 0o644)
	}
	real := startServer(t, "EVENTLOG_HWSOURCE=host", "EVENTLOG_ROOT="+corpus)
	out.Reset()
	if code := verifyCmd([]string{"--socket", real.socket}, &out); code != verifyNotAvailable {
		t.Fatalf("corpus: exit %d, want %d:\n%s", code, verifyNotAvailable, out.String())
	}
	if !strings.Contains(out.String(), "live registers: not available: no live RTMRs") || strings.Contains(out.String(), " MATCH") {
		t.Errorf("corpus output:\n%s", out.String())
	}
	if n := strings.Count(out.String(), "not available"); n != 1 {
		t.Errorf("corpus output says \"not available\" %d times, want once:\n%s", n, out.String())
	}
}
