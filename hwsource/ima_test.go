package hwsource_test

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog/ima"
	"github.com/ccnp-eventlog/ccnp-eventlog/hwsource"
	"github.com/ccnp-eventlog/ccnp-eventlog/internal/boundedread"
)

// imaEntries returns n ima-ng entries, numbered from first.
func imaEntries(t testing.TB, first, n int) []byte {
	t.Helper()
	var b []byte
	for i := first; i < first+n; i++ {
		name := fmt.Sprintf("/usr/bin/file-%d", i)
		digest := sha256.Sum256([]byte(name))
		var err error
		if b, err = ima.AppendEntry(b, binary.LittleEndian, eventlog.AlgSHA1, 10, "ima-ng", ima.NgData(binary.LittleEndian, "sha256", digest[:], name)); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// imaTree writes list at root's IMA list path and returns the path.
func imaTree(t *testing.T, list []byte) (root, path string) {
	t.Helper()
	root = t.TempDir()
	path = filepath.Join(root, hwsource.IMAListPath)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if list != nil {
		if err := os.WriteFile(path, list, 0o440); err != nil {
			t.Fatal(err)
		}
	}
	return root, path
}

func appendFile(t *testing.T, path string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func snapshot(t *testing.T, l *hwsource.IMAList) *hwsource.IMASnapshot {
	t.Helper()
	s, err := l.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// wantEntries checks that s holds the entries of list, byte for byte.
func wantEntries(t *testing.T, s *hwsource.IMASnapshot, list []byte, n int) {
	t.Helper()
	if got := s.List.Len(); got != n {
		t.Fatalf("%d entries, want %d", got, n)
	}
	all, err := s.List.Slice(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := ima.AppendRaw(nil, all); string(got) != string(list) {
		t.Fatalf("the entries are not the list's bytes (%d bytes, want %d)", len(got), len(list))
	}
}

func TestIMAListGrows(t *testing.T) {
	list := imaEntries(t, 1, 10)
	root, path := imaTree(t, list)
	l := hwsource.NewIMA(root, hwsource.IMAOptions{})
	s1 := snapshot(t, l)
	wantEntries(t, s1, list, 10)
	if !s1.AtEnd || s1.Source != path {
		t.Errorf("AtEnd %v, Source %q", s1.AtEnd, s1.Source)
	}
	if s := snapshot(t, l); s != s1 {
		t.Error("an unchanged list gave a new snapshot")
	}

	// Appended: read on, the first entries kept as they were (not parsed
	// again: the same Entry, at the same address).
	more := imaEntries(t, 11, 5)
	appendFile(t, path, more)
	s2 := snapshot(t, l)
	wantEntries(t, s2, append(list, more...), 15)
	if s2.Gen == s1.Gen {
		t.Error("the generation did not change with the list")
	}
	if s2.List.Entry(3) != s1.List.Entry(3) {
		t.Error("entry 3 was parsed again")
	}
	if s1.List.Len() != 10 {
		t.Error("the earlier snapshot changed")
	}

	// An entry torn at the end (the kernel still appending): served
	// without it, and completed by the next read.
	next := imaEntries(t, 16, 1)
	appendFile(t, path, next[:7])
	s3 := snapshot(t, l)
	if s3.List.Len() != 15 || s3.List.Pending != 7 {
		t.Errorf("with a torn entry: %d entries, %d pending", s3.List.Len(), s3.List.Pending)
	}
	appendFile(t, path, next[7:])
	wantEntries(t, snapshot(t, l), append(append(list, more...), next...), 16)
}

func TestIMAListReplaced(t *testing.T) {
	list := imaEntries(t, 1, 10)
	root, path := imaTree(t, list)
	l := hwsource.NewIMA(root, hwsource.IMAOptions{})
	s1 := snapshot(t, l)

	// A new boot written over the tree: another file, renamed in place.
	other := imaEntries(t, 100, 3)
	tmp := path + ".new"
	if err := os.WriteFile(tmp, other, 0o440); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	s2 := snapshot(t, l)
	wantEntries(t, s2, other, 3)
	if s2.Gen == s1.Gen {
		t.Error("a replaced list kept its generation")
	}

	// Cut shorter in place.
	if err := os.WriteFile(path, other[:len(other)/2], 0o440); err != nil {
		t.Fatal(err)
	}
	s3 := snapshot(t, l)
	if s3.List.Len() >= 3 {
		t.Errorf("a truncated list still has %d entries", s3.List.Len())
	}

	// Rewritten in place, longer, with another last entry where the last
	// one read was.
	rewritten := imaEntries(t, 200, 12)
	if err := os.WriteFile(path, rewritten, 0o440); err != nil {
		t.Fatal(err)
	}
	wantEntries(t, snapshot(t, l), rewritten, 12)
}

func TestIMAListRefusesWhatIsNoList(t *testing.T) {
	list := imaEntries(t, 1, 3)
	for _, tc := range []struct {
		name  string
		setUp func(t *testing.T, path string)
		check func(error) bool
	}{
		{"absent", func(t *testing.T, path string) {}, func(err error) bool {
			return errors.Is(err, fs.ErrNotExist) && strings.Contains(err.Error(), "no IMA measurement list at")
		}},
		{"a FIFO", func(t *testing.T, path string) {
			if err := syscall.Mkfifo(path, 0o644); err != nil {
				t.Fatal(err)
			}
		}, isType(fs.ModeNamedPipe)},
		{"a symbolic link", func(t *testing.T, path string) {
			real := filepath.Join(t.TempDir(), "list")
			if err := os.WriteFile(real, list, 0o444); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(real, path); err != nil {
				t.Fatal(err)
			}
		}, isType(fs.ModeSymlink)},
		{"a directory", func(t *testing.T, path string) {
			if err := os.Mkdir(path, 0o755); err != nil {
				t.Fatal(err)
			}
		}, isType(fs.ModeDir)},
		{"damaged: an absurd template data size", func(t *testing.T, path string) {
			b := imaEntries(t, 1, 2)
			// Entry 2's data size: PCR, SHA-1 hash, name size, "ima-ng".
			at := len(b)/2 + 4 + 20 + 4 + 6
			binary.LittleEndian.PutUint32(b[at:], 0xfffffff0)
			if err := os.WriteFile(path, b, 0o444); err != nil {
				t.Fatal(err)
			}
		}, func(err error) bool {
			var fe *eventlog.FormatError
			return errors.As(err, &fe) && strings.Contains(err.Error(), "entry 2")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root, path := imaTree(t, nil)
			tc.setUp(t, path)
			l := hwsource.NewIMA(root, hwsource.IMAOptions{})
			start := time.Now()
			_, err := l.Snapshot(context.Background())
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("took %s", took)
			}
			if err == nil || !tc.check(err) || !strings.Contains(err.Error(), path) {
				t.Fatalf("error %v", err)
			}
			// Fixed: the list is read from its start.
			os.Remove(path)
			if err := os.WriteFile(path, list, 0o444); err != nil {
				t.Fatal(err)
			}
			wantEntries(t, snapshot(t, l), list, 3)
		})
	}
}

func isType(want fs.FileMode) func(error) bool {
	return func(err error) bool {
		var te *boundedread.FileTypeError
		return errors.As(err, &te) && te.Type == want
	}
}

func TestIMAListBounded(t *testing.T) {
	list := imaEntries(t, 1, 100)
	root, path := imaTree(t, list)
	l := hwsource.NewIMA(root, hwsource.IMAOptions{MaxBytes: int64(len(list)) - 1})
	_, err := l.Snapshot(context.Background())
	var tooLarge *boundedread.TooLargeError
	if !errors.As(err, &tooLarge) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "--ima-max-bytes") {
		t.Fatalf("a list past the limit: %v", err)
	}

	// A huge sparse file: refused at the limit, having read no more.
	if err := os.Truncate(path, 1<<40); err != nil {
		t.Fatal(err)
	}
	l = hwsource.NewIMA(root, hwsource.IMAOptions{MaxBytes: 1 << 20})
	start := time.Now()
	_, err = l.Snapshot(context.Background())
	if !errors.As(err, &tooLarge) && !errors.As(err, new(*eventlog.FormatError)) {
		t.Fatalf("a 1 TiB file: %v", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("took %s", took)
	}
}

func TestIMAListWaitIsBounded(t *testing.T) {
	root, _ := imaTree(t, imaEntries(t, 1, 3))
	l := hwsource.NewIMA(root, hwsource.IMAOptions{Wait: 50 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// Only the wait for the turn is bounded by ctx: a cancelled caller
	// with the turn free still reads.
	if _, err := l.Snapshot(ctx); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
}

func TestIMAListInMemory(t *testing.T) {
	list := imaEntries(t, 1, 5)
	cur := list
	l := hwsource.NewIMABytes("simulated", func() ([]byte, error) { return cur, nil }, true, hwsource.IMAOptions{})
	wantEntries(t, snapshot(t, l), list, 5)
	cur = append(list[:len(list):len(list)], imaEntries(t, 6, 2)...)
	s := snapshot(t, l)
	wantEntries(t, s, cur, 7)
	cur = imaEntries(t, 50, 7) // same length, another list
	s2 := snapshot(t, l)
	wantEntries(t, s2, cur, 7)
	if s2.Gen == s.Gen {
		t.Error("another list of the same length kept the generation")
	}
}
