package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/ccnp-eventlog/ccnp-eventlog/internal/boundedread"
	eventlogpb "github.com/ccnp-eventlog/ccnp-eventlog/proto"
)

func init() {
	commands["record"] = command{"measure a container-level event into the runtime register (run it in the container)", runRecord}
}

func runRecord(args []string) int { return record(args, os.Stdin, os.Stdout) }

// record is the client of RecordEvent: what a container runs to measure
// something it loaded or was configured with. The server attributes the
// event to the container this process runs in.
func record(args []string, stdin io.Reader, stdout io.Writer) int {
	fs := newFlagSet("record", "eventlog-server record [flags] (--data TEXT | --data-file PATH)")
	var c clientFlags
	fs.StringVar(&c.socket, "socket", defaultSocket, "Unix socket of the server")
	fs.StringVar(&c.category, "category", "tdx", "tdx (extends RTMR3) or tpm (extends PCR 23)")
	fs.DurationVar(&c.timeout, "timeout", defaultRecordTimeout, "how long to wait for the server")
	data := fs.String("data", "", "the event data, as text")
	dataFile := fs.String("data-file", "", "file holding the event data; - for standard input")
	eventType := fs.Uint("type", 0, "TCG event type (0: EV_EVENT_TAG)")
	output := fs.String("o", "text", "text or json")
	if err := parseFlags(fs, args); err != nil {
		return usageError(err)
	}
	c.level = "saas"
	_, cat, err := c.parse()
	if err != nil {
		return usageError(err)
	}
	if (*data == "") == (*dataFile == "") || fs.NArg() > 0 {
		return usageError(fmt.Errorf("give the event data with exactly one of --data and --data-file"))
	}
	if *output != "text" && *output != "json" {
		return usageError(fmt.Errorf("-o must be text or json, not %q", *output))
	}
	if *eventType > 0xFFFFFFFF {
		return usageError(fmt.Errorf("--type %d is not a 32-bit event type", *eventType))
	}
	payload := []byte(*data)
	if *dataFile != "" {
		payload, err = readData(*dataFile, stdin)
		if err != nil {
			fmt.Fprintln(os.Stderr, "record:", err)
			return 1
		}
	}
	client, closeConn, err := c.dial()
	if err != nil {
		return clientError("record", err)
	}
	defer closeConn()
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	reply, err := client.RecordEvent(ctx, &eventlogpb.RecordEventRequest{EventlogCategory: cat, EventType: uint32(*eventType), Data: payload})
	if err != nil {
		return clientError("record", err)
	}
	if *output == "json" {
		fmt.Fprintln(stdout, protojson.MarshalOptions{Multiline: true, EmitUnpopulated: true}.Format(reply))
		return 0
	}
	algs := make([]string, 0, len(reply.Digests))
	for a := range reply.Digests {
		algs = append(algs, a)
	}
	sort.Strings(algs)
	fmt.Fprintf(stdout, "event %d of container %s, extended into %s (event %d of the platform log)\n", reply.EventNum, reply.ContainerId, reply.Register, reply.LogEventNum)
	for _, a := range algs {
		fmt.Fprintf(stdout, "  %s %s\n", a, reply.Digests[a])
	}
	return 0
}

// maxRecordFile bounds what record reads: far more than a server takes in
// one event (its --saas-max-event-size), so the server's message says why.
const maxRecordFile = 16 << 20

func readData(path string, stdin io.Reader) ([]byte, error) {
	var r io.Reader = stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	b, err := boundedread.ReadAll(r, maxRecordFile)
	var tooLarge *boundedread.TooLargeError
	if errors.As(err, &tooLarge) {
		return nil, fmt.Errorf("%s %v: measure its digest instead", path, err)
	}
	return b, err
}

// defaultRecordTimeout leaves room for a TPM, which takes a while to extend.
const defaultRecordTimeout = 30 * time.Second
