package service_test

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/ccnp-eventlog/ccnp-eventlog/containerid"
	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"github.com/ccnp-eventlog/ccnp-eventlog/hwsource"
	"github.com/ccnp-eventlog/ccnp-eventlog/internal/unixsock"
	"github.com/ccnp-eventlog/ccnp-eventlog/outdir"
	eventlogpb "github.com/ccnp-eventlog/ccnp-eventlog/proto"
	"github.com/ccnp-eventlog/ccnp-eventlog/runtimelog"
	"github.com/ccnp-eventlog/ccnp-eventlog/service"
	"github.com/ccnp-eventlog/ccnp-eventlog/simulator"
)

// Container IDs and the cgroup lines their processes have.
const (
	ctrA = "8f3c2a41d6e07b95c1a2f4e6d8b0c3a5e7f9d1b3c5a7e9f1d3b5c7a9e1f3d5b7"
	ctrB = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	ctrC = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
)

// cgroupOf is the cgroup file of a process in container id, as containerd
// with the systemd driver on cgroup v2 writes it.
func cgroupOf(id string) string {
	return "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod2b1c_3d4e.slice/cri-containerd-" + id + ".scope\n"
}

const hostProcess = "0::/user.slice/user-0.slice/session-1.scope\n"

// runtimeEnv is what outlives one server: the state and output
// directories, the simulated TD's registers, the fake /proc.
type runtimeEnv struct {
	dir      string // short, for the socket
	state    string
	outDir   string
	proc     string
	tdxState string
	// cgroup is the cgroup v2 hierarchy the server sees: a directory
	// standing for the node's /sys/fs/cgroup, where setCgroup makes each
	// caller's cgroup as its runtime would (owned by root).
	cgroup string
	opts   service.RuntimeOptions
	ident  service.IdentityOptions
	// zeroBasedStart is service.Options.ZeroBasedStart.
	zeroBasedStart bool
	// logs receives the servers' logs when set.
	logs io.Writer
}

func newRuntimeEnv(t *testing.T) *runtimeEnv {
	t.Helper()
	dir, err := os.MkdirTemp("", "saas")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755) // children running as other uids reach the socket and files
	e := &runtimeEnv{
		dir:      dir,
		state:    filepath.Join(dir, "state"),
		outDir:   filepath.Join(dir, "out"),
		proc:     filepath.Join(dir, "proc"),
		tdxState: filepath.Join(dir, "tdx-rtmrs.json"),
	}
	e.opts = service.RuntimeOptions{StateDir: e.state, ProcRoot: e.proc}
	e.cgroup = filepath.Join(dir, "cgroup")
	if err := os.Mkdir(e.cgroup, 0o755); err != nil {
		t.Fatal(err)
	}
	// The server runs at the hierarchy's root, as on a host.
	node, err := containerid.NewNode(e.cgroup, []byte("30 1 0:30 / "+e.cgroup+" rw,relatime - cgroup2 cgroup2 rw\n"), []byte("0::/\n"))
	if err != nil {
		t.Fatal(err)
	}
	e.ident = service.IdentityOptions{Node: node}
	return e
}

