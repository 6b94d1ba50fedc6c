package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
)

// runHealthProbe runs the grpc_health_probe personality in this process.
func runHealthProbe(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = grpcHealthProbe(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func wantProbe(t *testing.T, args []string, wantCode int, wantStderr ...string) {
	t.Helper()
	code, _, stderr := runHealthProbe(t, args...)
	if code != wantCode {
		t.Errorf("grpc_health_probe %s: exit %d, want %d\n%s", strings.Join(args, " "), code, wantCode, stderr)
	}
	for _, w := range wantStderr {
		if !strings.Contains(stderr, w) {
			t.Errorf("grpc_health_probe %s: stderr does not say %q:\n%s", strings.Join(args, " "), w, stderr)
		}
	}
}

// serveGRPC serves g on a new Unix socket and returns the socket's path.
func serveGRPC(t *testing.T, g *grpc.Server) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "s.sock")
	lis, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	go g.Serve(lis)
	t.Cleanup(g.Stop)
	return sock
}

// The upstream manifests' probe, and its other spellings, against the real
// server process.
func TestGRPCHealthProbeAgainstTheServer(t *testing.T) {
	s := startServer(t)
	for _, addr := range []string{"unix:" + s.socket, "unix://" + s.socket} {
		wantProbe(t, []string{"-addr=" + addr}, probeServing, "status: SERVING")
		wantProbe(t, []string{"-addr", addr, "-service", "Eventlog", "-v"}, probeServing, "status: SERVING", "connection established")
		wantProbe(t, []string{"--addr=" + addr, "--connect-timeout=2s", "--rpc-timeout=2s"}, probeServing, "status: SERVING")
	}
	// A service the server does not know: the RPC fails (NotFound).
	wantProbe(t, []string{"-addr=unix:" + s.socket, "-service=grpc.nope.v1"}, probeRPCFailure, "health rpc failed", "NotFound")
	// -tls=false asks for nothing unsupported.
	wantProbe(t, []string{"-addr=unix:" + s.socket, "-tls=false"}, probeServing)

	// A server with no working source is NOT_SERVING: unhealthy.
	down := startUnhealthyServer(t, "EVENTLOG_HWSOURCE=host", "EVENTLOG_ROOT="+t.TempDir())
	wantProbe(t, []string{"-addr=unix://" + down.socket}, probeUnhealthy, `service unhealthy (responded with "NOT_SERVING")`)
}

func TestGRPCHealthProbeConnectionFailures(t *testing.T) {
	dir := t.TempDir()
	// No socket: exit 2, naming the reason.
	wantProbe(t, []string{"-addr=unix://" + dir + "/none.sock"}, probeConnectFailure, "no such file or directory")

	// A listener that accepts and never speaks: exit 2 once -connect-timeout
	// has passed, not later.
	silent := filepath.Join(dir, "silent.sock")
	lis, err := net.Listen("unix", silent)
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	var mu sync.Mutex
	var held []net.Conn
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	}()
	start := time.Now()
	wantProbe(t, []string{"-addr=unix:" + silent, "-connect-timeout=300ms"}, probeConnectFailure, "timeout: failed to connect service", "within 300ms")
	// Generous: the machine is shared; what matters is that it is bounded.
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %v with -connect-timeout=300ms", d)
	}
}

// stallingHealth answers nothing until the caller gives up.
type stallingHealth struct {
	healthpb.UnimplementedHealthServer
}

func (stallingHealth) Check(ctx context.Context, _ *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// recordingHealth answers SERVING and keeps the request's metadata.
type recordingHealth struct {
	healthpb.UnimplementedHealthServer
	md chan metadata.MD
}

func (h recordingHealth) Check(ctx context.Context, _ *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	h.md <- md
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

func TestGRPCHealthProbeRPCFailures(t *testing.T) {
	// A gRPC server without the health service.
	bare := serveGRPC(t, grpc.NewServer())
	wantProbe(t, []string{"-addr=unix:" + bare}, probeRPCFailure, "does not implement the grpc health protocol")

	// A health service that never answers: exit 3 after -rpc-timeout.
	g := grpc.NewServer()
	healthpb.RegisterHealthServer(g, stallingHealth{})
	stalling := serveGRPC(t, g)
	start := time.Now()
	wantProbe(t, []string{"-addr=unix:" + stalling, "-rpc-timeout=300ms"}, probeRPCFailure, "timeout: health rpc did not complete within 300ms")
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %v with -rpc-timeout=300ms", d)
	}
}

func TestGRPCHealthProbeHeadersAndUserAgent(t *testing.T) {
	h := recordingHealth{md: make(chan metadata.MD, 1)}
	g := grpc.NewServer()
	healthpb.RegisterHealthServer(g, h)
	sock := serveGRPC(t, g)
	wantProbe(t, []string{"-addr=unix:" + sock, "-rpc-header=x-probe: one", "-rpc-header", "x-probe:two", "-user-agent=kubelet-test"}, probeServing, "status: SERVING")
	md := <-h.md
	if got := md.Get("x-probe"); strings.Join(got, ",") != "one,two" {
		t.Errorf("x-probe headers %q, want one and two", got)
	}
	if ua := strings.Join(md.Get("user-agent"), " "); !strings.HasPrefix(ua, "kubelet-test") {
		t.Errorf("user-agent %q, want it to start with kubelet-test", ua)
	}
}

func TestGRPCHealthProbeInvalidArguments(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "-addr not specified"},
		{[]string{"-addr=unix:/x", "-connect-timeout=0"}, "-connect-timeout must be greater than zero"},
		{[]string{"-addr=unix:/x", "-rpc-timeout=-1s"}, "-rpc-timeout must be greater than zero"},
		{[]string{"-addr=unix:/x", "-tls"}, "-tls: not supported"},
		{[]string{"-addr=unix:/x", "-tls-ca-cert=/ca.pem"}, "-tls-ca-cert: not supported"},
		{[]string{"-addr=unix:/x", "-alts", "-gzip", "-spiffe"}, "-alts, -gzip, -spiffe: not supported"},
		{[]string{"-addr=unix:/x", "-rpc-header=no-colon"}, "invalid RPC header"},
		{[]string{"-addr=unix:/x", "-rpc-header=: no name"}, "invalid RPC header"},
		{[]string{"-addr=unix:/x", "-bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"-h"}, "usage: grpc_health_probe"}, // as grpc_health_probe: help is status 1
	} {
		wantProbe(t, tc.args, probeInvalidArgs, tc.want)
	}
	code, stdout, _ := runHealthProbe(t, "-version")
	if code != 0 || !strings.Contains(stdout, "eventlog-server") {
		t.Errorf("-version: exit %d, %q", code, stdout)
	}
}

// The binary linked as grpc_health_probe, as the image links it, runs as
// that tool: here the test binary, whose TestMain dispatches as main does.
func TestGRPCHealthProbeByName(t *testing.T) {
	s := startServer(t)
	link := filepath.Join(t.TempDir(), grpcHealthProbeName)
	if err := os.Symlink(os.Args[0], link); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		addr string
		code int
		want string
	}{
		{"unix:" + s.socket, probeServing, "status: SERVING"},
		{"unix://" + s.socket, probeServing, "status: SERVING"},
		{"unix://" + s.socket + ".missing", probeConnectFailure, "no such file or directory"},
	} {
		cmd := exec.Command(link, "-addr="+tc.addr)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		code := 0
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			code = exit.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != tc.code || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%s -addr=%s: exit %d, stderr %q; want %d, %q", link, tc.addr, code, stderr.String(), tc.code, tc.want)
		}
	}
}
