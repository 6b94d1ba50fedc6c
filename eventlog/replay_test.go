package eventlog_test

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"fmt"
	"hash"
	"testing"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
)

// TestReplayDRTMPCRs: the DRTM PCRs 17..22 replay from zeros like the
// others. A TPM starts them at all ones, but only a dynamic launch, which
// resets them to zero, and the localities it opens can extend them: a log
// that extends them was written after that reset. (Their all-ones value
// matters for PCRs no event extends, which verify compares; tpm2_eventlog
// replays them from zeros too.) The StartupLocality moves PCR0's start, and
// no other PCR's. Expected values are computed here with crypto/sha1 and
// crypto/sha256 over the data, not with the package's helpers.
func TestReplayDRTMPCRs(t *testing.T) {
	type measured struct {
		pcr  uint32
		data string
	}
	events := []measured{{0, "S-CRTM version"}, {16, "debug"}, {23, "application"}}
	for pcr := uint32(17); pcr <= 22; pcr++ {
		events = append(events, measured{pcr, fmt.Sprintf("DRTM %d", pcr)}, measured{pcr, fmt.Sprintf("DRTM %d, again", pcr)})
	}
	const locality = 4 // an H-CRTM: TPM2_Startup from locality 4
	evs := []testEvent{{0, eventlog.EvNoAction, eventlog.StartupLocalityData(locality)}}
	for _, e := range events {
		evs = append(evs, testEvent{e.pcr, eventlog.EvEventTag, []byte(e.data)})
	}
	log, _ := agileLog(0, sha1sha256, evs...)
	l, err := eventlog.Parse(log)
	if err != nil {
		t.Fatal(err)
	}
	bank, err := eventlog.Replay(l)
	if err != nil {
		t.Fatal(err)
	}

	for _, alg := range []struct {
		alg eventlog.Alg
		new func() hash.Hash
	}{{eventlog.AlgSHA1, sha1.New}, {eventlog.AlgSHA256, sha256.New}} {
		size := alg.new().Size()
		want := map[uint32][]byte{}
		for _, e := range events {
			old, ok := want[e.pcr]
			if !ok {
				old = make([]byte, size)
				if e.pcr == 0 {
					old[size-1] = locality
				}
			}
			h := alg.new()
			h.Write([]byte(e.data))
			digest := h.Sum(nil)
			h = alg.new()
			h.Write(old)
			h.Write(digest)
			want[e.pcr] = h.Sum(nil)
		}
		if got := bank[alg.alg]; len(got) != len(want) {
			t.Errorf("%s: replay extended %d PCRs, want %d: %v", alg.alg, len(got), len(want), bank.Indexes())
		}
		for pcr, v := range want {
			if got := bank.Get(alg.alg, pcr); !bytes.Equal(got, v) {
				t.Errorf("%s PCR%d = %x, want %x", alg.alg, pcr, got, v)
			}
		}
	}

	// One register replayed alone (PCR0 with its locality too) is the
	// same, and alone in its bank.
	for _, pcr := range bank.Indexes() {
		one, err := eventlog.ReplayRegister(l, pcr)
		if err != nil {
			t.Fatal(err)
		}
		if got := one.Indexes(); len(got) != 1 || got[0] != pcr {
			t.Errorf("ReplayRegister(PCR%d) holds PCRs %v", pcr, got)
		}
		for alg := range bank {
			if got, want := one.Get(alg, pcr), bank.Get(alg, pcr); !bytes.Equal(got, want) {
				t.Errorf("ReplayRegister(PCR%d) %s = %x, Replay's %x", pcr, alg, got, want)
			}
		}
	}
}
