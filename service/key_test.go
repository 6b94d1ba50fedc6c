package service

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/ccnp-eventlog/ccnp-eventlog/internal/boundedread"
)

// TestLoadKey: the key naming per-container directories is made once and
// kept; a file of another size is replaced; what is not a regular file at
// its path is refused at once, and never followed.
func TestLoadKey(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "saas-dir-key")
	key, err := loadKey(path)
	if err != nil || len(key) != saasKeySize {
		t.Fatalf("new key: %d bytes, %v", len(key), err)
	}
	if again, err := loadKey(path); err != nil || !bytes.Equal(again, key) {
		t.Errorf("the key read back differs (%v)", err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file: %v %v, want mode 0600", fi, err)
	}

	for _, size := range []int{5, 33, 1 << 20} {
		os.WriteFile(path, bytes.Repeat([]byte{1}, size), 0o600)
		got, err := loadKey(path)
		if b, _ := os.ReadFile(path); err != nil || len(got) != saasKeySize || !bytes.Equal(b, got) {
			t.Errorf("a %d-byte key file: %d bytes, %v; the file holds %d bytes", size, len(got), err, len(b))
		}
	}

	os.Remove(path)
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := loadKey(path); !errors.As(err, new(*boundedread.FileTypeError)) || time.Since(start) > 5*time.Second {
		t.Errorf("a FIFO at the key's path: %v after %s", err, time.Since(start))
	}

	os.Remove(path)
	secret := filepath.Join(dir, "secret")
	os.WriteFile(secret, bytes.Repeat([]byte{7}, saasKeySize), 0o600)
	os.Symlink(secret, path)
	if _, err := loadKey(path); !errors.As(err, new(*boundedread.FileTypeError)) {
		t.Errorf("a link at the key's path: %v, want it refused", err)
	}
	if b, _ := os.ReadFile(secret); !bytes.Equal(b, bytes.Repeat([]byte{7}, saasKeySize)) {
		t.Error("the link's target changed")
	}
}