// setCgroup writes the fake /proc/<pid>/cgroup the server reads for pid.
func (e *runtimeEnv) setCgroup(t *testing.T, pid int, content string) {
	t.Helper()
	dir := filepath.Join(e.proc, strconv.Itoa(pid))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	e.linkNamespaces(t, pid)
	for line := range strings.Lines(content) {
		_, path, _ := strings.Cut(strings.TrimSpace(line), "::")
		if err := os.MkdirAll(filepath.Join(e.cgroup, path), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// linkNamespaces gives the fake /proc/<pid> the real process's namespaces,
// for the runtime check.
func (e *runtimeEnv) linkNamespaces(t *testing.T, pid int) {
	t.Helper()
	dir := filepath.Join(e.proc, strconv.Itoa(pid))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "ns")); err != nil {
		if err := os.Symlink(fmt.Sprintf("/proc/%d/ns", pid), filepath.Join(dir, "ns")); err != nil {
			t.Fatal(err)
		}
	}
}

// as makes this test process a member of container id, for the server.
func (e *runtimeEnv) as(t *testing.T, id string) { e.setCgroup(t, os.Getpid(), cgroupOf(id)) }

// newTDX powers on the simulated TD, resuming its registers from the state file.
func (e *runtimeEnv) newTDX(t *testing.T) *simulator.TDX {
	t.Helper()
	td, err := simulator.NewTDX(simulator.TDXConfig{Seed: 21, StateFile: e.tdxState})
	if err != nil {
		t.Fatal(err)
	}
	return td
}

// rserver is a server with container-level events on.
type rserver struct {
	*server
	tdx  hwsource.Extender
	stop func()
}

// start serves tdx as the TDX source on a real Unix socket.
func (e *runtimeEnv) start(t *testing.T, tdx hwsource.Extender) *rserver {
	t.Helper()
	s := e.serve(t, map[eventlogpb.CATEGORY]hwsource.Source{eventlogpb.CATEGORY_TDX_EVENTLOG: tdx})
	s.tdx = tdx
	return s
}

// serve serves srcs on a real Unix socket, once it is healthy.
func (e *runtimeEnv) serve(t *testing.T, srcs map[eventlogpb.CATEGORY]hwsource.Source) *rserver {
	t.Helper()
	svc, err := service.New(srcs, service.Options{
		OutputDir: e.outDir,
		Limits:    outdir.Limits{MaxBytes: 16 << 20, MaxAge: time.Hour, MinLifetime: time.Minute},
		Logger:    slog.New(slog.NewTextHandler(cmp.Or(e.logs, io.Discard), nil)),
		Runtime:   e.opts,
		Identity:  e.ident,

		ZeroBasedStart: e.zeroBasedStart,
	})
	if err != nil {
		t.Fatal(err)
	}
	socket := filepath.Join(e.dir, "eventlog.sock")
	lis, err := unixsock.Listen(socket, 0o666)
	if err != nil {
		t.Fatal(err)
	}
	g, hs := svc.NewGRPCServer()
	ctx, cancel := context.WithCancel(context.Background())
	go svc.WatchHealth(ctx, hs, 50*time.Millisecond)
	go g.Serve(lis)
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	s := &rserver{
		server: &server{svc: svc, socket: socket, outDir: e.outDir, client: eventlogpb.NewEventlogClient(conn), health: healthpb.NewHealthClient(conn)},
	}
	var once sync.Once
	s.stop = func() {
		once.Do(func() {
			conn.Close()
			cancel()
			g.Stop()
			svc.Close()
		})
	}
	t.Cleanup(s.stop)
	waitHealth(t, s.server, healthpb.HealthCheckResponse_SERVING)
	return s
}

func (s *rserver) record(t *testing.T, data string) (*eventlogpb.RecordEventReply, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return s.client.RecordEvent(ctx, &eventlogpb.RecordEventRequest{Data: []byte(data)})
}

func (s *rserver) mustRecord(t *testing.T, data string) *eventlogpb.RecordEventReply {
	t.Helper()
	r, err := s.record(t, data)
	if err != nil {
		t.Fatalf("recording %q: %v", data, err)
	}
	return r
}

// own fetches the calling container's log, inline and raw, parsed.
func (s *rserver) own(t *testing.T) *eventlog.Log {
	t.Helper()
	r, err := s.get(t, &eventlogpb.GetEventlogRequest{EventlogLevel: eventlogpb.LEVEL_SAAS, Format: eventlogpb.FORMAT_TCG_RAW, Inline: true})
	if err != nil {
		t.Fatal(err)
	}
	l, err := eventlog.Parse(r.EventlogData)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// platform fetches the PAAS TDX log, inline and raw, parsed.
func (s *rserver) platform(t *testing.T) *eventlog.Log {
	t.Helper()
	r, err := s.get(t, &eventlogpb.GetEventlogRequest{Format: eventlogpb.FORMAT_TCG_RAW, Inline: true})
	if err != nil {
		t.Fatal(err)
	}
	l, err := eventlog.Parse(r.EventlogData)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func datas(l *eventlog.Log) []string {
	var ds []string
	for _, e := range l.Events {
		ds = append(ds, string(e.Data))
	}
	return ds
}

func sha384Hex(s string) string {
	d := sha512.Sum384([]byte(s))
	return hex.EncodeToString(d[:])
}

// rtmr3After is RTMR3 after extending, from zero, the SHA-384 of each datum:
// computed here, independently of the server and the simulator.
func rtmr3After(data ...string) []byte {
	v := make([]byte, 48)
	for _, d := range data {
		digest := sha512.Sum384([]byte(d))
		h := sha512.Sum384(append(v, digest[:]...))
		v = h[:]
	}
	return v
}

func liveRTMR3(t *testing.T, src hwsource.Source) []byte {
	t.Helper()
	b, err := src.Registers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return b.Get(eventlog.AlgSHA384, 4)
}

// checkPlatformReplay: replaying the PAAS log gives every live RTMR.
func checkPlatformReplay(t *testing.T, s *rserver) *eventlog.Log {
	t.Helper()
	l := s.platform(t)
	replayed, err := eventlog.Replay(l)
	if err != nil {
		t.Fatal(err)
	}
	live, err := s.tdx.Registers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for i := uint32(1); i <= 4; i++ {
		want := live.Get(eventlog.AlgSHA384, i)
		got := replayed.Get(eventlog.AlgSHA384, i)
		if got == nil {
			got = make([]byte, 48)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("PAAS log replays RTMR%d to %x, the live register is %x", i-1, got, want)
		}
	}
	return l
}

func TestContainerEventsAreTheContainersOwn(t *testing.T) {
	e := newRuntimeEnv(t)
	td := e.newTDX(t)
	s := e.start(t, td)
	bootEvents := len(s.platform(t).Events)

	e.as(t, ctrA)
	for i, d := range []string{"a1", "a2"} {
		r := s.mustRecord(t, d)
		if r.EventNum != uint32(i+1) || r.ContainerId != ctrA || r.Register != "RTMR3" || r.Index != 4 || !r.Simulated ||
			r.EventType != uint32(eventlog.EvEventTag) || r.Digests["sha384"] != sha384Hex(d) || len(r.Digests) != 1 {
			t.Errorf("recording %q: %v", d, r)
		}
		if r.LogEventNum != uint32(bootEvents+i+1) {
			t.Errorf("recording %q: platform event %d, want %d", d, r.LogEventNum, bootEvents+i+1)
		}
	}
	e.as(t, ctrB)
	s.mustRecord(t, "b1")
	r, err := s.client.RecordEvent(context.Background(), &eventlogpb.RecordEventRequest{Data: []byte("b2"), EventType: uint32(eventlog.EvAction)})
	if err != nil || r.EventNum != 2 || r.EventType != uint32(eventlog.EvAction) {
		t.Fatalf("recording with a type: %v %v", r, err)
	}
	e.as(t, ctrA)
	s.mustRecord(t, "a3")

	// Each container sees its own events, numbered from 1, with the boot
	// log's Spec ID header.
	boot := s.platform(t)
	for id, want := range map[string][]string{ctrA: {"a1", "a2", "a3"}, ctrB: {"b1", "b2"}, ctrC: nil} {
		e.as(t, id)
		l := s.own(t)
		if got := datas(l); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("container %.12s sees %v, want %v", id, got, want)
		}
		if !bytes.Equal(l.Header.Raw, boot.Header.Raw) {
			t.Errorf("container %.12s: the file's header is not the boot log's Spec ID event", id)
		}
		for i, ev := range l.Events {
			if ev.Num != i+1 || ev.Index != 4 || hex.EncodeToString(ev.Digest(eventlog.AlgSHA384)) != sha384Hex(want[i]) {
				t.Errorf("container %.12s event %d: num %d index %d", id, i+1, ev.Num, ev.Index)
			}
		}
	}

	// The platform log: the boot events, then every runtime event in the
	// order recorded; its replay gives the live RTMR3, which is what
	// extending the data's digests from zero gives.
	l := checkPlatformReplay(t, s)
	if got := datas(l)[bootEvents:]; fmt.Sprint(got) != "[a1 a2 b1 b2 a3]" {
		t.Errorf("the platform log's runtime events are %v", got)
	}
	if got, want := liveRTMR3(t, td), rtmr3After("a1", "a2", "b1", "b2", "a3"); !bytes.Equal(got, want) {
		t.Errorf("live RTMR3 %x, want %x", got, want)
	}
	v, err := s.verify(t, eventlogpb.CATEGORY_TDX_EVENTLOG)
	if err != nil || !v.Verified {
		t.Errorf("VerifyEventlog after runtime events: %v %v", v, err)
	}
}

func TestContainerLogFilesAndPaging(t *testing.T) {
	e := newRuntimeEnv(t)
	s := e.start(t, e.newTDX(t))
	e.as(t, ctrA)
	for _, d := range []string{"one", "two", "three"} {
		s.mustRecord(t, d)
	}
	saas := func(req *eventlogpb.GetEventlogRequest) (*eventlogpb.GetEventlogReply, error) {
		req.EventlogLevel = eventlogpb.LEVEL_SAAS
		return s.get(t, req)
	}

	r, err := saas(&eventlogpb.GetEventlogRequest{})
	if err != nil {
		t.Fatal(err)
	}
	containers := filepath.Join(e.outDir, "containers")
	dir := filepath.Dir(r.EventlogDataLoc)
	if filepath.Dir(dir) != containers || len(filepath.Base(dir)) != 32 || strings.Contains(r.EventlogDataLoc, ctrA) {
		t.Errorf("file %s: want it in a directory under %s named without the container ID", r.EventlogDataLoc, containers)
	}
	for path, mode := range map[string]os.FileMode{containers: 0o711, dir: 0o711, r.EventlogDataLoc: 0o400} {
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s: mode %v (%v), want %v", path, fi.Mode().Perm(), err, mode)
		}
	}
	f := readJSON(t, r.EventlogDataLoc)
	if len(f.EventLogs) != 3 || f.TotalEvents != 3 || r.EventCount != 3 || r.TotalEvents != 3 || r.FirstEvent != 1 {
		t.Fatalf("JSON file: %d events (total %d); reply %v", len(f.EventLogs), f.TotalEvents, r)
	}
	for i, ev := range f.EventLogs {
		if ev.EventNum != i+1 || ev.Register != "RTMR3" || ev.Rtmr == nil || *ev.Rtmr != 3 || ev.DigestsHex["sha384"] != sha384Hex([]string{"one", "two", "three"}[i]) {
			t.Errorf("JSON event %d: %+v", i+1, ev)
		}
	}
	if !strings.Contains(r.Source, ctrA[:12]) || !r.Simulated {
		t.Errorf("reply source %q simulated %v", r.Source, r.Simulated)
	}

	// Paging as for PAAS.
	r, err = saas(&eventlogpb.GetEventlogRequest{StartPosition: 2, Count: 1, Format: eventlogpb.FORMAT_TCG_RAW})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(r.EventlogDataLoc)
	l, err := eventlog.Parse(b)
	if err != nil || fmt.Sprint(datas(l)) != "[two]" || r.FirstEvent != 2 || r.EventCount != 1 || r.TotalEvents != 3 {
		t.Errorf("start 2 count 1: %v, reply %v (%v)", datas(l), r, err)
	}
	r, err = saas(&eventlogpb.GetEventlogRequest{StartPosition: 3, Count: 10})
	if err != nil || r.EventCount != 1 {
		t.Errorf("start 3 count 10: %v %v", r, err)
	}
	_, err = saas(&eventlogpb.GetEventlogRequest{StartPosition: 4})
	wantCode(t, err, codes.OutOfRange, "has 3 events")

	// Inline: the same content, no file.
	file, err := saas(&eventlogpb.GetEventlogRequest{Format: eventlogpb.FORMAT_TCG_RAW})
	if err != nil {
		t.Fatal(err)
	}
	inline, err := saas(&eventlogpb.GetEventlogRequest{Format: eventlogpb.FORMAT_TCG_RAW, Inline: true})
	if err != nil {
		t.Fatal(err)
	}
	content, _ := os.ReadFile(file.EventlogDataLoc)
	if inline.EventlogDataLoc != "" || !bytes.Equal(inline.EventlogData, content) || inline.Sha256 != file.Sha256 {
		t.Errorf("inline reply: path %q, %d bytes; the file has %d", inline.EventlogDataLoc, len(inline.EventlogData), len(content))
	}
	// A file asked for twice is the same file.
	again, _ := saas(&eventlogpb.GetEventlogRequest{Format: eventlogpb.FORMAT_TCG_RAW})
	if again.EventlogDataLoc != file.EventlogDataLoc {
		t.Errorf("the same request gave two files: %s, %s", file.EventlogDataLoc, again.EventlogDataLoc)
	}
	// Another container gets another directory.
	e.as(t, ctrB)
	other, err := saas(&eventlogpb.GetEventlogRequest{})
	if err != nil || filepath.Dir(other.EventlogDataLoc) == dir || other.TotalEvents != 0 {
		t.Errorf("another container: %v %v", other, err)
	}

	// PAAS inline works too.
	p, err := s.get(t, &eventlogpb.GetEventlogRequest{Inline: true})
	if err != nil || p.EventlogDataLoc != "" || len(p.EventlogData) == 0 || p.TotalEvents == 0 {
		t.Errorf("PAAS inline: %v", err)
	}
}

func TestContainerLevelOutsideContainers(t *testing.T) {
	e := newRuntimeEnv(t)
	s := e.start(t, e.newTDX(t))
	e.setCgroup(t, os.Getpid(), hostProcess)
	_, err := s.record(t, "x")
	wantCode(t, err, codes.FailedPrecondition, "in none", "session-1.scope")
	_, err = s.get(t, &eventlogpb.GetEventlogRequest{EventlogLevel: eventlogpb.LEVEL_SAAS})
	wantCode(t, err, codes.FailedPrecondition, "in none")
	// The platform log is everyone's.
	if _, err := s.get(t, &eventlogpb.GetEventlogRequest{}); err != nil {
		t.Error(err)
	}
	// A process the server cannot see under its /proc.
	os.RemoveAll(filepath.Join(e.proc, strconv.Itoa(os.Getpid())))
	_, err = s.record(t, "x")
	wantCode(t, err, codes.FailedPrecondition, "hostPID")
}

func TestContainerLevelLimitsAndBadRequests(t *testing.T) {
	e := newRuntimeEnv(t)
	e.opts.MaxEvents = 3
	e.opts.MaxBytes = 40
	e.opts.MaxEventSize = 16
	e.opts.MaxLogBytes = 2000
	td := e.newTDX(t)
	s := e.start(t, td)
	e.as(t, ctrA)

	for _, tc := range []struct {
		req  *eventlogpb.RecordEventRequest
		code codes.Code
		msg  string
	}{
		{&eventlogpb.RecordEventRequest{Data: []byte("x"), EventType: 3}, codes.InvalidArgument, "EV_NO_ACTION"},
		{&eventlogpb.RecordEventRequest{}, codes.InvalidArgument, "data is empty"},
		{&eventlogpb.RecordEventRequest{Data: []byte("x"), EventlogCategory: 9}, codes.InvalidArgument, "eventlog_category 9"},
		{&eventlogpb.RecordEventRequest{Data: bytes.Repeat([]byte("x"), 17)}, codes.ResourceExhausted, "--saas-max-event-size"},
		// This server has no TPM source.
		{&eventlogpb.RecordEventRequest{Data: []byte("x"), EventlogCategory: eventlogpb.CATEGORY_TPM_EVENTLOG}, codes.FailedPrecondition, "no TPM_EVENTLOG source"},
	} {
		_, err := s.client.RecordEvent(context.Background(), tc.req)
		wantCode(t, err, tc.code, tc.msg)
	}

	// Per container: data size, then count.
	s.mustRecord(t, strings.Repeat("a", 16))
	s.mustRecord(t, strings.Repeat("b", 16))
	_, err := s.record(t, strings.Repeat("c", 9)) // 32 + 9 > 40
	wantCode(t, err, codes.ResourceExhausted, "--saas-max-bytes", ctrA[:12])
	s.mustRecord(t, "c")
	_, err = s.record(t, "d")
	wantCode(t, err, codes.ResourceExhausted, "--saas-max-events")
	// Refused events leave no trace.
	if got := datas(s.own(t)); len(got) != 3 {
		t.Errorf("after refusals the container has %v", got)
	}
	if !bytes.Equal(liveRTMR3(t, td), rtmr3After(strings.Repeat("a", 16), strings.Repeat("b", 16), "c")) {
		t.Error("a refused event reached RTMR3")
	}

	// The node's runtime log as a whole: other containers fill it up.
	var full error
	for i := 0; i < 40 && full == nil; i++ {
		e.as(t, fmt.Sprintf("%064x", i+1))
		_, full = s.record(t, "filler")
	}
	wantCode(t, full, codes.ResourceExhausted, "--runtime-max-bytes", "reboots")
	checkPlatformReplay(t, s)
}

// TestRestartRecovers plays, with the server stopped, what a crash at each
// point of a record leaves, and checks what a restarted server makes of it.
func TestRestartRecovers(t *testing.T) {
	e := newRuntimeEnv(t)
	s := e.start(t, e.newTDX(t))
	e.as(t, ctrA)
	s.mustRecord(t, "r1")
	s.mustRecord(t, "r2")
	s.stop()
	ctx := context.Background()

	// appendRecord appends a record as the server would, with the server down.
	appendRecord := func(data string) {
		t.Helper()
		td := e.newTDX(t)
		boot, _ := td.BootID(ctx)
		d, err := runtimelog.OpenDir(e.state)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		j, _, err := d.Open(eventlog.TDX, boot)
		if err != nil {
			t.Fatal(err)
		}
		defer j.Close()
		ev := eventlog.AppendEvent2(nil, 4, eventlog.EvEventTag, eventlog.Measure([]byte(data), []eventlog.Alg{eventlog.AlgSHA384}), []byte(data))
		if err := j.Append(&runtimelog.Record{ContainerID: ctrA, UID: 0, Event: ev}); err != nil {
			t.Fatal(err)
		}
	}
	extend := func(data string) {
		t.Helper()
		if err := e.newTDX(t).Extend(ctx, 4, eventlog.Measure([]byte(data), []eventlog.Alg{eventlog.AlgSHA384})); err != nil {
			t.Fatal(err)
		}
	}
	check := func(s *rserver, want ...string) {
		t.Helper()
		if got := datas(s.own(t)); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("the container's events are %v, want %v", got, want)
		}
		if got := liveRTMR3(t, s.tdx); !bytes.Equal(got, rtmr3After(want...)) {
			t.Errorf("RTMR3 is not the extend of exactly %v, once each", want)
		}
		checkPlatformReplay(t, s)
	}

	// Killed between append and extend: the restart extends the record.
	appendRecord("r3")
	s = e.start(t, e.newTDX(t))
	check(s, "r1", "r2", "r3")
	s.stop()
	// A second restart finds nothing to do: nothing is counted twice.
	s = e.start(t, e.newTDX(t))
	check(s, "r1", "r2", "r3")
	s.stop()

	// Killed after the extend, before the reply: nothing to do.
	appendRecord("r4")
	extend("r4")
	s = e.start(t, e.newTDX(t))
	check(s, "r1", "r2", "r3", "r4")
	s.mustRecord(t, "r5")
	check(s, "r1", "r2", "r3", "r4", "r5")
	s.stop()

	// Killed in the middle of writing the record: it is dropped (it was
	// never extended).
	journal := filepath.Join(e.state, "runtime-tdx.log")
	f, err := os.OpenFile(journal, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{60, 0, 0, 0, 1, 2, 3}) // an entry header claiming 60 bytes, cut short
	f.Close()
	s = e.start(t, e.newTDX(t))
	check(s, "r1", "r2", "r3", "r4", "r5")
	s.stop()

	// RTMR3 extended behind the server's back: reported, not guessed.
	extend("intruder")
	s = e.start(t, e.newTDX(t))
	_, err = s.record(t, "r6")
	wantCode(t, err, codes.FailedPrecondition, "something other than this server extended the register")
	// What was recorded is still served.
	if got := datas(s.own(t)); len(got) != 5 {
		t.Errorf("after a mismatch the container's events are %v", got)
	}
	s.stop()

	// A new boot (the simulated TD powered off): the registers start over,
	// the old runtime log is set aside.
	os.Remove(e.tdxState)
	s = e.start(t, e.newTDX(t))
	check(s)
	if _, err := os.Stat(journal + runtimelog.PreviousBootSuffix); err != nil {
		t.Errorf("the earlier boot's runtime log was not kept: %v", err)
	}
	s.mustRecord(t, "new boot")
	check(s, "new boot")
}

