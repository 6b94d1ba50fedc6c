package containerid

import (
	"errors"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestPIDNamespaceNeedsPtrace: a root server without CAP_SYS_PTRACE (the
// chart's server has CHOWN and DAC_OVERRIDE only, unless it adds it) may
// not read another user's /proc/<pid>/ns/pid, which the CRI check compares:
// the error says it is the server's setup, and which capability it lacks.
// Found on kind, where the chart's server met real containerd callers.
func TestPIDNamespaceNeedsPtrace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: a process of another uid, and capabilities to drop")
	}
	cmd := exec.Command("sleep", "60")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	id := &Identifier{procRoot: "/proc"}
	if _, err := id.pidNamespace(cmd.Process.Pid); err != nil {
		t.Fatalf("with CAP_SYS_PTRACE: %v", err)
	}

	// Capabilities are a thread's: drop CAP_SYS_PTRACE from the effective
	// set of this one, locked to the test, and put it back after.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var caps [2]unix.CapUserData
	if err := unix.Capget(&hdr, &caps[0]); err != nil {
		t.Fatal(err)
	}
	saved := caps
	caps[0].Effective &^= 1 << unix.CAP_SYS_PTRACE
	if err := unix.Capset(&hdr, &caps[0]); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := unix.Capset(&hdr, &saved[0]); err != nil {
			t.Fatal(err)
		}
	}()
	_, err := id.pidNamespace(cmd.Process.Pid)
	if !errors.Is(err, ErrCannotCheck) || !errors.Is(err, os.ErrPermission) || !strings.Contains(err.Error(), "CAP_SYS_PTRACE") {
		t.Errorf("without CAP_SYS_PTRACE: %v, want the server's missing capability named", err)
	}
}
