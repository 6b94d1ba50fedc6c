package outdir

import (
	"encoding/binary"
	"fmt"
	"os"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// A file handed out again is not looked at on disk: the server is the only
// writer of its directory, and an inotify watch on the directory (and on
// each subdirectory of a private one) tells it when anyone else removes,
// renames, replaces, links, chmods or writes to one of its files. Each such
// event names the file, which is then checked once, on the watcher's
// goroutine, against what the server wrote (its inode, size, owner, one
// link), and forgotten if it differs: the next request writes it again.
//
// The kernel queues an event when the change happens, and the watcher reads
// it as soon as it is scheduled, so the window in which a request is handed
// the path of a file just removed is the time the event takes to be read,
// microseconds; a stat per request had the same window between the stat and
// the client's open.
//
// When the kernel's event queue overflows (someone who can write the
// directory changes more than it holds before the watcher reads it), events
// were lost: the directory's epoch moves on, and each file is checked again
// on disk (one fstatat) the next time it is handed out. A directory that
// cannot be watched (no inotify, no /proc, the watch limit reached) checks
// its files on every hand-out, as before.

// watchMask is what a watched directory reports. Reads by clients (IN_ACCESS,
// IN_OPEN, IN_CLOSE_NOWRITE) are not asked for: they wake nobody.
const watchMask = unix.IN_DELETE | unix.IN_MOVED_FROM | unix.IN_MOVED_TO | unix.IN_ATTRIB | unix.IN_MODIFY |
	unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_ONLYDIR

// watcher is a directory's inotify instance.
type watcher struct {
	f *os.File // in the runtime's poller: Close wakes the reader
	// wds name each watch's subdirectory ("" for the directory itself);
	// subs the other way round. Guarded by Dir.mu.
	wds  map[int32]string
	subs map[string]int32
	done chan struct{}
}

// startWatch watches the directory itself. Without inotify, d checks files
// on disk when it hands them out.
func (d *Dir) startWatch() {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		d.watchErr = fmt.Errorf("inotify: %w", err)
		return
	}
	w := &watcher{f: os.NewFile(uintptr(fd), "inotify"), wds: map[int32]string{}, subs: map[string]int32{}, done: make(chan struct{})}
	d.watch = w
	d.epoch = 1
	if err := d.addWatch("", d.fd); err != nil {
		w.f.Close()
		d.watch, d.watchErr = nil, err
		return
	}
	go d.readEvents(w)
}

