package service

import (
	"slices"
	"strings"

	"github.com/ccnp-eventlog/ccnp-eventlog/metrics"
	"github.com/ccnp-eventlog/ccnp-eventlog/outdir"
)

// OutputStats reports the output directories' accounting, for metrics:
// "shared", and "containers" when container-level events are on.
func (s *Service) OutputStats() []metrics.DirStats {
	dirs := []metrics.DirStats{dirStats("shared", s.out.Stats())}
	if s.saasOut != nil {
		dirs = append(dirs, dirStats("containers", s.saasOut.Stats()))
	}
	return dirs
}

func dirStats(name string, st outdir.Stats) metrics.DirStats {
	return metrics.DirStats{Dir: name, Bytes: st.Bytes, Files: st.Files, Evicted: st.Evicted}
}

// RuntimeStats reports each category's runtime log, for metrics: those
// with container-level events on, once their journal is open.
func (s *Service) RuntimeStats() []metrics.RuntimeLogStats {
	var out []metrics.RuntimeLogStats
	for cat, c := range s.logs {
		if c.rt == nil {
			continue
		}
		v := c.rt.View()
		if v.Journal == "" {
			continue
		}
		out = append(out, metrics.RuntimeLogStats{Category: cat.String(), Records: v.Records, Bytes: v.JournalBytes, MaxBytes: s.rtOpts.MaxLogBytes})
	}
	slices.SortFunc(out, func(a, b metrics.RuntimeLogStats) int { return strings.Compare(a.Category, b.Category) })
	return out
}
