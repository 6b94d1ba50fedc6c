package metrics

import (
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Integrity holds the outcome of the continuous verification of each
// category's log against the live registers (register_match), and when it
// last ran. It is a prometheus.Collector; a category's registers are
// replaced as a whole, so a scrape never sees half of a verification.
type Integrity struct {
	interval time.Duration

	mu    sync.Mutex
	match map[string]map[string]bool // category -> register -> matches
	last  time.Time
}

var (
	registerMatchDesc = prometheus.NewDesc(namespace+"_register_match",
		"1 when replaying a category's log gives the register's live value (in every bank compared), 0 when it does not: the log does not explain the register. Absent for registers that cannot be read live. Set by the verification every --verify-interval.",
		[]string{"category", "register"}, nil)
	lastVerifyDesc = prometheus.NewDesc(namespace+"_last_verify_timestamp_seconds",
		"When the last verification of the logs against the live registers finished (Unix time). Absent until the first has.", nil, nil)
	verifyIntervalDesc = prometheus.NewDesc(namespace+"_verify_interval_seconds",
		"--verify-interval: how often the logs are verified against the live registers (0: never), for alerts on a stale last_verify_timestamp_seconds.", nil, nil)
)

// NewIntegrity returns an Integrity with no outcome yet, of verifications
// every interval.
func NewIntegrity(interval time.Duration) *Integrity {
	return &Integrity{interval: interval, match: map[string]map[string]bool{}}
}

// Report replaces category's outcome: whether each register it could
// compare matches. Registers not in it (unreadable) are absent; nil
// removes the category's.
func (i *Integrity) Report(category string, registers map[string]bool) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if len(registers) == 0 {
		delete(i.match, category)
		return
	}
	i.match[category] = registers
}

// Verified records that a verification finished at t.
func (i *Integrity) Verified(t time.Time) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.last = t
}

// Describe implements prometheus.Collector.
func (i *Integrity) Describe(ch chan<- *prometheus.Desc) {
	ch <- registerMatchDesc
	ch <- lastVerifyDesc
	ch <- verifyIntervalDesc
}

// Collect implements prometheus.Collector.
func (i *Integrity) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(verifyIntervalDesc, prometheus.GaugeValue, i.interval.Seconds())
	i.mu.Lock()
	defer i.mu.Unlock()
	if !i.last.IsZero() {
		ch <- prometheus.MustNewConstMetric(lastVerifyDesc, prometheus.GaugeValue, float64(i.last.UnixNano())/1e9)
	}
	cats := make([]string, 0, len(i.match))
	for c := range i.match {
		cats = append(cats, c)
	}
	sort.Strings(cats)
	for _, c := range cats {
		for reg, ok := range i.match[c] {
			v := 0.0
			if ok {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(registerMatchDesc, prometheus.GaugeValue, v, c, reg)
		}
	}
}
