package service

import (
	"os"
	"path/filepath"
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
