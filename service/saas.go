package service

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ccnp-eventlog/ccnp-eventlog/containerid"
	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"github.com/ccnp-eventlog/ccnp-eventlog/outdir"
	"github.com/ccnp-eventlog/ccnp-eventlog/peercred"
	eventlogpb "github.com/ccnp-eventlog/ccnp-eventlog/proto"
	"github.com/ccnp-eventlog/ccnp-eventlog/runtimelog"
)

// Container-level events, as callers see them:
//
//   - RecordEvent measures an event for the calling container: the server
//     computes its digests, appends it to the category's runtime log, then
//     extends the runtime register (runtime.go). Under an idempotency key
//     the container already recorded, it returns that first outcome and
//     extends nothing: a client retries a call that failed with UNAVAILABLE
//     under the same key.
//   - GetEventlog with SAAS returns the calling container's own events, with
//     the boot log's Spec ID header, numbered 1..n, in the same formats and
//     with the same paging as PAAS; PAAS returns the boot log followed by
//     every container's runtime events, so its replay gives the live
//     register.
//
// The caller is the process at the other end of the Unix socket, from the
// kernel (SO_PEERCRED, with a pidfd that proves the pid still names it), and
// its container from a root-owned cgroup its runtime made, confirmed with the
// runtime where the server can ask it (identity.go). Nothing in the request
// says who the caller is.
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

// caller is who made a request.
type caller struct {
	pid       int
	uid, gid  uint32
	container containerid.Container
}

// openRuntime opens the state directory and the per-container output
// directory. It returns why container-level events are off, or nil.
func (s *Service) openRuntime(opts Options) error {
	o := &s.rtOpts
	if o.StateDir == "" {
		return errors.New("the server runs without a state directory (--state-dir)")
	}
	s.ident = newIdentifier(opts.Identity, o.ProcRoot, s.log)
	dir, err := runtimelog.OpenDir(o.StateDir)
	if err != nil {
		s.log.Error("container-level events off", "err", err)
		return err
	}
	key, err := loadKey(filepath.Join(o.StateDir, "saas-dir-key"))
	if err == nil {
		limits := opts.Limits
		limits.MaxBytes = o.OutputBytes
		s.saasOut, err = s.out.OpenPrivate("containers", limits)
	}
	if err != nil {
		dir.Close()
		s.log.Error("container-level events off", "err", err)
		return err
	}
	s.rtDir, s.saasKey = dir, key
	return nil
}

// loadKey reads the key that names per-container directories, creating it
// on first use. It is kept so that the directories keep their names, and the
// paths handed out stay valid, across restarts.
func loadKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil && len(b) == 32 {
		return b, nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	key := make([]byte, 32)
	rand.Read(key)
	if err := os.WriteFile(path, key, 0o600); err != nil {
		return nil, err
	}
	return key, nil
}

// containerDir names a caller's directory under the containers directory.
func (s *Service) containerDir(c *caller) string {
	m := hmac.New(sha256.New, s.saasKey)
	m.Write([]byte(c.container.ID))
	m.Write([]byte{0})
	m.Write([]byte(strconv.FormatUint(uint64(c.uid), 10)))
	return hex.EncodeToString(m.Sum(nil))[:32]
}

