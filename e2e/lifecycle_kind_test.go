package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"text/template"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	eventlogpb "github.com/ccnp-eventlog/ccnp-eventlog/proto"
	"github.com/ccnp-eventlog/ccnp-eventlog/runtimelog"
)

// What an operator does to a release after installing it, on kind: helm
// upgrade to a new image while clients keep asking, and helm uninstall
// followed by a reinstall. Both specs run on one release of the chart that
// this container installs: simulated hardware, container-level events on
// (saas.enabled; its state directory, with the simulated TD's RTMRs, on the
// node), and output files that live lifecycleFileLifetime.

// lifecycleFileLifetime is the release's --min-file-lifetime and
// --max-file-age: short, so that the upgrade spec sees handed-out files
// kept for their lifetime and removed after it; yet longer than the upgrade
// takes on a loaded 2-core machine (40 s seen at load 20), so that the
// files handed out before it are still within their lifetime when the new
// pod serves, and show that it kept them.
const lifecycleFileLifetime = 60 * time.Second

var _ = Describe("The chart's lifecycle on a kind cluster", Label("kind"), Ordered, SpecPriority(kindSpecPriority), func() {
	var (
		t    *kindTarget
		srv  *kindServer
		saas *saasServer
		// clientsNS holds the client pods.
		clientsNS string
		// recorded is the data of every container-level event recorded on
		// the release, in order.
		recorded []string
	)

	BeforeAll(func(ctx SpecContext) {
		if inUserAppPod() {
			Skip("runs outside the cluster")
		}
		t = kindOnly()
		Expect(t.dep.NextServerImage).NotTo(BeEmpty(), "kind/up.sh built no second server image (an older build/kind/target.json?)")
		sim := SimulatedHardware{Seed: 1}
		hw, srcs := simulatedHardware(sim).setUp()
		srv = target.StartServer(ctx, ServerConfig{
			Hardware:        hw,
			ContainerEvents: true,
			Limits:          OutputLimits{MinFileLifetime: lifecycleFileLifetime, MaxFileAge: lifecycleFileLifetime},
		}).(*kindServer)
		// The release's directory on this machine: its state directory is
		// state/ in it (kind_target_test.go), the simulated TD's RTMRs are
		// kept there by the chart.
		dir := t.dep.NodeDir + filepath.Dir(srv.socketDir)
		saas = &saasServer{hardware: hw, sim: sim, src: srcs[tdx], dir: dir, stateFile: filepath.Join(dir, "state", "simulated-tdx-rtmrs.json")}

		clientsNS = "ccnp-e2e-clients-" + t.run
		t.mustKubectl(ctx, "create", "namespace", clientsNS)
		DeferCleanup(func(ctx context.Context) {
			t.mustKubectl(ctx, "delete", "namespace", clientsNS, "--wait=false")
		})
	})

	It("upgrade: helm upgrade to a new image while clients on the node and in a pod keep asking: no call fails, handed-out files live their lifetime, recorded events stay", func(ctx SpecContext) {
		// The control directory the client pod shares with the suite.
		ctl := filepath.Dir(srv.socketDir) + "/control"
		Expect(os.MkdirAll(t.dep.NodeDir+ctl, 0o777)).To(Succeed())
		Expect(os.Chmod(t.dep.NodeDir+ctl, 0o777)).To(Succeed())
		ctlFile := func(name string) string { return filepath.Join(t.dep.NodeDir+ctl, name) }

		pod := "upgrade-client"
		t.applyPod(ctx, clientPodTemplate, map[string]any{
			"Name": pod, "Namespace": clientsNS, "Image": t.dep.UserImage, "UID": nobody,
			"SocketDir": srv.socketDir, "OutputDir": srv.outDir, "ControlDir": ctl,
			"Env": map[string]string{
				userAppEnv: "1", clientSocketEnv: srv.socketDir + "/eventlog.sock", clientOutDirEnv: srv.outDir,
				clientControlEnv: "/control", clientNameEnv: "upgrade-client-" + t.run,
			},
			"Args": []string{"--ginkgo.label-filter=" + upgradeClientLabel, "--ginkgo.v", "--ginkgo.no-color"},
		})
		DeferCleanup(func(ctx context.Context) {
			logs, _ := t.kubectlCmd(ctx, nil, "-n", clientsNS, "logs", pod)
			GinkgoWriter.Printf("the client pod's log:\n%s\n", logs)
			t.mustKubectl(ctx, "-n", clientsNS, "delete", "pod", pod, "--wait=false")
		})
		var first []string
		Eventually(ctx, func() error {
			if t.podPhase(ctx, clientsNS, pod) == "Failed" {
				return StopTrying("the client pod failed before it recorded its first events")
			}
			return readJSONFile(ctlFile(clientRecordedFile), &first)
		}).WithTimeout(2*time.Minute).WithPolling(500*time.Millisecond).Should(Succeed(), "the client pod did not record its first events")
		Expect(first).To(HaveLen(clientFirstRecords))

		// From this machine, through the node's socket: files handed out
		// once (single events) to check after the upgrade, then calls
		// without pause.
		host := newLoadClient(srv, "host")
		type handout struct {
			loc     string
			content []byte
			at      time.Time
		}
		var handouts []handout
		for i := int32(1); i <= 5; i++ {
			reply, content, err := host.get(ctx, request(tdx, i, 1, tcgRaw))
			Expect(err).NotTo(HaveOccurred())
			handouts = append(handouts, handout{reply.EventlogDataLoc, content, time.Now()})
		}
		socketGaps := watchSocket(srv.Socket())
		stopHost := make(chan struct{})
		hostDone := make(chan struct{})
		go func() {
			defer GinkgoRecover()
			defer close(hostDone)
			host.run(ctx, func() bool {
				select {
				case <-stopHost:
					return true
				default:
					return false
				}
			}, 0)
		}()
		stopClients := func() {
			select {
			case <-stopHost:
			default:
				close(stopHost)
				<-hostDone
			}
			_ = os.WriteFile(ctlFile(clientStopFile), nil, 0o644)
		}
		DeferCleanup(stopClients)

		time.Sleep(2 * time.Second) // under load before, too
		oldPods := srv.pods(ctx)
		Expect(oldPods).To(HaveLen(1))
		upgradeAt := time.Now()
		repo, tag, _ := strings.Cut(t.dep.NextServerImage, ":")
		srv.helmUpgrade(ctx, "image.repository="+repo, "image.tag="+tag)
		// kubectl rollout status watches the DaemonSet until its pods run
		// the new template and are available: one process, where looking
		// at the pods every 250 ms ran kubectl without pause, taking CPU
		// from the rollout it timed.
		notRolled := func() string { return "the DaemonSet did not roll to the new image\n" + srv.describe() }
		_, err := t.kubectlCmd(ctx, nil, "-n", srv.rel.Namespace, "rollout", "status", "daemonset/"+srv.rel.DaemonSet, "--timeout=2m")
		Expect(err).NotTo(HaveOccurred(), notRolled)
		Eventually(ctx, func(g Gomega) {
			pods := srv.pods(ctx)
			g.Expect(pods).To(HaveLen(1))
			g.Expect(pods[0].Metadata.UID).NotTo(Equal(oldPods[0].Metadata.UID))
			g.Expect(pods[0].failure()).To(BeEmpty())
			g.Expect(pods[0].ready()).To(BeTrue())
		}).WithTimeout(30*time.Second).WithPolling(time.Second).Should(Succeed(), notRolled)
		readyAt := time.Now()
		image := t.mustKubectl(ctx, "-n", srv.rel.Namespace, "get", "pods", "-l", srv.selector(), "-o",
			`jsonpath={.items[0].spec.containers[?(@.name=="eventlog-server")].image}`)
		Expect(image).To(Equal(t.dep.NextServerImage), "the new pod's image")

		// Both clients answered by the new server, then stopped.
		Eventually(func() time.Time { return host.snapshot().LastOK }).WithTimeout(30*time.Second).Should(BeTemporally(">", readyAt),
			"no call from this machine was answered after the new pod was Ready")
		time.Sleep(2 * time.Second)
		stopClients()
		var res podClientResult
		Eventually(ctx, func() error {
			if t.podPhase(ctx, clientsNS, pod) == "Failed" {
				return StopTrying("the client pod failed")
			}
			return readJSONFile(ctlFile(clientResultFile), &res)
		}).WithTimeout(time.Minute).WithPolling(500*time.Millisecond).Should(Succeed(), "the client pod wrote no result")
		Eventually(ctx, func() string { return t.podPhase(ctx, clientsNS, pod) }).WithTimeout(time.Minute).WithPolling(500 * time.Millisecond).Should(Equal("Succeeded"))
		gaps := socketGaps()
		hostStats := host.snapshot()

		var longest time.Duration
		for _, g := range gaps {
			longest = max(longest, g.to.Sub(g.from))
		}
		waited := host.answeredAcross(gaps)
		AddReportEntry("helm upgrade under load", fmt.Sprintf(
			"upgrade → new pod Ready %s; socket absent %d time(s), the longest %s\n  this machine: %s; %d calls in flight while the socket was absent were answered\n  the client pod: %s",
			readyAt.Sub(upgradeAt).Round(100*time.Millisecond), len(gaps), longest.Round(time.Millisecond),
			hostStats, waited, res.Stats))

		Expect(hostStats.Failed).To(BeZero(), "calls from this machine failed: %v", hostStats.Errors)
		Expect(res.Stats.Failed).To(BeZero(), "calls from the pod failed: %v", res.Stats.Errors)
		Expect(gaps).NotTo(BeEmpty(), "the socket never went away: the old server did not stop under the clients")
		Expect(waited).To(BeNumerically(">", 0), "no call was in flight while the socket was gone: the clients were not tested across the gap")
		Expect(res.Stats.LastOK).To(BeTemporally(">", readyAt), "the client pod was not answered by the new server")

		// Events recorded before and during the upgrade are in the log after
		// it, once each, and replay to the live RTMR3.
		Expect(res.Recorded[:clientFirstRecords]).To(Equal(first))
		Expect(res.Own).To(Equal(res.Recorded))
		recorded = append(recorded, res.Recorded...)
		saas.expectConsistent(ctx, srv, recorded)

		// The files handed out before the upgrade: readable, unchanged, for
		// their minimum lifetime; then the new server removes them.
		Expect(time.Since(handouts[0].at)).To(BeNumerically("<", lifecycleFileLifetime-time.Second),
			"the upgrade took so long that the files handed out before it are past their lifetime: they cannot show that the new pod kept them")
		for _, h := range handouts {
			Expect(os.ReadFile(srv.LocalPath(h.loc))).To(Equal(h.content), "%s, handed out before the upgrade", h.loc)
		}
		last := handouts[len(handouts)-1].at
		if wait := time.Until(handouts[0].at.Add(lifecycleFileLifetime - time.Second)); wait > 0 {
			Consistently(func(g Gomega) {
				for _, h := range handouts {
					if time.Now().Before(h.at.Add(lifecycleFileLifetime - time.Second)) {
						g.Expect(os.ReadFile(srv.LocalPath(h.loc))).To(Equal(h.content), "%s, handed out before the upgrade", h.loc)
					}
				}
			}).WithTimeout(wait).WithPolling(500 * time.Millisecond).Should(Succeed())
		}
		// The new server sweeps every lifetime from its start.
		Eventually(func() []string {
			var left []string
			for _, h := range handouts {
				if _, err := os.Stat(srv.LocalPath(h.loc)); err == nil {
					left = append(left, h.loc)
				}
			}
			return left
		}).WithTimeout(2*lifecycleFileLifetime+15*time.Second).WithPolling(time.Second).Should(BeEmpty(),
			"files not handed out again outlived --max-file-age")
		AddReportEntry("files handed out before the upgrade", fmt.Sprintf("readable for their %s lifetime, removed %s after the last was handed out",
			lifecycleFileLifetime, time.Since(last).Round(time.Second)))
	})

	It("uninstall: helm uninstall leaves no socket and keeps what the notes say; a reinstall serves at once, its runtime log squared with the register", func(ctx SpecContext) {
		client := newLoadClient(srv, "uninstall")
		data := "uninstall-" + t.run + ": recorded before helm uninstall"
		t.recordInPod(ctx, clientsNS, srv, "record-before", data)
		recorded = append(recorded, data)
		reply, content, err := client.get(ctx, request(tdx, 3, 2, tcgRaw))
		Expect(err).NotTo(HaveOccurred())

		notes, err := t.helmCmd(ctx, "get", "notes", srv.rel.Release, "--namespace", "default")
		Expect(err).NotTo(HaveOccurred())
		stateDir := filepath.Dir(srv.socketDir) + "/state"
		Expect(notes).To(containAll("helm uninstall stops the servers and removes their sockets",
			"the files handed out, in "+srv.outDir, "the runtime log of container-level events, in "+stateDir))

		// --wait: the release's namespace too is gone when it returns, so
		// that it can be installed again at once (deployment/README.md).
		uninstallAt := time.Now()
		srv.helmUninstall(ctx)
		uninstalled := time.Since(uninstallAt)

		// No socket left; its directory stays, empty.
		_, err = os.Lstat(srv.Socket())
		Expect(errors.Is(err, fs.ErrNotExist)).To(BeTrue(), "after helm uninstall, %s: %v", srv.Socket(), err)
		Expect(os.ReadDir(filepath.Dir(srv.Socket()))).To(BeEmpty())
		// What the notes say stays: the file handed out, the runtime log,
		// and (simulated) the TD's registers that log explains.
		Expect(os.ReadFile(srv.LocalPath(reply.EventlogDataLoc))).To(Equal(content), "a file handed out before helm uninstall")
		Expect(journalDatas(saas.journal())).To(Equal(recorded), "the runtime log on the node")
		Expect(saas.liveRTMR3()).To(Equal(saas.rtmr3After(recorded...)), "the simulated TD's RTMR3 on the node")

		// Installed again: the first call, made at once, waits for the
		// socket and gets the whole log, runtime events included.
		installAt := time.Now()
		srv.install(ctx)
		again := newLoadClient(srv, "reinstall")
		ctx2, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		first, err := again.client.GetEventlog(ctx2, &eventlogpb.GetEventlogRequest{EventlogCategory: tdx, Format: tcgRaw, Inline: true})
		Expect(err).NotTo(HaveOccurred())
		answered := time.Since(installAt)
		l, err := eventlog.Parse(first.EventlogData)
		Expect(err).NotTo(HaveOccurred())
		Expect(datas(&eventlog.Log{Events: l.Events[saas.src.total():]})).To(Equal(recorded), "the first answer after the reinstall: its runtime events")
		saas.expectConsistent(ctx, srv, recorded)

		// And the register goes on from there.
		data = "uninstall-" + t.run + ": recorded after the reinstall"
		t.recordInPod(ctx, clientsNS, srv, "record-after", data)
		recorded = append(recorded, data)
		saas.expectConsistent(ctx, srv, recorded)
		AddReportEntry("helm uninstall and install", fmt.Sprintf("uninstall (pods gone) %s; install → first answer %s; %d runtime events kept",
			uninstalled.Round(100*time.Millisecond), answered.Round(100*time.Millisecond), len(recorded)))
	})
})

