package containerid_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ccnp-eventlog/ccnp-eventlog/containerid"
)

// The tests below make real cgroup-like directory trees in a temporary
// directory, one per hierarchy, with a mountinfo that says where each is
// mounted and which cgroup it shows, as the kernel writes it. Directories
// are made by root (the tests run as root, as CI does); "delegated" ones are
// chowned to 65534, as systemd chowns a delegated cgroup to its user.

func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("chowning directories to another uid needs root")
	}
}

// tree is a fake node: hierarchies under root, a mountinfo, and a fake
// /proc with each caller's cgroup file.
type tree struct {
	t         testing.TB
	root      string // --cgroup-root
	mountinfo strings.Builder
	proc      string
	nextPID   int
}

func newTree(t testing.TB) *tree {
	needRoot(t)
	dir := t.TempDir()
	tr := &tree{t: t, root: filepath.Join(dir, "cgroup"), proc: filepath.Join(dir, "proc"), nextPID: 100}
	for _, d := range []string{tr.root, tr.proc} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return tr
}

// mount adds a hierarchy: a directory dir under the root (made here unless
// it exists), mounted showing cgroup root, of type cgroup2 when options
// is "", else cgroup v1 with those controllers.
func (tr *tree) mount(dir, root, options string) string {
	tr.t.Helper()
	mp := filepath.Join(tr.root, dir)
	if err := os.MkdirAll(mp, 0o755); err != nil {
		tr.t.Fatal(err)
	}
	tr.mountAt(mp, root, options)
	return mp
}

func (tr *tree) mountAt(mp, root, options string) {
	fstype, super := "cgroup2", "rw,nsdelegate"
	if options != "" {
		fstype, super = "cgroup", "rw,"+options
	}
	fmt.Fprintf(&tr.mountinfo, "%d 30 0:%d %s %s rw,nosuid,nodev,noexec,relatime shared:9 - %s cgroup %s\n",
		40+strings.Count(tr.mountinfo.String(), "\n"), 27, root, strings.ReplaceAll(mp, " ", `\040`), fstype, super)
}

// mkdir makes cgroup path p (below a mount) as root.
func (tr *tree) mkdir(mp, p string) string {
	tr.t.Helper()
	d := filepath.Join(mp, p)
	if err := os.MkdirAll(d, 0o755); err != nil {
		tr.t.Fatal(err)
	}
	return d
}

// caller writes a cgroup file for a new pid.
func (tr *tree) caller(cgroupFile []byte) int {
	tr.t.Helper()
	tr.nextPID++
	dir := filepath.Join(tr.proc, fmt.Sprint(tr.nextPID))
	if err := os.Mkdir(dir, 0o755); err != nil {
		tr.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup"), cgroupFile, 0o444); err != nil {
		tr.t.Fatal(err)
	}
	return tr.nextPID
}

func (tr *tree) node(self []byte) *containerid.Node {
	tr.t.Helper()
	n, err := containerid.NewNode(tr.root, []byte(tr.mountinfo.String()), self)
	if err != nil {
		tr.t.Fatal(err)
	}
	return n
}

func chown(t *testing.T, dir string, uid int) {
	t.Helper()
	if err := os.Chown(dir, uid, uid); err != nil {
		t.Fatal(err)
	}
}

const (
	podA = "kubepods-besteffort-pod7e1b2c3d_4e5f_4a6b_8c7d_9e0f1a2b3c4d.slice"
	podB = "kubepods-burstable-pod11112222_3333_4444_5555_666677778888.slice"
	// id3 is the server's own container, and node a kind node's.
	id3  = "3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c"
	node = "9d9d9d9d9d9d9d9d9d9d9d9d9d9d9d9d9d9d9d9d9d9d9d9d9d9d9d9d9d9d9d9d"
)

func systemdPath(podSlice, id string) string {
	qos := podSlice[:strings.Index(podSlice, "-pod")] + ".slice"
	return "/kubepods.slice/" + qos + "/" + podSlice + "/cri-containerd-" + id + ".scope"
}

func identify(t *testing.T, n *containerid.Node, proc string, pid int) (containerid.Container, error) {
	t.Helper()
	c, err := n.Identify(proc, pid)
	t.Logf("pid %d: %+v, %v", pid, c, err)
	return c, err
}

