package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/ccnp-eventlog/ccnp-eventlog/containerid"
	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	eventlogpb "github.com/ccnp-eventlog/ccnp-eventlog/proto"
	"github.com/ccnp-eventlog/ccnp-eventlog/runtimelog"
	"github.com/ccnp-eventlog/ccnp-eventlog/simulator"
)

// Container-level (SAAS) events, end to end. The callers are real processes
// in real cgroups the suite creates, laid out as container runtimes lay out
// a container's; they run the server binary's own client subcommands
// (record, get), as a container would. The server learns who they are from
// the socket (their pid) and their cgroups, as in production: nothing in a
// request says which container it comes from.

var _ = Describe("Container-level (SAAS) events", Label("saas"), func() {
	BeforeEach(requireContainerCallers)

	Context("with callers in two containers", Ordered, func() {
		var (
			srv        Server
			saas       *saasServer
			ctrA, ctrB *fakeContainer
			recorded   []string // every event's data, in the order recorded
		)
		BeforeAll(func(ctx SpecContext) {
			saas = newSAASServer(SimulatedHardware{Seed: 29})
			srv = target.StartServer(ctx, ServerConfig{Hardware: saas.hardware, ExtraArgs: saas.args()})
			ctrA = newFakeContainer(layoutContainerd)
			ctrB = newFakeContainer(layoutCgroupfs)
		})

		It("attributes each event to the caller's container, told from its cgroups", func(ctx SpecContext) {
			for i, c := range []*fakeContainer{ctrA, ctrA, ctrB} {
				data := fmt.Sprintf("event %d of %s", i, c.layout)
				r := c.record(ctx, srv, data)
				Expect(r.ContainerId).To(Equal(c.id), "the container the server attributed the event to")
				Expect(r.Register).To(Equal("RTMR3"))
				Expect(r.Digests).To(Equal(map[string]string{"sha384": sha384Hex(data)}))
				Expect(r.LogEventNum).To(BeEquivalentTo(saas.src.total()+len(recorded)+1), "the event's number in the platform log")
				recorded = append(recorded, data)
			}
		})

		It("gives each container its own events, numbered from 1, and none of the other's", func(ctx SpecContext) {
			for _, tc := range []struct {
				c    *fakeContainer
				want []string
			}{{ctrA, recorded[:2]}, {ctrB, recorded[2:]}} {
				l := tc.c.ownLog(ctx, srv)
				Expect(datas(l)).To(Equal(tc.want), "the events %s sees", tc.c)
				Expect(l.Header.Raw).To(Equal(saas.src.log.Header.Raw), "its log's header is the boot log's Spec ID event")
				for i, ev := range l.Events {
					Expect(ev.Num).To(Equal(i + 1))
					Expect(ev.Index).To(BeEquivalentTo(4), "CC MR index 4 is RTMR3")
				}
			}
		})

		It("writes a container's file where only the calling uid can read it", func(ctx SpecContext) {
			if _, err := exec.LookPath("setpriv"); err != nil {
				Skip("setpriv (util-linux) is needed to run a caller as another uid")
			}
			// As nobody: the get subcommand reads the file the reply names.
			out := ctrB.run(ctx, nobody, "get", "--socket", srv.Socket(), "--level", "saas", "-o", "table")
			Expect(out).To(ContainSubstring("1 of 1 events"), "the caller could not read its own file")
			path := ctrB.run(ctx, nobody, "get", "--socket", srv.Socket(), "--level", "saas")
			path = srv.LocalPath(strings.TrimSpace(path))
			Expect(filepath.Dir(filepath.Dir(path))).To(Equal(filepath.Join(srv.OutputDir(), "containers")))
			Expect(path).NotTo(ContainSubstring(ctrB.id), "the path must not be computable from the container ID")
			// The file is the caller's; the directories are the server's
			// (root's), crossable but not listable: the caller can read its
			// file and cannot put anything there for the server to follow.
			for p, want := range map[string]struct {
				mode os.FileMode
				uid  int
			}{path: {0o400, nobody}, filepath.Dir(path): {0o711, 0}, filepath.Dir(filepath.Dir(path)): {0o711, 0}} {
				fi, err := os.Lstat(p)
				Expect(err).NotTo(HaveOccurred())
				Expect(fi.Mode().Perm()).To(Equal(want.mode), "mode of %s", p)
				Expect(fi.Sys().(*syscall.Stat_t).Uid).To(BeEquivalentTo(want.uid), "owner of %s", p)
			}
		})

		It("refuses a caller outside any container with FAILED_PRECONDITION", func(ctx SpecContext) {
			if c, err := containerid.OfProcess("/proc", os.Getpid()); err == nil {
				Skip(fmt.Sprintf("the suite itself runs in container %s", c.ID))
			}
			_, err := newClient(srv).RecordEvent(ctx, &eventlogpb.RecordEventRequest{Data: []byte("from the host")})
			Expect(status.Code(err)).To(Equal(codes.FailedPrecondition), "%v", err)
			Expect(status.Convert(err).Message()).To(ContainSubstring("in none"))
		})

		It("serves the platform log as the boot log and every runtime event, replaying to the live RTMR3", func(ctx SpecContext) {
			saas.expectConsistent(ctx, srv, recorded)
		})
	})

	Context("when the server is killed between appending an event and extending RTMR3", Ordered, func() {
		var (
			saas  *saasServer
			first Server
			ctr   *fakeContainer
		)
		BeforeAll(func(ctx SpecContext) {
			requireFeatures(FeatureSignals, FeatureSharedSocket)
			saas = newSAASServer(SimulatedHardware{Seed: 31})
			ctr = newFakeContainer(layoutContainerd)
			srv := target.StartServer(ctx, ServerConfig{Hardware: saas.hardware, ExtraArgs: saas.args()})
			ctr.record(ctx, srv, "before the crash")
			srv.Signal(syscall.SIGTERM)
			Expect(srv.WaitExit(ctx).Code).To(Equal(0))
			first = target.StartServer(ctx, ServerConfig{Hardware: saas.hardware, ExtraArgs: saas.args(), SocketOf: srv,
				Env: []string{"EVENTLOG_TEST_CRASH_POINT=after-append"}})
		})

		It("dies with the event in its runtime log and not in RTMR3", func(ctx SpecContext) {
			// No retries: this call sees the crash (the next server
			// answers its key).
			_, err := ctr.tryRecord(ctx, first, "cut short", "--idempotency-key=cut-short", "--retry-for=0")
			Expect(err).To(HaveOccurred(), "the server was to die before replying")
			Expect(first.WaitExit(ctx).Signal).To(Equal(syscall.SIGKILL))
			Expect(first.Logs()).To(ContainSubstring("crash point reached"))

			records := saas.journal()
			Expect(records).To(HaveLen(2))
			Expect(records[1].ContainerID).To(Equal(ctr.id), "the attribution is stored with the record")
			Expect(string(eventData(records[1].Event))).To(Equal("cut short"))
			Expect(saas.liveRTMR3()).To(Equal(saas.rtmr3After("before the crash")), "RTMR3 must not hold the event yet")
		})

		It("restarts, extends RTMR3 with that event, and counts it once", func(ctx SpecContext) {
			srv := target.StartServer(ctx, ServerConfig{Hardware: saas.hardware, ExtraArgs: saas.args(), SocketOf: first})
			Eventually(srv.Logs).Should(ContainSubstring("extended the register with a record the last run appended but did not extend"))
			want := []string{"before the crash", "cut short"}
			Expect(datas(ctr.ownLog(ctx, srv))).To(Equal(want))
			saas.expectConsistent(ctx, srv, want)
			Expect(saas.journal()).To(HaveLen(2), "the record is not appended twice")

			// The call that saw the crash, retried with its key: the
			// outcome, and no second record.
			r := ctr.record(ctx, srv, "cut short", "--idempotency-key=cut-short")
			Expect(r.AlreadyRecorded).To(BeTrue())
			Expect(r.EventNum).To(BeEquivalentTo(2))
			Expect(saas.journal()).To(HaveLen(2), "a retry appends nothing")
			saas.expectConsistent(ctx, srv, want)

			ctr.record(ctx, srv, "after the restart")
			saas.expectConsistent(ctx, srv, append(want, "after the restart"))
		})
	})

	Context("when the server is killed after extending RTMR3, before replying", Ordered, func() {
		var (
			saas  *saasServer
			first Server
			ctr   *fakeContainer
		)
		BeforeAll(func(ctx SpecContext) {
			requireFeatures(FeatureSignals, FeatureSharedSocket)
			saas = newSAASServer(SimulatedHardware{Seed: 37})
			ctr = newFakeContainer(layoutCgroupfs)
			first = target.StartServer(ctx, ServerConfig{Hardware: saas.hardware, ExtraArgs: saas.args(),
				Env: []string{"EVENTLOG_TEST_CRASH_POINT=after-extend"}})
		})

		It("restarts with the runtime log and RTMR3 in agreement, extending nothing twice", func(ctx SpecContext) {
			_, err := ctr.tryRecord(ctx, first, "extended, not answered", "--idempotency-key=not-answered", "--retry-for=0")
			Expect(err).To(HaveOccurred())
			Expect(first.WaitExit(ctx).Signal).To(Equal(syscall.SIGKILL))
			want := []string{"extended, not answered"}
			Expect(saas.liveRTMR3()).To(Equal(saas.rtmr3After(want...)), "RTMR3 holds the event once")

			srv := target.StartServer(ctx, ServerConfig{Hardware: saas.hardware, ExtraArgs: saas.args(), SocketOf: first})
			Expect(srv.Logs()).NotTo(ContainSubstring("extended the register with a record"))
			saas.expectConsistent(ctx, srv, want)
			Expect(datas(ctr.ownLog(ctx, srv))).To(Equal(want))

			r := ctr.record(ctx, srv, "extended, not answered", "--idempotency-key=not-answered")
			Expect(r.AlreadyRecorded).To(BeTrue(), "the retry is answered with the first outcome")
			Expect(r.EventNum).To(BeEquivalentTo(1))
			saas.expectConsistent(ctx, srv, want)
		})
	})
})

