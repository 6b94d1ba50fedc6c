package runtimelog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
)

// Extender is the hardware a runtime log's register lives in: the
// hwsource.Extender of the log's kind.
type Extender interface {
	// Extend extends each digest into register index of its algorithm's
	// bank. An error leaves it unknown whether the extend happened.
	Extend(ctx context.Context, index uint32, digests []eventlog.Digest) error
	// Registers reads the live registers.
	Registers(ctx context.Context) (eventlog.Bank, error)
	// BootID names the registers' current power cycle.
	BootID(ctx context.Context) (string, error)
}

// RegisterIndex is the register runtime events of kind go to: RTMR3 (CC MR
// index 4) on TDX, PCR 23 (the PC Client "application support" PCR) on a
// TPM. Firmware measures into neither.
func RegisterIndex(k eventlog.Kind) uint32 {
	if k == eventlog.TDX {
		return 4
	}
	return 23
}

// Limits bound what containers may record.
type Limits struct {
	// MaxEvents and MaxBytes bound each container's events: their number
	// and the sum of their data sizes.
	MaxEvents int
	MaxBytes  int64
	// MaxLogBytes bounds the journal as a whole (every container's events
	// with their attribution): it is kept in memory, and every event stays
	// in it until the node reboots, since the register holds them all.
	MaxLogBytes int64
}

// Log is one kind's runtime log as a server keeps it: the journal in the
// state directory, kept in step with the live register, and, in memory,
// the platform log with the runtime events appended and each container's
// own log.
//
// Recording is serialized (mu): the order of records in the journal must be
// the order of extends in the register. Readers never take mu: they load the
// immutable View, which a record replaces.
type Log struct {
	ext    Extender
	kind   eventlog.Kind
	index  uint32
	dir    *Dir
	limits Limits
	log    *slog.Logger

	view atomic.Pointer[View]

	mu      sync.Mutex
	journal *Journal
	records []Record // confirmed: in the journal and the register
	// pending is a record in the journal whose extend could not be
	// confirmed (the registers were unreadable after a failed extend). It
	// is resolved, by the rule Open uses at start, before the next record.
	pending *Record
	boot    *eventlog.Log
	raw     []byte // boot log followed by the confirmed records' events
	closed  bool

	// keys finds a record by its container and idempotency key: every
	// keyed record in the journal, confirmed or pending. It holds no more
	// than the journal (Limits.MaxLogBytes) holds: one entry per keyed
	// record, whose key the journal stores too. Written under mu and
	// keysMu; read under either (keysMu alone: KeyUsed, from a request of
	// another kind).
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

// New returns the runtime log of kind, in dir, extending ext's register;
// Open loads it.
func New(dir *Dir, kind eventlog.Kind, ext Extender, limits Limits, logger *slog.Logger) *Log {
	return &Log{ext: ext, kind: kind, index: RegisterIndex(kind), dir: dir, limits: limits, log: logger}
}

// View is what readers see of a runtime log at one moment. Immutable: a
// record publishes a new one.
type View struct {
	// Platform is the boot log followed by every confirmed record's event:
	// its replay gives the live register. nil before Open.
	Platform *eventlog.Log
	// Records counts the runtime events in Platform: the platform log's
	// generation.
	Records int
	// Disabled says why events cannot be recorded; nil when they can.
	Disabled error
	// Journal is the journal's path; "" when it could not be opened.
	Journal string
	// JournalBytes is the journal's size when the view was published: what
	// Limits.MaxLogBytes bounds.
	JournalBytes int64

	kind eventlog.Kind
	// header is the boot log's Spec ID header alone: the log of a
	// container with no events yet. nil before the boot log is read, and
	// for a legacy boot log, which has no Spec ID header.
	header *eventlog.Log
	// containers are each container's own log: the boot log's Spec ID
	// header and the container's events, numbered 1..n.
	containers map[string]*containerLog
}

type containerLog struct {
	log   *eventlog.Log
	bytes int64 // sum of the events' data sizes
}

// Container returns the log of container id's own events: the boot log's
// Spec ID header and its events, numbered 1..n; the header alone when it
// has none. An *UnavailableError when there is no log to give.
func (v *View) Container(id string) (*eventlog.Log, error) {
	if c := v.containers[id]; c != nil {
		return c.log, nil
	}
	if v.header == nil {
		why := v.Disabled
		if why == nil {
			why = errNotOpen
		}
		return nil, &UnavailableError{Kind: v.kind, Err: why}
	}
	return v.header, nil
}

var errNotOpen = errors.New("the runtime log is not open yet")

// View returns what readers see of the log now.
func (rt *Log) View() *View {
	if v := rt.view.Load(); v != nil {
		return v
	}
	return &View{Disabled: errNotOpen, kind: rt.kind}
}

// Hold calls f with the view while no record is in progress, so that the
// registers f reads agree with the view's platform log: a record's extend
// is never seen without its event. (A record whose extend could not be
// confirmed is still pending, and may be in the register alone.) f must
// not record.
func (rt *Log) Hold(f func(*View)) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	f(rt.View())
}

