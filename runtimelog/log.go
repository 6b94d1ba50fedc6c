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
// Records are committed in groups, one group at a time (Record): the order
// of records in the journal must be the order of extends in the register.
// Readers never take mu: they load the immutable View, which a group
// replaces.
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
	// pending are the last records in the journal, whose extends could not
	// be confirmed (the registers were unreadable after a failed extend).
	// They are resolved, by the rule Open uses at start, before the next
	// group.
	pending []Record
	boot    *eventlog.Log
	raw     []byte // boot log followed by the confirmed records' events
	closed  bool

	// The group commit (record.go): records admitted wait in queue; one
	// caller at a time commits (committing), and cond wakes the others.
	// Admission counts what is admitted and not yet done (reserved,
	// reservedBytes) besides what is confirmed, and the journal's size as
	// of the last group (journalSize): the journal itself is the
	// committer's while it writes.
	cond          *sync.Cond
	queue         []*waiter
	committing    bool
	holds         int // Holds waiting or running: no group starts meanwhile
	queuedKeys    map[recordKey]bool
	reserved      map[string]reservation
	reservedBytes int64
	journalSize   int64
	nextPending   []Record // set by a committer, published under mu

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

// reservation is what a container's records admitted and not yet done
// will add to its log.
type reservation struct {
	events int
	bytes  int64
}

type keyedRecord struct {
	seq uint64 // in the journal
	own int    // the event's number in its container's log
}

// New returns the runtime log of kind, in dir, extending ext's register;
// Open loads it.
func New(dir *Dir, kind eventlog.Kind, ext Extender, limits Limits, logger *slog.Logger) *Log {
	rt := &Log{ext: ext, kind: kind, index: RegisterIndex(kind), dir: dir, limits: limits, log: logger}
	rt.cond = sync.NewCond(&rt.mu)
	return rt
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
//
// A group being committed is a record in progress: Hold waits for it, and
// no group starts while a Hold waits or runs.
func (rt *Log) Hold(f func(*View)) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	rt.holds++
	defer func() {
		rt.holds--
		rt.cond.Broadcast()
	}()
	for rt.committing {
		rt.cond.Wait()
	}
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
	rt.journal, rt.journalSize = j, j.Size()
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
	rt.settle(ctx, op.Records)
	return rt.View()
}

