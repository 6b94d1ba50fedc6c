package service

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"

	"github.com/ccnp-eventlog/ccnp-eventlog/containerid"
	"github.com/ccnp-eventlog/ccnp-eventlog/peercred"
)

// The caller of a container-level request is the process at the other end
// of the Unix socket, from the kernel (peercred), and its container from a
// root-owned cgroup its runtime made, confirmed with the runtime where the
// server can ask it (containerid.Identifier). Nothing in the request says
// who the caller is.

// IdentityOptions configure how callers' containers are told.
type IdentityOptions struct {
	// CgroupRoot is where the node's cgroup hierarchies are mounted, as the
	// server sees them: "/sys/fs/cgroup" when empty. In a pod it must be
	// the host's (a hostPath mount), not the pod's own.
	CgroupRoot string
	// Node is the cgroup hierarchies, for tests; nil: read from the
	// server's own mountinfo and CgroupRoot.
	Node *containerid.Node
	// Runtime confirms containers with the node's container runtime
	// (containerid/cri); nil leaves the cgroup checks alone.
	Runtime containerid.Runtime
}

// caller is who made a request.
type caller struct {
	pid       int
	uid, gid  uint32
	container containerid.Container
}

// newIdentifier returns the identifier of callers' containers, or why
// there is none (the cgroup hierarchies cannot be read), and says which in
// the start-up log.
func newIdentifier(opts IdentityOptions, procRoot string, log *slog.Logger) (*containerid.Identifier, error) {
	root := opts.CgroupRoot
	if root == "" {
		root = "/sys/fs/cgroup"
	}
	node := opts.Node
	if node == nil {
		var err error
		if node, err = containerid.OpenNode(root); err != nil {
			log.Error("container identity: callers cannot be told", "cgroup_root", root, "err", err)
			return nil, fmt.Errorf("%w: the server cannot read its cgroup mounts: %w", containerid.ErrCannotCheck, err)
		}
	}
	cri := "off: containers are told from their cgroups alone"
	if opts.Runtime != nil {
		cri = fmt.Sprint(opts.Runtime)
	}
	log.Info("container identity: root-owned runtime cgroups (outermost container, every parent root's)",
		"cgroup_root", root, "hierarchies", node.Describe(), "runtime_check", cri)
	return containerid.NewIdentifier(node, procRoot, opts.Runtime), nil
}

// identify finds the calling process and its container. A caller that
// cannot be told, or fails a check, is refused and logged with its pid and
// uid.
func (s *Service) identify(ctx context.Context) (*caller, error) {
	a, ok := peercred.FromContext(ctx)
	if !ok {
		return nil, &identityError{unauthenticated: true, err: errors.New("container-level requests must come over the server's Unix socket, whose peer credentials say who calls")}
	}
	if s.ident == nil && s.identOff == nil {
		return nil, &identityError{err: errors.New("container-level events are off on this server (its start-up log says why)")}
	}
	if a.PID == 0 {
		return nil, s.refuse(a, fmt.Errorf("the calling process (uid %d) runs in a PID namespace this server cannot see, so its container cannot be told: run the server in the host's PID namespace (hostPID: true)", a.UID))
	}
	told, err := containerid.Identity{}, s.identOff
	if s.ident != nil {
		// The connection's peer is one process for the connection's life:
		// what was told of it on an earlier request may still hold.
		last, _ := a.Recall().(containerid.Identity)
		told, err = s.ident.Recheck(ctx, a.PID, last)
	}
	// Only now is it known that what was read belongs to the caller: its
	// pid cannot have been reused while it still runs.
	if aerr := a.Alive(); aerr != nil {
		return nil, s.refuse(a, fmt.Errorf("process %d: %w", a.PID, aerr))
	}
	switch {
	case err == nil:
		a.Remember(told)
		return &caller{pid: a.PID, uid: a.UID, gid: a.GID, container: told.Container}, nil
	case errors.Is(err, containerid.ErrNotInContainer):
		err = fmt.Errorf("container-level (SAAS) event logs belong to containers, and the calling process is in none: %w", err)
	case errors.Is(err, fs.ErrNotExist) && !errors.Is(err, containerid.ErrCannotCheck):
		err = fmt.Errorf("the calling process %d is not under %s, though it runs: the server does not see the host's processes (it needs hostPID: true, and --proc-root the host's /proc): %w", a.PID, s.rtOpts.ProcRoot, err)
	}
	return nil, s.refuse(a, err)
}

// refuse logs a caller that cannot be told or failed a check, in the
// request log: any local user can make as many as it sends requests.
func (s *Service) refuse(a *peercred.AuthInfo, err error) error {
	s.reqLog.Warn("container-level caller refused", "pid", a.PID, "uid", a.UID, "err", err)
	return &identityError{err: err}
}
