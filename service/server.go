package service

import (
	"context"
	"log/slog"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/ccnp-eventlog/ccnp-eventlog/peercred"
	eventlogpb "github.com/ccnp-eventlog/ccnp-eventlog/proto"
)

// ConnOptions bound how long a connection may stay open without doing
// anything: each costs the server file descriptors and memory, and the
// number a uid may hold is capped (package connlimit), so one that idles
// would keep another's place.
type ConnOptions struct {
	// IdleTimeout: a connection without an RPC in flight for this long is
	// sent GOAWAY and closed (gRPC clients reconnect when they next call).
	IdleTimeout time.Duration
	// HandshakeTimeout: a connection that has not sent the HTTP/2 preface
	// and settings within it is closed.
	HandshakeTimeout time.Duration
}

// DefaultConnOptions are the connection bounds of NewGRPCServer, and the
// defaults of serve's --conn-idle-timeout and --handshake-timeout.
var DefaultConnOptions = ConnOptions{IdleTimeout: 5 * time.Minute, HandshakeTimeout: 10 * time.Second}

// maxStreamsPerConn bounds the RPCs one connection may have in flight
// (gRPC's default is unbounded): streams such as health Watch stay open, and
// each holds a goroutine. A client past it queues, it is not refused.
const maxStreamsPerConn = 32

// ServerOptions are the gRPC server options that apply o.
func (o ConnOptions) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ConnectionTimeout(o.HandshakeTimeout),
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: o.IdleTimeout}),
	}
}

// NewGRPCServer returns a gRPC server carrying the Eventlog service, the
// grpc.health.v1 service and reflection (so grpcurl needs no proto file).
// Health starts NOT_SERVING; WatchHealth sets it from the sources.
//
// Its transport credentials record each Unix socket connection's peer
// (peercred), which container-level requests are attributed by; clients
// connect as with insecure credentials. Connections are bounded by
// DefaultConnOptions and maxStreamsPerConn; opts come after, and override.
func (s *Service) NewGRPCServer(opts ...grpc.ServerOption) (*grpc.Server, *health.Server) {
	defaults := append([]grpc.ServerOption{grpc.Creds(peercred.NewCredentials()), grpc.MaxConcurrentStreams(maxStreamsPerConn)},
		DefaultConnOptions.ServerOptions()...)
	opts = append(defaults, opts...)
	opts = append(opts, grpc.ChainUnaryInterceptor(s.logRequests))
	g := grpc.NewServer(opts...)
	eventlogpb.RegisterEventlogServer(g, s)
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	hs.SetServingStatus(eventlogpb.Eventlog_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_NOT_SERVING)
	healthpb.RegisterHealthServer(g, hs)
	reflection.Register(g)
	return g, hs
}

// WatchHealth sets the health status from the sources: SERVING when at least
// one category's log can be read and parsed. Until then it checks again every
// interval, since an init container or an operator may still be fixing the
// node. It returns when ctx is done or the service is serving.
func (s *Service) WatchHealth(ctx context.Context, hs *health.Server, interval time.Duration) {
	for {
		if s.Check(ctx) {
			hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
			hs.SetServingStatus(eventlogpb.Eventlog_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
			return
		}
		s.log.Error("no event log source works; health is NOT_SERVING", "retry", interval)
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
	}
}

// logRequests writes one log line per request.
func (s *Service) logRequests(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := handler(ctx, req)
	attrs := []slog.Attr{
		slog.String("method", info.FullMethod),
		slog.String("status", status.Code(err).String()),
		slog.Duration("duration", time.Since(start)),
	}
	level := slog.LevelInfo
	switch r := req.(type) {
	case *eventlogpb.GetEventlogRequest:
		attrs = append(attrs,
			slog.String("eventlog_level", r.EventlogLevel.String()),
			slog.String("eventlog_category", r.EventlogCategory.String()),
			slog.Int("start", int(r.StartPosition)),
			slog.Int("count", int(r.Count)),
			slog.String("format", r.Format.String()))
		if r.Inline {
			attrs = append(attrs, slog.Bool("inline", true))
		}
		if reply, ok := resp.(*eventlogpb.GetEventlogReply); ok && err == nil {
			attrs = append(attrs, slog.Int("events", int(reply.EventCount)), slog.String("file", reply.EventlogDataLoc))
		}
	case *eventlogpb.RecordEventRequest:
		attrs = append(attrs,
			slog.String("eventlog_category", r.EventlogCategory.String()),
			slog.Uint64("event_type", uint64(r.EventType)),
			slog.Int("data_bytes", len(r.Data)))
		if reply, ok := resp.(*eventlogpb.RecordEventReply); ok && err == nil {
			attrs = append(attrs, slog.String("container", reply.ContainerId), slog.Int("event", int(reply.EventNum)), slog.Int("log_event", int(reply.LogEventNum)))
		}
	case *eventlogpb.VerifyEventlogRequest:
		attrs = append(attrs,
			slog.String("eventlog_level", r.EventlogLevel.String()),
			slog.String("eventlog_category", r.EventlogCategory.String()))
		if reply, ok := resp.(*eventlogpb.VerifyEventlogReply); ok && err == nil {
			attrs = append(attrs, slog.Bool("verified", reply.Verified))
		}
	case *healthpb.HealthCheckRequest:
		level = slog.LevelDebug // probes every few seconds
	}
	if err != nil {
		attrs = append(attrs, slog.String("err", status.Convert(err).Message()))
		if level < slog.LevelWarn {
			level = slog.LevelWarn
		}
	}
	s.reqLog.LogAttrs(ctx, level, "request", attrs...)
	return resp, err
}

// Sweep removes output files past their maximum age every interval, until ctx is done.
func (s *Service) Sweep(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.out.Sweep()
			if s.saasOut != nil {
				s.saasOut.Sweep()
			}
		}
	}
}
