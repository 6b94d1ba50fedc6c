package main

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/ccnp-eventlog/ccnp-eventlog/connlimit"
	"github.com/ccnp-eventlog/ccnp-eventlog/metrics"
	eventlogpb "github.com/ccnp-eventlog/ccnp-eventlog/proto"
	"github.com/ccnp-eventlog/ccnp-eventlog/service"
)

// observability is what serve runs beside the gRPC server for operators:
// the metrics endpoint (--metrics-addr) and the continuous verification
// of the logs against the registers (--verify-interval).
type observability struct {
	addr      string
	interval  time.Duration
	logger    *slog.Logger
	requests  *metrics.Requests // nil without metrics
	integrity *metrics.Integrity
}

// metricsShutdownTimeout bounds how long a scrape in progress may delay
// the server's exit.
const metricsShutdownTimeout = 5 * time.Second

func newObservability(c serveConfig, logger *slog.Logger) (*observability, error) {
	if c.verifyInterval < 0 {
		return nil, errors.New("--verify-interval must not be negative (0 turns the verification off)")
	}
	o := &observability{addr: c.metricsAddr, interval: c.verifyInterval, logger: logger, integrity: metrics.NewIntegrity(c.verifyInterval)}
	if o.addr != "" {
		o.requests = metrics.NewRequests(&eventlogpb.Eventlog_ServiceDesc, &healthpb.Health_ServiceDesc)
	}
	return o, nil
}

// serverOptions are the gRPC server's options for it: the requests'
// interceptor, with metrics on.
func (o *observability) serverOptions() []grpc.ServerOption {
	if o.requests == nil {
		return nil
	}
	return []grpc.ServerOption{grpc.ChainUnaryInterceptor(o.requests.Interceptor)}
}

// start starts the verification and the metrics endpoint, which reads
// svc's and conns' accounting when scraped, until ctx is done. The
// endpoint's listener is open when it returns; stop shuts it down.
func (o *observability) start(ctx context.Context, svc *service.Service, hs *health.Server, conns *connlimit.Listener) (stop func(), err error) {
	stop = func() {}
	if o.addr != "" {
		reg, err := metrics.NewRegistry(o.requests, o.integrity, metrics.State{
			OutputDirs:  svc.OutputStats,
			RuntimeLogs: svc.RuntimeStats,
			Connections: func() metrics.ConnStats {
				_, open := conns.Open(0)
				return metrics.ConnStats{Open: open, Refused: conns.Refused()}
			},
		})
		if err != nil {
			return nil, err
		}
		srv, err := metrics.Listen(o.addr, reg, o.logger)
		if err != nil {
			return nil, err
		}
		o.logger.Info("serving metrics", "addr", srv.Addr().String(), "path", "/metrics")
		done := make(chan struct{})
		go func() {
			defer close(done)
			if err := srv.Serve(); err != nil {
				o.logger.Error("metrics endpoint stopped", "err", err)
			}
		}()
		stop = func() {
			ctx, cancel := context.WithTimeout(context.Background(), metricsShutdownTimeout)
			defer cancel()
			srv.Shutdown(ctx)
			<-done
		}
	}
	if o.interval > 0 {
		go svc.WatchIntegrity(ctx, o.interval, service.DefaultVerifyTimeout, hs, o.integrity)
	}
	return stop, nil
}
