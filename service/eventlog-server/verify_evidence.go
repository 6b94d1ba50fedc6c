package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog/ccel"
	eventlogpb "github.com/ccnp-eventlog/ccnp-eventlog/proto"
	"github.com/ccnp-eventlog/ccnp-eventlog/service"
	"github.com/ccnp-eventlog/ccnp-eventlog/verify"
)

// A remote verifier holds a node's TD quote (or TDREPORT) and its event log:
// verify --quote compares them, offline with --log, or against a server's
// log over its socket. The quote's signature is not checked here (that is a
// quote verification library's job), and the output says so.

// evidenceFlags are verify's flags for checking against a quote.
type evidenceFlags struct {
	quote, report, log, table string
}

func (e *evidenceFlags) set() bool { return e.quote != "" || e.report != "" }

// check validates the combination, for exit status 2.
func (e *evidenceFlags) check() error {
	switch {
	case e.quote != "" && e.report != "":
		return errors.New("--quote and --tdreport: give one")
	case e.log == "" && e.table != "":
		return errors.New("--table goes with --log")
	case e.log != "" && !e.set():
		return errors.New("--log needs --quote or --tdreport: the registers to compare it with")
	}
	return nil
}

// maxEvidence bounds a quote file: real ones are under 8 KiB (16 KiB is the
// largest buffer the kernel's quote interface hands out).
const maxEvidence = 64 << 10

// readEvidence reads the quote or TDREPORT file; the server or
// verify.TDXEvidence parses it.
func (e *evidenceFlags) read() (quote, report []byte, err error) {
	path := e.quote
	if path == "" {
		path = e.report
	}
	// O_NONBLOCK: a FIFO at path must not hold the open until a writer
	// comes; the Stat below refuses it.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil, nil, fmt.Errorf("%s is not a regular file", path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxEvidence+1))
	if err != nil {
		return nil, nil, err
	}
	if len(b) > maxEvidence {
		return nil, nil, fmt.Errorf("%s: larger than %d KiB: not a TD quote or TDREPORT", path, maxEvidence>>10)
	}
	if e.quote != "" {
		return b, nil, nil
	}
	return nil, b, nil
}

// verifyOffline checks a log file against a quote or TDREPORT file, and
// prints what the socket verify prints for a server's log.
func verifyOffline(e *evidenceFlags, output string, stdout io.Writer) int {
	unreadable := func(err error) int {
		fmt.Fprintln(os.Stderr, "verify:", err)
		return verifyNotAvailable
	}
	quote, report, err := e.read()
	if err != nil {
		return unreadable(err)
	}
	live, from, err := verify.TDXEvidence(quote, report)
	if err != nil {
		return unreadable(fmt.Errorf("%s%s: %w", e.quote, e.report, err))
	}
	l, err := readTDXLog(e.log, e.table)
	if err != nil {
		return unreadable(err)
	}
	r, err := verify.Check(l, eventlog.TDX, live, nil)
	if err != nil {
		return unreadable(fmt.Errorf("%s: %w", e.log, err))
	}
	reply := service.VerifyReply(r)
	reply.LiveFrom = from + " in " + e.quote + e.report
	reply.Source = e.log
	reply.TotalEvents = uint32(len(l.Events))
	return printVerifyReply(stdout, eventlogpb.CATEGORY_TDX_EVENTLOG, reply, output, true)
}

// readTDXLog reads a TDX log: a CCEL log area with its table (the table's
// length LAML bounds the area), or a file alone, a log area or a raw TCG
// log, as its bytes say.
func readTDXLog(path, tablePath string) (*eventlog.Log, error) {
	if tablePath == "" {
		l, _, err := parseLogFile(path, false, false)
		return l, err
	}
	b, err := readLogFile(tablePath)
	if err != nil {
		return nil, err
	}
	t, err := ccel.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", tablePath, err)
	}
	if t.CCType != ccel.TypeTDX {
		return nil, fmt.Errorf("%s: the CCEL table is for %s, not TDX", tablePath, t.CCTypeName())
	}
	area, err := readLogFile(path)
	if err != nil {
		return nil, err
	}
	if uint64(len(area)) > t.LAML {
		area = area[:t.LAML]
	}
	l, err := eventlog.ParseArea(area)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return l, nil
}

// verifyAgainstServer sends the quote or TDREPORT to a server, which
// compares it with its log.
func verifyAgainstServer(c *clientFlags, e *evidenceFlags, output string, stdout io.Writer) int {
	quote, report, err := e.read()
	if err != nil {
		fmt.Fprintln(os.Stderr, "verify:", err)
		return verifyNotAvailable
	}
	client, closeConn, err := c.dial()
	if err != nil {
		return clientError("verify", err)
	}
	defer closeConn()
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	reply, err := client.VerifyEventlog(ctx, &eventlogpb.VerifyEventlogRequest{TdQuote: quote, TdReport: report})
	if err != nil {
		return clientError("verify", err)
	}
	return printVerifyReply(stdout, eventlogpb.CATEGORY_TDX_EVENTLOG, reply, output, true)
}
