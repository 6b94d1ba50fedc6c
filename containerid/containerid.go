// Package containerid tells which container a process runs in, from the
// cgroups the kernel lists for it in /proc/<pid>/cgroup, and only from
// cgroups a container runtime made; an Identifier confirms it with the
// runtime where there is one to ask (confirm.go).
//
// Container runtimes put each container in a cgroup named after its ID,
// under a parent the runtime or the kubelet made:
//
//	containerd (kubelet, systemd driver)  .../kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod<uid>.slice/cri-containerd-<id>.scope
//	CRI-O (kubelet, systemd driver)       .../kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid>.slice/crio-<id>.scope
//	kubelet, cgroupfs driver              .../kubepods/besteffort/pod<uid>/<id>   (CRI-O: .../pod<uid>/crio-<id>)
//	Docker (cgroupfs, systemd driver)     .../docker/<id>, /system.slice/docker-<id>.scope
//	Podman                                .../machine.slice/libpod-<id>.scope, /libpod_parent/libpod-<id>
//
// where <id> is the runtime's 64-hex-digit container ID and "..." is the
// kubelet's --cgroup-root or a node container's cgroup (kind). cgroup v1
// lists one line per hierarchy ("4:memory:/docker/<id>"), v2 one line
// ("0::/..."), hybrid systems both.
//
// Anyone with a cgroup subtree of their own (systemd delegates one to each
// user on cgroup v2; a container may be given its own) can make cgroups with
// any name below it, and move into them. So a name alone proves nothing, and
// the rules are:
//
//   - The container is the OUTERMOST component that a known layout names,
//     in the position the layout gives it (a cgroup scope directly under a
//     pod slice, an ID directly under pod<uid> under kubepods, ...). What is
//     below the container's own cgroup belongs to the container: a cgroup
//     named after container B inside container A is still A. Once a
//     kubelet layout starts, it must name a container where the layout puts
//     one, or the process is in none: nothing deeper is looked at.
//   - Components the caller's cgroup shares with the server's own cgroup
//     belong to the node (a kind node's /docker/<node-id>) or to the server's
//     own container, never to the caller.
//   - Every line that names a container names the same one.
//   - Every directory from the hierarchy's root down to the container's
//     cgroup's parent is owned by root, checked through file descriptors
//     (Node.Identify): a delegated cgroup cannot name a container. The
//     container's own directory may belong to another uid: runc gives it
//     to a user-namespaced container's root. Its name was still chosen by
//     whoever could write its root-owned parent.
//
// containerd's own cgroupfs layout without Kubernetes (/<namespace>/<id>,
// as ctr and nerdctl make it) is not recognised: its parent is any name
// ("default"), which says nothing about who made it, and the CRI does not
// know those containers, so they could never be confirmed with the runtime.
package containerid

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/ccnp-eventlog/ccnp-eventlog/internal/boundedread"
)

// Container is the container a process runs in.
type Container struct {
	// ID is the runtime's container ID: 64 lower-case hex digits.
	ID string
	// Runtime names the runtime the cgroup layout belongs to: "containerd",
	// "cri-o", "docker", "podman", or "kubelet" for the kubelet's cgroupfs
	// layout, which does not name the runtime (containerd, or Docker
	// through cri-dockerd).
	Runtime string
	// Cgroup is the cgroup path the ID was found in, as the process's
	// cgroup file gives it.
	Cgroup string
}

// FromKubelet reports whether the container's cgroup is one the kubelet
// laid out for a CRI runtime: the runtime's CRI service knows it.
func (c Container) FromKubelet() bool {
	return c.Runtime == "containerd" || c.Runtime == "cri-o" || c.Runtime == "kubelet"
}

// ErrNotInContainer is wrapped by the errors of processes whose cgroups name
// no container: host processes, systemd services, login sessions, a pod's
// own cgroup, the server's own container.
var ErrNotInContainer = errors.New("not in a container")

// ErrNotRuntimeMade is wrapped by the errors of processes whose cgroups name
// a container in a way its runtime never would: in a directory that another
// uid than root could make (a delegated cgroup), or with hierarchies that
// disagree. Such a process may be pretending to be another container.
var ErrNotRuntimeMade = errors.New("not a cgroup a container runtime made")

// ErrCannotCheck is wrapped when the server cannot see the cgroup
// hierarchies it needs to check a process's cgroups: its configuration,
// not the caller, is at fault.
var ErrCannotCheck = errors.New("cannot check the cgroup")

// idLen is the length of a container ID: the hex form of 32 random bytes, as
// containerd, CRI-O, Docker and Podman generate them.
const idLen = 64

// maxCgroupFile bounds what is read of a cgroup file. A real one has one line
// per hierarchy, each at most a few hundred bytes.
const maxCgroupFile = 64 << 10

