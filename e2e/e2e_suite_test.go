// Package e2e is the end-to-end suite: it runs the real eventlog-server
// binary as a user does and checks what it serves from the outside, over its
// Unix socket, with independent clients (our gRPC client, grpcurl) and
// decoders (our eventlog package on the files, tpm2_eventlog).
//
// The suite runs against a target chosen by E2E_TARGET (see target_test.go);
// the default, local, runs servers as processes on this machine. See
// README.md.
package e2e

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

func TestE2E(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "eventlog e2e")
}

// binaries are the programs the suite builds once, from this checkout.
type binaries struct {
	// Server is service/eventlog-server, built with -race when Race is
	// set: a data race the suite provokes fails the spec that stops it.
	Server string
	Race   bool
	// Cgo says the server was built with cgo, which its simulated TPM needs.
	Cgo bool
	// FakeHost is simulator/cmd/fakehost, which writes simulated host trees.
	FakeHost string
	// GRPCurl is the grpcurl pinned in tools/go.mod.
	GRPCurl string
	// Dir holds them. KeepDir: it is kept for the next run (binDir);
	// otherwise it is removed after the suite.
	Dir     string
	KeepDir bool
	// ModuleRoot is the checkout they were built from.
	ModuleRoot string
}

var bin binaries

var _ = SynchronizedBeforeSuite(func() []byte {
	if inUserAppPod() {
		return nil // it builds nothing and has no target (userapp_test.go)
	}
	b := buildBinaries()
	js, err := json.Marshal(b)
	Expect(err).NotTo(HaveOccurred())
	return js
}, func(js []byte) {
	if inUserAppPod() {
		return
	}
	Expect(json.Unmarshal(js, &bin)).To(Succeed())
	var err error
	target, err = selectTarget(bin)
	Expect(err).NotTo(HaveOccurred())
	yes, no := supportedFeatures(target)
	AddReportEntry("target", fmt.Sprintf("%s (server built with -race: %v)\n  offers: %s\n  does not offer: %s",
		target.Name(), bin.Race, strings.Join(yes, "; "), orNone(no)))
})

var _ = SynchronizedAfterSuite(func() {}, func() {
	if bin.Dir != "" && !bin.KeepDir {
		Expect(os.RemoveAll(bin.Dir)).To(Succeed())
	}
})

func orNone(s []string) string {
	if len(s) == 0 {
		return "(none)"
	}
	return strings.Join(s, "; ")
}

// buildBinaries builds the server, fakehost and grpcurl (binDir says
// where). The server is built with the race detector unless E2E_RACE=0 or
// cgo is off (the race detector needs it).
func buildBinaries() binaries {
	GinkgoHelper()
	root, err := filepath.Abs("..")
	Expect(err).NotTo(HaveOccurred())
	Expect(filepath.Join(root, "go.mod")).To(BeAnExistingFile(), "the suite runs from e2e/ in the checkout")
	b := binaries{ModuleRoot: root}
	cgo, err := exec.Command("go", "env", "CGO_ENABLED").Output()
	Expect(err).NotTo(HaveOccurred())
	b.Cgo = strings.TrimSpace(string(cgo)) == "1"
	b.Race = os.Getenv("E2E_RACE") != "0" && b.Cgo
	dir, keep := binDir(root, b.Race)
	b.Server, b.FakeHost, b.GRPCurl = filepath.Join(dir, "eventlog-server"), filepath.Join(dir, "fakehost"), filepath.Join(dir, "grpcurl")
	b.Dir, b.KeepDir = dir, keep

	args := []string{"build", "-o", dir + "/"}
	if b.Race {
		args = append(args, "-race")
	}
	builds := [][]string{
		append(args, "./service/eventlog-server", "./simulator/cmd/fakehost"),
		{"build", "-modfile=tools/go.mod", "-o", b.GRPCurl, "github.com/fullstorydev/grpcurl/cmd/grpcurl"},
	}
	errs := make(chan error, len(builds))
	for _, args := range builds {
		go func() {
			cmd := exec.Command("go", args...)
			cmd.Dir = root
			out, err := cmd.CombinedOutput()
			if err != nil {
				err = fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
			}
			errs <- err
		}()
	}
	start := time.Now()
	for range builds {
		Expect(<-errs).NotTo(HaveOccurred())
	}
	GinkgoWriter.Printf("built the server (race: %v), fakehost and grpcurl in %s\n", b.Race, time.Since(start).Round(time.Millisecond))
	// The local target may run the server as another user.
	Expect(os.Chmod(dir, 0o755)).To(Succeed())
	return b
}

