package service

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"github.com/ccnp-eventlog/ccnp-eventlog/hwsource"
	"github.com/ccnp-eventlog/ccnp-eventlog/runtimelog"
)

// RuntimeOptions configure container-level (SAAS) event logs.
type RuntimeOptions struct {
	// StateDir holds the runtime logs, which must outlive the server (a
	// host directory); "" turns container-level events off.
	StateDir string
	// ProcRoot is the proc filesystem callers' cgroups are read from:
	// "/proc" when empty. The server must see callers' pids in it, so in a
	// pod it needs the host's PID namespace.
	ProcRoot string
	// MaxEvents and MaxBytes bound each container's events: their number
	// and the sum of their data sizes.
	MaxEvents int
	MaxBytes  int64
	// MaxEventSize bounds the data of one event.
	MaxEventSize int
	// MaxLogBytes bounds a category's runtime log as a whole (the journal,
	// every container's events with their attribution): it is kept in
	// memory, and every event stays in it until the node reboots, since
	// the register holds them all.
	MaxLogBytes int64
	// OutputBytes bounds the per-container output directories together;
	// their files live as long as the output directory's (Options.Limits).
	OutputBytes int64
	// CrashPoint is for crash-recovery tests only: "after-append" kills the
	// server (SIGKILL) once a record is durable in the runtime log but
	// before the register is extended; "after-extend" once both are done,
	// before the reply. Empty in production.
	CrashPoint string
}

// Runtime defaults, for callers that set none.
const (
	DefaultMaxEvents    = 1024
	DefaultMaxBytes     = 1 << 20
	DefaultMaxEventSize = 64 << 10
	DefaultMaxLogBytes  = 16 << 20
	DefaultOutputBytes  = 16 << 20
)

func (o *RuntimeOptions) setDefaults() error {
	o.ProcRoot = cmp.Or(o.ProcRoot, "/proc")
	o.MaxEvents = cmp.Or(o.MaxEvents, DefaultMaxEvents)
	o.MaxBytes = cmp.Or(o.MaxBytes, DefaultMaxBytes)
	o.MaxEventSize = cmp.Or(o.MaxEventSize, DefaultMaxEventSize)
	o.MaxLogBytes = cmp.Or(o.MaxLogBytes, DefaultMaxLogBytes)
	o.OutputBytes = cmp.Or(o.OutputBytes, DefaultOutputBytes)
	switch {
	case o.MaxEvents < 0 || o.MaxBytes < 0 || o.MaxEventSize < 0 || o.MaxLogBytes < 0 || o.OutputBytes < 0:
		return errors.New("container-level event limits must not be negative")
	case int64(o.MaxEventSize) > o.MaxBytes:
		return fmt.Errorf("the largest event (%d bytes) exceeds what a container may record in all (%d bytes)", o.MaxEventSize, o.MaxBytes)
	case o.MaxBytes > o.MaxLogBytes:
		return fmt.Errorf("what one container may record (%d bytes) exceeds the whole runtime log (%d bytes)", o.MaxBytes, o.MaxLogBytes)
	}
	switch o.CrashPoint {
	case "", crashAfterAppend, crashAfterExtend:
	default:
		return fmt.Errorf("unknown crash point %q (after-append or after-extend)", o.CrashPoint)
	}
	return nil
}

const (
	crashAfterAppend = "after-append"
	crashAfterExtend = "after-extend"
)

// runtimeRegister is the register container-level events go to: RTMR3 (CC
// MR index 4) on TDX, PCR 23 (the PC Client "application support" PCR) on a
// TPM. Firmware measures into neither.
func runtimeRegister(k eventlog.Kind) uint32 {
	if k == eventlog.TDX {
		return 4
	}
	return 23
}

