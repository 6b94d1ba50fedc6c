package durable_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/ccnp-eventlog/ccnp-eventlog/internal/durable"
)

func TestWriteFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a", "b", "state")
	for _, content := range []string{"first", "second, longer"} {
		if err := durable.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil || string(b) != content {
			t.Fatalf("read back %q, %v; want %q", b, err, content)
		}
	}
	info, err := os.Stat(path)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, %v; want 0600", info.Mode(), err)
	}
	// Nothing but the file is left in its directory.
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want 1 (no temporary files)", len(entries))
	}
	// A path whose directory cannot exist fails, leaving nothing behind.
	blocker := filepath.Join(t.TempDir(), "file")
	os.WriteFile(blocker, nil, 0o644)
	if err := durable.WriteFile(filepath.Join(blocker, "state"), []byte("x"), 0o600); err == nil {
		t.Error("writing under a regular file succeeded")
	}
}