// binDir returns the directory the suite builds its programs into: one of
// this uid's in the temporary directory, named after the checkout and
// whether the server has the race detector, and kept between runs, so that
// go build finds the programs up to date and links nothing (on two cores
// linking them takes 10-15 s, which every parallel process waits for).
// It is used only if it is this uid's directory, not a link, that nobody
// else may write to (the temporary directory is sticky, so nobody else can
// swap it afterwards); otherwise the programs go to a new directory,
// removed after the suite (keep false).
func binDir(root string, race bool) (dir string, keep bool) {
	GinkgoHelper()
	sum := sha256.Sum256([]byte(root))
	flavour := "norace"
	if race {
		flavour = "race"
	}
	parent := shortTempRoot()
	dir = filepath.Join(parent, fmt.Sprintf("ccnp-e2e-bin-%d-%x-%s", os.Geteuid(), sum[:6], flavour))
	why := reusable(parent, dir)
	if why == "" {
		return dir, true
	}
	GinkgoWriter.Printf("not reusing %s (%s): building into a new directory\n", dir, why)
	return mkdirTemp(parent, "ccnp-e2e-bin-"), false
}

// reusable makes dir in parent if it is not there, and says why it may not
// be used, or "" if it may.
func reusable(parent, dir string) string {
	pfi, err := os.Stat(parent)
	switch {
	case err != nil:
		return err.Error()
	case pfi.Mode().Perm()&0o022 != 0 && pfi.Mode()&fs.ModeSticky == 0:
		return parent + " is writable by others and not sticky: they could swap the directory"
	}
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return err.Error()
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return err.Error()
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.IsDir():
		return "not a directory: " + fi.Mode().String()
	case !ok || int(st.Uid) != os.Geteuid():
		return fmt.Sprintf("not owned by uid %d", os.Geteuid())
	case fi.Mode().Perm()&0o022 != 0:
		return "writable by others: " + fi.Mode().String()
	}
	return ""
}

// shortTempRoot is where the suite makes its directories: the system's
// temporary directory, unless its path is so long that Unix socket paths
// under it would pass the 108-byte limit of sun_path.
func shortTempRoot() string {
	if d := os.TempDir(); len(d) <= 40 {
		return d
	}
	return "/tmp"
}

// mkdirTemp makes a new directory that others can traverse (os.MkdirTemp
// makes it 0700, which a server running as another user cannot enter).
func mkdirTemp(parent, pattern string) string {
	GinkgoHelper()
	dir, err := os.MkdirTemp(parent, pattern)
	Expect(err).NotTo(HaveOccurred())
	Expect(os.Chmod(dir, 0o755)).To(Succeed())
	return dir
}

// commandEnv is the environment of the programs the suite runs: this
// process's without EVENTLOG_ variables, so that a server's configuration is
// exactly its flags. Unless GORACE says otherwise, a race-enabled program
// exits at once instead of sleeping a second first (the race runtime's
// atexit_sleep_ms).
func commandEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "EVENTLOG_") {
			env = append(env, kv)
		}
	}
	if _, ok := os.LookupEnv("GORACE"); !ok {
		env = append(env, "GORACE=atexit_sleep_ms=0")
	}
	return env
}
