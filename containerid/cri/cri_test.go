package cri_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/ccnp-eventlog/ccnp-eventlog/containerid/cri"
	"github.com/ccnp-eventlog/ccnp-eventlog/containerid/cri/critest"
)

const (
	running = "8f3c2a41d6e07b95c1a2f4e6d8b0c3a5e7f9d1b3c5a7e9f1d3b5c7a9e1f3d5b7"
	exited  = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	noInfo  = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
	noPID   = "1111111111111111111111111111111111111111111111111111111111111111"
	other   = "2222222222222222222222222222222222222222222222222222222222222222"
	unknown = "3333333333333333333333333333333333333333333333333333333333333333"
)

func TestInitPID(t *testing.T) {
	socket := filepath.Join(t.TempDir(), "containerd.sock")
	rt := critest.Serve(t, socket)
	rt.Set(running, critest.Container{State: runtimeapi.ContainerState_CONTAINER_RUNNING, PID: 4242})
	rt.Set(exited, critest.Container{State: runtimeapi.ContainerState_CONTAINER_EXITED, PID: 4243})
	rt.Set(noInfo, critest.Container{State: runtimeapi.ContainerState_CONTAINER_RUNNING, NoInfo: true})
	rt.Set(noPID, critest.Container{State: runtimeapi.ContainerState_CONTAINER_RUNNING})
	rt.Set(other, critest.Container{State: runtimeapi.ContainerState_CONTAINER_RUNNING, PID: 7, AnswerAs: running})
	c, err := cri.New(socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()

	if pid, err := c.InitPID(ctx, running); err != nil || pid != 4242 {
		t.Errorf("a running container: %d, %v; want 4242", pid, err)
	}
	for _, tc := range []struct {
		id   string
		want error
		msg  string
	}{
		{unknown, cri.ErrNotRunning, "knows no container " + unknown},
		{exited, cri.ErrNotRunning, "CONTAINER_EXITED"},
		{other, cri.ErrNotRunning, "answered for container"},
		{noInfo, cri.ErrUnsupported, "no verbose information"},
		{noPID, cri.ErrUnsupported, "no pid"},
	} {
		pid, err := c.InitPID(ctx, tc.id)
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) || !strings.Contains(err.Error(), socket) {
			t.Errorf("%.12s: %d, %v; want %v saying %q and naming the socket", tc.id, pid, err, tc.want, tc.msg)
		}
	}
}

// TestStartingContainer: a container whose process calls before the
// runtime calls it running (containerd answers CONTAINER_CREATED until its
// start call returns) is waited for, within StartingWait; one that stays
// created is not running.
func TestStartingContainer(t *testing.T) {
	socket := filepath.Join(t.TempDir(), "containerd.sock")
	rt := critest.Serve(t, socket)
	rt.Set(running, critest.Container{State: runtimeapi.ContainerState_CONTAINER_CREATED})
	rt.Set(exited, critest.Container{State: runtimeapi.ContainerState_CONTAINER_CREATED})
	c, err := cri.New(socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	started := time.AfterFunc(300*time.Millisecond, func() {
		rt.Set(running, critest.Container{State: runtimeapi.ContainerState_CONTAINER_RUNNING, PID: 4242})
	})
	defer started.Stop()
	if pid, err := c.InitPID(context.Background(), running); err != nil || pid != 4242 {
		t.Errorf("a container started while asked: %d, %v; want 4242", pid, err)
	}

	begin := time.Now()
	pid, err := c.InitPID(context.Background(), exited)
	took := time.Since(begin)
	if !errors.Is(err, cri.ErrNotRunning) || !strings.Contains(err.Error(), "CONTAINER_CREATED") {
		t.Errorf("a container that stays created: %d, %v; want ErrNotRunning saying CONTAINER_CREATED", pid, err)
	}
	if took < cri.StartingWait || took > cri.StartingWait+5*time.Second {
		t.Errorf("gave up on a created container after %s; want about %s", took, cri.StartingWait)
	}
}

// TestUnavailable: a runtime that does not answer, or is not there, is the
// server's problem, told within the call's deadline.
func TestUnavailable(t *testing.T) {
	dir := t.TempDir()
	rt := critest.Serve(t, filepath.Join(dir, "slow.sock"))
	rt.Set(running, critest.Container{State: runtimeapi.ContainerState_CONTAINER_RUNNING, PID: 1})
	rt.Delay(time.Minute)
	// Something that accepts connections and never speaks.
	mute, err := net.Listen("unix", filepath.Join(dir, "mute.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer mute.Close()
	for _, socket := range []string{rt.Socket, filepath.Join(dir, "absent.sock"), mute.Addr().String()} {
		c, err := cri.New(socket)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		_, err = c.InitPID(context.Background(), running)
		took := time.Since(start)
		c.Close()
		var unavailable *cri.UnavailableError
		if !errors.As(err, &unavailable) || unavailable.Socket != socket {
			t.Errorf("%s: %v, want an UnavailableError naming the socket", socket, err)
		}
		// The deadline is 2 s; a loaded machine may add some, not a minute.
		if took > 20*time.Second {
			t.Errorf("%s: the call took %v: it has no deadline", socket, took)
		}
		t.Logf("%s: %v after %v", filepath.Base(socket), err, took.Round(time.Millisecond))
	}
}

func TestFindSocket(t *testing.T) {
	root := t.TempDir()
	if got := cri.FindSocket(root); got != "" && !strings.HasPrefix(got, "/run/") {
		t.Errorf("FindSocket in an empty root = %q", got)
	}
	// A regular file where a socket would be is not a runtime.
	if err := os.MkdirAll(filepath.Join(root, "run/containerd"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "run/containerd/containerd.sock"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	crio := filepath.Join(root, "run/crio/crio.sock")
	if err := os.MkdirAll(filepath.Dir(crio), 0o755); err != nil {
		t.Fatal(err)
	}
	critest.Serve(t, crio)
	if got := cri.FindSocket(root); got != crio {
		t.Errorf("FindSocket = %q, want CRI-O's %s (containerd's is not a socket)", got, crio)
	}
	os.Remove(filepath.Join(root, "run/containerd/containerd.sock"))
	containerd := filepath.Join(root, "run/containerd/containerd.sock")
	critest.Serve(t, containerd)
	if got := cri.FindSocket(root); got != containerd {
		t.Errorf("FindSocket = %q, want containerd's %s, the first", got, containerd)
	}
}
