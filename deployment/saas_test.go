package deployment

import (
	"path"
	"slices"
	"strings"
	"testing"
)

// TestSAASOffByDefault: without saas.enabled the server keeps its least
// privileges, and is told to keep no state (its root filesystem is
// read-only, and the default state directory is not mounted).
func TestSAASOffByDefault(t *testing.T) {
	spec := &render(t).daemonSet(t).Spec.Template.Spec
	server := findContainer(t, spec.Containers, "eventlog-server")
	if v, ok := flagValue(server.Args, "state-dir"); !ok || v != "" {
		t.Errorf("server --state-dir = %q (set: %v), want it set empty: container-level events off", v, ok)
	}
	if spec.HostPID {
		t.Error("hostPID without saas.enabled")
	}
}

func TestSAASValues(t *testing.T) {
	spec := &render(t, "saas.enabled=true").daemonSet(t).Spec.Template.Spec
	server := findContainer(t, spec.Containers, "eventlog-server")
	stage := findContainer(t, spec.InitContainers, "stage")

	// Callers are found by pid: the server must see other pods' processes.
	if !spec.HostPID || spec.HostNetwork {
		t.Errorf("hostPID %v hostNetwork %v, want the host's PID namespace only", spec.HostPID, spec.HostNetwork)
	}
	for name, want := range map[string]string{
		"state-dir":           "/var/lib/ccnp-eventlog",
		"saas-max-events":     "1024",
		"saas-max-bytes":      "1048576",
		"saas-max-event-size": "65536",
		"runtime-max-bytes":   "16777216",
	} {
		if got, _ := flagValue(server.Args, name); got != want {
			t.Errorf("server --%s = %q, want %q", name, got, want)
		}
	}
	if _, ok := flagValue(server.Args, "sim-tdx-state"); ok {
		t.Error("--sim-tdx-state in host mode")
	}

	// Root, with exactly the two capabilities the per-container files need,
	// and SYS_PTRACE for the CRI check (TestSAASIdentityMounts).
	sc := server.SecurityContext
	add := slices.Sorted(slices.Values(sc.Capabilities.Add))
	if sc.RunAsUser == nil || *sc.RunAsUser != 0 || isTrue(sc.Privileged) || !slices.Equal(sc.Capabilities.Drop, []string{"ALL"}) || !slices.Equal(add, []string{"CHOWN", "DAC_OVERRIDE", "SYS_PTRACE"}) {
		t.Errorf("server security context %+v, want unprivileged root with CHOWN, DAC_OVERRIDE and SYS_PTRACE only", sc)
	}
	if !isTrue(sc.ReadOnlyRootFilesystem) || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("server may write its root filesystem or escalate: %+v", sc)
	}
	// The staged copies and host directories go to the server's uid: root.
	if uid, _ := flagValue(stage.Args, "uid"); uid != "0" {
		t.Errorf("stage --uid = %q, want the server's 0", uid)
	}

	// The state directory is the host's, read-write, at the same path.
	m := mountAt(server, "/var/lib/ccnp-eventlog")
	if m == nil || m.ReadOnly {
		t.Fatalf("state directory mount %+v, want read-write", m)
	}
	if v := findVolume(spec, m.Name); v == nil || v.HostPath == nil || v.HostPath.Path != "/var/lib/ccnp-eventlog" || v.HostPath.Type != "DirectoryOrCreate" {
		t.Errorf("state directory volume %+v, want the host's /var/lib/ccnp-eventlog (DirectoryOrCreate)", v)
	}
	// RTMR3 is written through the host's tdx_guest directory, read-write;
	// the path the server extends through resolves into it (the class
	// directory is a symlink to the device's).
	const tdxGuest = "/sys/devices/virtual/misc/tdx_guest"
	m, rest := resolve(server, path.Join(tdxGuest, "measurements/rtmr3:sha384"))
	if m == nil || m.ReadOnly || rest != "measurements/rtmr3:sha384" {
		t.Fatalf("rtmr3:sha384 is not on a read-write mount: %+v %q", m, rest)
	}
	if v := findVolume(spec, m.Name); v == nil || v.HostPath == nil || v.HostPath.Path != tdxGuest || v.HostPath.Type != "Directory" {
		t.Errorf("tdx_guest volume %+v", v)
	}
	// Nothing else of the host's /sys is writable.
	for _, vm := range server.VolumeMounts {
		v := findVolume(spec, vm.Name)
		if v != nil && v.HostPath != nil && strings.HasPrefix(v.HostPath.Path, "/sys") && v.HostPath.Path != tdxGuest && !vm.ReadOnly {
			t.Errorf("server mounts the host's %s", v.HostPath.Path)
		}
	}
}

