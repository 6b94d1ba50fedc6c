// Package corpus gives tests the real event logs of eventlog/testdata/corpus
// and what its expected.json says of each (see the corpus's README): one
// loader for every package that tests against them, the e2e suite included.
//
// Its functions fail the test that calls them rather than return errors: a
// missing or malformed corpus is a broken checkout, never something a test
// goes on without. They take a TB, which testing.TB and Ginkgo's GinkgoT()
// both are.
package corpus

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
)

// TB is what these helpers need of a test.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
}

// Expectation is one entry of expected.json.
type Expectation struct {
	// Size is the file's size in bytes.
	Size  int      `json:"size"`
	Agile bool     `json:"agile"`
	Algs  []string `json:"algs"`
	// End says where the log ends: "eof", or "ff-pad@N" for 0xFF padding
	// from byte N of a CCEL log area.
	End              string `json:"end"`
	EventsInclHeader int    `json:"events_incl_header"`
	// UsedBytes is the length of the log without the padding after it.
	UsedBytes int `json:"used_bytes"`
	// Replay maps an algorithm name and a register index (PCR number, or
	// CC MR index for TDX: 1 is RTMR0) to the value, in hex, that
	// replaying the log gives.
	Replay map[string]map[string]string `json:"replay"`
}

// moduleRoot is the checkout's root: go test runs a package's tests in the
// package's directory, somewhere under the module's go.mod.
var moduleRoot = sync.OnceValues(func() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		} else if !errors.Is(err, os.ErrNotExist) {
			return "", err
		}
		if dir == filepath.Dir(dir) {
			return "", fmt.Errorf("no go.mod in %s or above it: the tests run in a checkout", wd)
		}
	}
})

// Dir is the corpus's directory in the checkout the test runs in.
func Dir(t TB) string {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatalf("finding the corpus: %v", err)
	}
	return filepath.Join(root, "eventlog", "testdata", "corpus")
}

// Path is the path of the corpus file name ("tpm/gdc-host.bin").
func Path(t TB, name string) string {
	t.Helper()
	return filepath.Join(Dir(t), filepath.FromSlash(name))
}

// Expected reads expected.json: file name (as Path takes it) to what it
// says of the file. A field it does not know fails, so that a new field is
// added here, and used, rather than silently ignored.
func Expected(t TB) map[string]Expectation {
	t.Helper()
	path := Path(t, "expected.json")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var exp map[string]Expectation
	if err := dec.Decode(&exp); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(exp) == 0 {
		t.Fatalf("%s lists no logs", path)
	}
	return exp
}

// Read returns the content of the corpus file name.
func Read(t TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(Path(t, name))
	if err != nil {
		t.Fatalf("%v", err)
	}
	return b
}

// IsArea reports whether the corpus file name is a TDX log read as a CCEL
// log area (padded or not); the other files are logs read to their end.
func IsArea(name string) bool { return strings.HasPrefix(name, "tdx/") }

// Parse reads and parses the corpus file name the way the service reads its
// source: CCEL log areas (IsArea) as areas, the rest to the end. It returns
// the log and the file's content.
func Parse(t TB, name string) (*eventlog.Log, []byte) {
	t.Helper()
	b := Read(t, name)
	parse := eventlog.Parse
	if IsArea(name) {
		parse = eventlog.ParseArea
	}
	l, err := parse(b)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return l, b
}

// Bank is e.Replay as a bank of register values.
func (e Expectation) Bank(t TB) eventlog.Bank {
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
				t.Fatalf("expected.json: %s register %q: %v", algName, idx, err)
			}
			v, err := hex.DecodeString(h)
			if err != nil || len(v) != alg.Size() {
				t.Fatalf("expected.json: %s register %s: %q is not a %d-byte hex value", algName, idx, h, alg.Size())
			}
			bank.Set(alg, uint32(i), v)
		}
	}
	return bank
}
