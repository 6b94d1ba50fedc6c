package connlimit_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ccnp-eventlog/ccnp-eventlog/connlimit"
	"github.com/ccnp-eventlog/ccnp-eventlog/internal/uiddial"
)

// The uids the connections come from. Connecting as another uid needs root
// (CAP_SETUID); the tests skip without it.
const (
	nobody  = 65534
	nogroup = 65533
	root    = 0
)

// dialAs connects to the Unix socket at path as uid (a thread of this
// process whose euid is uid connects), and skips the test when this
// process may not change its uid.
func dialAs(t *testing.T, uid int, path string) net.Conn {
	t.Helper()
	c, err := uiddial.Dial(uid, path)
	if errors.Is(err, unix.EPERM) && strings.Contains(err.Error(), "setresuid") {
		t.Skipf("%v (the tests need root)", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// server is a connlimit.Listener on a real Unix socket, holding every
// connection it accepts until its client closes it.
type server struct {
	path string
	l    *connlimit.Listener
	logs *syncBuffer

	mu       sync.Mutex
	accepted []net.Conn
}

// socketPath is a path for a socket every uid can connect to.
func socketPath(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "connlimit-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "s.sock")
}

func serve(t *testing.T, lim connlimit.Limits) *server {
	t.Helper()
	path := socketPath(t)
	inner, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o777); err != nil {
		t.Fatal(err)
	}
	s := &server{path: path, logs: &syncBuffer{}}
	lim.Logger = slog.New(slog.NewJSONHandler(s.logs, nil))
	s.l = connlimit.New(inner, lim)
	go func() {
		for {
			c, err := s.l.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.accepted = append(s.accepted, c)
			s.mu.Unlock()
			// As a server does: close its end when the client closes its.
			go func() {
				io.Copy(io.Discard, c)
				c.Close()
			}()
		}
	}()
	t.Cleanup(func() {
		s.l.Close()
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, c := range s.accepted {
			c.Close()
		}
	})
	return s
}

// connect makes n connections as uid, one after another, and returns
// those the server kept: each is made once the listener has decided on the
// one before.
func (s *server) connect(t *testing.T, uid, n int) (kept []net.Conn) {
	t.Helper()
	for range n {
		before := s.decided()
		s.mu.Lock()
		acceptedBefore := len(s.accepted)
		s.mu.Unlock()
		c := dialAs(t, uid, s.path)
		waitFor(t, func() bool { return s.decided() > before })
		s.mu.Lock()
		accepted := len(s.accepted) > acceptedBefore
		s.mu.Unlock()
		if accepted {
			kept = append(kept, c)
		} else {
			// Refused: the server closed it, the client reads its end.
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) && !errors.Is(err, unix.ECONNRESET) {
				t.Fatalf("a refused connection reads %v, want its end", err)
			}
		}
	}
	return kept
}

// decided is how many connections the listener has accepted or refused.
func (s *server) decided() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.accepted) + int(s.l.Refused())
}

func TestPerUIDCap(t *testing.T) {
	s := serve(t, connlimit.Limits{PerUID: 3, Total: 100})
	kept := s.connect(t, nobody, 8)
	if len(kept) != 3 {
		t.Fatalf("uid %d kept %d of 8 connections, want 3", nobody, len(kept))
	}
	// Other uids are served meanwhile, root included: each has its own cap.
	for _, uid := range []int{nogroup, root} {
		if n := len(s.connect(t, uid, 4)); n != 3 {
			t.Errorf("uid %d, while %d is at its cap: kept %d of 4, want 3", uid, nobody, n)
		}
	}
	if fromUID, total := s.l.Open(nobody); fromUID != 3 || total != 9 {
		t.Errorf("Open(%d) = %d, %d; want 3, 9", nobody, fromUID, total)
	}
	// A closed connection makes room for one more.
	kept[0].Close()
	waitOpen(t, s.l, nobody, 2)
	if n := len(s.connect(t, nobody, 2)); n != 1 {
		t.Errorf("after closing one: kept %d of 2, want 1", n)
	}
}

func TestTotalCap(t *testing.T) {
	s := serve(t, connlimit.Limits{PerUID: 3, Total: 5, TotalExempt: []uint32{root}})
	if n := len(s.connect(t, nobody, 3)); n != 3 {
		t.Fatalf("kept %d, want 3", n)
	}
	if n := len(s.connect(t, nogroup, 3)); n != 2 {
		t.Errorf("uid %d, with the total at 3 of 5: kept %d of 3, want 2", nogroup, n)
	}
	// The exempt uid is past the total cap, within its own.
	if n := len(s.connect(t, root, 4)); n != 3 {
		t.Errorf("exempt uid 0 at the total cap: kept %d of 4, want 3", n)
	}
	if n := len(s.connect(t, 1000, 1)); n != 0 {
		t.Errorf("another uid at the total cap: kept %d, want 0", n)
	}
}

