package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The hand-made IMA lists of eventlog/ima, and what its independent
// generator (testdata/mklists.py, hashlib) says they hold.
var imaTestdata = filepath.Join("..", "..", "eventlog", "ima", "testdata", "handmade")

type imaExpected struct {
	Lists []struct {
		File    string
		HashAlg string `json:"hash_alg"`
		Entries []struct {
			Num          int
			TemplateHash string `json:"template_hash"`
			TemplateName string `json:"template_name"`
			Fields       map[string]string
		}
		PCR10 map[string]string `json:"pcr10"`
	}
}

func readIMAExpected(t *testing.T) imaExpected {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(imaTestdata, "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var e imaExpected
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatal(err)
	}
	return e
}

func TestDecodeIMA(t *testing.T) {
	for _, el := range readIMAExpected(t).Lists {
		args := []string{"--ima", filepath.Join(imaTestdata, el.File)}
		if el.HashAlg != "sha1" {
			args = append([]string{"--ima-hash", el.HashAlg}, args...)
		}
		status, stdout, stderr := runCmd(runDecode, args...)
		if status != 0 || stderr != "" {
			t.Fatalf("%s: status %d: %s", el.File, status, stderr)
		}
		var d struct {
			Kind                  string
			TemplateHashAlgorithm string
			TotalEntries          int
			Entries               []struct {
				EntryNum     int
				TemplateHash string
				TemplateName string
				Fields       map[string]string
			}
		}
		if err := json.Unmarshal([]byte(stdout), &d); err != nil {
			t.Fatalf("%s: %v", el.File, err)
		}
		if d.Kind != "IMA" || d.TemplateHashAlgorithm != el.HashAlg || d.TotalEntries != len(el.Entries) || len(d.Entries) != len(el.Entries) {
			t.Fatalf("%s: %s %s %d entries", el.File, d.Kind, d.TemplateHashAlgorithm, len(d.Entries))
		}
		for i, want := range el.Entries {
			got := d.Entries[i]
			if got.EntryNum != want.Num || got.TemplateHash != want.TemplateHash || got.TemplateName != want.TemplateName || fmt.Sprint(got.Fields) != fmt.Sprint(want.Fields) {
				t.Errorf("%s entry %d: %+v, want %+v", el.File, i+1, got, want)
			}
		}
	}
}

func TestReplayIMA(t *testing.T) {
	dir := t.TempDir()
	for _, el := range readIMAExpected(t).Lists {
		path := filepath.Join(imaTestdata, el.File)
		args := []string{"--ima", path}
		if el.HashAlg != "sha1" {
			// A per-bank list says its algorithm by its securityfs name.
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			path = filepath.Join(dir, "binary_runtime_measurements_"+el.HashAlg)
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			args = []string{"--ima", path}
		}
		status, stdout, stderr := runCmd(runReplay, args...)
		if status != 0 || stderr != "" {
			t.Fatalf("%s: status %d: %s", el.File, status, stderr)
		}
		want := fmt.Sprintf("{\"entries\": %d, \"registers\": {\n  \"PCR10\": {\"sha1\": %q, \"sha256\": %q}\n}}\n", len(el.Entries), el.PCR10["sha1"], el.PCR10["sha256"])
		if stdout != want {
			t.Errorf("%s:\n%s\nwant\n%s", el.File, stdout, want)
		}
	}
}

func TestIMACommandErrors(t *testing.T) {
	dir := t.TempDir()
	list, err := os.ReadFile(filepath.Join(imaTestdata, "mixed-le.bin"))
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	// Entry 3 starts at byte 212 (see expected.json): its PCR made 99.
	bad := append([]byte(nil), list...)
	bad[212] = 99
	damaged := write("damaged", bad)
	torn := write("torn", list[:300])
	// Entry 2's file name changed (its last byte before the NUL that ends
	// the entry at 211): its template hash no longer fits.
	changed := append([]byte(nil), list...)
	changed[210] ^= 1
	tampered := write("tampered", changed)

	for _, tc := range []struct {
		name   string
		cmd    func([]string, ...string) (int, string, string)
		args   []string
		status int
		stdout string // a part
		stderr string // a part
	}{
		{"damaged decode", decodeCmd, []string{"--ima", damaged}, 1, "", "damaged: malformed IMA measurement list: entry 3 at byte offset 212: PCR index 99 is past 63"},
		{"damaged replay", replayCmd, []string{"--ima", damaged}, 1, "", "entry 3 at byte offset 212"},
		{"torn decode", decodeCmd, []string{"--ima", torn}, 0, `"TotalEntries":2,`, "the last 88 bytes are an incomplete entry"},
		{"torn replay", replayCmd, []string{"--ima", torn}, 0, `{"entries": 2,`, "incomplete entry"},
		{"tampered replay", replayCmd, []string{"--ima", tampered}, 0, `{"entries": 13,`, "warning: IMA measurement list entry 2 at byte offset 101: the template hash is"},
		{"unknown hash", decodeCmd, []string{"--ima", "--ima-hash", "md4", damaged}, 1, "", `--ima-hash "md4": not an algorithm name`},
		{"sha256 read as sha1", replayCmd, []string{"--ima", write("binary_runtime_measurements", mustRead(t, filepath.Join(imaTestdata, "mixed-sha256-le.bin")))}, 1, "", "malformed IMA measurement list"},
		{"ima and tdx", replayCmd, []string{"--ima", "--tdx", damaged}, 2, "", "--ima and --tdx"},
		{"ima-hash alone", decodeCmd, []string{"--ima-hash", "sha1", damaged}, 2, "", "--ima-hash goes with --ima"},
		{"ima and table", decodeCmd, []string{"--ima", "--table", damaged, damaged}, 2, "", "--ima takes one FILE"},
		{"missing", decodeCmd, []string{"--ima", filepath.Join(dir, "nothing")}, 1, "", "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, stdout, stderr := tc.cmd(tc.args)
			if status != tc.status || !strings.Contains(stdout, tc.stdout) || !strings.Contains(stderr, tc.stderr) {
				t.Errorf("status %d, stdout %.200q, stderr %q; want %d, %q, %q", status, stdout, stderr, tc.status, tc.stdout, tc.stderr)
			}
			if status == 1 && (strings.Count(stderr, "\n") != 1 || stdout != "") {
				t.Errorf("a failure prints one line on stderr and nothing on stdout; got %q and %q", stderr, stdout)
			}
		})
	}
}

func decodeCmd(args []string, _ ...string) (int, string, string) { return runCmd(runDecode, args...) }
func replayCmd(args []string, _ ...string) (int, string, string) { return runCmd(runReplay, args...) }

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
