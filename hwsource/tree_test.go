package hwsource_test

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"golang.org/x/sys/unix"
)

// corpusDir holds the real logs the eventlog package tests against.
const corpusDir = "../eventlog/testdata/corpus"

// expectation is what eventlog/testdata/corpus/expected.json says of a log.
type expectation struct {
	EventsInclHeader int                          `json:"events_incl_header"`
	Replay           map[string]map[string]string `json:"replay"`
	UsedBytes        int                          `json:"used_bytes"`
}

func loadExpected(t *testing.T) map[string]expectation {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(corpusDir, "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var exp map[string]expectation
	if err := json.Unmarshal(b, &exp); err != nil {
		t.Fatal(err)
	}
	return exp
}

// bank converts expected.json's replay map to a bank.
func (e expectation) bank(t *testing.T) eventlog.Bank {
	t.Helper()
	bank := eventlog.Bank{}
	for algName, regs := range e.Replay {
		alg, ok := eventlog.ParseAlg(algName)
		if !ok {
			t.Fatalf("expected.json: unknown algorithm %q", algName)
		}
		for idx, h := range regs {
			i, err := strconv.ParseUint(idx, 10, 32)
			if err != nil {
				t.Fatal(err)
			}
			v, err := hex.DecodeString(h)
			if err != nil {
				t.Fatal(err)
			}
			bank.Set(alg, uint32(i), v)
		}
	}
	return bank
}

func readCorpus(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(corpusDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// writeTree writes files (host path -> content) under a new root.
func writeTree(t *testing.T, files map[string][]byte) string {
	t.Helper()
	root := t.TempDir()
	for name, b := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func chmod(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// asUnprivileged runs f with the permission checks an unprivileged user gets,
// also when the test runs as root: f runs on an OS thread of its own whose
// effective capabilities lack CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH, so a
// mode 000 file denies it. Linux capabilities are per thread; the thread is
// never unlocked, so it exits with f and nothing else runs without them.
func asUnprivileged(t *testing.T, f func()) {
	t.Helper()
	done := make(chan error)
	go func() {
		runtime.LockOSThread()
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var data [2]unix.CapUserData
		if err := unix.Capget(&hdr, &data[0]); err != nil {
			done <- err
			return
		}
		drop := uint32(1<<unix.CAP_DAC_OVERRIDE | 1<<unix.CAP_DAC_READ_SEARCH)
		data[0].Effective &^= drop
		if err := unix.Capset(&hdr, &data[0]); err != nil {
			done <- err
			return
		}
		f()
		done <- nil
	}()
	if err := <-done; err != nil {
		t.Fatalf("cannot drop file capabilities: %v", err)
	}
}