// cgroupLine is one line of a /proc/<pid>/cgroup file.
type cgroupLine struct {
	// controllers is the line's second field: "" on cgroup v2, "memory",
	// "cpu,cpuacct" or "name=systemd" on v1. It names the hierarchy.
	controllers string
	path        string
	rel         relPath
}

// relPath is a cgroup path relative to the reader's cgroup namespace root:
// ups ".." components (a cgroup outside the reader's namespace, on v2 in a
// pod), then comps.
type relPath struct {
	ups   int
	comps []string
}

func parseRelPath(p string) (relPath, error) {
	var r relPath
	for c := range strings.SplitSeq(strings.TrimPrefix(p, "/"), "/") {
		switch {
		case c == "":
		case c == "..":
			if len(r.comps) > 0 {
				return relPath{}, fmt.Errorf("cgroup path %q has \"..\" after a name", p)
			}
			r.ups++
		case c == ".":
			return relPath{}, fmt.Errorf("cgroup path %q has a \".\" component", p)
		default:
			r.comps = append(r.comps, c)
		}
	}
	return r, nil
}

func (r relPath) String() string {
	return "/" + strings.Join(append(slices.Repeat([]string{".."}, r.ups), r.comps...), "/")
}

// parseCgroupFile splits a /proc/<pid>/cgroup file into its lines.
func parseCgroupFile(cgroupFile []byte) ([]cgroupLine, error) {
	var lines []cgroupLine
	for n, line := range bytes.Split(cgroupFile, []byte{'\n'}) {
		if len(line) == 0 {
			continue
		}
		// hierarchy-ID:controller-list:cgroup-path; the path may hold colons.
		parts := strings.SplitN(string(line), ":", 3)
		if len(parts) != 3 {
			return nil, fmt.Errorf("line %d of the cgroup file is %q, not hierarchy:controllers:path", n+1, line)
		}
		if _, err := strconv.ParseUint(parts[0], 10, 32); err != nil {
			return nil, fmt.Errorf("line %d of the cgroup file is %q: hierarchy ID %q is not a number", n+1, line, parts[0])
		}
		if !strings.HasPrefix(parts[2], "/") {
			return nil, fmt.Errorf("line %d of the cgroup file is %q: the path is not absolute", n+1, line)
		}
		rel, err := parseRelPath(parts[2])
		if err != nil {
			return nil, fmt.Errorf("line %d of the cgroup file: %w", n+1, err)
		}
		lines = append(lines, cgroupLine{controllers: parts[1], path: parts[2], rel: rel})
	}
	if len(lines) == 0 {
		return nil, errors.New("the cgroup file is empty")
	}
	return lines, nil
}

// match is what a layout found in a cgroup path's components.
type match struct {
	// ctr is the index of the container's component; -1 when a kubelet
	// layout starts but names no container (a pod's cgroup, CRI-O's conmon).
	ctr     int
	id      string
	runtime string
	// why says what the path is when it names no container.
	why string
}

// matchAt tries each layout at comps[i]. ok is false when no layout starts
// there.
func matchAt(comps []string, i int) (m match, ok bool) {
	if m, ok := kubeletSystemd(comps, i); ok {
		return m, true
	}
	if m, ok := kubeletCgroupfs(comps, i); ok {
		return m, true
	}
	if i+1 >= len(comps) {
		return match{}, false
	}
	c, next := comps[i], comps[i+1]
	switch {
	case c == "docker" && isID(next):
		return match{ctr: i + 1, id: next, runtime: "docker"}, true
	case c == "system.slice":
		if id, ok := scopeID(next, "docker-"); ok {
			return match{ctr: i + 1, id: id, runtime: "docker"}, true
		}
	case isPodmanParent(c):
		if id, ok := scopeID(next, "libpod-"); ok {
			return match{ctr: i + 1, id: id, runtime: "podman"}, true
		}
		if id, ok := strings.CutPrefix(next, "libpod-"); ok && isID(id) {
			return match{ctr: i + 1, id: id, runtime: "podman"}, true
		}
	}
	return match{}, false
}

