package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ccnp-eventlog/ccnp-eventlog/connlimit"
	"github.com/ccnp-eventlog/ccnp-eventlog/containerid/cri"
	"github.com/ccnp-eventlog/ccnp-eventlog/hwsource"
	"github.com/ccnp-eventlog/ccnp-eventlog/internal/logbuf"
	"github.com/ccnp-eventlog/ccnp-eventlog/internal/unixsock"
	"github.com/ccnp-eventlog/ccnp-eventlog/outdir"
	eventlogpb "github.com/ccnp-eventlog/ccnp-eventlog/proto"
	"github.com/ccnp-eventlog/ccnp-eventlog/service"
	"github.com/ccnp-eventlog/ccnp-eventlog/simulator"
)

func init() {
	commands["serve"] = command{"serve event logs on a Unix socket (the default command)", runServe}
}

type serveConfig struct {
	socket     string
	socketMode string
	outputDir  string
	hwsource   string
	root       string
	limits     outdir.Limits
	maxInline  int64
	drain      time.Duration
	logLevel   string
	logFormat  string
	healthWait time.Duration
	simTDX     simulator.TDXConfig
	simKernel  string
	simTPM     simulator.TPMConfig
	runtime    service.RuntimeOptions
	identity   service.IdentityOptions
	criSocket  string
	zeroBased  bool
	conns      connlimit.Limits
	connOpts   service.ConnOptions
	ima        hwsource.IMAOptions
	// metricsAddr and verifyInterval: serve_metrics.go.
	metricsAddr    string
	verifyInterval time.Duration
	requestLog     *slog.Logger
}

// The request log's buffer: at most requestLogBytes (twice that while one
// is being written), written at least every requestLogInterval and at exit.
const (
	requestLogBytes    = 1 << 20
	requestLogInterval = 500 * time.Millisecond
)

// spareFiles are the file descriptors kept for the server's own files
// (sources, the TPM, journals, files being written) when the connection
// caps are fitted to the file limit.
const spareFiles = 256

