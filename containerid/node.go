package containerid

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ccnp-eventlog/ccnp-eventlog/internal/boundedread"
)

// Node is the node's cgroup hierarchies as the server sees them: where each
// is mounted under the cgroup root it was given, and where the server's own
// cgroup is in it.
//
// The server reads /proc/<pid>/cgroup in its own cgroup namespace. On the
// host, and in a pod on cgroup v1, that is the host's, and paths are
// absolute. In a pod on cgroup v2 the runtime gives the server a namespace
// of its own, rooted at its container's cgroup, and other pods' cgroups read
// as "/../../<pod slice>/<container scope>". The pod's own /sys/fs/cgroup
// shows only its own subtree, so the server needs the host's cgroupfs
// mounted (hostPath) under the cgroup root; its mountinfo "root" field reads
// "/../../.." from the server's namespace. To place the "..", the server
// finds its own namespace root in the host's tree: the directory whose
// inode is that of a cgroup mount whose root is the namespace root (the
// pod's own /sys/fs/cgroup, which the runtime mounts).
type Node struct {
	root string
	// hierarchies by the controllers field of /proc/<pid>/cgroup lines.
	hierarchies map[string]*hierarchy
}

// hierarchy is one cgroup hierarchy as the server sees it.
type hierarchy struct {
	controllers string
	// mountDir is where the hierarchy is mounted under the cgroup root;
	// "" when it is not.
	mountDir string
	dev      uint64
	// mountRoot is the cgroup mountDir shows, relative to the server's
	// cgroup namespace root.
	mountRoot relPath
	// nsRoot is the path from mountDir to the server's cgroup namespace
	// root, when that is below mountDir (mountRoot.ups > 0); nsErr says why
	// it could not be found.
	nsRoot []string
	nsErr  error
	// own is the server's own cgroup, relative to mountDir; ownCtr the
	// index of the server's own container in it (-1: none); ownErr why the
	// server's own cgroup is not under mountDir.
	own    []string
	ownCtr int
	ownErr error
	// rawOwn is the server's own cgroup as its cgroup file says, for
	// hierarchies that are not mounted, and rawOwnCtr its own container's
	// index there.
	rawOwn    relPath
	rawOwnCtr int
}

// mountEntry is a cgroup filesystem in /proc/self/mountinfo.
type mountEntry struct {
	root       relPath
	mountpoint string
	cgroup2    bool
	options    []string // super options: the controllers of a v1 hierarchy
}

// maxMountinfo bounds what is read of the server's own mountinfo.
const maxMountinfo = 4 << 20

// OpenNode reads the server's own /proc/self/mountinfo and
// /proc/self/cgroup, and maps each hierarchy to its mount under cgroupRoot.
func OpenNode(cgroupRoot string) (*Node, error) {
	mountinfo, err := boundedread.ReadFile("/proc/self/mountinfo", maxMountinfo)
	if err != nil {
		return nil, err
	}
	self, err := boundedread.ReadFile("/proc/self/cgroup", maxCgroupFile)
	if err != nil {
		return nil, err
	}
	return NewNode(cgroupRoot, mountinfo, self)
}

// NewNode maps each hierarchy of the server's own cgroup file (selfCgroup)
// to its mount under cgroupRoot, from the server's mountinfo.
func NewNode(cgroupRoot string, mountinfo, selfCgroup []byte) (*Node, error) {
	cgroupRoot = filepath.Clean(cgroupRoot)
	mounts, err := parseMountinfo(mountinfo)
	if err != nil {
		return nil, err
	}
	lines, err := parseCgroupFile(selfCgroup)
	if err != nil {
		return nil, fmt.Errorf("the server's own cgroup file: %w", err)
	}
	n := &Node{root: cgroupRoot, hierarchies: map[string]*hierarchy{}}
	for _, l := range lines {
		h := &hierarchy{controllers: l.controllers, rawOwn: l.rel, ownCtr: -1, rawOwnCtr: -1}
		n.hierarchies[l.controllers] = h
		m, ok := bestMount(mounts, l.controllers, cgroupRoot)
		if !ok {
			continue
		}
		var st unix.Stat_t
		if err := unix.Stat(m.mountpoint, &st); err != nil {
			return nil, fmt.Errorf("cgroup mount %s: %w", m.mountpoint, err)
		}
		h.mountDir, h.dev, h.mountRoot = m.mountpoint, st.Dev, m.root
		if m.root.ups > 0 {
			if len(m.root.comps) > 0 {
				h.nsErr = fmt.Errorf("%w: %s shows cgroup %s, which is neither above nor below the server's own cgroup namespace: mount the host's cgroupfs root there", ErrCannotCheck, m.mountpoint, m.root)
			} else {
				h.nsRoot, h.nsErr = findNamespaceRoot(mounts, l.controllers, m, st.Dev)
			}
		}
		h.own, h.ownErr = h.inMount(l.rel)
	}
	n.placeOwnContainer()
	return n, nil
}

