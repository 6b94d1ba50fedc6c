package service_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/ccnp-eventlog/ccnp-eventlog/hwsource"
	"github.com/ccnp-eventlog/ccnp-eventlog/internal/testvectors"
	"github.com/ccnp-eventlog/ccnp-eventlog/outdir"
	eventlogpb "github.com/ccnp-eventlog/ccnp-eventlog/proto"
	"github.com/ccnp-eventlog/ccnp-eventlog/service"
	"github.com/ccnp-eventlog/ccnp-eventlog/simulator"
	"github.com/ccnp-eventlog/ccnp-eventlog/tdxquote"
)

// TestRecordEventNeedsAnExtendingKernel: on a kernel that cannot extend
// RTMR3 (before 6.16, or a server given only the staged CCEL copies) the
// server says so when it starts and in every RecordEvent reply, naming the
// kernel it takes; the platform log is served as ever.
func TestRecordEventNeedsAnExtendingKernel(t *testing.T) {
	tree68 := t.TempDir()
	if _, err := simulator.WriteHostTree(tree68, simulator.HostConfig{Seed: 5, Kernel: simulator.Kernel68}); err != nil {
		t.Fatal(err)
	}
	td, err := simulator.NewTDX(simulator.TDXConfig{Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		src  hwsource.Source
		// live: the registers can still be read (6.8's TDREPORTs).
		live bool
	}{
		{"simulated 6.8", td.OnKernel(simulator.Kernel68), true},
		{"simulated staged", td.OnKernel(simulator.KernelStaged), false},
		{"host tree without measurements", hwsource.NewTDX(tree68), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, ok := tc.src.(hwsource.Extender); ok {
				t.Fatal("the source is an Extender")
			}
			e := newRuntimeEnv(t)
			var logs bytes.Buffer
			svc, err := service.New(map[eventlogpb.CATEGORY]hwsource.Source{eventlogpb.CATEGORY_TDX_EVENTLOG: tc.src}, service.Options{
				OutputDir: t.TempDir(),
				Limits:    outdir.Limits{MaxBytes: 1 << 20, MaxAge: time.Hour, MinLifetime: time.Minute},
				Logger:    slog.New(slog.NewTextHandler(&logs, nil)),
				Runtime:   service.RuntimeOptions{StateDir: filepath.Join(t.TempDir(), "state"), ProcRoot: e.proc},
			})
			if err != nil {
				t.Fatal(err)
			}
			svc.Close()
			if !strings.Contains(logs.String(), "container-level events off") || !strings.Contains(logs.String(), "Linux 6.16+") {
				t.Errorf("the start-up log does not say the kernel cannot extend:\n%s", logs.String())
			}

			s := e.serve(t, map[eventlogpb.CATEGORY]hwsource.Source{eventlogpb.CATEGORY_TDX_EVENTLOG: tc.src})
			e.as(t, ctrA)
			for range 2 {
				_, err := s.record(t, "an event")
				wantCode(t, err, codes.FailedPrecondition, "Linux 6.16+", "measurements/rtmr3:sha384")
			}
			if _, err := s.get(t, &eventlogpb.GetEventlogRequest{}); err != nil {
				t.Errorf("the platform log: %v", err)
			}
			r, err := s.verify(t, eventlogpb.CATEGORY_TDX_EVENTLOG)
			if err != nil {
				t.Fatal(err)
			}
			if r.Verified != tc.live {
				t.Errorf("verified %v (live from %q, error %q), want %v", r.Verified, r.LiveFrom, r.LiveError, tc.live)
			}
			if tc.live && (!strings.Contains(r.LiveFrom, "TDREPORT") || r.Mrtd == "") {
				t.Errorf("live from %q, mrtd %q: want a TDREPORT, with its MRTD", r.LiveFrom, r.Mrtd)
			}
		})
	}
}

