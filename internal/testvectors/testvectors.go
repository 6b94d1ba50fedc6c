// Package testvectors finds public test vectors that Go modules ship, for
// tests: the files are read from the module cache (go list -m), never copied
// into this repository.
package testvectors

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// GoTDXGuest is the module whose test data holds real TD quotes, among them
// one whose RTMRs are the replay of the corpus's cos-113 CCEL log
// (testing/testdata/ccel/cos-113-tdx-quote.dat, with that log as
// ccel_data.dat and ccel_table.dat).
const GoTDXGuest = "github.com/google/go-tdx-guest"

// COS113Quote is the TD quote (v4, signed by a GCE TD) whose RTMR0..2 are the
// replay of eventlog/testdata/corpus/tdx/cos-113-tdx.data.bin.
const COS113Quote = "testing/testdata/ccel/cos-113-tdx-quote.dat"

// SPRQuote is a production TD quote (v4) of a Sapphire Rapids machine.
const SPRQuote = "testing/testdata/tdx_prod_quote_SPR_E4.dat"

var (
	dirs   sync.Map // module path -> dir
	listMu sync.Mutex
)

// ModuleFile returns the path of a file of module (at the version this
// module's build list selects) in the module cache, downloading the module
// if need be. It fails the test when the file cannot be had.
func ModuleFile(t testing.TB, module, rel string) string {
	t.Helper()
	dir, err := moduleDir(module)
	if err != nil {
		t.Fatalf("finding module %s (go list -m): %v", module, err)
	}
	path := filepath.Join(dir, filepath.FromSlash(rel))
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("test vector %s of module %s: %v", rel, module, err)
	}
	return path
}

// ReadModuleFile reads a file of module, as ModuleFile finds it.
func ReadModuleFile(t testing.TB, module, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(ModuleFile(t, module, rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func moduleDir(module string) (string, error) {
	if d, ok := dirs.Load(module); ok {
		return d.(string), nil
	}
	listMu.Lock()
	defer listMu.Unlock()
	if d, ok := dirs.Load(module); ok {
		return d.(string), nil
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", err
	}
	out, err := exec.Command(goBin, "list", "-m", "-f", "{{.Dir}}", module).Output()
	dir := strings.TrimSpace(string(out))
	if err == nil && dir == "" {
		// Listed but not downloaded yet.
		if out, err = exec.Command(goBin, "mod", "download", "-json", module).CombinedOutput(); err != nil {
			return "", &downloadError{module, string(out), err}
		}
		out, err = exec.Command(goBin, "list", "-m", "-f", "{{.Dir}}", module).Output()
		dir = strings.TrimSpace(string(out))
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return "", &downloadError{module, string(ee.Stderr), err}
	}
	if err != nil {
		return "", err
	}
	dirs.Store(module, dir)
	return dir, nil
}

type downloadError struct {
	module, out string
	err         error
}

func (e *downloadError) Error() string { return e.module + ": " + e.err.Error() + ": " + e.out }