// faultyTDX is the simulated TD with extends that fail on demand, the way
// a sysfs write or a TPM command can: before the extend, after it, or with
// the registers unreadable too.
type faultyTDX struct {
	*simulator.TDX
	mu         sync.Mutex
	failBefore bool // fail without extending
	failAfter  bool // extend, then fail (a reply lost)
	blind      bool // Registers fail as well
	noop       bool // report success without extending
}

func (f *faultyTDX) Extend(ctx context.Context, index uint32, digests []eventlog.Digest) error {
	f.mu.Lock()
	before, after, noop := f.failBefore, f.failAfter, f.noop
	f.failBefore, f.failAfter = false, false
	f.mu.Unlock()
	if before {
		return errors.New("injected: the extend did not happen")
	}
	if noop {
		return nil
	}
	if err := f.TDX.Extend(ctx, index, digests); err != nil {
		return err
	}
	if after {
		return errors.New("injected: the extend happened but its reply was lost")
	}
	return nil
}

func (f *faultyTDX) Registers(ctx context.Context) (eventlog.Bank, error) {
	f.mu.Lock()
	blind := f.blind
	f.mu.Unlock()
	if blind {
		return nil, fmt.Errorf("%w: injected", hwsource.ErrNotAvailable)
	}
	return f.TDX.Registers(ctx)
}

