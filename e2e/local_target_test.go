package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The local target runs each server as a process of this machine, in its
// own temporary directory: socket at DIR/uds/eventlog.sock, output files in
// DIR/out, its log in DIR/server.log. Host trees are plain directories the
// server reads through --root.
type localTarget struct {
	bin  binaries
	base string // every server's and tree's directory is under it
}

// nobody is the uid and gid an unprivileged server runs as when the suite
// runs as root (as CI does), for whom file modes deny nothing.
const nobody = 65534

func newLocalTarget(bin binaries) (Target, error) {
	base, err := os.MkdirTemp(shortTempRoot(), "ccnp-e2e-")
	if err != nil {
		return nil, err
	}
	DeferCleanup(os.RemoveAll, base)
	// Servers running as nobody must reach their directories under base.
	if err := os.Chmod(base, 0o755); err != nil {
		return nil, err
	}
	return &localTarget{bin: bin, base: base}, nil
}

func (t *localTarget) Name() string { return "local" }

func (t *localTarget) Unsupported(f Feature) string {
	if f == FeatureSimulatedTPM && !t.bin.Cgo {
		return "the server binary was built without cgo (CGO_ENABLED=0), and the go-tpm-tools simulator is C"
	}
	return ""
}

func (t *localTarget) NewHostTree() string {
	GinkgoHelper()
	return mkdirTemp(t.base, "tree-")
}

func (t *localTarget) StartServer(ctx context.Context, cfg ServerConfig) Server {
	GinkgoHelper()
	s := t.LaunchServer(ctx, cfg).(*localServer)
	s.waitAnswering(ctx)
	return s
}

func (t *localTarget) LaunchServer(ctx context.Context, cfg ServerConfig) Server {
	GinkgoHelper()
	s := &localServer{bin: t.bin, cfg: cfg}
	if other, ok := cfg.SocketOf.(*localServer); ok {
		s.dir, s.socket, s.outDir = other.dir, other.socket, other.outDir
		s.logPath = filepath.Join(s.dir, fmt.Sprintf("server-%d.log", time.Now().UnixNano()))
	} else {
		Expect(cfg.SocketOf).To(BeNil(), "SocketOf must be a server of this target")
		s.dir = mkdirTemp(t.base, "s")
		s.socket = filepath.Join(s.dir, "uds", "eventlog.sock")
		s.outDir = filepath.Join(s.dir, "out")
		s.logPath = filepath.Join(s.dir, "server.log")
		// sun_path holds 107 bytes and a NUL.
		Expect(len(s.socket)).To(BeNumerically("<", 108), "socket path %s is too long for a Unix socket", s.socket)
		if cfg.Unprivileged && os.Geteuid() == 0 {
			Expect(os.Chown(s.dir, nobody, nobody)).To(Succeed())
		}
	}
	s.args = append([]string{"serve", "--socket=" + s.socket, "--output-dir=" + s.outDir}, configFlags(cfg)...)
	// Each server keeps its runtime logs in its own directory, not in the
	// machine's /var/lib (ExtraArgs, after it, may name another).
	s.args = append(s.args, "--state-dir="+filepath.Join(s.dir, "state"))
	s.args = append(s.args, cfg.ExtraArgs...)
	s.start()
	DeferCleanup(s.stop)
	return s
}

// configFlags are the server flags of a config's hardware, output limits
// and drain timeout: not where the server keeps its socket and files, which
// its target chooses, nor ExtraArgs, which go last.
func configFlags(cfg ServerConfig) []string {
	var args []string
	hw := cfg.Hardware
	switch {
	case hw.Simulated != nil:
		args = append(args, "--hwsource=simulated")
		sim := hw.Simulated
		for _, f := range []struct {
			name string
			v    int64
		}{{"sim-seed", sim.Seed}, {"sim-tdx-events", int64(sim.TDXEvents)}, {"sim-tpm-events", int64(sim.TPMEvents)}, {"sim-area-size", int64(sim.AreaSize)}} {
			if f.v != 0 {
				args = append(args, "--"+f.name+"="+strconv.FormatInt(f.v, 10))
			}
		}
		if sim.Kernel != "" {
			args = append(args, "--sim-kernel="+string(sim.Kernel))
		}
	case hw.Tree != "":
		args = append(args, "--hwsource=host", "--root="+hw.Tree)
	default:
		Fail("ServerConfig.Hardware is neither simulated nor a tree")
	}
	l := cfg.Limits
	if l.MaxDirBytes != 0 {
		args = append(args, "--max-dir-bytes="+strconv.FormatInt(l.MaxDirBytes, 10))
	}
	if l.MaxFileAge != 0 {
		args = append(args, "--max-file-age="+l.MaxFileAge.String())
	}
	if l.MinFileLifetime != 0 {
		args = append(args, "--min-file-lifetime="+l.MinFileLifetime.String())
	}
	if cfg.DrainTimeout != 0 {
		args = append(args, "--drain-timeout="+cfg.DrainTimeout.String())
	}
	return args
}

