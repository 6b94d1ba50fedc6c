package verify

import (
	"errors"
	"fmt"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"github.com/ccnp-eventlog/ccnp-eventlog/tdxquote"
)

// TDXEvidence reads the registers out of a TD quote or, when quote is empty,
// a TDREPORT: RTMR0..3 at CC MR indexes 1..4 and MRTD at 0, in the SHA-384
// bank, for Check in place of the live registers. from says what they came
// from, and that nothing vouches for them here: neither the quote's
// signature nor the report's MAC is checked. Errors are *tdxquote.Error.
func TDXEvidence(quote, report []byte) (bank eventlog.Bank, from string, err error) {
	var m *tdxquote.Measurements
	switch {
	case len(quote) > 0 && len(report) > 0:
		return nil, "", errors.New("a TD quote and a TDREPORT: give one")
	case len(quote) > 0:
		q, err := tdxquote.ParseQuote(quote)
		if err != nil {
			return nil, "", err
		}
		m, from = &q.Measurements, fmt.Sprintf("TD quote v%d (TD report body %s; signature not checked)", q.Version, q.Body)
	case len(report) > 0:
		r, err := tdxquote.ParseReport(report)
		if err != nil {
			return nil, "", err
		}
		m, from = &r.Measurements, fmt.Sprintf("TDREPORT (version %d; MAC not checked)", r.Version)
	default:
		return nil, "", errors.New("neither a TD quote nor a TDREPORT")
	}
	bank = m.Bank()
	bank.Set(eventlog.AlgSHA384, 0, m.MRTD[:])
	return bank, from, nil
}