// journalDatas is the data of a runtime log's events, in order.
func journalDatas(records []runtimelog.Record) []string {
	GinkgoHelper()
	ds := []string{}
	for _, r := range records {
		ds = append(ds, string(eventData(r.Event)))
	}
	return ds
}

// applyPod applies a pod made from tmpl and data.
func (t *kindTarget) applyPod(ctx context.Context, tmpl *template.Template, data map[string]any) {
	GinkgoHelper()
	var b strings.Builder
	Expect(tmpl.Execute(&b, data)).To(Succeed())
	_, err := t.kubectlCmd(ctx, []byte(b.String()), "apply", "-f", "-")
	Expect(err).NotTo(HaveOccurred(), "applying\n%s", b.String())
}

// podPhase is a pod's phase, "" if it cannot be read.
func (t *kindTarget) podPhase(ctx context.Context, ns, pod string) string {
	out, _ := t.kubectlCmd(ctx, nil, "-n", ns, "get", "pod", pod, "-o", "jsonpath={.status.phase}")
	return out
}

// recordInPod records a container-level event from a pod of its own, with
// `eventlog-server record` (the server's image), as a workload does.
func (t *kindTarget) recordInPod(ctx context.Context, ns string, srv *kindServer, pod, data string) *eventlogpb.RecordEventReply {
	GinkgoHelper()
	t.applyPod(ctx, clientPodTemplate, map[string]any{
		"Name": pod, "Namespace": ns, "Image": t.dep.ServerImage, "UID": nobody,
		"SocketDir": srv.socketDir,
		"Args":      []string{"record", "--socket=" + srv.socketDir + "/eventlog.sock", "--data=" + data, "-o", "json"},
	})
	DeferCleanup(func(ctx context.Context) { t.mustKubectl(ctx, "-n", ns, "delete", "pod", pod, "--wait=false") })
	Eventually(ctx, func() string { return t.podPhase(ctx, ns, pod) }).WithTimeout(2*time.Minute).WithPolling(500*time.Millisecond).
		Should(BeElementOf("Succeeded", "Failed"), "the pod %s did not finish", pod)
	logs := t.mustKubectl(ctx, "-n", ns, "logs", pod)
	Expect(t.podPhase(ctx, ns, pod)).To(Equal("Succeeded"), "eventlog-server record in pod %s:\n%s", pod, logs)
	var r eventlogpb.RecordEventReply
	Expect(protojson.Unmarshal([]byte(logs), &r)).To(Succeed(), logs)
	Expect(r.ContainerId).NotTo(BeEmpty())
	Expect(r.Register).To(Equal("RTMR3"))
	return &r
}

