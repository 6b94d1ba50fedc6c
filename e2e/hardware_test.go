package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog/ccel"
	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog/ima"
	"github.com/ccnp-eventlog/ccnp-eventlog/hwsource"
	"github.com/ccnp-eventlog/ccnp-eventlog/internal/corpus"
	eventlogpb "github.com/ccnp-eventlog/ccnp-eventlog/proto"
	"github.com/ccnp-eventlog/ccnp-eventlog/simulator"
)

var (
	tdx = eventlogpb.CATEGORY_TDX_EVENTLOG
	tpm = eventlogpb.CATEGORY_TPM_EVENTLOG
)

// categoryName is how specs name a category.
func categoryName(c eventlogpb.CATEGORY) string {
	if c == tdx {
		return "the TDX log"
	}
	return "the TPM log"
}

// A hardwareSetup is one way of giving a server hardware, with what the
// suite independently knows about each category's log there: the events
// and the registers replaying them must give.
type hardwareSetup struct {
	name string
	// categories are the logs the hardware has.
	categories []eventlogpb.CATEGORY
	// requires is what the target must offer to serve the hardware;
	// categoryRequires, to serve a category of it.
	requires         []Feature
	categoryRequires map[eventlogpb.CATEGORY][]Feature
	// setUp prepares the hardware (writing a host tree, if it uses one)
	// and returns it with the source of each category.
	setUp func() (Hardware, map[eventlogpb.CATEGORY]*sourceLog)
}

// A sourceLog is one category's log as the hardware holds it.
type sourceLog struct {
	kind eventlog.Kind
	// log is parsed from the bytes the server reads (a CCEL log area
	// without its padding).
	log *eventlog.Log
	// registers are what replaying the whole log must give, as
	// registersFrom says where they come from; nil when the suite has
	// nothing independent to compare with (registersFrom says why).
	registers     eventlog.Bank
	registersFrom string
	// live marks registers read from (simulated) hardware: every register
	// is there, and those the log does not extend hold their reset value.
	live bool
	// simulated is what replies must say in their simulated field.
	simulated bool
	// file is the file in a host tree the server reads the log from; ""
	// for simulated hardware.
	file string
}

// treeLogFile is the file of a host tree a category's log is read from.
func treeLogFile(root string, cat eventlogpb.CATEGORY) string {
	if cat == tdx {
		return filepath.Join(root, hwsource.CCELDataPath)
	}
	return filepath.Join(root, hwsource.TPMLogPath)
}

// total is N, the number of events after the header.
func (s *sourceLog) total() int { return len(s.log.Events) }

// requireSource returns what the suite knows of a category's log on the
// hardware, srcs being what hw.setUp returned. It skips the spec when the
// target cannot serve that category, or when the suite cannot know what the
// simulated TPM holds.
func requireSource(hw hardwareSetup, srcs map[eventlogpb.CATEGORY]*sourceLog, cat eventlogpb.CATEGORY) *sourceLog {
	GinkgoHelper()
	requireFeatures(hw.categoryRequires[cat]...)
	src := srcs[cat]
	if src == nil {
		Skip("this suite was built without cgo: it cannot run the go-tpm-tools simulator to know what the simulated TPM holds")
	}
	return src
}