// runtimeLog is one category's container-level events: the journal in the
// state directory and, in memory, the platform log with them appended and
// each container's own log.
//
// Recording is serialized (mu): the order of records in the journal must be
// the order of extends in the register. Readers never take mu: they load the
// immutable view, which a record replaces.
type runtimeLog struct {
	src   hwsource.Extender
	kind  eventlog.Kind
	index uint32
	dir   *runtimelog.Dir
	opts  *RuntimeOptions
	log   *slog.Logger
	// paas is where the platform log is published: the category's logCache.
	paas *atomic.Pointer[parsedLog]

	view atomic.Pointer[runtimeView]

	mu      sync.Mutex
	journal *runtimelog.Journal
	records []runtimelog.Record // confirmed: in the journal and the register
	// pending is a record in the journal whose extend could not be
	// confirmed (the registers were unreadable after a failed extend). It
	// is resolved, by the rule Open uses at start, before the next record.
	pending *runtimelog.Record
	boot    *parsedLog
	raw     []byte // boot log followed by the confirmed records' events
	closed  bool

	// keys finds a record by its container and idempotency key: every
	// keyed record in the journal, confirmed or pending. It holds no more
	// than the journal (--runtime-max-bytes) holds: one entry per keyed
	// record, whose key the journal stores too. Written under mu and
	// keysMu; read under either (keysMu alone: another category checking
	// that a key is not used twice).
	keysMu sync.RWMutex
	keys   map[recordKey]keyedRecord
}

// recordKey scopes an idempotency key to the container that chose it: one
// container can neither find nor collide with another's keys.
type recordKey struct{ container, key string }

type keyedRecord struct {
	seq uint64 // in the journal
	own int    // the event's number in its container's log
}

// runtimeView is what readers see of a runtime log. Immutable.
type runtimeView struct {
	// disabled says why events cannot be recorded; nil when they can.
	disabled error
	// containers are each container's own log: the boot log's Spec ID
	// header and the container's events, numbered 1..n.
	containers map[string]*containerLog
	// header is the boot log's Spec ID header alone: the log of a
	// container with no events yet. nil before the boot log is read, and
	// for a legacy boot log, which has no Spec ID header.
	header  *eventlog.Log
	journal string
}

type containerLog struct {
	log   *eventlog.Log
	bytes int64 // sum of the events' data sizes
}

func (rt *runtimeLog) current() *runtimeView {
	if v := rt.view.Load(); v != nil {
		return v
	}
	return &runtimeView{disabled: errors.New("the runtime log is not open yet")}
}

// disable publishes why recording is off; what was recorded stays readable.
func (rt *runtimeLog) disable(err error) {
	v := *rt.current()
	v.disabled = err
	rt.view.Store(&v)
	rt.log.Error("container-level events disabled", "kind", rt.kind.String(), "err", err)
}