// TestVerifyAgainstQuote: VerifyEventlog compares the node's log with the
// RTMRs of a TD quote or TDREPORT in the request, and names the register
// that differs.
func TestVerifyAgainstQuote(t *testing.T) {
	root := t.TempDir()
	if _, err := simulator.WriteHostTree(root, simulator.HostConfig{Seed: 6, Kernel: simulator.Kernel68}); err != nil {
		t.Fatal(err)
	}
	s := start(t, root, nil)
	quote := readTreeFile(t, root, simulator.QuoteFile)
	report := readTreeFile(t, root, simulator.ReportFile)
	q, err := tdxquote.ParseQuote(quote)
	if err != nil {
		t.Fatal(err)
	}
	ask := func(req *eventlogpb.VerifyEventlogRequest) (*eventlogpb.VerifyEventlogReply, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return s.client.VerifyEventlog(ctx, req)
	}

	for _, tc := range []struct {
		name string
		req  *eventlogpb.VerifyEventlogRequest
		from string
	}{
		{"quote", &eventlogpb.VerifyEventlogRequest{TdQuote: quote}, "the request's TD quote v4 (TD report body 1.0; signature not checked)"},
		{"TDREPORT", &eventlogpb.VerifyEventlogRequest{TdReport: report}, "the request's TDREPORT (version 0; MAC not checked)"},
	} {
		r, err := ask(tc.req)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !r.Verified || r.LiveFrom != tc.from || r.Mrtd != hex.EncodeToString(q.MRTD[:]) {
			t.Errorf("%s: verified %v, live from %q, mrtd %s", tc.name, r.Verified, r.LiveFrom, r.Mrtd)
		}
	}

	// One RTMR changed in the quote: that register, and only it, mismatches.
	changed := bytes.Clone(quote)
	changed[48+328+48+7] ^= 0x01 // RTMR1
	r, err := ask(&eventlogpb.VerifyEventlogRequest{TdQuote: changed})
	if err != nil {
		t.Fatal(err)
	}
	if r.Verified {
		t.Error("a quote with RTMR1 changed verified")
	}
	for _, reg := range r.Registers {
		want := eventlogpb.REGISTER_STATUS_MATCH
		if reg.Register == "RTMR1" {
			want = eventlogpb.REGISTER_STATUS_MISMATCH
		}
		if reg.Status != want {
			t.Errorf("%s: %v, want %v", reg.Register, reg.Status, want)
		}
	}

	for _, tc := range []struct {
		name string
		req  *eventlogpb.VerifyEventlogRequest
		msg  []string
	}{
		{"garbage quote", &eventlogpb.VerifyEventlogRequest{TdQuote: []byte("not a quote")}, []string{"td_quote", "TD quote: at byte 11"}},
		{"SGX quote", &eventlogpb.VerifyEventlogRequest{TdQuote: append(bytes.Clone(quote[:4]), append([]byte{0, 0, 0, 0}, quote[8:]...)...)}, []string{"td_quote", "SGX"}},
		{"short report", &eventlogpb.VerifyEventlogRequest{TdReport: report[:100]}, []string{"td_report", "100 bytes"}},
		{"both", &eventlogpb.VerifyEventlogRequest{TdQuote: quote, TdReport: report}, []string{"give one"}},
		{"the TPM log", &eventlogpb.VerifyEventlogRequest{TdQuote: quote, EventlogCategory: eventlogpb.CATEGORY_TPM_EVENTLOG}, []string{"TDX log"}},
	} {
		_, err := ask(tc.req)
		wantCode(t, err, codes.InvalidArgument, tc.msg...)
	}
}

// TestVerifyCOS113AgainstItsQuote: a real log (GCE COS 113) and the real,
// signed TD quote taken on the same TD verify: every RTMR the log extends
// matches.
func TestVerifyCOS113AgainstItsQuote(t *testing.T) {
	h := newHostTree(t, "cos-113-tdx", "")
	s := start(t, h.root, nil)
	quote := testvectors.ReadModuleFile(t, testvectors.GoTDXGuest, testvectors.COS113Quote)
	r, err := s.client.VerifyEventlog(context.Background(), &eventlogpb.VerifyEventlogRequest{TdQuote: quote})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Verified || len(r.Registers) != 3 || r.Mrtd == "" {
		t.Errorf("verified %v with %d registers, mrtd %q: %v", r.Verified, len(r.Registers), r.Mrtd, r.Registers)
	}
}

func readTreeFile(t *testing.T, root, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
