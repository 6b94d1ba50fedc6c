// Package connlimit caps the connections a Unix socket server holds open:
// per peer uid and in total. Each connection costs the server file
// descriptors (the socket, and the peer's pidfd), and without a cap one
// local user can hold idle connections until the server reaches its file
// limit, after which nobody else can connect.
//
// The peer's uid is the kernel's (SO_PEERCRED, recorded at connect), read
// as each connection is accepted; a connection over a cap is closed at
// once, before the server reads anything from it, and refusals are logged,
// at most one line per uid per interval with how many were refused.
package connlimit

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Limits are the caps of a Listener.
type Limits struct {
	// PerUID is the most connections one uid may hold open; 0 is no cap.
	PerUID int
	// Total is the most connections all uids together may hold open;
	// 0 is no cap.
	Total int
	// TotalExempt are uids the total cap does not refuse (the per-uid cap
	// still applies): the server's own, which its exec health probes run
	// as, so that many uids together cannot make it fail its probes.
	TotalExempt []uint32
	// Logger receives the refusal lines; nil is slog.Default().
	Logger *slog.Logger
	// LogEvery is the shortest time between two refusal lines for one
	// uid; 0 is a minute.
	LogEvery time.Duration
}

// FilesPerConn is what one connection costs the server in file
// descriptors: its socket, and the pidfd package peercred holds for it.
const FilesPerConn = 2

// FitFiles returns the limits lowered, if need be, so that every
// connection they allow fits in nofile descriptors with spare left for the
// server's other files, and whether they were lowered. A cap of 0 (none)
// becomes what fits. The exempt uids may hold PerUID each past the total.
func (l Limits) FitFiles(nofile uint64, spare int) (Limits, bool) {
	avail := max((int64(nofile)-int64(spare))/FilesPerConn, 2)
	fit := l
	if fit.PerUID <= 0 || int64(fit.PerUID) > avail/2 {
		fit.PerUID = int(avail / 2)
	}
	reserve := int64(len(fit.TotalExempt)) * int64(fit.PerUID)
	if fit.Total <= 0 || int64(fit.Total)+reserve > avail {
		fit.Total = int(max(avail-reserve, 1))
	}
	return fit, fit.PerUID != l.PerUID || fit.Total != l.Total
}

// RaiseFileLimit raises the soft limit on open files (RLIMIT_NOFILE) to the
// hard limit and returns it. (Go's runtime already does this at start on
// Linux; this makes it explicit and gives the number the caps must fit.)
func RaiseFileLimit() (uint64, error) {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		return 0, fmt.Errorf("reading RLIMIT_NOFILE: %w", err)
	}
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
			return 0, fmt.Errorf("raising RLIMIT_NOFILE to %d: %w", rl.Max, err)
		}
	}
	return rl.Cur, nil
}

// Listener accepts connections from an inner Unix socket listener within
// its Limits.
type Listener struct {
	net.Listener
	lim Limits
	log *slog.Logger

	mu       sync.Mutex
	open     map[uint32]int // connections open, by uid
	total    int
	refused  uint64 // ever
	refusals map[uint32]*refusals
	closed   bool
}

// refusals are a uid's refused connections not logged yet.
type refusals struct {
	count int
	cap   string // the cap that refused the last one
	timer *time.Timer
}

// New returns a Listener that accepts from inner within lim.
func New(inner net.Listener, lim Limits) *Listener {
	if lim.LogEvery <= 0 {
		lim.LogEvery = time.Minute
	}
	l := &Listener{Listener: inner, lim: lim, log: lim.Logger, open: map[uint32]int{}, refusals: map[uint32]*refusals{}}
	if l.log == nil {
		l.log = slog.Default()
	}
	return l
}

// Accept returns the next connection within the caps. Connections over a
// cap, and those whose peer cannot be told, are closed and not returned:
// a refusal is not an error of the listener.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		uid, err := peerUID(c)
		if err != nil {
			c.Close()
			l.log.Warn("connection refused: cannot read its peer's credentials", "err", err)
			continue
		}
		if l.admit(uid) {
			return &conn{Conn: c, l: l, uid: uid}, nil
		}
		c.Close()
	}
}