// simulatedHardware is --hwsource=simulated. The suite builds the same
// simulated machines from the same seed and reads their logs and
// registers: for the TD, the RTMRs the simulator computes as the TDX module
// would; for the TPM, the PCRs of a go-tpm-tools simulator (the Microsoft
// reference TPM) that every event was extended into, read back through
// go-tpm. The go-tpm-tools simulator is a singleton in a process: the suite
// opens it once here and closes it at once, and never while fakehost runs
// (that is another process).
func simulatedHardware(sim SimulatedHardware) hardwareSetup {
	return hardwareSetup{
		name:             fmt.Sprintf("simulated hardware (--hwsource=simulated, seed %d)", sim.Seed),
		categories:       []eventlogpb.CATEGORY{tdx, tpm},
		categoryRequires: map[eventlogpb.CATEGORY][]Feature{tpm: {FeatureSimulatedTPM}},
		setUp: func() (Hardware, map[eventlogpb.CATEGORY]*sourceLog) {
			GinkgoHelper()
			ctx := context.Background()
			srcs := map[eventlogpb.CATEGORY]*sourceLog{}

			td, err := simulator.NewTDX(simulator.TDXConfig{Seed: sim.Seed, Events: sim.TDXEvents, AreaSize: sim.AreaSize})
			Expect(err).NotTo(HaveOccurred())
			rtmrs, err := td.Registers(ctx)
			Expect(err).NotTo(HaveOccurred())
			srcs[tdx] = &sourceLog{kind: eventlog.TDX, log: mustParse(td.Log(), false), registers: rtmrs, live: true, simulated: true,
				registersFrom: "the simulated TD's RTMRs"}

			tp, err := simulator.NewTPM(simulator.TPMConfig{Seed: sim.Seed, Events: sim.TPMEvents})
			if errors.Is(err, simulator.ErrNoCgo) {
				// The server may still have its TPM: compare its events with
				// nothing but its own replay.
				srcs[tpm] = nil
				return Hardware{Simulated: &sim}, srcs
			}
			Expect(err).NotTo(HaveOccurred())
			defer tp.Close()
			raw, err := tp.ReadLog(ctx)
			Expect(err).NotTo(HaveOccurred())
			pcrs, err := tp.Registers(ctx)
			Expect(err).NotTo(HaveOccurred())
			// PCR 10 is the kernel's IMA's: its measurement list, not the
			// boot log, explains it. Checked against the list's replay
			// here, it is not the TPM log's to explain.
			list, err := tp.IMAList()
			Expect(err).NotTo(HaveOccurred())
			imaList, err := ima.Parse(list, ima.Options{})
			Expect(err).NotTo(HaveOccurred())
			imaPCRs, err := ima.Replay(imaList)
			Expect(err).NotTo(HaveOccurred())
			for alg := range imaPCRs {
				Expect(pcrs.Get(alg, 10)).To(Equal(imaPCRs.Get(alg, 10)), "%s PCR10: the IMA list's replay, against the simulator", alg)
				delete(pcrs[alg], 10)
			}
			srcs[tpm] = &sourceLog{kind: eventlog.TPM, log: mustParse(raw.Data, false), registers: pcrs, live: true, simulated: true,
				registersFrom: "the PCRs of the go-tpm-tools simulator the log was extended into"}
			return Hardware{Simulated: &sim}, srcs
		},
	}
}

// simulatorTree is a fake host tree written by the simulator's CLI,
// fakehost, served by the real backends (--hwsource=host --root).
func simulatorTree(seed int64) hardwareSetup {
	return hardwareSetup{
		name:       fmt.Sprintf("a fake host tree written by fakehost (seed %d)", seed),
		categories: []eventlogpb.CATEGORY{tdx, tpm},
		requires:   []Feature{FeatureHostTrees},
		setUp: func() (Hardware, map[eventlogpb.CATEGORY]*sourceLog) {
			GinkgoHelper()
			root := target.NewHostTree()
			writeFakeHost(root, seed)
			return Hardware{Tree: root}, readSimulatorTree(root)
		},
	}
}

// writeFakeHost runs fakehost to write a simulated host under root. It
// skips the spec when the suite was built without cgo: fakehost reads the
// expected PCRs from the go-tpm-tools simulator, which is C.
func writeFakeHost(root string, seed int64, extra ...string) {
	GinkgoHelper()
	if !bin.Cgo {
		Skip("fakehost reads the expected PCRs from the go-tpm-tools simulator, which is C, and this suite was built without cgo")
	}
	args := append([]string{"--out", root, "--seed", strconv.FormatInt(seed, 10)}, extra...)
	cmd := exec.Command(bin.FakeHost, args...)
	cmd.Env = commandEnv()
	out, err := cmd.CombinedOutput()
	Expect(err).NotTo(HaveOccurred(), "fakehost %s: %s", strings.Join(args, " "), out)
}

