package main

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/ccnp-eventlog/ccnp-eventlog/internal/testvectors"
	"github.com/ccnp-eventlog/ccnp-eventlog/simulator"
)

const corpusTDX = "../../eventlog/testdata/corpus/tdx/"

func writeTemp(t *testing.T, name string, b []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// toV5 rewrites a v4 quote as v5 with a TDX 1.5 body (the 1.0 body and 64
// more bytes).
func toV5(v4 []byte) []byte {
	q := bytes.Clone(v4[:48])
	binary.LittleEndian.PutUint16(q, 5)
	q = binary.LittleEndian.AppendUint16(q, 3)
	q = binary.LittleEndian.AppendUint32(q, 648)
	q = append(q, v4[48:48+584]...)
	q = append(q, make([]byte, 64)...)
	return append(q, v4[48+584:]...)
}

func rowStatus(out, register string) string {
	m := regexp.MustCompile(`(?m)^` + register + `\s+sha384\s+\d+\s+(\w+)\s`).FindStringSubmatch(out)
	if m == nil {
		return ""
	}
	return m[1]
}

// TestVerifyQuoteOffline: verify --quote --log compares a log file with a
// quote file, with the socket verify's table and exit statuses.
func TestVerifyQuoteOffline(t *testing.T) {
	cos113Quote := testvectors.ModuleFile(t, testvectors.GoTDXGuest, testvectors.COS113Quote)
	sprQuote := testvectors.ModuleFile(t, testvectors.GoTDXGuest, testvectors.SPRQuote)
	tree := t.TempDir()
	if _, err := simulator.WriteHostTree(tree, simulator.HostConfig{Seed: 12, Kernel: simulator.Kernel68}); err != nil {
		t.Fatal(err)
	}
	treeLog := filepath.Join(tree, "sys/firmware/acpi/tables/data/CCEL")
	treeTable := filepath.Join(tree, "sys/firmware/acpi/tables/CCEL")
	simQuote, err := os.ReadFile(filepath.Join(tree, simulator.QuoteFile))
	if err != nil {
		t.Fatal(err)
	}
	rtmr2Changed := bytes.Clone(simQuote)
	rtmr2Changed[48+328+2*48] ^= 0x80

	for _, tc := range []struct {
		name string
		args []string
		code int
		// status of RTMR0..2 in the table
		rows [3]string
		says []string
	}{
		{"cos-113 and its real quote, with the table",
			[]string{"--quote", cos113Quote, "--log", corpusTDX + "cos-113-tdx.data.bin", "--table", corpusTDX + "cos-113-tdx.table.bin"},
			0, [3]string{"MATCH", "MATCH", "MATCH"}, []string{"signature not checked", "TD quote v4", "MRTD dae67181d3d65e07", "verified: every register matches"}},
		{"cos-113 log area without its table",
			[]string{"--quote", cos113Quote, "--log", corpusTDX + "cos-113-tdx.data.bin"},
			0, [3]string{"MATCH", "MATCH", "MATCH"}, nil},
		{"a raw TCG log of cos-113 with the OVMF duplicate separator: RTMR0 and RTMR1 differ",
			[]string{"--quote", cos113Quote, "--log", corpusTDX + "cos-113-dupe-separator.unpadded.bin"},
			1, [3]string{"MISMATCH", "MISMATCH", "MATCH"}, []string{"RTMR0 sha384:", "RTMR1 sha384:", "NOT VERIFIED"}},
		{"another machine's quote",
			[]string{"--quote", sprQuote, "--log", corpusTDX + "cos-113-tdx.data.bin"},
			1, [3]string{"MISMATCH", "MISMATCH", "MISMATCH"}, nil},
		{"the simulated TD's quote",
			[]string{"--quote", writeTemp(t, "q", simQuote), "--log", treeLog, "--table", treeTable},
			0, [3]string{"MATCH", "MATCH", "MATCH"}, nil},
		{"the simulated TD's quote as v5 with a TDX 1.5 body",
			[]string{"--quote", writeTemp(t, "q5", toV5(simQuote)), "--log", treeLog, "--table", treeTable},
			0, [3]string{"MATCH", "MATCH", "MATCH"}, []string{"TD quote v5 (TD report body 1.5"}},
		{"the simulated TD's TDREPORT",
			[]string{"--tdreport", filepath.Join(tree, simulator.ReportFile), "--log", treeLog, "--table", treeTable},
			0, [3]string{"MATCH", "MATCH", "MATCH"}, []string{"TDREPORT (version 0; MAC not checked)"}},
		{"one RTMR changed in the quote",
			[]string{"--quote", writeTemp(t, "q2", rtmr2Changed), "--log", treeLog, "--table", treeTable},
			1, [3]string{"MATCH", "MATCH", "MISMATCH"}, []string{"RTMR2 sha384:"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			code := verifyCmd(tc.args, &out)
			if code != tc.code {
				t.Errorf("exit %d, want %d:\n%s", code, tc.code, out.String())
			}
			for i, want := range tc.rows {
				if got := rowStatus(out.String(), "RTMR"+string(rune('0'+i))); got != want {
					t.Errorf("RTMR%d: %q, want %s:\n%s", i, got, want, out.String())
				}
			}
			for _, s := range tc.says {
				if !strings.Contains(out.String(), s) {
					t.Errorf("output does not say %q:\n%s", s, out.String())
				}
			}
		})
	}

	// Unreadable evidence or log: 3, promptly, whatever stands at the path.
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	log := corpusTDX + "cos-113-tdx.data.bin"
	for _, args := range [][]string{
		{"--quote", writeTemp(t, "junk", []byte("not a quote")), "--log", log},
		{"--quote", filepath.Join(t.TempDir(), "missing"), "--log", log},
		{"--quote", t.TempDir(), "--log", log},
		{"--quote", fifo, "--log", log},
		{"--quote", writeTemp(t, "big", make([]byte, 65<<10)), "--log", log},
		{"--tdreport", writeTemp(t, "r", simQuote), "--log", log},
		{"--quote", cos113Quote, "--log", writeTemp(t, "junk-log", []byte("not a log at all, not even close"))},
		{"--quote", cos113Quote, "--log", log, "--table", corpusTDX + "cos-113-tdx.data.bin"},
	} {
		var out bytes.Buffer
		if code := verifyCmd(args, &out); code != 3 {
			t.Errorf("%v: exit %d, want 3:\n%s", args, code, out.String())
		}
	}
	// Flags that do not go together: 2.
	for _, args := range [][]string{
		{"--quote", cos113Quote, "--tdreport", cos113Quote, "--log", log},
		{"--log", log},
		{"--table", log, "--quote", cos113Quote},
		{"--quote", cos113Quote, "--log", log, "--category", "tpm"},
	} {
		if code := verifyCmd(args, new(bytes.Buffer)); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}

// TestVerifyQuoteAgainstServer: verify --quote without --log sends the
// quote to the server, which compares it with its log (here the simulated
// TD on the 6.8 profile, whose own registers come from TDREPORTs).
func TestVerifyQuoteAgainstServer(t *testing.T) {
	s := startServer(t, "EVENTLOG_SIM_KERNEL=6.8")
	td, err := simulator.NewTDX(simulator.TDXConfig{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	quote := td.UnsignedQuote([64]byte{})
	var out bytes.Buffer
	if code := verifyCmd([]string{"--socket", s.socket, "--quote", writeTemp(t, "q", quote)}, &out); code != 0 {
		t.Errorf("exit %d:\n%s", code, out.String())
	}
	if !strings.Contains(out.String(), "registers: the request's TD quote v4") || !strings.Contains(out.String(), "signature not checked") {
		t.Errorf("output:\n%s", out.String())
	}
	quote[48+328] ^= 1 // RTMR0
	out.Reset()
	if code := verifyCmd([]string{"--socket", s.socket, "--quote", writeTemp(t, "q2", quote)}, &out); code != 1 || rowStatus(out.String(), "RTMR0") != "MISMATCH" {
		t.Errorf("RTMR0 changed: exit %d:\n%s", code, out.String())
	}
	// The live registers, from the simulated TD's TDREPORT.
	out.Reset()
	if code := verifyCmd([]string{"--socket", s.socket}, &out); code != 0 || !strings.Contains(out.String(), "live registers: TDREPORT from the simulated TD") {
		t.Errorf("live: exit %d:\n%s", code, out.String())
	}
}