// saasServer is the simulated hardware of a server with container-level
// events, the state that server keeps, and what the suite knows
// independently about its registers.
type saasServer struct {
	hardware Hardware
	sim      SimulatedHardware
	src      *sourceLog // the boot log
	dir      string
	// stateFile, when set, is where the simulated TD's RTMRs are kept (a
	// release of the chart keeps them in its state directory), in place of
	// dir's simulated-tdx-rtmrs.json.
	stateFile string
}

// newSAASServer sets up the simulated hardware and a state directory for a
// server with container-level events; args are its flags.
func newSAASServer(sim SimulatedHardware) *saasServer {
	GinkgoHelper()
	hardware, srcs := simulatedHardware(sim).setUp()
	dir := mkdirTemp(shortTempRoot(), "ccnp-e2e-state-")
	DeferCleanup(os.RemoveAll, dir)
	return &saasServer{hardware: hardware, sim: sim, src: srcs[tdx], dir: dir}
}

// args are the server flags: the state directory, and the simulated TD's
// RTMRs kept beside it so that they outlive the server process, as a real
// TD's do.
func (s *saasServer) args() []string {
	return []string{"--state-dir=" + filepath.Join(s.dir, "state"), "--sim-tdx-state=" + s.simState()}
}

func (s *saasServer) simState() string {
	if s.stateFile != "" {
		return s.stateFile
	}
	return filepath.Join(s.dir, "simulated-tdx-rtmrs.json")
}

