package deployment

import (
	"os/exec"
	"path"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

const (
	chartDir = "deployment/charts/eventlog-server"
	// release is the release name the plain manifests are rendered with.
	release = "eventlog-server"
	// tdxGuestLabel is the label Node Feature Discovery, with Intel's rules,
	// puts on TDX guests; the upstream CCNP DaemonSets select on it.
	tdxGuestLabel = "intel.feature.node.kubernetes.io/tdx-guest"
	serverBinary  = "/usr/bin/eventlog-server"
)

// firmwareFiles are the root-only host files the init container stages, and
// where the server looks for their copies under its root (hwsource).
var firmwareFiles = []struct{ host, staged string }{
	{"/sys/firmware/acpi/tables/CCEL", "/run/firmware/acpi/tables/CCEL"},
	{"/sys/firmware/acpi/tables/data/CCEL", "/run/firmware/acpi/tables/data/CCEL"},
	{"/sys/kernel/security/tpm0/binary_bios_measurements", "/run/firmware/tpm0/binary_bios_measurements"},
}

// rendering is the chart rendered with some values.
type rendering struct {
	objects []object
}

func render(t *testing.T, sets ...string) rendering {
	t.Helper()
	args := []string{"template", release, chartDir}
	for _, s := range sets {
		args = append(args, "--set", s)
	}
	out, err := helm(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	return rendering{decodeAll[object](t, "helm template", out)}
}

func (r rendering) find(kind string) *object {
	for i := range r.objects {
		if r.objects[i].Kind == kind {
			return &r.objects[i]
		}
	}
	return nil
}

func (r rendering) daemonSet(t *testing.T) *object {
	t.Helper()
	ds := r.find("DaemonSet")
	if ds == nil {
		t.Fatal("no DaemonSet rendered")
	}
	return ds
}

func findContainer(t *testing.T, cs []container, name string) *container {
	t.Helper()
	for i := range cs {
		if cs[i].Name == name {
			return &cs[i]
		}
	}
	t.Fatalf("no container %q", name)
	return nil
}

func findVolume(spec *podSpec, name string) *volume {
	for i := range spec.Volumes {
		if spec.Volumes[i].Name == name {
			return &spec.Volumes[i]
		}
	}
	return nil
}

// mountAt returns the container's mount whose mountPath is dir, or nil.
func mountAt(c *container, dir string) *volumeMount {
	for i := range c.VolumeMounts {
		if c.VolumeMounts[i].MountPath == dir {
			return &c.VolumeMounts[i]
		}
	}
	return nil
}

// resolve says where a path inside the container comes from: the volume
// mounted deepest above it, and the path's remainder below that mount.
func resolve(c *container, p string) (m *volumeMount, rest string) {
	for i := range c.VolumeMounts {
		vm := &c.VolumeMounts[i]
		if p == vm.MountPath || strings.HasPrefix(p, strings.TrimSuffix(vm.MountPath, "/")+"/") {
			if m == nil || len(vm.MountPath) > len(m.MountPath) {
				m = vm
			}
		}
	}
	if m == nil {
		return nil, ""
	}
	return m, strings.TrimPrefix(strings.TrimPrefix(p, m.MountPath), "/")
}

// flagValue returns the value of --name=value in args, and whether it is there.
func flagValue(args []string, name string) (string, bool) {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
	}
	return "", false
}

func flagValues(args []string, name string) []string {
	var vs []string
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			vs = append(vs, v)
		}
	}
	return vs
}

func isTrue(b *bool) bool { return b != nil && *b }

func TestHelmLint(t *testing.T) {
	for _, values := range [][]string{nil, {"hwsource=simulated", "nodeSelector=null"}} {
		args := []string{"lint", "--strict", chartDir}
		for _, s := range values {
			args = append(args, "--set", s)
		}
		out, err := helm(t, args...)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, "0 chart(s) failed") {
			t.Errorf("helm %s:\n%s", strings.Join(args, " "), out)
		}
	}
}