func (f *faultyTDX) set(fn func(*faultyTDX)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func TestFailedExtends(t *testing.T) {
	e := newRuntimeEnv(t)
	td := &faultyTDX{TDX: e.newTDX(t)}
	s := e.start(t, td)
	e.as(t, ctrA)
	s.mustRecord(t, "e1")
	journal := filepath.Join(e.state, "runtime-tdx.log")
	size := func() int64 { fi, _ := os.Stat(journal); return fi.Size() }

	// The extend did not happen: the record is taken back, the caller told.
	before := size()
	td.set(func(f *faultyTDX) { f.failBefore = true })
	_, err := s.record(t, "lost")
	wantCode(t, err, codes.Unavailable, "not recorded", "injected")
	if size() != before {
		t.Errorf("the runtime log grew by %d bytes for an event that was not extended", size()-before)
	}

	// It happened, though the source said otherwise: the register rules.
	td.set(func(f *faultyTDX) { f.failAfter = true })
	if r := s.mustRecord(t, "e2"); r.EventNum != 2 {
		t.Errorf("event number %d, want 2", r.EventNum)
	}

	// Nobody can tell: the event waits, then is settled before the next.
	td.set(func(f *faultyTDX) { f.failBefore, f.blind = true, true })
	_, err = s.record(t, "e3")
	wantCode(t, err, codes.Unavailable, "do not record it again")
	if got := datas(s.own(t)); fmt.Sprint(got) != "[e1 e2]" {
		t.Errorf("an unsettled event is served: %v", got)
	}
	_, err = s.record(t, "e4") // registers still unreadable
	wantCode(t, err, codes.FailedPrecondition, "cannot be read")
	td.set(func(f *faultyTDX) { f.blind = false })
	s.mustRecord(t, "e4")
	if got := datas(s.own(t)); fmt.Sprint(got) != "[e1 e2 e3 e4]" {
		t.Errorf("after the registers came back: %v", got)
	}
	if !bytes.Equal(liveRTMR3(t, td), rtmr3After("e1", "e2", "e3", "e4")) {
		t.Error("RTMR3 is not the extend of e1..e4, once each")
	}
	checkPlatformReplay(t, s)

	// A waiting event whose extend reports success but changes nothing
	// is not confirmed, and the caller is told why.
	td.set(func(f *faultyTDX) { f.failBefore, f.blind = true, true })
	_, err = s.record(t, "e5")
	wantCode(t, err, codes.Unavailable, "do not record it again")
	td.set(func(f *faultyTDX) { f.blind, f.noop = false, true })
	_, err = s.record(t, "e6")
	wantCode(t, err, codes.FailedPrecondition, "RTMR3 with record 5", "did not take effect")
	if got := datas(s.own(t)); fmt.Sprint(got) != "[e1 e2 e3 e4]" {
		t.Errorf("an event the register lacks is served: %v", got)
	}
}

// TestConcurrentRecords: many containers recording at once; every event
// lands once, the register agrees with the log, and each container sees
// its own events in its own order.
func TestConcurrentRecords(t *testing.T) {
	e := newRuntimeEnv(t)
	td := e.newTDX(t)
	s := e.start(t, td)
	// One process, so one identity: the containers take turns per request
	// through the fake /proc, under a lock; the records race on the server.
	var mu sync.Mutex
	var wg sync.WaitGroup
	const containers, each = 4, 10
	for c := range containers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("%064x", c+100)
			for i := range each {
				mu.Lock()
				e.as(t, id)
				_, err := s.record(t, fmt.Sprintf("c%d-%d", c, i))
				mu.Unlock()
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	// Readers of the platform log meanwhile.
	done, readerDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(readerDone)
		for {
			select {
			case <-done:
				return
			default:
				if _, err := s.get(t, &eventlogpb.GetEventlogRequest{Inline: true}); err != nil {
					t.Error(err)
					return
				}
			}
		}
	}()
	wg.Wait()
	close(done)
	<-readerDone // its last request must not meet the connection closing
	l := checkPlatformReplay(t, s)
	if n := len(datas(l)); n < containers*each {
		t.Errorf("platform log has %d events", n)
	}
	for c := range containers {
		e.as(t, fmt.Sprintf("%064x", c+100))
		var want []string
		for i := range each {
			want = append(want, fmt.Sprintf("c%d-%d", c, i))
		}
		if got := datas(s.own(t)); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("container %d: %v", c, got)
		}
	}
}

