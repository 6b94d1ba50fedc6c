package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The kind target (E2E_TARGET=kind) runs servers as the Helm chart deploys
// them, on the kind cluster kind/up.sh brought up: each server the suite
// starts is a release of deployment/charts/eventlog-server of its own (a
// DaemonSet in its own namespace, the image kind/up.sh built), and the suite
// reaches it from this machine through the node's extraMounts
// (kind/cluster.yaml): a node path P is nodeDir+P here. The releases
// kind/up.sh installed are servers too (kindTarget.release), which the
// in-cluster specs use.
//
// kind/up.sh writes what it deployed to build/kind/target.json
// (E2E_KIND_TARGET_FILE names another file).

func init() {
	targets["kind"] = newKindTarget
}

// kindDeployment is build/kind/target.json.
type kindDeployment struct {
	Cluster    string `json:"cluster"`
	Kubeconfig string `json:"kubeconfig"`
	NodeDir    string `json:"nodeDir"`
	// NodeContainer is the node's docker container.
	NodeContainer string `json:"nodeContainer"`
	ServerImage   string `json:"serverImage"`
	// NextServerImage is the same server as another image (another ID),
	// for helm upgrade.
	NextServerImage string `json:"nextServerImage"`
	UserImage       string `json:"userImage"`
	Releases        struct {
		Simulated kindRelease `json:"simulated"`
		FakeHost  kindRelease `json:"fakehost"`
		// Kernel68 is simulated hardware on the 6.8 kernel profile.
		Kernel68 kindRelease `json:"kernel68"`
	} `json:"releases"`
}

// kindRelease is one release of the chart.
type kindRelease struct {
	Release   string `json:"release"`
	Namespace string `json:"namespace"`
	DaemonSet string `json:"daemonSet"`
	// HostTree is the node path of the fake host tree the release stages
	// its logs from, if it does.
	HostTree string `json:"hostTree"`
}

// Node paths of what the suite creates (kind/cluster.yaml mounts both).
const (
	kindServersDir = "/run/ccnp-e2e"           // DIR/<id>/uds, DIR/<id>/eventlog
	kindTreesDir   = "/var/lib/ccnp-e2e/trees" // read-only in the node
)

type kindTarget struct {
	bin     binaries
	dep     kindDeployment
	chart   string
	helm    string // the pinned helm's executable
	kubectl string
	// run is in the name of everything this suite process creates, so that
	// leftovers of an interrupted run never collide with it.
	run string
	n   atomic.Int64
}

func newKindTarget(bin binaries) (Target, error) {
	file := os.Getenv("E2E_KIND_TARGET_FILE")
	if file == "" {
		file = filepath.Join(bin.ModuleRoot, "build", "kind", "target.json")
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("the kind target needs the cluster kind/up.sh brings up (make e2e runs it): %w", err)
	}
	t := &kindTarget{bin: bin, chart: filepath.Join(bin.ModuleRoot, "deployment", "charts", "eventlog-server")}
	if err := json.Unmarshal(b, &t.dep); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if t.kubectl, err = exec.LookPath("kubectl"); err != nil {
		return nil, fmt.Errorf("the kind target needs kubectl in PATH: %w", err)
	}
	// `go tool -n` prints the pinned helm's executable, built once;
	// kind/e2e.sh has looked it up already and says so in E2E_HELM.
	if t.helm = os.Getenv("E2E_HELM"); t.helm == "" {
		out, err := exec.Command("go", "tool", "-modfile="+filepath.Join(bin.ModuleRoot, "tools", "go.mod"), "-n", "helm").Output()
		if err != nil {
			return nil, fmt.Errorf("go tool -n helm: %w", err)
		}
		t.helm = strings.TrimSpace(string(out))
	}
	var id [2]byte
	_, _ = rand.Read(id[:])
	// make e2e runs the suite in parallel processes: each names its own.
	t.run = fmt.Sprintf("%s%d", hex.EncodeToString(id[:]), GinkgoParallelProcess())
	if err := os.MkdirAll(t.dep.NodeDir+kindTreesDir, 0o755); err != nil {
		return nil, err
	}
	return t, nil
}