// open loads the journal of the current boot for the boot log just read,
// checks it against the live register, finishes the extend of a record a
// crash interrupted, and publishes and returns the platform log with the
// runtime events appended. Problems disable recording but never the
// platform log: the boot log is returned with whatever runtime events could
// be loaded.
func (rt *runtimeLog) open(ctx context.Context, boot *parsedLog) *parsedLog {
	// Whoever's request opens the log, its going away must not cut the
	// check short: a failed open disables recording until a restart.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	rt.mu.Lock()
	defer rt.mu.Unlock()
	rt.boot = boot
	rt.raw = boot.log.Raw
	if rt.closed {
		// The first read came as the server stopped (a health check the
		// stop did not wait for): a journal opened now would stay open.
		return rt.published()
	}
	if !boot.log.Agile() {
		rt.disable(errors.New("the boot log is a legacy SHA1-only log (no Spec ID event), which runtime events cannot extend"))
		return rt.published()
	}
	header, err := eventlog.Parse(boot.log.Header.Raw)
	if err != nil {
		rt.disable(fmt.Errorf("the boot log's header alone: %w", err))
		return rt.published()
	}
	rt.view.Store(&runtimeView{containers: map[string]*containerLog{}, header: header})
	bootID, err := rt.src.BootID(ctx)
	if err != nil {
		rt.disable(fmt.Errorf("cannot tell which boot the registers belong to: %w", err))
		return rt.published()
	}
	j, op, err := rt.dir.Open(rt.kind, bootID)
	if err != nil {
		rt.disable(err)
		return rt.published()
	}
	rt.journal = j
	rt.view.Store(&runtimeView{containers: map[string]*containerLog{}, header: header, journal: j.Path()})
	if op.SetAside != "" {
		rt.log.Info("runtime log of an earlier boot set aside", "kind", rt.kind.String(), "path", op.SetAside)
	}
	if op.MigratedFrom != 0 {
		rt.log.Info("runtime log rewritten in the current format", "kind", rt.kind.String(), "path", j.Path(), "from_version", op.MigratedFrom, "records", len(op.Records))
	}
	rt.indexKeys(op.Records)
	if op.Damaged != nil {
		rt.repairTail(ctx, op)
		return rt.published()
	}
	records := op.Records
	var last *runtimelog.Record
	if n := len(records); n > 0 {
		last = &records[n-1]
		records = records[:n-1]
	}
	if err := rt.confirm(records); err != nil {
		rt.disable(&runtimelog.CorruptError{Path: j.Path(), Reason: err.Error()})
		return rt.published()
	}
	if last != nil {
		rt.pending = last
		if err := rt.resolvePending(ctx); err != nil {
			// The log cannot be squared with the register: recording stops,
			// and the journal is served as it stands, since every record
			// but the last was extended, and the last may have been.
			rt.pending = nil
			if cerr := rt.confirm([]runtimelog.Record{*last}); cerr != nil {
				err = &runtimelog.CorruptError{Path: j.Path(), Reason: cerr.Error()}
			}
			rt.disable(fmt.Errorf("%w (record %d, the last in the runtime log, may or may not have been extended)", err, last.Seq))
			return rt.published()
		}
	} else if err := rt.check(ctx); err != nil {
		rt.disable(err)
		return rt.published()
	}
	rt.log.Info("runtime log ready", "kind", rt.kind.String(), "register", rt.kind.RegisterName(rt.index), "journal", j.Path(), "events", len(rt.records), "containers", len(rt.current().containers))
	return rt.published()
}

// repairTail settles the damaged last record Open found, with the live
// register: cut off when the register shows it was never extended, else
// reported as DATA_LOSS with the file kept as it is and recording off. The
// intact records are served either way. mu is held.
func (rt *runtimeLog) repairTail(ctx context.Context, op runtimelog.Opened) {
	d, j := op.Damaged, rt.journal
	serve := func(why error) {
		if err := rt.confirm(op.Records); err != nil {
			why = fmt.Errorf("%w; and the records before it do not make a valid log: %v", why, err)
		}
		rt.disable(why)
	}
	live, err := rt.src.Registers(ctx)
	if err != nil {
		serve(fmt.Errorf("runtime log %s ends in a damaged record %d (byte %d, %d bytes: %s), and the live %s cannot be read to tell whether it was extended (%w); the file is kept as it is",
			j.Path(), d.Record, d.Offset, d.Bytes, d.Reason, rt.kind.RegisterName(rt.index), err))
		return
	}
	raw := bytes.Clone(rt.raw)
	for _, r := range op.Records {
		raw = append(raw, r.Event...)
	}
	full, err := eventlog.Parse(raw)
	if err != nil {
		serve(&runtimelog.CorruptError{Path: j.Path(), Reason: err.Error()})
		return
	}
	if err := j.RepairTail(full, rt.index, live); err != nil {
		serve(err)
		return
	}
	rt.log.Warn("runtime log: cut off a last record cut short by a crash; the register shows it was never extended",
		"kind", rt.kind.String(), "record", d.Record, "offset", d.Offset, "bytes", d.Bytes, "damage", d.Reason, "journal", j.Path())
	if err := rt.confirm(op.Records); err != nil {
		rt.disable(&runtimelog.CorruptError{Path: j.Path(), Reason: err.Error()})
		return
	}
	rt.log.Info("runtime log ready", "kind", rt.kind.String(), "register", rt.kind.RegisterName(rt.index), "journal", j.Path(), "events", len(rt.records), "containers", len(rt.current().containers))
}