// TestSimulatedTPMRuntimeEvents: PCR 23 on the go-tpm-tools simulator, in
// both of the log's banks.
func TestSimulatedTPMRuntimeEvents(t *testing.T) {
	e := newRuntimeEnv(t)
	tpm, err := simulator.NewTPM(simulator.TPMConfig{Seed: 6})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tpm.Close() }) // after the server stops
	client := e.serve(t, map[eventlogpb.CATEGORY]hwsource.Source{eventlogpb.CATEGORY_TPM_EVENTLOG: tpm}).client
	ctx := context.Background()

	e.as(t, ctrA)
	r, err := client.RecordEvent(ctx, &eventlogpb.RecordEventRequest{EventlogCategory: eventlogpb.CATEGORY_TPM_EVENTLOG, Data: []byte("tpm runtime")})
	if err != nil {
		t.Fatal(err)
	}
	if r.Register != "PCR23" || r.Index != 23 || len(r.Digests) != 2 || r.Digests["sha256"] == "" || r.Digests["sha1"] == "" {
		t.Errorf("reply %v", r)
	}
	paas, err := client.GetEventlog(ctx, &eventlogpb.GetEventlogRequest{EventlogCategory: eventlogpb.CATEGORY_TPM_EVENTLOG, Format: eventlogpb.FORMAT_TCG_RAW, Inline: true})
	if err != nil {
		t.Fatal(err)
	}
	l, err := eventlog.Parse(paas.EventlogData)
	if err != nil {
		t.Fatal(err)
	}
	replayed, _ := eventlog.Replay(l)
	live, err := tpm.Registers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, alg := range []eventlog.Alg{eventlog.AlgSHA1, eventlog.AlgSHA256} {
		if !bytes.Equal(replayed.Get(alg, 23), live.Get(alg, 23)) {
			t.Errorf("%s PCR23: replay %x, live %x", alg, replayed.Get(alg, 23), live.Get(alg, 23))
		}
	}
	own, err := client.GetEventlog(ctx, &eventlogpb.GetEventlogRequest{EventlogLevel: eventlogpb.LEVEL_SAAS, EventlogCategory: eventlogpb.CATEGORY_TPM_EVENTLOG, Inline: true, Format: eventlogpb.FORMAT_TCG_RAW})
	if err != nil {
		t.Fatal(err)
	}
	ol, err := eventlog.Parse(own.EventlogData)
	if err != nil || len(ol.Events) != 1 || string(ol.Events[0].Data) != "tpm runtime" || ol.Events[0].Index != 23 {
		t.Errorf("the container's TPM log: %v %v", datas(ol), err)
	}
}

