package containerid

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"sync"
	"time"
)

// How a caller's container is told, end to end:
//
//  1. the caller's pid, from its socket (SO_PEERCRED, with a pidfd that
//     proves it still names the caller once everything is read: the
//     caller's part, package peercred);
//  2. its cgroups: the outermost container a runtime's layout names, in
//     cgroups whose every parent directory root owns (Node.Identify);
//  3. where the node's container runtime can be asked (package cri), the
//     runtime: the container is running, and the caller is in its PID
//     namespace (Identifier).

// Runtime is the node's container runtime, asked about the containers it
// runs (package cri).
type Runtime interface {
	// InitPID returns the pid of the first process of the running
	// container id, in the caller's PID namespace (the host's).
	InitPID(ctx context.Context, id string) (int, error)
}

// ErrOtherPIDNamespace is wrapped when the runtime's container is not the
// caller's: the caller is not in its PID namespace.
var ErrOtherPIDNamespace = errors.New("the calling process is not in the container's PID namespace")

// initTTL is how long the runtime's answer on a container (its first
// process and that process's PID namespace) is used without asking again.
// It is safe to keep: a container's PID namespace is its own for its whole
// life, and every use checks that the pid still names a process in that
// namespace, so a stopped container (whose namespace dies with its first
// process) is asked about again. What the cache saves is the runtime round
// trip for a container that records many events in a row; the cgroup checks
// run again whenever Recheck tells again.
const initTTL = 10 * time.Second

// maxInitCache bounds the cache: one entry per container that called
// within initTTL.
const maxInitCache = 4096

// Identifier tells the containers of a node's processes: from their
// cgroups, confirmed with the container runtime when there is one to ask.
type Identifier struct {
	procRoot string
	node     *Node
	rt       Runtime

	mu    sync.Mutex
	inits map[string]initEntry
}

type initEntry struct {
	pid     int
	ns      PIDNamespace
	expires time.Time
}

// NewIdentifier returns an Identifier of the processes under procRoot on
// node; rt nil leaves the cgroup checks alone.
func NewIdentifier(node *Node, procRoot string, rt Runtime) *Identifier {
	return &Identifier{procRoot: procRoot, node: node, rt: rt, inits: map[string]initEntry{}}
}

// Identify finds the container of process pid (Node.Identify), and
// confirms it with the runtime if there is one: errors of the runtime's
// (package cri), ErrOtherPIDNamespace, or ErrCannotCheck when the runtime's
// process is not under procRoot. Containers the kubelet did not lay out
// (Docker's, Podman's) are not the CRI runtime's to confirm: their
// root-owned cgroups are what tells them.
func (id *Identifier) Identify(ctx context.Context, pid int) (Container, error) {
	told, err := id.Recheck(ctx, pid, Identity{})
	return told.Container, err
}

// RecheckAfter is how long an Identity holds for Recheck while its
// process's cgroup file reads the same.
//
// What was told holds while the process runs in the same cgroups: a
// running process changes cgroup only when moved, which the cgroup file
// shows at once, and a move into another container's cgroup takes writing
// a root-owned cgroup.procs (cgroup v2: of the two cgroups' common
// ancestor), that is, root; its PID namespace, which the runtime's check
// compares, is its own for life. What the cgroup file does not show is
// root changing the owners of the cgroups' directories, or a container
// removed and made again under the same name: telling again after
// RecheckAfter bounds how long that could go unseen.
const RecheckAfter = time.Second

// Identity is a process's container as Identify told it, with what it was
// told from, for Recheck.
type Identity struct {
	Container
	cgroups []byte    // the process's cgroup file
	at      time.Time // when the file was read
}

// Recheck is Identify for a process last told as last (the zero Identity
// when never). When its cgroup file reads as it did then, less than
// RecheckAfter ago, last holds and nothing else is read: a container that
// records in a loop is told from one read a second, not from a dozen
// syscalls and a runtime check a record. last must be this very process's:
// the caller of a connection whose peer still runs (peercred.AuthInfo.Alive),
// never another process that got the same pid.
func (id *Identifier) Recheck(ctx context.Context, pid int, last Identity) (Identity, error) {
	now := time.Now()
	b, path, err := readCgroupFile(id.procRoot, pid)
	if err != nil {
		return Identity{}, err
	}
	if last.cgroups != nil && now.Sub(last.at) < RecheckAfter && bytes.Equal(b, last.cgroups) {
		return last, nil
	}
	c, err := id.node.identifyProcess(pid, path, b)
	if err != nil {
		return Identity{}, err
	}
	if id.rt != nil && c.FromKubelet() {
		if err := id.confirm(ctx, c.ID, pid); err != nil {
			return Identity{}, err
		}
	}
	return Identity{Container: c, cgroups: b, at: now}, nil
}

// pidNamespace is the PID namespace of process pid. Reading another
// process's namespace links is a ptrace read access check: a root server
// without CAP_SYS_PTRACE passes it for no caller in a container (they have
// other uids, or capabilities it lacks), which is the server's
// configuration, said as such.
func (id *Identifier) pidNamespace(pid int) (PIDNamespace, error) {
	ns, err := PIDNamespaceOf(id.procRoot, pid)
	if errors.Is(err, fs.ErrPermission) {
		return ns, fmt.Errorf("%w: %w: the kernel shows a process's namespaces only to its own user or to a server with CAP_SYS_PTRACE, which confirming containers with the runtime needs (the chart adds it with saas.criSocket; --cri-socket=none does without)", ErrCannotCheck, err)
	}
	return ns, err
}

// confirm checks with the runtime that container ctr is running and that
// process pid is in its PID namespace.
func (id *Identifier) confirm(ctx context.Context, ctr string, pid int) error {
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
		return fmt.Errorf("%w: the runtime says container %s runs as process %d, which is not under %s: the server must share the runtime's PID namespace (hostPID: true)", ErrCannotCheck, Short(ctr), initPID, id.procRoot)
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

func samePIDNamespace(ctr string, pid int, callerNS PIDNamespace, e initEntry) error {
	if callerNS == e.ns {
		return nil
	}
	return fmt.Errorf("%w: its cgroups name container %s, whose first process (%d) is in PID namespace %s, and the caller (%d) is in %s",
		ErrOtherPIDNamespace, Short(ctr), e.pid, e.ns, pid, callerNS)
}

// Short abbreviates a container ID as runtimes print it.
func Short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
