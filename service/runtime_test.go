package service

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/ccnp-eventlog/ccnp-eventlog/hwsource"
	"github.com/ccnp-eventlog/ccnp-eventlog/outdir"
	eventlogpb "github.com/ccnp-eventlog/ccnp-eventlog/proto"
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
	s, err := New(map[eventlogpb.CATEGORY]hwsource.Source{eventlogpb.CATEGORY_TDX_EVENTLOG: td}, Options{
		OutputDir: filepath.Join(dir, "out"),
		Limits:    outdir.Limits{MaxBytes: 1 << 20, MaxAge: time.Hour, MinLifetime: time.Minute},
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		Runtime:   RuntimeOptions{StateDir: filepath.Join(dir, "state")},
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
	rt := s.logs[eventlogpb.CATEGORY_TDX_EVENTLOG].rt
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.journal != nil {
		t.Errorf("a read after Close opened %s", rt.journal.Path())
	}
}