// journal reads the TDX runtime log in the state directory, as it is on disk.
func (s *saasServer) journal() []runtimelog.Record {
	GinkgoHelper()
	kind, _, records, torn, err := runtimelog.ReadFile(filepath.Join(s.dir, "state", "runtime-tdx.log"))
	Expect(err).NotTo(HaveOccurred())
	Expect(kind).To(Equal(eventlog.TDX))
	Expect(torn).To(BeZero())
	return records
}

// liveRTMR3 reads RTMR3 as the simulated TD holds it: the simulator opened
// on the server's state file, with the server's configuration, resumes the
// registers the server left there.
func (s *saasServer) liveRTMR3() []byte {
	GinkgoHelper()
	td, err := simulator.NewTDX(simulator.TDXConfig{Seed: s.sim.Seed, Events: s.sim.TDXEvents, AreaSize: s.sim.AreaSize, StateFile: s.simState()})
	Expect(err).NotTo(HaveOccurred())
	regs, err := td.Registers(context.Background())
	Expect(err).NotTo(HaveOccurred())
	return regs.Get(eventlog.AlgSHA384, 4)
}

// rtmr3After is RTMR3 after the boot and then the extend of each event's
// SHA-384, computed here from the boot registers the suite built itself.
func (s *saasServer) rtmr3After(data ...string) []byte {
	v := s.src.registers.Get(eventlog.AlgSHA384, 4)
	if v == nil {
		v = make([]byte, 48)
	}
	for _, d := range data {
		digest := sha512.Sum384([]byte(d))
		h := sha512.Sum384(append(bytes.Clone(v), digest[:]...))
		v = h[:]
	}
	return v
}