func (t *kindTarget) Name() string { return "kind" }

func (t *kindTarget) Unsupported(f Feature) string {
	switch f {
	case FeatureSignals:
		return "the server is a DaemonSet's pod: the suite can delete the pod, not signal its process and read its exit status"
	case FeatureRestart:
		return "a deleted pod is replaced by its DaemonSet; the in-cluster specs test that"
	case FeatureSharedSocket:
		return "each release has its own socket directory"
	}
	// Every server runs as the chart runs it, as uid 1000: that is
	// FeatureUnprivilegedServer, whether a config asks for it or not.
	return ""
}

// kubectlCmd runs kubectl on the cluster, with stdin if not nil.
func (t *kindTarget) kubectlCmd(ctx context.Context, stdin []byte, args ...string) (string, error) {
	return t.runTool(ctx, stdin, t.kubectl, args...)
}

// helmCmd runs the pinned helm on the cluster.
func (t *kindTarget) helmCmd(ctx context.Context, args ...string) (string, error) {
	return t.runTool(ctx, nil, t.helm, args...)
}

// runTool runs a program with the cluster's kubeconfig, for at most three
// minutes, and returns its standard output; its error carries the command
// line and its standard error.
func (t *kindTarget) runTool(ctx context.Context, stdin []byte, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+t.dep.Kubeconfig)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w\n%s", filepath.Base(name), strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// mustKubectl runs kubectl on the cluster and fails the spec if it fails.
func (t *kindTarget) mustKubectl(ctx context.Context, args ...string) string {
	GinkgoHelper()
	out, err := t.kubectlCmd(ctx, nil, args...)
	Expect(err).NotTo(HaveOccurred())
	return out
}

// specNamespace creates a namespace for the running spec, deleted after it
// unless the spec failed (then it is kept, to look at).
func (t *kindTarget) specNamespace(ctx context.Context, prefix string) string {
	GinkgoHelper()
	ns := prefix + t.run
	t.mustKubectl(ctx, "create", "namespace", ns)
	DeferCleanup(func(ctx context.Context) {
		if CurrentSpecReport().Failed() {
			GinkgoWriter.Printf("namespace %s is kept, to look at\n", ns)
			return
		}
		t.mustKubectl(ctx, "delete", "namespace", ns, "--wait=false")
	})
	return ns
}

// runJob applies manifest, the Job job in ns, waits (3 minutes at most)
// until it has finished, checks that it succeeded, and returns its log;
// what names it in messages.
func (t *kindTarget) runJob(ctx context.Context, ns, job, manifest, what string) string {
	GinkgoHelper()
	_, err := t.kubectlCmd(ctx, []byte(manifest), "apply", "-f", "-")
	Expect(err).NotTo(HaveOccurred())
	var succeeded, failed int
	Eventually(ctx, func(g Gomega) {
		out := t.mustKubectl(ctx, "-n", ns, "get", "job", job, "-o", `jsonpath={.status.succeeded} {.status.failed}`)
		_, _ = fmt.Sscan(out, &succeeded, &failed)
		g.Expect(succeeded + failed).To(BeNumerically(">", 0))
	}).WithTimeout(3*time.Minute).WithPolling(2*time.Second).Should(Succeed(), what+" did not finish")
	logs := t.mustKubectl(ctx, "-n", ns, "logs", "job/"+job)
	GinkgoWriter.Printf("%s's log:\n%s\n", what, logs)
	Expect(succeeded).To(Equal(1), "%s failed; its log:\n%s", what, logs)
	return logs
}

func (t *kindTarget) NewHostTree() string {
	GinkgoHelper()
	dir := mkdirTemp(t.dep.NodeDir+kindTreesDir, "tree-")
	DeferCleanup(os.RemoveAll, dir)
	return dir
}

