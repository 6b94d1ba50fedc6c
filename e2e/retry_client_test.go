package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/stats"
)

// A client that rides through a server's restart, as deployment/README.md
// ("Clients across upgrades") tells applications to write one: gRPC's
// service config makes every call wait for the socket to come back
// (waitForReady) and retry a call that failed with UNAVAILABLE
// (retryPolicy), and the reconnect backoff is capped at a second, which
// suits a local socket. The lifecycle specs on kind (helm upgrade, the
// sidecar, a reinstall) use it, in the pods and from this machine.

// retryServiceConfig is the service config of deployment/README.md, word
// for word: a spec checks that the README still shows it.
const retryServiceConfig = `{
  "methodConfig": [
    {
      "name": [
        {"service": "Eventlog", "method": "GetEventlog"},
        {"service": "Eventlog", "method": "VerifyEventlog"},
        {"service": "grpc.health.v1.Health", "method": "Check"}
      ],
      "waitForReady": true,
      "retryPolicy": {
        "maxAttempts": 5,
        "initialBackoff": "0.1s",
        "maxBackoff": "1s",
        "backoffMultiplier": 2,
        "retryableStatusCodes": ["UNAVAILABLE"]
      }
    },
    {
      "name": [{"service": "Eventlog", "method": "RecordEvent"}],
      "waitForReady": true,
      "retryPolicy": {
        "maxAttempts": 5,
        "initialBackoff": "0.1s",
        "maxBackoff": "1s",
        "backoffMultiplier": 2,
        "retryableStatusCodes": ["UNAVAILABLE"]
      }
    }
  ]
}`

// retryConnectParams caps the wait between two connection attempts at a
// second (gRPC's default grows to two minutes), as the README says.
var retryConnectParams = grpc.ConnectParams{
	Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
	MinConnectTimeout: 5 * time.Second,
}

// attemptCounter counts the attempts gRPC makes, retries included (a
// unary interceptor sees one call, however many attempts it took).
type attemptCounter struct {
	attempts, transparent atomic.Int64
}

func (c *attemptCounter) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }
func (c *attemptCounter) HandleRPC(_ context.Context, s stats.RPCStats) {
	if b, ok := s.(*stats.Begin); ok && b.Client {
		if b.IsTransparentRetryAttempt {
			c.transparent.Add(1)
		} else {
			c.attempts.Add(1)
		}
	}
}
func (c *attemptCounter) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return ctx
}
func (c *attemptCounter) HandleConn(context.Context, stats.ConnStats) {}

// dialRetrying connects as the README's clients do; attempts, if not nil,
// counts the attempts of every call on the connection.
func dialRetrying(socket string, attempts *attemptCounter) (*grpc.ClientConn, error) {
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(retryServiceConfig),
		grpc.WithConnectParams(retryConnectParams),
	}
	if attempts != nil {
		opts = append(opts, grpc.WithStatsHandler(attempts))
	}
	return grpc.NewClient("unix://"+socket, opts...)
}

var _ = Describe("The client service config deployment/README.md gives applications", Label("docs"), func() {
	It("is the one the lifecycle specs' clients use, and gRPC accepts it", func() {
		if inUserAppPod() {
			Skip("runs outside the cluster")
		}
		readme := string(readFile(filepath.Join(bin.ModuleRoot, "deployment", "README.md")))
		m := regexp.MustCompile("(?s)<!-- retry-service-config -->\\s*```json\\n(.*?)```").FindStringSubmatch(readme)
		Expect(m).NotTo(BeNil(), "deployment/README.md has no ```json block after <!-- retry-service-config -->")
		var inREADME, here any
		Expect(json.Unmarshal([]byte(m[1]), &inREADME)).To(Succeed())
		Expect(json.Unmarshal([]byte(retryServiceConfig), &here)).To(Succeed())
		Expect(inREADME).To(Equal(here), "the README's service config differs from retryServiceConfig")
		// gRPC parses it when the channel is made: a bad config fails here.
		conn, err := dialRetrying(filepath.Join(os.TempDir(), "no-such.sock"), nil)
		Expect(err).NotTo(HaveOccurred())
		Expect(conn.Close()).To(Succeed())
	})
})
