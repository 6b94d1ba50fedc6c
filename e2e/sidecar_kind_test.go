package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ccnp-eventlog/ccnp-eventlog/hwsource"
	eventlogpb "github.com/ccnp-eventlog/ccnp-eventlog/proto"
)

// The sidecar example (deployment/examples/sidecar.yaml) run on kind through
// the overlay kind/sidecar (kind/sidecar.sh applies it): no runtime class,
// the stage step reading the fake TD's files, the app container this e2e
// binary. In the pod, the app runs the user application's specs (label
// user-app: the socket and files at the example's paths) and the sidecar's
// own (label sidecar-app, below).

const sidecarAppLabel = "sidecar-app"

// sidecarAppSpecs is how many specs the sidecar's app container runs.
var sidecarAppSpecs = userAppSpecs + 2

// socketAtStart is what this binary found at the socket's path when it
// started, before any spec ran: in the sidecar's app container the
// server's startup probe must have held the app back until the socket
// was there.
var socketAtStart = func() error {
	if !inUserAppPod() {
		return nil
	}
	fi, err := os.Lstat(userAppSocket)
	if err != nil {
		return err
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("%s is not a socket: %s", userAppSocket, fi.Mode())
	}
	return nil
}()

var _ = Describe("The sidecar example on a kind cluster", Label("kind"), SpecPriority(kindSpecPriority), func() {
	It("sidecar: serves the app container in its pod the fake TD's logs, held back by the startup probe until the socket exists, and verify answers", func(ctx SpecContext) {
		if inUserAppPod() {
			Skip("runs outside the cluster")
		}
		t := kindOnly()
		ns := "ccnp-e2e-sidecar-" + t.run
		t.mustKubectl(ctx, "create", "namespace", ns)
		DeferCleanup(func(ctx context.Context) {
			if CurrentSpecReport().Failed() {
				out, _ := t.kubectlCmd(ctx, nil, "-n", ns, "describe", "pod")
				GinkgoWriter.Printf("namespace %s is kept, to look at\n%s\n", ns, out)
				return
			}
			t.mustKubectl(ctx, "delete", "namespace", ns, "--wait=false")
		})

		// What the app must find: the fake TD's logs, which the stage step
		// copies from the node (not simulated; the registers fakehost wrote).
		srcs := readSimulatorTree(t.dep.NodeDir + t.dep.Releases.FakeHost.HostTree)
		// The server in the pod reads the copies its stage step made.
		srcs[tdx].file, srcs[tpm].file = "/"+hwsource.StagedCCELDataPath, "/"+hwsource.StagedTPMLogPath
		dir := GinkgoT().TempDir()
		for _, cat := range userAppCategories {
			for name, b := range userAppExpectedFiles(cat, srcs[cat]) {
				Expect(os.WriteFile(filepath.Join(dir, name), b, 0o644)).To(Succeed())
			}
		}
		t.mustKubectl(ctx, "-n", ns, "create", "configmap", "e2e-expected", "--from-file="+dir)

		cmd := exec.CommandContext(ctx, filepath.Join(bin.ModuleRoot, "kind", "sidecar.sh"), ns)
		cmd.Env = append(os.Environ(), "KUBECONFIG="+t.dep.Kubeconfig)
		out, err := cmd.CombinedOutput()
		Expect(err).NotTo(HaveOccurred(), "kind/sidecar.sh %s:\n%s", ns, out)
		applied := time.Now()

		const name = "eventlog-sidecar-example"
		var p sidecarPod
		Eventually(ctx, func(g Gomega) {
			js := t.mustKubectl(ctx, "-n", ns, "get", "pod", name, "-o", "json")
			g.Expect(json.Unmarshal([]byte(js), &p)).To(Succeed())
			g.Expect(p.Status.Phase).To(BeElementOf("Succeeded", "Failed"))
		}).WithTimeout(3*time.Minute).WithPolling(time.Second).Should(Succeed(), func() string {
			d, _ := t.kubectlCmd(ctx, nil, "-n", ns, "describe", "pod", name)
			return "the sidecar example's pod did not finish\n" + d
		})
		logs := t.mustKubectl(ctx, "-n", ns, "logs", name, "-c", "app")
		serverLogs := t.mustKubectl(ctx, "-n", ns, "logs", name, "-c", "eventlog-server")
		GinkgoWriter.Printf("the app container's log:\n%s\nthe server's log:\n%s\n", logs, serverLogs)
		Expect(p.Status.Phase).To(Equal("Succeeded"), "the app container failed; its log:\n%s", logs)
		Expect(serverLogs).NotTo(ContainSubstring("level=ERROR"), "the server in the example's pod logged an error")
		Expect(logs).To(ContainSubstring(fmt.Sprintf("Ran %d of ", sidecarAppSpecs)), "the app did not run its %d specs", sidecarAppSpecs)
		Expect(logs).To(ContainSubstring("SUCCESS!"))

		// The overlay changed what kind lacks, not the server: its
		// container is the example's but for the image and pull policy.
		example := decodePod(readFile(filepath.Join(bin.ModuleRoot, "deployment", "examples", "sidecar.yaml")))
		Expect(example.Spec.RuntimeClassName).NotTo(BeEmpty())
		Expect(p.Spec.RuntimeClassName).To(BeEmpty())
		want, got := example.initContainer("eventlog-server"), p.initContainer("eventlog-server")
		Expect(got.Args).To(Equal(want.Args), "the server's arguments")
		Expect(got.StartupProbe).To(Equal(want.StartupProbe), "the server's startup probe")
		Expect(got.RestartPolicy).To(Equal("Always"), "the server is a native sidecar")
		// It staged the fake TD's three files.
		stageLogs := t.mustKubectl(ctx, "-n", ns, "logs", name, "-c", "stage")
		Expect(strings.Count(stageLogs, "msg=staged")).To(Equal(3), stageLogs)

		// The kubelet started the app after the server's startup probe
		// passed: the server had said it was serving by then (the app's
		// own spec checks that the socket was there as it started).
		var server, app *sidecarContainerStatus
		for i := range p.Status.InitContainerStatuses {
			if p.Status.InitContainerStatuses[i].Name == "eventlog-server" {
				server = &p.Status.InitContainerStatuses[i]
			}
		}
		for i := range p.Status.ContainerStatuses {
			if p.Status.ContainerStatuses[i].Name == "app" {
				app = &p.Status.ContainerStatuses[i]
			}
		}
		Expect(server).NotTo(BeNil())
		Expect(app).NotTo(BeNil())
		Expect(app.State.Terminated).NotTo(BeNil())
		serving := logTime(serverLogs, "msg=serving")
		appStarted := app.State.Terminated.StartedAt
		// startedAt has a resolution of a second.
		Expect(appStarted.Add(time.Second)).To(BeTemporally(">", serving), "the app started before the server served")
		AddReportEntry("sidecar example on kind", fmt.Sprintf("pod applied → server serving %s → app started (second resolution) %s → pod done %s",
			serving.Sub(applied).Round(100*time.Millisecond), appStarted.Sub(applied).Round(time.Second),
			app.State.Terminated.FinishedAt.Sub(applied).Round(time.Second)))
	})
})

