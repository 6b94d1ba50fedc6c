package peercred_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/ccnp-eventlog/ccnp-eventlog/peercred"
)

// nobody is the uid a child process drops to when the test runs as root, so
// that the uid the server sees differs from its own.
const nobody = 65534

// helperEnv makes the test binary act as a client process (TestMain).
const helperEnv = "PEERCRED_TEST_HELPER_SOCKET"

func TestMain(m *testing.M) {
	if socket := os.Getenv(helperEnv); socket != "" {
		os.Exit(helper(socket))
	}
	os.Exit(m.Run())
}

// helper connects to socket, hands the connection to a `sleep` it starts
// (so the connection outlives this process), prints both pids, and exits
// when its stdin closes.
func helper(socket string) int {
	c, err := net.Dial("unix", socket)
	if err != nil {
		fmt.Println("dial:", err)
		return 1
	}
	f, err := c.(*net.UnixConn).File()
	if err != nil {
		fmt.Println("file:", err)
		return 1
	}
	keeper := exec.Command("sleep", "60")
	keeper.ExtraFiles = []*os.File{f}
	if err := keeper.Start(); err != nil {
		fmt.Println("sleep:", err)
		return 1
	}
	fmt.Println(os.Getpid(), keeper.Process.Pid)
	bufio.NewReader(os.Stdin).ReadString('\n')
	return 0
}

// shortTempDir is a directory for sockets (their paths are limited to 108
// bytes) that a child running as nobody can reach.
func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "peercred")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestGRPCPeerIsTheCallingProcess: a handler sees the pid and uid of the
// process that called, over a real gRPC connection on a real Unix socket.
func TestGRPCPeerIsTheCallingProcess(t *testing.T) {
	socket := filepath.Join(shortTempDir(t), "s.sock")
	lis, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	seen := make(chan *peercred.AuthInfo, 1)
	g := grpc.NewServer(grpc.Creds(peercred.NewCredentials()),
		grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			a, ok := peercred.FromContext(ctx)
			if !ok {
				t.Error("the request carries no peer credentials")
			}
			seen <- a
			return h(ctx, req)
		}))
	healthpb.RegisterHealthServer(g, health.NewServer())
	go g.Serve(lis)
	defer g.Stop()

	// Clients need nothing special: insecure credentials, as grpcurl -plaintext.
	cc, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	if _, err := healthpb.NewHealthClient(cc).Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	a := <-seen
	if a.PID != os.Getpid() || a.UID != uint32(os.Geteuid()) || a.GID != uint32(os.Getegid()) {
		t.Errorf("peer pid %d uid %d gid %d, want %d %d %d", a.PID, a.UID, a.GID, os.Getpid(), os.Geteuid(), os.Getegid())
	}
	if err := a.Alive(); err != nil {
		t.Errorf("Alive() of this running process: %v", err)
	}
	if a.AuthType() != peercred.AuthType {
		t.Errorf("AuthType %q", a.AuthType())
	}
}

// TestPeerOfAnotherProcess: the credentials are those of the process that
// connected, another uid when run as root; once it exits, Alive says so,
// even though the connection lives on in the process it handed it to.
func TestPeerOfAnotherProcess(t *testing.T) {
	dir := shortTempDir(t)
	socket := filepath.Join(dir, "s.sock")
	lis, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	os.Chmod(socket, 0o777)

	bin := filepath.Join(dir, "peercred.test")
	copyExecutable(t, os.Args[0], bin)
	child := exec.Command(bin)
	child.Env = append(os.Environ(), helperEnv+"="+socket)
	wantUID := uint32(os.Geteuid())
	if os.Geteuid() == 0 {
		child.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
		wantUID = nobody
	}
	stdin, err := child.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("helper: %v", err)
	}
	fields := strings.Fields(line)
	if len(fields) != 2 {
		t.Fatalf("helper said %q", line)
	}
	keeper, _ := strconv.Atoi(fields[1])
	defer syscall.Kill(keeper, syscall.SIGKILL)

	c, err := lis.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	hc, ai, err := peercred.NewCredentials().ServerHandshake(c)
	if err != nil {
		t.Fatal(err)
	}
	defer hc.Close()
	a := ai.(*peercred.AuthInfo)
	if a.PID != child.Process.Pid || a.UID != wantUID {
		t.Errorf("peer pid %d uid %d, want the child's %d %d (not the process holding the connection now, %d)", a.PID, a.UID, child.Process.Pid, wantUID, keeper)
	}
	if err := a.Alive(); err != nil {
		t.Errorf("Alive() while the child runs: %v", err)
	}
	stdin.Close()
	if err := child.Wait(); err != nil {
		t.Fatal(err)
	}
	// The child is reaped: its pid is free for another process.
	if err := a.Alive(); !errors.Is(err, peercred.ErrExited) {
		t.Errorf("Alive() after the child exited: %v, want ErrExited", err)
	}
	hc.Close()
	if err := a.Alive(); err == nil || errors.Is(err, peercred.ErrExited) {
		t.Errorf("Alive() on a closed connection: %v, want an error saying it is closed", err)
	}
}

// TestNotUnix: a TCP connection passes through without credentials.
func TestNotUnix(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	go func() {
		c, err := net.DialTimeout("tcp", lis.Addr().String(), 5*time.Second)
		if err == nil {
			defer c.Close()
			time.Sleep(100 * time.Millisecond)
		}
	}()
	c, err := lis.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, ai, err := peercred.NewCredentials().ServerHandshake(c)
	if err != nil || ai != nil {
		t.Errorf("TCP handshake: %v %v, want a pass-through without AuthInfo", ai, err)
	}
	if _, ok := peercred.FromContext(context.Background()); ok {
		t.Error("FromContext of a context without a peer")
	}
}

func copyExecutable(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

// TestAliveAfterClose: a handler that asks after its connection closed is
// told so.
func TestAliveAfterClose(t *testing.T) {
	lis, err := net.Listen("unix", filepath.Join(shortTempDir(t), "s.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	client, err := net.Dial("unix", lis.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	c, err := lis.Accept()
	if err != nil {
		t.Fatal(err)
	}
	conn, info, err := peercred.NewCredentials().ServerHandshake(c)
	if err != nil {
		t.Fatal(err)
	}
	a := info.(*peercred.AuthInfo)
	if err := a.Alive(); err != nil {
		t.Fatalf("Alive() of this running process: %v", err)
	}
	if conn == c {
		t.Skip("no pidfd on this kernel: Alive cannot tell anything")
	}
	conn.Close()
	if err := a.Alive(); err == nil || err.Error() != "the connection is closed" {
		t.Errorf("Alive() after the connection closed: %v", err)
	}
}
