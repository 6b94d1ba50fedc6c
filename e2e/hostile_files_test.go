package e2e

import (
	"context"
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
	"google.golang.org/grpc/health/grpc_health_v1"

	eventlogpb "github.com/ccnp-eventlog/ccnp-eventlog/proto"
)

// A local user who calls the server (uid nobody, in a container) and tries
// to turn it against the node: symbolic links where the server writes, to a
// root-owned file and to the server's own socket. The server runs as root
// and used to chmod and chtime by path inside directories its callers
// owned; it must now refuse them any place to plant a link, and never
// follow one planted elsewhere.

var _ = Describe("hostile local user", Label("hostile"), func() {
	Context("swapping its container's directory or files for symbolic links", Ordered, func() {
		var (
			srv    Server
			ctr    *fakeContainer
			secret *rootOwnedFile
			socket os.FileMode
		)
		BeforeAll(func(ctx SpecContext) {
			requireContainerCallers()
			requireSetpriv()
			saas := newSAASServer(SimulatedHardware{Seed: 41})
			srv = target.StartServer(ctx, ServerConfig{Hardware: saas.hardware, ExtraArgs: saas.args()})
			ctr = newFakeContainer(layoutContainerd)
			secret = newRootOwnedFile()
			socket = modeOf(srv.Socket())
		})

		It("cannot create, rename or remove anything where its files are (EACCES)", func(ctx SpecContext) {
			ctr.record(ctx, srv, "before the attack")
			path := srv.LocalPath(strings.TrimSpace(ctr.run(ctx, nobody, "get", "--socket", srv.Socket(), "--level", "saas")))
			dir := filepath.Dir(path)
			containers := filepath.Dir(dir)
			for what, script := range map[string]string{
				"rename its directory":                         `mv "$DIR" "$DIR.old"`,
				"put a link where its directory goes":          `ln -s "$SECRET" "$CONTAINERS/$(basename "$DIR")x"`,
				"remove its file (to put a link in its place)": `rm -f "$FILE"`,
				"rename its file":                              `mv "$FILE" "$FILE.old"`,
				"put a link to a root file in its directory":   `ln -s "$SECRET" "$DIR/eventlog-saas-tdx-1-2-0000000000000000.json"`,
				"put a link to the socket in its directory":    `ln -s "$SOCKET" "$DIR/.eventlog-tmp-0000000000000000"`,
				"list the containers directory":                `ls "$CONTAINERS"`,
			} {
				out, err := asUID(ctx, nobody, script, "DIR="+dir, "FILE="+path, "CONTAINERS="+containers, "SECRET="+secret.path, "SOCKET="+srv.Socket())
				Expect(err).To(HaveOccurred(), "the caller could %s:\n%s", what, out)
				Expect(out).To(ContainSubstring("Permission denied"), "trying to %s", what)
			}
			Expect(path).To(BeARegularFile())
		})

		It("leaves the server following nothing: the root file and the socket keep their modes, the server its callers", func(ctx SpecContext) {
			// Everything the server does with a container's files: a new
			// file (temporary file, mode, owner, rename), a repeated request
			// (reuse), a new event and its file.
			for _, data := range []string{"", "after the attack"} {
				if data != "" {
					ctr.record(ctx, srv, data)
				}
				for range 2 {
					for _, format := range []string{"json", "raw"} {
						out := ctr.run(ctx, nobody, "get", "--socket", srv.Socket(), "--level", "saas", "--format", format)
						Expect(srv.LocalPath(strings.TrimSpace(out))).To(BeARegularFile())
					}
				}
			}
			secret.expectUnchanged()
			Expect(modeOf(srv.Socket())).To(Equal(socket), "the socket's mode")
			// Other users still connect: root here, another uid in the container.
			h, err := grpc_health_v1.NewHealthClient(dial(srv.Socket())).Check(ctx, &grpc_health_v1.HealthCheckRequest{})
			Expect(err).NotTo(HaveOccurred())
			Expect(h.Status).To(Equal(grpc_health_v1.HealthCheckResponse_SERVING))
			out := ctr.run(ctx, nobody-1, "get", "--socket", srv.Socket(), "--level", "saas", "-o", "table")
			Expect(out).To(ContainSubstring("2 of 2 events"), "another uid of the container reads its events")
		})
	})

	Context("planting files in an output directory others can write", Ordered, func() {
		var (
			srv    Server
			secret *rootOwnedFile
		)
		BeforeAll(func(ctx SpecContext) {
			requireFeatures(FeatureRestart)
			requireSetpriv()
			if os.Geteuid() != 0 {
				Skip("planting files as another uid needs root")
			}
			hardware, _ := simulatedHardware(SimulatedHardware{Seed: 43}).setUp()
			srv = target.StartServer(ctx, ServerConfig{Hardware: hardware})
			secret = newRootOwnedFile()
			// A careless operator: the directory mounted read-write into
			// pods, or made writable by all.
			Expect(os.Chmod(srv.OutputDir(), 0o777)).To(Succeed())
		})

		It("never follows, opens or counts what is planted under its files' names", func(ctx SpecContext) {
			client := newClient(srv)
			// The names the next files will have: the server names them by
			// their content, which anyone can ask for inline.
			names := map[eventlogpb.FORMAT]string{}
			for format, ext := range map[eventlogpb.FORMAT]string{tcgRaw: "bin", ccnpJSON: "json"} {
				r := mustGetEventlog(ctx, client, &eventlogpb.GetEventlogRequest{EventlogCategory: tdx, Format: format, Inline: true})
				names[format] = fmt.Sprintf("eventlog-tdx-%d-%d-%s.%s", r.FirstEvent, r.FirstEvent+r.EventCount-1, r.Sha256[:16], ext)
			}
			out, err := asUID(ctx, nobody, `set -e
				ln -s "$SECRET" "$OUT/$RAW"
				mkfifo "$OUT/$JSON"
				ln -s "$SECRET" "$OUT/eventlog-planted-link.bin"
				mkfifo "$OUT/eventlog-planted-fifo.json"
				mkdir "$OUT/eventlog-planted-dir.json"
				head -c 100000 /dev/zero > "$OUT/eventlog-planted-file.bin"
				ln -s "$SECRET" "$OUT/.eventlog-tmp-planted"`,
				"OUT="+srv.OutputDir(), "SECRET="+secret.path, "RAW="+names[tcgRaw], "JSON="+names[ccnpJSON])
			Expect(err).NotTo(HaveOccurred(), out)

			// A restart adopts what is in the directory: only the server's own.
			srv.Signal(syscall.SIGTERM)
			Expect(srv.WaitExit(ctx).Code).To(Equal(0))
			srv.Restart(ctx)
			Expect(srv.Logs()).To(ContainSubstring("make it writable by the server only"))

			for format, name := range names {
				r := mustGetEventlog(ctx, client, &eventlogpb.GetEventlogRequest{EventlogCategory: tdx, Format: format})
				Expect(filepath.Base(r.EventlogDataLoc)).To(Equal(name))
				p := srv.LocalPath(r.EventlogDataLoc)
				Expect(p).To(BeARegularFile(), "the planted %s was replaced by the server's file", name)
				b, err := os.ReadFile(p)
				Expect(err).NotTo(HaveOccurred())
				Expect(sha256Hex(b)).To(Equal(r.Sha256))
			}
			for _, planted := range []string{"eventlog-planted-link.bin", "eventlog-planted-fifo.json", "eventlog-planted-dir.json", "eventlog-planted-file.bin", ".eventlog-tmp-planted"} {
				_, err := os.Lstat(filepath.Join(srv.OutputDir(), planted))
				Expect(err).NotTo(HaveOccurred(), "%s is not the server's to remove", planted)
			}
			secret.expectUnchanged()
		})
	})
})

