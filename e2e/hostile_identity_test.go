package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	eventlogpb "github.com/ccnp-eventlog/ccnp-eventlog/proto"
)

// A hostile local user against container identity: processes that name
// cgroups after a victim container's ID and move into them, as any user
// with a delegated cgroup subtree, or any process in a container that can
// make cgroups, can. The server must never take them for the victim.

var _ = Describe("hostile local user", Label("hostile"), func() {
	Context("naming cgroups after another container", Ordered, func() {
		var (
			srv    Server
			saas   *saasServer
			victim *fakeContainer
			ctrA   *fakeContainer
		)
		BeforeAll(func(ctx SpecContext) {
			requireContainerCallers()
			if _, err := exec.LookPath("setpriv"); err != nil {
				Skip("setpriv (util-linux) is needed to run a caller as another uid")
			}
			saas = newSAASServer(SimulatedHardware{Seed: 41})
			srv = target.StartServer(ctx, ServerConfig{Hardware: saas.hardware, ExtraArgs: saas.args()})
			victim = newFakeContainer(layoutCgroupfs)
			ctrA = newFakeContainer(layoutContainerd)
			Expect(victim.record(ctx, srv, "the victim's own").ContainerId).To(Equal(victim.id))
		})

		It("refuses a delegated cgroup named after the victim, with PERMISSION_DENIED, and the victim's events stay its own", func(ctx SpecContext) {
			// As systemd delegates a subtree to a user: a cgroup given to
			// uid 65534 (the directory and the files that move processes),
			// in every hierarchy. In it, nobody makes the victim's layout,
			// down to a cgroup named after its ID, and moves itself in.
			deleg := "ccnp-e2e-" + randomHex(4) + "-user@65534.service"
			fake := "kubepods/besteffort/pod" + randomHex(4) + "/" + victim.id
			hs := cgroupHierarchies()
			for _, h := range hs {
				dir := filepath.Join(h.dir, deleg)
				Expect(os.Mkdir(dir, 0o755)).To(Succeed())
				if h.cpuset {
					copyCpuset(h.dir, dir)
				}
				for _, f := range []string{"", "cgroup.procs", "tasks", "cgroup.subtree_control", "cgroup.threads"} {
					if err := os.Chown(filepath.Join(dir, f), nobody, nobody); err != nil && !os.IsNotExist(err) {
						Fail(err.Error())
					}
				}
				DeferCleanup(removeCgroups, dir)
			}
			run := func(args ...string) (string, string, error) {
				return nobodyInDelegated(ctx, hs, deleg, fake, args...)
			}
			_, stderr, err := run("record", "--socket", srv.Socket(), "--data", "forged")
			Expect(err).To(HaveOccurred(), "nobody recorded into the victim's log")
			Expect(stderr).To(ContainSubstring("PermissionDenied"))
			Expect(stderr).To(ContainSubstring("owned by uid %d", nobody))
			_, stderr, err = run("get", "--socket", srv.Socket(), "--level", "saas", "--inline", "--format", "raw")
			Expect(err).To(HaveOccurred(), "nobody read the victim's log")
			Expect(stderr).To(ContainSubstring("PermissionDenied"))
			// The request log is written every half second, not per request.
			Eventually(srv.Logs).WithTimeout(5 * time.Second).Should(MatchRegexp(`container-level caller refused.* pid=\d+ uid=%d`, nobody))

			Expect(datas(victim.ownLog(ctx, srv))).To(Equal([]string{"the victim's own"}))
			saas.expectConsistent(ctx, srv, []string{"the victim's own"})
		})

		It("takes a process in container A that moves into a cgroup named after the victim inside A's for A, never the victim", func(ctx SpecContext) {
			// Root in container A (no user namespace) can make cgroups
			// below A's own; they are root's, so ownership alone cannot
			// tell: the outermost container can.
			for _, nested := range []string{
				victim.id,
				"kubepods/besteffort/pod" + randomHex(4) + "/" + victim.id,
				"docker/" + victim.id,
			} {
				r, err := ctrA.tryRecordFrom(ctx, nested, srv, "A, nested in "+nested)
				Expect(err).NotTo(HaveOccurred())
				Expect(r.ContainerId).To(Equal(ctrA.id), "a cgroup below A's is A")
			}
			Expect(datas(ctrA.ownLog(ctx, srv))).To(HaveLen(3))
			Expect(datas(victim.ownLog(ctx, srv))).To(Equal([]string{"the victim's own"}))
		})
	})
})