func (t *kindTarget) StartServer(ctx context.Context, cfg ServerConfig) Server {
	GinkgoHelper()
	s := t.LaunchServer(ctx, cfg).(*kindServer)
	s.waitAnswering(ctx)
	s.serving = true
	return s
}

// LaunchServer installs a release of the chart for the server: simulated
// hardware, or the real backends on a tree (--root, which the chart mounts
// read-only at the same path), with the config's other flags as extraArgs.
// It is uninstalled when the spec's container ends.
func (t *kindTarget) LaunchServer(ctx context.Context, cfg ServerConfig) Server {
	GinkgoHelper()
	Expect(cfg.SocketOf).To(BeNil(), "the kind target does not offer %s", FeatureSharedSocket)
	Expect(cfg.Env).To(BeEmpty(), "the chart sets no environment variables of a spec's choosing for the server")
	id := fmt.Sprintf("%s-%d", t.run, t.n.Add(1))
	dir := kindServersDir + "/" + id
	s := &kindServer{
		t:         t,
		rel:       kindRelease{Release: "e2e-" + id, Namespace: "ccnp-e2e-" + id, DaemonSet: "eventlog-server-" + id},
		socketDir: dir + "/uds",
		outDir:    dir + "/eventlog",
	}
	values := map[string]any{
		"namespace":        s.rel.Namespace,
		"fullnameOverride": s.rel.DaemonSet,
		"image":            t.imageValues(),
		"socketDir":        s.socketDir,
		"eventlogDir":      s.outDir,
		"nodeSelector":     nil,
	}
	extra := []string{}
	for _, a := range configFlags(cfg) {
		// The chart passes these itself, from the values below.
		if strings.HasPrefix(a, "--hwsource=") || strings.HasPrefix(a, "--root=") {
			continue
		}
		extra = append(extra, a)
	}
	values["extraArgs"] = append(extra, cfg.ExtraArgs...)
	if cfg.ContainerEvents {
		// The chart's saas mode runs the server as root: not the
		// unprivileged server a spec may ask for at the same time.
		Expect(cfg.Unprivileged).To(BeFalse(), "a server with container-level events runs as root")
		// The state directory beside the release's others, removed with
		// them; no tdx_guest directory to mount on a kind node.
		values["saas"] = map[string]any{"enabled": true, "stateDir": dir + "/state", "tdxGuest": ""}
	}
	if cfg.Hardware.Simulated != nil {
		values["hwsource"] = "simulated"
	} else {
		// The server reads the tree itself; the init container stages
		// nothing (the chart's host paths are the node's /sys).
		values["hwsource"] = "host"
		values["root"] = s.ServerPath(cfg.Hardware.Tree)
		values["hostPaths"] = map[string]string{"acpiTables": "", "securityfs": ""}
	}
	valuesFile := filepath.Join(GinkgoT().TempDir(), "values.json")
	js, err := json.Marshal(values)
	Expect(err).NotTo(HaveOccurred())
	Expect(os.WriteFile(valuesFile, js, 0o644)).To(Succeed())

	s.valuesFile = valuesFile
	s.install(ctx)
	GinkgoWriter.Printf("installed release %s: DaemonSet %s/%s, socket %s, values %s\n",
		s.rel.Release, s.rel.Namespace, s.rel.DaemonSet, s.Socket(), js)
	DeferCleanup(s.uninstall)
	return s
}

// install installs the release the suite made, with its values.
func (s *kindServer) install(ctx context.Context) {
	GinkgoHelper()
	_, err := s.t.helmCmd(ctx, "install", s.rel.Release, s.t.chart, "--namespace", "default", "--values", s.valuesFile)
	Expect(err).NotTo(HaveOccurred())
	s.installed = true
}

// helmUpgrade upgrades the release, keeping its values but for sets
// (--set flags); it does not wait for the rollout.
func (s *kindServer) helmUpgrade(ctx context.Context, sets ...string) {
	GinkgoHelper()
	args := []string{"upgrade", s.rel.Release, s.t.chart, "--namespace", "default", "--reuse-values"}
	for _, set := range sets {
		args = append(args, "--set", set)
	}
	_, err := s.t.helmCmd(ctx, args...)
	Expect(err).NotTo(HaveOccurred())
}

