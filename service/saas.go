package service

import (
	"context"
	"encoding/hex"
	"fmt"
	"hash/fnv"

	"github.com/ccnp-eventlog/ccnp-eventlog/containerid"
	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"github.com/ccnp-eventlog/ccnp-eventlog/outdir"
	eventlogpb "github.com/ccnp-eventlog/ccnp-eventlog/proto"
	"github.com/ccnp-eventlog/ccnp-eventlog/runtimelog"
)

// Container-level events, as callers see them:
//
//   - RecordEvent measures an event for the calling container: the server
//     computes its digests, appends it to the category's runtime log, then
//     extends the runtime register (package runtimelog). Under an
//     idempotency key the container already recorded, it returns that first
//     outcome and extends nothing: a client retries a call that failed with
//     UNAVAILABLE under the same key.
//   - GetEventlog with SAAS returns the calling container's own events, with
//     the boot log's Spec ID header, numbered 1..n, in the same formats and
//     with the same paging as PAAS; PAAS returns the boot log followed by
//     every container's runtime events, so its replay gives the live
//     register.
//
// The caller and its container are told from the socket, never from the
// request (caller.go).
//
// A container's files are private to the calling uid: they go to
// <output-dir>/containers/<dir>/ (an outdir private directory), where the
// files (mode 0400) belong to the caller's uid, and <dir> is a keyed hash of
// the container ID and uid. The containers directory and <dir> belong to the
// server, mode 0711: they can be crossed but not listed, so other
// containers, even under the same uid, can neither list nor compute the path
// (container IDs are no secret: the node and the API server show them), and
// the caller can read its files but not create, rename or remove anything
// there, so the server never meets a symbolic link of a caller's making.
// Giving a file to another uid takes root (or CAP_CHOWN and
// CAP_DAC_OVERRIDE); a server without it serves files only to callers of its
// own uid, and tells the others to ask for inline content, which never
// touches the disk.

// runtimeFor returns the category's runtime log, opened.
func (s *Service) runtimeFor(ctx context.Context, cat eventlogpb.CATEGORY) (*category, error) {
	cache, err := s.logFor(cat)
	if err != nil {
		return nil, err
	}
	if cache.rt == nil {
		return nil, &runtimelog.UnavailableError{Kind: cache.src.Kind(), Err: cache.rtOff}
	}
	if _, err := cache.Log(ctx); err != nil {
		return nil, err
	}
	return cache, nil
}

// RecordEvent implements the Eventlog service.
func (s *Service) RecordEvent(ctx context.Context, req *eventlogpb.RecordEventRequest) (*eventlogpb.RecordEventReply, error) {
	reply, err := s.recordEvent(ctx, req)
	return reply, toStatus(err)
}

func (s *Service) recordEvent(ctx context.Context, req *eventlogpb.RecordEventRequest) (*eventlogpb.RecordEventReply, error) {
	if err := validateCategory(req.EventlogCategory); err != nil {
		return nil, err
	}
	if req.EventlogCategory == imaCategory {
		return nil, errRecordIMA
	}
	typ := eventlog.EventType(req.EventType)
	if typ == 0 {
		typ = eventlog.EvEventTag
	}
	if typ == eventlog.EvNoAction {
		return nil, invalidRequest("event_type 3 (EV_NO_ACTION) is never extended into a register: a runtime event must be measured")
	}
	if len(req.Data) == 0 {
		return nil, invalidRequest("data is empty: there is nothing to measure")
	}
	if len(req.Data) > s.rtOpts.MaxEventSize {
		return nil, &limitError{fmt.Sprintf("event data of %d bytes exceeds the %d a container-level event may hold (--saas-max-event-size): measure a digest of it instead", len(req.Data), s.rtOpts.MaxEventSize)}
	}
	key := req.IdempotencyKey
	if err := validateKey(key); err != nil {
		return nil, err
	}
	c, err := s.identify(ctx)
	if err != nil {
		return nil, err
	}
	cache, err := s.runtimeFor(ctx, req.EventlogCategory)
	if err != nil {
		return nil, err
	}
	if key != "" {
		unlock, err := s.claimKey(ctx, c, req.EventlogCategory, key)
		if err != nil {
			return nil, err
		}
		defer unlock()
	}
	r, err := cache.rt.Record(ctx, runtimelog.Request{Container: c.container.ID, UID: c.uid, Key: key, Type: typ, Data: req.Data})
	if err != nil {
		return nil, err
	}
	reply := &eventlogpb.RecordEventReply{
		EventNum:        uint32(r.Own),
		LogEventNum:     uint32(r.Event.Num),
		Register:        cache.src.Kind().RegisterName(r.Event.Index),
		Index:           r.Event.Index,
		EventType:       uint32(r.Event.Type),
		Digests:         map[string]string{},
		ContainerId:     c.container.ID,
		Simulated:       cache.src.Simulated(),
		AlreadyRecorded: r.Again,
	}
	for _, d := range r.Event.Digests {
		reply.Digests[d.Alg.String()] = hex.EncodeToString(d.Value)
	}
	return reply, nil
}

