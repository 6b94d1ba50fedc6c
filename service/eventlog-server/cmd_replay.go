package main

import (
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
)

func init() {
	commands["replay"] = command{
		summary: "compute the registers an event log file extends",
		run:     func(args []string) int { return runReplay(args, os.Stdout, os.Stderr) },
	}
}

const replaySynopsis = `eventlog-server replay [--tdx] FILE
       eventlog-server replay --ima [--ima-hash ALG] FILE

Replays the measured events of FILE, a TPM event log or a TDX CCEL log area,
and prints {"events": N, "registers": {"PCR7": {"sha256": "<hex>"}, ...}}:
N events after the Spec ID header, and each register the log extends, by
algorithm. EV_NO_ACTION events are not replayed; StartupLocality sets PCR0's
start. A TDX log's registers are RTMR0..3 (CC MR index 1..4). Without --tdx,
a file is taken as TDX only where its bytes say so: a padded log area, or a
TDVF Spec ID header (index 1, SHA-384 only).

With --ima, FILE is the kernel's IMA measurement list
(ima/binary_runtime_measurements), and the output is {"entries": N,
"registers": {"PCR10": {"sha1": "<hex>", "sha256": "<hex>"}}}: the SHA-1
bank extends each template hash, the SHA-256 bank the SHA-256 digest of the
template data (in a per-bank list of SHA-256 template hashes, the other way
round), and a violation (an all-zero template hash) extends all ones.`

func runReplay(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("replay", replaySynopsis)
	fs.SetOutput(stderr)
	tdx := fs.Bool("tdx", false, "read FILE as a TDX CCEL log area: registers are RTMR0..3 by CC MR index 1..4")
	imaList := fs.Bool("ima", false, "read FILE as the kernel's IMA measurement list (binary_runtime_measurements)")
	imaHash := fs.String("ima-hash", "", imaHashUsage)
	files, err := parseArgs(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "eventlog-server replay: %v\n", err)
		return 2
	}
	if len(files) != 1 {
		fmt.Fprintf(stderr, "eventlog-server replay: want one FILE, got %d arguments\n", len(files))
		fs.Usage()
		return 2
	}
	if *imaList || *imaHash != "" {
		if !*imaList || *tdx {
			fmt.Fprintln(stderr, "eventlog-server replay: --ima and --tdx do not go together; --ima-hash goes with --ima")
			return 2
		}
		return replayIMA(files[0], *imaHash, stdout, stderr)
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "eventlog-server replay: %v\n", err)
		return 1
	}
	l, kind, err := parseLogFile(files[0], false, *tdx)
	if err != nil {
		return fail(err)
	}
	bank, err := eventlog.Replay(l)
	if err != nil {
		return fail(fmt.Errorf("%s: %w", files[0], err))
	}
	_, err = stdout.Write(appendReplayJSON(nil, l, kind, bank))
	return exitStatus(err, stderr)
}

// appendReplayJSON writes the replay output with registers in index order
// and algorithms in the log's Spec ID order, so that two runs (and two
// logs) diff line by line; encoding/json would sort "PCR10" before "PCR2".
func appendReplayJSON(dst []byte, l *eventlog.Log, kind eventlog.Kind, bank eventlog.Bank) []byte {
	dst = append(dst, `{"events": `...)
	dst = strconv.AppendInt(dst, int64(len(l.Events)), 10)
	dst = append(dst, `, "registers": {`...)
	for i, index := range bank.Indexes() {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, "\n  "...)
		dst = strconv.AppendQuote(dst, kind.RegisterName(index))
		dst = append(dst, ": {"...)
		n := 0
		for _, alg := range l.Algs() {
			v := bank.Get(alg, index)
			if v == nil {
				continue
			}
			if n > 0 {
				dst = append(dst, ", "...)
			}
			n++
			dst = strconv.AppendQuote(dst, alg.String())
			dst = append(dst, `: "`...)
			dst = hex.AppendEncode(dst, v)
			dst = append(dst, '"')
		}
		dst = append(dst, '}')
	}
	return append(dst, "\n}}\n"...)
}
