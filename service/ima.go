package service

import (
	"context"
	"fmt"
	"io"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog/ima"
	"github.com/ccnp-eventlog/ccnp-eventlog/hwsource"
	eventlogpb "github.com/ccnp-eventlog/ccnp-eventlog/proto"
	"github.com/ccnp-eventlog/ccnp-eventlog/verify"
)

// The IMA category serves the kernel's IMA measurement list
// (hwsource.IMAList): entries 1..N in list order, with the paging of the
// other categories, TCG_RAW being the kernel's binary format (the entries'
// bytes, unchanged: the format has no header) and CCNP_JSON package ima's
// JSON. Each request reads what the kernel appended since the last one; a
// reply names the list's generation (its length, and whether it was
// replaced) in the reply cache's key, so a file once written is handed out
// again only for the same list.
//
// The list is the kernel's, not the containers': its standard templates
// record what was measured, not in which container, so container level
// (SAAS) is refused, and nothing is recorded into it.

const imaCategory = eventlogpb.CATEGORY_IMA_EVENTLOG

// errNoContainerInIMA answers SAAS requests for the IMA list.
var errNoContainerInIMA = &preconditionError{"the IMA measurement list carries no container: its templates (ima, ima-ng, ima-sig, ima-buf, ima-modsig) record what the kernel measured, not in which container, so there are no container-level (SAAS) IMA entries; ask for the platform's list (PAAS)"}

// errRecordIMA answers RecordEvent for the IMA list.
var errRecordIMA = &requestError{"the IMA measurement list is the kernel's own: containers record their events in TDX_EVENTLOG (RTMR3) or TPM_EVENTLOG (PCR 23)"}

// getIMA serves GetEventlog for the IMA list.
func (s *Service) getIMA(ctx context.Context, req *eventlogpb.GetEventlogRequest) (*eventlogpb.GetEventlogReply, error) {
	if req.EventlogLevel == eventlogpb.LEVEL_SAAS {
		return nil, errNoContainerInIMA
	}
	if s.ima == nil {
		return nil, &noSourceError{imaCategory}
	}
	snap, err := s.ima.Snapshot(ctx)
	if err != nil {
		return nil, err
	}
	entries, err := page(s.zeroBasedStart, req.StartPosition, req.Count, snap.List.Slice)
	if err != nil {
		return nil, err
	}
	first, last := 0, 0
	if entries.Len() > 0 {
		first = entries.First().Num
		last = first + entries.Len() - 1
	}
	simulated := s.ima.Simulated()
	return s.deliver(req, snap.Gen, first, last, destination{dir: s.out}, func() rendered {
		return renderIMA(snap, entries, first, last, req.Format, simulated)
	})
}

// renderIMA prepares entries, first..last of the snapshot's list, in format.
func renderIMA(snap *hwsource.IMASnapshot, entries ima.Entries, first, last int, format eventlogpb.FORMAT, simulated bool) rendered {
	r := rendered{
		label: fmt.Sprintf("ima-%d-%d", first, last),
		reply: &eventlogpb.GetEventlogReply{
			EventCount:  uint32(entries.Len()),
			TotalEvents: uint32(snap.List.Len()),
			Format:      format,
			FirstEvent:  uint32(first),
			Source:      snap.Source,
			Simulated:   simulated,
		},
	}
	if format == eventlogpb.FORMAT_TCG_RAW {
		r.ext, r.size = "bin", ima.RawSize(entries)
		r.write = func(w io.Writer) error { return ima.WriteRaw(w, entries) }
		r.append = func(b []byte) []byte { return ima.AppendRaw(b, entries) }
		return r
	}
	r.ext, r.size = "json", ima.CCNPJSONSize(snap.List, entries)
	r.write = func(w io.Writer) error { return ima.WriteCCNPJSON(w, snap.List, entries) }
	r.append = func(b []byte) []byte { return ima.AppendCCNPJSON(b, snap.List, entries) }
	return r
}

// imaVerifyAttempts bounds how often verifyIMA reads the PCRs and the list
// again when the list has entries the PCR does not include yet.
const imaVerifyAttempts = 3

// verifyIMA replays the list against live PCR 10 of the TPM. The PCRs are
// read first, then the list: the kernel logs an entry before it extends
// the PCR, so every entry the PCRs include is in the list read after them,
// and the list may only run ahead. A list ahead is read again with the
// PCRs, a few times, before its extra entries are called a mismatch.
func (s *Service) verifyIMA(ctx context.Context) (*eventlogpb.VerifyEventlogReply, error) {
	if s.ima == nil {
		return nil, &noSourceError{imaCategory}
	}
	var (
		report   *verify.Report
		snap     *hwsource.IMASnapshot
		liveErr  error
		liveFrom string
	)
	for range imaVerifyAttempts {
		var live eventlog.Bank
		live, liveFrom, liveErr = s.imaRegisters(ctx)
		var err error
		if snap, err = s.imaToEnd(ctx); err != nil {
			return nil, err
		}
		if report, err = verify.CheckIMA(snap.List, live, liveErr); err != nil {
			return nil, fmt.Errorf("%w: %v", errCannotReplay, err)
		}
		if !ahead(report) {
			break
		}
	}
	reply := VerifyReply(report)
	reply.LiveFrom = liveFrom
	reply.Source = snap.Source
	reply.Simulated = s.ima.Simulated()
	reply.TotalEvents = uint32(snap.List.Len())
	if liveErr != nil {
		reply.LiveError = liveErr.Error()
	}
	return reply, nil
}

// ahead reports whether the list has entries the live PCRs do not include.
func ahead(r *verify.Report) bool {
	for _, reg := range r.Registers {
		if reg.FirstUnmatched != 0 {
			return true
		}
	}
	return false
}

// imaRegisters reads the live PCRs of the TPM, IMA's registers.
func (s *Service) imaRegisters(ctx context.Context) (eventlog.Bank, string, error) {
	tpm := s.logs[eventlogpb.CATEGORY_TPM_EVENTLOG]
	const why = "IMA extends PCR 10 of the TPM; a node without one (a TD) extends a register for IMA only with a kernel that maps IMA to an RTMR, which this server does not read"
	if tpm == nil {
		return nil, "", fmt.Errorf("%w: this server has no TPM source: %s", hwsource.ErrNotAvailable, why)
	}
	live, err := tpm.src.Registers(ctx)
	if err != nil {
		return nil, tpm.src.RegistersFrom(), fmt.Errorf("%w (%s)", err, why)
	}
	return live, tpm.src.RegistersFrom(), nil
}

// imaToEnd reads the list until a read reaches its end (each read is
// bounded; a list growing faster than it is read is served as far as the
// context allows).
func (s *Service) imaToEnd(ctx context.Context) (*hwsource.IMASnapshot, error) {
	for {
		snap, err := s.ima.Snapshot(ctx)
		if err != nil || snap.AtEnd || ctx.Err() != nil {
			return snap, err
		}
	}
}

// checkIMA reads the list for the start-up log and health: it reports
// whether it could be read.
func (s *Service) checkIMA(ctx context.Context) bool {
	snap, err := s.ima.Snapshot(ctx)
	if err != nil {
		s.log.Warn("source unavailable", "category", imaCategory.String(), "source", s.ima.Name(), "err", err)
		return false
	}
	s.log.Info("source ready", "category", imaCategory.String(), "source", snap.Source, "simulated", s.ima.Simulated(), "events", snap.List.Len())
	return true
}
