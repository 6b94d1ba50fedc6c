package service_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	eventlogpb "github.com/ccnp-eventlog/ccnp-eventlog/proto"
	"github.com/ccnp-eventlog/ccnp-eventlog/runtimelog"
	"github.com/ccnp-eventlog/ccnp-eventlog/simulator"
)

// Records and the journal's order with the extend, and a journal found
// damaged at start.

// TestJournalBeforeExtend fails if a record reaches the register before it
// is in the journal on disk: the source checks the journal at each extend.
func TestJournalBeforeExtend(t *testing.T) {
	e := newRuntimeEnv(t)
	td := &journalCheckingTDX{TDX: e.newTDX(t), journal: filepath.Join(e.state, "runtime-tdx.log")}
	s := e.start(t, td)
	e.as(t, ctrA)
	for i := range 3 {
		s.mustRecord(t, fmt.Sprint("ordered ", i))
	}
	s.mustRecord(t, "ordered 3")
	td.mu.Lock()
	defer td.mu.Unlock()
	if td.extends != 4 {
		t.Errorf("%d extends, want 4", td.extends)
	}
	for _, err := range td.errs {
		t.Error(err)
	}
}

// journalCheckingTDX is the simulated TD checking, at each extend, that the
// journal on disk already holds the record being extended, as its last.
type journalCheckingTDX struct {
	*simulator.TDX
	journal string
	mu      sync.Mutex
	extends int
	errs    []error
}

func (j *journalCheckingTDX) Extend(ctx context.Context, index uint32, digests []eventlog.Digest) error {
	j.mu.Lock()
	j.extends++
	_, _, records, damaged, err := runtimelog.ReadFile(j.journal)
	switch {
	case err != nil:
		j.errs = append(j.errs, fmt.Errorf("extend %d: reading the journal: %v", j.extends, err))
	case len(records) != j.extends || damaged != 0:
		j.errs = append(j.errs, fmt.Errorf("extend %d: the journal on disk holds %d records (and %d damaged bytes): the record is extended before it is appended", j.extends, len(records), damaged))
	default:
		for _, d := range digests {
			if !bytes.Contains(records[len(records)-1].Event, d.Value) {
				j.errs = append(j.errs, fmt.Errorf("extend %d: the journal's last record is not the one extended", j.extends))
			}
		}
	}
	j.mu.Unlock()
	return j.TDX.Extend(ctx, index, digests)
}

// tdxEvent is a runtime event as the server makes it for TDX.
func tdxEvent(data string) []byte {
	return eventlog.AppendEvent2(nil, 4, eventlog.EvEventTag, eventlog.Measure([]byte(data), []eventlog.Alg{eventlog.AlgSHA384}), []byte(data))
}

