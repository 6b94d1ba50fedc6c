package deployment

import (
	"strings"
	"testing"
	"time"
)

// TestRollingUpdate: helm upgrade replaces a node's pod by stopping the old
// one before the new one starts (no surge: two servers cannot share the
// node's socket and state directory), and the kubelet gives the server
// longer than its drain to exit, so that it removes its socket itself.
// The e2e suite runs it under load on a kind cluster
// (e2e/lifecycle_kind_test.go), and checks the install notes there.
func TestRollingUpdate(t *testing.T) {
	ds := render(t).daemonSet(t)
	us := ds.Spec.UpdateStrategy
	if us.Type != "RollingUpdate" || us.RollingUpdate == nil {
		t.Fatalf("updateStrategy %+v, want RollingUpdate", us)
	}
	if us.RollingUpdate.MaxSurge != 0 || us.RollingUpdate.MaxUnavailable != 1 {
		t.Errorf("rollingUpdate maxSurge %v maxUnavailable %v, want 0 and 1", us.RollingUpdate.MaxSurge, us.RollingUpdate.MaxUnavailable)
	}
	spec := &ds.Spec.Template.Spec
	server := findContainer(t, spec.Containers, "eventlog-server")
	v, _ := flagValue(server.Args, "drain-timeout")
	drain, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("server --drain-timeout %q: %v", v, err)
	}
	if spec.TerminationGracePeriod == nil || time.Duration(*spec.TerminationGracePeriod)*time.Second <= drain {
		t.Errorf("terminationGracePeriodSeconds %v, want more than the drain timeout %s", spec.TerminationGracePeriod, drain)
	}

	spec = &render(t, "drainTimeoutSeconds=3", "terminationGracePeriodSeconds=8").daemonSet(t).Spec.Template.Spec
	if v, _ := flagValue(findContainer(t, spec.Containers, "eventlog-server").Args, "drain-timeout"); v != "3s" || *spec.TerminationGracePeriod != 8 {
		t.Errorf("--drain-timeout %q, grace %d: want the values 3s and 8", v, *spec.TerminationGracePeriod)
	}
}

func TestRollingUpdateSchema(t *testing.T) {
	for _, tt := range []struct {
		sets []string
		want string
	}{
		{[]string{"updateStrategy.rollingUpdate.maxSurge=1"}, "maxSurge"},
		{[]string{"updateStrategy.rollingUpdate.maxSurge=10%"}, "maxSurge"},
		{[]string{"updateStrategy.rollingUpdate.maxUnavailable=0"}, "maxUnavailable"},
		{[]string{"updateStrategy.type=Recreate"}, "updateStrategy"},
		{[]string{"drainTimeoutSeconds=30"}, "must exceed drainTimeoutSeconds"},
		{[]string{"drainTimeoutSeconds=0"}, "drainTimeoutSeconds"},
	} {
		args := []string{"template", release, chartDir}
		for _, s := range tt.sets {
			args = append(args, "--set", s)
		}
		_, err := helm(t, args...)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("--set %v: error %v, want one naming %s", tt.sets, err, tt.want)
		}
	}
	for _, sets := range [][]string{
		{"updateStrategy.rollingUpdate.maxUnavailable=25%"},
		{"updateStrategy.type=OnDelete", "updateStrategy.rollingUpdate=null"},
	} {
		args := []string{"template", release, chartDir}
		for _, s := range sets {
			args = append(args, "--set", s)
		}
		if _, err := helm(t, args...); err != nil {
			t.Errorf("--set %v: %v", sets, err)
		}
	}
}