// expectConsistent checks the platform log against everything: it is the
// boot log followed by the runtime events recorded (in order, once each),
// its replay is the live RTMR3 the server reports (VerifyEventlog), and
// that is what extending the events' digests gives.
func (s *saasServer) expectConsistent(ctx context.Context, srv Server, recorded []string) {
	GinkgoHelper()
	client := newClient(srv)
	reply := mustGetEventlog(ctx, client, &eventlogpb.GetEventlogRequest{EventlogCategory: tdx, Format: tcgRaw, Inline: true})
	l, err := eventlog.Parse(reply.EventlogData)
	Expect(err).NotTo(HaveOccurred())
	boot := s.src.total()
	Expect(len(l.Events)).To(Equal(boot+len(recorded)), "boot events and runtime events")
	Expect(l.Raw[:len(s.src.log.Raw)]).To(Equal(s.src.log.Raw), "the platform log starts with the boot log, byte for byte")
	Expect(datas(&eventlog.Log{Events: l.Events[boot:]})).To(Equal(recorded), "the runtime events, in the order recorded")

	replayed, err := eventlog.Replay(l)
	Expect(err).NotTo(HaveOccurred())
	want := s.rtmr3After(recorded...)
	Expect(replayed.Get(eventlog.AlgSHA384, 4)).To(Equal(want), "the platform log's replay of RTMR3")

	v, err := client.VerifyEventlog(ctx, &eventlogpb.VerifyEventlogRequest{EventlogCategory: tdx})
	Expect(err).NotTo(HaveOccurred())
	Expect(v.Verified).To(BeTrue(), "VerifyEventlog: %v", v)
	var rtmr3 *eventlogpb.RegisterCheck
	for _, r := range v.Registers {
		if r.Register == "RTMR3" {
			rtmr3 = r
		}
	}
	Expect(rtmr3).NotTo(BeNil(), "VerifyEventlog does not check RTMR3")
	Expect(rtmr3.Live).To(Equal(hex.EncodeToString(want)), "the live RTMR3")
	Expect(rtmr3.Status).To(Equal(eventlogpb.REGISTER_STATUS_MATCH))
	Expect(s.liveRTMR3()).To(Equal(want), "RTMR3 in the simulated TD's state")
}

// eventData is the data of a TCG_PCR_EVENT2 record.
func eventData(record []byte) []byte {
	GinkgoHelper()
	l, err := eventlog.Parse(append(eventlog.AppendSpecIDHeader(nil, 1, []eventlog.Alg{eventlog.AlgSHA384}), record...))
	Expect(err).NotTo(HaveOccurred())
	return l.Events[0].Data
}

func datas(l *eventlog.Log) []string {
	ds := []string{}
	for _, e := range l.Events {
		ds = append(ds, string(e.Data))
	}
	return ds
}

func sha384Hex(s string) string {
	d := sha512.Sum384([]byte(s))
	return hex.EncodeToString(d[:])
}

