package service

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestConcurrentPutsOfOneFile: clients asking for the same events at once
// put the same file at once. It is written once and counted once, so the
// directory's size limit keeps meaning what is on disk.
func TestConcurrentPutsOfOneFile(t *testing.T) {
	dir := t.TempDir()
	d, err := openOutDir(dir, DirLimits{MaxBytes: 1 << 20, MaxAge: time.Hour, MinLifetime: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	content := make([]byte, 32<<10) // 20 of them fit
	const clients = 16
	for round := range 20 {
		name := filePrefix + "same-" + string(rune('a'+round)) + ".json"
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				p, err := d.put(name, content)
				if err != nil {
					t.Error(err)
					return
				}
				if fi, err := os.Stat(p); err != nil || fi.Size() != int64(len(content)) {
					t.Errorf("put returned %s before it was in place: %v", p, err)
				}
			}()
		}
		close(start)
		wg.Wait()
	}
	var onDisk int64
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		fi, _ := os.Stat(filepath.Join(dir, e.Name()))
		onDisk += fi.Size()
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.total != onDisk || len(d.files) != len(entries) {
		t.Errorf("the directory counts %d bytes in %d files; %d bytes in %d files are on disk", d.total, len(d.files), onDisk, len(entries))
	}
}

// TestSizeLimitEvictsLeastRecentlyUsed: files each well under the limit, so
// only the directory's total can refuse one. While every file is younger
// than the minimum lifetime, a file past the total is refused; once they are
// older, the least recently handed out make room, and what is on disk stays
// within the limit.
func TestSizeLimitEvictsLeastRecentlyUsed(t *testing.T) {
	dir := t.TempDir()
	d, err := openOutDir(dir, DirLimits{MaxBytes: 100 << 10, MaxAge: time.Hour, MinLifetime: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	d.now = func() time.Time { return now }
	content := make([]byte, 30<<10) // three fit, a fourth does not
	put := func(name string) error {
		t.Helper()
		_, err := d.put(filePrefix+name, content)
		return err
	}
	for _, name := range []string{"a", "b", "c"} {
		if err := put(name); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		now = now.Add(time.Second)
	}
	if err := put("d"); !errors.Is(err, errDirFull) {
		t.Fatalf("a fourth file while the first three are young: %v, want errDirFull", err)
	}
	// Past the minimum lifetime, "a" is handed out again: "b" is now the
	// least recently used, and goes for "d".
	now = now.Add(2 * time.Minute)
	if _, ok := d.reuse(filePrefix + "a"); !ok {
		t.Fatal("a is gone")
	}
	now = now.Add(time.Second)
	if err := put("d"); err != nil {
		t.Fatalf("a fourth file once the others are past their minimum lifetime: %v", err)
	}
	var onDisk int64
	var names []string
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		fi, _ := e.Info()
		onDisk += fi.Size()
		names = append(names, strings.TrimPrefix(e.Name(), filePrefix))
	}
	if onDisk > 100<<10 {
		t.Errorf("%d bytes on disk, past the %d-byte limit", onDisk, 100<<10)
	}
	if want := []string{"a", "c", "d"}; !slices.Equal(names, want) {
		t.Errorf("the directory holds %v, want %v (b was the least recently handed out)", names, want)
	}
}
