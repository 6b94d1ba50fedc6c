package containerid_test

import (
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ccnp-eventlog/ccnp-eventlog/containerid"
)

func TestPIDNamespaceOf(t *testing.T) {
	self, err := containerid.PIDNamespaceOf("/proc", os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	child := exec.Command("sleep", "60")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer child.Process.Kill()
	same, err := containerid.PIDNamespaceOf("/proc", child.Process.Pid)
	if err != nil || same != self {
		t.Errorf("a child: %v, %v; want %v", same, err, self)
	}
	if _, err := containerid.PIDNamespaceOf("/proc", 0); err == nil {
		t.Error("pid 0 must be an error")
	}
	if _, err := containerid.PIDNamespaceOf(t.TempDir(), 1); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("no such process: %v", err)
	}

	// A process in a PID namespace of its own.
	if os.Geteuid() != 0 {
		t.Skip("a new PID namespace needs root")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("unshare (util-linux) is needed for a new PID namespace")
	}
	other := exec.Command("unshare", "--pid", "--fork", "sleep", "60")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	defer other.Process.Kill()
	// unshare forks sleep into the new namespace: find it.
	var inner int
	for range 200 {
		b, _ := os.ReadFile("/proc/" + itoa(other.Process.Pid) + "/task/" + itoa(other.Process.Pid) + "/children")
		if f := strings.Fields(string(b)); len(f) > 0 {
			inner = atoi(f[0])
			break
		}
		sleepBriefly()
	}
	if inner == 0 {
		t.Fatal("unshare started no child")
	}
	ns, err := containerid.PIDNamespaceOf("/proc", inner)
	if err != nil || ns == self {
		t.Errorf("a process in a new PID namespace: %v, %v; want other than %v", ns, err, self)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func atoi(s string) int { i, _ := strconv.Atoi(s); return i }

func sleepBriefly() { time.Sleep(10 * time.Millisecond) }
