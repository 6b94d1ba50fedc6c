package eventlog

import "strconv"

// Kind says which registers a log's index field names. The bytes of a TDX
// CCEL log and a TPM log share one format; only the register space differs.
type Kind uint8

const (
	// TPM logs index PCRs: index 7 is PCR7.
	TPM Kind = iota + 1
	// TDX logs (CCEL) index CC measurement registers: 0 is MRTD, 1..4 are
	// RTMR0..RTMR3.
	TDX
)

func (k Kind) String() string {
	switch k {
	case TPM:
		return "TPM"
	case TDX:
		return "TDX"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// RegisterName names the register an event's index refers to: "PCR7" for a
// TPM log, "RTMR0" for CC MR index 1 of a TDX log.
func (k Kind) RegisterName(index uint32) string {
	if k == TDX {
		switch {
		case index == 0:
			return "MRTD"
		case index <= 4:
			return rtmrNames[index-1]
		}
		return "CCMR" + strconv.FormatUint(uint64(index), 10)
	}
	if index < uint32(len(pcrNames)) {
		return pcrNames[index]
	}
	return "PCR" + strconv.FormatUint(uint64(index), 10)
}

// The names of the registers real logs extend, made once: a JSON reply
// names the register of every event.
var (
	rtmrNames = [4]string{"RTMR0", "RTMR1", "RTMR2", "RTMR3"}
	pcrNames  = func() (names [24]string) {
		for i := range names {
			names[i] = "PCR" + strconv.Itoa(i)
		}
		return names
	}()
)

// RegisterIndex is the inverse of RegisterName.
func (k Kind) RegisterIndex(name string) (uint32, bool) {
	parse := func(prefix string) (uint32, bool) {
		if len(name) <= len(prefix) || name[:len(prefix)] != prefix {
			return 0, false
		}
		n, err := strconv.ParseUint(name[len(prefix):], 10, 32)
		return uint32(n), err == nil
	}
	if k == TDX {
		if name == "MRTD" {
			return 0, true
		}
		if n, ok := parse("RTMR"); ok && n <= 3 {
			return n + 1, true
		}
		return parse("CCMR")
	}
	return parse("PCR")
}
