package e2e

import (
	"context"
	"fmt"
	"os"
	"strings"
	"text/template"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// On kind, the metrics of the release eventlog-server (simulated hardware,
// the chart's defaults: metrics at the pod's IP, port 9464) are scraped
// from another pod, as Prometheus in the cluster would: a Job of this test
// binary run with --ginkgo.label-filter=metrics-scraper and the DaemonSet
// pod's metrics URL in E2E_METRICS_URL. (The suite outside the cluster
// cannot reach pod IPs.)

const (
	metricsScraperLabel = "metrics-scraper"
	metricsURLEnv       = "E2E_METRICS_URL"
	// chartMetricsPort is the chart's metrics.port default.
	chartMetricsPort = 9464
)

// expectMetricsScraped runs the scraper's Job against the pod of sim, the
// release eventlog-server. It is a spec of the in-cluster container
// (incluster_test.go), which is Ordered, so that it never runs while
// "comes back when its pod is deleted" replaces that pod (its IP vanished
// mid-scrape when this was a spec of its own run in parallel), without
// waiting, as a Serial spec would, until every other spec is done.
func expectMetricsScraped(ctx context.Context, t *kindTarget, sim *kindServer) {
	GinkgoHelper()
	pods := sim.pods(ctx)
	Expect(pods).To(HaveLen(1))
	podIP := strings.TrimSpace(t.mustKubectl(ctx, "-n", sim.rel.Namespace, "get", "pod", pods[0].Metadata.Name, "-o", "jsonpath={.status.podIP}"))
	Expect(podIP).NotTo(BeEmpty())
	host := podIP
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	url := fmt.Sprintf("http://%s:%d/metrics", host, chartMetricsPort)
	// Requests the scraper must see counted: it checks at least this many.
	client := newClient(sim)
	for range 3 {
		mustGetEventlog(ctx, client, request(tdx, 0, 0, ccnpJSON))
	}

	ns := t.specNamespace(ctx, "ccnp-e2e-metrics-")
	var job strings.Builder
	Expect(metricsScraperJob.Execute(&job, map[string]any{
		"Namespace": ns, "Image": t.dep.UserImage, "Label": metricsScraperLabel, "AppEnv": userAppEnv,
		"URLEnv": metricsURLEnv, "URL": url, "UID": nobody,
	})).To(Succeed())
	logs := t.runJob(ctx, ns, "metrics-scraper", job.String(), "the scraper's Job")
	Expect(logs).To(ContainSubstring("Ran 1 of "))
	Expect(logs).To(ContainSubstring("SUCCESS!"))
}

// The scraper, in its pod: it reaches the server only over the pod network.
var _ = Describe("A pod scraping the server's metrics", Label(metricsScraperLabel), func() {
	It("sees requests counted and every register of the simulated hardware matching", func(ctx SpecContext) {
		url := os.Getenv(metricsURLEnv)
		if !inUserAppPod() || url == "" {
			Skip("runs in the scraper's pod, which the kind specs start")
		}
		var first scrape
		Eventually(func(g Gomega) {
			m, err := scrapeMetrics(ctx, url)
			g.Expect(err).NotTo(HaveOccurred())
			first = m
		}).WithContext(ctx).WithTimeout(time.Minute).Should(Succeed())
		get := requestsSeries("/Eventlog/GetEventlog", "OK", "TDX_EVENTLOG", "PAAS")
		Expect(first[get]).To(BeNumerically(">=", 3), "the suite's requests are not counted")
		Expect(first).To(HaveKey("process_resident_memory_bytes"))
		Expect(first).To(HaveKey("eventlog_server_connections_open"))
		// The chart verifies every 5 minutes, the first at start.
		Eventually(func(g Gomega) {
			m, err := scrapeMetrics(ctx, url)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(m).To(HaveKey("eventlog_server_last_verify_timestamp_seconds"))
			var matched int
			for s, v := range m {
				if strings.HasPrefix(s, "eventlog_server_register_match{") {
					g.Expect(v).To(Equal(1.0), s)
					matched++
				}
			}
			g.Expect(matched).To(BeNumerically(">=", 3), "registers verified")
		}).WithContext(ctx).WithTimeout(time.Minute).Should(Succeed())
	})
})

var metricsScraperJob = template.Must(template.New("job").Parse(`
apiVersion: batch/v1
kind: Job
metadata:
  name: metrics-scraper
  namespace: {{.Namespace}}
spec:
  backoffLimit: 0
  activeDeadlineSeconds: 240
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
        - name: scraper
          image: {{.Image}}
          imagePullPolicy: Never
          args: ["--ginkgo.label-filter={{.Label}}", "--ginkgo.v", "--ginkgo.no-color"]
          env:
            - name: {{.AppEnv}}
              value: "1"
            - name: {{.URLEnv}}
              value: {{printf "%q" .URL}}
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities:
              drop: ["ALL"]
          volumeMounts:
            - name: tmp
              mountPath: /tmp
      volumes:
        - name: tmp
          emptyDir: {}
`))
