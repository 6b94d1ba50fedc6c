// Command fakehost writes a simulated host's event logs in the layout of a
// real host, so the real backends can run on a machine without TDX or a TPM:
//
//	go run ./simulator/cmd/fakehost --out DIR [--kernel 6.16|6.8|staged] [--serve] [--seed N] ...
//	eventlog-server --root DIR ...
//
// DIR gets the CCEL table and log area, the tdx_guest measurements (as the
// --kernel profile has them), the TPM's binary_bios_measurements, the
// kernel's boot ID, expected-registers.json, and the simulated TD's
// evidence: an unsigned TD quote (td-quote.bin) and a TDREPORT
// (tdreport.bin). With --kernel 6.8 --serve it then serves the simulated
// TD's /dev/tdx_guest on a Unix socket at DIR/dev/tdx_guest until it is
// stopped (SIGINT, SIGTERM), as the real backend reads it on Linux 5.19-6.15.
//
// The tree also holds the kernel's IMA measurement list
// (sys/kernel/security/ima/binary_runtime_measurements), its PCR 10 under
// "ima" in expected-registers.json. A running kernel's list grows:
//
//	go run ./simulator/cmd/fakehost --out DIR --ima-append N
//
// appends N entries to the list of the tree at DIR, in place, and updates
// its expected PCR 10; nothing else in the tree changes.
//
// With --serve-tpm it serves the simulated TPM (the same seed: the same
// PCRs) on a Unix socket at DIR/dev/tpmrm0 until stopped, where the real
// TPM backend reaches a TPM over a socket: the tree then has live PCRs, and
// --ima-append, run meanwhile, extends the entries it appends into PCR 10,
// as the kernel does.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"syscall"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"github.com/ccnp-eventlog/ccnp-eventlog/hwsource"
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
	tdxLive := fs.Bool("tdx-live", true, "also write sys/class/misc/tdx_guest/measurements/{rtmr0..3,mrtd}:sha384 (without --kernel)")
	kernelName := fs.String("kernel", "", "lay the TD out as a kernel generation shows it: 6.16 (sysfs measurements, which also extend), 6.8 (TDREPORTs from /dev/tdx_guest only: see --serve) or staged (the CCEL copies under run/firmware only); empty: --tdx-live decides")
	imaEntries := fs.Int("ima-entries", simulator.DefaultIMAEntries, fmt.Sprintf("entries in the IMA measurement list (at most %d): a boot_aggregate, ima-ng file measurements and one violation", simulator.MaxIMAEntries))
	imaAppend := fs.Int("ima-append", 0, "append this many entries to the IMA measurement list of the tree already at --out, and update its expected PCR 10; writes nothing else")
	serveTPM := fs.Bool("serve-tpm", false, "after writing the tree, serve its simulated TPM at DIR/dev/tpmrm0 until stopped: live PCRs for the TPM log and the IMA list, which --ima-append then extends")
	serve := fs.Bool("serve", false, "with --kernel 6.8: after writing the tree, serve the simulated TD's /dev/tdx_guest on a Unix socket at DIR/dev/tdx_guest until stopped")
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

	if *imaAppend != 0 {
		if *serve || *serveTPM || *kernelName != "" {
			fmt.Fprintln(stderr, "fakehost: --ima-append changes an existing tree: no --serve, --serve-tpm or --kernel")
			return 2
		}
		exp, err := simulator.AppendHostIMA(*out, *imaAppend)
		if err != nil {
			fmt.Fprintln(stderr, "fakehost:", err)
			return 1
		}
		fmt.Fprintf(stdout, "appended %d entries to %s: PCR10 now %v\n", *imaAppend, filepath.Join(*out, simulator.IMAListPath), exp.IMA["PCR10"])
		return 0
	}

	var kernel simulator.Kernel
	if *kernelName != "" {
		k, err := simulator.ParseKernel(*kernelName)
		if err != nil {
			fmt.Fprintln(stderr, "fakehost:", err)
			return 2
		}
		kernel = k
	}
	if *serve && *serveTPM {
		fmt.Fprintln(stderr, "fakehost: --serve and --serve-tpm each serve until stopped: run two fakehosts")
		return 2
	}
	if *serve && kernel != simulator.Kernel68 {
		fmt.Fprintln(stderr, "fakehost: --serve serves /dev/tdx_guest, which only the 6.8 profile reads: add --kernel 6.8")
		return 2
	}

	cfg := simulator.HostConfig{
		Seed:       *seed,
		TDXEvents:  *tdxEvents,
		TPMEvents:  *tpmEvents,
		IMAEntries: *imaEntries,
		AreaSize:   *areaSize,
		TDXLive:    *tdxLive,
		Kernel:     kernel,
	}
	exp, err := simulator.WriteHostTree(*out, cfg)
	if err != nil {
		fmt.Fprintln(stderr, "fakehost:", err)
		return 1
	}
	fmt.Fprintf(stdout, "wrote a simulated host (seed %d) to %s: TDX log of %d events in a %d-byte area, TPM log of %d events, IMA list of %d entries\n",
		*seed, *out, *tdxEvents, *areaSize, *tpmEvents, *imaEntries)
	fmt.Fprintf(stdout, "expected registers in %s:\n", filepath.Join(*out, simulator.ExpectedRegistersFile))
	for _, cat := range []struct {
		label string
		kind  eventlog.Kind
		regs  map[string]map[string]string
	}{{"tdx", eventlog.TDX, exp.TDX}, {"tpm", eventlog.TPM, exp.TPM}, {"ima", eventlog.TPM, exp.IMA}} {
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
		fmt.Fprintf(stdout, "  %s: %v\n", cat.label, names)
	}
	if kernel != "" {
		fmt.Fprintf(stdout, "kernel profile %s\n", kernel)
	}
	if *serve {
		return serveDevice(*out, *seed, *tdxEvents, *areaSize, stdout, stderr)
	}
	if *serveTPM {
		return serveTPMDevice(*out, cfg, stdout, stderr)
	}
	return 0
}