// placeOwnContainer finds the server's own container: the innermost that
// any of its hierarchies names (a kind node's hierarchies name the node
// container, and those the node's runtime manages the pod's container
// below it), and where it is in each hierarchy.
func (n *Node) placeOwnContainer() {
	var own match
	own.ctr = -1
	for _, h := range n.hierarchies {
		for _, comps := range [][]string{h.own, h.rawOwn.comps} {
			if ms := containers(comps); len(ms) > 0 && ms[len(ms)-1].ctr > own.ctr {
				own = ms[len(ms)-1]
			}
		}
	}
	if own.ctr < 0 {
		return
	}
	for _, h := range n.hierarchies {
		h.ownCtr = indexOf(containers(h.own), own.id)
		h.rawOwnCtr = indexOf(containers(h.rawOwn.comps), own.id)
	}
}

// bestMount picks the mount of a hierarchy under cgroupRoot that shows the
// most of it.
func bestMount(mounts []mountEntry, controllers, cgroupRoot string) (mountEntry, bool) {
	var best mountEntry
	found := false
	for _, m := range mounts {
		if !m.holds(controllers) || !under(m.mountpoint, cgroupRoot) {
			continue
		}
		if !found || m.root.ups > best.root.ups ||
			m.root.ups == best.root.ups && (len(m.root.comps) < len(best.root.comps) ||
				len(m.root.comps) == len(best.root.comps) && len(m.mountpoint) < len(best.mountpoint)) {
			best, found = m, true
		}
	}
	return best, found
}

func under(path, dir string) bool {
	return dir == "/" || path == dir || strings.HasPrefix(path, dir+"/")
}

// holds reports whether the mount is of the hierarchy a cgroup file line's
// controllers field names.
func (m mountEntry) holds(controllers string) bool {
	if controllers == "" {
		return m.cgroup2
	}
	if m.cgroup2 {
		return false
	}
	for c := range strings.SplitSeq(controllers, ",") {
		if !slices.Contains(m.options, c) {
			return false
		}
	}
	return true
}

// parseMountinfo lists the cgroup mounts of a mountinfo file:
//
//	ID parent major:minor root mountpoint options [optional...] - fstype source superoptions
func parseMountinfo(b []byte) ([]mountEntry, error) {
	var mounts []mountEntry
	for n, line := range strings.Split(string(b), "\n") {
		if line == "" {
			continue
		}
		left, right, ok := strings.Cut(line, " - ")
		lf, rf := strings.Fields(left), strings.Fields(right)
		if !ok || len(lf) < 6 || len(rf) < 3 {
			return nil, fmt.Errorf("mountinfo line %d is %q, not a mount", n+1, line)
		}
		if rf[0] != "cgroup" && rf[0] != "cgroup2" {
			continue
		}
		root, err := parseRelPath(unescapeMountinfo(lf[3]))
		if err != nil {
			return nil, fmt.Errorf("mountinfo line %d: %w", n+1, err)
		}
		mounts = append(mounts, mountEntry{
			root:       root,
			mountpoint: filepath.Clean(unescapeMountinfo(lf[4])),
			cgroup2:    rf[0] == "cgroup2",
			options:    strings.Split(rf[2], ","),
		})
	}
	return mounts, nil
}

// unescapeMountinfo undoes the octal escapes (\040 for a space) mountinfo
// writes in paths.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// maxNamespaceSearch bounds the directories looked at to find the server's
// namespace root in the host's tree.
const maxNamespaceSearch = 100000

// findNamespaceRoot finds the server's cgroup namespace root under the
// host's mount m (whose root is ups levels above it): the directory there
// that is the cgroup a mount of the namespace root shows (the pod's own
// /sys/fs/cgroup).
func findNamespaceRoot(mounts []mountEntry, controllers string, m mountEntry, dev uint64) ([]string, error) {
	var want *unix.Stat_t
	for _, o := range mounts {
		if !o.holds(controllers) || o.root.ups != 0 || len(o.root.comps) != 0 {
			continue
		}
		var st unix.Stat_t
		if unix.Stat(o.mountpoint, &st) == nil && st.Dev == dev {
			want = &st
			break
		}
	}
	if want == nil {
		return nil, fmt.Errorf("%w: %s shows the cgroup %d levels above the server's own cgroup namespace, and no cgroup mount of the namespace's root (the pod's own /sys/fs/cgroup) tells which cgroup that is", ErrCannotCheck, m.mountpoint, m.root.ups)
	}
	fd, err := unix.Open(m.mountpoint, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrCannotCheck, m.mountpoint, err)
	}
	defer unix.Close(fd)
	budget := maxNamespaceSearch
	path, err := searchInode(fd, m.root.ups, want.Ino, dev, &budget)
	if err != nil {
		return nil, fmt.Errorf("%w: looking for the server's own cgroup namespace root under %s: %w", ErrCannotCheck, m.mountpoint, err)
	}
	if path == nil {
		return nil, fmt.Errorf("%w: the server's own cgroup namespace root is not %d levels below %s", ErrCannotCheck, m.root.ups, m.mountpoint)
	}
	return path, nil
}