// settle confirms records, the journal's, against the live register: the
// last group of them may lack their extends (a crash between a group's
// append and its extends), which are done now. mu is held.
func (rt *Log) settle(ctx context.Context, records []Record) {
	if len(records) == 0 {
		if err := rt.check(ctx); err != nil {
			rt.disable(err)
			return
		}
		rt.ready()
		return
	}
	tail := records[max(0, len(records)-maxGroup):]
	if err := rt.confirm(records[:len(records)-len(tail)]); err != nil {
		rt.disable(&CorruptError{Path: rt.journal.Path(), Reason: err.Error()})
		return
	}
	rt.pending = tail
	if err := rt.resolvePending(ctx); err != nil {
		// The log cannot be squared with the register: recording stops,
		// and the journal is served as it stands, since every record but
		// the last group's was extended, and those may have been.
		rt.pending = nil
		if cerr := rt.confirm(tail); cerr != nil {
			err = &CorruptError{Path: rt.journal.Path(), Reason: cerr.Error()}
		}
		rt.disable(fmt.Errorf("%w (%s, the last in the runtime log, may or may not have been extended)", err, seqs(tail[0].Seq, tail[len(tail)-1].Seq)))
		return
	}
	rt.ready()
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
	if err := j.RepairTail(full, rt.index, maxGroup, live); err != nil {
		serve(err)
		return
	}
	rt.log.Warn("runtime log: cut off a last record cut short by a crash; the register shows it was never extended",
		"kind", rt.kind.String(), "record", d.Record, "offset", d.Offset, "bytes", d.Bytes, "damage", d.Reason, "journal", j.Path())
	rt.journalSize = j.Size()
	rt.settle(ctx, op.Records)
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

// Close closes the journal, once the group being committed is done. A
// record that comes in after is refused.
func (rt *Log) Close() {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	for rt.committing {
		rt.cond.Wait()
	}
	rt.closed = true
	v := *rt.View()
	v.Disabled = errors.New("the server is stopping")
	rt.view.Store(&v)
	if rt.journal != nil {
		rt.journal.Close()
		rt.journal = nil
	}
}

// check compares the live register with the boot log, when the journal
// has no records: the register must hold the boot log's replay.
func (rt *Log) check(ctx context.Context) error {
	live, err := rt.ext.Registers(ctx)
	if err != nil {
		return fmt.Errorf("cannot check the runtime log against the live %s: %w", rt.kind.RegisterName(rt.index), err)
	}
	_, err = Reconcile(rt.boot, rt.kind, rt.index, 0, live)
	return err
}

// resolvePending settles the records appended last, whose extends may not
// have happened, by what the live register holds: it lacks the last m of
// them (0 <= m <= all), whose extends are done now, in order, and then all
// are confirmed. Anything else is an error. mu is held, and no group is
// being committed.
func (rt *Log) resolvePending(ctx context.Context) error {
	p := rt.pending
	first, last := p[0].Seq, p[len(p)-1].Seq
	all := seqs(first, last)
	reg := rt.kind.RegisterName(rt.index)
	live, err := rt.ext.Registers(ctx)
	if err != nil {
		return fmt.Errorf("%s of the runtime log may not be in %s yet, and the register cannot be read to find out: %w", all, reg, err)
	}
	with := bytes.Clone(rt.raw)
	for _, r := range p {
		with = append(with, r.Event...)
	}
	l, err := eventlog.Parse(with)
	if err != nil {
		return &CorruptError{Path: rt.journal.Path(), Reason: fmt.Sprintf("%s: not valid events of this log: %v", all, err)}
	}
	records := len(rt.records) + len(p)
	missing, err := Unextended(l, rt.kind, rt.index, records, len(p), live)
	if err != nil {
		return err
	}
	if missing > 0 {
		tail := l.Events[len(l.Events)-len(p):]
		for k := len(p) - missing; k < len(p); k++ {
			if err := rt.ext.Extend(ctx, rt.index, tail[k].Digests); err != nil {
				return fmt.Errorf("extending %s with record %d of the runtime log, which a crash or a failed extend left out: %w", reg, p[k].Seq, err)
			}
			rt.log.Warn("runtime log: extended the register with a record the last run appended but did not extend", "kind", rt.kind.String(), "record", p[k].Seq, "container", p[k].ContainerID)
		}
		done := seqs(last-uint64(missing)+1, last)
		live, err = rt.ext.Registers(ctx)
		if err != nil {
			return fmt.Errorf("reading %s after extending it with %s of the runtime log: %w", reg, done, err)
		}
		again, err := Unextended(l, rt.kind, rt.index, records, len(p), live)
		if err != nil {
			return fmt.Errorf("after extending %s with %s of the runtime log: %w", reg, done, err)
		}
		if again != 0 {
			return fmt.Errorf("after extending %s with %s of the runtime log, the register still lacks %d of them: the extend did not take effect", reg, done, again)
		}
	}
	rt.pending = nil
	return rt.confirm(p)
}

// seqs names the records first..last: "record 5", "records 5..7".
func seqs(first, last uint64) string {
	if first == last {
		return fmt.Sprintf("record %d", first)
	}
	return fmt.Sprintf("records %d..%d", first, last)
}

// confirm adds records that are in both the journal and the register to the
// logs readers see, and publishes them. mu is held.
func (rt *Log) confirm(records []Record) error {
	if len(records) == 0 {
		return nil
	}
	old := rt.View()
	events := make([][]byte, len(records))
	for i := range records {
		events[i] = records[i].Event
	}
	l, err := extendLog(old.Platform, old.header, events)
	if err != nil {
		return err
	}
	v := *old
	v.containers = make(map[string]*containerLog, len(old.containers)+1)
	for id, c := range old.containers {
		v.containers[id] = c
	}
	// Each container's log takes all its records of the group at once.
	mine := map[string][][]byte{}
	var order []string
	for _, r := range records {
		if mine[r.ContainerID] == nil {
			order = append(order, r.ContainerID)
		}
		mine[r.ContainerID] = append(mine[r.ContainerID], r.Event)
	}
	first := len(l.Events) - len(records)
	sizes := map[string]int64{}
	for i, r := range records {
		sizes[r.ContainerID] += int64(len(l.Events[first+i].Data))
	}
	for _, id := range order {
		base, size := v.header, int64(0)
		if c := old.containers[id]; c != nil {
			base, size = c.log, c.bytes
		}
		cl, err := extendLog(base, v.header, mine[id])
		if err != nil {
			return err
		}
		v.containers[id] = &containerLog{log: cl, bytes: size + sizes[id]}
	}
	rt.raw = l.Raw
	rt.records = append(rt.records, records...)
	v.Platform, v.Records, v.JournalBytes = l, len(rt.records), rt.journal.Size()
	rt.view.Store(&v)
	return nil
}

// extendLog returns the log l followed by events (TCG_PCR_EVENT2 records of
// a log with header's Spec ID), parsing only them: l's events are kept as
// they are, so that publishing a group costs what the group holds, not what
// the log does. l is not changed: its Raw and Events are appended to past
// their length, where nothing that holds l looks, and only ever by the one
// committer, from the latest log. Without a header (a legacy log, which
// takes no runtime events) the whole log is parsed again.
func extendLog(l, header *eventlog.Log, events [][]byte) (*eventlog.Log, error) {
	if header == nil {
		raw := bytes.Clone(l.Raw)
		for _, e := range events {
			raw = append(raw, e...)
		}
		return eventlog.Parse(raw)
	}
	tail := bytes.Clone(header.Raw)
	for _, e := range events {
		tail = append(tail, e...)
	}
	t, err := eventlog.Parse(tail)
	if err != nil {
		return nil, err
	}
	if len(t.Events) != len(events) {
		return nil, fmt.Errorf("%d records made %d events", len(events), len(t.Events))
	}
	raw := l.Raw
	base := len(raw)
	for _, e := range events {
		raw = append(raw, e...)
	}
	out := &eventlog.Log{Raw: raw, Header: l.Header, SpecID: l.SpecID, Events: l.Events}
	shift := base - len(header.Raw)
	for _, e := range t.Events {
		e.Num += len(l.Events)
		e.Offset += shift
		data := len(e.Data)
		e.Raw = raw[e.Offset : e.Offset+len(e.Raw) : e.Offset+len(e.Raw)]
		e.Data = e.Raw[len(e.Raw)-data:]
		out.Events = append(out.Events, e)
	}
	return out, nil
}
