package e2e

import (
	"context"
	"strings"
	"text/template"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	eventlogpb "github.com/ccnp-eventlog/ccnp-eventlog/proto"
)

// Upstream's plain manifests (CCNP's deployment/manifests/
// eventlog-server-deployment.yaml) with this project's image: the server
// runs with no arguments (the image's defaults), reads the CCEL copies its
// init container staged under /run/firmware/acpi/tables, and its exec
// probes run /usr/bin/grpc_health_probe, which the image links to the
// server's binary. The spec below checks that such a pod comes up and stays
// Ready; it runs on its own (beside the in-cluster specs of
// incluster_test.go, which use kind/up.sh's releases).

// upstreamPodServer is the pod of the upstream manifests as a Server: it
// mounts host directories of its own (kindServer's node paths) at upstream's
// fixed paths, so its replies name files under /run/ccnp-eventlog.
type upstreamPodServer struct{ *kindServer }

func (s upstreamPodServer) LocalPath(dataLoc string) string {
	if rel, ok := strings.CutPrefix(dataLoc, upstreamOutputDir+"/"); ok {
		return s.OutputDir() + "/" + rel
	}
	return dataLoc
}

const upstreamOutputDir = "/run/ccnp-eventlog"

var _ = Describe("Upstream's plain manifests on a kind cluster", Label("kind"), SpecPriority(kindSpecPriority), func() {
	It("keep this image Ready: no arguments, the grpc_health_probe exec probes", func(ctx SpecContext) {
		if inUserAppPod() {
			Skip("runs outside the cluster")
		}
		t := kindOnly()
		upstreamManifestsStayReady(ctx, t, t.dep.Releases.FakeHost.HostTree)
	})
})

// upstreamManifestsStayReady deploys upstream's manifests with the server
// image into a namespace of its own, on the fake TD host tree hostTree (a
// node path), and checks the pod comes up, stays Ready under its probes,
// and serves that tree's TDX log.
func upstreamManifestsStayReady(ctx context.Context, t *kindTarget, hostTree string) {
	GinkgoHelper()
	ns := "ccnp-e2e-upstream-" + t.run
	dir := kindServersDir + "/upstream-" + t.run
	srv := upstreamPodServer{&kindServer{
		t:         t,
		rel:       kindRelease{Release: "upstream-" + t.run, Namespace: ns, DaemonSet: "eventlog-server", HostTree: hostTree},
		socketDir: dir + "/uds",
		outDir:    dir + "/eventlog",
	}}
	var manifest strings.Builder
	Expect(upstreamManifestTemplate.Execute(&manifest, map[string]string{
		"Namespace": ns, "Instance": srv.rel.Release, "Image": t.dep.ServerImage,
		"SocketDir": srv.socketDir, "OutputDir": srv.outDir, "HostTree": hostTree,
	})).To(Succeed())

	t.mustKubectl(ctx, "create", "namespace", ns)
	t.mustKubectl(ctx, "label", "namespace", ns, "pod-security.kubernetes.io/enforce=privileged")
	DeferCleanup(func(ctx context.Context) {
		if CurrentSpecReport().Failed() {
			GinkgoWriter.Printf("namespace %s is kept, to look at\n%s\n", ns, srv.describe())
			return
		}
		// The pod drains and goes on its own; its directories go now.
		t.mustKubectl(ctx, "delete", "namespace", ns, "--wait=false")
		_, err := t.runTool(ctx, nil, "docker", "exec", t.dep.NodeContainer, "rm", "-rf", dir)
		Expect(err).NotTo(HaveOccurred())
	})
	_, err := t.kubectlCmd(ctx, []byte(manifest.String()), "apply", "-f", "-")
	Expect(err).NotTo(HaveOccurred())

	srv.waitAnswering(ctx)
	var pod kindPod
	Eventually(ctx, func(g Gomega) {
		pods := srv.pods(ctx)
		g.Expect(pods).To(HaveLen(1))
		g.Expect(pods[0].ready()).To(BeTrue(), "pod %s is not Ready", pods[0].Metadata.Name)
		pod = pods[0]
	}).WithTimeout(2*time.Minute).WithPolling(time.Second).Should(Succeed(), func() string { return srv.describe() })
	name := pod.Metadata.Name

	for _, probe := range []string{"livenessProbe", "readinessProbe"} {
		cmd := t.mustKubectl(ctx, "-n", ns, "get", "pod", name, "-o",
			`jsonpath={.spec.containers[?(@.name=="eventlog-server")].`+probe+`.exec.command}`)
		Expect(cmd).To(ContainSubstring(`"/usr/bin/grpc_health_probe"`), "%s of %s", probe, name)
	}
	// The probe as the kubelet runs it: exit 0 (it says SERVING on stderr).
	_, err = t.kubectlCmd(ctx, nil, "-n", ns, "exec", name, "-c", "eventlog-server", "--",
		"/usr/bin/grpc_health_probe", "-addr=unix:/run/ccnp/uds/eventlog.sock")
	Expect(err).NotTo(HaveOccurred(), "grpc_health_probe in the pod")

	// Two liveness and three readiness periods of upstream's probes. Their
	// timeout is Kubernetes' default, 1 s, which a loaded node's exec of a
	// probe can exceed: the liveness probe then restarts the server (it
	// drains and exits 0). That is upstream's setting; what this image
	// must do is answer every probe that runs, SERVING.
	w := watchProbes(ctx, srv.kindServer, pod, 30*time.Second)
	AddReportEntry("upstream's probes", w.String())
	Expect(w.failures).To(BeEmpty(), "probes of %s failed otherwise than by timing out", name)
	if w.restarts > 0 {
		Expect(w.lastExit).To(BeZero(), "the server of %s ended otherwise than stopped by the kubelet (%s)", name, w)
		Expect(w.timedOut).To(BeNumerically(">", 0), "the server of %s restarted with no probe timed out (%s)", name, w)
	}
	Eventually(ctx, func() bool { return srv.pods(ctx)[0].ready() }).WithTimeout(time.Minute).WithPolling(time.Second).Should(BeTrue(), "%s is not Ready after the watch (%s)", name, w)

	// It serves the TD's log its init container staged, upstream's way: no
	// arguments, so the defaults (host hardware, the staged copies).
	src := readSimulatorTree(t.dep.NodeDir + hostTree)[tdx]
	client := newClient(srv)
	for _, format := range []eventlogpb.FORMAT{ccnpJSON, tcgRaw} {
		reply := mustGetEventlog(ctx, client, request(tdx, 0, 0, format))
		expectServed(srv, reply, src, format, 1, src.total())
	}
}