func requireSetpriv() {
	GinkgoHelper()
	if _, err := exec.LookPath("setpriv"); err != nil {
		Skip("setpriv (util-linux) is needed to act as another uid")
	}
}

// asUID runs a shell script as uid (and gid) with the environment
// variables env, and returns its output.
func asUID(ctx context.Context, uid int, script string, env ...string) (string, error) {
	id := strconv.Itoa(uid)
	cmd := exec.CommandContext(ctx, "setpriv", "--reuid="+id, "--regid="+id, "--clear-groups", "--", "sh", "-c", script)
	cmd.Env = append(commandEnv(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// rootOwnedFile is a file only root may touch, where a hostile user can
// name it: what a symbolic link planted for the server would point to.
type rootOwnedFile struct {
	path  string
	mtime time.Time
}

func newRootOwnedFile() *rootOwnedFile {
	GinkgoHelper()
	dir := mkdirTemp(shortTempRoot(), "ccnp-e2e-secret-")
	DeferCleanup(os.RemoveAll, dir)
	f := &rootOwnedFile{path: filepath.Join(dir, "secret"), mtime: time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)}
	Expect(os.WriteFile(f.path, []byte("root's"), 0o600)).To(Succeed())
	Expect(os.Chmod(f.path, 0o600)).To(Succeed())
	Expect(os.Chtimes(f.path, f.mtime, f.mtime)).To(Succeed())
	return f
}

func (f *rootOwnedFile) expectUnchanged() {
	GinkgoHelper()
	fi, err := os.Lstat(f.path)
	Expect(err).NotTo(HaveOccurred())
	Expect(fi.Mode()).To(Equal(os.FileMode(0o600)), "the root file's mode")
	Expect(fi.ModTime().UTC()).To(Equal(f.mtime), "the root file's modification time")
	Expect(fi.Sys().(*syscall.Stat_t).Uid).To(BeEquivalentTo(0), "the root file's owner")
	b, err := os.ReadFile(f.path)
	Expect(err).NotTo(HaveOccurred())
	Expect(string(b)).To(Equal("root's"))
}

func modeOf(path string) os.FileMode {
	GinkgoHelper()
	fi, err := os.Lstat(path)
	Expect(err).NotTo(HaveOccurred())
	return fi.Mode()
}