// TestStateDirInUse: two servers must not share a state directory; the
// second still serves platform logs and says why container-level events
// are off.
func TestStateDirInUse(t *testing.T) {
	e := newRuntimeEnv(t)
	e.start(t, e.newTDX(t))
	other := *e
	other.dir = t.TempDir()
	other.outDir = filepath.Join(other.dir, "out")
	e.as(t, ctrA)
	second := other.start(t, e.newTDX(t))
	if _, err := second.get(t, &eventlogpb.GetEventlogRequest{}); err != nil {
		t.Errorf("the second server's platform log: %v", err)
	}
	_, err := second.record(t, "x")
	wantCode(t, err, codes.FailedPrecondition, "in use by another server")

	for _, bad := range []service.RuntimeOptions{
		{StateDir: e.state, MaxEventSize: 10, MaxBytes: 5},
		{StateDir: e.state, MaxBytes: 10, MaxLogBytes: 5},
		{StateDir: e.state, MaxEvents: -1},
	} {
		if _, err := service.New(nil, service.Options{OutputDir: t.TempDir(), Limits: outdir.Limits{MaxBytes: 1, MaxAge: time.Hour, MinLifetime: time.Minute}, Runtime: bad}); err == nil {
			t.Errorf("options %+v accepted", bad)
		}
	}
	// Called without a socket, the service cannot tell who calls.
	_, err = second.svc.RecordEvent(context.Background(), &eventlogpb.RecordEventRequest{Data: []byte("x")})
	wantCode(t, err, codes.Unauthenticated, "Unix socket")
}

