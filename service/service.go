// Package service implements the Eventlog gRPC service: it reads each
// category's log from its hwsource.Source, selects the events a request asks
// for, and writes them to a file under the output directory.
//
// Container-level (SAAS) events are recorded by containers on the node
// (RecordEvent) into each category's runtime register, through sources that
// are hwsource.Extenders, and kept in a runtime log in the state directory
// (see runtime.go). The caller's container is told from the Unix socket's
// peer credentials and a cgroup its runtime made (identity.go), never from
// the request.
package service

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
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
	// Runtime configures container-level events; they are off without a
	// state directory.
	Runtime RuntimeOptions
	// Identity configures how container-level callers' containers are
	// told (identity.go).
	Identity IdentityOptions
	// ZeroBasedStart makes start_position count the events to skip, as the
	// upstream server did, instead of numbering the first event (paging.go).
	ZeroBasedStart bool
	// SourceRetry is how long a failed read of a source is remembered
	// (and answered with) before the source is read again (--health-retry);
	// zero is DefaultSourceRetry.
	SourceRetry time.Duration
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

	logs      map[eventlogpb.CATEGORY]*logCache
	out       *outdir.Dir
	replies   replyCache
	log       *slog.Logger
	maxInline int64

	// Container-level events (saas.go, runtime.go).
	rtOpts  RuntimeOptions
	rtDir   *runtimelog.Dir // nil when they are off
	saasOut *outdir.Dir     // per-container files, under OutputDir/containers
	saasKey []byte          // names the per-container directories
	ident   *identifier     // tells callers' containers
	// keyLocks serialize the records of one idempotency key across
	// categories (saas.go), striped so that other keys rarely wait.
	keyLocks [64]sync.Mutex

	zeroBasedStart bool // Options.ZeroBasedStart
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
	s := &Service{logs: map[eventlogpb.CATEGORY]*logCache{}, out: out, log: opts.Logger, rtOpts: opts.Runtime, zeroBasedStart: opts.ZeroBasedStart,
		maxInline: cmp.Or(opts.MaxInlineBytes, DefaultMaxInlineBytes)}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.maxInline < 0 {
		return nil, fmt.Errorf("the inline reply limit must be positive, not %d", s.maxInline)
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
		c := &logCache{src: src, rtOff: rtOff, retry: retry, readTimeout: sourceReadTimeout}
		if ext, ok := src.(hwsource.Extender); ok && rtOff == nil {
			c.rt = &runtimeLog{src: ext, kind: src.Kind(), index: runtimeRegister(src.Kind()), dir: s.rtDir, opts: &s.rtOpts, log: s.log, paas: &c.parsed}
		} else if rtOff == nil {
			c.rtOff = cannotExtend(src)
			s.log.Warn("container-level events off: the register cannot be extended", "category", cat.String(), "err", c.rtOff)
		}
		s.logs[cat] = c
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
			c.rt.close()
		}
	}
	return s.rtDir.Close()
}

// logCache holds a category's parsed log. Firmware logs do not change after
// boot, so a log is read once. A failed read is remembered for retry and
// answered from memory, then the source is read again, so a source that
// appears later (staged by an init container, a permission fixed) is picked
// up, at most one read per retry.
//
// One goroutine reads a source at a time, and no lock is held while it
// does: requests wait for its result on their own deadline, and for at
// most sourceReadTimeout. A read that never returns (a hung file system)
// keeps its one goroutine and is answered as timed out (a failure like any
// other); it blocks neither other categories nor anything else.
//
// With container-level events, the log is the boot log followed by every
// runtime event recorded since boot: rt publishes a new one with each event.
type logCache struct {
	src         hwsource.Source
	parsed      atomic.Pointer[parsedLog]
	retry       time.Duration // how long a failure is remembered
	readTimeout time.Duration // how long requests wait for a read

	// mu guards the fields below; it is never held across a read.
	mu          sync.Mutex
	reading     *sourceRead // the read in flight, if any
	failed      error       // the last read's error, answered until failedUntil
	failedUntil time.Time

	// rt keeps the category's container-level events; nil when they are
	// off, and rtOff says why.
	rt    *runtimeLog
	rtOff error
}

// sourceRead is one read of a source; done is closed when p or err is set.
type sourceRead struct {
	done     chan struct{}
	deadline time.Time
	p        *parsedLog
	err      error
}

type parsedLog struct {
	log  *eventlog.Log
	json eventlog.JSONOptions
	// gen counts the runtime events in log: replies cached for one
	// generation are not handed out for another.
	gen uint64
	// source says where the boot log was read: the file, or what is simulated.
	source string
}

func (c *logCache) get(ctx context.Context) (*parsedLog, error) {
	if p := c.parsed.Load(); p != nil {
		return p, nil
	}
	r, err := c.read()
	if err != nil {
		return nil, err
	}
	wait := time.NewTimer(time.Until(r.deadline))
	defer wait.Stop()
	select {
	case <-r.done:
		return r.p, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-wait.C:
		return nil, c.timedOut(r)
	}
}

