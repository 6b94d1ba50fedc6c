package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"time"
	"unicode"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// grpcHealthProbeName is the program the upstream CCNP manifests and chart
// run as their exec probes:
//
//	/usr/bin/grpc_health_probe -addr=unix:/run/ccnp/uds/eventlog.sock
//
// The image links /usr/bin/grpc_health_probe to this binary, which answers
// as that tool (github.com/grpc-ecosystem/grpc-health-probe) when run under
// that name: the same flags, messages of the same form on stderr, the same
// exit statuses. A FROM-scratch image has nothing else to run, and a
// downloaded probe would be one more binary to trust in the pod.
const grpcHealthProbeName = "grpc_health_probe"

// grpc_health_probe's exit statuses.
const (
	probeServing        = 0
	probeInvalidArgs    = 1
	probeConnectFailure = 2
	probeRPCFailure     = 3
	probeUnhealthy      = 4
)

// grpc_health_probe's transport flags. This server speaks plaintext gRPC on a
// Unix socket, so the real tool given any of them fails against it too (a
// handshake failure, or an RPC error for -gzip, which the server does not
// decode); here they are refused up front, saying why, as invalid arguments.
var (
	unsupportedProbeSwitches = map[string]string{
		"tls":           "use TLS",
		"tls-no-verify": "(with -tls) don't verify the server's certificate",
		"alts":          "use ALTS",
		"spiffe":        "use SPIFFE to obtain mTLS credentials",
		"gzip":          "compress requests with gzip",
	}
	unsupportedProbeValues = map[string]string{
		"tls-ca-cert":     "(with -tls) file of trusted CA certificates",
		"tls-client-cert": "(with -tls) client certificate",
		"tls-client-key":  "(with -tls) client private key",
		"tls-server-name": "(with -tls) the server name to verify",
	}
)

// rpcHeaders is -rpc-header, repeatable: "name: value".
type rpcHeaders struct{ metadata.MD }

func (h *rpcHeaders) String() string { return fmt.Sprint(h.MD) }

func (h *rpcHeaders) Set(v string) error {
	name, value, ok := strings.Cut(v, ":")
	if !ok || strings.TrimSpace(name) == "" {
		return fmt.Errorf("invalid RPC header, expected 'name: value', got %q", v)
	}
	if h.MD == nil {
		h.MD = metadata.MD{}
	}
	h.Append(name, strings.TrimLeftFunc(value, unicode.IsSpace))
	return nil
}

type healthProbeFlags struct {
	addr, service, userAgent string
	connectTimeout           time.Duration
	rpcTimeout               time.Duration
	headers                  rpcHeaders
	verbose, version         bool
}

