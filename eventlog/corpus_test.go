package eventlog_test

import (
	"encoding/hex"
	"strconv"
	"strings"
	"testing"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"github.com/ccnp-eventlog/ccnp-eventlog/internal/corpus"
)

func TestCorpus(t *testing.T) {
	for name, want := range corpus.Expected(t) {
		t.Run(name, func(t *testing.T) {
			l, b := corpus.Parse(t, name)
			if len(b) != want.Size {
				t.Fatalf("file is %d bytes, expected.json says %d", len(b), want.Size)
			}
			if got := len(l.Events) + 1; got != want.EventsInclHeader {
				t.Errorf("events including header = %d, want %d", got, want.EventsInclHeader)
			}
			if l.Agile() != want.Agile {
				t.Errorf("Agile() = %v, want %v", l.Agile(), want.Agile)
			}
			if len(l.Raw) != want.UsedBytes {
				t.Errorf("log ends at byte %d, want %d (%s)", len(l.Raw), want.UsedBytes, want.End)
			}
			var algs []string
			for _, a := range l.Algs() {
				algs = append(algs, a.String())
			}
			if strings.Join(algs, ",") != strings.Join(want.Algs, ",") {
				t.Errorf("algorithms %v, want %v", algs, want.Algs)
			}

			bank, err := eventlog.Replay(l)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]map[string]string{}
			for alg, regs := range bank {
				for idx, v := range regs {
					if got[alg.String()] == nil {
						got[alg.String()] = map[string]string{}
					}
					got[alg.String()][strconv.Itoa(int(idx))] = hex.EncodeToString(v)
				}
			}
			for alg, regs := range want.Replay {
				for idx, v := range regs {
					if got[alg][idx] != v {
						t.Errorf("%s[%s] = %s, want %s", alg, idx, got[alg][idx], v)
					}
				}
				if len(got[alg]) != len(regs) {
					t.Errorf("%s: replay extended %d registers, want %d", alg, len(got[alg]), len(regs))
				}
			}
			if len(got) != len(want.Replay) {
				t.Errorf("replay has %d banks, want %d", len(got), len(want.Replay))
			}
		})
	}
}
