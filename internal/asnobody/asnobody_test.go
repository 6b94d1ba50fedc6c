package asnobody_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ccnp-eventlog/ccnp-eventlog/internal/asnobody"
)

// childEnv marks the test binary run by TestExec: the Child tests below do
// their part only there.
const childEnv = "ASNOBODY_TEST_CHILD=1"

func inChild(t *testing.T) {
	if os.Getenv("ASNOBODY_TEST_CHILD") == "" {
		t.Skip("run as nobody by TestExec")
	}
}

// TestChildPasses checks what the child gets: nobody's uid and gid, no
// supplementary groups, a TMPDIR of its own, the parent's working directory.
func TestChildPasses(t *testing.T) {
	inChild(t)
	if os.Geteuid() != asnobody.UID || os.Getegid() != asnobody.UID {
		t.Fatalf("running as %d:%d", os.Geteuid(), os.Getegid())
	}
	if groups, err := os.Getgroups(); err != nil || len(groups) != 0 {
		t.Errorf("supplementary groups %v (%v)", groups, err)
	}
	if err := os.WriteFile(filepath.Join(t.TempDir(), "f"), []byte("x"), 0o600); err != nil {
		t.Errorf("TMPDIR: %v", err)
	}
	if _, err := os.Stat("asnobody_test.go"); err != nil {
		t.Errorf("working directory: %v", err)
	}
}

func TestChildSkips(t *testing.T) {
	inChild(t)
	t.Skip("skipping, as a test that cannot run as nobody would")
}

func TestChildFails(t *testing.T) {
	inChild(t)
	t.Error("failing")
}

func TestChildSubtestSkips(t *testing.T) {
	inChild(t)
	t.Run("a", func(t *testing.T) {})
	t.Run("b", func(t *testing.T) { t.Skip("skipped subtest") })
}

func TestExec(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only root can run a process as nobody")
	}
	for _, tc := range []struct {
		tests []string
		want  string // in the error; "" for none
	}{
		{[]string{"TestChildPasses"}, ""},
		{[]string{"TestChildSkips"}, "--- SKIP: TestChildSkips"},
		{[]string{"TestChildSubtestSkips"}, "--- SKIP: TestChildSubtestSkips/b"},
		{[]string{"TestChildFails"}, "the child failed: exit status 1"},
		{[]string{"TestNoSuchTest"}, "without passing TestNoSuchTest: did it run?"},
		{[]string{"TestChildPasses", "TestNoSuchTest"}, "without passing TestNoSuchTest"},
		{[]string{"TestChild.*"}, "without passing TestChild.*"}, // names, not patterns
		{[]string{"TestChildSubtestSkips/a"}, "is not the name of a top-level test"},
		{nil, "no test named"},
	} {
		t.Run(strings.Join(tc.tests, ","), func(t *testing.T) {
			out, err := asnobody.Exec(context.Background(), []string{childEnv}, tc.tests...)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("error %v, want %q\n%s", err, tc.want, out)
			}
		})
	}
}

// TestRun: Run on a test that passes as nobody passes.
func TestRun(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only root can run a process as nobody")
	}
	asnobody.Run(t, []string{childEnv}, "TestChildPasses")
}