// read returns the read in flight, starting one unless the last failure is
// still to be remembered (it is returned instead).
func (c *logCache) read() (*sourceRead, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r := c.reading; r != nil {
		return r, nil
	}
	if p := c.parsed.Load(); p != nil { // a read finished since get looked
		r := &sourceRead{done: make(chan struct{}), p: p}
		close(r.done)
		return r, nil
	}
	if c.failed != nil && time.Now().Before(c.failedUntil) {
		return nil, c.failed
	}
	r := &sourceRead{done: make(chan struct{}), deadline: time.Now().Add(c.readTimeout)}
	c.reading = r
	go c.load(r)
	return r, nil
}

// load reads and parses the source, publishes the result and ends the read.
// Its context is its own: whoever's request started it may go away, while
// others wait for it.
func (c *logCache) load(r *sourceRead) {
	ctx, cancel := context.WithDeadline(context.Background(), r.deadline)
	defer cancel()
	r.p, r.err = c.parse(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reading = nil
	if r.err != nil {
		c.failed, c.failedUntil = r.err, time.Now().Add(c.retry)
	}
	close(r.done)
}

// timedOut is the answer to a request that waited for r past its deadline;
// the read keeps its goroutine until it returns, and no other starts.
func (c *logCache) timedOut(r *sourceRead) error {
	err := &sourceTimeoutError{source: c.src.Name(), after: c.readTimeout}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.reading == r {
		c.failed, c.failedUntil = err, time.Now().Add(c.retry)
	}
	return err
}

func (c *logCache) parse(ctx context.Context) (*parsedLog, error) {
	raw, err := c.src.ReadLog(ctx)
	if err != nil {
		return nil, err
	}
	l, err := raw.Parse()
	if err != nil {
		where := raw.Path
		if where == "" {
			where = c.src.Name()
		}
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	p := &parsedLog{log: l, json: eventlog.JSONOptions{Kind: c.src.Kind(), Address: raw.Address}, source: raw.Path}
	if p.source == "" {
		p.source = c.src.Name()
	}
	if c.rt != nil {
		// The runtime log is checked against the register before the
		// first reply: a record a crash left half done is settled here.
		// It publishes the log itself: records may publish theirs as
		// soon as it has confirmed the journal's.
		return c.rt.open(ctx, p), nil
	}
	c.parsed.Store(p)
	return p, nil
}

// replyKey identifies a reply's file: the same log, slice and format always
// give the same content, so the file is written once and handed out again.
type replyKey struct {
	category    eventlogpb.CATEGORY
	format      eventlogpb.FORMAT
	first, last int
	gen         uint64
}

// replyCache remembers recent replies so that a repeated request costs a map
// lookup. It is bounded: the number of possible slices grows with the square
// of the log's length, and any client may ask for all of them.
type replyCache struct {
	mu sync.RWMutex
	m  map[replyKey]*cachedReply
}

const maxCachedReplies = 4096

func (c *replyCache) get(k replyKey) *cachedReply {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.m[k]
}

func (c *replyCache) put(k replyKey, r *cachedReply) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[replyKey]*cachedReply{}
	}
	if len(c.m) >= maxCachedReplies {
		for old := range c.m { // evict an arbitrary entry: Go's map order is random
			delete(c.m, old)
			break
		}
	}
	c.m[k] = r
}

type cachedReply struct {
	name  string
	reply *eventlogpb.GetEventlogReply // without EventlogDataLoc
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
	if req.EventlogLevel == eventlogpb.LEVEL_SAAS {
		return s.getContainerEventlog(ctx, req)
	}
	cache, err := s.logFor(req.EventlogCategory)
	if err != nil {
		return nil, err
	}
	p, err := cache.get(ctx)
	if err != nil {
		return nil, err
	}
	events, err := s.slice(p.log, req.StartPosition, req.Count)
	if err != nil {
		return nil, err
	}
	key := replyKey{category: req.EventlogCategory, format: req.Format, gen: p.gen}
	key.first, key.last = span(events)
	if req.Inline {
		return s.inline(s.render(p, events, key, cache.src))
	}
	if c := s.replies.get(key); c != nil {
		if path, ok := s.out.Reuse("", c.name); ok {
			return withPath(c.reply, path), nil
		}
	}
	r := s.render(p, events, key, cache.src)
	st, err := store(s.out, r, "", nil)
	if err != nil {
		return nil, err
	}
	s.replies.put(key, &cachedReply{name: st.Name, reply: r.reply})
	return withPath(r.reply, st.Path), nil
}