// indexKeys adds the keyed records among records, the journal's from its
// first, to keys. mu is held.
func (rt *runtimeLog) indexKeys(records []runtimelog.Record) {
	own := map[string]int{}
	for i := range records {
		r := &records[i]
		own[r.ContainerID]++
		if r.Key != "" {
			rt.addKey(r, own[r.ContainerID])
		}
	}
}

func (rt *runtimeLog) addKey(r *runtimelog.Record, own int) {
	rt.keysMu.Lock()
	defer rt.keysMu.Unlock()
	if rt.keys == nil {
		rt.keys = map[recordKey]keyedRecord{}
	}
	rt.keys[recordKey{r.ContainerID, r.Key}] = keyedRecord{seq: r.Seq, own: own}
}

func (rt *runtimeLog) dropKey(r *runtimelog.Record) {
	rt.keysMu.Lock()
	defer rt.keysMu.Unlock()
	delete(rt.keys, recordKey{r.ContainerID, r.Key})
}

// lookupKey finds the record container recorded under key.
func (rt *runtimeLog) lookupKey(container, key string) (keyedRecord, bool) {
	rt.keysMu.RLock()
	defer rt.keysMu.RUnlock()
	k, ok := rt.keys[recordKey{container, key}]
	return k, ok
}

// close closes the journal. The gRPC server is stopped first; a record
// that comes in anyway is refused.
func (rt *runtimeLog) close() {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	rt.closed = true
	v := *rt.current()
	v.disabled = errors.New("the server is stopping")
	rt.view.Store(&v)
	if rt.journal != nil {
		rt.journal.Close()
		rt.journal = nil
	}
}

// published returns the platform log readers see, after publishing the boot
// log alone if open confirmed no record. mu is held: records publish under
// it too, so this cannot replace a log with a record's event by an older one.
func (rt *runtimeLog) published() *parsedLog {
	if p := rt.paas.Load(); p != nil {
		return p
	}
	rt.paas.Store(rt.boot)
	return rt.boot
}

// check compares the live register with the confirmed records.
func (rt *runtimeLog) check(ctx context.Context) error {
	live, err := rt.src.Registers(ctx)
	if err != nil {
		return fmt.Errorf("cannot check the runtime log against the live %s: %w", rt.kind.RegisterName(rt.index), err)
	}
	l, err := eventlog.Parse(rt.raw)
	if err != nil {
		return err
	}
	if _, err := runtimelog.Reconcile(l, rt.kind, rt.index, len(rt.records), live); err != nil {
		return err
	}
	return nil
}

