// Package unixsock places the server's Unix socket: bound where no one else
// can swap it, given its mode, renamed into place, and removed on close only
// if it is still the one bound.
package unixsock

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ccnp-eventlog/ccnp-eventlog/internal/dirfd"
)

// Listen listens on a Unix socket at path with permission bits mode,
// creating its directory. An existing socket is replaced only when no server
// answers on it (a stale socket left by a crash); a live server there, or a
// file that is not a socket, is an error.
//
// The socket is never touched by path where someone else could swap it: it
// is bound in a private directory the server makes inside the socket's
// directory (through that directory's descriptor, /proc/self/fd/N), given
// its mode there, then renamed into place. The socket's
// directory must not be a symbolic link, and must belong to root or the
// server and be writable by no one else (unless sticky, as /tmp is: then no
// one else can rename or remove the server's entries).
//
// Closing the listener removes the socket, if it is still the one bound.
func Listen(path string, mode fs.FileMode) (net.Listener, error) {
	dir, err := dirfd.Open(filepath.Dir(path), 0o755)
	if err != nil {
		return nil, fmt.Errorf("socket directory: %w", err)
	}
	l, err := listenIn(dir, filepath.Base(path), mode)
	if err != nil {
		dir.Close()
		return nil, err
	}
	return l, nil
}

func listenIn(dir *os.File, name string, mode fs.FileMode) (*socketListener, error) {
	path := filepath.Join(dir.Name(), name)
	if err := checkSocketDir(dir); err != nil {
		return nil, err
	}
	dfd := int(dir.Fd())
	var st unix.Stat_t
	if err := unix.Fstatat(dfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil {
		if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
			return nil, fmt.Errorf("%s exists and is not a socket; refusing to replace it", path)
		}
		conn, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			conn.Close()
			return nil, fmt.Errorf("another server is answering on %s; stop it first", path)
		}
		// Stale: the rename below replaces it.
	} else if !errors.Is(err, unix.ENOENT) {
		return nil, &fs.PathError{Op: "stat", Path: path, Err: err}
	}

	var r [6]byte
	rand.Read(r[:])
	private, err := dirfd.OpenAt(dir, ".sock-"+hex.EncodeToString(r[:]), 0o700)
	if err != nil {
		return nil, fmt.Errorf("socket directory: %w", err)
	}
	defer func() {
		private.Close()
		unix.Unlinkat(dfd, filepath.Base(private.Name()), unix.AT_REMOVEDIR)
	}()
	// Bound through the private directory's descriptor: whatever is renamed
	// in the socket's directory meanwhile, the socket is made in this one
	// (and the address is short, however long the path). Without /proc, by
	// the private directory's path, which only the socket directory's owner
	// could swap.
	l, err := net.Listen("unix", "/proc/self/fd/"+strconv.Itoa(int(private.Fd()))+"/s")
	if err != nil && errors.Is(err, unix.ENOENT) {
		l, err = net.Listen("unix", filepath.Join(private.Name(), "s"))
	}
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", path, err)
	}
	ul := l.(*net.UnixListener)
	ul.SetUnlinkOnClose(false) // it is not there: Close removes it from where it is
	pfd := int(private.Fd())
	// Only the server can enter the private directory: what is at "s" is
	// the socket just bound.
	err = unix.Fchmodat(pfd, "s", uint32(mode.Perm()), 0)
	if err == nil {
		err = unix.Fstatat(pfd, "s", &st, unix.AT_SYMLINK_NOFOLLOW)
	}
	if err == nil {
		err = unix.Renameat(pfd, "s", dfd, name)
	}
	if err != nil {
		l.Close()
		unix.Unlinkat(pfd, "s", 0)
		return nil, fmt.Errorf("placing the socket at %s: %w", path, err)
	}
	return &socketListener{UnixListener: ul, dir: dir, name: name, dev: st.Dev, ino: st.Ino}, nil
}

// checkSocketDir refuses a socket directory in which someone else than root
// or the server could replace the socket.
func checkSocketDir(dir *os.File) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(dir.Fd()), &st); err != nil {
		return &fs.PathError{Op: "stat", Path: dir.Name(), Err: err}
	}
	me := uint32(os.Geteuid())
	switch {
	case st.Uid != 0 && st.Uid != me:
		return fmt.Errorf("socket directory %s belongs to uid %d, who could replace the server's socket: it must be root's or the server's (uid %d)", dir.Name(), st.Uid, me)
	case st.Mode&0o022 != 0 && st.Mode&unix.S_ISVTX == 0:
		return fmt.Errorf("socket directory %s has mode %04o: others could replace the server's socket; make it writable by its owner only (or sticky)", dir.Name(), st.Mode&0o7777)
	}
	return nil
}

// socketListener removes its socket when closed, if the socket there is
// still its own (a second server may have replaced a socket it took for
// stale).
type socketListener struct {
	*net.UnixListener
	dir      *os.File
	name     string
	dev, ino uint64
	once     sync.Once
}

func (l *socketListener) Close() error {
	err := l.UnixListener.Close()
	l.once.Do(func() {
		var st unix.Stat_t
		dfd := int(l.dir.Fd())
		if unix.Fstatat(dfd, l.name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Dev == l.dev && st.Ino == l.ino {
			unix.Unlinkat(dfd, l.name, 0)
		}
		l.dir.Close()
	})
	return err
}