// Cgroup layouts of a container, as runtimes make them.
const (
	// containerd with the kubelet's systemd cgroup driver.
	layoutContainerd = "containerd (systemd driver)"
	// the kubelet's cgroupfs driver, whatever the runtime.
	layoutCgroupfs = "cgroupfs"
)

// fakeContainer is a container's cgroup, made by the suite in every cgroup
// hierarchy of this machine at the same path, as a runtime makes it: a
// process moved into it is, for anyone reading its /proc/<pid>/cgroup, in
// that container.
type fakeContainer struct {
	id     string
	layout string
	path   string   // under each hierarchy's root
	procs  []string // the cgroup.procs file in each hierarchy
}

func (c *fakeContainer) String() string { return fmt.Sprintf("container %.12s (%s)", c.id, c.layout) }

// requireContainerCallers skips unless the suite can run callers in
// cgroups of its own next to the server: the local target, as root, on a
// machine with writable cgroup hierarchies.
func requireContainerCallers() {
	GinkgoHelper()
	if _, ok := target.(*localTarget); !ok {
		Skip(fmt.Sprintf("the %s target runs servers where the suite cannot place processes into cgroups it makes", target.Name()))
	}
	if os.Geteuid() != 0 {
		Skip("making cgroups and moving processes into them needs root")
	}
	hs := cgroupHierarchies()
	if len(hs) == 0 {
		Skip("no writable cgroup hierarchy is mounted")
	}
	// Mounted read-write is not enough in a container without the rights.
	for _, h := range hs {
		probe := filepath.Join(h.dir, "ccnp-e2e-probe-"+randomHex(4))
		if err := os.Mkdir(probe, 0o755); err != nil {
			Skip(fmt.Sprintf("cannot make cgroups in %s: %v", h.dir, err))
		}
		Expect(os.Remove(probe)).To(Succeed())
	}
}

// cgroupHierarchy is one mounted cgroup hierarchy.
type cgroupHierarchy struct {
	dir    string
	cpuset bool // a v1 cpuset hierarchy: a new cgroup's cpus and mems must be set
}

// cgroupHierarchies lists the writable cgroup hierarchies mounted on this
// machine (v1 controllers and named hierarchies, and the v2 one), from
// /proc/self/mountinfo.
func cgroupHierarchies() []cgroupHierarchy {
	GinkgoHelper()
	f, err := os.Open("/proc/self/mountinfo")
	Expect(err).NotTo(HaveOccurred())
	defer f.Close()
	var hs []cgroupHierarchy
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// ID parent major:minor root mountpoint options ... - fstype source superoptions
		left, right, ok := strings.Cut(sc.Text(), " - ")
		lf, rf := strings.Fields(left), strings.Fields(right)
		if !ok || len(lf) < 6 || len(rf) < 3 || (rf[0] != "cgroup" && rf[0] != "cgroup2") {
			continue
		}
		// A hierarchy mounted twice (bind mounts) is one hierarchy.
		key := rf[0] + " " + rf[2]
		if !strings.HasPrefix(lf[5], "rw") || seen[key] {
			continue
		}
		seen[key] = true
		hs = append(hs, cgroupHierarchy{dir: lf[4], cpuset: rf[0] == "cgroup" && strings.Contains(","+rf[2]+",", ",cpuset,")})
	}
	return hs
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// newFakeContainer makes a container's cgroup in every hierarchy, removed
// when the spec's container ends.
func newFakeContainer(layout string) *fakeContainer {
	GinkgoHelper()
	c := &fakeContainer{id: randomHex(32), layout: layout}
	pod := randomHex(4) + "-" + randomHex(2) + "-" + randomHex(2) + "-" + randomHex(2) + "-" + randomHex(6)
	top := "ccnp-e2e-" + randomHex(4)
	var levels []string
	switch layout {
	case layoutContainerd:
		// As the kubelet's systemd driver names its slices under a
		// --cgroup-root of top (kind's is "kubelet"): each slice's name
		// continues its parent's.
		levels = []string{top + ".slice", top + "-kubepods.slice", top + "-kubepods-besteffort.slice",
			top + "-kubepods-besteffort-pod" + strings.ReplaceAll(pod, "-", "_") + ".slice", "cri-containerd-" + c.id + ".scope"}
	case layoutCgroupfs:
		levels = []string{top, "kubepods", "besteffort", "pod" + pod, c.id}
	default:
		Fail("unknown layout " + layout)
	}
	c.path = strings.Join(levels, "/")
	for _, h := range cgroupHierarchies() {
		dir := h.dir
		var made []string
		for _, level := range levels {
			parent := dir
			dir = filepath.Join(dir, level)
			Expect(os.Mkdir(dir, 0o755)).To(Succeed())
			made = append(made, dir)
			if h.cpuset {
				// A v1 cpuset cgroup starts with no CPU and no memory node,
				// and takes no process until given some.
				for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
					b, err := os.ReadFile(filepath.Join(parent, f))
					Expect(err).NotTo(HaveOccurred())
					Expect(os.WriteFile(filepath.Join(dir, f), b, 0o644)).To(Succeed())
				}
			}
		}
		c.procs = append(c.procs, filepath.Join(dir, "cgroup.procs"))
		DeferCleanup(func() {
			for i := len(made) - 1; i >= 0; i-- {
				// Processes leave a cgroup shortly after they exit.
				Eventually(func() error { return os.Remove(made[i]) }).WithTimeout(10 * time.Second).Should(Succeed())
			}
		})
	}
	return c
}

