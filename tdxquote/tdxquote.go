// Package tdxquote reads the measurement registers out of Intel TDX evidence:
// a TD quote (versions 4 and 5, with a TD report body of TDX 1.0 or 1.5) and
// a TDREPORT (TDREPORT_STRUCT, the 1024 bytes /dev/tdx_guest returns). Plain
// functions on bytes, no I/O.
//
// Nothing here checks a signature or a MAC: a quote's ECDSA signature chain
// and a TDREPORT's MAC prove where the values come from, and checking them is
// a quote verification library's job (github.com/google/go-tdx-guest/verify,
// Intel's QVL). What this package gives is the values, so that a log can be
// compared with them.
//
// Layouts: Intel TDX DCAP Quote Generation Library and Quote Verification
// Library API (quote v4 and v5), Intel TDX Module ABI Specification
// (TDREPORT_STRUCT, TDINFO_STRUCT); the offsets agree with the Linux
// tdx_guest driver's and go-tdx-guest's.
package tdxquote

import (
	"encoding/binary"
	"fmt"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
)

// Sizes of the registers and fields read here.
const (
	RegisterSize   = 48 // MRTD and each RTMR: a SHA-384 digest
	ReportDataSize = 64
	// ReportSize is the size of a TDREPORT_STRUCT.
	ReportSize = 1024
)

// TEETypeTDX is the TEE type of a TDX quote and the report type of a
// TDREPORT (0 is SGX).
const TEETypeTDX = 0x81

// Measurements are the registers a TD's evidence carries.
type Measurements struct {
	// MRTD is the measurement of the TD's initial contents, taken by the
	// TDX module before any firmware runs: no event log records it.
	MRTD [RegisterSize]byte
	// RTMR are RTMR0..3 (CC MR indexes 1..4).
	RTMR       [4][RegisterSize]byte
	ReportData [ReportDataSize]byte
}

// Bank returns the RTMRs in the SHA-384 bank, keyed by CC MR index (1 is
// RTMR0), as eventlog.Replay keys a TDX log's registers. MRTD is not in it:
// it is no log's register.
func (m *Measurements) Bank() eventlog.Bank {
	b := eventlog.Bank{}
	for i := range m.RTMR {
		b.Set(eventlog.AlgSHA384, uint32(i+1), append([]byte(nil), m.RTMR[i][:]...))
	}
	return b
}

// Quote is what a TD quote says about the TD.
type Quote struct {
	// Version is the quote format: 4 or 5.
	Version uint16
	// Body is the TD report body's version: "1.0" (TDX 1.0, 584 bytes) or
	// "1.5" (TDX 1.5, 648 bytes, with TEE_TCB_SVN_2 and MRSERVICETD).
	Body string
	// AttestationKeyType is the key the signature is made with (2 is
	// ECDSA-256 with P-256).
	AttestationKeyType uint16
	Measurements
	// SignatureSize is the length of the signature data that follows the
	// body. It is never checked here.
	SignatureSize int
	// Trailing counts bytes after the signature data, which buffers
	// returned by quote providers often carry.
	Trailing int
}

// Error is evidence that cannot be read: what it was, where, and why.
type Error struct {
	What   string // "TD quote", "TDREPORT"
	Offset int
	Reason string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s: at byte %d: %s", e.What, e.Offset, e.Reason)
}

const (
	quoteHeaderSize = 48
	// Body types of a v5 quote.
	bodyTypeTD10 = 2
	bodyTypeTD15 = 3
	body10Size   = 584
	body15Size   = 648
	// Offsets in a TD report body.
	bodyMRTD       = 136
	bodyRTMR       = 328
	bodyReportData = 520
)