// kubeletSystemd matches the kubelet's systemd layout, from its kubepods
// slice, QoS slice or pod slice: systemd names a slice after its parents
// ("kubepods-besteffort-pod<uid>.slice" is in "kubepods-besteffort.slice"),
// and each level must continue its parent's name.
func kubeletSystemd(comps []string, i int) (match, bool) {
	stem, ok := strings.CutSuffix(comps[i], ".slice")
	if !ok {
		return match{}, false
	}
	// The part of the stem from "kubepods" on: "kubepods",
	// "kubepods-besteffort", "kubepods-burstable-pod<uid>".
	var tail string
	switch {
	case strings.HasPrefix(stem, "kubepods"):
		tail = stem
	case strings.Contains(stem, "-kubepods"):
		tail = stem[strings.Index(stem, "-kubepods")+1:]
	default:
		return match{}, false
	}
	level, ok := sliceLevel(tail)
	if !ok {
		return match{}, false
	}
	j := i + 1
	notContainer := match{ctr: -1, why: "a cgroup of the kubelet's, not a container's"}
	for level < levelPod {
		if j >= len(comps) {
			return notContainer, true
		}
		child, ok := strings.CutSuffix(comps[j], ".slice")
		rest, ok2 := strings.CutPrefix(child, stem+"-")
		if !ok || !ok2 {
			return notContainer, true
		}
		next, ok := sliceLevel("kubepods-" + rest)
		if !ok || next <= level || (level == levelQoS && next != levelPod) {
			return notContainer, true
		}
		stem, level = child, next
		j++
	}
	if j >= len(comps) {
		return match{ctr: -1, why: "a pod's cgroup, not a container's"}, true
	}
	for _, p := range []struct{ prefix, runtime string }{
		{"cri-containerd-", "containerd"},
		{"crio-", "cri-o"},
		{"docker-", "docker"}, // cri-dockerd
	} {
		if id, ok := scopeID(comps[j], p.prefix); ok {
			m := match{ctr: j, id: id, runtime: p.runtime}
			return m, true
		}
	}
	return match{ctr: -1, why: "a cgroup in a pod that no runtime names as a container (CRI-O's conmon, a pod's own processes)"}, true
}

const (
	levelKubepods = iota
	levelQoS
	levelPod
)

// sliceLevel tells which level of the kubelet's slices a slice stem from
// "kubepods" on is.
func sliceLevel(tail string) (int, bool) {
	rest, ok := strings.CutPrefix(tail, "kubepods")
	if !ok {
		return 0, false
	}
	if rest == "" {
		return levelKubepods, true
	}
	for _, q := range []string{"-besteffort", "-burstable"} {
		if r, ok := strings.CutPrefix(rest, q); ok {
			if r == "" {
				return levelQoS, true
			}
			rest = r
			break
		}
	}
	uid, ok := strings.CutPrefix(rest, "-pod")
	if !ok || !isPodUID(uid, '_') {
		return 0, false
	}
	return levelPod, true
}

// kubeletCgroupfs matches the kubelet's cgroupfs layout, from "kubepods":
// kubepods[/besteffort|/burstable]/pod<uid>/<container>.
func kubeletCgroupfs(comps []string, i int) (match, bool) {
	if comps[i] != "kubepods" {
		return match{}, false
	}
	j := i + 1
	if j < len(comps) && (comps[j] == "besteffort" || comps[j] == "burstable") {
		j++
	}
	if j >= len(comps) {
		return match{ctr: -1, why: "a cgroup of the kubelet's, not a container's"}, true
	}
	if uid, ok := strings.CutPrefix(comps[j], "pod"); !ok || !isPodUID(uid, '-') {
		return match{ctr: -1, why: "a cgroup under kubepods that is not a pod's"}, true
	}
	j++
	if j >= len(comps) {
		return match{ctr: -1, why: "a pod's cgroup, not a container's"}, true
	}
	if isID(comps[j]) {
		return match{ctr: j, id: comps[j], runtime: "kubelet"}, true
	}
	if id, ok := strings.CutPrefix(comps[j], "crio-"); ok && isID(id) {
		return match{ctr: j, id: id, runtime: "cri-o"}, true
	}
	return match{ctr: -1, why: "a cgroup in a pod that no runtime names as a container"}, true
}

// isPodmanParent reports whether a cgroup is one Podman puts containers in.
// Rootless Podman's (user.slice under user@<uid>.service) is matched, so
// that such a caller is told its cgroup is delegated, not that it is in no
// container.
func isPodmanParent(c string) bool {
	return c == "machine.slice" || c == "libpod_parent" || c == "user.slice" ||
		(strings.HasPrefix(c, "machine-libpod_pod_") && strings.HasSuffix(c, ".slice")) ||
		strings.HasPrefix(c, "libpod_pod_")
}

// scopeID returns the ID of a systemd scope "<prefix><id>.scope".
func scopeID(c, prefix string) (string, bool) {
	rest, ok := strings.CutPrefix(c, prefix)
	if !ok {
		return "", false
	}
	id, ok := strings.CutSuffix(rest, ".scope")
	return id, ok && isID(id)
}

// isPodUID reports whether s is a pod UID as the kubelet writes it in a
// cgroup name: lower-case hex digits and sep (the systemd driver writes a
// UUID's dashes as underscores), or a static pod's 32-hex-digit hash.
func isPodUID(s string, sep byte) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := range len(s) {
		if !isHexDigit(s[i]) && s[i] != sep {
			return false
		}
	}
	return true
}