// resolvePending settles the record appended last, whose extend may not
// have happened, by what the live register holds: the extend happened
// (confirm it), or it did not (extend it now, then confirm it). Anything else
// is an error. mu is held.
func (rt *runtimeLog) resolvePending(ctx context.Context) error {
	p := rt.pending
	live, err := rt.src.Registers(ctx)
	if err != nil {
		return fmt.Errorf("record %d of the runtime log may not be in %s yet, and the register cannot be read to find out: %w", p.Seq, rt.kind.RegisterName(rt.index), err)
	}
	with := append(bytes.Clone(rt.raw), p.Event...)
	l, err := eventlog.Parse(with)
	if err != nil {
		return &runtimelog.CorruptError{Path: rt.journal.Path(), Reason: fmt.Sprintf("record %d is not a valid event of this log: %v", p.Seq, err)}
	}
	verdict, err := runtimelog.Reconcile(l, rt.kind, rt.index, len(rt.records)+1, live)
	if err != nil {
		return err
	}
	if verdict == runtimelog.LastNotExtended {
		ev := &l.Events[len(l.Events)-1]
		if err := rt.src.Extend(ctx, rt.index, ev.Digests); err != nil {
			return fmt.Errorf("extending %s with record %d of the runtime log, which a crash or a failed extend left out: %w", rt.kind.RegisterName(rt.index), p.Seq, err)
		}
		rt.log.Warn("runtime log: extended the register with a record the last run appended but did not extend", "kind", rt.kind.String(), "record", p.Seq, "container", p.ContainerID)
		reg := rt.kind.RegisterName(rt.index)
		live, err = rt.src.Registers(ctx)
		if err != nil {
			return fmt.Errorf("reading %s after extending it with record %d of the runtime log: %w", reg, p.Seq, err)
		}
		v, err := runtimelog.Reconcile(l, rt.kind, rt.index, len(rt.records)+1, live)
		if err != nil {
			return fmt.Errorf("after extending %s with record %d of the runtime log: %w", reg, p.Seq, err)
		}
		if v != runtimelog.InSync {
			return fmt.Errorf("after extending %s with record %d of the runtime log, the register still holds the value without it: the extend did not take effect", reg, p.Seq)
		}
	}
	rt.pending = nil
	return rt.confirm([]runtimelog.Record{*p})
}

// confirm adds records that are in both the journal and the register to the
// logs readers see, and publishes them. mu is held.
func (rt *runtimeLog) confirm(records []runtimelog.Record) error {
	if len(records) == 0 {
		return nil
	}
	raw := rt.raw
	for _, r := range records {
		raw = append(raw, r.Event...)
	}
	l, err := eventlog.Parse(raw)
	if err != nil {
		return err
	}
	old := rt.current()
	v := *old
	v.containers = make(map[string]*containerLog, len(old.containers)+1)
	for id, c := range old.containers {
		v.containers[id] = c
	}
	// Each container's log takes all its records at once and is parsed
	// once: a restart confirms the whole journal in one call.
	type growth struct {
		raw   []byte
		bytes int64
	}
	grown := map[string]*growth{}
	first := len(l.Events) - len(records)
	for i, r := range records {
		g := grown[r.ContainerID]
		if g == nil {
			g = &growth{raw: bytes.Clone(v.header.Raw)}
			if c := old.containers[r.ContainerID]; c != nil {
				g.raw, g.bytes = bytes.Clone(c.log.Raw), c.bytes
			}
			grown[r.ContainerID] = g
		}
		g.raw = append(g.raw, r.Event...)
		g.bytes += int64(len(l.Events[first+i].Data))
	}
	for id, g := range grown {
		cl, err := eventlog.Parse(g.raw)
		if err != nil {
			return err
		}
		v.containers[id] = &containerLog{log: cl, bytes: g.bytes}
	}
	rt.raw = raw
	rt.records = append(rt.records, records...)
	rt.paas.Store(&parsedLog{log: l, json: rt.boot.json, gen: uint64(len(rt.records)), source: rt.boot.source})
	rt.view.Store(&v)
	return nil
}

// recorded is what record returns to the caller.
type recorded struct {
	event     eventlog.Event // in the platform log
	ownNum    int            // in the container's log
	eventType eventlog.EventType
	// again: the key was recorded before, and this is that outcome.
	again bool
}

