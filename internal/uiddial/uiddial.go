// Package uiddial connects to a Unix socket as another user, for tests that
// need connections from several uids out of one process running as root.
//
// The connection is made on an OS thread locked to one goroutine, whose
// effective uid is set with setresuid(2) on that thread only (the raw system
// call; Go's syscall.Setresuid changes every thread) and set back to 0 once
// connected. The kernel records the connecting thread's credentials
// (SO_PEERCRED) at connect, and the socket keeps them, exactly as for a
// process of that user.
//
// The thread is handed back rather than left to exit: a thread's exit sends
// the Pdeathsig of every child process it started, so killing threads would
// kill servers the test started from them.
package uiddial

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"unsafe"

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
		runtime.LockOSThread()
		orig, err := getresuid()
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{-1, err}
			return
		}
		fd, err := connectAs(uid, path)
		// Only a thread whose ids are its own again goes back to the
		// scheduler; otherwise it stays locked, and exits with us.
		if restore(orig) {
			runtime.UnlockOSThread()
		}
		done <- result{fd, err}
	}()
	r := <-done
	if r.err != nil {
		return nil, r.err
	}
	f := os.NewFile(uintptr(r.fd), path)
	defer f.Close()
	return net.FileConn(f)
}

// connectAs connects with the calling thread's effective uid set to uid;
// its real and saved uids stay as they were, so restore can set it back.
func connectAs(uid int, path string) (int, error) {
	if _, _, errno := unix.RawSyscall(unix.SYS_SETRESUID, ^uintptr(0), uintptr(uid), ^uintptr(0)); errno != 0 {
		return -1, fmt.Errorf("setresuid to uid %d: %w", uid, errno)
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	if err := unix.Connect(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("connecting to %s as uid %d: %w", path, uid, err)
	}
	return fd, nil
}

type resuid struct{ r, e, s uint32 }

// getresuid returns the calling thread's real, effective and saved uids.
func getresuid() (resuid, error) {
	var u resuid
	if _, _, errno := unix.RawSyscall(unix.SYS_GETRESUID, uintptr(unsafe.Pointer(&u.r)), uintptr(unsafe.Pointer(&u.e)), uintptr(unsafe.Pointer(&u.s))); errno != 0 {
		return u, fmt.Errorf("getresuid: %w", errno)
	}
	return u, nil
}

// restore sets the calling thread's effective uid back to orig's (for root,
// that also gives back its effective capabilities, kept in the permitted
// set while the real and saved uids stayed 0) and reports whether its uids
// are orig again.
func restore(orig resuid) bool {
	if _, _, errno := unix.RawSyscall(unix.SYS_SETRESUID, ^uintptr(0), uintptr(orig.e), ^uintptr(0)); errno != 0 {
		return false
	}
	now, err := getresuid()
	return err == nil && now == orig
}