// searchInode looks depth levels below the directory dirfd for the cgroup
// with inode ino, through root-owned directories only (the server's own
// cgroup is in one).
func searchInode(dirfd, depth int, ino, dev uint64, budget *int) ([]string, error) {
	rfd, err := unix.Openat(dirfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(rfd), "cgroup")
	entries, err := f.ReadDir(-1)
	f.Close()
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		if *budget--; *budget < 0 {
			return nil, errors.New("too many cgroups")
		}
		fd, err := unix.Openat(dirfd, e.Name(), unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			continue // removed meanwhile
		}
		var st unix.Stat_t
		if unix.Fstat(fd, &st) != nil || st.Dev != dev || st.Uid != 0 {
			unix.Close(fd)
			continue
		}
		if depth == 1 {
			unix.Close(fd)
			if st.Ino == ino {
				return []string{e.Name()}, nil
			}
			continue
		}
		sub, err := searchInode(fd, depth-1, ino, dev, budget)
		unix.Close(fd)
		if err != nil {
			return nil, err
		}
		if sub != nil {
			return append([]string{e.Name()}, sub...), nil
		}
	}
	return nil, nil
}

// inMount places a cgroup path, relative to the server's namespace root,
// under the hierarchy's mount: its components below mountDir.
func (h *hierarchy) inMount(p relPath) ([]string, error) {
	r := h.mountRoot
	if r.ups == 0 {
		if p.ups > 0 || len(p.comps) < len(r.comps) || !slices.Equal(p.comps[:len(r.comps)], r.comps) {
			return nil, h.notVisible(p)
		}
		return p.comps[len(r.comps):], nil
	}
	if h.nsErr != nil {
		return nil, h.nsErr
	}
	if p.ups > r.ups {
		return nil, h.notVisible(p)
	}
	return append(slices.Clone(h.nsRoot[:r.ups-p.ups]), p.comps...), nil
}

func (h *hierarchy) notVisible(p relPath) error {
	return fmt.Errorf("%w: cgroup %s is not under %s, which shows only %s of the %s hierarchy: mount the host's cgroupfs (/sys/fs/cgroup, hostPath) and point --cgroup-root at it",
		ErrCannotCheck, p, h.mountDir, h.mountRoot, h.name())
}

func (h *hierarchy) name() string {
	if h.controllers == "" {
		return "cgroup v2"
	}
	return h.controllers
}

// Describe says, for the server's start-up log, how each hierarchy is seen.
func (n *Node) Describe() []string {
	var out []string
	for _, h := range n.hierarchies {
		switch {
		case h.mountDir == "":
			out = append(out, h.name()+": not mounted under "+n.root)
		case h.nsErr != nil:
			out = append(out, h.name()+": "+h.nsErr.Error())
		default:
			out = append(out, fmt.Sprintf("%s: %s (cgroup %s)", h.name(), h.mountDir, h.mountRoot))
		}
	}
	slices.Sort(out)
	return out
}

// Identify finds the container process pid runs in, from
// procRoot/<pid>/cgroup, by the rules of the package, and checks that a
// container runtime made that cgroup: every directory from the hierarchy's
// mount down to the container's cgroup's parent is owned by root. procRoot
// is the proc filesystem the pid is valid in ("/proc" in production): the
// server must see the caller's pid.
//
// Errors wrap ErrNotInContainer (no container, or the server's own),
// ErrNotRuntimeMade (a cgroup someone other than root could have made, or
// hierarchies that disagree), ErrCannotCheck (the server cannot see the
// hierarchy it would have to check), or fs.ErrNotExist (no such process).
//
// What the file says is only true while the process lives: a caller that
// exits lets its pid be reused. Callers that got the pid from a socket check
// that it still refers to their peer after this returns (peercred.AuthInfo.Alive).
func (n *Node) Identify(procRoot string, pid int) (Container, error) {
	b, path, err := readCgroupFile(procRoot, pid)
	if err != nil {
		return Container{}, err
	}
	return n.identifyProcess(pid, path, b)
}