func runServe(args []string) int {
	fs := newFlagSet("serve", "eventlog-server [serve] [flags]")
	var c serveConfig
	fs.StringVar(&c.socket, "socket", defaultSocket, "Unix socket to serve on; its directory is created")
	fs.StringVar(&c.socketMode, "socket-mode", "0666", "permissions of the socket (octal): who may connect")
	fs.StringVar(&c.outputDir, "output-dir", "/run/ccnp-eventlog", "directory the returned event log files are written to")
	fs.StringVar(&c.hwsource, "hwsource", "host", "where logs come from: host (this node's firmware, under --root) or simulated")
	fs.StringVar(&c.root, "root", "/", "prefix of every host path the host backends read (sysfs, securityfs, /dev)")
	fs.Int64Var(&c.limits.MaxBytes, "max-dir-bytes", 64<<20, "most bytes the server's files may take in the output directory")
	fs.DurationVar(&c.limits.MaxAge, "max-file-age", time.Hour, "a file not handed out for this long is removed")
	fs.DurationVar(&c.limits.MinLifetime, "min-file-lifetime", 5*time.Minute, "a returned path stays readable at least this long, even when the directory is full")
	fs.BoolVar(&c.zeroBased, "zero-based-start", false, "count start_position as the events to skip, as the upstream CCNP server did (start 2 returns events from the third on), for clients written against it; by default it is the number of the first event returned (0 and 1 both the first)")
	fs.Int64Var(&c.maxInline, "max-inline-bytes", service.DefaultMaxInlineBytes, "largest reply sent inline (GetEventlogRequest.inline), held whole in memory; a larger one is refused with RESOURCE_EXHAUSTED (ask for a file instead)")
	fs.DurationVar(&c.drain, "drain-timeout", 10*time.Second, "on SIGTERM, how long in-flight requests may take to finish")
	fs.StringVar(&c.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&c.logFormat, "log-format", "text", "text or json")
	fs.IntVar(&c.conns.PerUID, "max-conns-per-uid", 128, "most connections one uid may hold open (root too: uid 0 is every container that runs as root); past it, its new ones are closed at once and logged")
	fs.IntVar(&c.conns.Total, "max-conns", 1024, "most connections all uids may hold open together (the server's own uid, which its probes run as, may hold its --max-conns-per-uid past it)")
	fs.DurationVar(&c.connOpts.IdleTimeout, "conn-idle-timeout", service.DefaultConnOptions.IdleTimeout, "a connection with no request in flight for this long is closed (clients reconnect when they next call)")
	fs.DurationVar(&c.connOpts.HandshakeTimeout, "handshake-timeout", service.DefaultConnOptions.HandshakeTimeout, "a connection that has not begun HTTP/2 within this long is closed")
	fs.Int64Var(&c.ima.MaxBytes, "ima-max-bytes", hwsource.DefaultIMAMaxBytes, "most bytes of the kernel's IMA measurement list the server holds (in memory, with 112 bytes per entry); a longer list is refused with FAILED_PRECONDITION rather than served without its new entries")
	fs.DurationVar(&c.healthWait, "health-retry", 10*time.Second, "how often a source that failed is read again (until then, requests get its error from memory)")
	seed := fs.Int64("sim-seed", 1, "simulated hardware: seed of the synthetic logs")
	fs.IntVar(&c.simTDX.Events, "sim-tdx-events", simulator.DefaultTDXEvents, "simulated hardware: events in the TDX log")
	fs.IntVar(&c.simTPM.Events, "sim-tpm-events", simulator.DefaultTPMEvents, "simulated hardware: events in the TPM log")
	fs.IntVar(&c.simTDX.AreaSize, "sim-area-size", simulator.DefaultAreaSize, "simulated hardware: size of the CCEL log area in bytes (at most 1 MiB)")
	fs.StringVar(&c.simKernel, "sim-kernel", string(simulator.Kernel616), "simulated hardware: the TD's kernel generation: 6.16 (sysfs measurements: live RTMRs, extends), 6.8 (TDREPORTs only: live RTMRs, no extends, so no container-level TDX events) or staged (the staged CCEL copies only: no live RTMRs, no extends)")
	fs.StringVar(&c.simTDX.StateFile, "sim-tdx-state", "", "simulated hardware: file keeping the simulated RTMRs across restarts, as a real TD keeps them while servers come and go (empty: every start is a new simulated boot)")
	fs.StringVar(&c.runtime.StateDir, "state-dir", "/var/lib/ccnp-eventlog", "directory of the runtime logs of container-level (SAAS) events; it must survive server restarts (a host directory). Empty turns container-level events off")
	fs.StringVar(&c.runtime.ProcRoot, "proc-root", "/proc", "proc filesystem the callers' cgroups are read from, to tell their containers; in a pod it must show the host's processes (hostPID)")
	fs.StringVar(&c.identity.CgroupRoot, "cgroup-root", "/sys/fs/cgroup", "where the node's cgroup hierarchies are mounted, to check that a caller's container cgroup is one its runtime made (root-owned); in a pod, the host's /sys/fs/cgroup mounted read-only (hostPath), not the pod's own")
	fs.StringVar(&c.criSocket, "cri-socket", "", "the node's CRI socket, to confirm a caller's container with its runtime (containerd, CRI-O); empty: the first of "+strings.Join(cri.DefaultSockets, ", ")+" that exists under --root or /; \"none\": cgroup checks alone")
	fs.IntVar(&c.runtime.MaxEvents, "saas-max-events", service.DefaultMaxEvents, "most container-level events one container may record")
	fs.Int64Var(&c.runtime.MaxBytes, "saas-max-bytes", service.DefaultMaxBytes, "most bytes of event data one container may record in all")
	fs.IntVar(&c.runtime.MaxEventSize, "saas-max-event-size", service.DefaultMaxEventSize, "most bytes of data in one container-level event")
	fs.Int64Var(&c.runtime.MaxLogBytes, "runtime-max-bytes", service.DefaultMaxLogBytes, "most bytes a category's runtime log may take (every container's events since boot, kept in memory and in --state-dir)")
	fs.Int64Var(&c.runtime.OutputBytes, "saas-max-dir-bytes", service.DefaultOutputBytes, "most bytes the per-container files may take together, in <output-dir>/containers")
	fs.StringVar(&c.metricsAddr, "metrics-addr", "", "HOST:PORT to serve Prometheus metrics on, at /metrics, over plain HTTP (empty: off). Anyone who can reach it can read them: bind a pod's or a private address, not every interface (\":9464\")")
	fs.DurationVar(&c.verifyInterval, "verify-interval", service.DefaultVerifyInterval, "how often every category's log is verified against the live registers (as VerifyEventlog does): the outcome is in the metrics (register_match) and in the health of the service \""+service.IntegrityService+"\"; a mismatch is logged once. 0: never")
	if err := parseFlags(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(os.Stderr, "eventlog-server:", err)
		return 2
	}
	c.simTDX.Seed, c.simTPM.Seed = *seed, *seed
	// The request log is buffered (one write per interval, not per
	// request) and bounded: lines its reader cannot take in time are
	// dropped and counted. Everything else is written at once, after the
	// request lines before it.
	var logger *slog.Logger
	logw := logbuf.New(os.Stderr, requestLogBytes, requestLogInterval, func(n int) {
		logger.Warn("request log lines dropped: its reader did not keep up", "lines", n, "buffer_bytes", requestLogBytes)
	})
	defer logw.Close() // after the last line below, on every return
	logger, err := newLogger(logw.Now(), c.logLevel, c.logFormat)
	if err != nil {
		fmt.Fprintln(os.Stderr, "eventlog-server:", err)
		return 2
	}
	c.requestLog, _ = newLogger(logw, c.logLevel, c.logFormat)
	if err := serve(c, logger); err != nil {
		logger.Error("server stopped", "err", err)
		return 1
	}
	return 0
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %v", err)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format must be text or json, not %q", format)
}

