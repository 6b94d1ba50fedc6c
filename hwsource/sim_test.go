package hwsource_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog/ima"
	"github.com/ccnp-eventlog/ccnp-eventlog/hwsource"
	"github.com/ccnp-eventlog/ccnp-eventlog/simulator"
	"github.com/google/go-tpm/tpm2"
)

// The tests here use the go-tpm-tools simulator, one per process: none of
// them runs in parallel, and each closes its simulated TPM.

// TestRealBackendsOnSimulatedTrees runs the real backends on trees the
// simulator writes, for several seeds and sizes.
func TestRealBackendsOnSimulatedTrees(t *testing.T) {
	for _, cfg := range []simulator.HostConfig{
		{Seed: 1, TDXLive: true},
		{Seed: 2, TDXEvents: 300, TPMEvents: 300, AreaSize: 256 << 10, TDXLive: true},
		{Seed: 3, TDXEvents: 5000, TPMEvents: 2000, AreaSize: 1 << 20, TDXLive: true},
		{Seed: -7, TDXEvents: 41, TPMEvents: 45},
	} {
		t.Run(fmt.Sprintf("seed%d-%d-%d", cfg.Seed, cfg.TDXEvents, cfg.TPMEvents), func(t *testing.T) {
			root := t.TempDir()
			exp, err := simulator.WriteHostTree(root, cfg)
			if err != nil {
				t.Fatal(err)
			}
			tdxEvents, tpmEvents, areaSize := cfg.TDXEvents, cfg.TPMEvents, cfg.AreaSize
			if tdxEvents == 0 {
				tdxEvents = simulator.DefaultTDXEvents
			}
			if tpmEvents == 0 {
				tpmEvents = simulator.DefaultTPMEvents
			}
			if areaSize == 0 {
				areaSize = simulator.DefaultAreaSize
			}

			tdx := hwsource.NewTDX(root)
			l := readAndParse(t, tdx, tdxEvents)
			if len(l.Raw) >= areaSize || !bytes.Equal(readFile(t, root, hwsource.CCELDataPath)[len(l.Raw):], bytes.Repeat([]byte{0xff}, areaSize-len(l.Raw))) {
				t.Errorf("log area is not the log followed by 0xFF padding to %d bytes", areaSize)
			}
			replayed := replay(t, l)
			if want, err := exp.Bank(eventlog.TDX); err != nil || !replayed.Equal(want) {
				t.Errorf("TDX replay differs from %s (%v)", simulator.ExpectedRegistersFile, err)
			}
			live, err := tdx.Registers(context.Background())
			if cfg.TDXLive {
				if err != nil {
					t.Fatal(err)
				}
				// MRTD (index 0) is the tree's mrtd:sha384, which no log extends.
				if mrtd := live.Get(eventlog.AlgSHA384, 0); !bytes.Equal(mrtd, readFile(t, root, hwsource.MRTDPath)) {
					t.Errorf("MRTD %x, the tree holds %x", mrtd, readFile(t, root, hwsource.MRTDPath))
				}
				delete(live[eventlog.AlgSHA384], 0)
				checkLive(t, replayed, live, func(eventlog.Alg, uint32) []byte { return make([]byte, 48) })
			} else if err == nil {
				t.Errorf("Registers() found RTMR files the tree was written without")
			}

			tpm := hwsource.NewTPM(root)
			replayed = replay(t, readAndParse(t, tpm, tpmEvents))
			if want, err := exp.Bank(eventlog.TPM); err != nil || !replayed.Equal(want) {
				t.Errorf("TPM replay differs from %s (%v)", simulator.ExpectedRegistersFile, err)
			}
		})
	}
}

