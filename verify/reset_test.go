package verify_test

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"fmt"
	"testing"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"github.com/ccnp-eventlog/ccnp-eventlog/verify"
)

// tpmReset is a TPM PCR's value before any extend, by the PC Client platform
// TPM profile: after TPM2_Startup the DRTM PCRs 17..22 hold all ones (a
// dynamic launch resets them to zero), every other PCR zeros. Written out
// here, not taken from the code under test.
func tpmReset(alg eventlog.Alg, pcr uint32) []byte {
	size := map[eventlog.Alg]int{eventlog.AlgSHA1: sha1.Size, eventlog.AlgSHA256: sha256.Size}[alg]
	if pcr >= 17 && pcr <= 22 {
		return bytes.Repeat([]byte{0xFF}, size)
	}
	return make([]byte, size)
}

// extended is what a PCR holds after extending, from start, the digest of
// each datum: new = H(old || H(datum)).
func extended(alg eventlog.Alg, start []byte, data ...string) []byte {
	v := start
	for _, d := range data {
		switch alg {
		case eventlog.AlgSHA1:
			digest := sha1.Sum([]byte(d))
			h := sha1.Sum(append(bytes.Clone(v), digest[:]...))
			v = h[:]
		case eventlog.AlgSHA256:
			digest := sha256.Sum256([]byte(d))
			h := sha256.Sum256(append(bytes.Clone(v), digest[:]...))
			v = h[:]
		}
	}
	return v
}

var sha1sha256 = []eventlog.Alg{eventlog.AlgSHA1, eventlog.AlgSHA256}

// drtmLog is a TPM log (StartupLocality 3) whose events extend PCR0, PCR7
// and, after a dynamic launch reset it to zero, PCR18; and the live PCRs of
// the TPM that measured it: those three extended, every other at its reset
// value.
func drtmLog(t *testing.T) (*eventlog.Log, eventlog.Bank) {
	t.Helper()
	events := []struct {
		pcr  uint32
		typ  eventlog.EventType
		data string
	}{
		{0, eventlog.EvNoAction, string(eventlog.StartupLocalityData(3))},
		{0, eventlog.EvSCRTMVersion, "S-CRTM version"},
		{7, eventlog.EvEFIAction, "Secure Boot state"},
		{18, eventlog.EvEventTag, "DRTM: the launch environment"},
		{0, eventlog.EvSeparator, "\x00\x00\x00\x00"},
		{18, eventlog.EvEventTag, "DRTM: its policy"},
	}
	raw := eventlog.AppendSpecIDHeader(nil, 0, sha1sha256)
	for _, e := range events {
		raw = eventlog.AppendEvent2(raw, e.pcr, e.typ, eventlog.Measure([]byte(e.data), sha1sha256), []byte(e.data))
	}
	l, err := eventlog.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	live := eventlog.Bank{}
	for _, alg := range sha1sha256 {
		for pcr := range uint32(24) {
			live.Set(alg, pcr, tpmReset(alg, pcr))
		}
		locality3 := make([]byte, alg.Size())
		locality3[len(locality3)-1] = 3
		live.Set(alg, 0, extended(alg, locality3, "S-CRTM version", "\x00\x00\x00\x00"))
		live.Set(alg, 7, extended(alg, make([]byte, alg.Size()), "Secure Boot state"))
		live.Set(alg, 18, extended(alg, make([]byte, alg.Size()), "DRTM: the launch environment", "DRTM: its policy"))
	}
	return l, live
}

// TestTPMResetValues: PCRs the log never extends are explained by their
// reset value, all ones for the DRTM PCRs 17..22 and zeros for the others,
// so a TPM at rest verifies; one that left its reset value is reported,
// against the right reset value.
func TestTPMResetValues(t *testing.T) {
	l, live := drtmLog(t)
	r, err := verify.Check(l, eventlog.TPM, live, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Verified() {
		t.Fatalf("a TPM whose unextended PCRs are at their reset values does not verify: %+v", r.Registers)
	}
	var listed []string
	for _, reg := range r.Registers {
		listed = append(listed, fmt.Sprintf("%s %s", reg.Name, reg.Alg))
	}
	if want := "[PCR0 sha1 PCR0 sha256 PCR7 sha1 PCR7 sha256 PCR18 sha1 PCR18 sha256]"; fmt.Sprint(listed) != want {
		t.Errorf("registers listed: %v, want the extended ones, %s", listed, want)
	}

	// Each PCR at the edges of the DRTM range, moved to the other reset
	// value, is reported with the value it should have kept.
	for _, pcr := range []uint32{16, 17, 19, 22, 23} {
		for _, alg := range sha1sha256 {
			t.Run(fmt.Sprintf("PCR%d %s", pcr, alg), func(t *testing.T) {
				_, live := drtmLog(t)
				reset := tpmReset(alg, pcr)
				other := bytes.Repeat([]byte{^reset[0]}, len(reset))
				live.Set(alg, pcr, other)
				r, err := verify.Check(l, eventlog.TPM, live, nil)
				if err != nil {
					t.Fatal(err)
				}
				if r.Verified() || !r.Mismatched() {
					t.Fatalf("PCR%d at %x verified", pcr, other)
				}
				var got *verify.Register
				for i, reg := range r.Registers {
					if reg.Index == pcr {
						got = &r.Registers[i]
					}
				}
				if got == nil || got.Alg != alg || got.Status != verify.Mismatch || got.Events != 0 ||
					!bytes.Equal(got.Replayed, reset) || !bytes.Equal(got.Live, other) || got.Name != fmt.Sprintf("PCR%d", pcr) {
					t.Errorf("PCR%d %s: %+v, want a mismatch of %x (the reset value) with %x", pcr, alg, got, reset, other)
				}
			})
		}
	}
}

// TestTPMIMARegister: PCR 10 is the kernel's IMA's. Extended while the boot
// log has no event for it (any kernel built with IMA logs a boot_aggregate
// there), it is explained by the IMA measurement list, not reported as a
// mismatch of the boot log; a quirk says so. Another PCR extended so is
// still a mismatch.
func TestTPMIMARegister(t *testing.T) {
	l, live := drtmLog(t)
	for _, alg := range sha1sha256 {
		live.Set(alg, 10, extended(alg, make([]byte, alg.Size()), "boot_aggregate", "/usr/lib/systemd/systemd"))
	}
	r, err := verify.Check(l, eventlog.TPM, live, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Verified() {
		t.Fatalf("a TPM whose PCR 10 IMA extended does not verify: %+v", r.Registers)
	}
	var quirks []string
	for _, q := range r.Quirks {
		quirks = append(quirks, q.Name+" "+q.Register)
	}
	if fmt.Sprint(quirks) != "[ima-pcr10 PCR10]" {
		t.Errorf("quirks %v, want one ima-pcr10 for PCR10", quirks)
	}
	for _, reg := range r.Registers {
		if reg.Index == 10 {
			t.Errorf("PCR10 listed: %+v", reg)
		}
	}
	live.Set(eventlog.AlgSHA256, 11, extended(eventlog.AlgSHA256, make([]byte, 32), "not IMA"))
	if r, _ := verify.Check(l, eventlog.TPM, live, nil); !r.Mismatched() {
		t.Error("PCR11 extended without a logged event verified")
	}
}
