package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/net/netutil"
)

// NewRegistry returns a registry holding the Go runtime's and the process's
// collectors, and cs.
func NewRegistry(cs ...prometheus.Collector) (*prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	cs = append([]prometheus.Collector{collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})}, cs...)
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return reg, nil
}

// The metrics endpoint's bounds: whoever can reach its address (anyone on
// the pod network, in a cluster) can connect, so connections, headers and
// the time each step may take are all capped, and scrapes run one or two
// at a time.
const (
	maxConns          = 16
	maxScrapes        = 2
	maxHeaderBytes    = 8 << 10
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = time.Minute
	// scrapeTimeout bounds the collection of one scrape.
	scrapeTimeout = 20 * time.Second
)

// Server serves /metrics over plain HTTP.
type Server struct {
	http *http.Server
	lis  net.Listener
}

// Listen listens on addr (HOST:PORT) for scrapes of g. The listener is
// open when it returns, so that an address in use or not this host's is
// an error at start-up, not a log line later.
func Listen(addr string, g prometheus.Gatherer, logger *slog.Logger) (*Server, error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-addr: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{
		ErrorLog:            slog.NewLogLogger(logger.Handler(), slog.LevelError),
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: maxScrapes,
		Timeout:             scrapeTimeout,
	}))
	return &Server{
		lis: netutil.LimitListener(lis, maxConns),
		http: &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: readHeaderTimeout,
			ReadTimeout:       readTimeout,
			WriteTimeout:      writeTimeout,
			IdleTimeout:       idleTimeout,
			MaxHeaderBytes:    maxHeaderBytes,
			ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
		},
	}, nil
}

// Addr is the address it listens on.
func (s *Server) Addr() net.Addr { return s.lis.Addr() }

// Serve serves until Shutdown; it returns nil then.
func (s *Server) Serve() error {
	if err := s.http.Serve(s.lis); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Shutdown stops serving: the scrapes in progress finish until ctx is
// done, then their connections are closed.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.http.Shutdown(ctx)
	if err != nil {
		s.http.Close()
	}
	return err
}