// TestServerContainer checks the server's container with the default values:
// what it is told, how it is probed, what it may do.
func TestServerContainer(t *testing.T) {
	ds := render(t).daemonSet(t)
	spec := &ds.Spec.Template.Spec
	server := findContainer(t, spec.Containers, "eventlog-server")

	wantArgs := map[string]string{
		"socket":      "/run/ccnp/uds/eventlog.sock",
		"output-dir":  "/run/ccnp-eventlog",
		"hwsource":    "host",
		"root":        "/",
		"socket-mode": "0666",
	}
	for name, want := range wantArgs {
		if got, ok := flagValue(server.Args, name); !ok || got != want {
			t.Errorf("server --%s = %q (set: %v), want %q", name, got, ok, want)
		}
	}

	wantProbe := []string{serverBinary, "probe", "--socket=/run/ccnp/uds/eventlog.sock"}
	for name, p := range map[string]*probe{"liveness": server.LivenessProbe, "readiness": server.ReadinessProbe} {
		if p == nil {
			t.Errorf("no %s probe", name)
			continue
		}
		if !slices.Equal(p.Exec.Command, wantProbe) {
			t.Errorf("%s probe runs %q, want %q", name, p.Exec.Command, wantProbe)
		}
		// The probe waits up to 3s for an answer; the kubelet's default 1s
		// would kill it first on a busy node.
		if p.TimeoutSeconds < 3 {
			t.Errorf("%s probe timeoutSeconds = %d, want at least 3", name, p.TimeoutSeconds)
		}
	}

	sc := server.SecurityContext
	if !isTrue(sc.RunAsNonRoot) || sc.RunAsUser == nil || *sc.RunAsUser != 1000 || sc.RunAsGroup == nil || *sc.RunAsGroup != 1000 {
		t.Errorf("server does not run as non-root uid/gid 1000: %+v", sc)
	}
	if !isTrue(sc.ReadOnlyRootFilesystem) {
		t.Error("server's root filesystem is writable")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Error("server may escalate privileges")
	}
	if !slices.Equal(sc.Capabilities.Drop, []string{"ALL"}) || len(sc.Capabilities.Add) != 0 {
		t.Errorf("server capabilities: drop %v add %v, want drop [ALL], add none", sc.Capabilities.Drop, sc.Capabilities.Add)
	}
	if isTrue(sc.Privileged) || spec.HostPID || spec.HostNetwork {
		t.Error("server pod is privileged or shares host namespaces")
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Error("the pod mounts a service account token it has no use for")
	}

	// Host directories are mounted where they are on the host, so the path
	// in a reply is valid in client pods; of /sys the server sees only
	// securityfs, read-only, for the IMA list (TestIMAValues).
	for _, dir := range []string{"/run/ccnp-eventlog", "/run/ccnp/uds"} {
		m := mountAt(server, dir)
		if m == nil || m.ReadOnly {
			t.Errorf("server: %s not mounted read-write: %+v", dir, m)
			continue
		}
		v := findVolume(spec, m.Name)
		if v == nil || v.HostPath == nil || v.HostPath.Path != dir || v.HostPath.Type != "DirectoryOrCreate" {
			t.Errorf("server: %s is not the host directory %s (DirectoryOrCreate): %+v", dir, dir, v)
		}
	}
	for _, m := range server.VolumeMounts {
		if v := findVolume(spec, m.Name); v != nil && v.HostPath != nil && strings.HasPrefix(v.HostPath.Path, "/sys") &&
			(v.HostPath.Path != hostSecurityfs || !m.ReadOnly) {
			t.Errorf("server mounts the host's %s (read-only: %v)", v.HostPath.Path, m.ReadOnly)
		}
	}
}