func wantID(t *testing.T, c containerid.Container, err error, id string) {
	t.Helper()
	if err != nil || c.ID != id {
		t.Errorf("got %+v, %v; want container %.12s", c, err, id)
	}
}

func wantErr(t *testing.T, err, target error, msg string) {
	t.Helper()
	if !errors.Is(err, target) || !strings.Contains(err.Error(), msg) {
		t.Errorf("got %v; want %v saying %q", err, target, msg)
	}
}

// TestNodeHostV2: a server on a cgroup v2 host, a container of each
// kubelet layout, and the attacks a delegated cgroup allows.
func TestNodeHostV2(t *testing.T) {
	tr := newTree(t)
	mp := tr.mount("", "/", "")
	ctr := tr.mkdir(mp, systemdPath(podA, id1))
	tr.mkdir(mp, "/kubepods/besteffort/pod2b1c/"+id2)
	// A user's delegated subtree: systemd made it and gave it to the user.
	user := tr.mkdir(mp, "/user.slice/user-65534.slice/user@65534.service")
	chown(t, user, 65534)
	n := tr.node(lines("0::/system.slice/eventlog-server.service"))

	c, err := identify(t, n, tr.proc, tr.caller(lines("0::"+systemdPath(podA, id1))))
	wantID(t, c, err, id1)
	if c.Runtime != "containerd" || !c.FromKubelet() {
		t.Errorf("runtime %q, FromKubelet %v", c.Runtime, c.FromKubelet())
	}
	c, err = identify(t, n, tr.proc, tr.caller(lines("0::/kubepods/besteffort/pod2b1c/"+id2)))
	wantID(t, c, err, id2)

	// The user names cgroups after container 1 in its subtree: every
	// directory below the delegated one is the user's, so the names are.
	for _, p := range []string{
		"/kubepods/besteffort/pod2b1c/" + id1,
		systemdPath(podA, id1),
		"/docker/" + id1,
	} {
		d := tr.mkdir(user, "app.slice"+p)
		for dd := d; dd != user; dd = filepath.Dir(dd) {
			chown(t, dd, 65534) // as the user's mkdir would make them
		}
		_, err = identify(t, n, tr.proc, tr.caller(lines("0::/user.slice/user-65534.slice/user@65534.service/app.slice"+p)))
		wantErr(t, err, containerid.ErrNotRuntimeMade, "owned by uid 65534")
	}
	// Even if root had made the directories below a delegated one.
	tr.mkdir(user, "root-made/kubepods/besteffort/pod2b1c/"+id1)
	_, err = identify(t, n, tr.proc, tr.caller(lines("0::/user.slice/user-65534.slice/user@65534.service/root-made/kubepods/besteffort/pod2b1c/"+id1)))
	wantErr(t, err, containerid.ErrNotRuntimeMade, "user@65534.service is owned by uid 65534")

	// A delegated directory anywhere on the path, even the pod's.
	pod := filepath.Dir(ctr)
	chown(t, pod, 65534)
	_, err = identify(t, n, tr.proc, tr.caller(lines("0::"+systemdPath(podA, id1))))
	wantErr(t, err, containerid.ErrNotRuntimeMade, podA+" is owned by uid 65534")
	chown(t, pod, 0)
	// The container's own directory may be another uid's: runc gives it to
	// a user-namespaced container's root.
	chown(t, ctr, 65534)
	c, err = identify(t, n, tr.proc, tr.caller(lines("0::"+systemdPath(podA, id1))))
	wantID(t, c, err, id1)

	// A process in container 1 makes a cgroup named after container 2
	// in its own and moves in: it is still container 1.
	tr.mkdir(ctr, "kubepods/besteffort/pod2b1c/"+id2)
	c, err = identify(t, n, tr.proc, tr.caller(lines("0::"+systemdPath(podA, id1)+"/kubepods/besteffort/pod2b1c/"+id2)))
	wantID(t, c, err, id1)

	// Not in a container; gone; a symlink where a cgroup should be.
	_, err = identify(t, n, tr.proc, tr.caller(lines("0::/user.slice/user-65534.slice/session-3.scope")))
	wantErr(t, err, containerid.ErrNotInContainer, "no cgroup of the process names a container")
	_, err = identify(t, n, tr.proc, tr.caller(lines("0::/kubepods/besteffort/pod2b1c/"+id3)))
	if err == nil || !strings.Contains(err.Error(), "is gone") {
		t.Errorf("a cgroup that does not exist: %v", err)
	}
	if err := os.Symlink(ctr, filepath.Join(mp, "kubepods/besteffort/pod2b1c", id3)); err != nil {
		t.Fatal(err)
	}
	_, err = identify(t, n, tr.proc, tr.caller(lines("0::/kubepods/besteffort/pod2b1c/"+id3)))
	wantErr(t, err, containerid.ErrNotRuntimeMade, "not a cgroup directory")
	if _, err := n.Identify(tr.proc, 99999); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a process that is gone: %v", err)
	}
}

