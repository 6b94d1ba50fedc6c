package main

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog/ima"
	"github.com/ccnp-eventlog/ccnp-eventlog/hwsource"
	eventlogpb "github.com/ccnp-eventlog/ccnp-eventlog/proto"
)

// The client subcommands talk to a running server over its socket like any
// other client, for people without grpcurl.
func init() {
	commands["get"] = command{"fetch an event log from a server: print its file's path, or its events", runGet}
	commands["verify"] = command{"compare a server's log with the node's live registers, or a TDX log with a TD quote (exit 1 on mismatch)", runVerify}
}

// clientFlags are the flags every client subcommand has.
type clientFlags struct {
	socket   string
	level    string
	category string
	timeout  time.Duration
}

func (c *clientFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.socket, "socket", defaultSocket, "Unix socket of the server")
	fs.StringVar(&c.level, "level", "paas", "paas (the platform's log) or saas (the calling container's)")
	fs.StringVar(&c.category, "category", "tdx", "tdx (RTMR log from CCEL), tpm, or ima (the kernel's IMA measurement list)")
	fs.DurationVar(&c.timeout, "timeout", 10*time.Second, "how long to wait for the server")
}

func (c *clientFlags) parse() (eventlogpb.LEVEL, eventlogpb.CATEGORY, error) {
	level, ok := parseEnum(c.level, eventlogpb.LEVEL_value, "")
	if !ok {
		return 0, 0, fmt.Errorf("--level must be paas or saas, not %q", c.level)
	}
	cat, ok := parseEnum(c.category, eventlogpb.CATEGORY_value, "_EVENTLOG")
	if !ok {
		return 0, 0, fmt.Errorf("--category must be tdx, tpm or ima, not %q", c.category)
	}
	return eventlogpb.LEVEL(level), eventlogpb.CATEGORY(cat), nil
}

// parseEnum accepts an enum value's name in any case, with or without its
// suffix ("tdx" for TDX_EVENTLOG), or its number.
func parseEnum(s string, values map[string]int32, suffix string) (int32, bool) {
	if n, err := strconv.Atoi(s); err == nil {
		for _, v := range values {
			if v == int32(n) {
				return v, true
			}
		}
		return 0, false
	}
	s = strings.ToUpper(s)
	if v, ok := values[s]; ok {
		return v, true
	}
	v, ok := values[s+suffix]
	return v, ok
}

func (c *clientFlags) dial() (eventlogpb.EventlogClient, func(), error) {
	conn, err := grpc.NewClient("unix:"+c.socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, nil, err
	}
	return eventlogpb.NewEventlogClient(conn), func() { conn.Close() }, nil
}

// clientError prints a gRPC error as its code and message, on one line.
func clientError(cmd string, err error) int {
	if st, ok := status.FromError(err); ok {
		fmt.Fprintf(os.Stderr, "%s: %s: %s\n", cmd, st.Code(), st.Message())
	} else {
		fmt.Fprintf(os.Stderr, "%s: %v\n", cmd, err)
	}
	return 1
}

func runGet(args []string) int { return get(args, os.Stdout) }

