package service

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sync"
	"time"

	"github.com/ccnp-eventlog/ccnp-eventlog/containerid"
)

// How a caller's container is told (see containerid for the rules):
//
//  1. the caller's pid, from the socket (SO_PEERCRED, with a pidfd that
//     proves it still names the caller once everything is read);
//  2. its cgroups: the outermost container a runtime's layout names, in
//     cgroups whose every parent directory root owns (containerid.Node);
//  3. where the node's CRI socket is available, the runtime: the container
//     is running, and the caller is in its PID namespace.

// IdentityOptions configure how callers' containers are told.
type IdentityOptions struct {
	// CgroupRoot is where the node's cgroup hierarchies are mounted, as the
	// server sees them: "/sys/fs/cgroup" when empty. In a pod it must be
	// the host's (a hostPath mount), not the pod's own.
	CgroupRoot string
	// Node is the cgroup hierarchies, for tests; nil: read from the
	// server's own mountinfo and CgroupRoot.
	Node *containerid.Node
	// Runtime confirms containers with the node's container runtime; nil
	// leaves the cgroup checks alone.
	Runtime ContainerRuntime
}

// ContainerRuntime is the node's container runtime, asked about the
// containers it runs (containerid/cri).
type ContainerRuntime interface {
	// InitPID returns the pid of the first process of the running
	// container id, in the server's PID namespace (the host's).
	InitPID(ctx context.Context, id string) (int, error)
}

// errOtherPIDNamespace is wrapped when the runtime's container is not the
// caller's: the caller is not in its PID namespace.
var errOtherPIDNamespace = errors.New("the calling process is not in the container's PID namespace")

// initTTL is how long the runtime's answer on a container (its first
// process and that process's PID namespace) is used without asking again.
// It is safe to keep: a container's PID namespace is its own for its whole
// life, and every use checks that the pid still names a process in that
// namespace, so a stopped container (whose namespace dies with its first
// process) is asked about again. What the cache saves is the runtime round
// trip for a container that records many events in a row; the cgroup checks
// still run on every request.
const initTTL = 10 * time.Second

// maxInitCache bounds the cache: one entry per container that called
// within initTTL.
const maxInitCache = 4096

// identifier tells callers' containers.
type identifier struct {
	procRoot string
	node     *containerid.Node
	nodeErr  error // why node is nil
	rt       ContainerRuntime

	mu    sync.Mutex
	inits map[string]initEntry
}

type initEntry struct {
	pid     int
	ns      containerid.PIDNamespace
	expires time.Time
}

func newIdentifier(opts IdentityOptions, procRoot string, log *slog.Logger) *identifier {
	id := &identifier{procRoot: procRoot, node: opts.Node, rt: opts.Runtime, inits: map[string]initEntry{}}
	root := opts.CgroupRoot
	if root == "" {
		root = "/sys/fs/cgroup"
	}
	if id.node == nil {
		id.node, id.nodeErr = containerid.OpenNode(root)
	}
	cri := "off: containers are told from their cgroups alone"
	if id.rt != nil {
		cri = fmt.Sprint(id.rt)
	}
	if id.nodeErr != nil {
		log.Error("container identity: callers cannot be told", "cgroup_root", root, "err", id.nodeErr)
		return id
	}
	log.Info("container identity: root-owned runtime cgroups (outermost container, every parent root's)",
		"cgroup_root", root, "hierarchies", id.node.Describe(), "runtime_check", cri)
	return id
}

// container finds the container of the calling process pid, and confirms it
// with the runtime where the server can ask one.
func (id *identifier) container(ctx context.Context, pid int) (containerid.Container, error) {
	if id.nodeErr != nil {
		return containerid.Container{}, fmt.Errorf("%w: the server cannot read its cgroup mounts: %w", containerid.ErrCannotCheck, id.nodeErr)
	}
	c, err := id.node.Identify(id.procRoot, pid)
	if err != nil {
		return c, err
	}
	if id.rt == nil || !c.FromKubelet() {
		// Docker's and Podman's containers are not the CRI runtime's:
		// their root-owned cgroups are what tells them.
		return c, nil
	}
	return c, id.confirm(ctx, c.ID, pid)
}

// pidNamespace is the PID namespace of process pid. Reading another
// process's namespace links is a ptrace read access check: a root server
// without SYS_PTRACE passes it for no caller in a container (they have
// other uids, or capabilities it lacks), which is the server's
// configuration, said as such.
func (id *identifier) pidNamespace(pid int) (containerid.PIDNamespace, error) {
	ns, err := containerid.PIDNamespaceOf(id.procRoot, pid)
	if errors.Is(err, fs.ErrPermission) {
		return ns, fmt.Errorf("%w: %w: the kernel shows a process's namespaces only to its own user or to a server with CAP_SYS_PTRACE, which confirming containers with the runtime needs (the chart adds it with saas.criSocket; --cri-socket=none does without)", containerid.ErrCannotCheck, err)
	}
	return ns, err
}

// confirm checks with the runtime that container ctr is running and that
// process pid is in its PID namespace.
func (id *identifier) confirm(ctx context.Context, ctr string, pid int) error {
	callerNS, err := id.pidNamespace(pid)
	if err != nil {
		return err
	}
	now := time.Now()
	id.mu.Lock()
	e, ok := id.inits[ctr]
	id.mu.Unlock()
	if ok && now.Before(e.expires) {
		if ns, err := id.pidNamespace(e.pid); err == nil && ns == e.ns {
			return samePIDNamespace(ctr, pid, callerNS, e)
		}
	}
	initPID, err := id.rt.InitPID(ctx, ctr)
	if err != nil {
		return err
	}
	ns, err := id.pidNamespace(initPID)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: the runtime says container %s runs as process %d, which is not under %s: the server must share the runtime's PID namespace (hostPID: true)", containerid.ErrCannotCheck, short(ctr), initPID, id.procRoot)
	}
	if err != nil {
		return err
	}
	e = initEntry{pid: initPID, ns: ns, expires: now.Add(initTTL)}
	id.mu.Lock()
	if len(id.inits) >= maxInitCache {
		for k, old := range id.inits {
			if now.After(old.expires) || len(id.inits) >= maxInitCache {
				delete(id.inits, k)
			}
		}
	}
	id.inits[ctr] = e
	id.mu.Unlock()
	return samePIDNamespace(ctr, pid, callerNS, e)
}

func samePIDNamespace(ctr string, pid int, callerNS containerid.PIDNamespace, e initEntry) error {
	if callerNS == e.ns {
		return nil
	}
	return fmt.Errorf("%w: its cgroups name container %s, whose first process (%d) is in PID namespace %s, and the caller (%d) is in %s",
		errOtherPIDNamespace, short(ctr), e.pid, e.ns, pid, callerNS)
}