// helmUninstall uninstalls the release and waits until every object of it
// is gone (helm uninstall --wait), its pods and namespace too, so that it
// can be installed again at once; what the pods left on the node stays.
func (s *kindServer) helmUninstall(ctx context.Context) {
	GinkgoHelper()
	_, err := s.t.helmCmd(ctx, "uninstall", s.rel.Release, "--namespace", "default", "--wait", "--timeout=2m")
	Expect(err).NotTo(HaveOccurred())
	s.installed = false
	Eventually(ctx, s.pods).WithTimeout(2*time.Minute).WithPolling(time.Second).Should(BeEmpty(), "the pods of release %s are still there", s.rel.Release)
}

func (t *kindTarget) imageValues() map[string]string {
	repo, tag, _ := strings.Cut(t.dep.ServerImage, ":")
	return map[string]string{"repository": repo, "tag": tag, "pullPolicy": "Never"}
}

// release returns a server for a release kind/up.sh installed, with the
// directories its DaemonSet's server was given.
func (t *kindTarget) release(ctx context.Context, rel kindRelease) *kindServer {
	GinkgoHelper()
	args := t.mustKubectl(ctx, "-n", rel.Namespace, "get", "daemonset", rel.DaemonSet,
		"-o", `jsonpath={range .spec.template.spec.containers[?(@.name=="eventlog-server")].args[*]}{@}{"\n"}{end}`)
	s := &kindServer{t: t, rel: rel, preinstalled: true}
	for _, a := range strings.Split(args, "\n") {
		if v, ok := strings.CutPrefix(a, "--socket="); ok {
			s.socketDir = filepath.Dir(v)
		}
		if v, ok := strings.CutPrefix(a, "--output-dir="); ok {
			s.outDir = v
		}
	}
	Expect(s.socketDir).NotTo(BeEmpty(), "DaemonSet %s/%s has no --socket", rel.Namespace, rel.DaemonSet)
	Expect(s.outDir).NotTo(BeEmpty(), "DaemonSet %s/%s has no --output-dir", rel.Namespace, rel.DaemonSet)
	return s
}

// kindServer is one release's server on the node.
type kindServer struct {
	t   *kindTarget
	rel kindRelease
	// socketDir and outDir are node paths.
	socketDir, outDir string
	// preinstalled: kind/up.sh installed it; the suite does not remove it.
	preinstalled bool
	// serving: it answered once, and must not fail from then on.
	serving bool
	// valuesFile holds the values of a release the suite installed;
	// installed says it is installed now.
	valuesFile string
	installed  bool
}

func (s *kindServer) Socket() string    { return s.t.dep.NodeDir + s.socketDir + "/eventlog.sock" }
func (s *kindServer) OutputDir() string { return s.t.dep.NodeDir + s.outDir }

func (s *kindServer) LocalPath(dataLoc string) string {
	if !filepath.IsAbs(dataLoc) {
		return dataLoc
	}
	return s.t.dep.NodeDir + dataLoc
}

// ServerPath maps a tree path to the node path the pod reads it at (the
// chart mounts --root at its node path). For a release that stages a tree
// (HostTree), the server reads the init container's copies of the ACPI
// tables under /run/firmware, in the layout `eventlog-server stage` writes,
// and the tree's securityfs where the chart mounts it for the IMA list
// (ima.enabled, the default): the TPM log there comes before its copy.
func (s *kindServer) ServerPath(treePath string) string {
	nodePath := strings.TrimPrefix(treePath, s.t.dep.NodeDir)
	if s.rel.HostTree == "" {
		return nodePath
	}
	rel, ok := strings.CutPrefix(nodePath, s.rel.HostTree+"/")
	if !ok {
		return nodePath
	}
	for from, to := range map[string]string{"sys/firmware/": "run/firmware/", "sys/kernel/security/": "sys/kernel/security/"} {
		if r, ok := strings.CutPrefix(rel, from); ok {
			return "/" + to + r
		}
	}
	return nodePath
}