// localServer is one server process (one at a time: Restart starts a new
// process on the same socket and output directory).
type localServer struct {
	bin     binaries
	cfg     ServerConfig
	dir     string
	socket  string
	outDir  string
	logPath string
	args    []string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has exited
	status ExitStatus
}

func (s *localServer) Socket() string                    { return s.socket }
func (s *localServer) OutputDir() string                 { return s.outDir }
func (s *localServer) LocalPath(dataLoc string) string   { return dataLoc }
func (s *localServer) ServerPath(treePath string) string { return treePath }

func (s *localServer) start() {
	GinkgoHelper()
	logFile, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	Expect(err).NotTo(HaveOccurred())
	defer logFile.Close()
	fmt.Fprintf(logFile, "### %s %s\n", s.bin.Server, strings.Join(s.args, " "))

	cmd := exec.Command(s.bin.Server, s.args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = append(commandEnv(), s.cfg.Env...)
	// Pdeathsig: a server must not outlive a suite that is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if s.cfg.Unprivileged && os.Geteuid() == 0 {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: nobody, Gid: nobody, Groups: []uint32{}}
	}
	Expect(cmd.Start()).To(Succeed())
	exited := make(chan struct{})
	s.mu.Lock()
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()
	go func() {
		err := cmd.Wait()
		st := ExitStatus{Code: cmd.ProcessState.ExitCode()}
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			st.Signal = ws.Signal()
		}
		var exitErr *exec.ExitError
		if err != nil && !errors.As(err, &exitErr) {
			GinkgoWriter.Printf("waiting for the server: %v\n", err)
		}
		s.mu.Lock()
		s.status = st
		s.mu.Unlock()
		close(exited)
	}()
}

func (s *localServer) current() (*exec.Cmd, chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd, s.exited
}

// waitAnswering waits until the health service answers, whatever it says.
func (s *localServer) waitAnswering(ctx context.Context) {
	GinkgoHelper()
	_, exited := s.current()
	Eventually(ctx, func() error {
		select {
		case <-exited:
			return StopTrying(fmt.Sprintf("the server exited (%s) before answering; its log:\n%s", s.exitStatus(), s.Logs()))
		default:
		}
		_, err := checkHealth(ctx, s.socket)
		if status.Code(err) == codes.Unavailable || status.Code(err) == codes.DeadlineExceeded {
			return err
		}
		return nil // answered, even if with an error status
	}).WithTimeout(time.Minute).WithPolling(50 * time.Millisecond).Should(Succeed())
}

func (s *localServer) exitStatus() ExitStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status
}

func (s *localServer) Signal(sig syscall.Signal) {
	GinkgoHelper()
	cmd, _ := s.current()
	Expect(cmd.Process.Signal(sig)).To(Succeed())
}

func (s *localServer) WaitExit(ctx context.Context) ExitStatus {
	GinkgoHelper()
	_, exited := s.current()
	Eventually(ctx, exited).WithTimeout(time.Minute).Should(BeClosed(), "the server did not exit; its log:\n%s", s.Logs())
	return s.exitStatus()
}

func (s *localServer) Restart(ctx context.Context) {
	GinkgoHelper()
	_, exited := s.current()
	Expect(exited).To(BeClosed(), "Restart needs the server to have exited")
	s.start()
	s.waitAnswering(ctx)
}

func (s *localServer) Logs() string {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return fmt.Sprintf("(cannot read the server's log: %v)", err)
	}
	return string(b)
}

// stop stops a server still running with SIGTERM (SIGKILL if it does not
// drain in time), then fails the spec if the race detector reported a race
// in any of its runs, or if a graceful stop did not exit 0.
func (s *localServer) stop(ctx context.Context) {
	cmd, exited := s.current()
	select {
	case <-exited:
	default:
		_ = cmd.Process.Signal(syscall.SIGTERM)
		grace := s.cfg.DrainTimeout
		if grace == 0 {
			grace = 10 * time.Second // the server's default
		}
		select {
		case <-exited:
			Expect(s.exitStatus().Code).To(Equal(0), "the server did not stop cleanly on SIGTERM; its log:\n%s", s.Logs())
		case <-time.After(grace + 10*time.Second):
			_ = cmd.Process.Kill()
			<-exited
			Fail("the server did not stop within its drain timeout after SIGTERM; its log:\n" + s.Logs())
		}
	}
	Expect(s.Logs()).NotTo(ContainSubstring("WARNING: DATA RACE"), "the race detector found a data race in the server")
}