// TestNodeHostV1: a cgroup v1 (hybrid) host: every hierarchy that names the
// container is checked, and they must agree.
func TestNodeHostV1(t *testing.T) {
	tr := newTree(t)
	hier := map[string]string{"memory": "memory", "cpu,cpuacct": "cpu,cpuacct", "name=systemd": "systemd"}
	mps := map[string]string{}
	for ctl, dir := range hier {
		mps[ctl] = tr.mount(dir, "/", ctl)
	}
	mps[""] = tr.mount("unified", "/", "")
	path := "/kubepods/burstable/pod2b1c/" + id1
	file := func(p map[string]string) []byte {
		return lines("4:memory:"+p["memory"], "3:cpu,cpuacct:"+p["cpu,cpuacct"], "1:name=systemd:"+p["name=systemd"], "0::"+p[""])
	}
	for ctl, mp := range mps {
		if ctl != "" {
			tr.mkdir(mp, path)
		}
	}
	n := tr.node(file(map[string]string{"memory": "/", "cpu,cpuacct": "/", "name=systemd": "/system.slice/x.service", "": "/"}))
	all := map[string]string{"memory": path, "cpu,cpuacct": path, "name=systemd": path, "": "/"}
	c, err := identify(t, n, tr.proc, tr.caller(file(all)))
	wantID(t, c, err, id1)

	// A delegated name=systemd subtree (systemd on v1 delegates there):
	// one hierarchy naming container 2 from it disagrees with the others,
	// and alone it is refused for its owner.
	user := tr.mkdir(mps["name=systemd"], "/user.slice/user-65534.slice/user@65534.service")
	chown(t, user, 65534)
	fake := tr.mkdir(user, "kubepods/burstable/pod2b1c/"+id2)
	for d := fake; d != user; d = filepath.Dir(d) {
		chown(t, d, 65534)
	}
	spoof := map[string]string{"memory": path, "cpu,cpuacct": path, "name=systemd": "/user.slice/user-65534.slice/user@65534.service/kubepods/burstable/pod2b1c/" + id2, "": "/"}
	_, err = identify(t, n, tr.proc, tr.caller(file(spoof)))
	wantErr(t, err, containerid.ErrNotRuntimeMade, "two containers")
	spoof["memory"], spoof["cpu,cpuacct"] = "/user.slice", "/user.slice"
	_, err = identify(t, n, tr.proc, tr.caller(file(spoof)))
	wantErr(t, err, containerid.ErrNotRuntimeMade, "owned by uid 65534")

	// A process left in its pod's cgroup in one hierarchy.
	half := map[string]string{"memory": path, "cpu,cpuacct": filepath.Dir(path), "name=systemd": path, "": "/"}
	_, err = identify(t, n, tr.proc, tr.caller(file(half)))
	wantErr(t, err, containerid.ErrNotRuntimeMade, "a pod's cgroup")

	// A hierarchy the server cannot see that names a container.
	_, err = identify(t, n, tr.proc, tr.caller(append(file(all), "5:pids:"+path+"\n"...)))
	wantErr(t, err, containerid.ErrCannotCheck, "pids hierarchy, which is not mounted under "+tr.root)
	// One that names none does not matter.
	c, err = identify(t, n, tr.proc, tr.caller(append(file(all), "5:pids:/\n"...)))
	wantID(t, c, err, id1)
}

