package e2e

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"

	"github.com/ccnp-eventlog/ccnp-eventlog/simulator"
)

// A Target is where the suite runs eventlog servers: local processes
// (local_target_test.go), or DaemonSets on a kind cluster
// (kind_target_test.go). Specs talk to a server only through what a Target
// and its Servers expose, so the same specs run on every target; a target
// that cannot do what a spec needs says so through Unsupported, and the
// spec is skipped with that reason.
//
// Methods fail the running spec (through Gomega) instead of returning
// errors, as helpers in Kubernetes e2e suites do, and register their own
// cleanup with DeferCleanup: a server a spec starts is stopped when the
// container that started it ends.
type Target interface {
	// Name is the value of E2E_TARGET that selects the target.
	Name() string
	// Unsupported returns why the target cannot offer f, or "" when it can.
	Unsupported(f Feature) string
	// NewHostTree returns a new empty directory, on the machine the suite
	// runs on, for a fake host tree (sysfs, securityfs paths under it) that
	// a server started with Hardware.Tree set to it can read.
	NewHostTree() string
	// StartServer starts a server and returns once its health service
	// answers (SERVING or not: a server without any working source is a
	// valid thing to test). It fails the spec if the server exits first.
	StartServer(ctx context.Context, cfg ServerConfig) Server
	// LaunchServer starts a server without waiting for it: for specs where
	// it is expected to exit at once (Server.WaitExit).
	LaunchServer(ctx context.Context, cfg ServerConfig) Server
}

// ServerConfig says how to run one server.
type ServerConfig struct {
	// Hardware is where its logs come from.
	Hardware Hardware
	// Limits bound the output directory; zero fields keep the server's
	// defaults.
	Limits OutputLimits
	// DrainTimeout is --drain-timeout; zero keeps the default.
	DrainTimeout time.Duration
	// Unprivileged runs the server as a user who cannot read root-only
	// files, as the DaemonSet runs it (needs FeatureUnprivilegedServer).
	Unprivileged bool
	// ContainerEvents: the server must record container-level (SAAS)
	// events, with a state directory of its own. The local target gives
	// every server one; the kind target installs the release with
	// saas.enabled (a root server in the host's PID namespace) only when
	// asked, as the chart does.
	ContainerEvents bool
	// SocketOf, when set, makes the server use that server's socket and
	// output directory: a second server on the same node (needs
	// FeatureSharedSocket).
	SocketOf Server
	// ExtraArgs are more server flags, after those the fields above make.
	ExtraArgs []string
	// Env is more of the server's environment (NAME=value).
	Env []string
}

// Hardware is one of two things: simulated hardware inside the server
// (Simulated set), or a fake host tree the suite wrote (Tree set), read by
// the real backends through --hwsource=host --root.
type Hardware struct {
	Simulated *SimulatedHardware
	// Tree is a directory from Target.NewHostTree.
	Tree string
}

// SimulatedHardware is the --sim-* flags of --hwsource=simulated. Zero
// fields keep the server's defaults.
type SimulatedHardware struct {
	Seed      int64
	TDXEvents int
	TPMEvents int
	AreaSize  int
	// Kernel is --sim-kernel: the simulated TD's kernel generation.
	Kernel simulator.Kernel
}

// OutputLimits are the output directory flags.
type OutputLimits struct {
	MaxDirBytes     int64         // --max-dir-bytes
	MaxFileAge      time.Duration // --max-file-age
	MinFileLifetime time.Duration // --min-file-lifetime
}