// Close closes the inner listener and logs the refusals not logged yet.
func (l *Listener) Close() error {
	err := l.Listener.Close()
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		l.closed = true
		for uid, r := range l.refusals {
			r.timer.Stop()
			l.flush(uid, r)
		}
		clear(l.refusals)
	}
	return err
}

// Open returns how many connections uid holds open, and how many are open
// in all.
func (l *Listener) Open(uid uint32) (fromUID, total int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open[uid], l.total
}

// Refused returns how many connections the caps have refused in all.
func (l *Listener) Refused() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.refused
}

// admit counts a new connection from uid in, or counts it as refused.
func (l *Listener) admit(uid uint32) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	var refusedBy string
	switch {
	case l.lim.PerUID > 0 && l.open[uid] >= l.lim.PerUID:
		refusedBy = "per-uid"
	case l.lim.Total > 0 && l.total >= l.lim.Total && !slices.Contains(l.lim.TotalExempt, uid):
		refusedBy = "total"
	default:
		l.open[uid]++
		l.total++
		return true
	}
	l.refuse(uid, refusedBy)
	return false
}

func (l *Listener) release(uid uint32) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if l.open[uid]--; l.open[uid] <= 0 {
		delete(l.open, uid)
	}
}

// refuse counts a refusal. The first from a uid is logged at once; those
// that follow within LogEvery are logged together when it has passed, and
// a uid quiet for a whole LogEvery starts over. l.mu is held.
func (l *Listener) refuse(uid uint32, refusedBy string) {
	l.refused++
	r := l.refusals[uid]
	if r != nil {
		r.count++
		r.cap = refusedBy
		return
	}
	r = &refusals{count: 1, cap: refusedBy}
	l.flush(uid, r)
	if l.closed {
		return
	}
	l.refusals[uid] = r
	r.timer = time.AfterFunc(l.lim.LogEvery, func() { l.tick(uid, r) })
}

// tick logs what uid had refused during the last LogEvery, and forgets the
// uid if nothing was.
func (l *Listener) tick(uid uint32, r *refusals) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || l.refusals[uid] != r {
		return
	}
	if r.count == 0 {
		delete(l.refusals, uid)
		return
	}
	l.flush(uid, r)
	r.timer.Reset(l.lim.LogEvery)
}

// flush logs r's refusals, if any, and zeroes the count. l.mu is held.
func (l *Listener) flush(uid uint32, r *refusals) {
	if r.count == 0 {
		return
	}
	capOf := l.lim.PerUID
	if r.cap == "total" {
		capOf = l.lim.Total
	}
	l.log.Warn("connections refused: connection cap reached",
		"uid", uid, "cap", r.cap, "limit", capOf, "refused", r.count,
		"open_from_uid", l.open[uid], "open_total", l.total, "log_every", l.lim.LogEvery)
	r.count = 0
}

// conn is an admitted connection; closing it makes room for another.
type conn struct {
	net.Conn
	l    *Listener
	uid  uint32
	once sync.Once
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.uid) })
	return err
}

// SyscallConn lets the server read the socket's peer credentials through
// the wrapper (package peercred does).
func (c *conn) SyscallConn() (syscall.RawConn, error) {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return nil, errors.New("connlimit: the connection has no file descriptor")
	}
	return sc.SyscallConn()
}

// peerUID is the uid of the process that connected c, as the kernel
// recorded it at connect.
func peerUID(c net.Conn) (uint32, error) {
	sc, ok := c.(syscall.Conn)
	if !ok || c.LocalAddr().Network() != "unix" {
		return 0, fmt.Errorf("connlimit: a %s connection has no peer credentials", c.LocalAddr().Network())
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return 0, err
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return 0, err
	}
	if credErr != nil {
		return 0, fmt.Errorf("SO_PEERCRED: %w", credErr)
	}
	return cred.Uid, nil
}
