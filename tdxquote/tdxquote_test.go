package tdxquote_test

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-tdx-guest/abi"
	tdxpb "github.com/google/go-tdx-guest/proto/tdx"
	"github.com/google/go-tdx-guest/testing/testdata"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"github.com/ccnp-eventlog/ccnp-eventlog/internal/testvectors"
	"github.com/ccnp-eventlog/ccnp-eventlog/tdxquote"
)

// sample returns measurements with every byte telling where it is.
func sample() *tdxquote.Measurements {
	var m tdxquote.Measurements
	for i := range m.MRTD {
		m.MRTD[i] = 0xA0 ^ byte(i)
	}
	for r := range m.RTMR {
		for i := range m.RTMR[r] {
			m.RTMR[r][i] = byte(r*48 + i)
		}
	}
	for i := range m.ReportData {
		m.ReportData[i] = 0xD0 ^ byte(i)
	}
	return &m
}

// quoteV5 rewrites a v4 quote as a v5 one with the given body type, the
// body (padded for 1.5) and the signature data unchanged.
func quoteV5(v4 []byte, bodyType uint16) []byte {
	body := v4[48 : 48+584]
	size := 584
	if bodyType == 3 {
		size = 648
		body = append(bytes.Clone(body), bytes.Repeat([]byte{0x5E}, 64)...)
	}
	q := bytes.Clone(v4[:48])
	binary.LittleEndian.PutUint16(q, 5)
	q = binary.LittleEndian.AppendUint16(q, bodyType)
	q = binary.LittleEndian.AppendUint32(q, uint32(size))
	q = append(q, body...)
	return append(q, v4[48+584:]...)
}

func TestUnsignedQuoteRoundTrip(t *testing.T) {
	m := sample()
	v4 := tdxquote.AppendUnsignedQuoteV4(nil, m)
	for _, tc := range []struct {
		name    string
		b       []byte
		version uint16
		body    string
	}{
		{"v4", v4, 4, "1.0"},
		{"v5 TDX 1.0 body", quoteV5(v4, 2), 5, "1.0"},
		{"v5 TDX 1.5 body", quoteV5(v4, 3), 5, "1.5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, err := tdxquote.ParseQuote(tc.b)
			if err != nil {
				t.Fatal(err)
			}
			if q.Version != tc.version || q.Body != tc.body || q.SignatureSize != 0 || q.Trailing != 0 {
				t.Errorf("version %d body %s signature %d trailing %d; want %d %s 0 0", q.Version, q.Body, q.SignatureSize, q.Trailing, tc.version, tc.body)
			}
			if q.Measurements != *m {
				t.Errorf("measurements differ:\n got %x\nwant %x", q.Measurements, *m)
			}
		})
	}
}

func TestBankKeysRTMRsByCCMRIndex(t *testing.T) {
	m := sample()
	b := m.Bank()
	for i := range 4 {
		if got := b.Get(eventlog.AlgSHA384, uint32(i+1)); !bytes.Equal(got, m.RTMR[i][:]) {
			t.Errorf("CC MR index %d: %x, want RTMR%d %x", i+1, got, i, m.RTMR[i])
		}
	}
	if b.Get(eventlog.AlgSHA384, 0) != nil {
		t.Error("MRTD is in the bank: no log has it")
	}
}

// TestProductionQuote reads go-tdx-guest's production quote and compares
// every field with what go-tdx-guest's own parser reads.
func TestProductionQuote(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"go-tdx-guest RawQuote (SPR)", testdata.RawQuote},
		{"cos-113 quote", testvectors.ReadModuleFile(t, testvectors.GoTDXGuest, testvectors.COS113Quote)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, err := tdxquote.ParseQuote(tc.b)
			if err != nil {
				t.Fatal(err)
			}
			if q.Version != 4 || q.Body != "1.0" || q.AttestationKeyType != 2 || q.SignatureSize == 0 {
				t.Errorf("version %d body %s key type %d signature %d bytes", q.Version, q.Body, q.AttestationKeyType, q.SignatureSize)
			}
			p, err := abi.QuoteToProto(tc.b)
			if err != nil {
				t.Fatal(err)
			}
			body := p.(*tdxpb.QuoteV4).GetTdQuoteBody()
			if !bytes.Equal(q.MRTD[:], body.GetMrTd()) {
				t.Errorf("MRTD %x, go-tdx-guest reads %x", q.MRTD, body.GetMrTd())
			}
			for i, r := range body.GetRtmrs() {
				if !bytes.Equal(q.RTMR[i][:], r) {
					t.Errorf("RTMR%d %x, go-tdx-guest reads %x", i, q.RTMR[i], r)
				}
			}
			if !bytes.Equal(q.ReportData[:], body.GetReportData()) {
				t.Errorf("report data %x, go-tdx-guest reads %x", q.ReportData, body.GetReportData())
			}
		})
	}
}