// appendRecord appends r to the TDX journal as a server would, with the
// server down, and returns the journal's size before it.
func appendRecord(t *testing.T, e *runtimeEnv, r runtimelog.Record) int64 {
	t.Helper()
	boot, err := e.newTDX(t).BootID(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	d, err := runtimelog.OpenDir(e.state)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	j, _, err := d.Open(eventlog.TDX, boot)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	before := j.Size()
	if err := j.Append(&r); err != nil {
		t.Fatal(err)
	}
	return before
}

// journalDamages are the shapes of a damaged last record, as a crash during
// its append leaves it or corruption of a complete one can: every shape the
// journal's reader takes for a damaged last record (runtimelog's tests have
// the same list). s is where the last record starts.
var journalDamages = []struct {
	name string
	tear func(b []byte, s int) []byte
}{
	{"half the entry header", func(b []byte, s int) []byte { return b[:s+3] }},
	{"half the payload", func(b []byte, s int) []byte { return b[:s+(len(b)-s)/2] }},
	{"all but one byte", func(b []byte, s int) []byte { return b[:len(b)-1] }},
	{"payload zeros", func(b []byte, s int) []byte { c := bytes.Clone(b); clear(c[s+8:]); return c }},
	{"whole entry zeros", func(b []byte, s int) []byte { c := bytes.Clone(b); clear(c[s:]); return c }},
	{"last byte flipped", func(b []byte, s int) []byte { c := bytes.Clone(b); c[len(c)-1] ^= 0xff; return c }},
	{"valid checksum over a malformed payload", func(b []byte, s int) []byte {
		c := bytes.Clone(b)
		binary.LittleEndian.PutUint16(c[s+16:], 0xFFFF) // the container ID's length
		binary.LittleEndian.PutUint32(c[s+4:], crc32.Checksum(c[s+8:], crc32.MakeTable(crc32.Castagnoli)))
		return c
	}},
}

// TestDamagedJournalAtStart damages the journal's last record in each
// shape, with the register holding it or not, and checks what a starting
// server does: cut it off and say so when the register shows it was never
// extended; otherwise DATA_LOSS naming it, the file kept, recording off,
// what can be served still served.
func TestDamagedJournalAtStart(t *testing.T) {
	for _, dmg := range journalDamages {
		for _, extended := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/extended=%v", dmg.name, extended), func(t *testing.T) {
				e := newRuntimeEnv(t)
				var logs syncBuffer
				e.logs = &logs
				s := e.start(t, e.newTDX(t))
				e.as(t, ctrA)
				s.mustRecord(t, "r1")
				s.mustRecord(t, "r2")
				s.stop()
				start := appendRecord(t, e, runtimelog.Record{ContainerID: ctrA, Key: "k3", Event: tdxEvent("r3")})
				if extended {
					if err := e.newTDX(t).Extend(context.Background(), 4, eventlog.Measure([]byte("r3"), []eventlog.Alg{eventlog.AlgSHA384})); err != nil {
						t.Fatal(err)
					}
				}
				journal := filepath.Join(e.state, "runtime-tdx.log")
				b, err := os.ReadFile(journal)
				if err != nil {
					t.Fatal(err)
				}
				damaged := dmg.tear(b, int(start))
				if err := os.WriteFile(journal, damaged, 0o600); err != nil {
					t.Fatal(err)
				}

				s = e.start(t, e.newTDX(t))
				if got := datas(s.own(t)); fmt.Sprint(got) != "[r1 r2]" {
					t.Errorf("the container's events: %v", got)
				}
				if !extended {
					if !strings.Contains(logs.String(), "cut off a last record cut short by a crash") || !strings.Contains(logs.String(), "record=3") {
						t.Errorf("the server's log does not say record 3 was cut off:\n%s", logs.String())
					}
					if fi, _ := os.Stat(journal); fi.Size() != start {
						t.Errorf("the journal is %d bytes, want %d (cut after record 2)", fi.Size(), start)
					}
					r, err := s.record(t, "r3")
					if err != nil || r.EventNum != 3 {
						t.Fatalf("recording after the repair: %v %v", r, err)
					}
					checkPlatformReplay(t, s)
					return
				}
				_, err = s.record(t, "r3")
				wantCode(t, err, codes.DataLoss, "record 3", journal, fmt.Sprint("byte ", start), "kept as it is")
				_, err = s.record(t, "r4")
				wantCode(t, err, codes.DataLoss, "record 3")
				if strings.Contains(logs.String(), "cut off") {
					t.Errorf("the server claims it cut the record off:\n%s", logs.String())
				}
				if b, _ := os.ReadFile(journal); !bytes.Equal(b, damaged) {
					t.Error("the damaged journal was changed")
				}
				// The platform log is served: the boot log and the intact
				// records. It lacks the damaged one, which the register
				// holds, and VerifyEventlog says so.
				l := s.platform(t)
				if got := datas(l); len(got) < 2 || fmt.Sprint(got[len(got)-2:]) != "[r1 r2]" {
					t.Errorf("the platform log ends in %v", got)
				}
				v, err := s.verify(t, eventlogpb.CATEGORY_TDX_EVENTLOG)
				if err != nil || v.Verified {
					t.Errorf("VerifyEventlog of a log without a record the register holds: %v %v", v, err)
				}
			})
		}
	}
}

// TestVersion1JournalAtStart: a server upgraded during a boot finds the
// journal the previous version wrote (runtimelog/testdata, made by that
// version's code, with this TD's boot ID put in), reads it, rewrites it in
// the current format, and goes on recording.
func TestVersion1JournalAtStart(t *testing.T) {
	e := newRuntimeEnv(t)
	td := e.newTDX(t)
	boot, err := td.BootID(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	v1, err := os.ReadFile("../runtimelog/testdata/v1-3-records.log")
	if err != nil {
		t.Fatal(err)
	}
	// Its header, for this boot: magic, version, kind, boot ID, checksum.
	oldID := int(binary.LittleEndian.Uint16(v1[11:]))
	hdr := append(bytes.Clone(v1[:11]), 0, 0)
	binary.LittleEndian.PutUint16(hdr[11:], uint16(len(boot)))
	hdr = append(hdr, boot...)
	hdr = binary.LittleEndian.AppendUint32(hdr, crc32.Checksum(hdr, crc32.MakeTable(crc32.Castagnoli)))
	os.MkdirAll(e.state, 0o700)
	if err := os.WriteFile(filepath.Join(e.state, "runtime-tdx.log"), append(hdr, v1[13+oldID+4:]...), 0o600); err != nil {
		t.Fatal(err)
	}
	// The register holds its three records, as the old server left it.
	var data []string
	for i := range 3 {
		data = append(data, fmt.Sprint("event ", i))
		if err := td.Extend(context.Background(), 4, eventlog.Measure([]byte(data[i]), []eventlog.Alg{eventlog.AlgSHA384})); err != nil {
			t.Fatal(err)
		}
	}
	var logs syncBuffer
	e.logs = &logs
	s := e.start(t, td)
	e.as(t, ctrA) // the container of records 1 and 3
	if got := datas(s.own(t)); fmt.Sprint(got) != "[event 0 event 2]" {
		t.Errorf("the container's events from the version 1 journal: %v", got)
	}
	if !strings.Contains(logs.String(), "from_version=1") {
		t.Errorf("the server does not log the migration:\n%s", logs.String())
	}
	r, err := s.record(t, "after the upgrade")
	if err != nil || r.EventNum != 3 {
		t.Fatalf("recording after the upgrade: %v %v", r, err)
	}
	checkPlatformReplay(t, s)
	if !bytes.Equal(liveRTMR3(t, td), rtmr3After(append(data, "after the upgrade")...)) {
		t.Error("RTMR3 is not the extend of each record once")
	}
}

// syncBuffer is a log destination safe for a server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
