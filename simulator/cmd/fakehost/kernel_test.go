package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ccnp-eventlog/ccnp-eventlog/hwsource"
	"github.com/ccnp-eventlog/ccnp-eventlog/simulator"
)

// TestKernelProfiles: --kernel lays the TD's files out as that kernel
// generation shows them.
func TestKernelProfiles(t *testing.T) {
	for _, tc := range []struct {
		kernel        string
		present, none []string
	}{
		{"6.16", []string{hwsource.CCELDataPath, hwsource.RTMRPath(3), hwsource.MRTDPath}, []string{hwsource.StagedCCELDataPath}},
		{"6.8", []string{hwsource.CCELDataPath}, []string{hwsource.RTMRDir, hwsource.StagedCCELDataPath}},
		{"staged", []string{hwsource.StagedCCELTablePath, hwsource.StagedCCELDataPath}, []string{hwsource.CCELDataPath, hwsource.CCELTablePath, hwsource.RTMRDir}},
	} {
		t.Run(tc.kernel, func(t *testing.T) {
			dir := t.TempDir()
			var stdout, stderr bytes.Buffer
			if code := run([]string{"--out", dir, "--kernel", tc.kernel}, &stdout, &stderr); code != 0 {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			for _, p := range append(tc.present, simulator.QuoteFile, simulator.ReportFile) {
				if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
					t.Errorf("%s: %v", p, err)
				}
			}
			for _, p := range tc.none {
				if _, err := os.Stat(filepath.Join(dir, p)); err == nil {
					t.Errorf("%s is in a %s tree", p, tc.kernel)
				}
			}
			if !strings.Contains(stdout.String(), "kernel profile "+tc.kernel) {
				t.Errorf("output does not name the profile:\n%s", stdout.String())
			}
		})
	}
	for _, args := range [][]string{
		{"--kernel", "5.4"},
		{"--serve"},
		{"--kernel", "6.16", "--serve"},
	} {
		var stderr bytes.Buffer
		if code := run(append([]string{"--out", t.TempDir()}, args...), new(bytes.Buffer), &stderr); code != 2 {
			t.Errorf("%v: exit %d, want 2 (%s)", args, code, stderr.String())
		}
	}
}
