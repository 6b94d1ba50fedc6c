package deployment

import (
	"path"
	"slices"
	"strings"
	"testing"
)

// upstreamValues is a values file of the upstream CCNP chart, as its
// operators install with it (testdata/upstream-values.yaml).
const upstreamValues = "deployment/testdata/upstream-values.yaml"

// renderWith renders the chart with helm's arguments (-f, --set).
func renderWith(t *testing.T, args ...string) (rendering, error) {
	t.Helper()
	out, err := helm(t, append([]string{"template", release, chartDir}, args...)...)
	if err != nil {
		return rendering{}, err
	}
	return rendering{decodeAll[object](t, "helm template", out)}, nil
}

// The upstream chart's values file installs, deploying what it asked for
// where this chart can: the directories, the CCEL files, the namespace, the
// image; this chart's own defaults where the upstream values are empty.
func TestUpstreamValuesInstall(t *testing.T) {
	r, err := renderWith(t, "-f", upstreamValues)
	if err != nil {
		t.Fatalf("the upstream chart's values do not install: %v", err)
	}
	ds := r.daemonSet(t)
	spec := &ds.Spec.Template.Spec
	server := findContainer(t, spec.Containers, "eventlog-server")
	stage := findContainer(t, spec.InitContainers, "stage")
	if ds.Metadata.Namespace != "ccnp" || server.Image != "docker.io/library/ccnp-eventlog-server:0.1" || stage.Image != server.Image {
		t.Errorf("namespace %q, images %q %q: want ccnp and the values' image", ds.Metadata.Namespace, server.Image, stage.Image)
	}
	for name, want := range map[string]string{"socket": "/run/ccnp/uds/eventlog.sock", "output-dir": "/run/ccnp-eventlog", "hwsource": "host"} {
		if got, _ := flagValue(server.Args, name); got != want {
			t.Errorf("server --%s = %q, want %q", name, got, want)
		}
	}
	// This chart's hardening stays: upstream's securityContext only says
	// runAsNonRoot, and its empty maps change nothing.
	sc := server.SecurityContext
	if !isTrue(sc.RunAsNonRoot) || sc.RunAsUser == nil || *sc.RunAsUser != 1000 || !isTrue(sc.ReadOnlyRootFilesystem) || !slices.Equal(sc.Capabilities.Drop, []string{"ALL"}) {
		t.Errorf("server security context %+v: want this chart's (uid 1000, read-only root, no capabilities)", sc)
	}
	if spec.NodeSelector[tdxGuestLabel] != "enabled" {
		t.Errorf("nodeSelector %v: upstream's {} must leave this chart's TDX guest label", spec.NodeSelector)
	}
	// The CCEL files are staged from upstream's host directory.
	if v := findVolume(spec, "host-acpi-tables"); v == nil || v.HostPath == nil || v.HostPath.Path != "/sys/firmware/acpi/tables" {
		t.Errorf("host-acpi-tables volume %+v, want /sys/firmware/acpi/tables", v)
	}
	// Each deprecated key is named, with what to use.
	note := ds.Metadata.Annotations["eventlog-server.ccnp/deprecated-values"]
	for _, want := range []string{
		"volumes.eventlogDir: set eventlogDir instead",
		"volumes.sockDir: set socketDir instead",
		"volumes.eventlogEntryFile: set hostPaths.acpiTables",
		"volumes.eventlogEntryMount: remove it",
		"volumes.sockPath: remove it",
		"service: remove it", "autoscaling: remove it",
	} {
		if !strings.Contains(note, want) {
			t.Errorf("deprecated-values annotation does not say %q:\n%s", want, note)
		}
	}
	// Without them, no annotation.
	if a := render(t).daemonSet(t).Metadata.Annotations; len(a) != 0 {
		t.Errorf("default values: annotations %v, want none", a)
	}
}