// A Server is one running eventlog server, seen from the machine the suite
// runs on.
type Server interface {
	// Socket is the path of its Unix socket for this machine's clients.
	Socket() string
	// OutputDir is where its output directory appears on this machine.
	OutputDir() string
	// LocalPath maps a reply's eventlog_data_loc (a path as the server
	// sees it) to the path where this machine reads that file.
	LocalPath(dataLoc string) string
	// ServerPath maps a path under Hardware.Tree on this machine to the
	// path the server reads it at, as its error messages name it.
	ServerPath(treePath string) string
	// Signal sends sig to the server process (needs FeatureSignals).
	Signal(sig syscall.Signal)
	// WaitExit waits for the server process to exit and returns its exit
	// status (needs FeatureSignals).
	WaitExit(ctx context.Context) ExitStatus
	// Restart starts the server again after it exited, with the same
	// configuration, socket and output directory, and waits until it
	// answers (needs FeatureRestart).
	Restart(ctx context.Context)
	// Logs returns what the server has logged so far.
	Logs() string
}

// ExitStatus is how a server process ended.
type ExitStatus struct {
	Code   int            // exit code, -1 when killed by a signal
	Signal syscall.Signal // the signal that killed it, if any
}

func (e ExitStatus) String() string {
	if e.Code == -1 {
		return "killed by " + e.Signal.String()
	}
	return fmt.Sprintf("exit code %d", e.Code)
}

// A Feature is something a spec needs beyond serving requests.
type Feature string

const (
	// FeatureHostTrees: serving fake host trees the suite writes.
	FeatureHostTrees Feature = "serving fake host trees written by the suite"
	// FeatureSimulatedTPM: --hwsource=simulated with a working TPM (the
	// go-tpm-tools simulator is C: the server binary needs cgo).
	FeatureSimulatedTPM Feature = "the simulated TPM (a server built with cgo)"
	// FeatureSignals: signalling the server process and reading its exit status.
	FeatureSignals Feature = "signalling the server process and reading its exit status"
	// FeatureRestart: restarting a server on its socket and output directory.
	FeatureRestart Feature = "restarting a server in place"
	// FeatureUnprivilegedServer: running the server as a user root-only
	// files deny.
	FeatureUnprivilegedServer Feature = "running the server as a user root-only files deny"
	// FeatureOutputLimits: choosing the output directory's limits.
	FeatureOutputLimits Feature = "choosing the output directory's limits"
	// FeatureSharedSocket: starting a second server on a running server's socket.
	FeatureSharedSocket Feature = "starting a second server on a running server's socket"
)

// requireFeatures skips the current spec or container, with the target's
// reason, unless the target offers every feature.
func requireFeatures(features ...Feature) {
	GinkgoHelper()
	for _, f := range features {
		if why := target.Unsupported(f); why != "" {
			Skip(fmt.Sprintf("the %s target does not offer %s: %s", target.Name(), f, why))
		}
	}
}

// targets are the known targets by E2E_TARGET value. A target's
// constructor runs once per suite process, after the binaries are built.
var targets = map[string]func(bin binaries) (Target, error){
	"local": newLocalTarget,
}

// target is the target the suite runs against.
var target Target

// selectTarget returns the target E2E_TARGET names; unset is "local".
func selectTarget(bin binaries) (Target, error) {
	name := os.Getenv("E2E_TARGET")
	if name == "" {
		name = "local"
	}
	newTarget, ok := targets[name]
	if !ok {
		known := make([]string, 0, len(targets))
		for n := range targets {
			known = append(known, n)
		}
		sort.Strings(known)
		return nil, fmt.Errorf("E2E_TARGET=%q is not a target; the targets are %s", name, strings.Join(known, ", "))
	}
	return newTarget(bin)
}

// supportedFeatures lists what the target offers, for the suite's report.
func supportedFeatures(t Target) (yes, no []string) {
	all := []Feature{FeatureHostTrees, FeatureSimulatedTPM, FeatureSignals, FeatureRestart,
		FeatureUnprivilegedServer, FeatureOutputLimits, FeatureSharedSocket}
	for _, f := range all {
		if why := t.Unsupported(f); why != "" {
			no = append(no, string(f)+" ("+why+")")
		} else {
			yes = append(yes, string(f))
		}
	}
	slices.Sort(yes)
	return yes, no
}
