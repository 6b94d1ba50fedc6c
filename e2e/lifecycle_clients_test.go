package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"google.golang.org/grpc"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	eventlogpb "github.com/ccnp-eventlog/ccnp-eventlog/proto"
)

// The clients of the lifecycle specs (lifecycle_kind_test.go): a load
// client that asks without pause, as the README's clients are written
// (retry_client_test.go), counting every call and attempt; and the program
// that runs one in a pod of the cluster, where it also records
// container-level events.

// loadStats is what a load client measured. Retries are the attempts
// beyond one per call.
type loadStats struct {
	Calls       int           `json:"calls"`
	Records     int           `json:"records"`
	Failed      int           `json:"failed"`
	Attempts    int64         `json:"attempts"`
	Transparent int64         `json:"transparentRetries"`
	MaxLatency  time.Duration `json:"maxLatency"`
	// Waited counts calls that took more than a second: they waited for
	// the server.
	Waited int       `json:"waited"`
	Errors []string  `json:"errors"`
	LastOK time.Time `json:"lastOK"`
}

func (s loadStats) retries() int64 { return s.Attempts - int64(s.Calls+s.Records) }

func (s loadStats) String() string {
	return fmt.Sprintf("%d calls and %d records, %d failed; %d attempts (%d retries under the retry policy, %d transparent); %d waited over 1s for the server, the longest %s",
		s.Calls, s.Records, s.Failed, s.Attempts, s.retries(), s.Transparent, s.Waited, s.MaxLatency.Round(time.Millisecond))
}

// callSpan is when one call was made, and whether it succeeded.
type callSpan struct {
	start, end time.Time
	ok         bool
}

// loadClient calls one server through one connection, as the README says.
type loadClient struct {
	srv      Server
	conn     *grpc.ClientConn
	client   eventlogpb.EventlogClient
	attempts attemptCounter
	// name is in the data and idempotency keys of its records.
	name string

	mu       sync.Mutex
	stats    loadStats
	spans    []callSpan
	recorded []string // the data of the events it recorded, in order
}

func newLoadClient(srv Server, name string) *loadClient {
	GinkgoHelper()
	l := &loadClient{srv: srv, name: name}
	var err error
	l.conn, err = dialRetrying(srv.Socket(), &l.attempts)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(l.conn.Close)
	l.client = eventlogpb.NewEventlogClient(l.conn)
	return l
}

// loadRequests are what a load client asks for in turn.
var loadRequests = []*eventlogpb.GetEventlogRequest{
	request(tdx, 0, 0, ccnpJSON),
	request(tpm, 0, 0, tcgRaw),
	request(tdx, 2, 5, tcgRaw),
}

// get makes one call and reads the file it names, as a client does; it
// counts a failure of either.
func (l *loadClient) get(ctx context.Context, req *eventlogpb.GetEventlogRequest) (*eventlogpb.GetEventlogReply, []byte, error) {
	start := time.Now()
	reply, err := getEventlog(ctx, l.client, req)
	var content []byte
	if err == nil {
		content, err = l.readReply(reply)
	}
	l.count(start, false, err)
	return reply, content, err
}

func (l *loadClient) readReply(reply *eventlogpb.GetEventlogReply) ([]byte, error) {
	b, err := os.ReadFile(l.srv.LocalPath(reply.EventlogDataLoc))
	if err != nil {
		return nil, err
	}
	if sha256Hex(b) != reply.Sha256 {
		return nil, fmt.Errorf("%s does not hold what the reply's sha256 says", reply.EventlogDataLoc)
	}
	return b, nil
}

// record records a container-level event under an idempotency key of its
// own, so that the retry policy may resend it.
func (l *loadClient) record(ctx context.Context, data string) error {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	_, err := l.client.RecordEvent(ctx, &eventlogpb.RecordEventRequest{
		EventlogCategory: tdx, Data: []byte(data), IdempotencyKey: fmt.Sprintf("%s-%d", l.name, time.Now().UnixNano()),
	})
	l.count(start, true, err)
	if err == nil {
		l.mu.Lock()
		l.recorded = append(l.recorded, data)
		l.mu.Unlock()
	}
	return err
}

func (l *loadClient) count(start time.Time, record bool, err error) {
	end := time.Now()
	took := end.Sub(start)
	l.mu.Lock()
	defer l.mu.Unlock()
	if record {
		l.stats.Records++
	} else {
		l.stats.Calls++
	}
	l.stats.MaxLatency = max(l.stats.MaxLatency, took)
	if took > time.Second {
		l.stats.Waited++
	}
	if err != nil {
		l.stats.Failed++
		if len(l.stats.Errors) < 10 {
			l.stats.Errors = append(l.stats.Errors, fmt.Sprintf("%s (after %s): %v", start.Format(time.StampMilli), took.Round(time.Millisecond), err))
		}
	} else {
		l.stats.LastOK = end
	}
	l.spans = append(l.spans, callSpan{start, end, err == nil})
}