// sources builds one source per category for the chosen mode. Simulated
// hardware is only ever used when asked for.
func sources(c serveConfig, logger *slog.Logger) (map[eventlogpb.CATEGORY]hwsource.Source, func(), error) {
	switch c.hwsource {
	case "host":
		return map[eventlogpb.CATEGORY]hwsource.Source{
			eventlogpb.CATEGORY_TDX_EVENTLOG: hwsource.NewTDX(c.root),
			eventlogpb.CATEGORY_TPM_EVENTLOG: hwsource.NewTPM(c.root),
		}, func() {}, nil
	case "simulated":
		kernel, err := simulator.ParseKernel(c.simKernel)
		if err != nil {
			return nil, nil, fmt.Errorf("--sim-kernel: %w", err)
		}
		// Both logs are made at once (each takes milliseconds, tens for a
		// 1 MiB TDX log), and the simulated TPM boots in the background:
		// the server listens once the logs are made, and what needs the
		// TPM's PCRs waits for its boot.
		//
		// Making them allocates a few MB in a few ms, bounded by the
		// simulators' limits (a 1 MiB area, 20,000 TPM events), and most
		// of it stays: the collector, which would run twice meanwhile
		// for a 1 MiB log, waits until they are made.
		defer debug.SetGCPercent(debug.SetGCPercent(-1))
		type started struct {
			tpm *simulator.TPM
			err error
		}
		tpmStarted := make(chan started, 1)
		go func() {
			tpm, err := simulator.StartTPM(c.simTPM)
			tpmStarted <- started{tpm, err}
		}()
		tdx, err := simulator.NewTDX(c.simTDX)
		st := <-tpmStarted
		tpm, tpmErr := st.tpm, st.err
		if err != nil {
			if tpmErr == nil {
				tpm.Close()
			}
			return nil, nil, err
		}
		srcs := map[eventlogpb.CATEGORY]hwsource.Source{eventlogpb.CATEGORY_TDX_EVENTLOG: tdx.OnKernel(kernel)}
		if tpmErr != nil {
			// The TDX simulation is pure Go and still serves; TPM requests
			// answer FAILED_PRECONDITION.
			logger.Error("simulated TPM unavailable", "err", tpmErr)
			return srcs, func() {}, nil
		}
		go func() {
			if err := tpm.Booted(context.Background()); err != nil { // the boot ends: CPU work
				logger.Error("simulated TPM failed to boot: its PCRs, extends and IMA list are unavailable", "err", err)
			}
		}()
		srcs[eventlogpb.CATEGORY_TPM_EVENTLOG] = tpm
		return srcs, func() { tpm.Close() }, nil
	}
	return nil, nil, fmt.Errorf("--hwsource must be host or simulated, not %q", c.hwsource)
}

// imaSource is the kernel's IMA measurement list: the host's, under
// --root, or the simulated TPM's kernel's; nil without a simulated TPM.
func imaSource(c serveConfig, srcs map[eventlogpb.CATEGORY]hwsource.Source) *hwsource.IMAList {
	if c.hwsource == "host" {
		return hwsource.NewIMA(c.root, c.ima)
	}
	if tpm, ok := srcs[eventlogpb.CATEGORY_TPM_EVENTLOG].(*simulator.TPM); ok {
		return hwsource.NewIMABytes("simulated IMA measurement list (the simulated TPM's kernel, PCR 10)", tpm.IMAList, true, c.ima)
	}
	return nil
}

