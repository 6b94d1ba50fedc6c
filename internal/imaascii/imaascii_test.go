package imaascii_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog/ima"
	"github.com/ccnp-eventlog/ccnp-eventlog/internal/imaascii"
)

// handmade is the hand-made list eventlog/ima's tests read: its binary
// form, and the ASCII form of its entries that ASCII can show (known
// templates, names without a newline), both written by
// eventlog/ima/testdata/mklists.py with hashlib.
var handmade = filepath.Join("..", "..", "eventlog", "ima", "testdata", "handmade")

func read(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rawByHash indexes a binary list's entries by template hash (violations
// by position: they share the zero hash).
func rawByHash(t *testing.T, b []byte) map[string][]byte {
	t.Helper()
	l, err := ima.Parse(b, ima.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m := map[string][]byte{}
	for e := range l.All() {
		m[string(e.TemplateHash)] = e.Raw
	}
	return m
}

func TestRebuildHandmade(t *testing.T) {
	for _, c := range []struct {
		name string
		o    binary.ByteOrder
	}{{"mixed-le", binary.LittleEndian}, {"mixed-be", binary.BigEndian}} {
		ascii := read(t, filepath.Join(handmade, c.name+".ascii"))
		want := rawByHash(t, read(t, filepath.Join(handmade, c.name+".bin")))
		b, o, err := imaascii.Rebuild(ascii)
		if err != nil || o != c.o {
			t.Fatalf("%s: %v, order %v", c.name, err, o)
		}
		l, err := ima.Parse(b, ima.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if l.Order != o || l.Len() != strings.Count(string(ascii), "\n") {
			t.Fatalf("rebuilt %d entries in %v", l.Len(), l.Order)
		}
		if err := ima.CheckTemplateHashes(l); err != nil {
			t.Fatal(err)
		}
		// Byte for byte the binary list's entries.
		for e := range l.All() {
			if raw := want[string(e.TemplateHash)]; !bytes.Equal(raw, e.Raw) {
				t.Errorf("entry %d (%s) rebuilt as %x, the binary list has %x", e.Num, e.TemplateName, e.Raw, raw)
			}
		}
	}
}

// A changed line no longer hashes to its template hash: the tool says
// which line.
func TestRebuildChangedLine(t *testing.T) {
	lines := strings.Split(string(read(t, filepath.Join(handmade, "mixed-le.ascii"))), "\n")
	for _, c := range []struct {
		line     int
		old, new string
	}{
		{2, "/usr/lib/systemd/systemd", "/usr/lib/systemd/systemc"},
		{3, "sha256:61a0", "sha256:61a1"},
		{6, "0302040102", "0302040103"}, // ima-sig's signature
		{8, "kexec-cmdline", "kexec-cmdlinE"},
		{10, " ima ", " ima-ng "}, // "ima" read as ima-ng
		{1, "10 ", "x "},
	} {
		changed := append([]string(nil), lines...)
		if !strings.Contains(changed[c.line-1], c.old) {
			t.Fatalf("line %d has no %q", c.line, c.old)
		}
		changed[c.line-1] = strings.Replace(changed[c.line-1], c.old, c.new, 1)
		_, _, err := imaascii.Rebuild([]byte(strings.Join(changed, "\n")))
		var le *imaascii.LineError
		if !errors.As(err, &le) || le.Line != c.line {
			t.Errorf("line %d changed (%q to %q): %v", c.line, c.old, c.new, err)
		}
	}
}

// TestRebuildRealLists rebuilds real ASCII lists from the directory
// IMA_ASCII_LISTS names (files *.ascii; beside each, the same list's
// binary form as *.bin if there is one, which the rebuilt list must match
// entry for entry). No Go module on the proxy this project uses ships a
// real list (the ones found are served by none), and the project commits
// nothing fetched from public repositories: so the test runs where such
// lists were put by hand, and is skipped elsewhere.
func TestRebuildRealLists(t *testing.T) {
	dir := os.Getenv("IMA_ASCII_LISTS")
	if dir == "" {
		t.Skip("IMA_ASCII_LISTS is not set: no real ASCII lists to rebuild")
	}
	paths, _ := filepath.Glob(filepath.Join(dir, "*.ascii"))
	if len(paths) == 0 {
		t.Fatalf("no *.ascii file in %s", dir)
	}
	for _, path := range paths {
		ascii := read(t, path)
		b, _, err := imaascii.Rebuild(ascii)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		l, err := ima.Parse(b, ima.Options{})
		if err != nil {
			t.Fatalf("%s: rebuilt list: %v", path, err)
		}
		t.Logf("%s: %d entries rebuilt, each hashing to its template hash", path, l.Len())
		bin, err := os.ReadFile(strings.TrimSuffix(path, ".ascii") + ".bin")
		if err != nil {
			continue
		}
		real, err := ima.Parse(bin, ima.Options{})
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		n := min(l.Len(), real.Len())
		for i := 1; i <= n; i++ {
			if !bytes.Equal(l.Entry(i).Raw, real.Entry(i).Raw) {
				t.Fatalf("%s: entry %d rebuilt differs from the binary list's", path, i)
			}
		}
		t.Logf("%s: the first %d entries are byte for byte the binary list's", path, n)
	}
}