func get(args []string, stdout io.Writer) int {
	fs := newFlagSet("get", "eventlog-server get [flags]")
	var c clientFlags
	c.register(fs)
	start := fs.Int("start", 0, "number of the first event (0 and 1 both mean the first; the Spec ID header is event 0); on a server run with --zero-based-start, the events to skip")
	count := fs.Int("count", 0, "at most this many events (0: all the rest)")
	format := fs.String("format", "json", "format of the file the server writes: json (CCNP JSON) or raw (TCG binary)")
	output := fs.String("o", "path", "what to print: path (of the returned file), table or json (the events, decoded here)")
	inline := fs.Bool("inline", false, "have the events sent in the reply, not written to a file (the private way for --level saas); -o path then prints the content itself")
	if err := parseFlags(fs, args); err != nil {
		return usageError(err)
	}
	level, cat, err := c.parse()
	if err != nil {
		return usageError(err)
	}
	f, ok := map[string]eventlogpb.FORMAT{"json": eventlogpb.FORMAT_CCNP_JSON, "raw": eventlogpb.FORMAT_TCG_RAW}[*format]
	if !ok {
		return usageError(fmt.Errorf("--format must be json or raw, not %q", *format))
	}
	if *output != "path" {
		f = eventlogpb.FORMAT_TCG_RAW // decoded here from the exact bytes
	}
	client, closeConn, err := c.dial()
	if err != nil {
		return clientError("get", err)
	}
	defer closeConn()
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	reply, err := client.GetEventlog(ctx, &eventlogpb.GetEventlogRequest{
		EventlogLevel: level, EventlogCategory: cat, StartPosition: int32(*start), Count: int32(*count), Format: f, Inline: *inline,
	})
	if err != nil {
		return clientError("get", err)
	}
	switch *output {
	case "path":
		if *inline {
			stdout.Write(reply.EventlogData)
			return 0
		}
		fmt.Fprintln(stdout, reply.EventlogDataLoc)
		return 0
	case "table", "json":
		return printEvents(stdout, reply, cat, *output)
	}
	return usageError(fmt.Errorf("-o must be path, table or json, not %q", *output))
}

func usageError(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintln(os.Stderr, "eventlog-server:", err)
	return 2
}

func kindOf(cat eventlogpb.CATEGORY) eventlog.Kind {
	if cat == eventlogpb.CATEGORY_TDX_EVENTLOG {
		return eventlog.TDX
	}
	return eventlog.TPM
}