// TestStagingWiring follows each firmware file from the host through the init
// container to the path where the server reads its copy.
func TestStagingWiring(t *testing.T) {
	ds := render(t).daemonSet(t)
	spec := &ds.Spec.Template.Spec
	server := findContainer(t, spec.Containers, "eventlog-server")
	if len(spec.InitContainers) != 1 {
		t.Fatalf("%d init containers, want 1 (stage)", len(spec.InitContainers))
	}
	stage := &spec.InitContainers[0]
	if stage.Name != "stage" || stage.Image != server.Image || len(stage.Args) == 0 || stage.Args[0] != "stage" || len(stage.Command) != 0 {
		t.Fatalf("init container is not `eventlog-server stage` from the server's image: %+v", stage)
	}

	// Root, with only the capabilities to read the logs and give them away.
	sc := stage.SecurityContext
	if sc.RunAsUser == nil || *sc.RunAsUser != 0 || isTrue(sc.Privileged) {
		t.Errorf("stage must run as (unprivileged) root: %+v", sc)
	}
	add := slices.Sorted(slices.Values(sc.Capabilities.Add))
	if !slices.Equal(sc.Capabilities.Drop, []string{"ALL"}) || !slices.Equal(add, []string{"CHOWN", "DAC_READ_SEARCH"}) {
		t.Errorf("stage capabilities: drop %v add %v, want drop [ALL], add [CHOWN DAC_READ_SEARCH]", sc.Capabilities.Drop, add)
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || !isTrue(sc.ReadOnlyRootFilesystem) {
		t.Errorf("stage may escalate privileges or write its root filesystem: %+v", sc)
	}

	from, _ := flagValue(stage.Args, "from")
	to, _ := flagValue(stage.Args, "to")
	root, _ := flagValue(server.Args, "root")
	for _, f := range firmwareFiles {
		// Host side: the path stage reads is a read-only mount of the
		// host's file.
		m, rest := resolve(stage, path.Join(from, f.host))
		if m == nil {
			t.Errorf("stage reads %s from no volume", path.Join(from, f.host))
			continue
		}
		v := findVolume(spec, m.Name)
		if v == nil || v.HostPath == nil || path.Join(v.HostPath.Path, rest) != f.host || !m.ReadOnly {
			t.Errorf("stage's %s is not the host's %s, read-only: mount %+v volume %+v", path.Join(from, f.host), f.host, m, v)
		}
		// Server side: the copy lands in the volume the server reads it from.
		staged := strings.TrimPrefix(f.staged, "/run/firmware/")
		sm, srest := resolve(stage, path.Join(to, staged))
		cm, crest := resolve(server, path.Join(root, f.staged))
		if sm == nil || cm == nil || sm.Name != cm.Name || srest != crest || sm.ReadOnly || !cm.ReadOnly {
			t.Errorf("%s: stage writes %s (%+v) but the server reads %s (%+v), want the same volume, written by stage, read-only for the server",
				f.host, path.Join(to, staged), sm, path.Join(root, f.staged), cm)
			continue
		}
		if v := findVolume(spec, sm.Name); v == nil || v.EmptyDir == nil {
			t.Errorf("staged copies are not in a pod-private emptyDir: %+v", v)
		}
	}

	// The copies and the host directories go to the server's uid.
	if uid, _ := flagValue(stage.Args, "uid"); uid != "1000" {
		t.Errorf("stage --uid = %q, want the server's 1000", uid)
	}
	if gid, _ := flagValue(stage.Args, "gid"); gid != "1000" {
		t.Errorf("stage --gid = %q, want the server's 1000", gid)
	}
	own := flagValues(stage.Args, "own-dir")
	for _, dir := range []string{"/run/ccnp-eventlog", "/run/ccnp/uds"} {
		if !slices.Contains(own, dir) {
			t.Errorf("stage does not hand %s to the server (--own-dir %v)", dir, own)
		}
		m := mountAt(stage, dir)
		if sm := mountAt(server, dir); m == nil || sm == nil || m.Name != sm.Name || m.ReadOnly {
			t.Errorf("stage does not mount the server's %s read-write", dir)
		}
	}
}

func TestNodeSelectorAndNamespace(t *testing.T) {
	r := render(t)
	ds := r.daemonSet(t)
	if want := map[string]string{tdxGuestLabel: "enabled"}; !reflect.DeepEqual(ds.Spec.Template.Spec.NodeSelector, want) {
		t.Errorf("nodeSelector = %v, want %v", ds.Spec.Template.Spec.NodeSelector, want)
	}
	ns := r.find("Namespace")
	if ns == nil || ns.Metadata.Name != "ccnp" {
		t.Fatalf("namespace ccnp not created: %+v", ns)
	}
	if ns.Metadata.Labels["pod-security.kubernetes.io/enforce"] != "privileged" {
		t.Errorf("namespace labels %v: hostPath pods need the privileged Pod Security level", ns.Metadata.Labels)
	}
	for _, o := range r.objects {
		if o.Kind != "Namespace" && o.Metadata.Namespace != "ccnp" {
			t.Errorf("%s %s is in namespace %q, want ccnp", o.Kind, o.Metadata.Name, o.Metadata.Namespace)
		}
	}
	sa := r.find("ServiceAccount")
	if sa == nil || sa.Metadata.Name != ds.Spec.Template.Spec.ServiceAccountName || sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
		t.Errorf("service account %+v: want the pod's, without a token", sa)
	}
	for k, v := range ds.Spec.Selector.MatchLabels {
		if ds.Spec.Template.Metadata.Labels[k] != v {
			t.Errorf("pod template lacks selector label %s=%s", k, v)
		}
	}

	// The switch: into an existing namespace, nothing created.
	r = render(t, "namespaceCreate=false", "namespace=attestation")
	if ns := r.find("Namespace"); ns != nil {
		t.Errorf("namespaceCreate=false still creates %s", ns.Metadata.Name)
	}
	for _, o := range r.objects {
		if o.Metadata.Namespace != "attestation" {
			t.Errorf("%s %s is in namespace %q, want attestation", o.Kind, o.Metadata.Name, o.Metadata.Namespace)
		}
	}
	if ns := render(t, "namespace=attestation").find("Namespace"); ns == nil || ns.Metadata.Name != "attestation" {
		t.Errorf("namespace=attestation creates %+v", ns)
	}

	// Any release name gives the same object names (--generate-name).
	out, err := helm(t, "template", chartDir, "--generate-name")
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range decodeAll[object](t, "helm template --generate-name", out) {
		if o.Kind != "Namespace" && o.Metadata.Name != "eventlog-server" {
			t.Errorf("%s named %q with a generated release name, want eventlog-server", o.Kind, o.Metadata.Name)
		}
	}
}

