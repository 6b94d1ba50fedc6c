package e2e

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"github.com/ccnp-eventlog/ccnp-eventlog/internal/corpus"
	eventlogpb "github.com/ccnp-eventlog/ccnp-eventlog/proto"
)

// The user application: this test binary, in a FROM-scratch image
// (kind/e2e.Dockerfile), run by a Job that the in-cluster specs
// (incluster_test.go) create. The pod mounts the server's socket and event
// log directories from the node at the paths deployment/README.md gives
// applications, as any uid, and the binary runs the specs below with
// --ginkgo.label-filter=user-app and E2E_USER_APP=1: it calls the server on
// the socket and reads the files at the paths the replies give, in the pod.
//
// What the logs must hold the suite computed outside the cluster, from the
// simulator, and handed to the Job in a ConfigMap mounted at
// userAppExpectedDir: for each category, the raw log (CATEGORY.log) and the
// registers replaying it must give (CATEGORY.registers.json, algorithm ->
// register index -> hex).

const (
	userAppEnv   = "E2E_USER_APP"
	userAppLabel = "user-app"

	// The paths of deployment/README.md, in the pod.
	userAppSocket      = "/run/ccnp/uds/eventlog.sock"
	userAppEventlogDir = "/run/ccnp-eventlog"
	userAppExpectedDir = "/etc/e2e-expected"
)

// inUserAppPod says the binary runs as the user application: it builds
// nothing and has no target, only the user-app specs run.
func inUserAppPod() bool { return os.Getenv(userAppEnv) == "1" }

// userAppCategories are the logs the user application reads.
var userAppCategories = []eventlogpb.CATEGORY{tdx, tpm}

// userAppSpecs is how many specs the user application runs.
var userAppSpecs = 1 + 3*len(userAppCategories)

var _ = Describe("A user application in a pod of the cluster", Label(userAppLabel), func() {
	srv := podServer{socket: userAppSocket, outDir: userAppEventlogDir}

	BeforeEach(func() {
		if !inUserAppPod() {
			Skip("runs in the user application's pod only, which the in-cluster specs start (" + userAppEnv + "=1)")
		}
	})

	It("finds the server SERVING on the socket", func(ctx SpecContext) {
		Expect(checkHealth(ctx, srv.socket)).To(Equal(healthpb.HealthCheckResponse_SERVING))
	})

	for _, cat := range userAppCategories {
		Context("reading "+categoryName(cat), func() {
			var src *sourceLog
			BeforeEach(func() { src = readUserAppExpected(cat) })

			It("gets the whole log in CCNP JSON: the simulator's events, replaying to its registers", func(ctx SpecContext) {
				reply := mustGetEventlog(ctx, newClient(srv), request(cat, 0, 0, ccnpJSON))
				expectServed(srv, reply, src, ccnpJSON, 1, src.total())
			})

			It("gets the whole log raw: the simulator's bytes", func(ctx SpecContext) {
				reply := mustGetEventlog(ctx, newClient(srv), request(cat, 0, 0, tcgRaw))
				expectServed(srv, reply, src, tcgRaw, 1, src.total())
			})

			It("gets 5 events from the second one, as the upstream docs ask (start_position 2, count 5)", func(ctx SpecContext) {
				reply := mustGetEventlog(ctx, newClient(srv), request(cat, 2, 5, ccnpJSON))
				expectServed(srv, reply, src, ccnpJSON, 2, 6)
			})
		})
	}
})

// userAppExpectedFiles is what the suite hands the user application for
// one category: files of its ConfigMap.
func userAppExpectedFiles(cat eventlogpb.CATEGORY, src *sourceLog) map[string][]byte {
	GinkgoHelper()
	regs := map[string]map[string]string{}
	for alg, byIndex := range src.registers {
		regs[alg.String()] = map[string]string{}
		for idx, v := range byIndex {
			regs[alg.String()][strconv.FormatUint(uint64(idx), 10)] = hex.EncodeToString(v)
		}
	}
	js, err := json.Marshal(regs)
	Expect(err).NotTo(HaveOccurred())
	about, err := json.Marshal(userAppSource{Simulated: src.simulated, Live: src.live, RegistersFrom: src.registersFrom, File: src.file})
	Expect(err).NotTo(HaveOccurred())
	return map[string][]byte{
		cat.String() + ".log":            src.log.Raw,
		cat.String() + ".registers.json": js,
		cat.String() + ".source.json":    about,
	}
}

// userAppSource is what the user application must know of a log's source
// beyond its bytes and registers (CATEGORY.source.json).
type userAppSource struct {
	Simulated     bool   `json:"simulated"`
	Live          bool   `json:"live"`
	RegistersFrom string `json:"registersFrom"`
	// File is the file the server reads the log from, as the server names
	// it (the reply's source); "" for simulated hardware.
	File string `json:"file"`
}

// readUserAppExpected reads back, in the pod, what userAppExpectedFiles wrote.
func readUserAppExpected(cat eventlogpb.CATEGORY) *sourceLog {
	GinkgoHelper()
	kind := eventlog.TDX
	if cat == tpm {
		kind = eventlog.TPM
	}
	var exp corpus.Expectation
	Expect(json.Unmarshal(readFile(filepath.Join(userAppExpectedDir, cat.String()+".registers.json")), &exp.Replay)).To(Succeed())
	var about userAppSource
	Expect(json.Unmarshal(readFile(filepath.Join(userAppExpectedDir, cat.String()+".source.json")), &about)).To(Succeed())
	return &sourceLog{
		kind:          kind,
		log:           mustParse(readFile(filepath.Join(userAppExpectedDir, cat.String()+".log")), false),
		registers:     exp.Bank(GinkgoT()),
		registersFrom: about.RegistersFrom + ", read by the suite outside the cluster",
		live:          about.Live,
		simulated:     about.Simulated,
		file:          about.File,
	}
}

// podServer is the server as the user application sees it: the socket and
// the output directory at the same paths as in the server's pod.
type podServer struct{ socket, outDir string }

func (s podServer) Socket() string                    { return s.socket }
func (s podServer) OutputDir() string                 { return s.outDir }
func (s podServer) LocalPath(dataLoc string) string   { return dataLoc }
func (s podServer) ServerPath(treePath string) string { return treePath }
func (s podServer) Logs() string {
	return "(the server's logs are not visible from a user application)"
}

func (s podServer) Signal(syscall.Signal) {
	GinkgoHelper()
	Fail("a user application cannot signal the server")
}

func (s podServer) WaitExit(context.Context) ExitStatus {
	GinkgoHelper()
	Fail("a user application cannot wait for the server")
	return ExitStatus{}
}

func (s podServer) Restart(context.Context) {
	GinkgoHelper()
	Fail("a user application cannot restart the server")
}