// TestNodeKind: a server in a pod of a kind node on a cgroup v1 host
// without cgroup namespaces. The paths carry the node container's own
// /docker/<node>, which is the server's too: it is the node's, not the
// caller's. The host's cgroupfs is mounted as the node shows it (each
// hierarchy's root is /docker/<node>).
func TestNodeKind(t *testing.T) {
	tr := newTree(t)
	mp := tr.mount("memory", "/docker/"+node, "memory")
	prefix := "/docker/" + node + "/kubelet"
	own := prefix + "/kubepods/besteffort/pod2b1c/" + id3
	tr.mkdir(mp, "/kubelet/kubepods/besteffort/pod2b1c/"+id3)
	tr.mkdir(mp, "/kubelet/kubepods/besteffort/pod2b1c/"+id2)
	tr.mkdir(mp, "/kubelet/kubepods/burstable/pod3c4d/"+id1)
	tr.mkdir(mp, "/system.slice/containerd.service")
	n := tr.node(lines("4:memory:" + own))

	c, err := identify(t, n, tr.proc, tr.caller(lines("4:memory:"+prefix+"/kubepods/burstable/pod3c4d/"+id1)))
	wantID(t, c, err, id1)
	// Another container of the server's own pod.
	c, err = identify(t, n, tr.proc, tr.caller(lines("4:memory:"+prefix+"/kubepods/besteffort/pod2b1c/"+id2)))
	wantID(t, c, err, id2)
	// The server's own container, and the node's own services.
	_, err = identify(t, n, tr.proc, tr.caller(lines("4:memory:"+own)))
	wantErr(t, err, containerid.ErrNotInContainer, "the server's own container")
	_, err = identify(t, n, tr.proc, tr.caller(lines("4:memory:/docker/"+node+"/system.slice/containerd.service")))
	wantErr(t, err, containerid.ErrNotInContainer, "names a container")
	// A process of the host, outside the node, that names a container.
	_, err = identify(t, n, tr.proc, tr.caller(lines("4:memory:/docker/"+id2)))
	wantErr(t, err, containerid.ErrCannotCheck, "is not under")

	// A hierarchy the node's runtime does not manage (v2 on a hybrid host,
	// not mounted in the node): every process of the node is in the node's
	// cgroup there, the server too. It names only the node.
	n = tr.node(lines("4:memory:"+own, "0::/docker/"+node))
	c, err = identify(t, n, tr.proc, tr.caller(lines("4:memory:"+prefix+"/kubepods/burstable/pod3c4d/"+id1, "0::/docker/"+node)))
	wantID(t, c, err, id1)
	_, err = identify(t, n, tr.proc, tr.caller(lines("4:memory:"+own, "0::/docker/"+node)))
	wantErr(t, err, containerid.ErrNotInContainer, "the server's own container")

	// The same node, with the host's whole hierarchy mounted (a server
	// run on the host): the node is the caller's outermost container.
	tr2 := newTree(t)
	mp2 := tr2.mount("memory", "/", "memory")
	tr2.mkdir(mp2, "/docker/"+node+"/kubelet/kubepods/burstable/pod3c4d/"+id1)
	c, err = identify(t, tr2.node(lines("4:memory:/")), tr2.proc, tr2.caller(lines("4:memory:"+prefix+"/kubepods/burstable/pod3c4d/"+id1)))
	wantID(t, c, err, node)
}

