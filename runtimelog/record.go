package runtimelog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"slices"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
)

// Request is one event a container asks to record.
type Request struct {
	// Container is the container the event is attributed to, and UID the
	// caller's uid: both are kept in the journal.
	Container string
	UID       uint32
	// Key is the caller's idempotency key, "" for none.
	Key  string
	Type eventlog.EventType
	Data []byte
}

// Recorded is the outcome of a record.
type Recorded struct {
	// Event is the event in the platform log.
	Event eventlog.Event
	// Own is its number in its container's log.
	Own int
	// Again says the key was recorded before, and this is that outcome:
	// nothing was extended now.
	Again bool
}

// maxGroup bounds the records one group commit appends with one fdatasync:
// a crash can leave that many records in the journal and not in the
// register (Unextended), which Open settles by extending them.
const maxGroup = 64

// waiter is one record on its way: admitted, queued, then committed with
// the others of its group by whichever caller commits next.
type waiter struct {
	req     Request
	rec     Record
	digests []eventlog.Digest
	own     int
	done    bool
	result  Recorded
	err     error
}

// Record measures one event: the journal first, durably, then the
// register. A key the container recorded before returns that record's
// outcome instead, and extends nothing.
//
// Its steps are those a crash may fall between, in order: admit (limits,
// the record built), append (durable), extend, confirm (published to
// readers). A crash after the append leaves records Open settles.
//
// Records that arrive while others are being committed wait, and are then
// committed together by one of their callers (group commit): appended with
// one fdatasync, extended one by one in journal order, published at once.
func (rt *Log) Record(ctx context.Context, req Request) (Recorded, error) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	for {
		if err := rt.View().Disabled; err != nil {
			return Recorded{}, &UnavailableError{Kind: rt.kind, Err: err}
		}
		if req.Key == "" {
			break
		}
		if k, ok := rt.lookupKey(req.Container, req.Key); ok {
			if k.seq > uint64(len(rt.records)) && rt.committing {
				// Being committed, or pending while others are: its
				// outcome is known once they are done.
				rt.cond.Wait()
				continue
			}
			// The client going away must not cut a pending record's
			// extend short.
			ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			return rt.again(ctx, k, req)
		}
		if rt.queuedKeys[recordKey{req.Container, req.Key}] {
			rt.cond.Wait() // the same key, queued: its outcome first
			continue
		}
		break
	}
	w, err := rt.admit(req)
	if err != nil {
		return Recorded{}, err
	}
	rt.queue = append(rt.queue, w)
	for !w.done && (rt.committing || rt.holds > 0) {
		rt.cond.Wait()
	}
	if !w.done {
		rt.commitUntil(w)
	}
	return w.result, w.err
}

// commitUntil commits the queue, a group at a time, until w is done. mu is
// held; the disk and the register are written without it.
func (rt *Log) commitUntil(w *waiter) {
	rt.committing = true
	defer func() {
		rt.committing = false
		rt.cond.Broadcast()
	}()
	for !w.done {
		n := min(len(rt.queue), maxGroup)
		group := slices.Clone(rt.queue[:n])
		rt.queue = slices.Delete(rt.queue, 0, n)
		rt.commit(group)
		rt.cond.Broadcast()
	}
}