func (s *kindServer) Signal(syscall.Signal) {
	GinkgoHelper()
	Fail("the kind target does not offer " + string(FeatureSignals))
}

func (s *kindServer) WaitExit(context.Context) ExitStatus {
	GinkgoHelper()
	Fail("the kind target does not offer " + string(FeatureSignals))
	return ExitStatus{}
}

func (s *kindServer) Restart(context.Context) {
	GinkgoHelper()
	Fail("the kind target does not offer " + string(FeatureRestart))
}

// selector selects the release's pods.
func (s *kindServer) selector() string { return "app.kubernetes.io/instance=" + s.rel.Release }

// Logs returns the logs of the release's pods, init container included.
// The API server may still say the server's container is waiting to start
// when it already answers (the kubelet reports its start a little later):
// kubectl refuses then, and is asked again, for up to 30 s.
func (s *kindServer) Logs() string { return s.logs(30 * time.Second) }

// logs returns the logs of the release's pods, asking again for up to
// patience while kubectl says a container is waiting to start.
func (s *kindServer) logs(patience time.Duration) string {
	for deadline := time.Now().Add(patience); ; time.Sleep(500 * time.Millisecond) {
		out, err := s.t.kubectlCmd(context.Background(), nil, "-n", s.rel.Namespace, "logs", "-l", s.selector(),
			"--all-containers", "--prefix", "--tail=-1")
		if err == nil {
			return out
		}
		if !strings.Contains(err.Error(), "is waiting to start") || time.Now().After(deadline) {
			return fmt.Sprintf("(cannot get the server's logs: %v)\n%s", err, out)
		}
	}
}

// describe is what explains a pod that does not serve: kubectl describe
// and the logs, the previous instance's too.
func (s *kindServer) describe() string {
	ctx := context.Background()
	desc, err := s.t.kubectlCmd(ctx, nil, "-n", s.rel.Namespace, "describe", "pods", "-l", s.selector())
	if err != nil {
		desc += err.Error()
	}
	prev, _ := s.t.kubectlCmd(ctx, nil, "-n", s.rel.Namespace, "logs", "-l", s.selector(), "--all-containers", "--prefix", "--previous")
	// A pod that failed may never start its server: its logs as they are.
	return fmt.Sprintf("kubectl describe:\n%s\nlogs:\n%s\nlogs of the previous instance:\n%s", desc, s.logs(0), prev)
}

// kindPod is what the suite reads of a pod's status.
type kindPod struct {
	Metadata struct {
		Name string `json:"name"`
		UID  string `json:"uid"`
	} `json:"metadata"`
	Status struct {
		Phase      string `json:"phase"`
		Conditions []struct {
			Type   string `json:"type"`
			Status string `json:"status"`
		} `json:"conditions"`
		InitContainerStatuses []kindContainerStatus `json:"initContainerStatuses"`
		ContainerStatuses     []kindContainerStatus `json:"containerStatuses"`
	} `json:"status"`
}

type kindContainerStatus struct {
	Name         string `json:"name"`
	Ready        bool   `json:"ready"`
	RestartCount int    `json:"restartCount"`
	LastState    struct {
		Terminated *struct {
			ExitCode int `json:"exitCode"`
		} `json:"terminated"`
	} `json:"lastState"`
	State struct {
		Waiting *struct {
			Reason  string `json:"reason"`
			Message string `json:"message"`
		} `json:"waiting"`
		Terminated *struct {
			ExitCode int    `json:"exitCode"`
			Reason   string `json:"reason"`
		} `json:"terminated"`
	} `json:"state"`
}

func (p kindPod) ready() bool {
	for _, c := range p.Status.Conditions {
		if c.Type == "Ready" {
			return c.Status == "True"
		}
	}
	return false
}

