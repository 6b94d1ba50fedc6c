// Package service is the Eventlog gRPC service: it answers the requests,
// over the packages that do the work, and maps every error they return to
// its gRPC status, in one place (errors.go).
//
// Each category's log is read once from its hwsource.Source (category.go);
// a request's events are selected from it and delivered by one pipeline,
// inline or as a file in the output directory, package outdir (reply.go).
// Container-level (SAAS) events are recorded by containers on the node
// (RecordEvent) into each category's runtime register and kept in its
// runtime log, package runtimelog (runtime.go, saas.go). The caller's
// container is told from the Unix socket's peer credentials and a cgroup
// its runtime made (caller.go; packages peercred and containerid), never
// from the request.
package service

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/ccnp-eventlog/ccnp-eventlog/containerid"
	"github.com/ccnp-eventlog/ccnp-eventlog/hwsource"
	"github.com/ccnp-eventlog/ccnp-eventlog/outdir"
	eventlogpb "github.com/ccnp-eventlog/ccnp-eventlog/proto"
	"github.com/ccnp-eventlog/ccnp-eventlog/runtimelog"
)

// Options configure a Service.
type Options struct {
	OutputDir string
	Limits    outdir.Limits
	// MaxInlineBytes bounds a reply whose events are sent in it rather than
	// written to a file: such content is held whole in memory (0:
	// DefaultMaxInlineBytes).
	MaxInlineBytes int64
	Logger         *slog.Logger
	// RequestLogger takes the one line logged per request (server.go); nil:
	// Logger. The server gives it a buffered writer (internal/logbuf), so
	// that a request costs no write of its own.
	RequestLogger *slog.Logger
	// Runtime configures container-level events; they are off without a
	// state directory.
	Runtime RuntimeOptions
	// Identity configures how container-level callers' containers are
	// told (caller.go).
	Identity IdentityOptions
	// ZeroBasedStart makes start_position count the events to skip, as the
	// upstream server did, instead of numbering the first event (paging.go).
	ZeroBasedStart bool
	// SourceRetry is how long a failed read of a source is remembered
	// (and answered with) before the source is read again (--health-retry);
	// zero is DefaultSourceRetry.
	SourceRetry time.Duration
	// IMA is the kernel's IMA measurement list (ima.go); nil: the IMA
	// category answers FAILED_PRECONDITION.
	IMA *hwsource.IMAList
}

// DefaultSourceRetry is Options.SourceRetry's default, --health-retry's.
const DefaultSourceRetry = 10 * time.Second

// sourceReadTimeout bounds how long requests wait for a source's first read
// (the boot log, and the runtime log's check against the register, which
// has a minute of its own). Reads of regular files and kernel attributes
// take milliseconds; only a hung file system or device takes this long.
const sourceReadTimeout = 2 * time.Minute

// Service implements eventlogpb.EventlogServer.
type Service struct {
	eventlogpb.UnimplementedEventlogServer

	logs      map[eventlogpb.CATEGORY]*category
	out       *outdir.Dir
	replies   replyCache
	log       *slog.Logger
	reqLog    *slog.Logger
	maxInline int64

	// Container-level events (containers.go, caller.go).
	rtOpts   RuntimeOptions
	rtDir    *runtimelog.Dir         // nil when they are off
	saasOut  *outdir.Dir             // per-container files, under OutputDir/containers
	saasKey  []byte                  // names the per-container directories
	ident    *containerid.Identifier // tells callers' containers
	identOff error                   // why ident is nil when they are on
	// keyLocks serialize the records of one idempotency key across
	// categories (containers.go), striped so that other keys rarely wait.
	keyLocks [64]sync.Mutex

	zeroBasedStart bool // Options.ZeroBasedStart

	ima *hwsource.IMAList // Options.IMA (ima.go)
}

// DefaultMaxInlineBytes is the default bound of an inline reply's content:
// what a gRPC client receives in one message unless told otherwise (grpc-go's
// default receive limit, 4 MiB), less room for the reply's other fields, so
// that a larger reply is refused by the server with a reason, rather than by
// the client's library.
const DefaultMaxInlineBytes = 4<<20 - 64<<10

// New returns a service serving the given sources. A category without a
// source answers FAILED_PRECONDITION.
func New(sources map[eventlogpb.CATEGORY]hwsource.Source, opts Options) (*Service, error) {
	out, err := outdir.Open(opts.OutputDir, opts.Limits)
	if err != nil {
		return nil, err
	}
	s := &Service{logs: map[eventlogpb.CATEGORY]*category{}, out: out, log: opts.Logger, rtOpts: opts.Runtime, zeroBasedStart: opts.ZeroBasedStart,
		maxInline: cmp.Or(opts.MaxInlineBytes, DefaultMaxInlineBytes), ima: opts.IMA}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.reqLog = cmp.Or(opts.RequestLogger, s.log)
	if s.maxInline < 0 {
		return nil, fmt.Errorf("the inline reply limit must be positive, not %d", s.maxInline)
	}
	if err := out.Watched(); err != nil {
		s.log.Warn("the output directory cannot be watched: each file handed out again is looked at on disk first", "output_dir", opts.OutputDir, "err", err)
	}
	if out.OpenToOthers() {
		s.log.Warn("others than the server can create or replace files in the output directory: the server never follows what they put there, but clients may read it at the paths handed out; make it writable by the server only", "output_dir", opts.OutputDir)
	}
	if err := s.rtOpts.setDefaults(); err != nil {
		return nil, err
	}
	rtOff := s.openRuntime(opts)
	retry := cmp.Or(opts.SourceRetry, DefaultSourceRetry)
	for cat, src := range sources {
		var rt *runtimelog.Log
		off := rtOff
		if ext, ok := src.(hwsource.Extender); ok && rtOff == nil {
			rt = runtimelog.New(s.rtDir, src.Kind(), ext, s.rtOpts.limits(), s.log)
		} else if rtOff == nil {
			off = cannotExtend(src)
			s.log.Warn("container-level events off: the register cannot be extended", "category", cat.String(), "err", off)
		}
		s.logs[cat] = newCategory(src, categoryName(cat), rt, off, hwsource.CacheOptions{Retry: retry, ReadTimeout: sourceReadTimeout})
	}
	return s, nil
}

