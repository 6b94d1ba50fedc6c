package simulator

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog/ima"
	"github.com/ccnp-eventlog/ccnp-eventlog/hwsource"
)

// The go-tpm-tools simulator is one per process: no test here runs in
// parallel, and every test closes the simulated TPM it opens.

// tpmConfigs are the seeds and sizes the TPM tests run, up to thousands of
// events.
var tpmConfigs = []TPMConfig{
	{Seed: 1},
	{Seed: 2, Events: 45},
	{Seed: -9, Events: 400},
	{Seed: 1234, Events: 3000},
}

func newTPM(t *testing.T, cfg TPMConfig) *TPM {
	t.Helper()
	tpm, err := NewTPM(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := tpm.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return tpm
}

// TestTPMReplayGivesPCRs: replaying the log gives the PCRs the simulator
// holds, read through go-tpm; PCRs the log does not extend keep their reset
// values.
func TestTPMReplayGivesPCRs(t *testing.T) {
	for _, cfg := range tpmConfigs {
		t.Run(fmt.Sprintf("seed%d-events%d", cfg.Seed, cfg.Events), func(t *testing.T) {
			start := time.Now()
			tpm := newTPM(t, cfg)
			t.Logf("booted the simulator in %v", time.Since(start))
			events := cfg.Events
			if events == 0 {
				events = DefaultTPMEvents
			}
			if !tpm.Simulated() || tpm.Kind() != eventlog.TPM || !strings.Contains(tpm.Name(), fmt.Sprintf("seed %d, %d events", cfg.Seed, events)) {
				t.Errorf("Simulated() %v, Kind() %v, Name() %q", tpm.Simulated(), tpm.Kind(), tpm.Name())
			}
			raw, err := tpm.ReadLog(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			l := raw.Parsed
			if len(l.Events) != events || l.Header.Index != 0 || fmt.Sprint(l.Algs()) != "[sha1 sha256]" {
				t.Errorf("%d events, header at %d, algorithms %v; want %d, 0, [sha1 sha256]", len(l.Events), l.Header.Index, l.Algs(), events)
			}
			if e := l.Events[0]; e.Type != eventlog.EvNoAction || !bytes.Equal(e.Data, eventlog.StartupLocalityData(0)) {
				t.Errorf("event 1 is %s %q, want the StartupLocality 0 event", e.Type, e.Data)
			}
			replayed, err := eventlog.Replay(l)
			if err != nil {
				t.Fatal(err)
			}
			// PCR 10 is the IMA list's (ima_test.go checks it).
			imaList, err := ima.Parse(imaListOf(t, tpm), ima.Options{})
			if err != nil {
				t.Fatal(err)
			}
			imaPCRs, err := ima.Replay(imaList)
			if err != nil {
				t.Fatal(err)
			}
			for alg, regs := range imaPCRs {
				for idx, v := range regs {
					replayed.Set(alg, idx, v)
				}
			}
			live, err := tpm.Registers(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if len(live) != 2 || len(live.Indexes()) != 24 {
				t.Fatalf("Registers() has %d banks of %d PCRs, want 2 of 24", len(live), len(live.Indexes()))
			}
			extended := 0
			for alg, regs := range live {
				for pcr, v := range regs {
					want := replayed.Get(alg, pcr)
					if want != nil {
						extended++
					} else {
						want = make([]byte, alg.Size())
						if pcr >= 17 && pcr <= 22 {
							want = bytes.Repeat([]byte{0xff}, alg.Size()) // DRTM PCRs start at all ones
						}
					}
					if !bytes.Equal(v, want) {
						t.Errorf("%s PCR%d: live %x, want %x", alg, pcr, v, want)
					}
				}
			}
			if extended != 2*12 {
				t.Errorf("%d PCR values extended by the logs, want 2 banks × PCR0..9, 14 (the TPM log), 10 (the IMA list)", extended)
			}
		})
	}
}

func TestTPMDeterministic(t *testing.T) {
	logOf := func(seed int64) ([]byte, eventlog.Bank) {
		tpm := newTPM(t, TPMConfig{Seed: seed, Events: 80})
		defer tpm.Close()
		live, err := tpm.Registers(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return tpm.log, live
	}
	a, aPCRs := logOf(3)
	b, bPCRs := logOf(3)
	c, _ := logOf(4)
	if !bytes.Equal(a, b) || !aPCRs.Equal(bPCRs) {
		t.Errorf("one seed gave two different machines")
	}
	if bytes.Equal(a, c) {
		t.Errorf("seeds 3 and 4 gave the same log")
	}
}

// TestStartTPM: StartTPM hands out the log before the simulator has
// booted; what needs the simulator waits for the boot (and no longer than
// its context), and then sees the same machine NewTPM boots. Closing during
// the boot waits for it, and lets another simulated TPM start.
func TestStartTPM(t *testing.T) {
	ctx := context.Background()
	want := newTPM(t, TPMConfig{Seed: 3})
	wantPCRs, err := want.Registers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantIMA := imaListOf(t, want)
	want.Close()

	tpm, err := StartTPM(TPMConfig{Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer tpm.Close()
	l, err := tpm.ReadLog(ctx)
	if err != nil || !bytes.Equal(l.Data, want.log) {
		t.Fatalf("the log before the boot: %v, or other bytes than NewTPM's", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := tpm.Booted(cancelled); !errors.Is(err, context.Canceled) {
		t.Errorf("Booted with a cancelled context: %v, want context.Canceled", err)
	}
	if _, err := tpm.Registers(cancelled); !errors.Is(err, context.Canceled) {
		t.Errorf("Registers with a cancelled context: %v, want context.Canceled", err)
	}
	pcrs, err := tpm.Registers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, alg := range tpmAlgs {
		for _, i := range hwsource.PCClientPCRs {
			if !bytes.Equal(pcrs.Get(alg, i), wantPCRs.Get(alg, i)) {
				t.Errorf("%s PCR%d after StartTPM's boot differs from NewTPM's", alg, i)
			}
		}
	}
	if !bytes.Equal(imaListOf(t, tpm), wantIMA) {
		t.Error("the IMA list after StartTPM's boot differs from NewTPM's")
	}

	if _, err := StartTPM(TPMConfig{Seed: 4, Events: 3000}); !errors.Is(err, ErrSimulatorBusy) {
		t.Fatalf("StartTPM while another is open: %v, want ErrSimulatorBusy", err)
	}
	tpm.Close()
	booting, err := StartTPM(TPMConfig{Seed: 4, Events: 3000})
	if err != nil {
		t.Fatal(err)
	}
	if err := booting.Close(); err != nil { // during the boot of 3,000 events
		t.Fatal(err)
	}
	if err := booting.Booted(ctx); err != nil {
		t.Errorf("Booted after Close: %v (the boot had finished)", err)
	}
	if _, err := booting.Registers(ctx); !errors.Is(err, hwsource.ErrNotAvailable) {
		t.Errorf("Registers after Close: %v, want ErrNotAvailable", err)
	}
	newTPM(t, TPMConfig{Seed: 5}).Close()
}

// TestTPMSingleton: the go-tpm-tools simulator's Get blocks while another
// simulator is open; NewTPM must fail at once instead of hanging.
func TestTPMSingleton(t *testing.T) {
	first := newTPM(t, TPMConfig{Seed: 1})
	done := make(chan error)
	go func() {
		second, err := NewTPM(TPMConfig{Seed: 2})
		if err == nil {
			second.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrSimulatorBusy) {
			t.Fatalf("second NewTPM: error = %v, want ErrSimulatorBusy", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("second NewTPM hangs while the first is open")
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	if err := first.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := first.Registers(context.Background()); !errors.Is(err, hwsource.ErrNotAvailable) {
		t.Errorf("Registers after Close: error = %v, want ErrNotAvailable", err)
	}
	second := newTPM(t, TPMConfig{Seed: 2})
	if _, err := second.Registers(context.Background()); err != nil {
		t.Errorf("a simulated TPM opened after the first closed: %v", err)
	}
}

// TestTPMConcurrentUse: Registers and Send from many goroutines at once get
// consistent answers (the simulator itself is not safe for concurrent use;
// run with -race to check the serialization).
func TestTPMConcurrentUse(t *testing.T) {
	tpm := newTPM(t, TPMConfig{Seed: 8})
	want, err := tpm.Registers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 5 {
				var got eventlog.Bank
				var err error
				if g%2 == 0 {
					got, err = tpm.Registers(context.Background())
				} else {
					got, err = hwsource.ReadPCRs(tpm, tpmAlgs, hwsource.PCClientPCRs)
				}
				if err != nil {
					errs <- err
					return
				}
				if !got.Equal(want) {
					errs <- fmt.Errorf("goroutine %d read different PCRs", g)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestTPMConfigErrors(t *testing.T) {
	fixed := minEvents(onTPM)
	for _, tt := range []struct {
		cfg  TPMConfig
		want string
	}{
		{TPMConfig{Events: fixed - 1}, fmt.Sprintf("%d fixed events, %d were asked", fixed, fixed-1)},
		{TPMConfig{Events: MaxTPMEvents + 1}, "outside 1..20000"},
		{TPMConfig{Events: -5}, "outside"},
	} {
		_, err := NewTPM(tt.cfg)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("NewTPM(%+v) error = %v, want one saying %q", tt.cfg, err, tt.want)
		}
	}
	// A failed NewTPM leaves the simulator free.
	newTPM(t, TPMConfig{Seed: 1})
}
