package service

import (
	"context"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"github.com/ccnp-eventlog/ccnp-eventlog/metrics"
	eventlogpb "github.com/ccnp-eventlog/ccnp-eventlog/proto"
	"github.com/ccnp-eventlog/ccnp-eventlog/runtimelog"
)

// IntegrityService is the name, in the grpc.health.v1 service, of whether
// the logs still explain the live registers: NOT_SERVING while a register
// contradicts its log, SERVING otherwise (registers that cannot be read
// contradict nothing). It is unknown to health checks until the first
// verification has finished, and never changes the server's own health
// ("" and the Eventlog service), since the logs are still served.
const IntegrityService = "eventlog.integrity"

// DefaultVerifyInterval is --verify-interval's default.
const DefaultVerifyInterval = 5 * time.Minute

// DefaultVerifyTimeout bounds one category's verification. Reading a log
// and its registers takes milliseconds; a TPM or file system that does not
// answer within it is reported, and while it still has not, the category
// is not verified again (so hung reads never pile up).
const DefaultVerifyTimeout = 30 * time.Second

// liveRegisters reads the category's live registers, with p, its platform
// log, as of the same moment: while no container-level record is in
// progress, so that a record's extend is never seen without its event.
func (c *category) liveRegisters(ctx context.Context, p *platformLog) (eventlog.Bank, error) {
	if c.rt == nil {
		return c.src.Registers(ctx)
	}
	var live eventlog.Bank
	var err error
	c.rt.Hold(func(v *runtimelog.View) {
		live, err = c.src.Registers(ctx)
		if v.Platform != nil {
			p.log, p.gen = v.Platform, uint64(v.Records)
		}
	})
	return live, err
}

// integrityCheck is one category's continuous verification.
type integrityCheck struct {
	cat eventlogpb.CATEGORY
	// busy is set while a verification runs, which may outlive its
	// timeout if a read ignores it.
	busy atomic.Bool
	// mismatched are the registers whose mismatch was logged, so that it
	// is logged once, not at every interval while it lasts; failed is
	// the error logged last, likewise.
	mismatched map[string]bool
	failed     string
}

type integrityResult struct {
	check *integrityCheck
	reply *eventlogpb.VerifyEventlogReply
	err   error
}

// WatchIntegrity verifies every category the service serves against the
// live registers, at once and then every interval, until ctx is done, as
// the VerifyEventlog RPC does, each within timeout. Each outcome goes to report (whether each
// register that could be read matches) and to hs, as the status of
// IntegrityService; a register that stops matching is logged once, at
// error level.
func (s *Service) WatchIntegrity(ctx context.Context, interval, timeout time.Duration, hs *health.Server, report *metrics.Integrity) {
	var checks []*integrityCheck
	for cat := range s.logs {
		checks = append(checks, &integrityCheck{cat: cat, mismatched: map[string]bool{}})
	}
	if s.ima != nil {
		checks = append(checks, &integrityCheck{cat: imaCategory, mismatched: map[string]bool{}})
	}
	slices.SortFunc(checks, func(a, b *integrityCheck) int { return int(a.cat - b.cat) })
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		s.verifyRound(ctx, checks, timeout, hs, report)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// verifyRound verifies every category once, each within timeout.
func (s *Service) verifyRound(ctx context.Context, checks []*integrityCheck, timeout time.Duration, hs *health.Server, report *metrics.Integrity) {
	results := make(chan integrityResult, len(checks))
	started := 0
	for _, c := range checks {
		if !c.busy.CompareAndSwap(false, true) {
			s.log.Error("integrity: the last verification of this category has not finished: skipped", "category", c.cat.String(), "timeout", timeout)
			report.Report(c.cat.String(), nil)
			continue
		}
		started++
		go func() {
			defer c.busy.Store(false)
			vctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			reply, err := s.verifyEventlog(vctx, &eventlogpb.VerifyEventlogRequest{EventlogCategory: c.cat, EventlogLevel: eventlogpb.LEVEL_PAAS})
			results <- integrityResult{c, reply, err}
		}()
	}
	// A read that ignores its context is given a little past its timeout,
	// then left behind: its category stays busy.
	deadline := time.NewTimer(timeout + time.Second)
	defer deadline.Stop()
	for range started {
		select {
		case r := <-results:
			s.recordIntegrity(r, report)
		case <-deadline.C:
			s.log.Error("integrity: a verification did not finish in time", "timeout", timeout)
		case <-ctx.Done():
			return
		}
	}
	if ctx.Err() != nil {
		return
	}
	report.Verified(time.Now())
	status := healthpb.HealthCheckResponse_SERVING
	for _, c := range checks {
		if len(c.mismatched) > 0 {
			status = healthpb.HealthCheckResponse_NOT_SERVING
		}
	}
	hs.SetServingStatus(IntegrityService, status)
}

// recordIntegrity reports a category's verification, and logs what
// changed.
func (s *Service) recordIntegrity(r integrityResult, report *metrics.Integrity) {
	c, cat := r.check, r.check.cat.String()
	if r.err != nil {
		// Nothing is claimed: the log or its registers cannot be read now.
		report.Report(cat, nil)
		clear(c.mismatched)
		if msg := r.err.Error(); msg != c.failed {
			c.failed = msg
			s.log.Warn("integrity: cannot verify the log against the registers", "category", cat, "err", r.err)
		}
		return
	}
	if c.failed != "" {
		c.failed = ""
		s.log.Info("integrity: the log can be verified again", "category", cat)
	}
	matches := map[string]bool{}
	for _, reg := range r.reply.Registers {
		switch reg.Status {
		case eventlogpb.REGISTER_STATUS_MATCH:
			if _, seen := matches[reg.Register]; !seen {
				matches[reg.Register] = true
			}
		case eventlogpb.REGISTER_STATUS_MISMATCH:
			matches[reg.Register] = false
		}
	}
	for name, ok := range matches {
		switch {
		case !ok && !c.mismatched[name]:
			c.mismatched[name] = true
			s.log.Error("integrity: the live register does not match its log", mismatchAttrs(r.reply, cat, name)...)
		case ok && c.mismatched[name]:
			delete(c.mismatched, name)
			s.log.Info("integrity: the live register matches its log again", "category", cat, "register", name)
		}
	}
	for name := range c.mismatched {
		if _, compared := matches[name]; !compared {
			delete(c.mismatched, name) // unreadable now: nothing claimed
		}
	}
	report.Report(cat, matches)
}

// mismatchAttrs say what is known of a register's mismatch: its values in
// each bank, and the first event that diverges, where one is known (an
// event whose data no longer hashes to its digest); otherwise the register
// was extended with no event logged, or a logged digest was changed,
// which the log alone cannot place.
func mismatchAttrs(reply *eventlogpb.VerifyEventlogReply, cat, register string) []any {
	attrs := []any{"category", cat, "register", register, "source", reply.Source, "live_from", reply.LiveFrom}
	for _, reg := range reply.Registers {
		if reg.Register != register || reg.Status != eventlogpb.REGISTER_STATUS_MISMATCH {
			continue
		}
		g := []any{"replayed", reg.Replayed, "live", reg.Live, "events", reg.Events}
		if len(reg.AlteredEvents) > 0 {
			g = append(g, "first_diverging_event", slices.Min(reg.AlteredEvents))
		} else {
			g = append(g, "first_diverging_event", "unknown: no logged event's data contradicts its digest, so the register was extended without a logged event, or a logged digest was changed")
		}
		if reg.Note != "" {
			g = append(g, "note", reg.Note)
		}
		attrs = append(attrs, slog.Group(reg.Algorithm, g...))
	}
	return attrs
}