func TestSimulatedValues(t *testing.T) {
	ds := render(t, "hwsource=simulated", "nodeSelector=null").daemonSet(t)
	spec := &ds.Spec.Template.Spec
	server := findContainer(t, spec.Containers, "eventlog-server")
	if v, _ := flagValue(server.Args, "hwsource"); v != "simulated" {
		t.Errorf("server --hwsource = %q, want simulated", v)
	}
	if len(spec.NodeSelector) != 0 {
		t.Errorf("nodeSelector = %v, want none", spec.NodeSelector)
	}
	// Simulated hardware needs nothing from the host's /sys ...
	for _, v := range spec.Volumes {
		if v.HostPath != nil && strings.HasPrefix(v.HostPath.Path, "/sys") {
			t.Errorf("simulated mode mounts the host's %s", v.HostPath.Path)
		}
	}
	// ... but the server still needs its host directories.
	stage := findContainer(t, spec.InitContainers, "stage")
	if own := flagValues(stage.Args, "own-dir"); len(own) != 2 {
		t.Errorf("stage --own-dir %v, want the two host directories", own)
	}
}

func TestPathValues(t *testing.T) {
	ds := render(t, "eventlogDir=/var/run/el", "socketDir=/var/run/el-sock/", "root=/srv/fake-host",
		"hostPaths.securityfs=", "image.tag=dev", "image.repository=registry.example/eventlog",
		"extraArgs={--log-format=json,--max-dir-bytes=1048576}").daemonSet(t)
	spec := &ds.Spec.Template.Spec
	server := findContainer(t, spec.Containers, "eventlog-server")
	stage := findContainer(t, spec.InitContainers, "stage")

	for name, want := range map[string]string{"socket": "/var/run/el-sock/eventlog.sock", "output-dir": "/var/run/el", "root": "/srv/fake-host",
		"log-format": "json", "max-dir-bytes": "1048576"} {
		if got, _ := flagValue(server.Args, name); got != want {
			t.Errorf("server --%s = %q, want %q", name, got, want)
		}
	}
	if got, _ := flagValue(server.ReadinessProbe.Exec.Command, "socket"); got != "/var/run/el-sock/eventlog.sock" {
		t.Errorf("readiness probe checks %q", got)
	}
	for _, dir := range []string{"/var/run/el", "/var/run/el-sock/"} {
		m := mountAt(server, dir)
		if m == nil || findVolume(spec, m.Name).HostPath == nil || findVolume(spec, m.Name).HostPath.Path != dir {
			t.Errorf("%s is not mounted from the host at the same path", dir)
		}
	}
	// A fake root is mounted read-only where the server reads it.
	m := mountAt(server, "/srv/fake-host")
	if m == nil || !m.ReadOnly {
		t.Fatalf("root /srv/fake-host not mounted read-only: %+v", m)
	}
	if v := findVolume(spec, m.Name); v.HostPath == nil || v.HostPath.Path != "/srv/fake-host" {
		t.Errorf("root mount is not the host's /srv/fake-host: %+v", v)
	}
	// hostPaths.securityfs="" leaves the TPM log out.
	if m, _ := resolve(stage, "/host/sys/kernel/security/tpm0/binary_bios_measurements"); m != nil {
		t.Errorf("securityfs still mounted: %+v", m)
	}
	for _, c := range []*container{server, stage} {
		if c.Image != "registry.example/eventlog:dev" {
			t.Errorf("%s image = %q", c.Name, c.Image)
		}
	}
}

