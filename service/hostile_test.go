package service_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/ccnp-eventlog/ccnp-eventlog/connlimit"
	"github.com/ccnp-eventlog/ccnp-eventlog/hwsource"
	"github.com/ccnp-eventlog/ccnp-eventlog/internal/unixsock"
	"github.com/ccnp-eventlog/ccnp-eventlog/outdir"
	eventlogpb "github.com/ccnp-eventlog/ccnp-eventlog/proto"
	"github.com/ccnp-eventlog/ccnp-eventlog/service"
)

// A FIFO planted at one category's log path: that category answers
// FAILED_PRECONDITION at once, every time, naming the path, and the other
// category and health are unaffected.
func TestFIFOAtOneLogPath(t *testing.T) {
	h := newHostTree(t, "ovmf-64k", "")
	if err := os.MkdirAll(filepath.Dir(h.tpm), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(h.tpm, 0o644); err != nil {
		t.Fatal(err)
	}
	s := start(t, h.root, nil)
	for range 20 {
		began := time.Now()
		_, err := s.get(t, &eventlogpb.GetEventlogRequest{EventlogCategory: eventlogpb.CATEGORY_TPM_EVENTLOG})
		wantCode(t, err, codes.FailedPrecondition, h.tpm, "is a named pipe")
		if took := time.Since(began); took > time.Second {
			t.Fatalf("took %s", took)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err = s.client.GetEventlog(ctx, &eventlogpb.GetEventlogRequest{EventlogCategory: eventlogpb.CATEGORY_TDX_EVENTLOG})
		cancel()
		if err != nil {
			t.Fatalf("the TDX log beside the FIFO: %v", err)
		}
	}
	waitHealth(t, s, healthpb.HealthCheckResponse_SERVING)
}

// serveLimited serves a Service on a real Unix socket behind a
// connlimit.Listener, with the given connection options, as serve does.
func serveLimited(t *testing.T, root string, lim connlimit.Limits, conn service.ConnOptions) (socket string, l *connlimit.Listener) {
	t.Helper()
	dir := t.TempDir()
	socket = filepath.Join(dir, "eventlog.sock")
	srcs := map[eventlogpb.CATEGORY]hwsource.Source{eventlogpb.CATEGORY_TDX_EVENTLOG: hwsource.NewTDX(root)}
	svc, err := service.New(srcs, service.Options{OutputDir: filepath.Join(dir, "out"), Limits: outdir.Limits{MaxBytes: 16 << 20, MaxAge: time.Hour, MinLifetime: time.Minute}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Runtime: service.RuntimeOptions{StateDir: filepath.Join(dir, "state")}})
	if err != nil {
		t.Fatal(err)
	}
	inner, err := unixsock.Listen(socket, 0o666)
	if err != nil {
		t.Fatal(err)
	}
	lim.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	l = connlimit.New(inner, lim)
	g, _ := svc.NewGRPCServer(conn.ServerOptions()...)
	go g.Serve(l)
	t.Cleanup(func() { g.Stop(); svc.Close() })
	return socket, l
}

// A connection that never begins HTTP/2 is closed after the handshake
// timeout; one that began and then idles, after the idle timeout: neither
// keeps its place under the caps.
func TestIdleConnectionsAreClosed(t *testing.T) {
	h := newHostTree(t, "ovmf-64k", "")
	const handshake, idle = 300 * time.Millisecond, 600 * time.Millisecond
	socket, l := serveLimited(t, h.root, connlimit.Limits{PerUID: 8, Total: 8}, service.ConnOptions{IdleTimeout: idle, HandshakeTimeout: handshake})

	start := time.Now() // before either connects: the server's clocks start later
	silent, err := net.Dial("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	began, err := net.Dial("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	defer began.Close()
	// The HTTP/2 client preface and an empty SETTINGS frame.
	if _, err := began.Write([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")); err != nil {
		t.Fatal(err)
	}
	closedAfter := func(c net.Conn) time.Duration {
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		for { // the server's settings and GOAWAY come first
			if _, err := c.Read(make([]byte, 4096)); err != nil {
				return time.Since(start)
			}
		}
	}
	if took := closedAfter(silent); took < handshake || took > handshake+10*time.Second {
		t.Errorf("a connection that never began HTTP/2 closed after %s, want about %s", took, handshake)
	}
	// gRPC closes an idle connection with GOAWAY and a ping, and waits up
	// to 5 s for a client that does not answer before it closes it.
	if took := closedAfter(began); took < idle || took > idle+5*time.Second+10*time.Second {
		t.Errorf("an idle connection closed after %s, want about %s", took, idle)
	}
	waitFor(t, func() bool { _, total := l.Open(0); return total == 0 })
}

// Behind the connection caps, the caller's credentials still reach the
// service: a container-level request from outside a container is told
// so (FAILED_PRECONDITION), not refused as unauthenticated.
func TestCredentialsThroughConnLimit(t *testing.T) {
	h := newHostTree(t, "ovmf-64k", "")
	socket, _ := serveLimited(t, h.root, connlimit.Limits{PerUID: 8, Total: 8}, service.DefaultConnOptions)
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := eventlogpb.NewEventlogClient(conn)
	if _, err := c.GetEventlog(ctx, &eventlogpb.GetEventlogRequest{}); err != nil {
		t.Fatal(err)
	}
	_, err = c.GetEventlog(ctx, &eventlogpb.GetEventlogRequest{EventlogLevel: eventlogpb.LEVEL_SAAS})
	if status.Code(err) != codes.FailedPrecondition {
		t.Errorf("a SAAS request from outside a container: %v, want FAILED_PRECONDITION", err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