// TestRealTPMBackendOnSimulator runs the real TPM backend, go-tpm transport
// included, against the simulator served on a Unix socket at dev/tpmrm0.
func TestRealTPMBackendOnSimulator(t *testing.T) {
	for _, cfg := range []simulator.TPMConfig{{Seed: 1}, {Seed: 99, Events: 1500}} {
		t.Run(fmt.Sprintf("seed%d", cfg.Seed), func(t *testing.T) {
			sim, err := simulator.NewTPM(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer sim.Close()
			simLog, err := sim.ReadLog(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			root := writeTree(t, map[string][]byte{hwsource.TPMLogPath: simLog.Data})
			if err := os.MkdirAll(filepath.Join(root, "dev"), 0o755); err != nil {
				t.Fatal(err)
			}
			ln, err := net.Listen("unix", filepath.Join(root, hwsource.TPMDevicePath))
			if err != nil {
				t.Fatal(err)
			}
			served := make(chan error)
			go func() { served <- sim.Serve(ln) }()
			defer func() {
				ln.Close()
				if err := <-served; err != nil {
					t.Errorf("Serve: %v", err)
				}
			}()

			src := hwsource.NewTPM(root)
			l := readAndParse(t, src, max(cfg.Events, simulator.DefaultTPMEvents))
			live, err := src.Registers(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if algs := live.Indexes(); len(live) != 2 || len(algs) != 24 {
				t.Errorf("Registers() read %d banks of %d PCRs, want the log's 2 banks of 24", len(live), len(algs))
			}
			// PCR 10 is the simulated kernel's IMA's: its list replays to it.
			replayed := replay(t, l)
			list, err := sim.IMAList()
			if err != nil {
				t.Fatal(err)
			}
			imaList, err := ima.Parse(list, ima.Options{})
			if err != nil {
				t.Fatal(err)
			}
			imaPCRs, err := ima.Replay(imaList)
			if err != nil {
				t.Fatal(err)
			}
			for alg := range imaPCRs {
				replayed.Set(alg, 10, imaPCRs.Get(alg, 10))
			}
			checkLive(t, replayed, live, pcrResetValue)
			direct, err := sim.Registers(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if !direct.Equal(live) {
				t.Errorf("PCRs read over the socket differ from PCRs read in process")
			}
		})
	}
}

// pcrResetValue is a PC Client PCR's value after TPM2_Startup: PCRs 17..22
// (the DRTM PCRs) start at all ones, the others at zero.
func pcrResetValue(alg eventlog.Alg, pcr uint32) []byte {
	v := make([]byte, alg.Size())
	if pcr >= 17 && pcr <= 22 {
		for i := range v {
			v[i] = 0xff
		}
	}
	return v
}

// checkLive checks that every replayed register has its live value and that
// every other live register still has its reset value.
func checkLive(t *testing.T, replayed, live eventlog.Bank, reset func(eventlog.Alg, uint32) []byte) {
	t.Helper()
	for alg, regs := range live {
		for idx, v := range regs {
			want := replayed.Get(alg, idx)
			if want == nil {
				want = reset(alg, idx)
			}
			if !bytes.Equal(v, want) {
				t.Errorf("live %s register %d = %x, want %x", alg, idx, v, want)
			}
		}
	}
	for alg, regs := range replayed {
		for idx := range regs {
			if live.Get(alg, idx) == nil {
				t.Errorf("replay extends %s register %d, which was not read live", alg, idx)
			}
		}
	}
}

func readAndParse(t *testing.T, src hwsource.Source, events int) *eventlog.Log {
	t.Helper()
	raw, err := src.ReadLog(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	l := raw.Parsed
	if len(l.Events) != events {
		t.Errorf("%s: %d events, want %d", src.Name(), len(l.Events), events)
	}
	return l
}

func replay(t *testing.T, l *eventlog.Log) eventlog.Bank {
	t.Helper()
	b, err := eventlog.Replay(l)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readFile(t *testing.T, root, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, path))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// interferingTPM passes commands to the simulator, and before the PCR_Reads
// that interfere says, extends PCR12 as another process using the TPM could.
type interferingTPM struct {
	sim       *simulator.TPM
	reads     int
	interfere func(read int) bool
	t         *testing.T
}

func (i *interferingTPM) Send(cmd []byte) ([]byte, error) {
	if len(cmd) >= 10 && tpm2.TPMCC(binary.BigEndian.Uint32(cmd[6:])) == tpm2.TPMCCPCRRead {
		i.reads++
		if i.interfere(i.reads) {
			_, err := tpm2.PCREvent{
				PCRHandle: tpm2.AuthHandle{Handle: 12, Auth: tpm2.PasswordAuth(nil)},
				EventData: tpm2.TPM2BEvent{Buffer: []byte("interference")},
			}.Execute(i.sim)
			if err != nil {
				i.t.Errorf("extend PCR12: %v", err)
			}
		}
	}
	return i.sim.Send(cmd)
}

// TestReadPCRsSnapshot: PCRs extended halfway through a read make ReadPCRs
// start over, so what it returns is one state of the TPM, never a mix.
func TestReadPCRsSnapshot(t *testing.T) {
	sim, err := simulator.NewTPM(simulator.TPMConfig{Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	algs := []eventlog.Alg{eventlog.AlgSHA1, eventlog.AlgSHA256}

	// Each bank takes 3 reads of 8 PCRs: 6 reads without interference.
	tpm := &interferingTPM{sim: sim, interfere: func(n int) bool { return n == 4 }, t: t}
	got, err := hwsource.ReadPCRs(tpm, algs, hwsource.PCClientPCRs)
	if err != nil {
		t.Fatal(err)
	}
	if tpm.reads != 4+6 {
		t.Errorf("ReadPCRs sent %d PCR_Reads, want 10 (3, the one that saw the interference, then 6 again)", tpm.reads)
	}
	after, err := hwsource.ReadPCRs(sim, algs, hwsource.PCClientPCRs)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Equal(after) {
		t.Errorf("ReadPCRs returned a mix of states: SHA-1 PCR12 %x (read before the extend), now %x", got.Get(eventlog.AlgSHA1, 12), after.Get(eventlog.AlgSHA1, 12))
	}
	if bytes.Equal(got.Get(eventlog.AlgSHA256, 12), make([]byte, 32)) {
		t.Errorf("PCR12 was not extended: the interference did not happen")
	}

	always := &interferingTPM{sim: sim, interfere: func(n int) bool { return n > 1 }, t: t}
	if _, err := hwsource.ReadPCRs(always, algs, hwsource.PCClientPCRs); err == nil || !strings.Contains(err.Error(), "kept changing") {
		t.Errorf("ReadPCRs with PCRs changing under every read: error = %v, want it to give up", err)
	}
}

func TestPCRBanks(t *testing.T) {
	sim, err := simulator.NewTPM(simulator.TPMConfig{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	banks, err := hwsource.PCRBanks(sim)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []eventlog.Alg{eventlog.AlgSHA1, eventlog.AlgSHA256} {
		found := false
		for _, b := range banks {
			found = found || b == want
		}
		if !found {
			t.Errorf("PCRBanks() = %v, want it to include %s", banks, want)
		}
	}
	// A bank the TPM does not have is a clear error, not an empty result.
	_, err = hwsource.ReadPCRs(sim, []eventlog.Alg{eventlog.AlgSM3_256}, hwsource.PCClientPCRs)
	if err == nil || !strings.Contains(err.Error(), "sm3_256") {
		t.Errorf("ReadPCRs of an SM3 bank: error = %v, want one naming the bank", err)
	}
}

// TestTPMRegistersFollowTheLogRead: Registers reads the PCR banks of the log
// the source read, without reading it again (a firmware log does not
// change after boot); before any ReadLog it reads the log once itself.
func TestTPMRegistersFollowTheLogRead(t *testing.T) {
	sim, err := simulator.NewTPM(simulator.TPMConfig{Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	// A SHA-256-only log, on a TPM with SHA-1 and SHA-256 banks.
	sha256Only := eventlog.AppendSpecIDHeader(nil, 0, []eventlog.Alg{eventlog.AlgSHA256})
	sha256Only = eventlog.AppendEvent2(sha256Only, 0, eventlog.EvSeparator, eventlog.Measure([]byte{0, 0, 0, 0}, []eventlog.Alg{eventlog.AlgSHA256}), []byte{0, 0, 0, 0})
	root := writeTree(t, map[string][]byte{hwsource.TPMLogPath: sha256Only})
	if err := os.MkdirAll(filepath.Join(root, "dev"), 0o755); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("unix", filepath.Join(root, hwsource.TPMDevicePath))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go sim.Serve(ln)
	logPath := filepath.Join(root, hwsource.TPMLogPath)
	banks := func(src hwsource.Source) []eventlog.Alg {
		t.Helper()
		live, err := src.Registers(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		var algs []eventlog.Alg
		for alg := range live {
			algs = append(algs, alg)
		}
		return algs
	}

	read := hwsource.NewTPM(root)
	if _, err := read.ReadLog(context.Background()); err != nil {
		t.Fatal(err)
	}
	unread := hwsource.NewTPM(root)
	if got := banks(unread); fmt.Sprint(got) != "[sha256]" {
		t.Errorf("before any ReadLog, Registers read the banks %v, want the log's [sha256]", got)
	}
	// The log gone (a FIFO in its place), both still know its banks.
	if err := os.Remove(logPath); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(logPath, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, src := range []hwsource.Source{read, unread} {
		if got := banks(src); fmt.Sprint(got) != "[sha256]" {
			t.Errorf("with the log read before, Registers read the banks %v, want the log's [sha256]: it read the log again", got)
		}
	}
	// A source that never read it reads every bank the TPM has.
	if got := banks(hwsource.NewTPM(root)); len(got) < 2 {
		t.Errorf("without a log, Registers read the banks %v, want every bank of the TPM", got)
	}
}