func TestDefaultImageIsAppVersion(t *testing.T) {
	type chartYAML struct {
		AppVersion string `yaml:"appVersion"`
	}
	chart := decodeAll[chartYAML](t, "Chart.yaml", readFile(t, filepath.Join(repoRoot(t), chartDir, "Chart.yaml")))[0]
	ds := render(t).daemonSet(t)
	if want := "ccnp-eventlog-server:" + chart.AppVersion; ds.Spec.Template.Spec.Containers[0].Image != want {
		t.Errorf("default image %q, want %q (what `make image` builds)", ds.Spec.Template.Spec.Containers[0].Image, want)
	}
}

func TestSchemaRejectsBadValues(t *testing.T) {
	for _, tt := range []struct{ set, want string }{
		{"hwsource=tdx", "hwsource"},
		{"hwSource=simulated", "hwSource"},
		{"eventlogDir=relative/dir", "eventlogDir"},
		{"securityContext.runAsUser=0", "runAsUser"},
		{"socketMode=777777", "socketMode"},
		{"extraArgs={log-format=json}", "extraArgs"},
	} {
		_, err := helm(t, "template", release, chartDir, "--set", tt.set)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("--set %s: error %v, want one naming %s", tt.set, err, tt.want)
		}
	}
}

// TestManifestsAreTheDefaultRendering: `kubectl create -f` on the plain
// manifests deploys exactly what `helm install` does with default values.
func TestManifestsAreTheDefaultRendering(t *testing.T) {
	root := repoRoot(t)
	out, err := helm(t, "template", release, chartDir)
	if err != nil {
		t.Fatal(err)
	}
	want := decodeAll[map[string]any](t, "helm template", out)
	var got []map[string]any
	for _, f := range []string{"namespace.yaml", "eventlog-server-deployment.yaml"} {
		got = append(got, decodeAll[map[string]any](t, f, readFile(t, filepath.Join(root, "deployment/manifests", f)))...)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("deployment/manifests differ from the chart's default rendering: run `make manifests`")
	}

	// And `make manifests` writes the committed files, byte for byte.
	dir := t.TempDir()
	cmd := exec.Command(filepath.Join(root, "deployment/generate-manifests.sh"), dir)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("generate-manifests.sh: %v\n%s", err, b)
	}
	for _, f := range []string{"namespace.yaml", "eventlog-server-deployment.yaml"} {
		if readFile(t, filepath.Join(dir, f)) != readFile(t, filepath.Join(root, "deployment/manifests", f)) {
			t.Errorf("deployment/manifests/%s is not what `make manifests` writes: run it", f)
		}
	}
}

