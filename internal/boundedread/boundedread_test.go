package boundedread_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ccnp-eventlog/ccnp-eventlog/internal/boundedread"
)

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	if err := os.WriteFile(path, []byte("0123456789"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, limit := range []int64{10, 11, 1 << 20} {
		if b, err := boundedread.ReadFile(path, limit); err != nil || string(b) != "0123456789" {
			t.Errorf("limit %d: %q, %v", limit, b, err)
		}
	}
	_, err := boundedread.ReadFile(path, 9)
	var tooLarge *boundedread.TooLargeError
	if !errors.As(err, &tooLarge) || tooLarge.Limit != 9 {
		t.Errorf("a 10-byte file with a limit of 9: %v", err)
	}
	_, err = boundedread.ReadFile(filepath.Join(dir, "absent"), 9)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "absent") {
		t.Errorf("an absent file: %v", err)
	}
	// A file that never ends stops at the limit.
	if _, err := boundedread.ReadFile("/dev/zero", 1<<16); !errors.As(err, &tooLarge) {
		t.Errorf("/dev/zero: %v", err)
	}
	// A directory fails to read, naming its path.
	if _, err := boundedread.ReadFile(dir, 9); err == nil || !strings.Contains(err.Error(), dir) {
		t.Errorf("a directory: %v", err)
	}
}

func TestReadAll(t *testing.T) {
	if b, err := boundedread.ReadAll(strings.NewReader("abc"), 3); err != nil || string(b) != "abc" {
		t.Errorf("%q, %v", b, err)
	}
	var tooLarge *boundedread.TooLargeError
	if _, err := boundedread.ReadAll(strings.NewReader("abcd"), 3); !errors.As(err, &tooLarge) {
		t.Errorf("4 bytes with a limit of 3: %v", err)
	}
}
