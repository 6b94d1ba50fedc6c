package tdxquote_test

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/google/go-tdx-guest/testing/testdata"

	"github.com/ccnp-eventlog/ccnp-eventlog/tdxquote"
)

// FuzzParseQuote: any input gives a located *tdxquote.Error or a quote whose
// fields are the bytes at their offsets; never a panic.
func FuzzParseQuote(f *testing.F) {
	v4 := tdxquote.AppendUnsignedQuoteV4(nil, sample())
	f.Add(v4)
	f.Add(quoteV5(v4, 2))
	f.Add(quoteV5(v4, 3))
	f.Add(testdata.RawQuote)
	f.Fuzz(func(t *testing.T, b []byte) {
		q, err := tdxquote.ParseQuote(b)
		if err != nil {
			var e *tdxquote.Error
			if !errors.As(err, &e) || e.Offset < 0 || e.Offset > len(b) {
				t.Fatalf("error %v: not a *tdxquote.Error within the input's %d bytes", err, len(b))
			}
			return
		}
		body := 48
		if q.Version == 5 {
			body += 6
		}
		if q.Version != binary.LittleEndian.Uint16(b) || (q.Version != 4 && q.Version != 5) {
			t.Fatalf("version %d from bytes %x", q.Version, b[:2])
		}
		if string(b[body+136:body+184]) != string(q.MRTD[:]) || string(b[body+328+3*48:body+520]) != string(q.RTMR[3][:]) {
			t.Fatal("MRTD or RTMR3 not read from its offset")
		}
		size := map[string]int{"1.0": 584, "1.5": 648}[q.Body]
		if body+size+4+q.SignatureSize+q.Trailing != len(b) {
			t.Fatalf("body %s at %d, signature %d, trailing %d do not add up to %d bytes", q.Body, body, q.SignatureSize, q.Trailing, len(b))
		}
	})
}

// FuzzParseReport: a TDREPORT is 1024 bytes of report type 0x81; anything
// else is a *tdxquote.Error.
func FuzzParseReport(f *testing.F) {
	f.Add(tdxquote.AppendReport(nil, sample()))
	f.Add(testdata.RawReport)
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := tdxquote.ParseReport(b)
		if err != nil {
			var e *tdxquote.Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v is not a *tdxquote.Error", err)
			}
			return
		}
		if len(b) != 1024 || b[0] != 0x81 || string(b[720:768]) != string(r.RTMR[0][:]) {
			t.Fatalf("parsed %d bytes of type 0x%x", len(b), b[0])
		}
	})
}
