package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog/ccel"
	"github.com/ccnp-eventlog/ccnp-eventlog/internal/boundedread"
)

func init() {
	commands["decode"] = command{
		summary: "print an event log file (and a CCEL table) as JSON",
		run:     func(args []string) int { return runDecode(args, os.Stdout, os.Stderr) },
	}
}

const decodeSynopsis = `eventlog-server decode [--area] [--tdx] FILE
       eventlog-server decode --table TABLE [FILE]
       eventlog-server decode --ima [--ima-hash ALG] FILE

Prints the events of FILE, a TPM event log (binary_bios_measurements) or a
TDX CCEL log area (data/CCEL), as the CCNP JSON the server writes. With
--table, also prints the fields of TABLE, an ACPI CCEL table (the file
tables/CCEL); FILE is then its log area, and the output is
{"Table": {...}, "EventLog": {...}}. With --table alone, prints the table.
With --ima, FILE is the kernel's IMA measurement list
(ima/binary_runtime_measurements), printed as the JSON the server writes for
it: each entry's number, PCR, template hash and name, and the template's
fields.`

// maxLogFile bounds what decode and replay read: real logs are at most a few
// MiB (a CCEL log area is typically 64 KiB to 1 MiB), and a wrong path such
// as /dev/zero must fail rather than fill memory.
const maxLogFile = 64 << 20

// readLogFile reads a file of at most maxLogFile bytes. Unlike the server,
// which reads regular files only, it reads whatever its user names: a pipe
// (decode <(ssh node cat ...)) or /dev/stdin is what a shell user means.
func readLogFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := boundedread.ReadAll(f, maxLogFile)
	var tooLarge *boundedread.TooLargeError
	if errors.As(err, &tooLarge) {
		return nil, fmt.Errorf("%s: larger than %d MiB: not an event log", path, maxLogFile>>20)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return b, nil
}

// parseLogFile reads and parses an event log file. tdx reads it as a TDX
// CCEL log area; area as a log area of undetected kind; otherwise the
// framing and kind are detected (eventlog.ParseDetect).
func parseLogFile(path string, area, tdx bool) (*eventlog.Log, eventlog.Kind, error) {
	b, err := readLogFile(path)
	if err != nil {
		return nil, 0, err
	}
	var l *eventlog.Log
	kind := eventlog.TDX
	switch {
	case tdx:
		l, err = eventlog.ParseArea(b)
	case area:
		if l, err = eventlog.ParseArea(b); err == nil {
			kind = eventlog.DetectKind(l, b)
		}
	default:
		l, kind, err = eventlog.ParseDetect(b)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", path, err)
	}
	return l, kind, nil
}

// parseArgs parses flags wherever they are among the arguments ("decode
// FILE --table T" as well as "decode --table T FILE") and returns the
// positional arguments.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := parseFlags(fs, args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// isSet reports whether the flag was given (on the command line or in its
// environment variable).
func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func runDecode(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("decode", decodeSynopsis)
	fs.SetOutput(stderr)
	table := fs.String("table", "", "ACPI CCEL table file to decode; FILE is then its log area")
	area := fs.Bool("area", false, "read FILE as a CCEL log area, which ends at 0xFF or 0x00 padding (default: detected; on with --table)")
	tdx := fs.Bool("tdx", false, "read FILE as a TDX CCEL log area: registers are RTMRs")
	imaList := fs.Bool("ima", false, "read FILE as the kernel's IMA measurement list (binary_runtime_measurements)")
	imaHash := fs.String("ima-hash", "", imaHashUsage)
	files, err := parseArgs(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "eventlog-server decode: %v\n", err)
		return 2
	}
	if len(files) > 1 || (len(files) == 0 && *table == "") {
		fmt.Fprintf(stderr, "eventlog-server decode: want one FILE (or --table TABLE), got %d arguments\n", len(files))
		fs.Usage()
		return 2
	}
	if *imaList || *imaHash != "" {
		if !*imaList || *table != "" || *area || *tdx || len(files) != 1 {
			fmt.Fprintln(stderr, "eventlog-server decode: --ima takes one FILE and no --table, --area or --tdx; --ima-hash goes with --ima")
			return 2
		}
		return decodeIMA(files[0], *imaHash, stdout, stderr)
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "eventlog-server decode: %v\n", err)
		return 1
	}

	var out []byte
	var opts eventlog.JSONOptions
	if *table != "" {
		b, err := readLogFile(*table)
		if err != nil {
			return fail(err)
		}
		t, err := ccel.Parse(b)
		if err != nil {
			return fail(fmt.Errorf("%s: %w", *table, err))
		}
		// A Table's fields, and its CC type's name.
		tj, err := json.Marshal(struct {
			*ccel.Table
			CCTypeName string
		}{t, t.CCTypeName()})
		if err != nil {
			return fail(err)
		}
		if len(files) == 0 {
			_, err = stdout.Write(append(tj, '\n'))
			return exitStatus(err, stderr)
		}
		out = append(append(append(out, `{"Table":`...), tj...), `,"EventLog":`...)
		opts.Address = t.LASA
		if !isSet(fs, "area") {
			*area = true
		}
		if t.CCType == ccel.TypeTDX {
			*tdx = true
		}
	}

	l, kind, err := parseLogFile(files[0], *area, *tdx)
	if err != nil {
		return fail(err)
	}
	opts.Kind = kind
	out = eventlog.AppendCCNPJSON(out, l, l.Events, opts)
	if *table != "" {
		out = append(bytes.TrimSuffix(out, []byte("\n")), "}\n"...)
	}
	_, err = stdout.Write(out)
	return exitStatus(err, stderr)
}

// exitStatus reports a failed write of the output (a closed pipe, a full
// disk): the output is then incomplete and the status must say so.
func exitStatus(writeErr error, stderr io.Writer) int {
	if writeErr != nil {
		fmt.Fprintf(stderr, "eventlog-server: writing the output: %v\n", writeErr)
		return 1
	}
	return 0
}
