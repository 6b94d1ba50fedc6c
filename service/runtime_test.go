package service_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ccnp-eventlog/ccnp-eventlog/hwsource"
	"github.com/ccnp-eventlog/ccnp-eventlog/outdir"
	eventlogpb "github.com/ccnp-eventlog/ccnp-eventlog/proto"
	"github.com/ccnp-eventlog/ccnp-eventlog/service"
	"github.com/ccnp-eventlog/ccnp-eventlog/simulator"
)

// TestFirstReadAfterClose: a health check that reads the log for the first
// time as the server stops opens no journal that nothing would close.
func TestFirstReadAfterClose(t *testing.T) {
	td, err := simulator.NewTDX(simulator.TDXConfig{Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	s, err := service.New(map[eventlogpb.CATEGORY]hwsource.Source{eventlogpb.CATEGORY_TDX_EVENTLOG: td}, service.Options{
		OutputDir: filepath.Join(dir, "out"),
		Limits:    outdir.Limits{MaxBytes: 1 << 20, MaxAge: time.Hour, MinLifetime: time.Minute},
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		Runtime:   service.RuntimeOptions{StateDir: filepath.Join(dir, "state")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if !s.Check(context.Background()) {
		t.Error("the platform log is not served after Close")
	}
	journal := filepath.Join(dir, "state", "runtime-tdx.log")
	if _, err := os.Lstat(journal); err == nil {
		t.Errorf("a read after Close opened %s", journal)
	}
}