// run asks without pause (a call every 50 ms) until stop says so; with
// recordEvery > 0, every recordEvery-th turn records an event too.
func (l *loadClient) run(ctx context.Context, stop func() bool, recordEvery int) {
	for n := 1; !stop() && ctx.Err() == nil; n++ {
		_, _, _ = l.get(ctx, loadRequests[n%len(loadRequests)])
		if recordEvery > 0 && n%recordEvery == 0 {
			_ = l.record(ctx, fmt.Sprintf("%s: event %d, recorded while asking", l.name, n))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// snapshot returns the stats so far, with the attempts counted.
func (l *loadClient) snapshot() loadStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.stats
	s.Errors = append([]string(nil), s.Errors...)
	s.Attempts, s.Transparent = l.attempts.attempts.Load(), l.attempts.transparent.Load()
	return s
}

// answeredAcross counts the calls that were in flight while the socket was
// gone (made before or during the gap) and were answered.
func (l *loadClient) answeredAcross(gaps []socketGap) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, s := range l.spans {
		for _, g := range gaps {
			if s.ok && s.start.Before(g.to) && s.end.After(g.from) {
				n++
				break
			}
		}
	}
	return n
}

// socketGap is a time the socket was not on the node.
type socketGap struct{ from, to time.Time }

// watchSocket looks at a socket's path every 10 ms until stopped, and
// returns the times it was missing.
func watchSocket(path string) (stop func() []socketGap) {
	var (
		gaps []socketGap
		done = make(chan struct{})
		quit = make(chan struct{})
	)
	go func() {
		defer close(done)
		var missing time.Time
		for {
			_, err := os.Lstat(path)
			now := time.Now()
			switch {
			case err != nil && missing.IsZero():
				missing = now
			case err == nil && !missing.IsZero():
				gaps = append(gaps, socketGap{missing, now})
				missing = time.Time{}
			}
			select {
			case <-quit:
				if !missing.IsZero() {
					gaps = append(gaps, socketGap{missing, now})
				}
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	return sync.OnceValue(func() []socketGap { close(quit); <-done; return gaps })
}

// The program a pod of the cluster runs (the e2e binary, E2E_USER_APP=1,
// label upgrade-client), given its settings in the environment, with a
// control directory from the node that it shares with the suite.
const (
	upgradeClientLabel = "upgrade-client"
	clientSocketEnv    = "E2E_CLIENT_SOCKET"
	clientOutDirEnv    = "E2E_CLIENT_OUTPUT_DIR"
	clientControlEnv   = "E2E_CLIENT_CONTROL"
	clientNameEnv      = "E2E_CLIENT_NAME"
	// The files in the control directory: the pod writes the first once
	// it has recorded its first events, the suite the second to stop it,
	// the pod the third when done.
	clientRecordedFile = "recorded.json"
	clientStopFile     = "stop"
	clientResultFile   = "result.json"
	// clientFirstRecords is how many events the pod records before it
	// starts asking without pause.
	clientFirstRecords = 3
)

// podClientResult is what the pod writes to clientResultFile.
type podClientResult struct {
	Stats    loadStats `json:"stats"`
	Recorded []string  `json:"recorded"`
	// Own is the data of the events of its own (SAAS) log, read at the end.
	Own []string `json:"own"`
}

var _ = Describe("A client in a pod of the cluster while its server is replaced", Label(upgradeClientLabel), func() {
	It("records events, asks without pause until told to stop, then reads its own events back", func(ctx SpecContext) {
		if !inUserAppPod() || os.Getenv(clientControlEnv) == "" {
			Skip("runs in a client pod the lifecycle specs start (" + userAppEnv + "=1, " + clientControlEnv + ")")
		}
		ctl := os.Getenv(clientControlEnv)
		srv := podServer{socket: os.Getenv(clientSocketEnv), outDir: os.Getenv(clientOutDirEnv)}
		l := newLoadClient(srv, os.Getenv(clientNameEnv))
		for i := range clientFirstRecords {
			Expect(l.record(ctx, fmt.Sprintf("%s: event %d, recorded first", l.name, i))).To(Succeed())
		}
		writeJSONFile(filepath.Join(ctl, clientRecordedFile), l.recorded)

		stopped := func() bool {
			_, err := os.Stat(filepath.Join(ctl, clientStopFile))
			return err == nil
		}
		l.run(ctx, stopped, 5)

		// Its own events, after the server was replaced: each once, in order.
		ctx2, cancel := context.WithTimeout(ctx, callTimeout)
		defer cancel()
		reply, err := l.client.GetEventlog(ctx2, &eventlogpb.GetEventlogRequest{
			EventlogLevel: eventlogpb.LEVEL_SAAS, EventlogCategory: tdx, Format: tcgRaw, Inline: true,
		})
		Expect(err).NotTo(HaveOccurred())
		own, err := eventlog.Parse(reply.EventlogData)
		Expect(err).NotTo(HaveOccurred())
		res := podClientResult{Stats: l.snapshot(), Recorded: l.recorded, Own: datas(own)}
		writeJSONFile(filepath.Join(ctl, clientResultFile), res)
		GinkgoWriter.Printf("%s\n", res.Stats)
		Expect(res.Stats.Failed).To(BeZero(), "failed calls: %v", res.Stats.Errors)
		Expect(res.Own).To(Equal(res.Recorded), "its own log holds the events it recorded, once each, in order")
	})
})

// writeJSONFile writes v to path atomically: a reader on the other side of
// the node's mount never sees half of it.
func writeJSONFile(path string, v any) {
	GinkgoHelper()
	b, err := json.Marshal(v)
	Expect(err).NotTo(HaveOccurred())
	tmp := path + ".tmp"
	Expect(os.WriteFile(tmp, b, 0o644)).To(Succeed())
	Expect(os.Rename(tmp, path)).To(Succeed())
}
