package containerid

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// PIDNamespace identifies a process's PID namespace.
type PIDNamespace struct{ dev, ino uint64 }

// PIDNamespaceOf returns the PID namespace process pid is in, from
// procRoot/<pid>/ns/pid.
func PIDNamespaceOf(procRoot string, pid int) (PIDNamespace, error) {
	if pid <= 0 {
		return PIDNamespace{}, fmt.Errorf("invalid pid %d", pid)
	}
	var st unix.Stat_t
	path := filepath.Join(procRoot, strconv.Itoa(pid), "ns", "pid")
	if err := unix.Stat(path, &st); err != nil {
		return PIDNamespace{}, fmt.Errorf("the PID namespace of process %d: %w", pid, &fs.PathError{Op: "stat", Path: path, Err: err})
	}
	return PIDNamespace{dev: st.Dev, ino: st.Ino}, nil
}

func (ns PIDNamespace) String() string { return "pid:[" + strconv.FormatUint(ns.ino, 10) + "]" }
