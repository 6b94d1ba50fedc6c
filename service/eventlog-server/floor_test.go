package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/proto"

	eventlogpb "github.com/ccnp-eventlog/ccnp-eventlog/proto"
)

// The floor: a gRPC server that answers every GetEventlog with one fixed
// reply and does nothing else, on a Unix socket as the server's, in a
// process of its own (this test binary run again with floorServerEnv set
// to its socket, and floorReplyEnv to a file holding the reply). What the
// server costs beyond it is the server's own work.
const (
	floorServerEnv = "EVENTLOG_BENCH_FLOOR_SOCKET"
	floorReplyEnv  = "EVENTLOG_BENCH_FLOOR_REPLY"
)

type floorServer struct {
	eventlogpb.UnimplementedEventlogServer
	reply *eventlogpb.GetEventlogReply
}

func (f *floorServer) GetEventlog(context.Context, *eventlogpb.GetEventlogRequest) (*eventlogpb.GetEventlogReply, error) {
	return f.reply, nil
}

// serveFloor runs the floor server until it is killed.
func serveFloor(socket, replyFile string) int {
	b, err := os.ReadFile(replyFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	reply := &eventlogpb.GetEventlogReply{}
	if err := proto.Unmarshal(b, reply); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	lis, err := net.Listen("unix", socket)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	g := grpc.NewServer()
	eventlogpb.RegisterEventlogServer(g, &floorServer{reply: reply})
	hs := health.NewServer() // SERVING
	healthpb.RegisterHealthServer(g, hs)
	if err := g.Serve(lis); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// startFloor starts a floor server answering reply, and returns once it
// answers health checks.
func startFloor(b testing.TB, reply *eventlogpb.GetEventlogReply) *serverProcess {
	b.Helper()
	dir, err := os.MkdirTemp("", "elfloor")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	raw, err := proto.Marshal(reply)
	if err != nil {
		b.Fatal(err)
	}
	replyFile := filepath.Join(dir, "reply.pb")
	if err := os.WriteFile(replyFile, raw, 0o644); err != nil {
		b.Fatal(err)
	}
	s := &serverProcess{socket: filepath.Join(dir, "floor.sock")}
	s.cmd = exec.Command(os.Args[0])
	s.cmd.Env = append(os.Environ(), floorServerEnv+"="+s.socket, floorReplyEnv+"="+replyFile)
	s.cmd.Stderr = os.Stderr
	if err := s.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.cmd.Process.Kill(); s.cmd.Wait() })
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st, err := probe(ctx, s.socket, "")
		cancel()
		if err == nil && st == healthpb.HealthCheckResponse_SERVING {
			return s
		}
		if time.Now().After(deadline) {
			b.Fatalf("the floor server did not come up within 30s: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