// MaxKeyLen bounds an idempotency key: room for any UUID, hash or
// timestamped name a client makes, and small next to the event it keys.
const MaxKeyLen = 128

// validateKey checks an idempotency key: printable ASCII without spaces, so
// that it can be logged and quoted as it is.
func validateKey(key string) error {
	if len(key) > MaxKeyLen {
		return invalidRequest("idempotency_key of %d bytes: at most %d", len(key), MaxKeyLen)
	}
	for i := 0; i < len(key); i++ {
		if c := key[i]; c < 0x21 || c > 0x7e {
			return invalidRequest("idempotency_key has byte 0x%02x at %d: only printable ASCII (0x21-0x7e) is allowed", c, i)
		}
	}
	return nil
}

// claimKey makes sure the caller's key names records in one category only,
// and holds the key's lock until the record is done (unlock): two requests
// with one key in two categories cannot both record.
func (s *Service) claimKey(ctx context.Context, c *caller, cat eventlogpb.CATEGORY, key string) (unlock func(), err error) {
	h := fnv.New32a()
	h.Write([]byte(c.container.ID))
	h.Write([]byte{0})
	h.Write([]byte(key))
	mu := &s.keyLocks[h.Sum32()%uint32(len(s.keyLocks))]
	mu.Lock()
	for other, cache := range s.logs {
		if other == cat || cache.rt == nil {
			continue
		}
		// Its runtime log must be open for its keys to be known; a
		// category that cannot open has recorded nothing this boot.
		if _, err := cache.Log(ctx); err != nil {
			continue
		}
		if event, used := cache.rt.KeyUsed(c.container.ID, key); used {
			mu.Unlock()
			return nil, &keyConflictError{fmt.Sprintf("this container already recorded its %s event %d under that idempotency key: a key names one event; use a new key for a new event", other, event)}
		}
	}
	return mu.Unlock, nil
}

// getContainerEventlog serves GetEventlog for SAAS: the calling container's
// own events.
func (s *Service) getContainerEventlog(ctx context.Context, req *eventlogpb.GetEventlogRequest) (*eventlogpb.GetEventlogReply, error) {
	c, err := s.identify(ctx)
	if err != nil {
		return nil, err
	}
	cache, err := s.runtimeFor(ctx, req.EventlogCategory)
	if err != nil {
		return nil, err
	}
	view := cache.rt.View()
	l, err := view.Container(c.container.ID)
	if err != nil {
		return nil, err
	}
	kind := cache.src.Kind()
	reg := kind.RegisterName(runtimelog.RegisterIndex(kind))
	return s.reply(req, served{log: l, json: eventlog.JSONOptions{Kind: kind}, gen: uint64(len(l.Events)), name: "saas-" + cache.name,
		source:    fmt.Sprintf("container %s's %s events in %s (runtime log %s)", containerid.Short(c.container.ID), reg, cache.src.Name(), view.Journal),
		simulated: cache.src.Simulated()},
		destination{dir: s.saasOut, sub: s.containerDir(c), owner: &outdir.Owner{UID: c.uid, GID: c.gid}})
}