// addWatch watches dir, the directory itself ("") or its subdirectory sub.
// The watch is added through the descriptor (its /proc/self/fd link), so
// it is on the directory the server holds, whatever its path now names. A
// subdirectory that cannot be watched has its files checked on disk.
func (d *Dir) addWatch(sub string, dir *os.File) error {
	w := d.watch
	if w == nil {
		return nil
	}
	wd, err := unix.InotifyAddWatch(int(w.f.Fd()), fmt.Sprintf("/proc/self/fd/%d", dir.Fd()), watchMask)
	if err != nil {
		return fmt.Errorf("watching %s: %w", dir.Name(), err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if old, ok := w.subs[sub]; ok && old != int32(wd) {
		// A subdirectory made again: what its old watch still reports
		// (its removal) is not about the new one's files.
		delete(w.wds, old)
	}
	w.wds[int32(wd)] = sub
	w.subs[sub] = int32(wd)
	return nil
}

// trusted reports whether f, in sub, is known to be as written without
// looking: its directory is watched and no event was lost since it was last
// checked. d.mu is held.
func (d *Dir) trusted(sub string, f *file) bool {
	if d.watch == nil {
		return false
	}
	if _, ok := d.watch.subs[sub]; !ok {
		return false
	}
	return f.checked == d.epoch
}

// checked marks f as intact on disk as of epoch, the directory's epoch
// before it was looked at: an overflow since leaves it to be checked again.
func (d *Dir) markChecked(k key, f *file, epoch uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.files[k] == f {
		f.checked = epoch
	}
}

// Watched says whether the directory is watched for changes by others, and
// if not, why: its files are then checked on disk each time they are handed
// out.
func (d *Dir) Watched() error { return d.watchErr }

// stopWatch closes the inotify instance and waits for its reader.
func (d *Dir) stopWatch() {
	if d.watch != nil {
		d.watch.f.Close()
		<-d.watch.done
	}
}

func (d *Dir) readEvents(w *watcher) {
	defer close(w.done)
	buf := make([]byte, 64<<10)
	for {
		n, err := w.f.Read(buf)
		if err != nil {
			return // closed
		}
		for b := buf[:n]; len(b) >= unix.SizeofInotifyEvent; {
			wd := int32(binary.NativeEndian.Uint32(b[0:]))
			mask := binary.NativeEndian.Uint32(b[4:])
			nameLen := int(binary.NativeEndian.Uint32(b[12:]))
			end := unix.SizeofInotifyEvent + nameLen
			if end > len(b) {
				break
			}
			name := b[unix.SizeofInotifyEvent:end]
			for len(name) > 0 && name[len(name)-1] == 0 {
				name = name[:len(name)-1]
			}
			d.event(wd, mask, string(name))
			b = b[end:]
		}
	}
}

// eventSeen, when tests set it, is told each event's directory and name
// once handled.
var eventSeen atomic.Pointer[func(d *Dir, name string)]

// event handles one inotify event.
func (d *Dir) event(wd int32, mask uint32, name string) {
	if seen := eventSeen.Load(); seen != nil {
		defer (*seen)(d, name)
	}
	if mask&unix.IN_Q_OVERFLOW != 0 {
		d.mu.Lock()
		d.epoch++
		d.mu.Unlock()
		return
	}
	d.mu.Lock()
	sub, ok := d.watch.wds[wd]
	if !ok {
		d.mu.Unlock()
		return
	}
	switch {
	case mask&(unix.IN_IGNORED|unix.IN_DELETE_SELF|unix.IN_MOVE_SELF|unix.IN_UNMOUNT) != 0:
		// The directory itself is gone or elsewhere: so are its files'
		// paths. The directory itself ("") takes every file with it.
		d.forgetSub(sub, sub == "")
		if mask&unix.IN_IGNORED != 0 {
			delete(d.watch.wds, wd)
			if d.watch.subs[sub] == wd {
				delete(d.watch.subs, sub)
			}
		}
		d.mu.Unlock()
		return
	case sub == "" && d.private && mask&unix.IN_ISDIR != 0 && mask&(unix.IN_DELETE|unix.IN_MOVED_FROM|unix.IN_MOVED_TO) != 0:
		// A subdirectory was removed or renamed, or another put in its
		// place (by root: the directory is the server's): its files'
		// paths are no longer the server's files.
		d.forgetSub(name, false)
		if owd, ok := d.watch.subs[name]; ok {
			delete(d.watch.subs, name)
			delete(d.watch.wds, owd)
			unix.InotifyRmWatch(int(d.watch.f.Fd()), uint32(owd))
		}
		d.mu.Unlock()
		return
	}
	k := key{sub, name}
	f := d.files[k]
	d.mu.Unlock()
	if f == nil {
		return // a temporary file, or not the server's
	}
	// A write to the file itself can only be someone else's (the server
	// writes a temporary file and renames it): forget it. Anything else is
	// checked, since the server's own rename and removal are seen too.
	if mask&unix.IN_MODIFY != 0 || !d.intactNow(k, f) {
		d.forget(k, f)
	}
}

// intactNow is intact for the watcher, which may race Close.
func (d *Dir) intactNow(k key, f *file) bool {
	if !d.enter() {
		return false
	}
	defer d.life.RUnlock()
	return d.intact(k, f)
}

// forgetSub stops counting the files of sub (every file, with all). d.mu is
// held.
func (d *Dir) forgetSub(sub string, all bool) {
	for k, f := range d.files {
		if all || k.sub == sub {
			d.total -= f.size
			delete(d.files, k)
		}
	}
}