func TestSAASSimulated(t *testing.T) {
	spec := &render(t, "saas.enabled=true", "hwsource=simulated", "nodeSelector=null", "saas.stateDir=/var/lib/el/").daemonSet(t).Spec.Template.Spec
	server := findContainer(t, spec.Containers, "eventlog-server")
	if got, _ := flagValue(server.Args, "sim-tdx-state"); got != "/var/lib/el/simulated-tdx-rtmrs.json" {
		t.Errorf("server --sim-tdx-state = %q, want the simulated RTMRs kept in the state directory", got)
	}
	if m := mountAt(server, "/var/lib/el/"); m == nil || m.ReadOnly {
		t.Errorf("state directory not mounted read-write: %+v", m)
	}
	// Callers are still told by their cgroups: the host's cgroupfs (read
	// only, TestSAASIdentityMounts) is the one host /sys directory.
	for _, v := range spec.Volumes {
		if v.HostPath != nil && strings.HasPrefix(v.HostPath.Path, "/sys") && v.HostPath.Path != "/sys/fs/cgroup" {
			t.Errorf("simulated mode mounts the host's %s", v.HostPath.Path)
		}
	}
	// tdxGuest "" leaves the mount out in host mode too.
	spec = &render(t, "saas.enabled=true", "saas.tdxGuest=").daemonSet(t).Spec.Template.Spec
	for _, v := range spec.Volumes {
		if v.HostPath != nil && strings.HasPrefix(v.HostPath.Path, "/sys/devices") {
			t.Errorf("saas.tdxGuest=\"\" still mounts %s", v.HostPath.Path)
		}
	}
}

func TestSAASSchema(t *testing.T) {
	for _, tt := range []struct{ set, want string }{
		{"saas.stateDir=var/lib", "stateDir"},
		{"saas.maxEvents=0", "maxEvents"},
		{"saas.enable=true", "enable"},
		{"saas.tdxGuest=sys/x", "tdxGuest"},
		{"saas.criSocket=run/containerd.sock", "criSocket"},
		{"saas.hostCgroupfs=", "hostCgroupfs"},
	} {
		_, err := helm(t, "template", release, chartDir, "--set", tt.set)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("--set %s: error %v, want one naming %s", tt.set, err, tt.want)
		}
	}
	out, err := helm(t, "lint", "--strict", chartDir, "--set", "saas.enabled=true")
	if err != nil || !strings.Contains(out, "0 chart(s) failed") {
		t.Errorf("helm lint with saas.enabled: %v\n%s", err, out)
	}
}

// TestSAASIdentityMounts: with saas.enabled the server checks callers'
// cgroups on the host's cgroupfs and asks the node's runtime, both mounted
// read-only.
func TestSAASIdentityMounts(t *testing.T) {
	spec := &render(t, "saas.enabled=true").daemonSet(t).Spec.Template.Spec
	server := findContainer(t, spec.Containers, "eventlog-server")
	for _, tc := range []struct{ flag, mountPath, hostPath, typ string }{
		{"cgroup-root", "/host/sys/fs/cgroup", "/sys/fs/cgroup", "Directory"},
		{"cri-socket", "/run/containerd/containerd.sock", "/run/containerd/containerd.sock", "Socket"},
	} {
		if got, _ := flagValue(server.Args, tc.flag); got != tc.mountPath {
			t.Errorf("server --%s = %q, want %q", tc.flag, got, tc.mountPath)
		}
		m := mountAt(server, tc.mountPath)
		if m == nil || !m.ReadOnly {
			t.Errorf("mount at %s: %+v, want read-only", tc.mountPath, m)
			continue
		}
		if v := findVolume(spec, m.Name); v == nil || v.HostPath == nil || v.HostPath.Path != tc.hostPath || v.HostPath.Type != tc.typ {
			t.Errorf("volume of %s: %+v, want the host's %s (%s)", tc.mountPath, v, tc.hostPath, tc.typ)
		}
	}

	// CRI-O's socket; none at all.
	spec = &render(t, "saas.enabled=true", "saas.criSocket=/run/crio/crio.sock").daemonSet(t).Spec.Template.Spec
	server = findContainer(t, spec.Containers, "eventlog-server")
	if got, _ := flagValue(server.Args, "cri-socket"); got != "/run/crio/crio.sock" || mountAt(server, "/run/crio/crio.sock") == nil {
		t.Errorf("CRI-O: --cri-socket=%q, mount %+v", got, mountAt(server, "/run/crio/crio.sock"))
	}
	spec = &render(t, "saas.enabled=true", "saas.criSocket=").daemonSet(t).Spec.Template.Spec
	server = findContainer(t, spec.Containers, "eventlog-server")
	if got, _ := flagValue(server.Args, "cri-socket"); got != "none" {
		t.Errorf("no CRI socket: --cri-socket=%q, want none (the cgroup checks alone)", got)
	}
	for _, v := range spec.Volumes {
		if v.Name == "cri-socket" {
			t.Errorf("a CRI socket volume without a socket: %+v", v)
		}
	}
	// SYS_PTRACE only for the CRI check: reading a caller's
	// /proc/<pid>/ns/pid, which the kernel allows another user only with it.
	if add := slices.Sorted(slices.Values(server.SecurityContext.Capabilities.Add)); !slices.Equal(add, []string{"CHOWN", "DAC_OVERRIDE"}) {
		t.Errorf("no CRI socket: capabilities %v, want CHOWN and DAC_OVERRIDE only", add)
	}

	// Without saas.enabled, neither.
	spec = &render(t).daemonSet(t).Spec.Template.Spec
	for _, v := range spec.Volumes {
		if v.Name == "cri-socket" || v.Name == "host-cgroupfs" {
			t.Errorf("volume %s without saas.enabled", v.Name)
		}
	}
}
