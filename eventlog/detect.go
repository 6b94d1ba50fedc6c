package eventlog

// DetectKind says whether l, parsed from input, is a TDX (CCEL) log or a TPM
// log, for callers that were handed a file without being told. The two share
// one format, so it answers TDX only where the bytes leave no doubt:
//
//   - input goes on past the log's end with padding alone (every byte 0xFF,
//     or every byte 0x00): that is a CCEL log area, which has a fixed size,
//     while a TPM log (binary_bios_measurements) ends with its last event; or
//   - the Spec ID header is at index 1 and lists SHA-384 as its only
//     algorithm: TDVF writes its header at CC MR index 1 (RTMR0) with the
//     RTMRs' SHA-384, while TPM firmware writes it at PCR 0 and, in every log
//     seen, with at least SHA-1 or SHA-256.
//
// Anything else is TPM, including a legacy SHA1-only log.
func DetectKind(l *Log, input []byte) Kind {
	if len(input) > len(l.Raw) && isPadding(input[len(l.Raw):]) {
		return TDX
	}
	if s := l.SpecID; s != nil && l.Header.Index == 1 && len(s.Algs) == 1 && s.Algs[0].Alg == AlgSHA384 {
		return TDX
	}
	return TPM
}

// ParseDetect parses a log whose kind and framing are not known: as a CCEL log
// area (ParseArea) when the log inside input is followed by padding alone,
// else to the end of input (Parse), and detects its kind with DetectKind.
//
// It does not try Parse first: a zero-filled area parses "successfully" to
// EOF as a run of empty events at PCR 0, so the area reading must win when
// the bytes after the log are padding. And it does not keep the area reading
// otherwise: a TPM log may hold a record whose first 8 bytes are zero
// (index 0, EV_PREBOOT_CERT), which is not an end marker there.
func ParseDetect(input []byte) (*Log, Kind, error) {
	l, err := ParseArea(input)
	if err != nil {
		// Parse reads the same records up to here, so it fails the same way.
		return nil, 0, err
	}
	if len(l.Raw) < len(input) && !isPadding(input[len(l.Raw):]) {
		if l, err = Parse(input); err != nil {
			return nil, 0, err
		}
	}
	return l, DetectKind(l, input), nil
}

// isPadding reports whether b is all 0xFF or all 0x00.
func isPadding(b []byte) bool {
	return len(b) > 0 && (allBytes(b, 0xFF) || allBytes(b, 0x00))
}
