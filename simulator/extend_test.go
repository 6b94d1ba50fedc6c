package simulator

import (
	"bytes"
	"context"
	"crypto/sha512"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
)

func sha384Digest(s string) []eventlog.Digest {
	d := sha512.Sum384([]byte(s))
	return []eventlog.Digest{{Alg: eventlog.AlgSHA384, Value: d[:]}}
}

// extended is SHA-384(old || digest), the TDX module's RTMR extend.
func extended(old []byte, d []eventlog.Digest) []byte {
	h := sha512.New384()
	h.Write(old)
	h.Write(d[0].Value)
	return h.Sum(nil)
}

func TestTDXExtend(t *testing.T) {
	ctx := context.Background()
	td, err := NewTDX(TDXConfig{Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	before, _ := td.Registers(ctx)
	d := sha384Digest("runtime event")
	if err := td.Extend(ctx, 4, d); err != nil {
		t.Fatal(err)
	}
	after, _ := td.Registers(ctx)
	if want := extended(before.Get(eventlog.AlgSHA384, 4), d); !bytes.Equal(after.Get(eventlog.AlgSHA384, 4), want) {
		t.Errorf("RTMR3 = %x, want %x", after.Get(eventlog.AlgSHA384, 4), want)
	}
	for i := uint32(1); i <= 3; i++ {
		if !bytes.Equal(after.Get(eventlog.AlgSHA384, i), before.Get(eventlog.AlgSHA384, i)) {
			t.Errorf("RTMR%d changed", i-1)
		}
	}
	// Registers returns copies: changing one does not change the TD.
	after.Get(eventlog.AlgSHA384, 4)[0] ^= 1
	if again, _ := td.Registers(ctx); again.Get(eventlog.AlgSHA384, 4)[0] == after.Get(eventlog.AlgSHA384, 4)[0] {
		t.Error("Registers returned the TD's own slice")
	}
	for _, bad := range []struct {
		index   uint32
		digests []eventlog.Digest
	}{
		{0, d}, {5, d},
		{4, []eventlog.Digest{{Alg: eventlog.AlgSHA256, Value: make([]byte, 32)}}},
		{4, []eventlog.Digest{{Alg: eventlog.AlgSHA384, Value: make([]byte, 47)}}},
		{4, append(d, d...)},
	} {
		if err := td.Extend(ctx, bad.index, bad.digests); err == nil {
			t.Errorf("Extend(%d, %d digests) succeeded", bad.index, len(bad.digests))
		}
	}
	id1, _ := td.BootID(ctx)
	other, _ := NewTDX(TDXConfig{Seed: 3})
	if id2, _ := other.BootID(ctx); id1 == "" || id1 == id2 {
		t.Errorf("two TDs without a state file share boot ID %q: each is a new boot", id1)
	}
}

// TestTDXConcurrentExtends: extends from many goroutines all land, in some
// order; the result is one of the orders' values, and here all digests are
// equal, so it is known.
func TestTDXConcurrentExtends(t *testing.T) {
	ctx := context.Background()
	td, err := NewTDX(TDXConfig{Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	before, _ := td.Registers(ctx)
	want := before.Get(eventlog.AlgSHA384, 4)
	d := sha384Digest("same")
	var wg sync.WaitGroup
	for range 50 {
		want = extended(want, d)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := td.Extend(ctx, 4, d); err != nil {
				t.Error(err)
			}
			td.Registers(ctx)
		}()
	}
	wg.Wait()
	if got, _ := td.Registers(ctx); !bytes.Equal(got.Get(eventlog.AlgSHA384, 4), want) {
		t.Errorf("after 50 concurrent extends RTMR3 = %x, want %x", got.Get(eventlog.AlgSHA384, 4), want)
	}
}

// TestTDXStateFile: a state file keeps the registers and the boot across
// TDX values (server processes), as real hardware does.
func TestTDXStateFile(t *testing.T) {
	ctx := context.Background()
	state := filepath.Join(t.TempDir(), "tdx.json")
	a, err := NewTDX(TDXConfig{Seed: 9, StateFile: state})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(a.Name(), state) {
		t.Errorf("Name %q does not say where the registers are kept", a.Name())
	}
	bootA, _ := a.BootID(ctx)
	d := sha384Digest("kept")
	if err := a.Extend(ctx, 4, d); err != nil {
		t.Fatal(err)
	}
	regsA, _ := a.Registers(ctx)

	b, err := NewTDX(TDXConfig{Seed: 9, StateFile: state})
	if err != nil {
		t.Fatal(err)
	}
	bootB, _ := b.BootID(ctx)
	regsB, _ := b.Registers(ctx)
	if bootA != bootB || !regsA.Equal(regsB) {
		t.Errorf("reopened on its state file: boot %q (was %q), registers equal %v", bootB, bootA, regsA.Equal(regsB))
	}

	// Another log is another machine: a new boot, registers from its log.
	c, err := NewTDX(TDXConfig{Seed: 10, StateFile: state})
	if err != nil {
		t.Fatal(err)
	}
	fresh, _ := NewTDX(TDXConfig{Seed: 10})
	bootC, _ := c.BootID(ctx)
	regsC, _ := c.Registers(ctx)
	if bootC == bootA || !regsC.Equal(fresh.rtmrs) {
		t.Errorf("a state file of another log was resumed")
	}

	if err := os.WriteFile(state, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewTDX(TDXConfig{Seed: 10, StateFile: state}); err == nil || !strings.Contains(err.Error(), "remove it") {
		t.Errorf("a corrupt state file: %v, want an error saying what to do", err)
	}

	// A state file of this log without its boot ID: the error names what is missing.
	os.Remove(state)
	if _, err := NewTDX(TDXConfig{Seed: 10, StateFile: state}); err != nil {
		t.Fatal(err)
	}
	saved, err := os.ReadFile(state)
	if err != nil {
		t.Fatal(err)
	}
	var st tdxState
	if err := json.Unmarshal(saved, &st); err != nil {
		t.Fatal(err)
	}
	st.BootID = ""
	if saved, err = json.Marshal(st); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(state, saved, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewTDX(TDXConfig{Seed: 10, StateFile: state}); err == nil || !strings.Contains(err.Error(), "no boot_id") {
		t.Errorf("a state file without a boot ID: %v, want an error naming boot_id", err)
	}
}

func TestTPMExtend(t *testing.T) {
	ctx := context.Background()
	tpm := newTPM(t, TPMConfig{Seed: 2})
	before, err := tpm.Registers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ds := eventlog.Measure([]byte("runtime event"), tpmAlgs)
	if err := tpm.Extend(ctx, 23, ds); err != nil {
		t.Fatal(err)
	}
	after, err := tpm.Registers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		h := d.Alg.New()
		h.Write(before.Get(d.Alg, 23))
		h.Write(d.Value)
		if !bytes.Equal(after.Get(d.Alg, 23), h.Sum(nil)) {
			t.Errorf("%s PCR23 was not extended with the digest", d.Alg)
		}
	}
	if id, err := tpm.BootID(ctx); err != nil || !strings.HasPrefix(id, "simulated-tpm-") {
		t.Errorf("BootID = %q, %v", id, err)
	}
	tpm.Close()
	if err := tpm.Extend(ctx, 23, ds); err == nil {
		t.Error("Extend on a closed simulated TPM succeeded")
	}
}