// command is the server binary run with args as a process of the container,
// as uid (0 keeps root's): a shell moves itself into the container's
// cgroups, then becomes the program, so that the program's first
// instruction already runs in the container.
func (c *fakeContainer) command(ctx context.Context, uid int, args ...string) *exec.Cmd {
	script := `while [ "$1" != -- ]; do echo $$ > "$1" || exit 97; shift; done; shift; exec "$@"`
	argv := append([]string{"-c", script, "sh"}, c.procs...)
	argv = append(argv, "--")
	if uid != 0 {
		argv = append(argv, "setpriv", "--reuid="+strconv.Itoa(uid), "--regid="+strconv.Itoa(uid), "--clear-groups", "--")
	}
	argv = append(argv, bin.Server)
	cmd := exec.CommandContext(ctx, "sh", append(argv, args...)...)
	cmd.Env = commandEnv()
	return cmd
}

// run runs a client subcommand in the container and returns its output; it
// must succeed.
func (c *fakeContainer) run(ctx context.Context, uid int, args ...string) string {
	GinkgoHelper()
	var stdout, stderr bytes.Buffer
	cmd := c.command(ctx, uid, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	Expect(cmd.Run()).To(Succeed(), "%s: eventlog-server %s:\n%s", c, strings.Join(args, " "), stderr.String())
	return stdout.String()
}

// tryRecord records an event from the container with `eventlog-server
// record`, with more of its flags.
func (c *fakeContainer) tryRecord(ctx context.Context, srv Server, data string, flags ...string) (*eventlogpb.RecordEventReply, error) {
	var stdout, stderr bytes.Buffer
	cmd := c.command(ctx, 0, append([]string{"record", "--socket", srv.Socket(), "--data", data, "-o", "json"}, flags...)...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%w: %s", err, stderr.String())
	}
	var r eventlogpb.RecordEventReply
	if err := protojson.Unmarshal(stdout.Bytes(), &r); err != nil {
		return nil, err
	}
	return &r, nil
}

func (c *fakeContainer) record(ctx context.Context, srv Server, data string, flags ...string) *eventlogpb.RecordEventReply {
	GinkgoHelper()
	r, err := c.tryRecord(ctx, srv, data, flags...)
	Expect(err).NotTo(HaveOccurred(), "%s recording %q", c, data)
	return r
}

// ownLog fetches the container's own log, inline (nothing on disk), raw.
func (c *fakeContainer) ownLog(ctx context.Context, srv Server) *eventlog.Log {
	GinkgoHelper()
	out := c.run(ctx, 0, "get", "--socket", srv.Socket(), "--level", "saas", "--inline", "--format", "raw")
	l, err := eventlog.Parse([]byte(out))
	Expect(err).NotTo(HaveOccurred(), "%s: its log does not parse", c)
	return l
}
