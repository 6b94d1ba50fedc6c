package simulator_test

import (
	"bytes"
	"context"
	"crypto/sha512"
	"testing"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"github.com/ccnp-eventlog/ccnp-eventlog/hwsource"
	"github.com/ccnp-eventlog/ccnp-eventlog/simulator"
	"github.com/ccnp-eventlog/ccnp-eventlog/tdxquote"
)

// TestKernelProfilesOfTheTD: only the 6.16 profile extends; the 6.8 one
// reads the registers from the TD's TDREPORTs, which follow its extends; the
// quote holds the registers as they are.
func TestKernelProfilesOfTheTD(t *testing.T) {
	if _, err := simulator.ParseKernel("5.4"); err == nil {
		t.Error("kernel profile 5.4 accepted")
	}
	if k, err := simulator.ParseKernel(""); err != nil || k != simulator.Kernel616 {
		t.Errorf("the default profile is %q, %v", k, err)
	}
	ctx := context.Background()
	td, err := simulator.NewTDX(simulator.TDXConfig{Seed: 4})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range simulator.Kernels {
		_, extends := td.OnKernel(k).(hwsource.Extender)
		_, says := td.OnKernel(k).(hwsource.CannotExtend)
		if extends != (k == simulator.Kernel616) || says == extends {
			t.Errorf("profile %s: Extender %v, CannotExtend %v", k, extends, says)
		}
	}
	digest := sha512.Sum384([]byte("runtime"))
	if err := td.Extend(ctx, 4, []eventlog.Digest{{Alg: eventlog.AlgSHA384, Value: digest[:]}}); err != nil {
		t.Fatal(err)
	}
	want, _ := td.Registers(ctx)
	got, err := td.OnKernel(simulator.Kernel68).Registers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mrtd := got.Get(eventlog.AlgSHA384, 0)
	delete(got[eventlog.AlgSHA384], 0)
	if !got.Equal(want) || len(mrtd) != 48 {
		t.Errorf("6.8 profile registers %x (MRTD %x), the TD holds %x", got, mrtd, want)
	}
	if _, err := td.OnKernel(simulator.KernelStaged).Registers(ctx); err == nil {
		t.Error("the staged profile read registers")
	}
	q, err := tdxquote.ParseQuote(td.UnsignedQuote([64]byte{1}))
	if err != nil {
		t.Fatal(err)
	}
	if !q.Bank().Equal(want) || !bytes.Equal(q.MRTD[:], mrtd) || q.ReportData[0] != 1 || q.SignatureSize != 0 {
		t.Errorf("the quote holds %x, MRTD %x, report data %x", q.Bank(), q.MRTD, q.ReportData[:2])
	}
}
