package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"

	eventlogpb "github.com/ccnp-eventlog/ccnp-eventlog/proto"
)

// floorReplyEnv names a file holding the floor server's reply (a
// marshalled GetEventlogReply), so that the floor answers what the server
// answers (bench_ima_test.go: the floor server).
const floorReplyEnv = "EVENTLOG_BENCH_FLOOR_REPLY"

func readFloorReply(path string) (*eventlogpb.GetEventlogReply, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	reply := &eventlogpb.GetEventlogReply{}
	return reply, proto.Unmarshal(b, reply)
}

// startReplyFloor starts a floor server process answering reply to every
// GetEventlog, and waits until it answers.
func startReplyFloor(b *testing.B, reply *eventlogpb.GetEventlogReply) *serverProcess {
	b.Helper()
	raw, err := proto.Marshal(reply)
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	file := filepath.Join(dir, "reply.pb")
	if err := os.WriteFile(file, raw, 0o644); err != nil {
		b.Fatal(err)
	}
	return startFloorProcess(b, func(cmd *exec.Cmd) { cmd.Env = append(cmd.Env, floorReplyEnv+"="+file) })
}