// commit appends a group, extends its records in order and publishes them.
// mu is held, and released while the disk and the register are written: only
// the committer touches the journal meanwhile, and raw, records and pending
// change only under mu.
func (rt *Log) commit(group []*waiter) {
	// The clients going away must not cut an append from its extend.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	finished := false
	defer func() {
		if !finished { // the goroutine is exiting (a panic): nothing is known
			rt.disable(errors.New("a group of records was cut short"))
			rt.release(group, &UnavailableError{Kind: rt.kind, Err: errors.New("recording was cut short")})
		}
	}()
	fail := func(err error) {
		finished = true
		rt.release(group, err)
	}
	if err := rt.View().Disabled; err != nil {
		fail(&UnavailableError{Kind: rt.kind, Err: err})
		return
	}
	if rt.pending != nil {
		if err := rt.resolvePending(ctx); err != nil {
			fail(&UnavailableError{Kind: rt.kind, Err: err})
			return
		}
	}
	// Each record's number in its container's log: after the confirmed
	// ones, and the group's before it.
	views := rt.View().containers
	counts := map[string]int{}
	records := make([]*Record, len(group))
	for i, w := range group {
		c := w.req.Container
		if counts[c] == 0 && views[c] != nil {
			counts[c] = len(views[c].log.Events)
		}
		counts[c]++
		w.own = counts[c]
		records[i] = &w.rec
	}
	j := rt.journal
	rt.mu.Unlock()
	relocked := false
	defer func() {
		if !relocked {
			rt.mu.Lock()
		}
	}()
	err := j.Append(records...)
	var outcome []error // per record; nil: extended
	if err == nil {
		for _, w := range group {
			if w.rec.Key != "" {
				rt.addKey(&w.rec, w.own)
			}
		}
		outcome = rt.extendGroup(ctx, group)
	}
	rt.mu.Lock()
	relocked = true
	finished = true
	if rt.nextPending != nil {
		rt.pending, rt.nextPending = rt.nextPending, nil
	}
	if err != nil {
		rt.release(group, &WriteError{Path: j.Path(), Err: err})
		return
	}
	rt.journalSize = j.Size()
	n := 0
	for n < len(group) && outcome[n] == nil {
		n++
	}
	confirmed := make([]Record, n)
	for i := range confirmed {
		confirmed[i] = group[i].rec
	}
	if err := rt.confirm(confirmed); err != nil {
		// In the journal and the register but not valid events: a bug;
		// the journal is checked again at the next start.
		rt.release(group, fmt.Errorf("records %d..%d: %w", group[0].rec.Seq, group[len(group)-1].rec.Seq, err))
		return
	}
	l := rt.View().Platform
	for i, w := range group {
		if i < n {
			w.result = Recorded{Event: l.Events[len(rt.boot.Events)+int(w.rec.Seq)-1], Own: w.own}
		} else {
			w.err = outcome[i]
		}
	}
	rt.release(group, nil)
}

// release ends the group's records: each with err, if not nil, and frees
// what they held. mu is held.
func (rt *Log) release(group []*waiter, err error) {
	for _, w := range group {
		if err != nil && w.err == nil && !w.done {
			w.err = err
		}
		w.done = true
		if w.rec.Key != "" {
			delete(rt.queuedKeys, recordKey{w.req.Container, w.rec.Key})
		}
		r := rt.reserved[w.req.Container]
		r.events--
		r.bytes -= int64(len(w.req.Data))
		if r.events == 0 {
			delete(rt.reserved, w.req.Container)
		} else {
			rt.reserved[w.req.Container] = r
		}
		rt.reservedBytes -= EntrySize(&w.rec)
	}
}

// extendGroup extends the group's records into the register in journal
// order, and says what became of each: nil for extended. A failed extend
// decides the fate of its record and every one after it (extendFailed).
// mu is not held.
func (rt *Log) extendGroup(ctx context.Context, group []*waiter) []error {
	outcome := make([]error, len(group))
	for i, w := range group {
		err := rt.ext.Extend(ctx, rt.index, w.digests)
		if err == nil {
			continue
		}
		extended, errs := rt.extendFailed(ctx, group, i, err)
		if extended {
			continue
		}
		copy(outcome[i:], errs)
		break
	}
	return outcome
}