// nobodyInDelegated runs the server binary with args as uid nobody, moved
// (by root, as systemd moves a user's session) into the delegated cgroup
// deleg of every hierarchy, after nobody itself made the cgroups fake below
// it and moved in.
func nobodyInDelegated(ctx context.Context, hs []cgroupHierarchy, deleg, fake string, args ...string) (string, string, error) {
	var dirs, cpusets []string
	for _, h := range hs {
		dirs = append(dirs, filepath.Join(h.dir, deleg))
		if h.cpuset {
			cpusets = append(cpusets, filepath.Join(h.dir, deleg))
		}
	}
	// As root: into the delegated cgroup. As nobody: make the fake
	// cgroups level by level (a v1 cpuset cgroup needs CPUs and memory
	// nodes before it takes a process), move in, run the client.
	asNobody := `set -e
for d in $DIRS; do
	p=$d
	for c in $(echo "$FAKE" | tr / ' '); do
		mkdir -p "$p/$c"
		case " $CPUSETS " in *" $d "*) cat "$p/cpuset.cpus" > "$p/$c/cpuset.cpus"; cat "$p/cpuset.mems" > "$p/$c/cpuset.mems";; esac
		p=$p/$c
	done
	echo $$ > "$p/cgroup.procs"
done
exec "$@"`
	script := `for d in $DIRS; do echo $$ > "$d/cgroup.procs" || exit 97; done
exec setpriv --reuid=` + fmt.Sprint(nobody) + ` --regid=` + fmt.Sprint(nobody) + ` --clear-groups -- sh -c "$AS_NOBODY" sh "$@"`
	cmd := exec.CommandContext(ctx, "sh", append([]string{"-c", script, "sh", bin.Server}, args...)...)
	cmd.Env = append(commandEnv(), "DIRS="+strings.Join(dirs, " "), "CPUSETS="+strings.Join(cpusets, " "), "FAKE="+fake, "AS_NOBODY="+asNobody)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	GinkgoWriter.Printf("as nobody in %s/%s: %v\n%s", deleg, fake, err, stderr.String())
	return stdout.String(), stderr.String(), err
}

// tryRecordFrom records an event from a process of the container that first
// makes the cgroups nested below the container's own, in every hierarchy,
// and moves into them, as root in a container that can write its cgroups.
func (c *fakeContainer) tryRecordFrom(ctx context.Context, nested string, srv Server, data string) (*eventlogpb.RecordEventReply, error) {
	var procs []string
	for _, h := range cgroupHierarchies() {
		dir := filepath.Join(h.dir, c.path)
		p := dir
		for _, level := range strings.Split(nested, "/") {
			parent := p
			p = filepath.Join(p, level)
			Expect(os.Mkdir(p, 0o755)).To(Succeed())
			if h.cpuset {
				copyCpuset(parent, p)
			}
		}
		DeferCleanup(removeCgroups, filepath.Join(dir, strings.Split(nested, "/")[0]))
		procs = append(procs, filepath.Join(p, "cgroup.procs"))
	}
	inner := &fakeContainer{id: c.id, layout: c.layout + ", nested", path: c.path + "/" + nested, procs: procs}
	// The container's process is in the container first, then moves down.
	inner.procs = append(append([]string{}, c.procs...), procs...)
	return inner.tryRecord(ctx, srv, data)
}

// copyCpuset gives a new v1 cpuset cgroup its parent's CPUs and memory
// nodes: without them it takes no process.
func copyCpuset(parent, dir string) {
	GinkgoHelper()
	for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
		b, err := os.ReadFile(filepath.Join(parent, f))
		Expect(err).NotTo(HaveOccurred())
		Expect(os.WriteFile(filepath.Join(dir, f), b, 0o644)).To(Succeed())
	}
}

// removeCgroups removes a cgroup and every cgroup below it, deepest first,
// once the processes in them have exited.
func removeCgroups(dir string) {
	var dirs []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		Eventually(func() error { return os.Remove(dirs[i]) }).WithTimeout(10 * time.Second).Should(Succeed())
	}
}
