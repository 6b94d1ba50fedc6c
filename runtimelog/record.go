package runtimelog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

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

// Record measures one event: the journal first, durably, then the
// register. A key the container recorded before returns that record's
// outcome instead, and extends nothing.
//
// Its steps are those a crash may fall between, in order: admit (limits,
// the record built), append (durable), extend, confirm (published to
// readers). A crash after the append leaves a record Open settles.
func (rt *Log) Record(ctx context.Context, req Request) (Recorded, error) {
	// The client going away must not cut an append from its extend.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()

	rt.mu.Lock()
	defer rt.mu.Unlock()
	if err := rt.View().Disabled; err != nil {
		return Recorded{}, &UnavailableError{Kind: rt.kind, Err: err}
	}
	if req.Key != "" {
		if k, ok := rt.lookupKey(req.Container, req.Key); ok {
			return rt.again(ctx, k, req)
		}
	}
	if rt.pending != nil {
		if err := rt.resolvePending(ctx); err != nil {
			return Recorded{}, &UnavailableError{Kind: rt.kind, Err: err}
		}
	}
	rec, digests, own, err := rt.admit(req)
	if err != nil {
		return Recorded{}, err
	}
	before := rt.journal.Size()
	if err := rt.journal.Append(&rec); err != nil {
		return Recorded{}, &WriteError{Path: rt.journal.Path(), Err: err}
	}
	if rec.Key != "" {
		rt.addKey(&rec, own)
	}
	if err := rt.ext.Extend(ctx, rt.index, digests); err != nil {
		if err := rt.afterFailedExtend(ctx, &rec, err); err != nil {
			return Recorded{}, err
		}
	}
	if err := rt.confirm([]Record{rec}); err != nil {
		// The record is in the journal and the register but not a valid
		// event: a bug; the journal is checked again at the next start.
		return Recorded{}, fmt.Errorf("record %d (journal bytes %d..%d): %w", rec.Seq, before, rt.journal.Size(), err)
	}
	l := rt.View().Platform
	return Recorded{Event: l.Events[len(l.Events)-1], Own: own}, nil
}

// admit checks req against the limits and makes its record, the digests
// to extend, and its number in its container's log. mu is held.
func (rt *Log) admit(req Request) (rec Record, digests []eventlog.Digest, own int, err error) {
	id := req.Container
	events, size := 0, int64(0)
	if c := rt.View().containers[id]; c != nil {
		events, size = len(c.log.Events), c.bytes
	}
	short := id[:min(len(id), 12)] // as runtimes print container IDs
	switch {
	case events+1 > rt.limits.MaxEvents:
		return rec, nil, 0, &LimitError{Reason: fmt.Sprintf("container %s has recorded %d events, the most a container may record on this node (--saas-max-events)", short, events)}
	case size+int64(len(req.Data)) > rt.limits.MaxBytes:
		return rec, nil, 0, &LimitError{Reason: fmt.Sprintf("container %s has recorded %d bytes of event data; %d more exceed its %d (--saas-max-bytes)", short, size, len(req.Data), rt.limits.MaxBytes)}
	}
	algs := rt.boot.Algs()
	digests = eventlog.Measure(req.Data, algs)
	if len(digests) != len(algs) {
		return rec, nil, 0, &UnavailableError{Kind: rt.kind, Err: fmt.Errorf("the log uses an algorithm this server cannot compute (%v)", algs)}
	}
	rec = Record{
		ContainerID: id,
		UID:         req.UID,
		Time:        time.Now(),
		Key:         req.Key,
		Event:       eventlog.AppendEvent2(nil, rt.index, req.Type, digests, req.Data),
	}
	if used := rt.journal.Size(); used+EntrySize(&rec) > rt.limits.MaxLogBytes {
		return rec, nil, 0, &LimitError{Reason: fmt.Sprintf("the %s runtime log is full: %d of %d bytes (--runtime-max-bytes); it empties when the node reboots", rt.kind, used, rt.limits.MaxLogBytes)}
	}
	return rec, digests, events + 1, nil
}

// afterFailedExtend decides, from the live register, what a failed extend
// means: it happened anyway (nil), it did not (the record is taken back out
// of the journal, and the caller told), or nobody can tell (the record stays
// pending). mu is held.
func (rt *Log) afterFailedExtend(ctx context.Context, rec *Record, extendErr error) error {
	live, err := rt.ext.Registers(ctx)
	if err != nil {
		rt.pending = rec
		return &ExtendError{Uncertain: true, Err: fmt.Errorf("extending %s failed (%w), and the register cannot be read to tell whether the extend happened (%v): the event is kept in the runtime log as record %d and will be extended, or found extended, before the next event; do not record it again",
			rt.kind.RegisterName(rt.index), extendErr, err, rec.Seq)}
	}
	l, err := eventlog.Parse(append(bytes.Clone(rt.raw), rec.Event...))
	if err != nil {
		return err
	}
	verdict, err := Reconcile(l, rt.kind, rt.index, len(rt.records)+1, live)
	switch {
	case err != nil:
		rt.pending = rec
		rt.disable(err)
		return &UnavailableError{Kind: rt.kind, Err: err}
	case verdict == InSync:
		rt.log.Warn("extend reported an error but the register holds the event", "kind", rt.kind.String(), "record", rec.Seq, "err", extendErr)
		return nil
	}
	if err := rt.journal.UndoLast(); err != nil {
		rt.pending = rec
		rt.disable(err)
		return &UnavailableError{Kind: rt.kind, Err: err}
	}
	if rec.Key != "" {
		rt.dropKey(rec)
	}
	return &ExtendError{Err: fmt.Errorf("extending %s: %w (the event was not recorded)", rt.kind.RegisterName(rt.index), extendErr)}
}

// again answers a key recorded before: the first outcome, once the record
// is settled, if the request is the same as the one recorded. A record whose
// extend was left uncertain is settled now (extended if the register lacks
// it, never twice), or the caller is told it is still pending. mu is held.
func (rt *Log) again(ctx context.Context, k keyedRecord, req Request) (Recorded, error) {
	pending := rt.pending != nil && rt.pending.Seq == k.seq
	var rec *Record
	switch {
	case pending:
		rec = rt.pending
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