// admit checks req against the limits, counting the records admitted and
// not yet done, makes its record and the digests to extend, and reserves
// room for them. mu is held.
func (rt *Log) admit(req Request) (*waiter, error) {
	id := req.Container
	events, size := 0, int64(0)
	if c := rt.View().containers[id]; c != nil {
		events, size = len(c.log.Events), c.bytes
	}
	r := rt.reserved[id]
	events += r.events
	size += r.bytes
	for i := range rt.pending {
		if rt.pending[i].ContainerID == id {
			events++
			size += int64(len(rt.pendingData(i)))
		}
	}
	short := id[:min(len(id), 12)] // as runtimes print container IDs
	switch {
	case events+1 > rt.limits.MaxEvents:
		return nil, &LimitError{Reason: fmt.Sprintf("container %s has recorded %d events, the most a container may record on this node (--saas-max-events)", short, events)}
	case size+int64(len(req.Data)) > rt.limits.MaxBytes:
		return nil, &LimitError{Reason: fmt.Sprintf("container %s has recorded %d bytes of event data; %d more exceed its %d (--saas-max-bytes)", short, size, len(req.Data), rt.limits.MaxBytes)}
	}
	algs := rt.boot.Algs()
	digests := eventlog.Measure(req.Data, algs)
	if len(digests) != len(algs) {
		return nil, &UnavailableError{Kind: rt.kind, Err: fmt.Errorf("the log uses an algorithm this server cannot compute (%v)", algs)}
	}
	w := &waiter{req: req, digests: digests, rec: Record{
		ContainerID: id,
		UID:         req.UID,
		Time:        time.Now(),
		Key:         req.Key,
		Event:       eventlog.AppendEvent2(nil, rt.index, req.Type, digests, req.Data),
	}}
	if used := rt.journalSize + rt.reservedBytes; used+EntrySize(&w.rec) > rt.limits.MaxLogBytes {
		return nil, &LimitError{Reason: fmt.Sprintf("the %s runtime log is full: %d of %d bytes (--runtime-max-bytes); it empties when the node reboots", rt.kind, used, rt.limits.MaxLogBytes)}
	}
	r.events++
	r.bytes += int64(len(req.Data))
	if rt.reserved == nil {
		rt.reserved = map[string]reservation{}
	}
	rt.reserved[id] = r
	rt.reservedBytes += EntrySize(&w.rec)
	if req.Key != "" {
		if rt.queuedKeys == nil {
			rt.queuedKeys = map[recordKey]bool{}
		}
		rt.queuedKeys[recordKey{id, req.Key}] = true
	}
	return w, nil
}

// pendingData is the data of pending record i's event.
func (rt *Log) pendingData(i int) []byte {
	h := rt.View().header
	if h == nil {
		return nil
	}
	l, err := eventlog.Parse(append(bytes.Clone(h.Raw), rt.pending[i].Event...))
	if err != nil || len(l.Events) != 1 {
		return nil
	}
	return l.Events[0].Data
}

// extendFailed decides, from the live register, what the failed extend of
// group[i] means, for it and the records after it in the group (appended,
// never extended): it happened anyway (extended: go on with the next), it
// did not (the records are taken back out of the journal, and their
// callers told), or nobody can tell (the records stay pending, settled
// before the next group). errs are the callers' errors from i on. mu is
// not held; pending is set by the caller's confirm under it.
func (rt *Log) extendFailed(ctx context.Context, group []*waiter, i int, extendErr error) (extended bool, errs []error) {
	rest := group[i:]
	records := make([]Record, len(rest))
	for k, w := range rest {
		records[k] = w.rec
	}
	all := func(err error) []error {
		errs := make([]error, len(rest))
		for k := range errs {
			errs[k] = err
		}
		return errs
	}
	reg := rt.kind.RegisterName(rt.index)
	keep := func(err error) []error {
		rt.setPending(records)
		return all(err)
	}
	live, err := rt.ext.Registers(ctx)
	if err != nil {
		return false, keep(&ExtendError{Uncertain: true, Err: fmt.Errorf("extending %s failed (%w), and the register cannot be read to tell whether the extend happened (%v): the event is kept in the runtime log as record %d and will be extended, or found extended, before the next event; do not record it again",
			reg, extendErr, err, rest[0].rec.Seq)})
	}
	raw := bytes.Clone(rt.raw)
	for _, w := range group {
		raw = append(raw, w.rec.Event...)
	}
	l, err := eventlog.Parse(raw)
	if err != nil {
		return false, keep(&UnavailableError{Kind: rt.kind, Err: err})
	}
	missing, err := Unextended(l, rt.kind, rt.index, len(rt.records)+len(group), len(rest), live)
	switch {
	case err != nil:
		rt.disable(err)
		return false, keep(&UnavailableError{Kind: rt.kind, Err: err})
	case missing == len(rest)-1:
		rt.log.Warn("extend reported an error but the register holds the event", "kind", rt.kind.String(), "record", rest[0].rec.Seq, "err", extendErr)
		return true, nil
	case missing != len(rest):
		err := fmt.Errorf("after the failed extend of record %d, %s lacks %d of the %d records from it on, which were never extended", rest[0].rec.Seq, reg, missing, len(rest))
		rt.disable(err)
		return false, keep(&UnavailableError{Kind: rt.kind, Err: err})
	}
	if err := rt.journal.UndoFrom(rest[0].rec.Seq); err != nil {
		rt.disable(err)
		return false, keep(&UnavailableError{Kind: rt.kind, Err: err})
	}
	for _, w := range rest {
		if w.rec.Key != "" {
			rt.dropKey(&w.rec)
		}
	}
	errs = all(&ExtendError{Err: fmt.Errorf("extending %s: %w (the event was not recorded: record it again)", reg, fmt.Errorf("%w; it was recorded with others, after one whose extend failed", extendErr))})
	errs[0] = &ExtendError{Err: fmt.Errorf("extending %s: %w (the event was not recorded)", reg, extendErr)}
	return false, errs
}

