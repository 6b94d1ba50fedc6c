package main

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sort"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/ccnp-eventlog/ccnp-eventlog/internal/boundedread"
	eventlogpb "github.com/ccnp-eventlog/ccnp-eventlog/proto"
	"github.com/ccnp-eventlog/ccnp-eventlog/service"
)

func init() {
	commands["record"] = command{"measure a container-level event into the runtime register (run it in the container)", runRecord}
}

func runRecord(args []string) int { return record(args, os.Stdin, os.Stdout) }

// record is the client of RecordEvent: what a container runs to measure
// something it loaded or was configured with. The server attributes the
// event to the container this process runs in.
//
// A call that fails with UNAVAILABLE (the server restarting, the connection
// refused or lost) may still have recorded the event, so record sends an
// idempotency key and retries with it: the server answers a key it recorded
// with that first outcome and never extends twice.
func record(args []string, stdin io.Reader, stdout io.Writer) int {
	fs := newFlagSet("record", "eventlog-server record [flags] (--data TEXT | --data-file PATH)\n\n"+
		"A call that fails with UNAVAILABLE (server restarting, connection refused or lost) is retried\n"+
		"with the same idempotency key, with backoff, for --retry-for: the server returns the first\n"+
		"outcome of a key it recorded and never extends the register twice.")
	var c clientFlags
	fs.StringVar(&c.socket, "socket", defaultSocket, "Unix socket of the server")
	fs.StringVar(&c.category, "category", "tdx", "tdx (extends RTMR3) or tpm (extends PCR 23)")
	fs.DurationVar(&c.timeout, "timeout", defaultRecordTimeout, "how long to wait for the server's answer to one attempt")
	retryFor := fs.Duration("retry-for", defaultRetryFor, "keep retrying a call that fails with UNAVAILABLE for at most this long (each attempt waits at most --timeout); 0: one attempt")
	key := fs.String("idempotency-key", "", fmt.Sprintf("the record's idempotency key, 1 to %d printable ASCII characters: a record under a key the container already used returns that first outcome and extends nothing (default: a random key for this run)", service.MaxKeyLen))
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
	if *retryFor < 0 {
		return usageError(fmt.Errorf("--retry-for %s is negative", *retryFor))
	}
	if *key == "" {
		*key = randomKey()
	}
	payload := []byte(*data)
	if *dataFile != "" {
		payload, err = readData(*dataFile, stdin)
		if err != nil {
			fmt.Fprintln(os.Stderr, "record:", err)
			return 1
		}
	}
	req := &eventlogpb.RecordEventRequest{EventlogCategory: cat, EventType: uint32(*eventType), Data: payload, IdempotencyKey: *key}
	reply, err := recordRetrying(&c, req, *retryFor)
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
	if reply.AlreadyRecorded {
		fmt.Fprintf(stdout, "event %d of container %s, already recorded under this idempotency key: extended into %s once (event %d of the platform log)\n", reply.EventNum, reply.ContainerId, reply.Register, reply.LogEventNum)
	} else {
		fmt.Fprintf(stdout, "event %d of container %s, extended into %s (event %d of the platform log)\n", reply.EventNum, reply.ContainerId, reply.Register, reply.LogEventNum)
	}
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

// defaultRetryFor outlasts a server restart (a pod's container restarted by
// the kubelet takes seconds) without hanging a container's start for long.
const defaultRetryFor = 30 * time.Second

// Backoff between attempts: doubling from the first, capped.
const (
	firstBackoff = 100 * time.Millisecond
	maxBackoff   = 2 * time.Second
)

// recordRetrying sends req, a fresh connection per attempt, and retries it
// while the server answers UNAVAILABLE (which is also what a refused, lost
// or missing connection gives), until retryFor has passed. Each retry says
// so on standard error; the last error is returned.
func recordRetrying(c *clientFlags, req *eventlogpb.RecordEventRequest, retryFor time.Duration) (*eventlogpb.RecordEventReply, error) {
	giveUp := time.Now().Add(retryFor)
	backoff := firstBackoff
	for attempt := 1; ; attempt++ {
		reply, err := recordOnce(c, req)
		if err == nil || status.Code(err) != codes.Unavailable {
			return reply, err
		}
		// Jitter: clients the same restart failed keep from retrying in step.
		wait := backoff/2 + rand.N(backoff/2+1)
		if time.Now().Add(wait).After(giveUp) {
			if retryFor > 0 {
				fmt.Fprintf(os.Stderr, "record: giving up after %d attempts in %s; the event may have been recorded: run again with --idempotency-key %s to get its outcome without recording it twice\n",
					attempt, retryFor, req.IdempotencyKey)
			}
			return nil, err
		}
		fmt.Fprintf(os.Stderr, "record: attempt %d: %s: %s; retrying in %s with idempotency key %s\n", attempt, status.Code(err), status.Convert(err).Message(), wait.Round(time.Millisecond), req.IdempotencyKey)
		time.Sleep(wait)
		backoff = min(2*backoff, maxBackoff)
	}
}

// recordOnce is one attempt, on a connection of its own: a connection that
// failed would make the next RPC on it fail at once, until gRPC's own
// reconnect backoff (seconds) let it try again.
func recordOnce(c *clientFlags, req *eventlogpb.RecordEventRequest) (*eventlogpb.RecordEventReply, error) {
	client, closeConn, err := c.dial()
	if err != nil {
		return nil, err
	}
	defer closeConn()
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	return client.RecordEvent(ctx, req)
}

// randomKey is a key no other run of record chooses: 128 random bits.
func randomKey() string {
	b := make([]byte, 16)
	crand.Read(b)
	return hex.EncodeToString(b)
}