// disable publishes why recording is off; what was recorded stays readable.
func (rt *Log) disable(err error) {
	v := *rt.View()
	v.Disabled = err
	rt.view.Store(&v)
	rt.log.Error("container-level events disabled", "kind", rt.kind.String(), "err", err)
}

// Open loads the journal of the current boot for boot, the boot log just
// read, checks it against the live register, finishes the extend of a
// record a crash interrupted, and publishes the platform log with the
// runtime events appended. Problems disable recording but never the
// platform log: the View returned serves the boot log with whatever
// runtime events could be loaded.
func (rt *Log) Open(ctx context.Context, boot *eventlog.Log) *View {
	// Whoever's request opens the log, its going away must not cut the
	// check short: a failed open disables recording until a restart.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	rt.mu.Lock()
	defer rt.mu.Unlock()
	rt.boot, rt.raw = boot, boot.Raw
	v := *rt.View()
	v.Platform = boot
	rt.view.Store(&v)
	if rt.closed {
		// The first read came as the server stopped (a health check the
		// stop did not wait for): a journal opened now would stay open.
		return rt.View()
	}
	if !boot.Agile() {
		rt.disable(errors.New("the boot log is a legacy SHA1-only log (no Spec ID event), which runtime events cannot extend"))
		return rt.View()
	}
	header, err := eventlog.Parse(boot.Header.Raw)
	if err != nil {
		rt.disable(fmt.Errorf("the boot log's header alone: %w", err))
		return rt.View()
	}
	rt.view.Store(&View{Platform: boot, kind: rt.kind, header: header, containers: map[string]*containerLog{}})
	bootID, err := rt.ext.BootID(ctx)
	if err != nil {
		rt.disable(fmt.Errorf("cannot tell which boot the registers belong to: %w", err))
		return rt.View()
	}
	j, op, err := rt.dir.Open(rt.kind, bootID)
	if err != nil {
		rt.disable(err)
		return rt.View()
	}
	rt.journal = j
	rt.view.Store(&View{Platform: boot, Journal: j.Path(), JournalBytes: j.Size(), kind: rt.kind, header: header, containers: map[string]*containerLog{}})
	if op.SetAside != "" {
		rt.log.Info("runtime log of an earlier boot set aside", "kind", rt.kind.String(), "path", op.SetAside)
	}
	if op.MigratedFrom != 0 {
		rt.log.Info("runtime log rewritten in the current format", "kind", rt.kind.String(), "path", j.Path(), "from_version", op.MigratedFrom, "records", len(op.Records))
	}
	rt.indexKeys(op.Records)
	if op.Damaged != nil {
		rt.repairTail(ctx, op)
		return rt.View()
	}
	records := op.Records
	var last *Record
	if n := len(records); n > 0 {
		last = &records[n-1]
		records = records[:n-1]
	}
	if err := rt.confirm(records); err != nil {
		rt.disable(&CorruptError{Path: j.Path(), Reason: err.Error()})
		return rt.View()
	}
	if last != nil {
		rt.pending = last
		if err := rt.resolvePending(ctx); err != nil {
			// The log cannot be squared with the register: recording stops,
			// and the journal is served as it stands, since every record
			// but the last was extended, and the last may have been.
			rt.pending = nil
			if cerr := rt.confirm([]Record{*last}); cerr != nil {
				err = &CorruptError{Path: j.Path(), Reason: cerr.Error()}
			}
			rt.disable(fmt.Errorf("%w (record %d, the last in the runtime log, may or may not have been extended)", err, last.Seq))
			return rt.View()
		}
	} else if err := rt.check(ctx); err != nil {
		rt.disable(err)
		return rt.View()
	}
	rt.ready()
	return rt.View()
}

func (rt *Log) ready() {
	rt.log.Info("runtime log ready", "kind", rt.kind.String(), "register", rt.kind.RegisterName(rt.index), "journal", rt.journal.Path(), "events", len(rt.records), "containers", len(rt.View().containers))
}

// repairTail settles the damaged last record Open found, with the live
// register: cut off when the register shows it was never extended, else
// reported as DATA_LOSS with the file kept as it is and recording off. The
// intact records are served either way. mu is held.
func (rt *Log) repairTail(ctx context.Context, op Opened) {
	d, j := op.Damaged, rt.journal
	serve := func(why error) {
		if err := rt.confirm(op.Records); err != nil {
			why = fmt.Errorf("%w; and the records before it do not make a valid log: %v", why, err)
		}
		rt.disable(why)
	}
	live, err := rt.ext.Registers(ctx)
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
		serve(&CorruptError{Path: j.Path(), Reason: err.Error()})
		return
	}
	if err := j.RepairTail(full, rt.index, live); err != nil {
		serve(err)
		return
	}
	rt.log.Warn("runtime log: cut off a last record cut short by a crash; the register shows it was never extended",
		"kind", rt.kind.String(), "record", d.Record, "offset", d.Offset, "bytes", d.Bytes, "damage", d.Reason, "journal", j.Path())
	if err := rt.confirm(op.Records); err != nil {
		rt.disable(&CorruptError{Path: j.Path(), Reason: err.Error()})
		return
	}
	rt.ready()
}

