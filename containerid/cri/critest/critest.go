// Package critest runs a CRI runtime service in-process, on a real Unix
// socket, for tests: the containers it knows are the ones a test gives it.
// It answers ContainerStatus as containerd does (verbose information as
// JSON under "info", with the container's first process's pid); real
// containerd and CRI-O cannot run outside a node.
package critest

import (
	"context"
	"encoding/json"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Container is what the runtime says about one container.
type Container struct {
	State runtimeapi.ContainerState
	// PID is its first process; 0 leaves it out of the verbose information.
	PID int
	// NoInfo leaves the verbose information out altogether.
	NoInfo bool
	// AnswerAs is the ID the answer carries, when not the one asked for
	// (containerd resolves ID prefixes).
	AnswerAs string
}

// Runtime is a CRI runtime service.
type Runtime struct {
	runtimeapi.UnimplementedRuntimeServiceServer
	Socket string
	// Calls counts ContainerStatus calls.
	Calls atomic.Int64

	mu         sync.Mutex
	containers map[string]Container
	delay      time.Duration
	srv        *grpc.Server
}

// Serve serves a runtime on socket until the test ends.
func Serve(t testing.TB, socket string) *Runtime {
	t.Helper()
	lis, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	r := &Runtime{Socket: socket, containers: map[string]Container{}, srv: grpc.NewServer()}
	runtimeapi.RegisterRuntimeServiceServer(r.srv, r)
	go r.srv.Serve(lis)
	t.Cleanup(r.Stop)
	return r
}

// Stop stops serving: the socket stops answering.
func (r *Runtime) Stop() { r.srv.Stop() }

// Set makes the runtime know container id.
func (r *Runtime) Set(id string, c Container) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.containers[id] = c
}

// Delay makes every answer take d.
func (r *Runtime) Delay(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.delay = d
}

// ContainerStatus implements runtimeapi.RuntimeServiceServer.
func (r *Runtime) ContainerStatus(ctx context.Context, req *runtimeapi.ContainerStatusRequest) (*runtimeapi.ContainerStatusResponse, error) {
	r.Calls.Add(1)
	r.mu.Lock()
	c, ok := r.containers[req.ContainerId]
	delay := r.delay
	r.mu.Unlock()
	select {
	case <-time.After(delay):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if !ok {
		return nil, status.Errorf(codes.NotFound, "an error occurred when try to find container %q: not found", req.ContainerId)
	}
	id := req.ContainerId
	if c.AnswerAs != "" {
		id = c.AnswerAs
	}
	resp := &runtimeapi.ContainerStatusResponse{Status: &runtimeapi.ContainerStatus{Id: id, State: c.State}}
	if req.Verbose && !c.NoInfo {
		info := map[string]any{"sandboxID": "0000", "removing": false, "runtimeType": "io.containerd.runc.v2"}
		if c.PID != 0 {
			info["pid"] = c.PID
		}
		b, _ := json.Marshal(info)
		resp.Info = map[string]string{"info": string(b)}
	}
	return resp, nil
}
