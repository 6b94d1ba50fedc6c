// Package peercred tells a gRPC server on a Unix socket who is calling: the
// process at the other end of each connection, with the pid, uid and gid the
// kernel recorded when it connected (SO_PEERCRED). Nothing the client sends
// is involved, so a client cannot claim to be someone else.
//
// A pid is only a name until the process exits, after which another process
// may get it. So each connection also holds a pidfd of its peer, and
// AuthInfo.Alive says whether the peer still runs: what a server reads under
// /proc/<pid> before Alive returns nil describes the peer and not a process
// that reused its pid.
package peercred

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// AuthType is what AuthInfo.AuthType returns.
const AuthType = "peercred"

// ErrExited is returned by Alive when the process that opened the connection
// has exited: its pid may name another process by now.
var ErrExited = errors.New("the process that opened this connection has exited (its pid may have been reused): reconnect from a running process")

// AuthInfo is the peer of a Unix socket connection, as the kernel saw it at
// connect time. gRPC hands it to handlers as peer.Peer.AuthInfo.
type AuthInfo struct {
	credentials.CommonAuthInfo
	// PID is the peer's pid in the server's PID namespace; 0 when the peer
	// runs in a PID namespace the server cannot see (a server in a pod
	// without hostPID, called from another pod).
	PID int
	// UID and GID are the peer's effective ids, in the server's user
	// namespace.
	UID, GID uint32

	pidfd  *os.File // nil without pidfd support or once the peer has exited
	exited bool     // the peer had exited by the time the server looked
	// closed is set when the connection, and with it pidfd, is closed:
	// polling a closed os.File fails with an error os does not export.
	closed atomic.Bool

	noteMu sync.Mutex
	note   any // Remember's value
}

// Remember keeps v with the connection: what the server found out about its
// peer (its container), for Recall on the connection's later requests. The
// peer is one process for the connection's life, which Alive checks; how
// long v holds is the rememberer's to say.
func (a *AuthInfo) Remember(v any) {
	a.noteMu.Lock()
	defer a.noteMu.Unlock()
	a.note = v
}

// Recall returns what Remember kept; nil if nothing.
func (a *AuthInfo) Recall() any {
	a.noteMu.Lock()
	defer a.noteMu.Unlock()
	return a.note
}

// AuthType implements credentials.AuthInfo.
func (*AuthInfo) AuthType() string { return AuthType }

// Alive returns nil while the process that connected is running, ErrExited
// once it has exited, and another error when the connection is closed.
//
// It polls the connection's pidfd, which becomes readable when its process
// exits. The pidfd comes from SO_PEERPIDFD (Linux 6.5+), which pins the very
// process that connected; on older kernels it is opened from the pid right
// after accept, which leaves the short window between connect and accept for
// pid reuse. Without pidfds at all (Linux before 5.3) nothing can be checked
// and Alive returns nil.
func (a *AuthInfo) Alive() error {
	if a.exited {
		return ErrExited
	}
	if a.pidfd == nil {
		return nil
	}
	rc, err := a.pidfd.SyscallConn()
	if err != nil {
		return err
	}
	var exited bool
	var perr error
	err = rc.Control(func(fd uintptr) {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		for {
			_, perr = unix.Poll(fds, 0)
			if perr != unix.EINTR {
				break
			}
		}
		exited = fds[0].Revents&(unix.POLLIN|unix.POLLHUP) != 0
	})
	if err != nil {
		if a.closed.Load() {
			return errors.New("the connection is closed")
		}
		return err
	}
	if perr != nil {
		return fmt.Errorf("polling the peer's pidfd: %w", perr)
	}
	if exited {
		return ErrExited
	}
	return nil
}

// FromContext returns the peer credentials of the connection a request came
// in on, and false when it did not come in on a Unix socket served with
// these credentials.
func FromContext(ctx context.Context) (*AuthInfo, bool) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil, false
	}
	a, ok := p.AuthInfo.(*AuthInfo)
	return a, ok
}

// NewCredentials returns server-side transport credentials that record the
// peer of every Unix socket connection. They add no security handshake:
// clients connect as with insecure credentials (grpcurl -plaintext). A
// connection that is not a Unix socket passes through without AuthInfo.
func NewCredentials() credentials.TransportCredentials { return creds{} }

type creds struct{}

func (creds) ClientHandshake(context.Context, string, net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("peercred: credentials for servers only; clients use insecure credentials")
}

func (creds) ServerHandshake(c net.Conn) (net.Conn, credentials.AuthInfo, error) {
	if c.LocalAddr().Network() != "unix" {
		return c, nil, nil
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return c, nil, nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil, nil, err
	}
	var (
		ucred   *unix.Ucred
		credErr error
		pidfd   = -1
		fdErr   error
	)
	err = raw.Control(func(fd uintptr) {
		ucred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
		if credErr == nil {
			pidfd, fdErr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PEERPIDFD)
		}
	})
	if err == nil {
		err = credErr
	}
	if err != nil {
		return nil, nil, fmt.Errorf("peercred: reading the peer's credentials (SO_PEERCRED): %w", err)
	}
	info := &AuthInfo{
		// Unix socket traffic never leaves the kernel, as grpc's own local
		// credentials reason.
		CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity},
		PID:            int(ucred.Pid),
		UID:            ucred.Uid,
		GID:            ucred.Gid,
	}
	switch {
	case fdErr == nil:
	case errors.Is(fdErr, unix.ESRCH):
		info.exited = true // gone before the server accepted
	case info.PID > 0:
		// Before Linux 6.5: a pidfd from the pid, as close to connect as
		// the server can get.
		pidfd, fdErr = unix.PidfdOpen(info.PID, 0)
		if errors.Is(fdErr, unix.ESRCH) {
			info.exited = true
		}
	}
	if fdErr == nil && pidfd >= 0 {
		info.pidfd = os.NewFile(uintptr(pidfd), "pidfd")
		return &conn{Conn: c, info: info}, info, nil
	}
	return c, info, nil
}

func (creds) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: AuthType}
}

func (c creds) Clone() credentials.TransportCredentials { return c }

func (creds) OverrideServerName(string) error { return nil }

// conn closes the peer's pidfd with the connection.
type conn struct {
	net.Conn
	info *AuthInfo
	once sync.Once
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.info.closed.Store(true)
		c.info.pidfd.Close()
	})
	return err
}
