package e2e

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// Watching a pod's probes on kind. The kubelet runs an exec probe as a new
// process in the container; on a loaded node (this machine's two cores are
// shared) that alone can take longer than the probe's timeout, which the
// kubelet reports as "command timed out". Such a timeout says nothing of the
// server, so the specs count it and report it; every other failure (the
// server answering NOT_SERVING, or not at all) fails them.

// probeWatch is what watching a pod showed.
type probeWatch struct {
	polls, notReady int
	// restarts are the container restarts meanwhile; lastExit the exit
	// code of the last instance that ended (a server the kubelet stopped
	// exits 0: it drains on SIGTERM).
	restarts, lastExit int
	// timedOut counts the probes the kubelet could not run in time;
	// failures are what the others said.
	timedOut int
	failures []string
}

func (w probeWatch) String() string {
	return fmt.Sprintf("%d of %d looks Ready, %d restart(s), %d probe run(s) timed out, %d failed otherwise",
		w.polls-w.notReady, w.polls, w.restarts, w.timedOut, len(w.failures))
}

// watchProbes watches the pod of srv, which must stay that pod, for d.
func watchProbes(ctx context.Context, srv *kindServer, pod kindPod, d time.Duration) probeWatch {
	GinkgoHelper()
	var w probeWatch
	before := unhealthyEvents(ctx, srv.t, srv.rel.Namespace, pod.Metadata.Name)
	restarts := func(p kindPod) int {
		n := 0
		for _, c := range p.Status.ContainerStatuses {
			n += c.RestartCount
			if t := c.LastState.Terminated; t != nil {
				w.lastExit = t.ExitCode
			}
		}
		return n
	}
	first := restarts(pod)
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(2 * time.Second) {
		pods := srv.pods(ctx)
		Expect(pods).To(HaveLen(1))
		Expect(pods[0].Metadata.UID).To(Equal(pod.Metadata.UID), "the pod of %s was replaced", srv.rel.DaemonSet)
		w.polls++
		if !pods[0].ready() {
			w.notReady++
		}
		w.restarts = restarts(pods[0]) - first
	}
	for name, e := range unhealthyEvents(ctx, srv.t, srv.rel.Namespace, pod.Metadata.Name) {
		n := e.count - before[name].count
		if n <= 0 {
			continue
		}
		if strings.Contains(e.message, "timed out") {
			w.timedOut += n
		} else {
			w.failures = append(w.failures, fmt.Sprintf("%d× %s", n, e.message))
		}
	}
	return w
}

type unhealthyEvent struct {
	count   int
	message string
}

// unhealthyEvents are a pod's Unhealthy events (failed probes), by name.
func unhealthyEvents(ctx context.Context, t *kindTarget, ns, pod string) map[string]unhealthyEvent {
	GinkgoHelper()
	out := t.mustKubectl(ctx, "-n", ns, "get", "events", "--field-selector", "reason=Unhealthy,involvedObject.name="+pod,
		"-o", `jsonpath={range .items[*]}{.metadata.name}{"\t"}{.count}{"\t"}{.message}{"\n"}{end}`)
	evs := map[string]unhealthyEvent{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.SplitN(line, "\t", 3)
		if len(f) != 3 {
			continue
		}
		n, err := strconv.Atoi(f[1])
		if err != nil {
			n = 1 // an event series counts in .series, and starts at one
		}
		evs[f[0]] = unhealthyEvent{n, f[2]}
	}
	return evs
}
