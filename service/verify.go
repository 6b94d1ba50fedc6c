package service

import (
	"context"
	"encoding/hex"
	"fmt"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	eventlogpb "github.com/ccnp-eventlog/ccnp-eventlog/proto"
	"github.com/ccnp-eventlog/ccnp-eventlog/verify"
)

// VerifyEventlog implements the Eventlog service: it replays the category's
// log and compares the result with the live registers. Live values are read
// on every call; only the log is cached.
func (s *Service) VerifyEventlog(ctx context.Context, req *eventlogpb.VerifyEventlogRequest) (*eventlogpb.VerifyEventlogReply, error) {
	reply, err := s.verifyEventlog(ctx, req)
	return reply, toStatus(err)
}

func (s *Service) verifyEventlog(ctx context.Context, req *eventlogpb.VerifyEventlogRequest) (*eventlogpb.VerifyEventlogReply, error) {
	if err := validateLevel(req.EventlogLevel); err != nil {
		return nil, err
	}
	if err := validateCategory(req.EventlogCategory); err != nil {
		return nil, err
	}
	if (len(req.TdQuote) > 0 || len(req.TdReport) > 0) && req.EventlogCategory != eventlogpb.CATEGORY_TDX_EVENTLOG {
		return nil, invalidRequest("td_quote and td_report hold a TD's registers: they verify the TDX log (eventlog_category 0), not %s", req.EventlogCategory)
	}
	if len(req.TdQuote) > 0 && len(req.TdReport) > 0 {
		return nil, invalidRequest("td_quote and td_report are both set: give one")
	}
	if req.EventlogLevel != eventlogpb.LEVEL_PAAS {
		return nil, invalidRequest("verify compares the platform (PAAS) log with the registers; a container's own events explain only part of a register")
	}
	if req.EventlogCategory == imaCategory {
		return s.verifyIMA(ctx)
	}
	cache, err := s.logFor(req.EventlogCategory)
	if err != nil {
		return nil, err
	}
	p, err := cache.platform(ctx)
	if err != nil {
		return nil, err
	}
	var live eventlog.Bank
	var liveErr error
	liveFrom := cache.src.RegistersFrom()
	if len(req.TdQuote) > 0 || len(req.TdReport) > 0 {
		if live, liveFrom, err = requestEvidence(req); err != nil {
			return nil, err
		}
	} else {
		live, liveErr = cache.liveRegisters(ctx, &p)
	}
	report, err := verify.Check(p.log, cache.src.Kind(), live, liveErr)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errCannotReplay, err)
	}
	reply := VerifyReply(report)
	reply.LiveFrom = liveFrom
	reply.Source = p.source
	reply.Simulated = cache.src.Simulated()
	reply.TotalEvents = uint32(len(p.log.Events))
	if liveErr != nil {
		reply.LiveError = liveErr.Error()
	}
	return reply, nil
}

// VerifyReply renders a check as a VerifyEventlogReply: the verdict,
// registers, quirks and MRTD; the caller says where the log and registers
// came from. The offline verify command renders its checks with it too.
func VerifyReply(report *verify.Report) *eventlogpb.VerifyEventlogReply {
	reply := &eventlogpb.VerifyEventlogReply{
		Verified: report.Verified(),
		Mrtd:     hex.EncodeToString(report.MRTD),
	}
	for _, r := range report.Registers {
		check := &eventlogpb.RegisterCheck{
			Register:            r.Name,
			Index:               r.Index,
			Algorithm:           r.Alg.String(),
			Replayed:            hex.EncodeToString(r.Replayed),
			Live:                hex.EncodeToString(r.Live),
			Status:              registerStatus[r.Status],
			Events:              uint32(r.Events),
			Note:                r.Note,
			FirstUnmatchedEvent: uint32(r.FirstUnmatched),
		}
		for _, n := range r.Altered {
			check.AlteredEvents = append(check.AlteredEvents, uint32(n))
		}
		reply.Registers = append(reply.Registers, check)
	}
	for _, q := range report.Quirks {
		pq := &eventlogpb.Quirk{Name: q.Name, Register: q.Register, Description: q.Description}
		for _, n := range q.Events {
			pq.Events = append(pq.Events, uint32(n))
		}
		reply.Quirks = append(reply.Quirks, pq)
	}
	return reply
}

var registerStatus = map[verify.Status]eventlogpb.REGISTER_STATUS{
	verify.Match:        eventlogpb.REGISTER_STATUS_MATCH,
	verify.Mismatch:     eventlogpb.REGISTER_STATUS_MISMATCH,
	verify.NotAvailable: eventlogpb.REGISTER_STATUS_NOT_AVAILABLE,
}

// requestEvidence reads the registers of the request's TD quote or
// TDREPORT. They come from the caller, unverified: the reply says so.
func requestEvidence(req *eventlogpb.VerifyEventlogRequest) (eventlog.Bank, string, error) {
	field := "td_quote"
	if len(req.TdQuote) == 0 {
		field = "td_report"
	}
	bank, from, err := verify.TDXEvidence(req.TdQuote, req.TdReport)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", field, err)
	}
	return bank, "the request's " + from, nil
}