func isID(s string) bool {
	if len(s) != idLen {
		return false
	}
	for i := range len(s) {
		if !isHexDigit(s[i]) {
			return false
		}
	}
	return true
}

func isHexDigit(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' }

// find applies the rules to one hierarchy's cgroup path: comps are its
// components, node how many leading components it shares with the server's
// own cgroup, own the index of the server's own container's component in
// that cgroup (-1: the server is in none).
func find(comps []string, node, own int) match {
	for i := 0; i < len(comps); i++ {
		m, ok := matchAt(comps, i)
		switch {
		case !ok:
			continue
		case m.ctr < 0:
			return m
		case m.ctr < node && m.ctr == own:
			return match{ctr: -1, why: "the server's own container"}
		case m.ctr < node:
			// A container the server itself runs in (a kind node):
			// what is below it is still to be told.
			i = m.ctr
			continue
		}
		return m
	}
	return match{ctr: -1}
}

// containers lists the containers a cgroup path's components name, outermost
// first: a server's own cgroup names its own container and, in a kind node,
// the node's.
func containers(comps []string) []match {
	var ms []match
	for i := 0; i < len(comps); i++ {
		m, ok := matchAt(comps, i)
		if !ok {
			continue
		}
		if m.ctr < 0 {
			break
		}
		ms = append(ms, m)
		i = m.ctr
	}
	return ms
}

// indexOf is the index of the component container id is in, -1 if none.
func indexOf(ms []match, id string) int {
	for _, m := range ms {
		if m.id == id {
			return m.ctr
		}
	}
	return -1
}

// commonPrefix is the number of leading components a and b share.
func commonPrefix(a, b []string) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

// Parse finds the container the lines of a /proc/<pid>/cgroup file name, by
// the rules of the package, without the node's view: no component belongs
// to the node, and no directory is checked. It is what the cgroup file
// claims, not proof: Node.Identify is. It returns an error wrapping
// ErrNotInContainer when no line names one.
func Parse(cgroupFile []byte) (Container, error) {
	lines, err := parseCgroupFile(cgroupFile)
	if err != nil {
		return Container{}, err
	}
	var found Container
	var notContainer string
	for _, l := range lines {
		// Above the reader's namespace root: only the names below matter.
		m := find(l.rel.comps, 0, -1)
		if m.ctr < 0 {
			if m.why != "" && notContainer == "" {
				notContainer = fmt.Sprintf("%s is %s", l.path, m.why)
			}
			continue
		}
		if found.ID != "" && m.id != found.ID {
			return Container{}, disagree(found, l.path, m.id)
		}
		if found.ID == "" {
			found = Container{ID: m.id, Runtime: m.runtime, Cgroup: l.path}
		}
	}
	if found.ID == "" {
		return Container{}, notInContainer(notContainer, cgroupFile)
	}
	if notContainer != "" {
		return Container{}, fmt.Errorf("%w: %s names container %s, but %s", ErrNotRuntimeMade, found.Cgroup, found.ID, notContainer)
	}
	return found, nil
}

func disagree(found Container, path, id string) error {
	return fmt.Errorf("%w: the process's cgroups name two containers, %s (in %s) and %s (in %s): refusing to guess which it runs in",
		ErrNotRuntimeMade, found.ID, found.Cgroup, id, path)
}

func notInContainer(why string, cgroupFile []byte) error {
	if why != "" {
		return fmt.Errorf("%w: %s", ErrNotInContainer, why)
	}
	return fmt.Errorf("%w: no cgroup of the process names a container (%s)", ErrNotInContainer, summarize(cgroupFile))
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

// readCgroupFile reads procRoot/<pid>/cgroup.
func readCgroupFile(procRoot string, pid int) ([]byte, string, error) {
	if pid <= 0 {
		return nil, "", fmt.Errorf("invalid pid %d", pid)
	}
	path := filepath.Join(procRoot, strconv.Itoa(pid), "cgroup")
	b, err := boundedread.ReadFile(path, maxCgroupFile)
	var tooLarge *boundedread.TooLargeError
	if errors.As(err, &tooLarge) {
		return nil, path, fmt.Errorf("finding the container of process %d: %s %v: not a cgroup file", pid, path, err)
	}
	if err != nil {
		return nil, path, fmt.Errorf("finding the container of process %d: %w", pid, err)
	}
	return b, path, nil
}

// OfProcess is Parse on procRoot/<pid>/cgroup: what the process's cgroups
// claim, unchecked. procRoot is the proc filesystem the pid is valid in
// ("/proc"; a fake tree in tests).
func OfProcess(procRoot string, pid int) (Container, error) {
	b, path, err := readCgroupFile(procRoot, pid)
	if err != nil {
		return Container{}, err
	}
	c, err := Parse(b)
	if err != nil {
		return Container{}, fmt.Errorf("process %d (%s): %w", pid, path, err)
	}
	return c, nil
}