// The files of a container are its caller's: the rest of this file runs
// clients as separate processes, with their own pids and uids.

// helperEnv makes TestContainerClientProcess act as a client.
const helperEnv = "SAAS_TEST_CLIENT_SOCKET"

// TestContainerClientProcess is not a test: run by
// TestFilesArePrivateToTheCallingUID as a client process, it waits for a
// line on stdin (the server learns its cgroup meanwhile), records an event,
// fetches its container's log as a file, reads it, tries to read the
// path in SAAS_TEST_PEEK and to list the containers directory, and prints
// what happened.
func TestContainerClientProcess(t *testing.T) {
	socket := os.Getenv(helperEnv)
	if socket == "" {
		t.Skip("run as a client process by TestFilesArePrivateToTheCallingUID")
	}
	fmt.Printf("ready %d\n", os.Getpid())
	var line string
	fmt.Scanln(&line)
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Println("error", err)
		return
	}
	defer conn.Close()
	c := eventlogpb.NewEventlogClient(conn)
	ctx := context.Background()
	if _, err := c.RecordEvent(ctx, &eventlogpb.RecordEventRequest{Data: []byte(os.Getenv("SAAS_TEST_DATA"))}); err != nil {
		fmt.Println("error", err)
		return
	}
	r, err := c.GetEventlog(ctx, &eventlogpb.GetEventlogRequest{EventlogLevel: eventlogpb.LEVEL_SAAS, Format: eventlogpb.FORMAT_TCG_RAW})
	if err != nil {
		fmt.Println("error", err)
		return
	}
	fmt.Println("path", r.EventlogDataLoc)
	b, err := os.ReadFile(r.EventlogDataLoc)
	if err != nil {
		fmt.Println("own", err)
	} else if l, err := eventlog.Parse(b); err != nil {
		fmt.Println("own", err)
	} else {
		fmt.Println("own", strings.Join(datas(l), ","))
	}
	if peek := os.Getenv("SAAS_TEST_PEEK"); peek != "" {
		_, err := os.ReadFile(peek)
		fmt.Println("peek", errors.Is(err, os.ErrPermission))
	}
	_, err = os.ReadDir(filepath.Dir(filepath.Dir(r.EventlogDataLoc)))
	fmt.Println("list", errors.Is(err, os.ErrPermission))
}