// record measures one container-level event: the journal first, durably,
// then the register. A key the container recorded before returns that
// record's outcome instead, and extends nothing.
func (rt *runtimeLog) record(ctx context.Context, c *caller, typ eventlog.EventType, data []byte, key string) (*recorded, error) {
	// The client going away must not cut an append from its extend.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()

	rt.mu.Lock()
	defer rt.mu.Unlock()
	if err := rt.current().disabled; err != nil {
		return nil, &runtimeUnavailableError{kind: rt.kind, err: err}
	}
	id := c.container.ID
	if key != "" {
		if k, ok := rt.lookupKey(id, key); ok {
			return rt.again(ctx, k, typ, data)
		}
	}
	if rt.pending != nil {
		if err := rt.resolvePending(ctx); err != nil {
			return nil, &runtimeUnavailableError{kind: rt.kind, err: err}
		}
	}
	own := rt.current().containers[id]
	events, size := 0, int64(0)
	if own != nil {
		events, size = len(own.log.Events), own.bytes
	}
	switch {
	case events+1 > rt.opts.MaxEvents:
		return nil, &limitError{fmt.Sprintf("container %s has recorded %d events, the most a container may record on this node (--saas-max-events)", short(id), events)}
	case size+int64(len(data)) > rt.opts.MaxBytes:
		return nil, &limitError{fmt.Sprintf("container %s has recorded %d bytes of event data; %d more exceed its %d (--saas-max-bytes)", short(id), size, len(data), rt.opts.MaxBytes)}
	}

	digests := eventlog.Measure(data, rt.boot.log.Algs())
	if len(digests) != len(rt.boot.log.Algs()) {
		return nil, &runtimeUnavailableError{kind: rt.kind, err: fmt.Errorf("the log uses an algorithm this server cannot compute (%v)", rt.boot.log.Algs())}
	}
	rec := runtimelog.Record{
		ContainerID: id,
		UID:         c.uid,
		Time:        time.Now(),
		Key:         key,
		Event:       eventlog.AppendEvent2(nil, rt.index, typ, digests, data),
	}
	before := rt.journal.Size()
	if before+runtimelog.EntrySize(&rec) > rt.opts.MaxLogBytes {
		return nil, &limitError{fmt.Sprintf("the %s runtime log is full: %d of %d bytes (--runtime-max-bytes); it empties when the node reboots", rt.kind, before, rt.opts.MaxLogBytes)}
	}
	if err := rt.journal.Append(&rec); err != nil {
		return nil, &outputError{rt.journal.Path(), err}
	}
	if key != "" {
		rt.addKey(&rec, events+1)
	}
	rt.crash(crashAfterAppend)

	if err := rt.src.Extend(ctx, rt.index, digests); err != nil {
		if err := rt.afterFailedExtend(ctx, &rec, err); err != nil {
			return nil, err
		}
	}
	rt.crash(crashAfterExtend)
	if err := rt.confirm([]runtimelog.Record{rec}); err != nil {
		// The record is in the journal and the register but not a valid
		// event: a bug; the journal is checked again at the next start.
		return nil, fmt.Errorf("record %d (journal bytes %d..%d): %w", rec.Seq, before, rt.journal.Size(), err)
	}
	l := rt.paas.Load().log
	return &recorded{event: l.Events[len(l.Events)-1], ownNum: events + 1, eventType: typ}, nil
}

// afterFailedExtend decides, from the live register, what a failed extend
// means: it happened anyway (nil), it did not (the record is taken back out
// of the journal, and the caller told), or nobody can tell (the record stays
// pending). mu is held.
func (rt *runtimeLog) afterFailedExtend(ctx context.Context, rec *runtimelog.Record, extendErr error) error {
	live, err := rt.src.Registers(ctx)
	if err != nil {
		rt.pending = rec
		return &extendError{uncertain: true, err: fmt.Errorf("extending %s failed (%w), and the register cannot be read to tell whether the extend happened (%v): the event is kept in the runtime log as record %d and will be extended, or found extended, before the next event; do not record it again",
			rt.kind.RegisterName(rt.index), extendErr, err, rec.Seq)}
	}
	l, err := eventlog.Parse(append(bytes.Clone(rt.raw), rec.Event...))
	if err != nil {
		return err
	}
	verdict, err := runtimelog.Reconcile(l, rt.kind, rt.index, len(rt.records)+1, live)
	switch {
	case err != nil:
		rt.pending = rec
		rt.disable(err)
		return &runtimeUnavailableError{kind: rt.kind, err: err}
	case verdict == runtimelog.InSync:
		rt.log.Warn("extend reported an error but the register holds the event", "kind", rt.kind.String(), "record", rec.Seq, "err", extendErr)
		return nil
	}
	if err := rt.journal.UndoLast(); err != nil {
		rt.pending = rec
		rt.disable(err)
		return &runtimeUnavailableError{kind: rt.kind, err: err}
	}
	if rec.Key != "" {
		rt.dropKey(rec)
	}
	return &extendError{err: fmt.Errorf("extending %s: %w (the event was not recorded)", rt.kind.RegisterName(rt.index), extendErr)}
}

