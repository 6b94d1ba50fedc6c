package e2e

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"text/template"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	eventlogpb "github.com/ccnp-eventlog/ccnp-eventlog/proto"
)

// The in-cluster specs run on the kind target only. They check the two
// releases kind/up.sh installed, as deployed: content through the sockets
// the node exposes, a user application's pod, the DaemonSet's pod replaced
// under a client, its probes, and the plain manifests against the API
// server.

// kindSpecPriority is the SpecPriority of the longest kind-only containers.
const kindSpecPriority = 10

// kindOnly returns the kind target, or skips the spec.
func kindOnly() *kindTarget {
	GinkgoHelper()
	t, ok := target.(*kindTarget)
	if !ok {
		Skip(fmt.Sprintf("needs the kind target (E2E_TARGET=kind, make e2e), not %s", target.Name()))
	}
	return t
}

// SpecPriority: the kind-only containers are the suite's longest (pods,
// Jobs, 30 s probe watches, a rolling upgrade); started first, they run
// beside the short specs instead of after them, alone.
var _ = Describe("The chart deployed on a kind cluster", Label("kind"), Ordered, SpecPriority(kindSpecPriority), func() {
	var (
		t    *kindTarget
		sim  *kindServer // release eventlog-server: simulated hardware
		fake *kindServer // release eventlog-fakehost: the real backends on a fake host tree
		// simSrcs is what the simulated release's hardware holds (the
		// server's default seed, 1), as the suite computes it here.
		simSrcs map[eventlogpb.CATEGORY]*sourceLog
	)
	BeforeAll(func(ctx SpecContext) {
		if inUserAppPod() {
			Skip("runs outside the cluster")
		}
		t = kindOnly()
		sim = t.release(ctx, t.dep.Releases.Simulated)
		fake = t.release(ctx, t.dep.Releases.FakeHost)
		_, simSrcs = simulatedHardware(SimulatedHardware{Seed: 1}).setUp()
		Expect(simSrcs[tpm]).NotTo(BeNil(), "the suite needs cgo to know what the simulated TPM holds")
	})

	Context("release eventlog-server, simulated hardware at the upstream socket and directory", func() {
		It("is deployed as deployment/README.md says: /run/ccnp/uds/eventlog.sock, /run/ccnp-eventlog", func() {
			Expect(sim.socketDir).To(Equal("/run/ccnp/uds"))
			Expect(sim.outDir).To(Equal("/run/ccnp-eventlog"))
		})
		for _, cat := range []eventlogpb.CATEGORY{tdx, tpm} {
			It("serves "+categoryName(cat)+" of the simulator, in CCNP JSON and raw, through the node's socket", func(ctx SpecContext) {
				client := newClient(sim)
				for _, format := range []eventlogpb.FORMAT{ccnpJSON, tcgRaw} {
					reply := mustGetEventlog(ctx, client, request(cat, 0, 0, format))
					expectServed(sim, reply, simSrcs[cat], format, 1, simSrcs[cat].total())
				}
			})
		}
	})

	Context("release eventlog-fakehost, the real backends on the fake host tree its init container staged", func() {
		var srcs map[eventlogpb.CATEGORY]*sourceLog
		BeforeAll(func() {
			srcs = readSimulatorTree(t.dep.NodeDir + fake.rel.HostTree)
		})

		It("staged the tree's CCEL table, log area and TPM log in its init container", func(ctx SpecContext) {
			pods := fake.pods(ctx)
			Expect(pods).To(HaveLen(1))
			logs := t.mustKubectl(ctx, "-n", fake.rel.Namespace, "logs", pods[0].Metadata.Name, "-c", "stage")
			for _, f := range []string{"sys/firmware/acpi/tables/CCEL", "sys/firmware/acpi/tables/data/CCEL", "sys/kernel/security/tpm0/binary_bios_measurements"} {
				fi, err := os.Stat(filepath.Join(t.dep.NodeDir+fake.rel.HostTree, f))
				Expect(err).NotTo(HaveOccurred())
				Expect(logs).To(MatchRegexp(`msg=staged .*from=/host/%s .*bytes=%d\b`, regexp.QuoteMeta(f), fi.Size()),
					"the stage container's log does not say it copied %s (%d bytes)", f, fi.Size())
			}
		})

		for _, cat := range []eventlogpb.CATEGORY{tdx, tpm} {
			It("serves "+categoryName(cat)+" of the tree, not simulated, replaying to fakehost's registers", func(ctx SpecContext) {
				client := newClient(fake)
				for _, format := range []eventlogpb.FORMAT{ccnpJSON, tcgRaw} {
					reply := mustGetEventlog(ctx, client, request(cat, 0, 0, format))
					expectServed(fake, reply, srcs[cat], format, 1, srcs[cat].total())
				}
			})
		}
	})

	It("serves a user application: a Job of the e2e binary, mounting the socket and event log directories as the docs say", func(ctx SpecContext) {
		ns := t.specNamespace(ctx, "ccnp-e2e-user-")

		dir := GinkgoT().TempDir()
		for _, cat := range userAppCategories {
			for name, b := range userAppExpectedFiles(cat, simSrcs[cat]) {
				Expect(os.WriteFile(filepath.Join(dir, name), b, 0o644)).To(Succeed())
			}
		}
		t.mustKubectl(ctx, "-n", ns, "create", "configmap", "e2e-expected", "--from-file="+dir)
		logs := t.runJob(ctx, ns, "user-app", userAppJob(ns, t.dep.UserImage), "the user application's Job")
		Expect(logs).To(ContainSubstring(fmt.Sprintf("Ran %d of ", userAppSpecs)), "the user application did not run its %d specs", userAppSpecs)
		Expect(logs).To(ContainSubstring("SUCCESS!"))
	})

	It("keeps the DaemonSets' pods Ready: the exec probes (eventlog-server probe) pass", func(ctx SpecContext) {
		for _, srv := range []*kindServer{sim, fake} {
			pods := srv.pods(ctx)
			Expect(pods).To(HaveLen(1))
			name := pods[0].Metadata.Name
			for _, probe := range []string{"livenessProbe", "readinessProbe"} {
				cmd := t.mustKubectl(ctx, "-n", srv.rel.Namespace, "get", "pod", name, "-o",
					`jsonpath={.spec.containers[?(@.name=="eventlog-server")].`+probe+`.exec.command}`)
				Expect(cmd).To(ContainSubstring(`"probe"`), "%s of %s", probe, name)
			}
			// The probe, run as the kubelet runs it.
			out := t.mustKubectl(ctx, "-n", srv.rel.Namespace, "exec", name, "-c", "eventlog-server", "--",
				"/usr/bin/eventlog-server", "probe", "--socket="+srv.socketDir+"/eventlog.sock")
			Expect(out).To(ContainSubstring("SERVING"))
		}
		// Six readiness periods and three liveness periods of the chart's
		// defaults, both pods at once.
		watches := make([]probeWatch, 2)
		var wg sync.WaitGroup
		for i, srv := range []*kindServer{sim, fake} {
			pod := srv.pods(ctx)[0]
			wg.Add(1)
			go func() {
				defer GinkgoRecover()
				defer wg.Done()
				watches[i] = watchProbes(ctx, srv, pod, 30*time.Second)
			}()
		}
		wg.Wait()
		for i, srv := range []*kindServer{sim, fake} {
			w := watches[i]
			AddReportEntry("probes of "+srv.rel.DaemonSet, w.String())
			Expect(w.failures).To(BeEmpty(), "probes of %s failed otherwise than by timing out", srv.rel.DaemonSet)
			Expect(w.restarts).To(BeZero(), "the server of %s was restarted while watched (%s)", srv.rel.DaemonSet, w)
			Expect(srv.pods(ctx)[0].ready()).To(BeTrue(), "%s is not Ready after the watch (%s)", srv.rel.DaemonSet, w)
		}
	})

	// Before the next spec replaces the pod it scrapes.
	It("has its metrics scraped by another pod at the DaemonSet pod's IP and metrics port: counts move, every simulated register matches", Label("metrics"), func(ctx SpecContext) {
		expectMetricsScraped(ctx, t, sim)
	})

	It("comes back when its pod is deleted, while a client keeps asking: the same log, its files kept, the socket back", func(ctx SpecContext) {
		client := newClient(sim)
		before := mustGetEventlog(ctx, client, request(tdx, 0, 0, tcgRaw))
		beforeContent := readReply(sim, before)
		pods := sim.pods(ctx)
		Expect(pods).To(HaveLen(1))
		old := pods[0]

		// The client: one call every 100 ms, each bounded, through the
		// same connection, as a workload that retries would.
		type outcome struct {
			at    time.Time
			reply *eventlogpb.GetEventlogReply
			err   error
		}
		var (
			mu       sync.Mutex
			outcomes []outcome
		)
		last := func() (o outcome) {
			mu.Lock()
			defer mu.Unlock()
			return outcomes[len(outcomes)-1]
		}
		stop, done := make(chan struct{}), make(chan struct{})
		stopClient := sync.OnceFunc(func() { close(stop); <-done })
		DeferCleanup(stopClient)
		go func() {
			defer GinkgoRecover()
			defer close(done)
			for {
				callCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
				reply, err := client.GetEventlog(callCtx, request(tdx, 0, 0, tcgRaw))
				cancel()
				mu.Lock()
				outcomes = append(outcomes, outcome{time.Now(), reply, err})
				mu.Unlock()
				select {
				case <-stop:
					return
				case <-time.After(100 * time.Millisecond):
				}
			}
		}()

		deleted := time.Now()
		t.mustKubectl(ctx, "-n", sim.rel.Namespace, "delete", "pod", old.Metadata.Name, "--wait=false")
		Eventually(ctx, func(g Gomega) {
			pods := sim.pods(ctx)
			g.Expect(pods).To(HaveLen(1))
			g.Expect(pods[0].Metadata.UID).NotTo(Equal(old.Metadata.UID))
			g.Expect(pods[0].ready()).To(BeTrue())
		}).WithTimeout(2*time.Minute).WithPolling(time.Second).Should(Succeed(), "the DaemonSet did not replace the deleted pod")
		replaced := time.Now()
		Eventually(ctx, func(g Gomega) {
			o := last()
			g.Expect(o.at).To(BeTemporally(">", replaced))
			g.Expect(o.err).NotTo(HaveOccurred())
		}).WithTimeout(time.Minute).WithPolling(200*time.Millisecond).Should(Succeed(), "the client got no answer from the new pod")
		stopClient()

		var ok, unavailable int
		for _, o := range outcomes {
			if o.err != nil {
				Expect(status.Code(o.err)).To(Equal(codes.Unavailable), "a call while the pod was replaced failed otherwise than Unavailable: %v", o.err)
				unavailable++
				continue
			}
			ok++
			Expect(o.reply.Sha256).To(Equal(before.Sha256), "a reply at %s held another log", o.at.Sub(deleted))
			Expect(o.reply.EventlogDataLoc).To(Equal(before.EventlogDataLoc), "the file of the same log has another name")
			Expect(readReply(sim, o.reply)).To(Equal(beforeContent))
		}
		AddReportEntry("pod replaced under a client", fmt.Sprintf("new pod Ready %s after the delete; the client's %d calls: %d answered, %d Unavailable",
			replaced.Sub(deleted).Round(100*time.Millisecond), len(outcomes), ok, unavailable))
		Expect(unavailable).To(BeNumerically(">", 0), "the client never saw the server gone: the pod was not replaced under it")

		// No data lost: the file from before the restart is still there.
		Expect(os.ReadFile(sim.LocalPath(before.EventlogDataLoc))).To(Equal(beforeContent))
		// The socket is back, for any uid.
		fi, err := os.Stat(sim.Socket())
		Expect(err).NotTo(HaveOccurred())
		Expect(fi.Mode().Type()).To(Equal(fs.ModeSocket))
		Expect(fi.Mode().Perm()).To(Equal(fs.FileMode(0o666)))
		// A new client, too.
		expectServed(sim, mustGetEventlog(ctx, newClient(sim), request(tdx, 0, 0, tcgRaw)), simSrcs[tdx], tcgRaw, 1, simSrcs[tdx].total())
	})

	It("accepts the plain manifests: kubectl apply --dry-run=server -f deployment/manifests changes nothing", func(ctx SpecContext) {
		generation := func() string {
			return t.mustKubectl(ctx, "-n", sim.rel.Namespace, "get", "daemonset", sim.rel.DaemonSet, "-o", "jsonpath={.metadata.generation}")
		}
		gen := generation()
		out := t.mustKubectl(ctx, "apply", "--dry-run=server", "-f", filepath.Join(bin.ModuleRoot, "deployment", "manifests"))
		GinkgoWriter.Print(out)
		for _, obj := range []string{"namespace/ccnp", "serviceaccount/eventlog-server", "daemonset.apps/eventlog-server"} {
			Expect(out).To(MatchRegexp(`(?m)^%s \w+ \(server dry run\)$`, regexp.QuoteMeta(obj)))
		}
		Expect(generation()).To(Equal(gen), "the dry run changed the DaemonSet")
	})
})