// printEvents decodes the raw file (or inline content) the server returned
// and prints its events.
func printEvents(w io.Writer, reply *eventlogpb.GetEventlogReply, cat eventlogpb.CATEGORY, output string) int {
	b, where := reply.EventlogData, "the reply's inline content"
	if reply.EventlogDataLoc != "" {
		var err error
		if b, err = os.ReadFile(reply.EventlogDataLoc); err != nil {
			fmt.Fprintln(os.Stderr, "get:", err)
			return 1
		}
		where = reply.EventlogDataLoc
	}
	if cat == eventlogpb.CATEGORY_IMA_EVENTLOG {
		return printIMAEntries(w, reply, b, where, output)
	}
	l, err := eventlog.Parse(b)
	if err != nil {
		fmt.Fprintf(os.Stderr, "get: %s: %v\n", where, err)
		return 1
	}
	// The file is a log of its own, numbered from 1: give the events back
	// their numbers in the node's log.
	for i := range l.Events {
		l.Events[i].Num += int(reply.FirstEvent) - 1
	}
	kind := kindOf(cat)
	if output == "json" {
		w.Write(eventlog.AppendCCNPJSON(nil, l, l.Events, eventlog.JSONOptions{Kind: kind}))
		return 0
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "EVENT\tREGISTER\tTYPE\tSIZE\tDIGEST")
	for _, e := range l.Events {
		digest := ""
		if len(e.Digests) > 0 {
			d := e.Digests[len(e.Digests)-1]
			digest = d.Alg.String() + ":" + shortHex(hex.EncodeToString(d.Value))
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\n", e.Num, kind.RegisterName(e.Index), e.Type, len(e.Data), digest)
	}
	tw.Flush()
	fmt.Fprintf(w, "%d of %d events, from %s\n", reply.EventCount, reply.TotalEvents, reply.Source)
	return 0
}

// Exit statuses of verify.
const (
	verifyOK           = 0
	verifyMismatch     = 1
	verifyNotAvailable = 3 // nothing contradicts the log, but nothing could be compared either
)

func runVerify(args []string) int { return verifyCmd(args, os.Stdout) }

func verifyCmd(args []string, stdout io.Writer) int {
	fs := newFlagSet("verify", `eventlog-server verify [flags]
       eventlog-server verify --quote QUOTE|--tdreport REPORT [--log LOG [--table TABLE]]

Replays the log and compares every register with the node's live registers
(the server's log), or with a TD quote's or TDREPORT's: the server's TDX log,
or with --log the file LOG, offline. Exit status: 0 every register matches,
1 one does not (named), 3 the registers (or the files) could not be read.
A quote's signature is not checked.`)
	var c clientFlags
	c.register(fs)
	output := fs.String("o", "table", "table or json")
	var e evidenceFlags
	fs.StringVar(&e.quote, "quote", "", "compare the TDX log with the RTMRs of this TD quote file (v4 or v5) instead of the live registers: the server's log, or the --log file; the quote's signature is NOT checked")
	fs.StringVar(&e.report, "tdreport", "", "as --quote, with a TDREPORT file (1024 bytes, from /dev/tdx_guest); its MAC is not checked")
	fs.StringVar(&e.log, "log", "", "with --quote or --tdreport: verify this TDX log file offline, without a server (a CCEL log area, or a raw TCG log)")
	fs.StringVar(&e.table, "table", "", "with --log: the ACPI CCEL table of the log area, whose length bounds it")
	if err := parseFlags(fs, args); err != nil {
		return usageError(err)
	}
	level, cat, err := c.parse()
	if err != nil {
		return usageError(err)
	}
	if *output != "table" && *output != "json" {
		return usageError(fmt.Errorf("-o must be table or json, not %q", *output))
	}
	if err := e.check(); err != nil {
		return usageError(err)
	}
	if e.set() && cat != eventlogpb.CATEGORY_TDX_EVENTLOG {
		return usageError(errors.New("--quote and --tdreport verify the TDX log (--category tdx)"))
	}
	switch {
	case e.log != "":
		return verifyOffline(&e, *output, stdout)
	case e.set():
		return verifyAgainstServer(&c, &e, *output, stdout)
	}
	client, closeConn, err := c.dial()
	if err != nil {
		return clientError("verify", err)
	}
	defer closeConn()
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	reply, err := client.VerifyEventlog(ctx, &eventlogpb.VerifyEventlogRequest{EventlogLevel: level, EventlogCategory: cat})
	if err != nil {
		return clientError("verify", err)
	}
	return printVerifyReply(stdout, cat, reply, *output, false)
}

// printVerifyReply prints a verification as a table or JSON and returns
// verify's exit status. evidence: the registers are a quote's or a
// TDREPORT's, not live ones.
func printVerifyReply(w io.Writer, cat eventlogpb.CATEGORY, reply *eventlogpb.VerifyEventlogReply, output string, evidence bool) int {
	if output == "json" {
		fmt.Fprintln(w, protojson.MarshalOptions{Multiline: true, EmitUnpopulated: true}.Format(reply))
	} else {
		printVerify(w, cat, reply, evidence)
	}
	return verifyStatus(reply)
}

func verifyStatus(r *eventlogpb.VerifyEventlogReply) int {
	for _, reg := range r.Registers {
		if reg.Status == eventlogpb.REGISTER_STATUS_MISMATCH {
			return verifyMismatch
		}
	}
	if !r.Verified {
		return verifyNotAvailable
	}
	return verifyOK
}

func printVerify(w io.Writer, cat eventlogpb.CATEGORY, r *eventlogpb.VerifyEventlogReply, evidence bool) {
	if cat == eventlogpb.CATEGORY_IMA_EVENTLOG {
		fmt.Fprintf(w, "IMA measurement list: %s, %d entries\n", r.Source, r.TotalEvents)
	} else {
		fmt.Fprintf(w, "%s log: %s, %d events\n", kindOf(cat), r.Source, r.TotalEvents)
	}
	if evidence {
		fmt.Fprintf(w, "registers: %s\n", r.LiveFrom)
	} else if r.LiveError != "" {
		// The server's error starts with hwsource.ErrNotAvailable's own
		// words; say them once.
		why := strings.TrimPrefix(r.LiveError, hwsource.ErrNotAvailable.Error()+": ")
		fmt.Fprintf(w, "live registers: not available: %s\n", why)
	} else {
		fmt.Fprintf(w, "live registers: %s\n", r.LiveFrom)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REGISTER\tALG\tEVENTS\tSTATUS\tREPLAYED\tLIVE")
	for _, reg := range r.Registers {
		live := "-"
		if reg.Live != "" {
			live = shortHex(reg.Live)
		}
		status := strings.ReplaceAll(reg.Status.String(), "_", " ")
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", reg.Register, reg.Algorithm, reg.Events, status, shortHex(reg.Replayed), live)
	}
	tw.Flush()
	for _, reg := range r.Registers {
		if reg.Status == eventlogpb.REGISTER_STATUS_MISMATCH {
			fmt.Fprintf(w, "%s %s: %s\n", reg.Register, reg.Algorithm, reg.Note)
		}
		if reg.FirstUnmatchedEvent != 0 {
			fmt.Fprintf(w, "%s %s: first entry not in the register: %d\n", reg.Register, reg.Algorithm, reg.FirstUnmatchedEvent)
		}
	}
	if r.Mrtd != "" {
		fmt.Fprintf(w, "MRTD %s: not in log (the TDX module measures the TD's initial pages before any firmware runs: compare it with your firmware's reference value)\n", shortHex(r.Mrtd))
	}
	for _, q := range r.Quirks {
		fmt.Fprintf(w, "quirk %s (%s", q.Name, q.Register)
		if len(q.Events) > 0 {
			fmt.Fprintf(w, ", events %s", strings.Trim(fmt.Sprint(q.Events), "[]"))
		}
		fmt.Fprintf(w, "): %s\n", q.Description)
	}
	switch verifyStatus(r) {
	case verifyOK:
		fmt.Fprintln(w, "verified: every register matches the log")
	case verifyMismatch:
		fmt.Fprintln(w, "NOT VERIFIED: the log does not explain every register")
	default:
		fmt.Fprintln(w, "not verified: live registers could not be compared")
	}
	if evidence {
		fmt.Fprintln(w, "signature not checked: these values are the quote's as given; verify the quote's signature (e.g. go-tdx-guest's verify, Intel's QVL) before trusting them")
	}
}

// shortHex abbreviates a hex value to its first and last 8 bytes, which
// tell values apart in a table without wrapping its lines.
func shortHex(h string) string {
	const keep = 16 // hex digits
	if len(h) <= 2*keep {
		return h
	}
	return h[:keep] + "…" + h[len(h)-keep:]
}

// printIMAEntries decodes the IMA entries the server returned (the kernel's
// binary format) and prints them.
func printIMAEntries(w io.Writer, reply *eventlogpb.GetEventlogReply, b []byte, where, output string) int {
	l, err := ima.Parse(b, ima.Options{})
	if err != nil {
		fmt.Fprintf(os.Stderr, "get: %s: %v\n", where, err)
		return 1
	}
	entries, _ := l.Slice(0, 0) // all of them: cannot fail
	if output == "json" {
		w.Write(ima.AppendCCNPJSON(nil, l, entries))
		return 0
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ENTRY\tPCR\tTEMPLATE\tTEMPLATE HASH\tFIELDS")
	for e := range l.All() {
		var fields []string
		if fs, ok := e.Fields(l.Order); ok {
			for _, f := range fs {
				fields = append(fields, f.String())
			}
		}
		// The file is a list of its own, numbered from 1.
		fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%s\n", e.Num+int(reply.FirstEvent)-1, e.PCR, e.TemplateName, shortHex(hex.EncodeToString(e.TemplateHash)), strings.Join(fields, " "))
	}
	tw.Flush()
	fmt.Fprintf(w, "%d of %d entries, from %s\n", reply.EventCount, reply.TotalEvents, reply.Source)
	return 0
}
