package containerid_test

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ccnp-eventlog/ccnp-eventlog/containerid"
)

// Container IDs as runtimes make them: 64 lower-case hex digits.
const (
	id1 = "8f3c2a41d6e07b95c1a2f4e6d8b0c3a5e7f9d1b3c5a7e9f1d3b5c7a9e1f3d5b7"
	id2 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	// A pod UID as the kubelet's systemd driver writes it in slice names.
	podSlice = "kubepods-besteffort-pod7e1b2c3d_4e5f_4a6b_8c7d_9e0f1a2b3c4d.slice"
)

// lines joins cgroup file lines as the kernel writes them.
func lines(ls ...string) []byte { return []byte(strings.Join(ls, "\n") + "\n") }

// v1 is a cgroup v1 file with every controller at path, as a container's
// processes have it, plus the hybrid unified line systemd adds.
func v1(path string) []byte {
	return lines(
		"12:hugetlb:"+path,
		"11:pids:"+path,
		"10:cpu,cpuacct:"+path,
		"9:memory:"+path,
		"8:devices:"+path,
		"7:freezer:"+path,
		"6:net_cls,net_prio:"+path,
		"5:blkio:"+path,
		"4:perf_event:"+path,
		"3:cpuset:"+path,
		"2:rdma:/",
		"1:name=systemd:"+path,
		"0::/",
	)
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name    string
		file    []byte
		id      string
		runtime string
	}{
		// Kubernetes with containerd.
		{"containerd systemd v2", lines("0::/kubepods.slice/kubepods-besteffort.slice/" + podSlice + "/cri-containerd-" + id1 + ".scope"), id1, "containerd"},
		{"containerd systemd v1", v1("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod7e1b2c3d_4e5f_4a6b_8c7d_9e0f1a2b3c4d.slice/cri-containerd-" + id1 + ".scope"), id1, "containerd"},
		{"containerd cgroupfs v1", v1("/kubepods/besteffort/pod7e1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d/" + id1), id1, "kubelet"},
		{"containerd cgroupfs v2 guaranteed", lines("0::/kubepods/pod7e1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d/" + id1), id1, "kubelet"},
		{"containerd systemd guaranteed", lines("0::/kubepods.slice/kubepods-pod7e1b2c3d_4e5f_4a6b_8c7d_9e0f1a2b3c4d.slice/cri-containerd-" + id1 + ".scope"), id1, "containerd"},
		{"static pod uid", lines("0::/kubepods/burstable/pod0f1e2d3c4b5a69788796a5b4c3d2e1f0/" + id1), id1, "kubelet"},
		{"kubelet --cgroup-root", lines("0::/ccnp-e2e-0a1b.slice/ccnp-e2e-0a1b-kubepods.slice/ccnp-e2e-0a1b-kubepods-burstable.slice/ccnp-e2e-0a1b-kubepods-burstable-pod2b1c.slice/cri-containerd-" + id1 + ".scope"), id1, "containerd"},
		// Seen from a server in another cgroup namespace (a pod on cgroup v2).
		{"containerd v2 other cgroupns", lines("0::/../../kubepods-besteffort.slice/" + podSlice + "/cri-containerd-" + id1 + ".scope"), id1, "containerd"},
		// A container that makes cgroups of its own below its scope.
		{"containerd v2 sub-cgroup", lines("0::/kubepods.slice/kubepods-besteffort.slice/" + podSlice + "/cri-containerd-" + id1 + ".scope/init.scope"), id1, "containerd"},
		// Kind: pods inside a node container that Docker runs. Seen without
		// the node's view, the node is the outermost container; a server
		// in the node knows better (TestNodeKind).
		{"kind node v1, from outside", v1("/docker/" + id2 + "/kubelet/kubepods/besteffort/pod7e1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d/" + id1), id2, "docker"},
		{"kind node v2", lines("0::/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-" + podSlice + "/cri-containerd-" + id1 + ".scope"), id1, "containerd"},
		// CRI-O.
		{"cri-o systemd v2", lines("0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod7e1b2c3d_4e5f_4a6b_8c7d_9e0f1a2b3c4d.slice/crio-" + id1 + ".scope"), id1, "cri-o"},
		{"cri-o systemd v1", v1("/kubepods.slice/kubepods-besteffort.slice/" + podSlice + "/crio-" + id1 + ".scope"), id1, "cri-o"},
		{"cri-o cgroupfs", v1("/kubepods/burstable/pod7e1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d/crio-" + id1), id1, "cri-o"},
		// Docker.
		{"docker systemd v2", lines("0::/system.slice/docker-" + id1 + ".scope"), id1, "docker"},
		{"docker systemd v1", v1("/system.slice/docker-" + id1 + ".scope"), id1, "docker"},
		{"docker cgroupfs v1", v1("/docker/" + id1), id1, "docker"},
		{"docker cgroupfs v2", lines("0::/docker/" + id1), id1, "docker"},
		// Outermost: Docker in Docker is the outer container.
		{"docker in docker", v1("/docker/" + id2 + "/docker/" + id1), id2, "docker"},
		// Podman (rootless, under the user's systemd).
		{"podman v2", lines("0::/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" + id1 + ".scope/container"), id1, "podman"},
		{"podman pod", lines("0::/machine.slice/machine-libpod_pod_" + id2 + ".slice/libpod-" + id1 + ".scope/container"), id1, "podman"},
		{"podman cgroupfs", v1("/libpod_parent/libpod-" + id1), id1, "podman"},
		// Hybrid: only the v1 controllers name the container.
		{"hybrid unified at root", lines("3:memory:/docker/"+id1, "2:pids:/docker/"+id1, "1:name=systemd:/docker/"+id1, "0::/"), id1, "docker"},
		// A path with a colon in it (cgroup names may hold one).
		{"colon in path", lines("0::/a:b/kubepods/besteffort/pod2b1c/" + id1), id1, "kubelet"},
		// Below the container's own cgroup: still the container, whatever
		// the names there say.
		{"nested kubelet cgroupfs", lines("0::/kubepods/besteffort/pod2b1c/" + id1 + "/kubepods/besteffort/pod3c4d/" + id2), id1, "kubelet"},
		{"nested systemd", lines("0::/kubepods.slice/kubepods-besteffort.slice/" + podSlice + "/cri-containerd-" + id1 + ".scope/kubepods.slice/kubepods-besteffort.slice/" + podSlice + "/cri-containerd-" + id2 + ".scope"), id1, "containerd"},
		{"nested docker", lines("0::/system.slice/docker-" + id1 + ".scope/docker/" + id2), id1, "docker"},
		{"nested cri-o", v1("/kubepods/burstable/pod2b1c/crio-" + id1 + "/crio-" + id2), id1, "cri-o"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := containerid.Parse(tc.file)
			if err != nil {
				t.Fatal(err)
			}
			if c.ID != tc.id || c.Runtime != tc.runtime {
				t.Errorf("Parse = %s (%s), want %s (%s)", c.ID, c.Runtime, tc.id, tc.runtime)
			}
			if !strings.Contains(c.Cgroup, tc.id) {
				t.Errorf("Cgroup %q does not hold the ID", c.Cgroup)
			}
		})
	}
}