type clientResult struct {
	pid        int
	path, own  string
	peekDenied string
	listDenied string
}

// runClient runs the test binary as a client process with uid (if root) in
// container id, recording data.
func runClient(t *testing.T, e *runtimeEnv, bin string, uid int, id, data, peek string) clientResult {
	t.Helper()
	cmd := exec.Command(bin, "-test.run", "^TestContainerClientProcess$")
	cmd.Env = append(os.Environ(), helperEnv+"="+filepath.Join(e.dir, "eventlog.sock"), "SAAS_TEST_DATA="+data, "SAAS_TEST_PEEK="+peek)
	if os.Geteuid() == 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}}
	}
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	out := &lineReader{bufio.NewReader(stdout)}
	var r clientResult
	if _, err := fmt.Sscanf(out.next(t), "ready %d", &r.pid); err != nil || r.pid != cmd.Process.Pid {
		t.Fatalf("client said it is pid %d, it is %d (%v)", r.pid, cmd.Process.Pid, err)
	}
	// The server learns the client's container from its pid.
	e.setCgroup(t, r.pid, cgroupOf(id))
	io.WriteString(stdin, "go\n")
	for line := out.next(t); line != ""; line = out.next(t) {
		k, v, _ := strings.Cut(line, " ")
		switch k {
		case "error":
			t.Fatalf("client: %s", v)
		case "path":
			r.path = v
		case "own":
			r.own = v
		case "peek":
			r.peekDenied = v
		case "list":
			r.listDenied = v
		}
	}
	cmd.Wait()
	return r
}

func TestFilesArePrivateToTheCallingUID(t *testing.T) {
	e := newRuntimeEnv(t)
	e.start(t, e.newTDX(t))
	bin := filepath.Join(e.dir, "service.test")
	b, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	root := os.Geteuid() == 0
	uid1, uid2 := os.Geteuid(), os.Geteuid()
	if root {
		uid1, uid2 = nobody, nobody-1
	}

	a := runClient(t, e, bin, uid1, ctrA, "from A", "")
	if a.own != "from A" {
		t.Fatalf("the client read %q from its own file", a.own)
	}
	fi, err := os.Stat(a.path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	di, _ := os.Stat(filepath.Dir(a.path))
	dst := di.Sys().(*syscall.Stat_t)
	// The file is the client's; the directory the server's, so that the
	// client cannot put anything there for the server to follow.
	if int(st.Uid) != uid1 || int(dst.Uid) != os.Geteuid() || fi.Mode().Perm() != 0o400 || di.Mode().Perm() != 0o711 {
		t.Errorf("file uid %d mode %v, directory uid %d mode %v; want the client's uid %d and 0400, the server's uid %d and 0711", st.Uid, fi.Mode().Perm(), dst.Uid, di.Mode().Perm(), uid1, os.Geteuid())
	}
	if !root {
		t.Skip("the rest needs root: clients of other uids")
	}
	if a.listDenied != "true" {
		t.Error("a client could list the containers directory")
	}
	// Another uid in the same container: its own directory; A's file is
	// closed to it even with the path in hand.
	a2 := runClient(t, e, bin, uid2, ctrA, "from A as another uid", a.path)
	if a2.peekDenied != "true" || filepath.Dir(a2.path) == filepath.Dir(a.path) {
		t.Errorf("another uid: peek denied %s, directory %s (A's %s)", a2.peekDenied, filepath.Dir(a2.path), filepath.Dir(a.path))
	}
	if a2.own != "from A,from A as another uid" {
		t.Errorf("the container's second uid sees %q: the container's events are the container's", a2.own)
	}
	// The same uid in another container: another directory, its own events.
	b2 := runClient(t, e, bin, uid1, ctrB, "from B", "")
	if b2.own != "from B" || filepath.Dir(b2.path) == filepath.Dir(a.path) {
		t.Errorf("container B: %+v", b2)
	}
}

type lineReader struct{ r *bufio.Reader }

// next returns the next line, "" at the end.
func (l *lineReader) next(t *testing.T) string {
	t.Helper()
	line, err := l.r.ReadString('\n')
	if err != nil && line == "" {
		return ""
	}
	return strings.TrimSuffix(line, "\n")
}