// TestNodePodV2: a server in a pod on cgroup v2, in a cgroup namespace of
// its own: other pods' cgroups read as "/../../<pod slice>/<scope>".
func TestNodePodV2(t *testing.T) {
	tr := newTree(t)
	// The host's cgroupfs, mounted into the pod (hostPath): from the
	// server's namespace, its root is 4 levels up.
	mp := tr.mount("host", "/../../../..", "")
	own := tr.mkdir(mp, systemdPath(podA, id3))
	tr.mkdir(mp, systemdPath(podA, id2))
	tr.mkdir(mp, systemdPath(podB, id1))
	// The pod's own /sys/fs/cgroup shows its namespace's root, the
	// server's container: a symlink stands for that mount here, out of the
	// cgroup root.
	podCgroup := filepath.Join(filepath.Dir(tr.root), "pod-sys-fs-cgroup")
	if err := os.Symlink(own, podCgroup); err != nil {
		t.Fatal(err)
	}
	tr.mountAt(podCgroup, "/", "")
	n := tr.node(lines("0::/"))
	if d := strings.Join(n.Describe(), "; "); !strings.Contains(d, mp) {
		t.Errorf("Describe: %s", d)
	}

	c, err := identify(t, n, tr.proc, tr.caller(lines("0::/../../../kubepods-burstable.slice/"+podB+"/cri-containerd-"+id1+".scope")))
	wantID(t, c, err, id1)
	// Placed wrong, the slices do not continue each other: refused.
	_, err = identify(t, n, tr.proc, tr.caller(lines("0::/../../"+podB+"/cri-containerd-"+id1+".scope")))
	wantErr(t, err, containerid.ErrNotInContainer, "not a container's")
	c, err = identify(t, n, tr.proc, tr.caller(lines("0::/../cri-containerd-"+id2+".scope")))
	wantID(t, c, err, id2)
	_, err = identify(t, n, tr.proc, tr.caller(lines("0::/")))
	wantErr(t, err, containerid.ErrNotInContainer, "the server's own container")
	// Above the host's root: not visible.
	_, err = identify(t, n, tr.proc, tr.caller(lines("0::/../../../../../x/kubepods/besteffort/pod2b1c/"+id1)))
	wantErr(t, err, containerid.ErrCannotCheck, "is not under")

	// Without the pod's own mount, the "..": cannot be placed.
	tr2 := newTree(t)
	mp2 := tr2.mount("host", "/../../../..", "")
	tr2.mkdir(mp2, systemdPath(podB, id1))
	n2 := tr2.node(lines("0::/"))
	_, err = identify(t, n2, tr2.proc, tr2.caller(lines("0::/../../"+podB+"/cri-containerd-"+id1+".scope")))
	wantErr(t, err, containerid.ErrCannotCheck, "the pod's own /sys/fs/cgroup")

	// With only the pod's own cgroupfs (the default --cgroup-root in a
	// pod), other pods cannot be seen: the error says what to mount.
	tr3 := newTree(t)
	tr3.mount("", "/", "")
	n3 := tr3.node(lines("0::/"))
	_, err = identify(t, n3, tr3.proc, tr3.caller(lines("0::/../../"+podB+"/cri-containerd-"+id1+".scope")))
	wantErr(t, err, containerid.ErrCannotCheck, "mount the host's cgroupfs")
}

// TestNodeMountinfo: paths with spaces, and a hierarchy mounted twice.
func TestNodeMountinfo(t *testing.T) {
	tr := newTree(t)
	tr.root = filepath.Join(tr.root, "with space")
	mp := tr.mount("", "/", "")
	tr.mkdir(mp, "/docker/"+id1)
	// The same hierarchy, mounted again deeper (kind's bind mounts): the
	// mount showing the most of it is the one used.
	tr.mount("docker", "/docker", "")
	n := tr.node(lines("0::/"))
	c, err := identify(t, n, tr.proc, tr.caller(lines("0::/docker/"+id1)))
	wantID(t, c, err, id1)

	if _, err := containerid.NewNode(tr.root, []byte("garbage\n"), lines("0::/")); err == nil {
		t.Error("a mountinfo line that is not a mount must be an error")
	}
}

// BenchmarkIdentify: what telling a caller's container costs per request,
// on a cgroup v1 node with the kubelet's cgroupfs layout in four
// hierarchies (a read of the cgroup file, and a descriptor walk of six
// directories in each hierarchy that names the container).
func BenchmarkIdentify(b *testing.B) {
	tr := newTree(b)
	path := "/kubepods/burstable/pod2b1c/" + id1
	var file []string
	for i, ctl := range []string{"memory", "cpu,cpuacct", "pids", "name=systemd"} {
		tr.mkdir(tr.mount(strings.TrimPrefix(ctl, "name="), "/", ctl), path)
		file = append(file, fmt.Sprintf("%d:%s:%s", i+1, ctl, path))
	}
	n := tr.node(lines("4:memory:/", "3:cpu,cpuacct:/", "2:pids:/", "1:name=systemd:/"))
	pid := tr.caller(lines(file...))
	b.ResetTimer()
	for b.Loop() {
		if _, err := n.Identify(tr.proc, pid); err != nil {
			b.Fatal(err)
		}
	}
}