// containerRuntime is the CRI client --cri-socket names, or finds; nil
// when there is none.
func containerRuntime(c serveConfig) (*cri.Client, error) {
	socket := c.criSocket
	switch socket {
	case "none":
		return nil, nil
	case "":
		if socket = cri.FindSocket(c.root); socket == "" {
			return nil, nil
		}
	}
	return cri.New(socket)
}

func serve(c serveConfig, logger *slog.Logger) error {
	mode, err := strconv.ParseUint(c.socketMode, 8, 32)
	if err != nil || mode > 0o777 {
		return fmt.Errorf("--socket-mode %q is not an octal permission like 0660", c.socketMode)
	}
	srcs, closeSources, err := sources(c, logger)
	if err != nil {
		return err
	}
	defer closeSources()
	imaList := imaSource(c, srcs)
	if srcs, err = withCrashPoint(srcs, os.Getenv(crashPointEnv), logger); err != nil {
		return err
	}
	if c.runtime.StateDir != "" {
		rt, err := containerRuntime(c)
		if err != nil {
			return err
		}
		if rt != nil {
			defer rt.Close()
			c.identity.Runtime = rt
		}
	}
	svc, err := service.New(srcs, service.Options{OutputDir: c.outputDir, Limits: c.limits, Logger: logger, RequestLogger: c.requestLog, MaxInlineBytes: c.maxInline, Runtime: c.runtime, Identity: c.identity, ZeroBasedStart: c.zeroBased, SourceRetry: c.healthWait, IMA: imaList})
	if err != nil {
		return err
	}
	defer svc.Close()
	conns, err := connLimits(c.conns, logger)
	if err != nil {
		return err
	}
	obs, err := newObservability(c, logger)
	if err != nil {
		return err
	}
	lis, err := unixsock.Listen(c.socket, os.FileMode(mode))
	if err != nil {
		return err
	}
	defer lis.Close() // and the socket with it, if it is still this server's
	g, hs := svc.NewGRPCServer(append(c.connOpts.ServerOptions(), obs.serverOptions()...)...)
	limited := connlimit.New(lis, conns)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go svc.WatchHealth(ctx, hs, c.healthWait)
	go svc.Sweep(ctx, min(c.limits.MinLifetime, time.Minute))
	stopMetrics, err := obs.start(ctx, svc, hs, limited)
	if err != nil {
		return err
	}
	defer stopMetrics() // after the gRPC server has stopped: the last scrape sees the drain

	logger.Info("serving", "socket", c.socket, "output_dir", c.outputDir, "hwsource", c.hwsource, "root", c.root, "state_dir", c.runtime.StateDir, "zero_based_start", c.zeroBased,
		"max_conns_per_uid", conns.PerUID, "max_conns", conns.Total, "metrics_addr", c.metricsAddr, "verify_interval", c.verifyInterval)
	served := make(chan error, 1)
	go func() { served <- g.Serve(limited) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	logger.Info("stopping: draining in-flight requests", "timeout", c.drain)
	hs.Shutdown() // probes now fail: no new work is sent here
	done := make(chan struct{})
	go func() { g.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(c.drain):
		logger.Warn("drain timeout: closing remaining connections")
		g.Stop()
	}
	logger.Info("stopped")
	return nil
}

// connLimits completes the connection caps: negative values are refused,
// the server's own uid may exceed the total (its exec probes connect as it),
// and the caps are lowered to fit the file limit, raised first to its hard
// limit, with a warning, so the server never runs out of descriptors.
func connLimits(lim connlimit.Limits, logger *slog.Logger) (connlimit.Limits, error) {
	if lim.PerUID < 0 || lim.Total < 0 {
		return lim, fmt.Errorf("--max-conns-per-uid (%d) and --max-conns (%d) must not be negative (0: as many as the file limit allows)", lim.PerUID, lim.Total)
	}
	lim.TotalExempt = []uint32{uint32(os.Geteuid())}
	lim.Logger = logger
	nofile, err := connlimit.RaiseFileLimit()
	if err != nil {
		return lim, err
	}
	fit, lowered := lim.FitFiles(nofile, spareFiles)
	if lowered {
		logger.Warn("connection caps lowered to fit the open file limit (RLIMIT_NOFILE): raise the limit to allow more",
			"nofile", nofile, "files_per_conn", connlimit.FilesPerConn,
			"max_conns_per_uid", fit.PerUID, "was_per_uid", lim.PerUID, "max_conns", fit.Total, "was", lim.Total)
	}
	return fit, nil
}