// readJSONFile reads what writeJSONFile wrote.
func readJSONFile(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// clientPodTemplate is a pod of the e2e binary or the server's image, as an
// unprivileged user, with a release's socket directory (and output and
// control directories, if given) from the node at their node paths.
var clientPodTemplate = template.Must(template.New("pod").Parse(`
apiVersion: v1
kind: Pod
metadata:
  name: {{.Name}}
  namespace: {{.Namespace}}
spec:
  restartPolicy: Never
  automountServiceAccountToken: false
  securityContext:
    runAsNonRoot: true
    runAsUser: {{.UID}}
    runAsGroup: {{.UID}}
    seccompProfile:
      type: RuntimeDefault
  containers:
    - name: client
      image: {{.Image}}
      imagePullPolicy: Never
      args:
        {{- range .Args}}
        - {{printf "%q" .}}
        {{- end}}
      env:
        {{- range $k, $v := .Env}}
        - name: {{$k}}
          value: {{printf "%q" $v}}
        {{- end}}
      securityContext:
        allowPrivilegeEscalation: false
        readOnlyRootFilesystem: true
        capabilities:
          drop: ["ALL"]
      volumeMounts:
        - name: socket
          mountPath: {{.SocketDir}}
        {{- if .OutputDir}}
        - name: files
          mountPath: {{.OutputDir}}
          readOnly: true
        {{- end}}
        {{- if .ControlDir}}
        - name: control
          mountPath: /control
        {{- end}}
        - name: tmp
          mountPath: /tmp
  volumes:
    - name: socket
      hostPath:
        path: {{.SocketDir}}
        type: Directory
    {{- if .OutputDir}}
    - name: files
      hostPath:
        path: {{.OutputDir}}
        type: Directory
    {{- end}}
    {{- if .ControlDir}}
    - name: control
      hostPath:
        path: {{.ControlDir}}
        type: Directory
    {{- end}}
    - name: tmp
      emptyDir: {}
`))