// identifyProcess is identify of process pid's cgroup file b, read at
// path, with errors that name them.
func (n *Node) identifyProcess(pid int, path string, b []byte) (Container, error) {
	c, err := n.identify(b)
	if err != nil {
		return Container{}, fmt.Errorf("process %d (%s): %w", pid, path, err)
	}
	return c, nil
}

// named is a cgroup line that names a container, placed in its hierarchy.
type named struct {
	h     *hierarchy
	line  cgroupLine
	comps []string // below h.mountDir
	m     match
}

func (n *Node) identify(cgroupFile []byte) (Container, error) {
	lines, err := parseCgroupFile(cgroupFile)
	if err != nil {
		return Container{}, err
	}
	var found []named
	var notContainer string
	for _, l := range lines {
		h := n.hierarchies[l.controllers]
		if h == nil {
			h = &hierarchy{controllers: l.controllers, ownCtr: -1, rawOwnCtr: -1}
		}
		var comps []string
		var m match
		placeErr := errors.New("not mounted")
		if h.mountDir != "" {
			comps, placeErr = h.inMount(l.rel)
		}
		if placeErr == nil {
			m = find(comps, commonPrefix(comps, h.own), h.ownCtr)
		} else {
			// Not visible: it matters only if it would name a container.
			raw, rawCtr := h.rawOwn, h.rawOwnCtr
			if raw.ups != l.rel.ups {
				raw, rawCtr = relPath{}, -1
			}
			if m = find(l.rel.comps, commonPrefix(l.rel.comps, raw.comps), rawCtr); m.ctr >= 0 {
				if h.mountDir == "" {
					return Container{}, fmt.Errorf("%w: %s names container %s in the %s hierarchy, which is not mounted under %s: mount it there (the host's whole /sys/fs/cgroup)", ErrCannotCheck, l.path, m.id, h.name(), n.root)
				}
				return Container{}, placeErr
			}
		}
		if m.ctr < 0 {
			if m.why != "" && notContainer == "" {
				notContainer = fmt.Sprintf("%s is %s", l.path, m.why)
			}
			continue
		}
		if len(found) > 0 && m.id != found[0].m.id {
			return Container{}, disagree(found[0].container(), l.path, m.id)
		}
		found = append(found, named{h: h, line: l, comps: comps, m: m})
	}
	if len(found) == 0 {
		return Container{}, notInContainer(notContainer, cgroupFile)
	}
	c := found[0].container()
	if notContainer != "" {
		return Container{}, fmt.Errorf("%w: %s names container %s, but %s", ErrNotRuntimeMade, c.Cgroup, c.ID, notContainer)
	}
	for _, f := range found {
		if err := checkOwners(f.h.mountDir, f.h.dev, f.comps[:f.m.ctr+1]); err != nil {
			return Container{}, err
		}
	}
	return c, nil
}

func (f named) container() Container {
	return Container{ID: f.m.id, Runtime: f.m.runtime, Cgroup: f.line.path}
}

// checkOwners opens mountDir/comps... one directory at a time, never
// following a symlink, and checks that root owns each but the last: only
// root could have made the last one's name. The directories are opened
// through descriptors, so that a cgroup renamed or replaced meanwhile is
// not mistaken for the one checked.
func checkOwners(mountDir string, dev uint64, comps []string) error {
	fd, err := unix.Open(mountDir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrCannotCheck, mountDir, err)
	}
	dir := mountDir
	for i := -1; i < len(comps); i++ {
		if i >= 0 {
			c := comps[i]
			if c == "" || c == "." || c == ".." || strings.Contains(c, "/") {
				unix.Close(fd)
				return fmt.Errorf("%w: cgroup name %q", ErrNotRuntimeMade, c)
			}
			next, err := unix.Openat(fd, c, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			unix.Close(fd)
			dir = filepath.Join(dir, c)
			if errors.Is(err, unix.ENOENT) {
				return fmt.Errorf("cgroup %s is gone: the process moved, or its container stopped", dir)
			}
			if err != nil {
				return fmt.Errorf("%w: %s is not a cgroup directory: %w", ErrNotRuntimeMade, dir, err)
			}
			fd = next
		}
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			unix.Close(fd)
			return fmt.Errorf("%w: %s: %w", ErrCannotCheck, dir, err)
		}
		if st.Dev != dev {
			unix.Close(fd)
			return fmt.Errorf("%w: %s is not in the cgroup filesystem mounted at %s", ErrNotRuntimeMade, dir, mountDir)
		}
		if st.Uid != 0 && i < len(comps)-1 {
			unix.Close(fd)
			return fmt.Errorf("%w: %s is owned by uid %d, so that uid (a delegated cgroup) could have made and named what is below it", ErrNotRuntimeMade, dir, st.Uid)
		}
	}
	unix.Close(fd)
	return nil
}