// identify finds the calling process and its container. A caller that
// cannot be told, or fails a check, is refused and logged with its pid and
// uid.
func (s *Service) identify(ctx context.Context) (*caller, error) {
	a, ok := peercred.FromContext(ctx)
	if !ok {
		return nil, &identityError{unauthenticated: true, err: errors.New("container-level requests must come over the server's Unix socket, whose peer credentials say who calls")}
	}
	if s.ident == nil {
		return nil, &identityError{err: errors.New("container-level events are off on this server (its start-up log says why)")}
	}
	if a.PID == 0 {
		return nil, s.refuse(a, fmt.Errorf("the calling process (uid %d) runs in a PID namespace this server cannot see, so its container cannot be told: run the server in the host's PID namespace (hostPID: true)", a.UID))
	}
	ctr, err := s.ident.container(ctx, a.PID)
	// Only now is it known that what was read belongs to the caller: its
	// pid cannot have been reused while it still runs.
	if aerr := a.Alive(); aerr != nil {
		return nil, s.refuse(a, fmt.Errorf("process %d: %w", a.PID, aerr))
	}
	switch {
	case err == nil:
		return &caller{pid: a.PID, uid: a.UID, gid: a.GID, container: ctr}, nil
	case errors.Is(err, containerid.ErrNotInContainer):
		err = fmt.Errorf("container-level (SAAS) event logs belong to containers, and the calling process is in none: %w", err)
	case errors.Is(err, fs.ErrNotExist) && !errors.Is(err, containerid.ErrCannotCheck):
		err = fmt.Errorf("the calling process %d is not under %s, though it runs: the server does not see the host's processes (it needs hostPID: true, and --proc-root the host's /proc): %w", a.PID, s.rtOpts.ProcRoot, err)
	}
	return nil, s.refuse(a, err)
}

// refuse logs a caller that cannot be told or failed a check.
func (s *Service) refuse(a *peercred.AuthInfo, err error) error {
	s.log.Warn("container-level caller refused", "pid", a.PID, "uid", a.UID, "err", err)
	return &identityError{err: err}
}

// runtimeFor returns the category's runtime log, opened.
func (s *Service) runtimeFor(ctx context.Context, cat eventlogpb.CATEGORY) (*logCache, error) {
	cache, err := s.logFor(cat)
	if err != nil {
		return nil, err
	}
	if cache.rt == nil {
		return nil, &runtimeUnavailableError{kind: cache.src.Kind(), err: cache.rtOff}
	}
	if _, err := cache.get(ctx); err != nil {
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
	r, err := cache.rt.record(ctx, c, typ, req.Data, key)
	if err != nil {
		return nil, err
	}
	reply := &eventlogpb.RecordEventReply{
		EventNum:        uint32(r.ownNum),
		LogEventNum:     uint32(r.event.Num),
		Register:        cache.src.Kind().RegisterName(r.event.Index),
		Index:           r.event.Index,
		EventType:       uint32(r.eventType),
		Digests:         map[string]string{},
		ContainerId:     c.container.ID,
		Simulated:       cache.src.Simulated(),
		AlreadyRecorded: r.again,
	}
	for _, d := range r.event.Digests {
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
		if _, err := cache.get(ctx); err != nil {
			continue
		}
		if k, ok := cache.rt.lookupKey(c.container.ID, key); ok {
			mu.Unlock()
			return nil, &keyConflictError{fmt.Sprintf("this container already recorded its %s event %d under that idempotency key: a key names one event; use a new key for a new event", other, k.own)}
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
	rt := cache.rt
	view := rt.current()
	l := view.header // no event yet: the header alone, still a self-describing log
	if own := view.containers[c.container.ID]; own != nil {
		l = own.log
	}
	if l == nil {
		return nil, &runtimeUnavailableError{kind: rt.kind, err: view.disabled}
	}
	events, err := s.slice(l, req.StartPosition, req.Count)
	if err != nil {
		return nil, err
	}
	r := render(l, eventlog.JSONOptions{Kind: rt.kind}, events, req.Format, "saas-"+strings.ToLower(rt.kind.String()))
	r.reply.Source = fmt.Sprintf("container %s's %s events in %s (runtime log %s)", short(c.container.ID), rt.kind.RegisterName(rt.index), cache.src.Name(), view.journal)
	r.reply.Simulated = cache.src.Simulated()
	if req.Inline {
		return s.inline(r)
	}
	st, err := store(s.saasOut, r, s.containerDir(c), &outdir.Owner{UID: c.uid, GID: c.gid})
	if err != nil {
		return nil, err
	}
	r.reply.EventlogDataLoc = st.Path
	return r.reply, nil
}
