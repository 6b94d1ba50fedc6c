// Package cri asks a node's container runtime, through its CRI socket
// (containerd, CRI-O), whether a container runs and which process is its
// first, so that what a caller's cgroups say can be confirmed with the
// runtime that made them.
package cri

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// DefaultSockets are the CRI sockets looked for when none is named, in
// order: containerd's, then CRI-O's.
var DefaultSockets = []string{"/run/containerd/containerd.sock", "/run/crio/crio.sock"}

// CallTimeout bounds each call to the runtime: a runtime that does not
// answer must not hold a caller's request.
const CallTimeout = 2 * time.Second

// ErrNotRunning is wrapped when the runtime knows no running container with
// the ID: it never made it, or it has stopped.
var ErrNotRunning = errors.New("not a running container")

// ErrUnsupported is wrapped when the runtime answers, but not with what
// confirming a container needs (its first process's pid).
var ErrUnsupported = errors.New("the runtime does not say which process a container runs")

// UnavailableError is a runtime that could not be asked: not listening, not
// answering in time, or failing. It is the server's problem, not the
// caller's, and may pass.
type UnavailableError struct {
	Socket string
	Err    error
}

func (e *UnavailableError) Error() string {
	return "the container runtime at " + e.Socket + " cannot be asked: " + e.Err.Error()
}
func (e *UnavailableError) Unwrap() error { return e.Err }

// FindSocket returns the first of DefaultSockets that exists as a socket
// under root (the server's --root), or else under "/", or "" when none does.
func FindSocket(root string) string {
	for _, dir := range []string{root, "/"} {
		for _, s := range DefaultSockets {
			p := filepath.Join(dir, s)
			if fi, err := os.Stat(p); err == nil && fi.Mode().Type() == os.ModeSocket {
				return p
			}
		}
		if filepath.Clean(root) == "/" {
			break
		}
	}
	return ""
}

// Client asks one runtime about its containers.
type Client struct {
	socket string
	conn   *grpc.ClientConn
	rs     runtimeapi.RuntimeServiceClient
}

// New returns a client of the CRI runtime service at socket. It connects
// on first use, and again after the runtime restarts.
func New(socket string) (*Client, error) {
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("CRI socket %s: %w", socket, err)
	}
	return &Client{socket: socket, conn: conn, rs: runtimeapi.NewRuntimeServiceClient(conn)}, nil
}

// Socket is the runtime's socket.
func (c *Client) Socket() string { return c.socket }

func (c *Client) String() string {
	return "CRI at " + c.socket + " (running container, caller in its PID namespace)"
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// containerInfo is what containerd and CRI-O both put, as JSON, in the
// "info" entry of a verbose ContainerStatus: the container's first
// process, as the runtime (in the host's PID namespace) numbers it.
type containerInfo struct {
	Pid int `json:"pid"`
}

// StartingWait bounds how long InitPID waits for a container the runtime
// still calls created. The runtime says a container runs only once its
// start call has returned, and the container's first process may call the
// server before that: containerd on kind answered CONTAINER_CREATED to a
// process that had already started and called.
const StartingWait = 2 * time.Second

// startingPoll is how often a created container's state is asked again.
const startingPoll = 50 * time.Millisecond

// InitPID returns the pid of the first process of the running container id,
// in the runtime's PID namespace (the host's). A container the runtime still
// calls created is asked about again, for at most StartingWait.
func (c *Client) InitPID(ctx context.Context, id string) (int, error) {
	deadline := time.Now().Add(StartingWait)
	for {
		pid, err := c.initPID(ctx, id)
		if !errors.Is(err, errStarting) {
			return pid, err
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("%w: the runtime at %s says container %s is %s, still after %s", ErrNotRunning, c.socket, id, runtimeapi.ContainerState_CONTAINER_CREATED, StartingWait)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(startingPoll):
		}
	}
}

// errStarting is a container the runtime calls created: starting, or never
// to be started.
var errStarting = errors.New("created, not yet running")

func (c *Client) initPID(ctx context.Context, id string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, CallTimeout)
	defer cancel()
	r, err := c.rs.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id, Verbose: true})
	switch {
	case status.Code(err) == codes.NotFound:
		return 0, fmt.Errorf("%w: the runtime at %s knows no container %s", ErrNotRunning, c.socket, id)
	case errors.Is(ctx.Err(), context.Canceled) && err != nil:
		return 0, ctx.Err()
	case err != nil:
		return 0, &UnavailableError{Socket: c.socket, Err: err}
	case r.GetStatus() == nil:
		return 0, &UnavailableError{Socket: c.socket, Err: fmt.Errorf("ContainerStatus of %s returned no status", id)}
	}
	// containerd resolves an ID prefix to a container: the answer must be
	// about this one.
	if r.Status.Id != id {
		return 0, fmt.Errorf("%w: the runtime at %s answered for container %q when asked for %s", ErrNotRunning, c.socket, r.Status.Id, id)
	}
	if r.Status.State == runtimeapi.ContainerState_CONTAINER_CREATED {
		return 0, errStarting
	}
	if r.Status.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		return 0, fmt.Errorf("%w: the runtime at %s says container %s is %s", ErrNotRunning, c.socket, id, r.Status.State)
	}
	var info containerInfo
	if raw, ok := r.Info["info"]; !ok {
		return 0, fmt.Errorf("%w: the runtime at %s gave no verbose information on container %s", ErrUnsupported, c.socket, id)
	} else if err := json.Unmarshal([]byte(raw), &info); err != nil {
		return 0, fmt.Errorf("%w: the runtime at %s gave verbose information on container %s that is not JSON: %v", ErrUnsupported, c.socket, id, err)
	}
	if info.Pid <= 0 {
		return 0, fmt.Errorf("%w: the runtime at %s gave no pid for running container %s", ErrUnsupported, c.socket, id)
	}
	return info.Pid, nil
}
