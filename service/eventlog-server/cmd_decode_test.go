package main

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"github.com/ccnp-eventlog/ccnp-eventlog/internal/corpus"
)

// decodedEvent is the part of a CCNP JSON event this test replays from.
type decodedEvent struct {
	Etype      uint32
	Event      []byte
	EventNum   int
	Register   string
	DigestsHex map[string]string
}

type decodedLog struct {
	Header struct {
		decodedEvent
		Address uint64
		SpecID  json.RawMessage
	}
	EventLogs   []decodedEvent
	Kind        string
	TotalEvents int
}

// replayDecoded replays the registers from decode's output alone, the way a
// verifier reading the file would: EV_NO_ACTION skipped, StartupLocality
// setting PCR0's start, the header replayed only in a legacy log (which has
// no Spec ID).
func replayDecoded(t *testing.T, d *decodedLog) map[string]map[string]string {
	t.Helper()
	hashes := map[string]func() hash.Hash{"sha1": sha1.New, "sha256": sha256.New, "sha384": sha512.New384, "sha512": sha512.New}
	regs := map[string]map[string][]byte{}
	var locality byte
	events := d.EventLogs
	if d.Header.SpecID == nil {
		events = append([]decodedEvent{d.Header.decodedEvent}, events...)
	}
	for _, e := range events {
		if e.Etype == 3 { // EV_NO_ACTION
			if sig := "StartupLocality\x00"; e.Register == "PCR0" && len(e.Event) > len(sig) && string(e.Event[:len(sig)]) == sig {
				locality = e.Event[len(sig)]
			}
			continue
		}
		for alg, hexDigest := range e.DigestsHex {
			newHash := hashes[alg]
			digest, err := hex.DecodeString(hexDigest)
			if newHash == nil || err != nil {
				t.Fatalf("event %d: digest %s %q", e.EventNum, alg, hexDigest)
			}
			if regs[e.Register] == nil {
				regs[e.Register] = map[string][]byte{}
			}
			old := regs[e.Register][alg]
			if old == nil {
				old = make([]byte, newHash().Size())
				if e.Register == "PCR0" {
					old[len(old)-1] = locality
				}
			}
			h := newHash()
			h.Write(old)
			h.Write(digest)
			regs[e.Register][alg] = h.Sum(nil)
		}
	}
	out := map[string]map[string]string{}
	for reg, algs := range regs {
		out[reg] = map[string]string{}
		for alg, v := range algs {
			out[reg][alg] = hex.EncodeToString(v)
		}
	}
	return out
}

// TestDecodeCorpus decodes every corpus log and replays the registers from
// the JSON: they must equal expected.json, which shows the output carries
// every measured event, in order, with its digests and register.
func TestDecodeCorpus(t *testing.T) {
	expected := corpus.Expected(t)
	for _, name := range slices.Sorted(maps.Keys(expected)) {
		want := expected[name]
		t.Run(name, func(t *testing.T) {
			status, stdout, stderr := runCmd(runDecode, corpus.Path(t, name))
			if status != 0 || stderr != "" {
				t.Fatalf("exit status %d, stderr %q", status, stderr)
			}
			var d decodedLog
			if err := json.Unmarshal([]byte(stdout), &d); err != nil {
				t.Fatalf("output is not JSON: %v", err)
			}
			wantKind := map[bool]string{true: "TDX", false: "TPM"}[strings.HasPrefix(name, "tdx/")]
			if d.Kind != wantKind || d.TotalEvents != want.EventsInclHeader-1 || len(d.EventLogs) != d.TotalEvents {
				t.Errorf("Kind %s, %d of %d events; want %s and %d", d.Kind, len(d.EventLogs), d.TotalEvents, wantKind, want.EventsInclHeader-1)
			}
			for i, e := range d.EventLogs {
				if e.EventNum != i+1 {
					t.Fatalf("event %d is numbered %d", i+1, e.EventNum)
				}
			}
			if got, want := replayDecoded(t, &d), expectedRegisters(t, name, want); !maps.EqualFunc(got, want, maps.Equal) {
				t.Errorf("registers replayed from the output:\n%v\nwant\n%v", got, want)
			}
		})
	}
}

