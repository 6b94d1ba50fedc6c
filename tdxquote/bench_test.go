package tdxquote_test

import (
	"testing"

	"github.com/google/go-tdx-guest/testing/testdata"

	"github.com/ccnp-eventlog/ccnp-eventlog/tdxquote"
)

// BenchmarkParseQuote reads a production quote (4974 bytes, v4): the cost
// VerifyEventlog adds for a td_quote.
func BenchmarkParseQuote(b *testing.B) {
	b.SetBytes(int64(len(testdata.RawQuote)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tdxquote.ParseQuote(testdata.RawQuote); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseReport(b *testing.B) {
	r := tdxquote.AppendReport(nil, sample())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tdxquote.ParseReport(r); err != nil {
			b.Fatal(err)
		}
	}
}