// Upstream's values, changed, move what this chart's values would.
func TestUpstreamValuesAreAliases(t *testing.T) {
	r, err := renderWith(t, "-f", upstreamValues,
		"--set", "volumes.eventlogDir=/var/run/eventlog",
		"--set", "volumes.sockDir=/var/run/eventlog-uds",
		"--set", "volumes.eventlogEntryFile=/host/fw/tables/CCEL",
		"--set", "volumes.eventlogDataFile=/host/fw/tables/data/CCEL",
		// The older upstream chart's spelling: the copies' file paths.
		"--set", "volumes.eventlogEntryMount=/run/firmware/acpi/tables/CCEL",
		"--set", "volumes.eventlogDataMount=/run/firmware/acpi/tables/data/CCEL",
	)
	if err != nil {
		t.Fatal(err)
	}
	ds := r.daemonSet(t)
	spec := &ds.Spec.Template.Spec
	server := findContainer(t, spec.Containers, "eventlog-server")
	stage := findContainer(t, spec.InitContainers, "stage")
	if got, _ := flagValue(server.Args, "socket"); got != "/var/run/eventlog-uds/eventlog.sock" {
		t.Errorf("server --socket = %q", got)
	}
	if got, _ := flagValue(server.Args, "output-dir"); got != "/var/run/eventlog" {
		t.Errorf("server --output-dir = %q", got)
	}
	if p := server.ReadinessProbe; p == nil || !slices.Contains(p.Exec.Command, "--socket=/var/run/eventlog-uds/eventlog.sock") {
		t.Errorf("readiness probe %+v does not ask the moved socket", p)
	}
	if own := flagValues(stage.Args, "own-dir"); !slices.Equal(own, []string{"/var/run/eventlog", "/var/run/eventlog-uds"}) {
		t.Errorf("stage --own-dir %v", own)
	}
	for _, dir := range []string{"/var/run/eventlog", "/var/run/eventlog-uds"} {
		m := mountAt(server, dir)
		if m == nil {
			t.Errorf("server does not mount %s", dir)
			continue
		}
		if v := findVolume(spec, m.Name); v == nil || v.HostPath == nil || v.HostPath.Path != dir {
			t.Errorf("server's %s is not the host's: %+v", dir, v)
		}
	}
	from, _ := flagValue(stage.Args, "from")
	m, rest := resolve(stage, path.Join(from, "/sys/firmware/acpi/tables/data/CCEL"))
	if m == nil {
		t.Fatal("stage reads the log area from no volume")
	}
	if v := findVolume(spec, m.Name); v == nil || v.HostPath == nil || path.Join(v.HostPath.Path, rest) != "/host/fw/tables/data/CCEL" {
		t.Errorf("stage reads the log area from %+v, want the host's /host/fw/tables/data/CCEL", v)
	}
}

// Where this chart cannot do what an upstream value asks, installing fails,
// naming the value to use instead.
func TestUpstreamValuesThatCannotWork(t *testing.T) {
	for _, tt := range []struct {
		set  []string
		want []string
	}{
		{[]string{"service.enable=true", "service.port=40084"}, []string{"service.enable", "socketDir", "remove service"}},
		{[]string{"autoscaling.enabled=true"}, []string{"autoscaling.enabled", "DaemonSet", "remove autoscaling"}},
		{[]string{"volumes.eventlogEntryMount=/opt/ccel"}, []string{"volumes.eventlogEntryMount", "/run/firmware/acpi/tables/CCEL", "remove volumes.eventlogEntryMount"}},
		{[]string{"volumes.eventlogDataMount=/opt/ccel/data"}, []string{"volumes.eventlogDataMount", "/run/firmware/acpi/tables/data/CCEL"}},
		{[]string{"volumes.eventlogEntryFile=/fw/table.bin"}, []string{"volumes.eventlogEntryFile", "hostPaths.acpiTables"}},
		{[]string{"volumes.eventlogDataFile=/fw/CCEL"}, []string{"volumes.eventlogDataFile", "hostPaths.acpiTables"}},
		{[]string{"volumes.eventlogEntryFile=/a/CCEL", "volumes.eventlogDataFile=/b/data/CCEL"}, []string{"/a/CCEL", "/b/data/CCEL", "hostPaths.acpiTables"}},
		// Still a schema: typos and bad paths are caught.
		{[]string{"volumes.eventLogDir=/x"}, []string{"eventLogDir"}},
		{[]string{"volumes.sockDir=run/uds"}, []string{"sockDir"}},
		{[]string{"service.enabled=false"}, []string{"enabled"}},
	} {
		args := []string{"-f", upstreamValues}
		for _, s := range tt.set {
			args = append(args, "--set", s)
		}
		_, err := renderWith(t, args...)
		if err == nil {
			t.Errorf("--set %v: installs, want an error naming %v", tt.set, tt.want)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("--set %v: error does not name %q:\n%v", tt.set, w, err)
			}
		}
	}
}

func TestUpstreamValuesLint(t *testing.T) {
	out, err := helm(t, "lint", "--strict", chartDir, "-f", upstreamValues)
	if err != nil || !strings.Contains(out, "0 chart(s) failed") {
		t.Errorf("helm lint with the upstream values: %v\n%s", err, out)
	}
}

func TestZeroBasedStartValue(t *testing.T) {
	server := findContainer(t, render(t).daemonSet(t).Spec.Template.Spec.Containers, "eventlog-server")
	if slices.Contains(server.Args, "--zero-based-start") {
		t.Errorf("default values pass --zero-based-start: %v", server.Args)
	}
	server = findContainer(t, render(t, "zeroBasedStart=true").daemonSet(t).Spec.Template.Spec.Containers, "eventlog-server")
	if !slices.Contains(server.Args, "--zero-based-start") {
		t.Errorf("zeroBasedStart=true: server args %v lack --zero-based-start", server.Args)
	}
}