// serveFakeHost writes a fake host tree as writeFakeHost does, with extra
// flags that make fakehost go on serving a simulated device (--serve,
// --serve-tpm) until the spec ends; it returns once fakehost prints a line
// starting with ready.
func serveFakeHost(ctx context.Context, root string, seed int64, ready string, extra ...string) {
	GinkgoHelper()
	if !bin.Cgo {
		Skip("fakehost runs the go-tpm-tools simulator, which is C, and this suite was built without cgo")
	}
	args := append([]string{"--out", root, "--seed", strconv.FormatInt(seed, 10)}, extra...)
	cmd := exec.Command(bin.FakeHost, args...)
	cmd.Env = commandEnv()
	out, err := cmd.StdoutPipe()
	Expect(err).NotTo(HaveOccurred())
	cmd.Stderr = GinkgoWriter
	Expect(cmd.Start()).To(Succeed())
	DeferCleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	serving := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			fmt.Fprintln(GinkgoWriter, "fakehost:", sc.Text())
			if strings.HasPrefix(sc.Text(), ready) {
				close(serving)
			}
		}
	}()
	select {
	case <-serving:
	case <-time.After(2 * time.Minute):
		Fail(fmt.Sprintf("fakehost %s did not print %q within 2 minutes", strings.Join(args, " "), ready))
	case <-ctx.Done():
		Fail("canceled")
	}
}

// readSimulatorTree reads the logs of a tree fakehost wrote, and its
// expected-registers.json.
func readSimulatorTree(root string) map[eventlogpb.CATEGORY]*sourceLog {
	GinkgoHelper()
	exp, err := simulator.ReadExpectedRegisters(filepath.Join(root, simulator.ExpectedRegistersFile))
	Expect(err).NotTo(HaveOccurred())
	srcs := map[eventlogpb.CATEGORY]*sourceLog{}
	for cat, kind := range map[eventlogpb.CATEGORY]eventlog.Kind{tdx: eventlog.TDX, tpm: eventlog.TPM} {
		regs, err := exp.Bank(kind)
		Expect(err).NotTo(HaveOccurred())
		srcs[cat] = &sourceLog{kind: kind, log: readTreeLog(root, cat), registers: regs, file: treeLogFile(root, cat),
			registersFrom: simulator.ExpectedRegistersFile + " (fakehost's live registers)"}
	}
	return srcs
}

// readTreeLog parses a category's log in a host tree, as the real backend
// finds it: the CCEL log area (LAML bytes, as its table says) or
// binary_bios_measurements.
func readTreeLog(root string, cat eventlogpb.CATEGORY) *eventlog.Log {
	GinkgoHelper()
	if cat == tpm {
		return mustParse(readFile(treeLogFile(root, tpm)), false)
	}
	table, err := ccel.Parse(readFile(filepath.Join(root, hwsource.CCELTablePath)))
	Expect(err).NotTo(HaveOccurred())
	area := readFile(treeLogFile(root, tdx))
	Expect(uint64(len(area))).To(BeNumerically(">=", table.LAML))
	return mustParse(area[:table.LAML], true)
}

// corpusDir holds the real logs of eventlog/testdata/corpus.
func corpusDir() string { return filepath.Join(bin.ModuleRoot, "eventlog", "testdata", "corpus") }