// TestCOS113QuoteIsTheLogsReplay: the quote go-tdx-guest ships beside the
// cos-113 CCEL log holds, in RTMR0..2, what that log (in this repository's
// corpus) replays to, and RTMR3 is untouched.
func TestCOS113QuoteIsTheLogsReplay(t *testing.T) {
	q, err := tdxquote.ParseQuote(testvectors.ReadModuleFile(t, testvectors.GoTDXGuest, testvectors.COS113Quote))
	if err != nil {
		t.Fatal(err)
	}
	var expected map[string]struct {
		Replay map[string]map[string]string `json:"replay"`
	}
	b, err := os.ReadFile(filepath.Join("..", "eventlog", "testdata", "corpus", "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &expected); err != nil {
		t.Fatal(err)
	}
	replay := expected["tdx/cos-113-tdx.data.bin"].Replay["sha384"]
	for i := range 3 {
		want := replay[string(rune('1'+i))]
		if got := hex.EncodeToString(q.RTMR[i][:]); got != want {
			t.Errorf("RTMR%d: quote %s, log replays to %s", i, got, want)
		}
	}
	if q.RTMR[3] != [48]byte{} {
		t.Errorf("RTMR3 is %x, want zero", q.RTMR[3])
	}
}

func TestReportRoundTrip(t *testing.T) {
	m := sample()
	r, err := tdxquote.ParseReport(tdxquote.AppendReport(nil, m))
	if err != nil {
		t.Fatal(err)
	}
	if r.Measurements != *m || r.Version != 0 {
		t.Errorf("got version %d %x, want 0 %x", r.Version, r.Measurements, *m)
	}
}

// TestReportOffsets pins the TDREPORT offsets to those of the Linux
// tdx_guest driver (TDREPORT_reportdata 128, TDREPORT_mrtd 528,
// TDREPORT_rtmr0 720), independently of AppendReport.
func TestReportOffsets(t *testing.T) {
	b := make([]byte, 1024)
	b[0] = 0x81
	b[2] = 1
	b[128], b[528], b[720], b[720+3*48+47] = 1, 2, 3, 4
	r, err := tdxquote.ParseReport(b)
	if err != nil {
		t.Fatal(err)
	}
	if r.Version != 1 || r.ReportData[0] != 1 || r.MRTD[0] != 2 || r.RTMR[0][0] != 3 || r.RTMR[3][47] != 4 {
		t.Errorf("read %+v", r)
	}
}

func TestMalformedEvidence(t *testing.T) {
	v4 := tdxquote.AppendUnsignedQuoteV4(nil, sample())
	withSig := append(bytes.Clone(v4[:len(v4)-4]), 16, 0, 0, 0)
	withSig = append(withSig, make([]byte, 16)...)
	set16 := func(b []byte, off int, v uint16) []byte {
		b = bytes.Clone(b)
		binary.LittleEndian.PutUint16(b[off:], v)
		return b
	}
	set32 := func(b []byte, off int, v uint32) []byte {
		b = bytes.Clone(b)
		binary.LittleEndian.PutUint32(b[off:], v)
		return b
	}
	for _, tc := range []struct {
		name   string
		b      []byte
		offset int
		says   string
	}{
		{"empty", nil, 0, "quote header"},
		{"header only", v4[:48], 48, "body"},
		{"version 3 (SGX ECDSA)", set16(v4, 0, 3), 0, "version 3"},
		{"an SGX quote", set32(v4, 4, 0), 4, "SGX"},
		{"another TEE", set32(v4, 4, 0x42), 4, "not TDX"},
		{"v5 SGX body", set16(quoteV5(v4, 2), 48, 1), 48, "SGX enclave report"},
		{"v5 unknown body", set16(quoteV5(v4, 2), 48, 9), 48, "unknown body type 9"},
		{"v5 wrong body size", set32(quoteV5(v4, 3), 50, 584), 50, "648 bytes"},
		{"v5 descriptor cut", quoteV5(v4, 2)[:50], 50, "descriptor"},
		{"no signature length", v4[:48+584+2], 48 + 584 + 2, "signature data length"},
		{"signature past the end", withSig[:len(withSig)-1], 48 + 584, "16 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tdxquote.ParseQuote(tc.b)
			var e *tdxquote.Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v is not a *tdxquote.Error", err)
			}
			if e.Offset != tc.offset || !strings.Contains(err.Error(), tc.says) {
				t.Errorf("%v: want offset %d, saying %q", err, tc.offset, tc.says)
			}
		})
	}
	if q, err := tdxquote.ParseQuote(withSig); err != nil || q.SignatureSize != 16 {
		t.Errorf("a quote with 16 bytes of signature data: %+v, %v", q, err)
	}
	if q, err := tdxquote.ParseQuote(append(bytes.Clone(v4), 1, 2, 3)); err != nil || q.Trailing != 3 {
		t.Errorf("a quote with 3 trailing bytes: %+v, %v", q, err)
	}

	report := tdxquote.AppendReport(nil, sample())
	for _, tc := range []struct {
		name string
		b    []byte
		says string
	}{
		{"short", report[:1023], "1023 bytes"},
		{"long", append(bytes.Clone(report), 0), "1025 bytes"},
		{"SGX report type", append([]byte{0}, report[1:]...), "0x00 is not TDX"},
		// go-tdx-guest's report.dat is a mock for its device tests, not a
		// TDREPORT: its first byte is no report type.
		{"go-tdx-guest's mock report", testdata.RawReport, "0x0f is not TDX"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tdxquote.ParseReport(tc.b)
			var e *tdxquote.Error
			if !errors.As(err, &e) || !strings.Contains(err.Error(), tc.says) {
				t.Errorf("%v: want a *tdxquote.Error saying %q", err, tc.says)
			}
		})
	}
}

// TestEveryPrefix: no prefix of a valid quote or report panics or parses.
func TestEveryPrefix(t *testing.T) {
	v5 := quoteV5(tdxquote.AppendUnsignedQuoteV4(nil, sample()), 3)
	for n := range len(v5) {
		if _, err := tdxquote.ParseQuote(v5[:n]); err == nil {
			t.Fatalf("a %d-byte prefix of a %d-byte quote parsed", n, len(v5))
		}
	}
	report := tdxquote.AppendReport(nil, sample())
	for n := range len(report) {
		if _, err := tdxquote.ParseReport(report[:n]); err == nil {
			t.Fatalf("a %d-byte prefix of a TDREPORT parsed", n)
		}
	}
}
