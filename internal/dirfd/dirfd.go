// Package dirfd opens the directories the server keeps its files in without
// following a symbolic link where a directory should be, and fixes their
// owner and mode through the descriptor, never by path: a path can be
// swapped between a check and its use by anyone who can write the directory
// above it, a descriptor cannot.
package dirfd

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

var (
	// ErrSymlink is wrapped when a symbolic link is where a directory
	// should be.
	ErrSymlink = errors.New("is a symbolic link where a directory should be: refusing to follow it")
	// ErrNotDirectory is wrapped when something else than a directory (a
	// file, a FIFO, a socket) is where a directory should be.
	ErrNotDirectory = errors.New("is not a directory")
)

// Open opens the directory at path, creating it with mode if it is missing.
// Its parent is the operator's choice and is trusted (created if needed,
// symbolic links in it followed); the directory itself is not followed if it
// is a symbolic link.
func Open(path string, mode fs.FileMode) (*os.File, error) {
	path = filepath.Clean(path)
	parent, name := filepath.Split(path)
	if name == "" || name == "." || name == ".." {
		return nil, fmt.Errorf("%s: not a directory the server can keep files in", path)
	}
	if parent == "" {
		parent = "."
	}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, err
	}
	p, err := os.OpenFile(parent, os.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	return OpenAt(p, name, mode)
}

// OpenAt opens the directory name (one path component) in dir, creating it
// with mode if it is missing: a directory it creates has exactly mode,
// whatever the umask. A symbolic link or anything but a directory there is
// refused with ErrSymlink or ErrNotDirectory, naming the path.
func OpenAt(dir *os.File, name string, mode fs.FileMode) (*os.File, error) {
	p := filepath.Join(dir.Name(), name)
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return nil, &fs.PathError{Op: "open", Path: p, Err: errors.New("not a single path component")}
	}
	dfd := int(dir.Fd())
	created := true
	if err := unix.Mkdirat(dfd, name, uint32(mode.Perm())); err != nil {
		if !errors.Is(err, unix.EEXIST) {
			return nil, &fs.PathError{Op: "mkdir", Path: p, Err: err}
		}
		created = false
	}
	fd, err := unix.Openat(dfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
			var st unix.Stat_t
			if unix.Fstatat(dfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil {
				if st.Mode&unix.S_IFMT == unix.S_IFLNK {
					err = ErrSymlink
				} else {
					err = ErrNotDirectory
				}
			}
		}
		return nil, &fs.PathError{Op: "open", Path: p, Err: err}
	}
	f := os.NewFile(uintptr(fd), p)
	if created {
		if err := f.Chmod(mode.Perm()); err != nil {
			f.Close()
			return nil, err
		}
	}
	return f, nil
}

// Own gives the directory f to uid and gid (-1 keeps either) with the
// permission bits perm (and no set-id or sticky bit), if it is not so
// already: through its descriptor (fchown, fchmod).
func Own(f *os.File, uid, gid int, perm fs.FileMode) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return &fs.PathError{Op: "stat", Path: f.Name(), Err: err}
	}
	if (uid >= 0 && st.Uid != uint32(uid)) || (gid >= 0 && st.Gid != uint32(gid)) {
		if err := f.Chown(uid, gid); err != nil {
			return err
		}
	}
	if st.Mode&0o7777 != uint32(perm.Perm()) {
		return f.Chmod(perm.Perm())
	}
	return nil
}