// upstreamManifestTemplate is upstream's eventlog-server-deployment.yaml
// (the ServiceAccount and the DaemonSet), with the changes a test cluster
// needs, each marked "e2e:": its own namespace and host directories beside
// the releases on the node, the fake TD's firmware files as the hostPath
// sources, the image under test, and the init container. Upstream's init
// container is busybox running a shell `cp` and `chown`; the node cannot pull
// busybox, so the image's own `stage` does the same copy and handover, into
// the same emptyDirs. The server container is upstream's, unchanged but for
// the image.
var upstreamManifestTemplate = template.Must(template.New("upstream").Parse(`
apiVersion: v1
kind: ServiceAccount
metadata:
  namespace: {{.Namespace}}
  name: eventlog-server
  labels:
    app.kubernetes.io/name: eventlog-server
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: eventlog-server
  namespace: {{.Namespace}}
  labels:
    app.kubernetes.io/name: eventlog-server
spec:
  selector:
    matchLabels:
      app.kubernetes.io/name: eventlog-server
  template:
    metadata:
      labels:
        app.kubernetes.io/name: eventlog-server
        # e2e: the label the suite selects a server's pods by.
        app.kubernetes.io/instance: {{.Instance}}
    spec:
      serviceAccountName: eventlog-server
      securityContext:
        {}
      initContainers:
        - name: change-permissions
          # e2e: the image's stage in place of busybox's sh -c "chown ... && cp ...".
          image: "{{.Image}}"
          imagePullPolicy: IfNotPresent
          args: ["stage", "--from=/host", "--to=/run/firmware", "--uid=1000", "--gid=1000",
                 "--own-dir=/run/ccnp-eventlog", "--own-dir=/run/ccnp/uds"]
          securityContext:
            runAsUser: 0
          resources:
            limits:
              memory: "128Mi"
              cpu: "100m"
          volumeMounts:
            - name: eventlog-path
              mountPath: /run/ccnp-eventlog
            - name: sock-path
              mountPath: /run/ccnp/uds
            # e2e: where stage reads them (upstream: /tmp/eventlog-entry/CCEL, /tmp/eventlog-data/CCEL).
            - name: eventlog-entry
              mountPath: /host/sys/firmware/acpi/tables/CCEL
            - name: eventlog-data
              mountPath: /host/sys/firmware/acpi/tables/data/CCEL
            - name: eventlog-entry-dir
              mountPath: /run/firmware/acpi/tables
            - name: eventlog-data-dir
              mountPath: /run/firmware/acpi/tables/data
      containers:
        - name: eventlog-server
          securityContext:
            runAsNonRoot: true
            capabilities:
              drop: ["NET_RAW"]
          image: "{{.Image}}"
          imagePullPolicy: IfNotPresent
          livenessProbe:
            exec:
                command: ["/usr/bin/grpc_health_probe", "-addr=unix:/run/ccnp/uds/eventlog.sock"]
            initialDelaySeconds: 10
            periodSeconds: 10
          readinessProbe:
            exec:
                # e2e: the other spelling of the address, unix:///PATH.
                command: ["/usr/bin/grpc_health_probe", "-addr=unix:///run/ccnp/uds/eventlog.sock"]
            initialDelaySeconds: 5
            periodSeconds: 10
            failureThreshold: 10
          resources:
            limits:
              memory: "128Mi"
              cpu: "100m"
          volumeMounts:
            - name: eventlog-path
              mountPath: /run/ccnp-eventlog
            - name: sock-path
              mountPath: /run/ccnp/uds
            - name: eventlog-entry-dir
              mountPath: /run/firmware/acpi/tables
            - name: eventlog-data-dir
              mountPath: /run/firmware/acpi/tables/data
      nodeSelector:
        intel.feature.node.kubernetes.io/tdx-guest: "enabled"
      volumes:
      # e2e: host directories of its own (upstream: /run/ccnp-eventlog, /run/ccnp/uds).
      - name: eventlog-path
        hostPath:
          path: {{.OutputDir}}
          type: DirectoryOrCreate
      - name: sock-path
        hostPath:
          path: {{.SocketDir}}
          type: DirectoryOrCreate
      # e2e: the fake TD's files (upstream: /sys/firmware/acpi/tables/...).
      - name: eventlog-data
        hostPath:
          path: {{.HostTree}}/sys/firmware/acpi/tables/data/CCEL
          type: File
      - name: eventlog-entry
        hostPath:
          path: {{.HostTree}}/sys/firmware/acpi/tables/CCEL
          type: File
      - name: eventlog-entry-dir
        emptyDir: {}
      - name: eventlog-data-dir
        emptyDir: {}
`))