// userAppJob is the user application's Job: the pod of deployment/README.md
// (the socket directory and, read-only, the event log directory, from the
// node), as an unprivileged user, running the e2e binary's user-app specs.
func userAppJob(ns, image string) string {
	var b strings.Builder
	Expect(userAppJobTemplate.Execute(&b, map[string]any{
		"Namespace": ns, "Image": image, "Label": userAppLabel, "Env": userAppEnv,
		"Expected": userAppExpectedDir, "UID": nobody,
	})).To(Succeed())
	return b.String()
}

var userAppJobTemplate = template.Must(template.New("job").Parse(`
apiVersion: batch/v1
kind: Job
metadata:
  name: user-app
  namespace: {{.Namespace}}
spec:
  backoffLimit: 0
  activeDeadlineSeconds: 300
  template:
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
        - name: app
          image: {{.Image}}
          imagePullPolicy: Never
          args: ["--ginkgo.label-filter={{.Label}}", "--ginkgo.v", "--ginkgo.no-color"]
          env:
            - name: {{.Env}}
              value: "1"
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities:
              drop: ["ALL"]
          volumeMounts:
            - name: eventlog-socket
              mountPath: /run/ccnp/uds
            - name: eventlog-files
              mountPath: /run/ccnp-eventlog
              readOnly: true
            - name: expected
              mountPath: {{.Expected}}
              readOnly: true
            - name: tmp
              mountPath: /tmp
      volumes:
        - name: eventlog-socket
          hostPath:
            path: /run/ccnp/uds
            type: Directory
        - name: eventlog-files
          hostPath:
            path: /run/ccnp-eventlog
            type: Directory
        - name: expected
          configMap:
            name: e2e-expected
        - name: tmp
          emptyDir: {}
`))
