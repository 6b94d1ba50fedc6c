package service_test

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	eventlogpb "github.com/ccnp-eventlog/ccnp-eventlog/proto"
)

// A FIFO planted at one category's log path: that category answers
// FAILED_PRECONDITION at once, every time, naming the path, and the other
// category and health are unaffected.
func TestFIFOAtOneLogPath(t *testing.T) {
	h := newHostTree(t, "ovmf-64k", "")
	if err := os.MkdirAll(filepath.Dir(h.tpm), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(h.tpm, 0o644); err != nil {
		t.Fatal(err)
	}
	s := start(t, h.root, nil)
	for range 20 {
		began := time.Now()
		_, err := s.get(t, &eventlogpb.GetEventlogRequest{EventlogCategory: eventlogpb.CATEGORY_TPM_EVENTLOG})
		wantCode(t, err, codes.FailedPrecondition, h.tpm, "is a named pipe")
		if took := time.Since(began); took > time.Second {
			t.Fatalf("took %s", took)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err = s.client.GetEventlog(ctx, &eventlogpb.GetEventlogRequest{EventlogCategory: eventlogpb.CATEGORY_TDX_EVENTLOG})
		cancel()
		if err != nil {
			t.Fatalf("the TDX log beside the FIFO: %v", err)
		}
	}
	waitHealth(t, s, healthpb.HealthCheckResponse_SERVING)
}