func TestDecodeTable(t *testing.T) {
	table := corpus.Path(t, "tdx/ovmf-64k.table.bin")
	area := corpus.Path(t, "tdx/ovmf-64k.data.bin")
	const lasa, laml = 0x7d649000, 64 << 10

	status, stdout, stderr := runCmd(runDecode, "--table", table)
	if status != 0 {
		t.Fatalf("exit status %d: %s", status, stderr)
	}
	var tab struct {
		Revision   uint8
		OEMID      string
		CCType     uint8
		CCTypeName string
		LAML, LASA uint64
	}
	dec := json.NewDecoder(strings.NewReader(stdout))
	if err := dec.Decode(&tab); err != nil {
		t.Fatal(err)
	}
	if tab.CCType != 2 || tab.CCTypeName != "TDX" || tab.LAML != laml || tab.LASA != lasa || tab.OEMID != "INTEL" {
		t.Errorf("table %+v", tab)
	}
	if dec.More() {
		t.Errorf("--table alone printed more than the table")
	}

	// With FILE, before or after the flag: the table and the log area.
	for _, args := range [][]string{{"--table", table, area}, {area, "--table", table}} {
		status, stdout, stderr := runCmd(runDecode, args...)
		if status != 0 {
			t.Fatalf("%v: exit status %d: %s", args, status, stderr)
		}
		var both struct {
			Table    struct{ LAML, LASA uint64 }
			EventLog decodedLog
		}
		if err := json.Unmarshal([]byte(stdout), &both); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		if both.Table.LASA != lasa || both.EventLog.Header.Address != lasa {
			t.Errorf("%v: LASA %#x, header Address %#x, want %#x", args, both.Table.LASA, both.EventLog.Header.Address, lasa)
		}
		if both.EventLog.Kind != "TDX" || len(both.EventLog.EventLogs) != 27 || both.EventLog.EventLogs[0].Register != "RTMR0" {
			t.Errorf("%v: %s log of %d events", args, both.EventLog.Kind, len(both.EventLog.EventLogs))
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	dir := t.TempDir()
	area := corpus.Read(t, "tdx/cos-113-tdx.data.bin")
	l, err := eventlog.ParseArea(area)
	if err != nil {
		t.Fatal(err)
	}
	// Event 5 with a digest algorithm the Spec ID event does not list: its
	// size, and so the rest of the log, is unknown.
	e5 := l.Events[4].Offset
	bad := bytes.Clone(area)
	bad[e5+12] = 0x0B // sha256
	where := fmt.Sprintf("event 5 at byte offset %d", e5)
	badFile := filepath.Join(dir, "bad.bin")
	if err := os.WriteFile(badFile, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	table := corpus.Path(t, "tdx/cos-113-tdx.table.bin")
	for _, tc := range []struct {
		name   string
		args   []string
		status int
		stderr string
	}{
		{"unknown algorithm", []string{badFile}, 1, "bad.bin: malformed event log: " + where + ": digest 1 uses algorithm 0x000b"},
		{"with its table", []string{"--table", table, badFile}, 1, where},
		{"a log as the table", []string{"--table", badFile}, 1, `bad.bin: malformed CCEL table at byte offset 0: signature is "\x01\x00\x00\x00", not "CCEL"`},
		{"a table as the log", []string{table}, 1, "table.bin: malformed event log: event 0 at byte offset 0"},
		{"missing table", []string{"--table", filepath.Join(dir, "none")}, 1, "no such file"},
		{"nothing to decode", nil, 2, "want one FILE (or --table TABLE), got 0"},
		{"two files", []string{badFile, table}, 2, "got 2"},
		{"unknown flag", []string{"--json", badFile}, 2, "flag provided but not defined: -json"},
		{"help", []string{"--help"}, 0, "usage: eventlog-server decode"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, stdout, stderr := runCmd(runDecode, tc.args...)
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
