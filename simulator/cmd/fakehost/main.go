// Command fakehost writes a simulated host's event logs in the layout of a
// real host, so the real backends can run on a machine without TDX or a TPM:
//
//	go run ./simulator/cmd/fakehost --out DIR [--seed N] [--tdx-events N] [--tpm-events N] [--area-size N]
//	eventlog-server --root DIR ...
//
// DIR gets the CCEL table and log area, the tdx_guest RTMR files, the TPM's
// binary_bios_measurements, the kernel's boot ID and expected-registers.json.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"github.com/ccnp-eventlog/ccnp-eventlog/simulator"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is the command, returning its exit status: 0, 1 when the tree cannot
// be written, 2 for bad usage.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("fakehost", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: fakehost --out DIR [flags]\n\nWrites a simulated host tree (CCEL table and log area, RTMRs, TPM log, %s).\n\nFlags:\n", simulator.ExpectedRegistersFile)
		fs.PrintDefaults()
	}
	out := fs.String("out", "", "directory to write the tree to (required)")
	seed := fs.Int64("seed", 1, "seed of the simulated logs: a seed always gives the same bytes")
	tdxEvents := fs.Int("tdx-events", simulator.DefaultTDXEvents, "events in the TDX log after its header")
	tpmEvents := fs.Int("tpm-events", simulator.DefaultTPMEvents, "events in the TPM log after its header")
	areaSize := fs.Int("area-size", simulator.DefaultAreaSize, fmt.Sprintf("CCEL log area size in bytes (at most %d)", simulator.MaxAreaSize))
	tdxLive := fs.Bool("tdx-live", true, "also write sys/class/misc/tdx_guest/measurements/rtmr{0..3}:sha384")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *out == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "fakehost: --out DIR is required, and there are no arguments")
		fs.Usage()
		return 2
	}

	exp, err := simulator.WriteHostTree(*out, simulator.HostConfig{
		Seed:      *seed,
		TDXEvents: *tdxEvents,
		TPMEvents: *tpmEvents,
		AreaSize:  *areaSize,
		TDXLive:   *tdxLive,
	})
	if err != nil {
		fmt.Fprintln(stderr, "fakehost:", err)
		return 1
	}
	fmt.Fprintf(stdout, "wrote a simulated host (seed %d) to %s: TDX log of %d events in a %d-byte area, TPM log of %d events\n",
		*seed, *out, *tdxEvents, *areaSize, *tpmEvents)
	fmt.Fprintf(stdout, "expected registers in %s:\n", filepath.Join(*out, simulator.ExpectedRegistersFile))
	for _, cat := range []struct {
		kind eventlog.Kind
		regs map[string]map[string]string
	}{{eventlog.TDX, exp.TDX}, {eventlog.TPM, exp.TPM}} {
		var idx []uint32
		for name := range cat.regs {
			i, _ := cat.kind.RegisterIndex(name)
			idx = append(idx, i)
		}
		slices.Sort(idx)
		var names []string
		for _, i := range idx {
			names = append(names, cat.kind.RegisterName(i))
		}
		fmt.Fprintf(stdout, "  %s: %v\n", strings.ToLower(cat.kind.String()), names)
	}
	return 0
}