// The sidecar's own specs, in its app container.
var _ = Describe("The application container of the sidecar example", Label(sidecarAppLabel), func() {
	srv := podServer{socket: userAppSocket, outDir: userAppEventlogDir}
	BeforeEach(func() {
		if !inUserAppPod() {
			Skip("runs in the sidecar example's app container only (" + userAppEnv + "=1)")
		}
	})

	It("found the server's socket in its pod as it started: the startup probe held it back until then", func() {
		Expect(socketAtStart).NotTo(HaveOccurred())
	})

	It("gets an answer from verify: the log replays to the TD's registers, and the live registers are not available on kind", func(ctx SpecContext) {
		src := readUserAppExpected(tdx)
		conn, err := dialRetrying(srv.Socket(), nil)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(conn.Close)
		ctx2, cancel := context.WithTimeout(ctx, callTimeout)
		defer cancel()
		v, err := eventlogpb.NewEventlogClient(conn).VerifyEventlog(ctx2, &eventlogpb.VerifyEventlogRequest{EventlogCategory: tdx})
		Expect(err).NotTo(HaveOccurred())
		GinkgoWriter.Printf("VerifyEventlog: %v\n", v)
		Expect(v.Simulated).To(BeFalse())
		Expect(v.TotalEvents).To(BeEquivalentTo(src.total()))
		want := registerTable(src.kind, src.registers)
		Expect(want).NotTo(BeEmpty())
		got := map[string]string{}
		for _, r := range v.Registers {
			if _, ok := want[r.Algorithm+" "+r.Register]; ok {
				got[r.Algorithm+" "+r.Register] = r.Replayed
				// No TD under kind: nothing to compare with, and it says so.
				Expect(r.Status).To(Equal(eventlogpb.REGISTER_STATUS_NOT_AVAILABLE), "%s", r.Register)
			}
		}
		Expect(got).To(Equal(want), "the registers verify replays the log to, against %s", src.registersFrom)
		Expect(v.Verified).To(BeFalse())
		Expect(v.LiveError).NotTo(BeEmpty())
	})
})