// indexKeys adds the keyed records among records, the journal's from its
// first, to keys. mu is held.
func (rt *Log) indexKeys(records []Record) {
	own := map[string]int{}
	for i := range records {
		r := &records[i]
		own[r.ContainerID]++
		if r.Key != "" {
			rt.addKey(r, own[r.ContainerID])
		}
	}
}

func (rt *Log) addKey(r *Record, own int) {
	rt.keysMu.Lock()
	defer rt.keysMu.Unlock()
	if rt.keys == nil {
		rt.keys = map[recordKey]keyedRecord{}
	}
	rt.keys[recordKey{r.ContainerID, r.Key}] = keyedRecord{seq: r.Seq, own: own}
}

func (rt *Log) dropKey(r *Record) {
	rt.keysMu.Lock()
	defer rt.keysMu.Unlock()
	delete(rt.keys, recordKey{r.ContainerID, r.Key})
}

func (rt *Log) lookupKey(container, key string) (keyedRecord, bool) {
	rt.keysMu.RLock()
	defer rt.keysMu.RUnlock()
	k, ok := rt.keys[recordKey{container, key}]
	return k, ok
}

// KeyUsed reports whether container recorded an event under key, and that
// event's number in the container's log: a caller that records into logs
// of several kinds keeps one key to one event across them.
func (rt *Log) KeyUsed(container, key string) (event int, used bool) {
	k, ok := rt.lookupKey(container, key)
	return k.own, ok
}

// Close closes the journal. A record that comes in after is refused.
func (rt *Log) Close() {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	rt.closed = true
	v := *rt.View()
	v.Disabled = errors.New("the server is stopping")
	rt.view.Store(&v)
	if rt.journal != nil {
		rt.journal.Close()
		rt.journal = nil
	}
}

// check compares the live register with the confirmed records.
func (rt *Log) check(ctx context.Context) error {
	live, err := rt.ext.Registers(ctx)
	if err != nil {
		return fmt.Errorf("cannot check the runtime log against the live %s: %w", rt.kind.RegisterName(rt.index), err)
	}
	l, err := eventlog.Parse(rt.raw)
	if err != nil {
		return err
	}
	_, err = Reconcile(l, rt.kind, rt.index, len(rt.records), live)
	return err
}

// resolvePending settles the record appended last, whose extend may not
// have happened, by what the live register holds: the extend happened
// (confirm it), or it did not (extend it now, then confirm it). Anything else
// is an error. mu is held.
func (rt *Log) resolvePending(ctx context.Context) error {
	p := rt.pending
	live, err := rt.ext.Registers(ctx)
	if err != nil {
		return fmt.Errorf("record %d of the runtime log may not be in %s yet, and the register cannot be read to find out: %w", p.Seq, rt.kind.RegisterName(rt.index), err)
	}
	with := append(bytes.Clone(rt.raw), p.Event...)
	l, err := eventlog.Parse(with)
	if err != nil {
		return &CorruptError{Path: rt.journal.Path(), Reason: fmt.Sprintf("record %d is not a valid event of this log: %v", p.Seq, err)}
	}
	verdict, err := Reconcile(l, rt.kind, rt.index, len(rt.records)+1, live)
	if err != nil {
		return err
	}
	if verdict == LastNotExtended {
		ev := &l.Events[len(l.Events)-1]
		if err := rt.ext.Extend(ctx, rt.index, ev.Digests); err != nil {
			return fmt.Errorf("extending %s with record %d of the runtime log, which a crash or a failed extend left out: %w", rt.kind.RegisterName(rt.index), p.Seq, err)
		}
		rt.log.Warn("runtime log: extended the register with a record the last run appended but did not extend", "kind", rt.kind.String(), "record", p.Seq, "container", p.ContainerID)
		reg := rt.kind.RegisterName(rt.index)
		live, err = rt.ext.Registers(ctx)
		if err != nil {
			return fmt.Errorf("reading %s after extending it with record %d of the runtime log: %w", reg, p.Seq, err)
		}
		v, err := Reconcile(l, rt.kind, rt.index, len(rt.records)+1, live)
		if err != nil {
			return fmt.Errorf("after extending %s with record %d of the runtime log: %w", reg, p.Seq, err)
		}
		if v != InSync {
			return fmt.Errorf("after extending %s with record %d of the runtime log, the register still holds the value without it: the extend did not take effect", reg, p.Seq)
		}
	}
	rt.pending = nil
	return rt.confirm([]Record{*p})
}

// confirm adds records that are in both the journal and the register to the
// logs readers see, and publishes them. mu is held.
func (rt *Log) confirm(records []Record) error {
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
	old := rt.View()
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
	v.Platform, v.Records, v.JournalBytes = l, len(rt.records), rt.journal.Size()
	rt.view.Store(&v)
	return nil
}