// ParseQuote reads a TD quote of version 4 or 5. It checks the layout
// (version, TEE type, body type and size, signature data length) and never
// the signature.
func ParseQuote(b []byte) (*Quote, error) {
	fail := func(off int, format string, args ...any) (*Quote, error) {
		return nil, &Error{What: "TD quote", Offset: off, Reason: fmt.Sprintf(format, args...)}
	}
	if len(b) < quoteHeaderSize {
		return fail(len(b), "%d bytes end inside the 48-byte quote header", len(b))
	}
	q := &Quote{
		Version:            binary.LittleEndian.Uint16(b[0:]),
		AttestationKeyType: binary.LittleEndian.Uint16(b[2:]),
	}
	if tee := binary.LittleEndian.Uint32(b[4:]); tee != TEETypeTDX {
		if tee == 0 {
			return fail(4, "TEE type 0 is an SGX enclave's quote, not a TD's")
		}
		return fail(4, "TEE type 0x%x is not TDX (0x81)", tee)
	}
	off := quoteHeaderSize
	size := body10Size
	switch q.Version {
	case 4:
		q.Body = "1.0"
	case 5:
		if len(b) < off+6 {
			return fail(len(b), "%d bytes end inside the v5 body descriptor (type and size)", len(b))
		}
		typ, n := binary.LittleEndian.Uint16(b[off:]), binary.LittleEndian.Uint32(b[off+2:])
		switch typ {
		case bodyTypeTD10:
			q.Body, size = "1.0", body10Size
		case bodyTypeTD15:
			q.Body, size = "1.5", body15Size
		case 1:
			return fail(off, "body type 1 is an SGX enclave report, not a TD report")
		default:
			return fail(off, "unknown body type %d (2 is a TDX 1.0 TD report, 3 a TDX 1.5 one)", typ)
		}
		if n != uint32(size) {
			return fail(off+2, "a TD report %s body is %d bytes, the quote says %d", q.Body, size, n)
		}
		off += 6
	default:
		return fail(0, "quote version %d: only versions 4 and 5 are TD quotes read here", q.Version)
	}
	if len(b) < off+size {
		return fail(len(b), "%d bytes end inside the %d-byte TD report %s body that starts at byte %d", len(b), size, q.Body, off)
	}
	readBody(&q.Measurements, b[off:off+size])
	off += size
	if len(b) < off+4 {
		return fail(len(b), "%d bytes end before the signature data length", len(b))
	}
	sig := binary.LittleEndian.Uint32(b[off:])
	if uint64(sig) > uint64(len(b)-off-4) {
		return fail(off, "signature data of %d bytes, but only %d bytes follow", sig, len(b)-off-4)
	}
	q.SignatureSize = int(sig)
	q.Trailing = len(b) - off - 4 - int(sig)
	return q, nil
}

func readBody(m *Measurements, body []byte) {
	copy(m.MRTD[:], body[bodyMRTD:])
	for i := range m.RTMR {
		copy(m.RTMR[i][:], body[bodyRTMR+i*RegisterSize:])
	}
	copy(m.ReportData[:], body[bodyReportData:])
}

// Report is what a TDREPORT says about the TD.
type Report struct {
	// Version is the report's version: 0 for TDX 1.0, 1 for TDX 1.5 (whose
	// TDINFO also holds SERVTD_HASH).
	Version uint8
	Measurements
}

// Offsets in a TDREPORT_STRUCT: REPORTMACSTRUCT (256 bytes), TEE_TCB_INFO
// (239) and reserved bytes up to 512, then TDINFO_STRUCT.
const (
	reportType       = 0
	reportVersion    = 2
	reportReportData = 128
	reportTDInfo     = 512
	reportMRTD       = reportTDInfo + 16 // after ATTRIBUTES and XFAM
	reportRTMR       = reportMRTD + 4*RegisterSize
)

// ParseReport reads a TDREPORT_STRUCT. It checks the size and the report
// type, never the MAC (only the TDX module of the same machine can).
func ParseReport(b []byte) (*Report, error) {
	fail := func(off int, format string, args ...any) (*Report, error) {
		return nil, &Error{What: "TDREPORT", Offset: off, Reason: fmt.Sprintf(format, args...)}
	}
	if len(b) != ReportSize {
		return fail(min(len(b), ReportSize), "%d bytes: a TDREPORT is %d", len(b), ReportSize)
	}
	if b[reportType] != TEETypeTDX {
		return fail(reportType, "report type 0x%02x is not TDX (0x81)", b[reportType])
	}
	r := &Report{Version: b[reportVersion]}
	copy(r.ReportData[:], b[reportReportData:])
	copy(r.MRTD[:], b[reportMRTD:])
	for i := range r.RTMR {
		copy(r.RTMR[i][:], b[reportRTMR+i*RegisterSize:])
	}
	return r, nil
}

// AppendReport appends a TDREPORT_STRUCT holding m, as a simulated TD makes
// one: report type TDX, version 0, and zeros where a real TDX module puts
// its TCB information and MAC.
func AppendReport(dst []byte, m *Measurements) []byte {
	r := make([]byte, ReportSize)
	r[reportType] = TEETypeTDX
	copy(r[reportReportData:], m.ReportData[:])
	copy(r[reportMRTD:], m.MRTD[:])
	for i := range m.RTMR {
		copy(r[reportRTMR+i*RegisterSize:], m.RTMR[i][:])
	}
	return append(dst, r...)
}

// AppendUnsignedQuoteV4 appends a version 4 TD quote with a TDX 1.0 body
// holding m and no signature data (its length is 0): the shape of a real
// quote, for tests and simulated TDs, which no verifier accepts as signed.
func AppendUnsignedQuoteV4(dst []byte, m *Measurements) []byte {
	q := make([]byte, quoteHeaderSize+body10Size+4)
	binary.LittleEndian.PutUint16(q[0:], 4)
	binary.LittleEndian.PutUint16(q[2:], 2) // ECDSA-256 with P-256, as DCAP's
	binary.LittleEndian.PutUint32(q[4:], TEETypeTDX)
	body := q[quoteHeaderSize:]
	copy(body[bodyMRTD:], m.MRTD[:])
	for i := range m.RTMR {
		copy(body[bodyRTMR+i*RegisterSize:], m.RTMR[i][:])
	}
	copy(body[bodyReportData:], m.ReportData[:])
	return append(dst, q...)
}