func withPath(r *eventlogpb.GetEventlogReply, path string) *eventlogpb.GetEventlogReply {
	out := &eventlogpb.GetEventlogReply{
		EventlogDataLoc: path,
		EventCount:      r.EventCount,
		TotalEvents:     r.TotalEvents,
		Format:          r.Format,
		Sha256:          r.Sha256,
		FirstEvent:      r.FirstEvent,
		Source:          r.Source,
		Simulated:       r.Simulated,
	}
	return out
}

// rendered is a reply's content before it exists: its size, known without
// encoding, and how to write it in pieces or append it whole.
type rendered struct {
	// label and ext name its file; see outdir.File.
	label, ext string
	size       int64
	write      func(io.Writer) error
	append     func([]byte) []byte
	// reply describes the content, but for its digest and where it is.
	reply *eventlogpb.GetEventlogReply
}

// render prepares events, a slice of l, in format, with l's header, and
// describes them in a reply, without what only the caller knows (Source,
// Simulated). The file's name says which log the events come from (log:
// "tdx", "saas-tpm", ...), which they are, and the content's digest: the
// same events in the same format get the same name.
func render(l *eventlog.Log, o eventlog.JSONOptions, events []eventlog.Event, format eventlogpb.FORMAT, log string) rendered {
	first, last := span(events)
	r := rendered{
		label: fmt.Sprintf("%s-%d-%d", log, first, last),
		reply: &eventlogpb.GetEventlogReply{
			EventCount:  uint32(len(events)),
			TotalEvents: uint32(len(l.Events)),
			Format:      format,
			FirstEvent:  uint32(first),
		},
	}
	if format == eventlogpb.FORMAT_TCG_RAW {
		r.ext, r.size = "bin", eventlog.RawSize(l, events)
		r.write = func(w io.Writer) error { return eventlog.WriteRaw(w, l, events) }
		r.append = func(b []byte) []byte { return eventlog.AppendRaw(b, l, events) }
		return r
	}
	r.ext, r.size = "json", eventlog.CCNPJSONSize(l, events, o)
	r.write = func(w io.Writer) error { return eventlog.WriteCCNPJSON(w, l, events, o) }
	r.append = func(b []byte) []byte { return eventlog.AppendCCNPJSON(b, l, events, o) }
	return r
}

// inline puts the content in the reply. It is held whole in memory, and
// then copied by gRPC: content larger than the inline limit is refused
// before anything is allocated.
func (s *Service) inline(r rendered) (*eventlogpb.GetEventlogReply, error) {
	if r.size > s.maxInline {
		return nil, &limitError{fmt.Sprintf("the events asked for take %d bytes, more than the %d this server sends inline (--max-inline-bytes): ask for a file (inline false), or for fewer events (count)", r.size, s.maxInline)}
	}
	content := r.append(make([]byte, 0, r.size))
	sum := sha256.Sum256(content)
	r.reply.Sha256 = hex.EncodeToString(sum[:])
	r.reply.EventlogData = content
	return r.reply, nil
}

// store writes the content to a file in dir, in pieces.
func store(dir *outdir.Dir, r rendered, sub string, owner *outdir.Owner) (outdir.Stored, error) {
	st, err := dir.Put(outdir.File{Sub: sub, Owner: owner, Label: r.label, Ext: r.ext, Size: r.size, Write: r.write})
	if err == nil {
		r.reply.Sha256 = st.SHA256
	}
	return st, err
}

// span is the numbers of the first and the last of events; 0 and 0 for none.
func span(events []eventlog.Event) (first, last int) {
	if len(events) == 0 {
		return 0, 0
	}
	return events[0].Num, events[len(events)-1].Num
}

// render is render for a platform log.
func (s *Service) render(p *parsedLog, events []eventlog.Event, key replyKey, src hwsource.Source) rendered {
	r := render(p.log, p.json, events, key.format, strings.ToLower(strings.TrimSuffix(key.category.String(), "_EVENTLOG")))
	r.reply.Source, r.reply.Simulated = p.source, src.Simulated()
	return r
}

// logFor returns the category's log, or why there is none.
func (s *Service) logFor(cat eventlogpb.CATEGORY) (*logCache, error) {
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
		return invalidRequest("unknown eventlog_category %d: use 0 (TDX_EVENTLOG) or 1 (TPM_EVENTLOG)", c)
	}
	return nil
}

// Check reads and parses every source's log, for health and start-up logs.
// It reports whether at least one source works, as soon as one does: the
// sources are read at once, and one that is slow to answer (or never does)
// holds back neither the others nor health. Each result is logged when it
// comes.
func (s *Service) Check(ctx context.Context) bool {
	results := make(chan bool, len(s.logs))
	for cat, c := range s.logs {
		go func() {
			p, err := c.get(ctx)
			if err != nil {
				s.log.Warn("source unavailable", "category", cat.String(), "source", c.src.Name(), "err", err)
				results <- false
				return
			}
			s.log.Info("source ready", "category", cat.String(), "source", p.source, "simulated", c.src.Simulated(), "events", len(p.log.Events))
			results <- true
		}()
	}
	for range s.logs {
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