// grpcHealthProbe runs as grpc_health_probe with its arguments (without the
// program name) and returns its exit status.
func grpcHealthProbe(args []string, stdout, stderr io.Writer) int {
	logf := func(format string, a ...any) { fmt.Fprintf(stderr, format+"\n", a...) }
	fs := flag.NewFlagSet(grpcHealthProbeName, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f healthProbeFlags
	fs.StringVar(&f.addr, "addr", "", "(required) address to connect to: unix:PATH or unix:///PATH for a Unix socket, or host:port")
	fs.StringVar(&f.service, "service", "", `service name to check (default: "", the server as a whole)`)
	fs.StringVar(&f.userAgent, "user-agent", "grpc_health_probe", "user-agent header value of health check requests")
	fs.DurationVar(&f.connectTimeout, "connect-timeout", time.Second, "timeout for establishing connection")
	fs.Var(&f.headers, "rpc-header", "additional RPC headers in 'name: value' format; may be given more than once")
	fs.DurationVar(&f.rpcTimeout, "rpc-timeout", time.Second, "timeout for health check rpc")
	fs.BoolVar(&f.verbose, "v", false, "verbose logs")
	fs.BoolVar(&f.version, "version", false, "show probe version and exit")
	var refused []string
	for name, usage := range unsupportedProbeSwitches {
		fs.Var(boolFunc(func(v string) error {
			if v != "false" {
				refused = append(refused, "-"+name)
			}
			return nil
		}), name, "not supported: "+usage)
	}
	for name, usage := range unsupportedProbeValues {
		fs.Func(name, "not supported: "+usage, func(string) error { refused = append(refused, "-"+name); return nil })
	}
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: %s -addr=unix:/run/ccnp/uds/eventlog.sock [flags]\n\n"+
			"eventlog-server answering as grpc_health_probe (run under that name): it checks a\n"+
			"server's gRPC health; exit 0 SERVING, 1 invalid arguments, 2 connection failed,\n"+
			"3 the RPC failed, 4 not SERVING.\n\n", grpcHealthProbeName)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return probeInvalidArgs // the flag package has said what, with the usage
	}
	if f.version {
		fmt.Fprintln(stdout, probeVersion())
		return probeServing
	}
	argError := func(format string, a ...any) int {
		logf("error: "+format, a...)
		return probeInvalidArgs
	}
	switch {
	case len(refused) > 0:
		return argError("%s: not supported: this is eventlog-server answering as %s, and the server speaks plaintext gRPC on a Unix socket", strings.Join(refused, ", "), grpcHealthProbeName)
	case f.addr == "":
		return argError("-addr not specified")
	case f.connectTimeout <= 0:
		return argError("-connect-timeout must be greater than zero (specified: %v)", f.connectTimeout)
	case f.rpcTimeout <= 0:
		return argError("-rpc-timeout must be greater than zero (specified: %v)", f.rpcTimeout)
	}
	if f.verbose {
		logf("parsed options:")
		logf("> addr=%s conn_timeout=%v rpc_timeout=%v", f.addr, f.connectTimeout, f.rpcTimeout)
		if len(f.headers.MD) > 0 {
			logf("> headers: %s", f.headers.String())
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	conn, code := probeConnect(ctx, f, logf)
	if conn == nil {
		return code
	}
	defer conn.Close()

	rpcStart := time.Now()
	rpcCtx, cancel := context.WithTimeout(ctx, f.rpcTimeout)
	defer cancel()
	if len(f.headers.MD) > 0 {
		rpcCtx = metadata.NewOutgoingContext(rpcCtx, f.headers.MD)
	}
	resp, err := healthpb.NewHealthClient(conn).Check(rpcCtx, &healthpb.HealthCheckRequest{Service: f.service})
	if err != nil {
		switch st, _ := status.FromError(err); st.Code() {
		case codes.Unimplemented:
			logf("error: this server does not implement the grpc health protocol (grpc.health.v1.Health): %s", st.Message())
		case codes.DeadlineExceeded:
			logf("timeout: health rpc did not complete within %v", f.rpcTimeout)
		default:
			logf("error: health rpc failed: %v", err)
		}
		return probeRPCFailure
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		logf("service unhealthy (responded with %q)", resp.GetStatus().String())
		return probeUnhealthy
	}
	if f.verbose {
		logf("time elapsed: rpc=%v", time.Since(rpcStart))
	}
	logf("status: %v", resp.GetStatus())
	return probeServing
}

// probeConnect connects within -connect-timeout, as grpc_health_probe's
// blocking dial does; on failure it says why and returns the exit status.
func probeConnect(ctx context.Context, f healthProbeFlags, logf func(string, ...any)) (*grpc.ClientConn, int) {
	start := time.Now()
	if f.verbose {
		logf("establishing connection")
	}
	conn, err := grpc.NewClient(f.addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithUserAgent(f.userAgent))
	if err != nil {
		logf("error: failed to connect service at %q: %v", f.addr, err)
		return nil, probeConnectFailure
	}
	dialCtx, cancel := context.WithTimeout(ctx, f.connectTimeout)
	defer cancel()
	conn.Connect()
	for state := conn.GetState(); state != connectivity.Ready; state = conn.GetState() {
		if !conn.WaitForStateChange(dialCtx, state) {
			conn.Close()
			// gRPC keeps retrying and does not say why; for a Unix socket
			// one plain dial names the reason (no such file, refused,
			// permission denied).
			if path, ok := unixSocketPath(f.addr); ok {
				c, err := net.DialTimeout("unix", path, f.connectTimeout)
				if err != nil {
					logf("error: failed to connect service at %q: %v", f.addr, err)
					return nil, probeConnectFailure
				}
				c.Close()
			}
			logf("timeout: failed to connect service %q within %v", f.addr, f.connectTimeout)
			return nil, probeConnectFailure
		}
	}
	if f.verbose {
		logf("connection established (took %v)", time.Since(start))
	}
	return conn, 0
}

// unixSocketPath is the socket path of a unix: target, as gRPC reads it:
// "unix:PATH" or "unix://ABSOLUTE_PATH".
func unixSocketPath(addr string) (string, bool) {
	rest, ok := strings.CutPrefix(addr, "unix:")
	if !ok {
		return "", false
	}
	if p, ok := strings.CutPrefix(rest, "//"); ok {
		rest = p
	}
	return rest, rest != ""
}

// boolFunc is a flag.Value for a flag without a value, like a bool flag.
type boolFunc func(string) error

func (f boolFunc) Set(v string) error { return f(v) }
func (f boolFunc) String() string     { return "" }
func (f boolFunc) IsBoolFlag() bool   { return true }

// probeVersion says what answers: this binary, and its VCS revision when
// the build recorded one.
func probeVersion() string {
	v := "eventlog-server (answering as " + grpcHealthProbeName + ")"
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" {
				v += "; commit " + s.Value
			}
		}
	}
	return v
}