// corpusTree is a host tree holding real logs from the corpus at the sysfs
// paths: tdxLog (a name under tdx/ without .table.bin/.data.bin, or an
// unpadded log the suite writes a CCEL table for) and tpmLog (a file under
// tpm/). Either may be empty: that category is then absent.
func corpusTree(tdxLog, tpmLog, about string) hardwareSetup {
	var cats []eventlogpb.CATEGORY
	var names []string
	if tdxLog != "" {
		cats = append(cats, tdx)
		names = append(names, "tdx/"+tdxLog)
	}
	if tpmLog != "" {
		cats = append(cats, tpm)
		names = append(names, "tpm/"+tpmLog)
	}
	return hardwareSetup{
		name:       fmt.Sprintf("a host tree holding real logs (%s: %s)", strings.Join(names, ", "), about),
		categories: cats,
		requires:   []Feature{FeatureHostTrees},
		setUp: func() (Hardware, map[eventlogpb.CATEGORY]*sourceLog) {
			GinkgoHelper()
			root := target.NewHostTree()
			writeCorpusTree(root, tdxLog, tpmLog, 0o444)
			expected := corpus.Expected(GinkgoT())
			srcs := map[eventlogpb.CATEGORY]*sourceLog{}
			for _, cat := range cats {
				name, kind := "tpm/"+tpmLog, eventlog.TPM
				if cat == tdx {
					name, kind = "tdx/"+tdxLog, eventlog.TDX
					if !strings.HasSuffix(tdxLog, ".bin") {
						name += ".data.bin"
					}
				}
				exp, ok := expected[name]
				Expect(ok).To(BeTrue(), "expected.json has no entry for %s", name)
				l := readTreeLog(root, cat)
				Expect(len(l.Events)+1).To(Equal(exp.EventsInclHeader), "%s: events in the tree's log, with the header, against expected.json", name)
				srcs[cat] = &sourceLog{kind: kind, log: l, registers: exp.Bank(GinkgoT()), file: treeLogFile(root, cat),
					registersFrom: "expected.json (" + name + ")"}
			}
			return Hardware{Tree: root}, srcs
		},
	}
}

// writeCorpusTree copies corpus logs into root at the sysfs paths, with
// the given file mode. An unpadded TDX log gets a CCEL table written for it,
// whose log area is exactly the log.
func writeCorpusTree(root, tdxLog, tpmLog string, mode os.FileMode) {
	GinkgoHelper()
	if tdxLog != "" {
		var table, area []byte
		if strings.HasSuffix(tdxLog, ".bin") {
			area = readFile(filepath.Join(corpusDir(), "tdx", tdxLog))
			table = (&ccel.Table{Revision: 1, OEMID: "E2E", OEMTableID: "CORPUS", CreatorID: "E2E",
				CCType: ccel.TypeTDX, LAML: uint64(len(area)), LASA: 0x7fbf0000}).Marshal()
		} else {
			table = readFile(filepath.Join(corpusDir(), "tdx", tdxLog+".table.bin"))
			area = readFile(filepath.Join(corpusDir(), "tdx", tdxLog+".data.bin"))
		}
		writeTreeFile(root, hwsource.CCELTablePath, table, mode)
		writeTreeFile(root, hwsource.CCELDataPath, area, mode)
	}
	if tpmLog != "" {
		writeTreeFile(root, hwsource.TPMLogPath, readFile(filepath.Join(corpusDir(), "tpm", tpmLog)), mode)
	}
}

// writeTreeFile writes a file at a host path under root.
func writeTreeFile(root, hostPath string, b []byte, mode os.FileMode) {
	GinkgoHelper()
	path := filepath.Join(root, hostPath)
	Expect(os.MkdirAll(filepath.Dir(path), 0o755)).To(Succeed())
	Expect(os.WriteFile(path, b, 0o600)).To(Succeed())
	Expect(os.Chmod(path, mode)).To(Succeed()) // whatever the umask
}

func readFile(path string) []byte {
	GinkgoHelper()
	b, err := os.ReadFile(path)
	Expect(err).NotTo(HaveOccurred())
	return b
}

func mustParse(b []byte, area bool) *eventlog.Log {
	GinkgoHelper()
	parse := eventlog.Parse
	if area {
		parse = eventlog.ParseArea
	}
	l, err := parse(b)
	Expect(err).NotTo(HaveOccurred())
	return l
}