// sidecarPod is what the sidecar spec reads of the pod, and of the example.
type sidecarPod struct {
	Spec struct {
		RuntimeClassName string                `json:"runtimeClassName"`
		InitContainers   []sidecarPodContainer `json:"initContainers"`
	} `json:"spec"`
	Status struct {
		Phase                 string                   `json:"phase"`
		InitContainerStatuses []sidecarContainerStatus `json:"initContainerStatuses"`
		ContainerStatuses     []sidecarContainerStatus `json:"containerStatuses"`
	} `json:"status"`
}

type sidecarPodContainer struct {
	Name          string   `json:"name"`
	Args          []string `json:"args"`
	RestartPolicy string   `json:"restartPolicy"`
	StartupProbe  *struct {
		Exec struct {
			Command []string `json:"command"`
		} `json:"exec"`
		PeriodSeconds    int `json:"periodSeconds"`
		FailureThreshold int `json:"failureThreshold"`
	} `json:"startupProbe"`
}

type sidecarContainerStatus struct {
	Name  string `json:"name"`
	State struct {
		Terminated *struct {
			ExitCode   int       `json:"exitCode"`
			StartedAt  time.Time `json:"startedAt"`
			FinishedAt time.Time `json:"finishedAt"`
		} `json:"terminated"`
	} `json:"state"`
}

func (p *sidecarPod) initContainer(name string) sidecarPodContainer {
	GinkgoHelper()
	for _, c := range p.Spec.InitContainers {
		if c.Name == name {
			return c
		}
	}
	Fail("no init container " + name)
	return sidecarPodContainer{}
}

// decodePod reads a YAML manifest of one pod, through kubectl's own
// conversion to JSON.
func decodePod(yaml []byte) *sidecarPod {
	GinkgoHelper()
	t := kindOnly()
	js, err := t.kubectlCmd(context.Background(), yaml, "create", "--dry-run=client", "-o", "json", "-f", "-")
	Expect(err).NotTo(HaveOccurred())
	var p sidecarPod
	Expect(json.Unmarshal([]byte(js), &p)).To(Succeed())
	return &p
}

// logTime is the time of the first line of a server's log holding marker.
func logTime(logs, marker string) time.Time {
	GinkgoHelper()
	for _, line := range strings.Split(logs, "\n") {
		if !strings.Contains(line, marker) {
			continue
		}
		if v, ok := strings.CutPrefix(strings.Fields(line)[0], "time="); ok {
			at, err := time.Parse(time.RFC3339Nano, v)
			Expect(err).NotTo(HaveOccurred())
			return at
		}
	}
	Fail(fmt.Sprintf("no line with %q in the log:\n%s", marker, logs))
	return time.Time{}
}
