package service_test

import (
	"context"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"github.com/ccnp-eventlog/ccnp-eventlog/hwsource"
	eventlogpb "github.com/ccnp-eventlog/ccnp-eventlog/proto"
	"github.com/ccnp-eventlog/ccnp-eventlog/simulator"
)

func (s *server) verify(t *testing.T, cat eventlogpb.CATEGORY) (*eventlogpb.VerifyEventlogReply, error) {
	t.Helper()
	return s.client.VerifyEventlog(context.Background(), &eventlogpb.VerifyEventlogRequest{EventlogCategory: cat})
}

func TestVerifySimulatedTree(t *testing.T) {
	root := t.TempDir()
	want, err := simulator.WriteHostTree(root, simulator.HostConfig{Seed: 3, TDXLive: true})
	if err != nil {
		t.Fatal(err)
	}
	s := start(t, root, nil)
	r, err := s.verify(t, eventlogpb.CATEGORY_TDX_EVENTLOG)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Verified || r.LiveError != "" || len(r.Registers) != len(want.TDX) {
		t.Fatalf("verified %v, live error %q, %d registers (want %d)", r.Verified, r.LiveError, len(r.Registers), len(want.TDX))
	}
	for _, reg := range r.Registers {
		if reg.Status != eventlogpb.REGISTER_STATUS_MATCH || reg.Live != want.TDX[reg.Register][reg.Algorithm] || reg.Replayed != reg.Live {
			t.Errorf("%s: %v", reg.Register, reg)
		}
	}
	if r.LiveFrom != "tdx_guest sysfs "+filepath.Join(root, hwsource.RTMRDir)+" (Linux 6.16+)" {
		t.Errorf("live from %q", r.LiveFrom)
	}
	// The tree's mrtd:sha384 is shown, not compared: no log has it.
	if mrtd := readTreeFile(t, root, hwsource.MRTDPath); r.Mrtd != hex.EncodeToString(mrtd) {
		t.Errorf("mrtd %q, the tree holds %x", r.Mrtd, mrtd)
	}

	// The tree has no TPM device: its PCRs are not available, and nothing is
	// claimed about them.
	r, err = s.verify(t, eventlogpb.CATEGORY_TPM_EVENTLOG)
	if err != nil {
		t.Fatal(err)
	}
	if r.Verified || r.LiveError == "" || len(r.Registers) == 0 {
		t.Fatalf("TPM without a device: verified %v, live error %q", r.Verified, r.LiveError)
	}
	for _, reg := range r.Registers {
		if reg.Status != eventlogpb.REGISTER_STATUS_NOT_AVAILABLE || reg.Live != "" || reg.Replayed != want.TPM[reg.Register][reg.Algorithm] {
			t.Errorf("%s %s: %v", reg.Register, reg.Algorithm, reg)
		}
	}
}

func TestVerifyNamesTheChangedRegister(t *testing.T) {
	root := t.TempDir()
	if _, err := simulator.WriteHostTree(root, simulator.HostConfig{Seed: 4, TDXLive: true}); err != nil {
		t.Fatal(err)
	}
	area := filepath.Join(root, hwsource.CCELDataPath)
	b, err := os.ReadFile(area)
	if err != nil {
		t.Fatal(err)
	}
	l, err := eventlog.ParseArea(b)
	if err != nil {
		t.Fatal(err)
	}
	// Change one digest byte of the first event in RTMR1 (CC MR index 2).
	var changed *eventlog.Event
	for i := range l.Events {
		if l.Events[i].Index == 2 {
			changed = &l.Events[i]
			break
		}
	}
	changed.Digests[0].Value[0] ^= 0xFF
	if err := os.WriteFile(area, b, 0o644); err != nil {
		t.Fatal(err)
	}
	s := start(t, root, nil)
	r, err := s.verify(t, eventlogpb.CATEGORY_TDX_EVENTLOG)
	if err != nil {
		t.Fatal(err)
	}
	if r.Verified {
		t.Fatal("a changed log verified")
	}
	for _, reg := range r.Registers {
		want := eventlogpb.REGISTER_STATUS_MATCH
		if reg.Register == "RTMR1" {
			want = eventlogpb.REGISTER_STATUS_MISMATCH
		}
		if reg.Status != want {
			t.Errorf("%s: %s, want %s", reg.Register, reg.Status, want)
		}
	}
}

func TestVerifyCorpusSaysNotAvailable(t *testing.T) {
	h := newHostTree(t, "cos-113-tdx", "tpm_rhel8-uefi.bin")
	s := start(t, h.root, nil)
	for _, cat := range []eventlogpb.CATEGORY{eventlogpb.CATEGORY_TDX_EVENTLOG, eventlogpb.CATEGORY_TPM_EVENTLOG} {
		r, err := s.verify(t, cat)
		if err != nil {
			t.Fatal(err)
		}
		if r.Verified || r.LiveError == "" {
			t.Errorf("%s: verified %v, live error %q", cat, r.Verified, r.LiveError)
		}
		for _, reg := range r.Registers {
			if reg.Status != eventlogpb.REGISTER_STATUS_NOT_AVAILABLE {
				t.Errorf("%s %s: %s, want NOT_AVAILABLE", cat, reg.Register, reg.Status)
			}
		}
	}
	_, err := s.client.VerifyEventlog(context.Background(), &eventlogpb.VerifyEventlogRequest{EventlogLevel: eventlogpb.LEVEL_SAAS})
	wantCode(t, err, codes.InvalidArgument, "PAAS")
}
