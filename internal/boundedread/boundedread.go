// Package boundedread opens and reads whole the files the server reads:
// event logs, sysfs attributes, cgroup files, the runtime journal. A wrong
// file must fail at once rather than hang or fill memory, and some of these
// paths sit where another user could put something else:
//
//   - a FIFO blocks open(2) until a writer comes, and read(2) after that:
//     files are opened with O_NONBLOCK, then fstat'ed, and only a regular
//     file is read;
//   - a device (/dev/zero) or directory is refused the same way, by type;
//   - a symbolic link in the last component is not followed (O_NOFOLLOW);
//   - a file larger than the reader's limit is refused before any read.
//
// sysfs and securityfs attributes are regular files that report a size of
// 0 or 4096 whatever they hold, so a file's size is learned by reading to
// EOF (bounded), and stat's size is used only to refuse early.
package boundedread

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"

	"golang.org/x/sys/unix"
)

// TooLargeError says the input held more than the limit. Path is the file,
// when there is one; the message leaves it to the caller, who says what the
// input should have been.
type TooLargeError struct {
	Path  string
	Limit int64
}

func (e *TooLargeError) Error() string { return fmt.Sprintf("holds more than %d bytes", e.Limit) }

// FileTypeError says a path is not the kind of file it should be: a named
// pipe, a device, a directory, a symbolic link where a regular file was
// expected. Its message names the path and both kinds.
type FileTypeError struct {
	Path string
	// Type is the type bits of the file found (fs.ModeNamedPipe, ...).
	Type fs.FileMode
	// Want says what the file should have been ("a regular file").
	Want string
}

func (e *FileTypeError) Error() string {
	msg := e.Path + " is a " + TypeName(e.Type) + ", not " + e.Want
	if e.Type&fs.ModeSymlink != 0 {
		msg += " (symbolic links are not followed here)"
	}
	return msg
}

// TypeName names a file type for messages: "named pipe", "directory", ...
func TypeName(m fs.FileMode) string {
	switch t := m.Type(); {
	case t == 0:
		return "regular file"
	case t&fs.ModeDir != 0:
		return "directory"
	case t&fs.ModeSymlink != 0:
		return "symbolic link"
	case t&fs.ModeNamedPipe != 0:
		return "named pipe"
	case t&fs.ModeSocket != 0:
		return "socket"
	case t&fs.ModeCharDevice != 0:
		return "character device"
	case t&fs.ModeDevice != 0:
		return "block device"
	}
	return "file of mode " + m.String()
}

// ReadAll reads r to its end, failing with *TooLargeError once it has
// produced more than limit bytes.
func ReadAll(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, &TooLargeError{Limit: limit}
	}
	return b, nil
}

// ReadFile reads the regular file at path, of at most limit bytes. It never
// blocks on the file's type: anything but a regular file is a
// *FileTypeError, a file larger than limit a *TooLargeError (refused before
// reading when stat already says so). Errors opening it are returned as
// os.Open returns them (they name the path and wrap fs.ErrNotExist,
// fs.ErrPermission); read errors name it too.
func ReadFile(path string, limit int64) ([]byte, error) {
	// By descriptor, not *os.File: a regular file's reads never block, so
	// the runtime's poller has no part in them, and a cgroup file read for
	// every container-level request is then 5 syscalls rather than 10.
	fd, st, err := openTyped(path, unix.O_RDONLY, 0, "a regular file")
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	if st.Size > limit {
		return nil, &TooLargeError{Path: path, Limit: limit}
	}
	// The size is a hint only: sysfs and procfs files say 0 or 4096.
	b := make([]byte, 0, min(max(st.Size, 512), limit)+1)
	for {
		if len(b) == cap(b) {
			b = slices.Grow(b, min(cap(b), int(limit+1)-len(b)))
		}
		n, err := unix.Read(fd, b[len(b):cap(b)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "read", Path: path, Err: err}
		}
		if n == 0 {
			return b, nil
		}
		if b = b[:len(b)+n]; int64(len(b)) > limit {
			return nil, &TooLargeError{Path: path, Limit: limit}
		}
	}
}

// Open opens path with flag (unix.O_RDONLY or unix.O_RDWR, plus any other
// flags) and returns it only if its type is want: 0 for a regular file, or
// type bits such as fs.ModeDevice|fs.ModeCharDevice. Anything else is a
// *FileTypeError whose message says the file should have been wantName.
//
// The open does not block and does not follow a symbolic link in the last
// component (O_NONBLOCK|O_NOFOLLOW|O_CLOEXEC are added); the type is taken
// from the open file (fstat), so the file checked is the file read.
// O_NONBLOCK is cleared again once the type is right: it only ever guarded
// the open, and a device's blocking reads are its protocol.
func Open(path string, flag int, want fs.FileMode, wantName string) (*os.File, error) {
	fd, _, err := openTyped(path, flag, want, wantName)
	if err != nil {
		return nil, err
	}
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return nil, &fs.PathError{Op: "fcntl", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

// openTyped opens path without blocking or following a symbolic link in
// the last component (O_NONBLOCK|O_NOFOLLOW|O_CLOEXEC are added to flag),
// and returns the descriptor and its fstat only if the file is of type
// want; anything else is a *FileTypeError saying it should have been
// wantName.
func openTyped(path string, flag int, want fs.FileMode, wantName string) (int, unix.Stat_t, error) {
	var st unix.Stat_t
	fd, err := openNoFollow(path, flag|unix.O_NONBLOCK|unix.O_NOFOLLOW|unix.O_CLOEXEC, want, wantName)
	if err != nil {
		return -1, st, err
	}
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, st, &fs.PathError{Op: "fstat", Path: path, Err: err}
	}
	if got := fileType(st.Mode); got != want.Type() {
		unix.Close(fd)
		return -1, st, &FileTypeError{Path: path, Type: got, Want: wantName}
	}
	return fd, st, nil
}

// openNoFollow opens path, retrying on EINTR (open of a FIFO or a device can
// be interrupted by the runtime's signals). Where open fails because of what
// the file is (ELOOP: a symbolic link under O_NOFOLLOW; ENXIO: a socket;
// EISDIR: a directory opened for writing), lstat says what it is, and a
// type other than want is a *FileTypeError.
func openNoFollow(path string, flag int, want fs.FileMode, wantName string) (int, error) {
	for {
		fd, err := unix.Open(path, flag, 0)
		if err == nil {
			return fd, nil
		}
		if err == unix.EINTR {
			continue
		}
		if err == unix.ELOOP || err == unix.ENXIO || err == unix.EISDIR {
			if fi, lerr := os.Lstat(path); lerr == nil && fi.Mode().Type() != want.Type() {
				return -1, &FileTypeError{Path: path, Type: fi.Mode().Type(), Want: wantName}
			}
		}
		return -1, &fs.PathError{Op: "open", Path: path, Err: err}
	}
}

// fileType converts stat's st_mode type bits to fs.FileMode type bits.
func fileType(mode uint32) fs.FileMode {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return 0
	case unix.S_IFDIR:
		return fs.ModeDir
	case unix.S_IFLNK:
		return fs.ModeSymlink
	case unix.S_IFIFO:
		return fs.ModeNamedPipe
	case unix.S_IFSOCK:
		return fs.ModeSocket
	case unix.S_IFCHR:
		return fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		return fs.ModeDevice
	}
	return fs.ModeIrregular
}