func TestParseNotInContainer(t *testing.T) {
	for _, tc := range []struct {
		name string
		file []byte
	}{
		{"v2 root", lines("0::/")},
		{"v2 login session", lines("0::/user.slice/user-1000.slice/session-4.scope")},
		{"v2 system service", lines("0::/system.slice/containerd.service")},
		{"v1 host process", v1("/")},
		{"v1 system service", v1("/system.slice/kubelet.service")},
		// The conmon monitor CRI-O runs beside each container is not in it.
		{"cri-o conmon", lines("0::/kubepods.slice/kubepods-besteffort.slice/" + podSlice + "/crio-conmon-" + id1 + ".scope")},
		// A pod's cgroup, above its containers' (the pause process on cgroupfs v1 is in its own container).
		{"pod slice", lines("0::/kubepods.slice/kubepods-besteffort.slice/" + podSlice)},
		// IDs that are not 64 lower-case hex digits.
		{"short id", lines("0::/docker/" + id1[:32])},
		{"upper-case id", lines("0::/docker/" + strings.ToUpper(id1))},
		{"long id", lines("0::/docker/" + id1 + "0")},
		{"prefix without id", lines("0::/system.slice/docker-.scope")},
		// 64 letters, lower case, not hex digits: no runtime makes them.
		{"non-hex id docker", lines("0::/docker/" + strings.Repeat("g", 64))},
		{"non-hex id kubelet", lines("0::/kubepods/besteffort/pod2b1c/" + strings.Repeat("z", 64))},
		{"non-hex id containerd", lines("0::/kubepods.slice/kubepods-besteffort.slice/" + podSlice + "/cri-containerd-" + strings.Repeat("x", 64) + ".scope")},
		{"non-hex id cri-o", v1("/kubepods/burstable/pod2b1c/crio-" + strings.Repeat("q", 63) + "a")},
		// Parents no runtime uses.
		{"containerd namespace cgroupfs", lines("0::/default/" + id1)},
		{"id anywhere", lines("0::/user.slice/user-1000.slice/session-2.scope/" + id1)},
		{"docker scope outside system.slice", lines("0::/user.slice/docker-" + id1 + ".scope")},
		{"scope outside a pod slice", lines("0::/kubepods.slice/kubepods-besteffort.slice/cri-containerd-" + id1 + ".scope")},
		// A pod slice whose name does not continue its parent's.
		{"inconsistent slices", lines("0::/kubepods.slice/kubepods-besteffort.slice/kubepods-burstable-pod2b1c.slice/cri-containerd-" + id1 + ".scope")},
		// A kubelet layout that names no container where it should stops
		// the search: a container no layout names (some other runtime's)
		// cannot name another below it.
		{"nested in an unknown container", lines("0::/kubepods/besteffort/pod2b1c/sandbox-x/kubepods/besteffort/pod3c4d/" + id2)},
		{"pod uid not hex", lines("0::/kubepods/besteffort/podxyz/" + id1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := containerid.Parse(tc.file)
			if !errors.Is(err, containerid.ErrNotInContainer) {
				t.Fatalf("Parse = %+v, %v; want ErrNotInContainer", c, err)
			}
			if !strings.Contains(err.Error(), "/") {
				t.Errorf("the error does not show the cgroup paths: %v", err)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		file []byte
		want string
	}{
		{"empty", nil, "empty"},
		{"two containers", lines("4:memory:/docker/"+id1, "0::/system.slice/docker-"+id2+".scope"), "two containers"},
		{"container and pod", lines("4:memory:/kubepods/besteffort/pod2b1c/"+id1, "3:pids:/kubepods/besteffort/pod2b1c"), "a pod's cgroup"},
		{"not a cgroup line", lines("memory /docker/" + id1), "not hierarchy:controllers:path"},
		{"bad hierarchy", lines("x:memory:/docker/" + id1), "not a number"},
		{"relative path", lines("0::docker/" + id1), "not absolute"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := containerid.Parse(tc.file)
			if err == nil || errors.Is(err, containerid.ErrNotInContainer) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse: %v, want an error about %q", err, tc.want)
			}
		})
	}
}

// fakeProc writes procRoot/<pid>/cgroup for each pid.
func fakeProc(t *testing.T, files map[int][]byte) string {
	t.Helper()
	root := t.TempDir()
	for pid, b := range files {
		dir := filepath.Join(root, strconv.Itoa(pid))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "cgroup"), b, 0o444); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestOfProcess(t *testing.T) {
	proc := fakeProc(t, map[int][]byte{
		101: lines("0::/kubepods.slice/kubepods-besteffort.slice/" + podSlice + "/cri-containerd-" + id1 + ".scope"),
		102: v1("/kubepods/burstable/pod7e1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d/crio-" + id2),
		103: lines("0::/user.slice/user-0.slice/session-1.scope"),
		104: []byte(strings.Repeat("0::/"+strings.Repeat("a", 200)+"\n", 400)), // 80 KB: no cgroup file is that big
	})
	for pid, want := range map[int]string{101: id1, 102: id2} {
		c, err := containerid.OfProcess(proc, pid)
		if err != nil || c.ID != want {
			t.Errorf("OfProcess(%d) = %+v, %v; want %s", pid, c, err, want)
		}
	}
	if _, err := containerid.OfProcess(proc, 103); !errors.Is(err, containerid.ErrNotInContainer) || !strings.Contains(err.Error(), "process 103") {
		t.Errorf("a login session: %v, want ErrNotInContainer naming the process", err)
	}
	if _, err := containerid.OfProcess(proc, 105); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a process that is gone: %v, want ErrNotExist", err)
	}
	if _, err := containerid.OfProcess(proc, 104); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("an oversized file: %v", err)
	}
	if _, err := containerid.OfProcess(proc, 0); err == nil {
		t.Error("pid 0 (a peer in a PID namespace the reader cannot see) must be an error")
	}
}

// TestOfProcessSelf reads this process's real cgroup file: it must parse,
// whether or not the test runs in a container.
func TestOfProcessSelf(t *testing.T) {
	c, err := containerid.OfProcess("/proc", os.Getpid())
	if err != nil && !errors.Is(err, containerid.ErrNotInContainer) {
		t.Fatalf("this process's own cgroup file: %v", err)
	}
	t.Logf("this test runs in %+v (%v)", c, err)
}