// failure says why the pod cannot come up, or "" while it still may.
func (p kindPod) failure() string {
	for _, c := range append(p.Status.InitContainerStatuses, p.Status.ContainerStatuses...) {
		if w := c.State.Waiting; w != nil {
			switch w.Reason {
			case "CrashLoopBackOff", "ErrImageNeverPull", "ImagePullBackOff", "ErrImagePull",
				"CreateContainerConfigError", "CreateContainerError", "InvalidImageName":
				return fmt.Sprintf("container %s: %s: %s", c.Name, w.Reason, w.Message)
			}
		}
		if term := c.State.Terminated; term != nil && term.ExitCode != 0 {
			return fmt.Sprintf("container %s exited with code %d (%s)", c.Name, term.ExitCode, term.Reason)
		}
		if c.RestartCount > 0 {
			return fmt.Sprintf("container %s restarted %d times", c.Name, c.RestartCount)
		}
	}
	return ""
}

// pods returns the release's pods.
func (s *kindServer) pods(ctx context.Context) []kindPod {
	GinkgoHelper()
	var list struct {
		Items []kindPod `json:"items"`
	}
	out := s.t.mustKubectl(ctx, "-n", s.rel.Namespace, "get", "pods", "-l", s.selector(), "-o", "json")
	Expect(json.Unmarshal([]byte(out), &list)).To(Succeed())
	return list.Items
}

// waitAnswering waits until the server's health service answers through
// the node's socket, whatever it says; it stops early, with the pod's
// description and logs, when the pod fails.
func (s *kindServer) waitAnswering(ctx context.Context) {
	GinkgoHelper()
	// The pods are looked at every 2 s only, the first time 2 s after the
	// install (no pod starts sooner): each look is a kubectl run, which
	// costs more CPU than the pod's start on a loaded machine.
	looked := time.Now()
	Eventually(ctx, func() error {
		_, err := os.Stat(s.Socket())
		if err == nil {
			_, err = checkHealth(ctx, s.Socket())
			if code := status.Code(err); code != codes.Unavailable && code != codes.DeadlineExceeded {
				return nil // answered, even if with an error status
			}
		}
		if time.Since(looked) < 2*time.Second {
			return err
		}
		looked = time.Now()
		for _, p := range s.pods(ctx) {
			if why := p.failure(); why != "" {
				return StopTrying(fmt.Sprintf("pod %s/%s: %s\n%s", s.rel.Namespace, p.Metadata.Name, why, s.describe()))
			}
		}
		return err
	}).WithTimeout(2*time.Minute).WithPolling(200*time.Millisecond).Should(Succeed(),
		func() string { return "the server does not answer on " + s.Socket() + "\n" + s.describe() })
}

// uninstall removes a release the suite installed, after checking that a
// server that answered never failed since, and its host directories. It
// does not wait for the pod to go: the server drains and exits on its own,
// and nothing else uses its directories (a server still writing there
// writes into directories no longer on the node).
func (s *kindServer) uninstall(ctx context.Context) {
	if s.serving {
		for _, p := range s.pods(ctx) {
			// describe() only if it failed: it is three kubectl runs.
			Expect(p.failure()).To(BeEmpty(), func() string { return "the server of release " + s.rel.Release + " failed\n" + s.describe() })
		}
	}
	if s.installed {
		_, err := s.t.helmCmd(ctx, "uninstall", s.rel.Release, "--namespace", "default")
		Expect(err).NotTo(HaveOccurred())
		s.installed = false
	}
	// What the pod wrote belongs to root and uid 1000: a suite run as root
	// removes it here; otherwise the node does, as root, so that the suite
	// needs no root (a docker exec, some 0.5 CPU-seconds, for each of some
	// 40 releases).
	if os.Geteuid() == 0 && os.RemoveAll(s.t.dep.NodeDir+filepath.Dir(s.socketDir)) == nil {
		return
	}
	_, err := s.t.runTool(ctx, nil, "docker", "exec", s.t.dep.NodeContainer, "rm", "-rf", filepath.Dir(s.socketDir))
	Expect(err).NotTo(HaveOccurred())
}
