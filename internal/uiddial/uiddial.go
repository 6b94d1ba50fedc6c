// Package uiddial connects to a Unix socket as another user, for tests that
// need connections from several uids out of one process running as root.
//
// The connection is made on an OS thread of its own whose effective uid is
// set with setresuid(2) on that thread only (the raw system call; Go's
// syscall.Setresuid changes every thread). The thread is never handed back
// to Go's scheduler: it exits with its goroutine. The kernel records the
// connecting thread's credentials (SO_PEERCRED) at connect, and the socket
// keeps them once the thread is gone, exactly as for a process of that user.
package uiddial

import (
	"fmt"
	"net"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// Dial connects to the Unix stream socket at path as uid. It needs
// CAP_SETUID; without it the error wraps unix.EPERM.
func Dial(uid int, path string) (net.Conn, error) {
	type result struct {
		fd  int
		err error
	}
	done := make(chan result)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with this goroutine
		if _, _, errno := unix.RawSyscall(unix.SYS_SETRESUID, ^uintptr(0), uintptr(uid), ^uintptr(0)); errno != 0 {
			done <- result{-1, fmt.Errorf("setresuid to uid %d: %w", uid, errno)}
			return
		}
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			done <- result{-1, fmt.Errorf("socket: %w", err)}
			return
		}
		if err := unix.Connect(fd, &unix.SockaddrUnix{Name: path}); err != nil {
			unix.Close(fd)
			done <- result{-1, fmt.Errorf("connecting to %s as uid %d: %w", path, uid, err)}
			return
		}
		done <- result{fd, nil}
	}()
	r := <-done
	if r.err != nil {
		return nil, r.err
	}
	f := os.NewFile(uintptr(r.fd), path)
	defer f.Close()
	return net.FileConn(f)
}
