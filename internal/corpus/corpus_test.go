package corpus_test

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/ccnp-eventlog/ccnp-eventlog/internal/corpus"
)

// TestExpectedCoversTheCorpus: expected.json describes every log file of the
// corpus, with its size, and only those; CCEL tables are not logs.
func TestExpectedCoversTheCorpus(t *testing.T) {
	exp := corpus.Expected(t)
	listed := 0
	err := filepath.WalkDir(corpus.Dir(t), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".bin") || strings.HasSuffix(path, ".table.bin") {
			return err
		}
		name, err := filepath.Rel(corpus.Dir(t), path)
		if err != nil {
			return err
		}
		name = filepath.ToSlash(name)
		want, ok := exp[name]
		if !ok {
			t.Errorf("%s is not in expected.json", name)
			return nil
		}
		listed++
		if got := len(corpus.Read(t, name)); got != want.Size {
			t.Errorf("%s: %d bytes, expected.json says %d", name, got, want.Size)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if listed != len(exp) {
		t.Errorf("expected.json lists %d files, %d of them are in the corpus", len(exp), listed)
	}
}

func TestParseAndBank(t *testing.T) {
	for name, want := range corpus.Expected(t) {
		l, b := corpus.Parse(t, name)
		if len(l.Events)+1 != want.EventsInclHeader || len(b) != want.Size || len(l.Raw) != want.UsedBytes {
			t.Errorf("%s: %d events with the header in %d of %d bytes; expected.json says %d in %d of %d",
				name, len(l.Events)+1, len(l.Raw), len(b), want.EventsInclHeader, want.UsedBytes, want.Size)
		}
		if got := corpus.IsArea(name); got != strings.HasPrefix(name, "tdx/") {
			t.Errorf("IsArea(%s) = %v", name, got)
		}
		bank := want.Bank(t)
		for alg, regs := range bank {
			if len(regs) != len(want.Replay[alg.String()]) {
				t.Errorf("%s: %s bank of %d registers, expected.json has %d", name, alg, len(regs), len(want.Replay[alg.String()]))
			}
		}
		if len(bank) != len(want.Replay) {
			t.Errorf("%s: %d banks, expected.json has %d", name, len(bank), len(want.Replay))
		}
	}
}

// fatalRecorder is a TB whose Fatalf ends the goroutine, as testing's does.
type fatalRecorder struct{ msg string }

func (r *fatalRecorder) Helper() {}
func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// fails runs f with a fatalRecorder and returns what it failed with.
func fails(f func(corpus.TB)) string {
	r := &fatalRecorder{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(r)
	}()
	<-done
	return r.msg
}

func TestBadExpectationsFail(t *testing.T) {
	for _, tc := range []struct {
		replay map[string]map[string]string
		want   string
	}{
		{map[string]map[string]string{"md5": {"0": "00"}}, `unknown algorithm "md5"`},
		{map[string]map[string]string{"sha1": {"PCR0": strings.Repeat("00", 20)}}, `sha1 register "PCR0"`},
		{map[string]map[string]string{"sha1": {"0": strings.Repeat("00", 19)}}, "is not a 20-byte hex value"},
		{map[string]map[string]string{"sha1": {"0": strings.Repeat("zz", 20)}}, "is not a 20-byte hex value"},
	} {
		msg := fails(func(t corpus.TB) { corpus.Expectation{Replay: tc.replay}.Bank(t) })
		if !strings.Contains(msg, tc.want) {
			t.Errorf("Bank(%v) failed with %q, want it to say %q", tc.replay, msg, tc.want)
		}
	}
	if msg := fails(func(t corpus.TB) { corpus.Read(t, "tpm/no-such-log.bin") }); !strings.Contains(msg, "no-such-log.bin") || !strings.Contains(msg, "no such file") {
		t.Errorf("reading a missing file failed with %q", msg)
	}
}