// Close releases the output and state directories. The gRPC server must be
// stopped first.
func (s *Service) Close() error {
	s.out.Close()
	if s.saasOut != nil {
		s.saasOut.Close()
	}
	if s.rtDir == nil {
		return nil
	}
	for _, c := range s.logs {
		if c.rt != nil {
			c.rt.Close()
		}
	}
	return s.rtDir.Close()
}

// GetEventlog implements the Eventlog service.
func (s *Service) GetEventlog(ctx context.Context, req *eventlogpb.GetEventlogRequest) (*eventlogpb.GetEventlogReply, error) {
	reply, err := s.getEventlog(ctx, req)
	return reply, toStatus(err)
}

func (s *Service) getEventlog(ctx context.Context, req *eventlogpb.GetEventlogRequest) (*eventlogpb.GetEventlogReply, error) {
	if err := validate(req); err != nil {
		return nil, err
	}
	if req.EventlogCategory == imaCategory {
		return s.getIMA(ctx, req)
	}
	if req.EventlogLevel == eventlogpb.LEVEL_SAAS {
		return s.getContainerEventlog(ctx, req)
	}
	cache, err := s.logFor(req.EventlogCategory)
	if err != nil {
		return nil, err
	}
	p, err := cache.platform(ctx)
	if err != nil {
		return nil, err
	}
	return s.reply(req, served{log: p.log, json: p.json, gen: p.gen, name: cache.name, source: p.source, simulated: cache.src.Simulated()},
		destination{dir: s.out})
}

// categoryName names a category in file names: "tdx", "tpm", "ima".
func categoryName(c eventlogpb.CATEGORY) string {
	return strings.ToLower(strings.TrimSuffix(c.String(), "_EVENTLOG"))
}

// logFor returns the category's log, or why there is none.
func (s *Service) logFor(cat eventlogpb.CATEGORY) (*category, error) {
	if c := s.logs[cat]; c != nil {
		return c, nil
	}
	return nil, &noSourceError{cat}
}

func validate(req *eventlogpb.GetEventlogRequest) error {
	if err := validateLevel(req.EventlogLevel); err != nil {
		return err
	}
	if err := validateCategory(req.EventlogCategory); err != nil {
		return err
	}
	if _, ok := eventlogpb.FORMAT_name[int32(req.Format)]; !ok {
		return invalidRequest("unknown format %d: use 0 (CCNP_JSON) or 1 (TCG_RAW)", req.Format)
	}
	if req.StartPosition < 0 || req.Count < 0 {
		return invalidRequest("start_position (%d) and count (%d) must not be negative", req.StartPosition, req.Count)
	}
	return nil
}

func validateLevel(l eventlogpb.LEVEL) error {
	if _, ok := eventlogpb.LEVEL_name[int32(l)]; !ok {
		return invalidRequest("unknown eventlog_level %d: use 0 (PAAS) or 1 (SAAS)", l)
	}
	return nil
}

func validateCategory(c eventlogpb.CATEGORY) error {
	if _, ok := eventlogpb.CATEGORY_name[int32(c)]; !ok {
		return invalidRequest("unknown eventlog_category %d: use 0 (TDX_EVENTLOG), 1 (TPM_EVENTLOG) or 2 (IMA_EVENTLOG)", c)
	}
	return nil
}

// Check reads and parses every source's log, for health and start-up logs.
// It reports whether at least one source works, as soon as one does: the
// sources are read at once, and one that is slow to answer (or never does)
// holds back neither the others nor health. Each result is logged when it
// comes.
func (s *Service) Check(ctx context.Context) bool {
	results := make(chan bool, len(s.logs)+1)
	sources := len(s.logs)
	if s.ima != nil {
		sources++
		go func() { results <- s.checkIMA(ctx) }()
	}
	for cat, c := range s.logs {
		go func() {
			p, err := c.platform(ctx)
			if err != nil {
				s.log.Warn("source unavailable", "category", cat.String(), "source", c.src.Name(), "err", err)
				results <- false
				return
			}
			s.log.Info("source ready", "category", cat.String(), "source", p.source, "simulated", c.src.Simulated(), "events", len(p.log.Events))
			results <- true
		}()
	}
	for range sources {
		if <-results {
			return true
		}
	}
	return false
}

// cannotExtend says why a source that is not an Extender cannot record
// container-level events: its own reason (a kernel too old, ...) when it
// knows one.
func cannotExtend(src hwsource.Source) error {
	if c, ok := src.(hwsource.CannotExtend); ok {
		return c.CannotExtend()
	}
	return fmt.Errorf("its source (%s) cannot extend registers", src.Name())
}