// serveTPMDevice serves the tree's simulated TPM at DIR/dev/tpmrm0 until
// SIGINT or SIGTERM.
func serveTPMDevice(dir string, cfg simulator.HostConfig, stdout, stderr io.Writer) int {
	tpm, l, err := simulator.ServeHostTPM(dir, cfg)
	if err != nil {
		fmt.Fprintln(stderr, "fakehost:", err)
		return 1
	}
	defer tpm.Close()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() { <-ctx.Done(); l.Close() }()
	fmt.Fprintf(stdout, "serving the simulated TPM at %s (until SIGINT or SIGTERM)\n", filepath.Join(dir, hwsource.TPMDevicePath))
	if err := tpm.Serve(l); err != nil {
		fmt.Fprintln(stderr, "fakehost:", err)
		return 1
	}
	return 0
}

// serveDevice serves the simulated TD's TDREPORTs at DIR/dev/tdx_guest until
// SIGINT or SIGTERM. The TD is built again from the same seed: the same log,
// the same registers as the tree's.
func serveDevice(dir string, seed int64, events, areaSize int, stdout, stderr io.Writer) int {
	td, err := simulator.NewTDX(simulator.TDXConfig{Seed: seed, Events: events, AreaSize: areaSize})
	if err != nil {
		fmt.Fprintln(stderr, "fakehost:", err)
		return 1
	}
	path := filepath.Join(dir, hwsource.TDXGuestDevicePath)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		fmt.Fprintln(stderr, "fakehost:", err)
		return 1
	}
	os.Remove(path) // a socket left by an earlier run
	l, err := net.Listen("unix", path)
	if err != nil {
		fmt.Fprintln(stderr, "fakehost:", err)
		return 1
	}
	// Anyone may ask, as a server of any uid reads the tree.
	if err := os.Chmod(path, 0o666); err != nil {
		fmt.Fprintln(stderr, "fakehost:", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() { <-ctx.Done(); l.Close() }()
	fmt.Fprintf(stdout, "serving the simulated TD's /dev/tdx_guest at %s (until SIGINT or SIGTERM)\n", path)
	if err := td.ServeReports(l); err != nil {
		fmt.Fprintln(stderr, "fakehost:", err)
		return 1
	}
	return 0
}