// Refusals are logged at once for a uid's first, then once per interval
// with the count: a flood makes a few lines, not one per connection.
func TestRefusalsLoggedPerUIDPerInterval(t *testing.T) {
	const every = 400 * time.Millisecond
	s := serve(t, connlimit.Limits{PerUID: 2, Total: 100, LogEvery: every})
	s.connect(t, root, 2)
	start := time.Now()
	const flood = 40
	for range flood {
		dialAs(t, nobody, s.path) // not read: the next is made at once
	}
	dialAs(t, root, s.path)
	// Every refusal, counted: wait for the interval's line.
	var lines []refusalLine
	deadline := time.Now().Add(10 * time.Second)
	for {
		lines = s.refusalLines(t)
		if sum(lines, nobody) == flood-2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := sum(lines, nobody); got != flood-2 {
		t.Fatalf("lines count %d refusals from uid %d, want %d: %v", got, nobody, flood-2, lines)
	}
	if got := sum(lines, root); got != 1 {
		t.Errorf("lines count %d refusals from uid 0, want 1", got)
	}
	byUID := map[uint32][]refusalLine{}
	for _, l := range lines {
		byUID[l.UID] = append(byUID[l.UID], l)
	}
	if n := len(byUID[nobody]); n > 1+int(time.Since(start)/every)+1 {
		t.Errorf("%d lines for uid %d in %s: more than one per %s", n, nobody, time.Since(start), every)
	}
	first := byUID[nobody][0]
	if first.Refused != 1 || first.Cap != "per-uid" || first.Limit != 2 || first.OpenFromUID != 2 {
		t.Errorf("first line %+v: want the first refusal at once, naming the per-uid cap of 2", first)
	}
	// A uid that stopped is forgotten: its next refusal is logged at once.
	time.Sleep(2*every + 100*time.Millisecond)
	before := len(s.refusalLines(t))
	dialAs(t, nobody, s.path)
	waitFor(t, func() bool { return len(s.refusalLines(t)) == before+1 })
}

func TestCloseFlushesRefusals(t *testing.T) {
	s := serve(t, connlimit.Limits{PerUID: 1, LogEvery: time.Hour})
	s.connect(t, nobody, 4) // the first is kept, 3 refused: 1 logged, 2 pending
	s.l.Close()
	if got := sum(s.refusalLines(t), nobody); got != 3 {
		t.Errorf("after Close, lines count %d refusals, want 3", got)
	}
	if _, err := s.l.Accept(); err == nil {
		t.Error("Accept after Close succeeded")
	}
}

// The admitted connection still gives its peer's credentials (package
// peercred reads them through the wrapper).
func TestAdmittedConnKeepsCredentials(t *testing.T) {
	path := socketPath(t)
	inner, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	l := connlimit.New(inner, connlimit.Limits{PerUID: 1})
	defer l.Close()
	os.Chmod(path, 0o777)
	dialAs(t, nobody, path)
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	raw, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var cred *unix.Ucred
	raw.Control(func(fd uintptr) { cred, err = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) })
	if err != nil || cred.Uid != nobody {
		t.Errorf("credentials through the wrapper: %+v, %v", cred, err)
	}
}

func TestFitFiles(t *testing.T) {
	lim := connlimit.Limits{PerUID: 64, Total: 1024, TotalExempt: []uint32{1000}}
	if got, lowered := lim.FitFiles(1<<20, 256); lowered || got.PerUID != 64 || got.Total != 1024 {
		t.Errorf("with 1M files: %+v, lowered %v; want unchanged", got, lowered)
	}
	// 1024 files: (1024-256)/2 = 384 connections, 64 of them the exempt uid's.
	got, lowered := lim.FitFiles(1024, 256)
	if !lowered || got.PerUID != 64 || got.Total != 320 {
		t.Errorf("with 1024 files: %+v, lowered %v; want 64 per uid, 320 in total", got, lowered)
	}
	if most := got.Total + got.PerUID; most*connlimit.FilesPerConn+256 > 1024 {
		t.Errorf("%d connections do not fit", most)
	}
	// No caps: what fits.
	got, _ = connlimit.Limits{}.FitFiles(4096, 96)
	if got.PerUID != 1000 || got.Total != 2000 {
		t.Errorf("no caps, 4096 files: %+v", got)
	}
}

func TestRaiseFileLimit(t *testing.T) {
	n, err := connlimit.RaiseFileLimit()
	if err != nil {
		t.Fatal(err)
	}
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	if n != rl.Cur || rl.Cur != rl.Max {
		t.Errorf("RaiseFileLimit = %d; the limit is now %d of %d", n, rl.Cur, rl.Max)
	}
}

type refusalLine struct {
	Msg         string
	UID         uint32
	Cap         string
	Limit       int
	Refused     int
	OpenFromUID int `json:"open_from_uid"`
}

func (s *server) refusalLines(t *testing.T) []refusalLine {
	t.Helper()
	var lines []refusalLine
	for _, b := range bytes.Split(s.logs.Bytes(), []byte("\n")) {
		if len(b) == 0 {
			continue
		}
		var l refusalLine
		if err := json.Unmarshal(b, &l); err != nil {
			t.Fatalf("log line %s: %v", b, err)
		}
		if strings.Contains(l.Msg, "connection cap reached") {
			lines = append(lines, l)
		}
	}
	return lines
}

func sum(lines []refusalLine, uid uint32) int {
	n := 0
	for _, l := range lines {
		if l.UID == uid {
			n += l.Refused
		}
	}
	return n
}

func waitOpen(t *testing.T, l *connlimit.Listener, uid uint32, want int) {
	t.Helper()
	waitFor(t, func() bool { n, _ := l.Open(uid); return n == want })
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.b.Bytes())
}
