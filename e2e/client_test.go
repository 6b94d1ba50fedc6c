package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/types"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	eventlogpb "github.com/ccnp-eventlog/ccnp-eventlog/proto"
)

// callTimeout bounds every call the suite makes: a server that hangs fails
// the spec instead of stalling the suite.
const callTimeout = 30 * time.Second

// newClient connects to a server's socket as a workload does, with gRPC's
// default settings; the connection is closed when the spec ends.
func newClient(srv Server) eventlogpb.EventlogClient {
	GinkgoHelper()
	return eventlogpb.NewEventlogClient(dial(srv.Socket()))
}

func dial(socket string) *grpc.ClientConn {
	GinkgoHelper()
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(conn.Close)
	return conn
}

// checkHealth asks a server's health service about the server as a whole,
// waiting for an answer as long as the chart's probes do (a loaded node
// answers slowly; a missing socket fails at once).
func checkHealth(ctx context.Context, socket string) (healthpb.HealthCheckResponse_ServingStatus, error) {
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		return 0, err
	}
	return resp.Status, nil
}

// request is a PAAS request.
func request(cat eventlogpb.CATEGORY, start, count int32, format eventlogpb.FORMAT) *eventlogpb.GetEventlogRequest {
	return &eventlogpb.GetEventlogRequest{
		EventlogLevel:    eventlogpb.LEVEL_PAAS,
		EventlogCategory: cat,
		StartPosition:    start,
		Count:            count,
		Format:           format,
	}
}

// getEventlog makes one call, bounded by callTimeout.
func getEventlog(ctx context.Context, c eventlogpb.EventlogClient, req *eventlogpb.GetEventlogRequest) (*eventlogpb.GetEventlogReply, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	return c.GetEventlog(ctx, req)
}

// mustGetEventlog makes a call that must succeed.
func mustGetEventlog(ctx context.Context, c eventlogpb.EventlogClient, req *eventlogpb.GetEventlogRequest) *eventlogpb.GetEventlogReply {
	GinkgoHelper()
	reply, err := getEventlog(ctx, c, req)
	Expect(err).NotTo(HaveOccurred(), "GetEventlog(%v)", req)
	return reply
}

// readReply reads the file a reply points at, as the client that asked
// reads it: it must be under the server's output directory and hold what
// the reply's sha256 says.
func readReply(srv Server, reply *eventlogpb.GetEventlogReply) []byte {
	GinkgoHelper()
	path := srv.LocalPath(reply.EventlogDataLoc)
	Expect(filepath.Dir(path)).To(Equal(filepath.Clean(srv.OutputDir())), "the reply's file is not in the output directory")
	b, err := os.ReadFile(path)
	Expect(err).NotTo(HaveOccurred())
	Expect(sha256Hex(b)).To(Equal(reply.Sha256), "the file %s does not hold what the reply's sha256 says", path)
	return b
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// haveStatus matches an error whose gRPC status has the code and a message
// matching msg.
func haveStatus(code codes.Code, msg types.GomegaMatcher) types.GomegaMatcher {
	return SatisfyAll(
		HaveOccurred(),
		WithTransform(func(err error) codes.Code { return status.Code(err) }, Equal(code)),
		WithTransform(func(err error) string { return status.Convert(err).Message() }, msg),
	)
}

// containAll matches a string holding every one of subs.
func containAll(subs ...string) types.GomegaMatcher {
	ms := make([]types.GomegaMatcher, len(subs))
	for i, s := range subs {
		ms[i] = ContainSubstring(s)
	}
	return SatisfyAll(ms...)
}

// serverFiles lists the regular files in a server's output directory,
// sorted. Subdirectories are left out: the server may keep other things
// there (container-level logs).
func serverFiles(srv Server) []string {
	GinkgoHelper()
	entries, err := os.ReadDir(srv.OutputDir())
	Expect(err).NotTo(HaveOccurred())
	var names []string
	for _, e := range entries {
		if e.Type().IsRegular() {
			names = append(names, e.Name())
		}
	}
	return names
}

// runCommand runs a client program to completion and returns its stdout,
// stderr and exit code.
func runCommand(ctx context.Context, name string, args ...string) (stdout, stderr string, code int) {
	GinkgoHelper()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	cmd.Env = commandEnv()
	err := cmd.Run()
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		Fail("running " + name + ": " + err.Error())
	}
	return out.String(), errOut.String(), cmd.ProcessState.ExitCode()
}
