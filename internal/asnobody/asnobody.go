// Package asnobody runs tests of the running test binary again, as the
// unprivileged user nobody (uid and gid 65534), for tests of permission
// errors: root, which runs the tests here and in CI, is exempt from file
// modes. The parent runs the child with -test.v and checks that it ran and
// passed every test named, and skipped nothing: a child that ran no test (a
// pattern that matches nothing) or skipped one exits 0 all the same, and
// its test would pass without having run.
//
// A test uses it as
//
//	if os.Geteuid() == 0 {
//		asnobody.Run(t, nil, "TestX")
//		return
//	}
//	// the test itself, run by a user the file modes apply to
package asnobody

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// UID is nobody's uid and gid.
const UID = 65534

// defaultTimeout bounds a child when the test binary has no deadline.
const defaultTimeout = 10 * time.Minute

// Run runs the named top-level tests of this test binary as nobody, with
// env added to the environment, and fails t unless the child passed every
// one of them and skipped none. The child runs in the working directory,
// with TMPDIR a new directory of its own. Its output is logged.
func Run(t *testing.T, env []string, tests ...string) {
	t.Helper()
	ctx := context.Background()
	if deadline, ok := t.Deadline(); ok {
		// Leave the parent time to report what the child printed.
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline.Add(-time.Until(deadline)/10))
		defer cancel()
	}
	out, err := Exec(ctx, env, tests...)
	if err != nil {
		t.Fatalf("as uid %d: %v\n%s", UID, err, out)
	}
	t.Logf("ran as uid %d:\n%s", UID, out)
}

// Exec is Run without a test to fail: it returns the child's output, and an
// error unless the child passed every test named and skipped none.
func Exec(ctx context.Context, env []string, tests ...string) ([]byte, error) {
	if len(tests) == 0 {
		return nil, fmt.Errorf("no test named")
	}
	quoted := make([]string, len(tests))
	for i, name := range tests {
		if name == "" || strings.ContainsAny(name, "/ \t\n") {
			return nil, fmt.Errorf("%q is not the name of a top-level test", name)
		}
		quoted[i] = regexp.QuoteMeta(name)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultTimeout)
		defer cancel()
	}
	bin, tmp, cleanup, err := prepare()
	if err != nil {
		return nil, err
	}
	defer cleanup()
	wd, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	args := []string{"-test.run", "^(" + strings.Join(quoted, "|") + ")$", "-test.v", "-test.count=1"}
	if deadline, ok := ctx.Deadline(); ok {
		// The child's own timeout panics with every goroutine's stack,
		// which says more than being killed.
		args = append(args, "-test.timeout", time.Until(deadline).Round(time.Second).String())
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = wd
	cmd.Env = append(append(os.Environ(), env...), "TMPDIR="+tmp)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: UID, Gid: UID, Groups: []uint32{}}}
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%v)", err, ctx.Err())
		}
		return out, fmt.Errorf("the child failed: %w", err)
	}
	return out, checkPassed(out, tests)
}

// prepare copies the test binary where nobody can run it (the build
// directory is private), in a directory only root can write, and makes the
// child's TMPDIR, which only nobody can.
func prepare() (bin, tmp string, cleanup func(), err error) {
	self, err := os.Executable()
	if err != nil {
		return "", "", nil, err
	}
	// A short path: tests put Unix sockets (108 bytes at most) in TMPDIR.
	dir, err := os.MkdirTemp("", "asnobody")
	if err != nil {
		return "", "", nil, err
	}
	cleanup = func() { os.RemoveAll(dir) }
	tmp = filepath.Join(dir, "tmp")
	bin = filepath.Join(dir, filepath.Base(self))
	err = copyExecutable(self, bin)
	if err == nil {
		err = os.Chmod(dir, 0o755)
	}
	if err == nil {
		err = os.Mkdir(tmp, 0o700)
	}
	if err == nil {
		err = os.Chown(tmp, UID, UID)
	}
	if err != nil {
		cleanup()
		return "", "", nil, err
	}
	return bin, tmp, cleanup, nil
}

func copyExecutable(from, to string) error {
	src, err := os.Open(from)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		return err
	}
	_, err = io.Copy(dst, src)
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	return err
}

// checkPassed checks -test.v output: every test named passed, no test or
// subtest was skipped.
func checkPassed(out []byte, tests []string) error {
	passed := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "--- SKIP: ") || strings.HasPrefix(trimmed, "--- FAIL: ") {
			return fmt.Errorf("the child did not pass all it ran: %s", trimmed)
		}
		if name, ok := strings.CutPrefix(line, "--- PASS: "); ok {
			name, _, _ = strings.Cut(name, " ")
			passed[name] = true
		}
	}
	var missing []string
	for _, name := range tests {
		if !passed[name] {
			missing = append(missing, name)
		}
	}
	if missing != nil {
		return fmt.Errorf("the child exited 0 without passing %s: did it run?", strings.Join(slices.Compact(missing), ", "))
	}
	return nil
}