// again answers a key recorded before: the first outcome, once the record
// is settled, if the request is the same as the one recorded. A record whose
// extend was left uncertain is settled now (extended if the register lacks
// it, never twice), or the caller is told it is still pending. mu is held.
func (rt *runtimeLog) again(ctx context.Context, k keyedRecord, typ eventlog.EventType, data []byte) (*recorded, error) {
	pending := rt.pending != nil && rt.pending.Seq == k.seq
	var rec *runtimelog.Record
	switch {
	case pending:
		rec = rt.pending
	case k.seq >= 1 && k.seq <= uint64(len(rt.records)):
		rec = &rt.records[k.seq-1]
	default:
		return nil, fmt.Errorf("idempotency key of record %d, which is neither confirmed (%d records) nor pending", k.seq, len(rt.records))
	}
	if want := eventlog.AppendEvent2(nil, rt.index, typ, eventlog.Measure(data, rt.boot.log.Algs()), data); !bytes.Equal(rec.Event, want) {
		return nil, rt.keyConflict(rec, k, typ, data)
	}
	if pending {
		if err := rt.resolvePending(ctx); err != nil {
			var mismatch *runtimelog.MismatchError
			var corrupt *runtimelog.CorruptError
			if errors.As(err, &mismatch) || errors.As(err, &corrupt) {
				return nil, &runtimeUnavailableError{kind: rt.kind, err: err}
			}
			return nil, &extendError{uncertain: true, err: fmt.Errorf("the event under this idempotency key is record %d of the runtime log, and whether it is in %s cannot be settled yet (%w): it is still pending; retry with the same key",
				rec.Seq, rt.kind.RegisterName(rt.index), err)}
		}
	}
	l := rt.paas.Load().log
	ev := l.Events[len(rt.boot.log.Events)+int(k.seq)-1]
	return &recorded{event: ev, ownNum: k.own, eventType: ev.Type, again: true}, nil
}

// keyConflict says how a request differs from the record its key names,
// without echoing either's data.
func (rt *runtimeLog) keyConflict(rec *runtimelog.Record, k keyedRecord, typ eventlog.EventType, data []byte) error {
	was := "another event"
	if h := rt.current().header; h != nil {
		if l, err := eventlog.Parse(append(bytes.Clone(h.Raw), rec.Event...)); err == nil && len(l.Events) == 1 {
			ev := l.Events[0]
			was = fmt.Sprintf("type %s with %d bytes of data", ev.Type, len(ev.Data))
			if ev.Type == typ && len(ev.Data) == len(data) {
				was += " (other bytes)"
			}
		}
	}
	return &keyConflictError{fmt.Sprintf("this container already recorded event %d under that idempotency key, %s, not type %s with %d bytes of data: a key names one event; use a new key for a new event",
		k.own, was, typ, len(data))}
}

// crash kills the process at the named point, for crash-recovery tests.
func (rt *runtimeLog) crash(point string) {
	if rt.opts.CrashPoint == point {
		rt.log.Warn("crash point reached: killing the server", "point", point)
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal is on its way
	}
}

// short abbreviates a container ID as runtimes print it.
func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