func TestSidecarExample(t *testing.T) {
	pods := decodeAll[pod](t, "sidecar.yaml", readFile(t, filepath.Join(repoRoot(t), "deployment/examples/sidecar.yaml")))
	if len(pods) != 1 || pods[0].Kind != "Pod" {
		t.Fatalf("sidecar.yaml: want one Pod, got %+v", pods)
	}
	spec := &pods[0].Spec
	stage := findContainer(t, spec.InitContainers, "stage")
	server := findContainer(t, spec.InitContainers, "eventlog-server")
	app := findContainer(t, spec.Containers, "app")

	if len(stage.Args) == 0 || stage.Args[0] != "stage" || spec.InitContainers[0].Name != "stage" {
		t.Errorf("the first init container must stage the logs: %+v", spec.InitContainers[0])
	}
	if server.RestartPolicy != "Always" {
		t.Errorf("server restartPolicy %q: want a native sidecar (Always)", server.RestartPolicy)
	}
	if v, _ := flagValue(server.Args, "hwsource"); v != "host" {
		t.Errorf("sidecar --hwsource = %q, want host: it serves the pod VM's own log", v)
	}
	if v, ok := flagValue(server.Args, "state-dir"); !ok || v != "" {
		t.Errorf("sidecar --state-dir = %q (set: %v), want it set empty: the default directory is on its read-only root filesystem", v, ok)
	}
	sc := server.SecurityContext
	if !isTrue(sc.RunAsNonRoot) || !isTrue(sc.ReadOnlyRootFilesystem) || !slices.Equal(sc.Capabilities.Drop, []string{"ALL"}) {
		t.Errorf("sidecar server security context %+v: want non-root, read-only, no capabilities", sc)
	}
	if server.StartupProbe == nil || server.StartupProbe.Exec.Command[1] != "probe" {
		t.Error("sidecar server has no startup probe: the app could start before the socket exists")
	}

	socket, _ := flagValue(server.Args, "socket")
	outDir, _ := flagValue(server.Args, "output-dir")
	to, _ := flagValue(stage.Args, "to")
	shared := []struct {
		a, b         *container
		path         string
		bReadOnly    bool
		whatIsShared string
	}{
		{server, app, path.Dir(socket), false, "socket directory"},
		{server, app, outDir, true, "event log directory"},
		{stage, server, to, true, "staged firmware logs"},
	}
	for _, s := range shared {
		ma, mb := mountAt(s.a, s.path), mountAt(s.b, s.path)
		if ma == nil || mb == nil || ma.Name != mb.Name {
			t.Errorf("%s: %s and %s do not share one volume at %s", s.whatIsShared, s.a.Name, s.b.Name, s.path)
			continue
		}
		if v := findVolume(spec, ma.Name); v == nil || v.EmptyDir == nil || v.EmptyDir.Medium != "Memory" {
			t.Errorf("%s: volume %+v, want an in-memory emptyDir (inside the TD)", s.whatIsShared, v)
		}
		if mb.ReadOnly != s.bReadOnly {
			t.Errorf("%s: %s mounts it readOnly=%v, want %v", s.whatIsShared, s.b.Name, mb.ReadOnly, s.bReadOnly)
		}
	}
	if server.Image != stage.Image {
		t.Errorf("stage image %q differs from the server's %q", stage.Image, server.Image)
	}
	// emptyDirs are writable by all: stage gives the server its socket
	// directory, which the server refuses otherwise, and its file directory.
	for _, dir := range []string{path.Dir(socket), outDir} {
		if !slices.Contains(stage.Args, "--own-dir="+dir) || mountAt(stage, dir) == nil || mountAt(stage, dir).Name != mountAt(server, dir).Name {
			t.Errorf("stage does not give the server %s (--own-dir, on the server's volume)", dir)
		}
	}
}