// setPending keeps records as pending: in the journal, perhaps not in the
// register. It is called without mu by the committer, whose caller
// publishes it under mu.
func (rt *Log) setPending(records []Record) {
	rt.nextPending = records
}

// again answers a key recorded before: the first outcome, once the record
// is settled, if the request is the same as the one recorded. A record whose
// extend was left uncertain is settled now (extended if the register lacks
// it, never twice), or the caller is told it is still pending. mu is held.
func (rt *Log) again(ctx context.Context, k keyedRecord, req Request) (Recorded, error) {
	var rec *Record
	pending := false
	for i := range rt.pending {
		if rt.pending[i].Seq == k.seq {
			rec, pending = &rt.pending[i], true
		}
	}
	switch {
	case pending:
	case k.seq >= 1 && k.seq <= uint64(len(rt.records)):
		rec = &rt.records[k.seq-1]
	default:
		return Recorded{}, fmt.Errorf("idempotency key of record %d, which is neither confirmed (%d records) nor pending", k.seq, len(rt.records))
	}
	if want := eventlog.AppendEvent2(nil, rt.index, req.Type, eventlog.Measure(req.Data, rt.boot.Algs()), req.Data); !bytes.Equal(rec.Event, want) {
		return Recorded{}, rt.keyConflict(rec, k, req)
	}
	if pending {
		if err := rt.resolvePending(ctx); err != nil {
			var mismatch *MismatchError
			var corrupt *CorruptError
			if errors.As(err, &mismatch) || errors.As(err, &corrupt) {
				return Recorded{}, &UnavailableError{Kind: rt.kind, Err: err}
			}
			return Recorded{}, &ExtendError{Uncertain: true, Err: fmt.Errorf("the event under this idempotency key is record %d of the runtime log, and whether it is in %s cannot be settled yet (%w): it is still pending; retry with the same key",
				rec.Seq, rt.kind.RegisterName(rt.index), err)}
		}
	}
	l := rt.View().Platform
	return Recorded{Event: l.Events[len(rt.boot.Events)+int(k.seq)-1], Own: k.own, Again: true}, nil
}

// keyConflict says how a request differs from the record its key names,
// without echoing either's data.
func (rt *Log) keyConflict(rec *Record, k keyedRecord, req Request) error {
	was := "another event"
	if h := rt.View().header; h != nil {
		if l, err := eventlog.Parse(append(bytes.Clone(h.Raw), rec.Event...)); err == nil && len(l.Events) == 1 {
			ev := l.Events[0]
			was = fmt.Sprintf("type %s with %d bytes of data", ev.Type, len(ev.Data))
			if ev.Type == req.Type && len(ev.Data) == len(req.Data) {
				was += " (other bytes)"
			}
		}
	}
	return &KeyConflictError{Reason: fmt.Sprintf("this container already recorded event %d under that idempotency key, %s, not type %s with %d bytes of data: a key names one event; use a new key for a new event",
		k.own, was, req.Type, len(req.Data))}
}
