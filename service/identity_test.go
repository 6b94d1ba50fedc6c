package service_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/ccnp-eventlog/ccnp-eventlog/containerid/cri"
	"github.com/ccnp-eventlog/ccnp-eventlog/containerid/cri/critest"
	eventlogpb "github.com/ccnp-eventlog/ccnp-eventlog/proto"
)

// otherPIDNamespace starts a process in a PID namespace of its own and
// returns its pid, as the host sees it.
func otherPIDNamespace(t *testing.T) int {
	t.Helper()
	if _, err := exec.LookPath("unshare"); err != nil || os.Geteuid() != 0 {
		t.Skip("a process in another PID namespace needs root and unshare (util-linux)")
	}
	cmd := exec.Command("unshare", "--pid", "--fork", "sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	children := fmt.Sprintf("/proc/%d/task/%d/children", cmd.Process.Pid, cmd.Process.Pid)
	for range 500 {
		b, _ := os.ReadFile(children)
		if f := strings.Fields(string(b)); len(f) > 0 {
			pid, _ := strconv.Atoi(f[0])
			return pid
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("unshare started no process")
	return 0
}

// TestRuntimeConfirmsTheContainer: with a CRI socket, a caller whose cgroup
// names a container is served only if the runtime runs that container and
// the caller is in its PID namespace.
func TestRuntimeConfirmsTheContainer(t *testing.T) {
	e := newRuntimeEnv(t)
	rt := critest.Serve(t, filepath.Join(e.dir, "containerd.sock"))
	client, err := cri.New(rt.Socket)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	e.ident.Runtime = client
	log := &syncBuffer{}
	e.logs = log
	// ctrA's first process is this test's (same PID namespace), ctrB's
	// is in another PID namespace, ctrC is not running.
	rt.Set(ctrA, critest.Container{State: runtimeapi.ContainerState_CONTAINER_RUNNING, PID: os.Getpid()})
	otherInit := otherPIDNamespace(t)
	e.linkNamespaces(t, otherInit)
	rt.Set(ctrB, critest.Container{State: runtimeapi.ContainerState_CONTAINER_RUNNING, PID: otherInit})
	rt.Set(ctrC, critest.Container{State: runtimeapi.ContainerState_CONTAINER_EXITED, PID: os.Getpid()})
	s := e.start(t, e.newTDX(t))
	if !strings.Contains(log.String(), "runtime_check=\"CRI at "+rt.Socket) {
		t.Errorf("the start-up log does not say the runtime check is on:\n%s", log)
	}

	e.as(t, ctrA)
	if r := s.mustRecord(t, "a1"); r.ContainerId != ctrA {
		t.Fatalf("attributed to %s", r.ContainerId)
	}
	s.mustRecord(t, "a2")
	if n := rt.Calls.Load(); n != 1 {
		t.Errorf("the runtime was asked %d times for two records of one container; its answer is kept briefly", n)
	}

	e.as(t, ctrB)
	_, err = s.record(t, "b1")
	wantCode(t, err, codes.PermissionDenied, "not in the container's PID namespace", ctrB[:12])
	e.as(t, ctrC)
	_, err = s.record(t, "c1")
	wantCode(t, err, codes.PermissionDenied, "CONTAINER_EXITED")
	unknown := strings.Repeat("5a", 32)
	e.as(t, unknown)
	_, err = s.record(t, "u1")
	wantCode(t, err, codes.PermissionDenied, "knows no container "+unknown)
	if l := log.String(); !strings.Contains(l, fmt.Sprintf("pid=%d uid=0", os.Getpid())) || !strings.Contains(l, "container-level caller refused") {
		t.Errorf("refusals are not logged with the pid and uid:\n%s", l)
	}

	// Docker's containers are not the CRI runtime's: the cgroup checks
	// alone tell them.
	docker := strings.Repeat("d0", 32)
	e.setCgroup(t, os.Getpid(), "0::/system.slice/docker-"+docker+".scope\n")
	before := rt.Calls.Load()
	if r := s.mustRecord(t, "d1"); r.ContainerId != docker {
		t.Fatalf("attributed to %s", r.ContainerId)
	}
	if rt.Calls.Load() != before {
		t.Error("the CRI runtime was asked about a Docker container")
	}

	// The runtime gone: the server's problem, retryable. ctrA's answer is
	// still kept; a container not asked about before cannot be confirmed.
	rt.Stop()
	e.as(t, ctrA)
	s.mustRecord(t, "a3")
	other := strings.Repeat("6b", 32)
	e.as(t, other)
	_, err = s.record(t, "o1")
	wantCode(t, err, codes.Unavailable, "cannot be asked", rt.Socket)

	e.as(t, ctrA)
	if got := datas(s.own(t)); strings.Join(got, ",") != "a1,a2,a3" {
		t.Errorf("container A's events: %v", got)
	}
}

// TestDelegatedCgroupIsRefused: a cgroup below a directory another uid owns
// (a delegated subtree) names no container, whatever it is called; the
// container whose name it takes keeps its events.
func TestDelegatedCgroupIsRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chowning a cgroup to another uid needs root")
	}
	e := newRuntimeEnv(t)
	log := &syncBuffer{}
	e.logs = log
	s := e.start(t, e.newTDX(t))
	e.as(t, ctrA)
	s.mustRecord(t, "the victim's")

	user := filepath.Join(e.cgroup, "user.slice/user-65534.slice/user@65534.service")
	fake := "/user.slice/user-65534.slice/user@65534.service/app.slice/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod2b1c_3d4e.slice/cri-containerd-" + ctrA + ".scope"
	e.setCgroup(t, os.Getpid(), "0::"+fake+"\n")
	for d := filepath.Join(e.cgroup, fake); d != filepath.Dir(user); d = filepath.Dir(d) {
		if err := os.Chown(d, 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}
	_, err := s.record(t, "the attacker's")
	wantCode(t, err, codes.PermissionDenied, "user@65534.service is owned by uid 65534")
	_, err = s.get(t, &eventlogpb.GetEventlogRequest{EventlogLevel: eventlogpb.LEVEL_SAAS, Inline: true})
	wantCode(t, err, codes.PermissionDenied, "delegated")
	if !strings.Contains(log.String(), "container-level caller refused") {
		t.Errorf("the refusal is not logged:\n%s", log)
	}

	e.as(t, ctrA)
	if got := datas(s.own(t)); strings.Join(got, ",") != "the victim's" {
		t.Errorf("the victim's events: %v", got)
	}
}
