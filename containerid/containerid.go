// Package containerid tells which container a process runs in, from the
// cgroups the kernel lists for it in /proc/<pid>/cgroup.
//
// Container runtimes put each container in a cgroup named after its ID, and
// every layout in use names it one of a few ways:
//
//	containerd (CRI, systemd driver)  .../kubepods-besteffort-pod<uid>.slice/cri-containerd-<id>.scope
//	CRI-O (systemd driver)            .../kubepods-burstable-pod<uid>.slice/crio-<id>.scope
//	CRI-O (cgroupfs driver)           /kubepods/burstable/pod<uid>/crio-<id>
//	Docker (systemd driver)           /system.slice/docker-<id>.scope
//	Podman                            .../libpod-<id>.scope
//	Docker (cgroupfs driver)          /docker/<id>
//	Kubernetes, cgroupfs driver       /kubepods/besteffort/pod<uid>/<id>
//	other cgroupfs layouts            /<anything>/<id>   (containerd's /default/<id>, ...)
//
// where <id> is the runtime's 64-hex-digit container ID. cgroup v1 lists one
// line per hierarchy ("4:memory:/docker/<id>"), v2 one line ("0::/..."),
// hybrid systems both. A path may start with "/.." when the reader is in
// another cgroup namespace than the process (a server in a pod reading a
// process of another pod on cgroup v2): only the components matter.
//
// The deepest component that names a container wins, so a process in a
// container nested in another (Docker in Docker, a kind node) is attributed
// to the innermost one, and sub-cgroups a container makes below its own
// (systemd in a container) still count as that container. Every line that
// names a container must name the same one: a process whose hierarchies
// disagree is reported, never attributed by guess.
package containerid

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ccnp-eventlog/ccnp-eventlog/internal/boundedread"
)

// Container is the container a process runs in.
type Container struct {
	// ID is the runtime's container ID: 64 lower-case hex digits.
	ID string
	// Runtime names the runtime the cgroup layout belongs to: "containerd",
	// "cri-o", "docker", "podman", or "cgroupfs" when the layout (a bare ID
	// under some parent) does not say.
	Runtime string
	// Cgroup is the cgroup path the ID was found in.
	Cgroup string
}

// ErrNotInContainer is wrapped by the errors of processes whose cgroups name
// no container: host processes, systemd services, login sessions.
var ErrNotInContainer = errors.New("not in a container")

// idLen is the length of a container ID: the hex form of 32 random bytes, as
// containerd, CRI-O, Docker and Podman generate them.
const idLen = 64

// maxCgroupFile bounds what is read of a cgroup file. A real one has one line
// per hierarchy, each at most a few hundred bytes.
const maxCgroupFile = 64 << 10

// runtimePrefixes are the unit-name prefixes systemd-driven runtimes give a
// container's cgroup ("<prefix><id>.scope"); CRI-O's cgroupfs driver uses
// the same prefix without ".scope".
var runtimePrefixes = []struct{ prefix, runtime string }{
	{"cri-containerd-", "containerd"},
	{"crio-", "cri-o"},
	{"docker-", "docker"},
	{"libpod-", "podman"},
}

// Parse finds the container in the content of a /proc/<pid>/cgroup file.
// It returns an error wrapping ErrNotInContainer when no line names one.
func Parse(cgroupFile []byte) (Container, error) {
	var found Container
	lines := 0
	for n, line := range bytes.Split(cgroupFile, []byte{'\n'}) {
		if len(line) == 0 {
			continue
		}
		lines++
		// hierarchy-ID:controller-list:cgroup-path; the path may hold colons.
		parts := strings.SplitN(string(line), ":", 3)
		if len(parts) != 3 {
			return Container{}, fmt.Errorf("line %d of the cgroup file is %q, not hierarchy:controllers:path", n+1, line)
		}
		if _, err := strconv.ParseUint(parts[0], 10, 32); err != nil {
			return Container{}, fmt.Errorf("line %d of the cgroup file is %q: hierarchy ID %q is not a number", n+1, line, parts[0])
		}
		path := parts[2]
		if !strings.HasPrefix(path, "/") {
			return Container{}, fmt.Errorf("line %d of the cgroup file is %q: the path is not absolute", n+1, line)
		}
		c, ok := fromPath(path)
		if !ok {
			continue
		}
		if found.ID != "" && c.ID != found.ID {
			return Container{}, fmt.Errorf("the process's cgroups name two containers, %s (in %s) and %s (in %s): refusing to guess which it runs in",
				found.ID, found.Cgroup, c.ID, c.Cgroup)
		}
		if found.ID == "" {
			found = c
		}
	}
	if lines == 0 {
		return Container{}, errors.New("the cgroup file is empty")
	}
	if found.ID == "" {
		return Container{}, fmt.Errorf("%w: no cgroup of the process names a container (%s)", ErrNotInContainer, summarize(cgroupFile))
	}
	return found, nil
}

// fromPath finds the container a cgroup path names, from its deepest
// component up.
func fromPath(path string) (Container, bool) {
	comps := strings.Split(path, "/")
	for i := len(comps) - 1; i >= 0; i-- {
		c := comps[i]
		for _, p := range runtimePrefixes {
			if rest, ok := strings.CutPrefix(c, p.prefix); ok {
				rest = strings.TrimSuffix(rest, ".scope")
				if isID(rest) {
					return Container{ID: rest, Runtime: p.runtime, Cgroup: path}, true
				}
			}
		}
		if isID(c) {
			runtime := "cgroupfs"
			if i > 0 && comps[i-1] == "docker" {
				runtime = "docker"
			}
			return Container{ID: c, Runtime: runtime, Cgroup: path}, true
		}
	}
	return Container{}, false
}

func isID(s string) bool {
	if len(s) != idLen {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// summarize renders the cgroup file on one line for error messages: the
// distinct paths, at most a few.
func summarize(cgroupFile []byte) string {
	var paths []string
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(cgroupFile)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 || seen[parts[2]] {
			continue
		}
		seen[parts[2]] = true
		paths = append(paths, parts[2])
	}
	const most = 3
	s := "cgroup paths " + strings.Join(paths[:min(len(paths), most)], ", ")
	if len(paths) > most {
		s += fmt.Sprintf(" and %d more", len(paths)-most)
	}
	return s
}

// OfProcess finds the container process pid runs in, from procRoot/<pid>/cgroup.
// procRoot is the proc filesystem the pid is valid in ("/proc" in
// production; a fake tree in tests). The pid must be one of the reader's PID
// namespace: a server in a pod sees other pods' processes only with hostPID.
//
// What the file says is only true while the process lives: a caller that
// exits lets its pid be reused. Callers that got the pid from a socket check
// that it still refers to their peer after this returns (peercred.AuthInfo.Alive).
func OfProcess(procRoot string, pid int) (Container, error) {
	if pid <= 0 {
		return Container{}, fmt.Errorf("invalid pid %d", pid)
	}
	path := filepath.Join(procRoot, strconv.Itoa(pid), "cgroup")
	b, err := boundedread.ReadFile(path, maxCgroupFile)
	var tooLarge *boundedread.TooLargeError
	if errors.As(err, &tooLarge) {
		return Container{}, fmt.Errorf("finding the container of process %d: %s %v: not a cgroup file", pid, path, err)
	}
	if err != nil {
		return Container{}, fmt.Errorf("finding the container of process %d: %w", pid, err)
	}
	c, err := Parse(b)
	if err != nil {
		return Container{}, fmt.Errorf("process %d (%s): %w", pid, path, err)
	}
	return c, nil
}
