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

// newTDXService returns a service of the simulated TD td, with its output
// and state directories in dir; the caller closes it.
func newTDXService(tb testing.TB, td *simulator.TDX, dir string) *service.Service {
	tb.Helper()
	s, err := service.New(map[eventlogpb.CATEGORY]hwsource.Source{eventlogpb.CATEGORY_TDX_EVENTLOG: td}, service.Options{
		OutputDir: filepath.Join(dir, "out"),
		Limits:    outdir.Limits{MaxBytes: 64 << 20, MaxAge: time.Hour, MinLifetime: time.Minute},
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		Runtime:   service.RuntimeOptions{StateDir: filepath.Join(dir, "state")},
	})
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// TestFirstReadAfterClose: a health check that reads the log for the first
// time as the server stops opens no journal that nothing would close.
func TestFirstReadAfterClose(t *testing.T) {
	td, err := simulator.NewTDX(simulator.TDXConfig{Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	s := newTDXService(t, td, dir)
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
