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
	"github.com/ccnp-eventlog/ccnp-eventlog/hwsource"
	eventlogpb "github.com/ccnp-eventlog/ccnp-eventlog/proto"
	"github.com/ccnp-eventlog/ccnp-eventlog/runtimelog"
	"github.com/ccnp-eventlog/ccnp-eventlog/simulator"
)

// Records under idempotency keys, records and the journal's order with the
// extend, and a journal found damaged at start.

func (s *rserver) recordKeyed(t *testing.T, data, key string) (*eventlogpb.RecordEventReply, error) {
	t.Helper()
	return s.client.RecordEvent(context.Background(), &eventlogpb.RecordEventRequest{Data: []byte(data), IdempotencyKey: key})
}

// sameOutcome: a reply given again is the first one, flagged as such.
func sameOutcome(t *testing.T, again, first *eventlogpb.RecordEventReply) {
	t.Helper()
	if !again.AlreadyRecorded {
		t.Errorf("a key recorded before was not answered as such: %v", again)
	}
	if again.EventNum != first.EventNum || again.LogEventNum != first.LogEventNum || again.Register != first.Register || again.Index != first.Index ||
		again.EventType != first.EventType || fmt.Sprint(again.Digests) != fmt.Sprint(first.Digests) || again.ContainerId != first.ContainerId {
		t.Errorf("the outcome given again is %v, the first was %v", again, first)
	}
}

func TestIdempotencyKeys(t *testing.T) {
	e := newRuntimeEnv(t)
	td := e.newTDX(t)
	s := e.start(t, td)
	e.as(t, ctrA)

	first, err := s.recordKeyed(t, "a1", "key-1")
	if err != nil || first.AlreadyRecorded || first.EventNum != 1 {
		t.Fatalf("first record under a key: %v %v", first, err)
	}
	s.mustRecord(t, "a2") // no key
	for range 3 {
		again, err := s.recordKeyed(t, "a1", "key-1")
		if err != nil {
			t.Fatal(err)
		}
		sameOutcome(t, again, first)
	}
	if got := datas(s.own(t)); fmt.Sprint(got) != "[a1 a2]" {
		t.Errorf("after retries the container's events are %v", got)
	}
	if !bytes.Equal(liveRTMR3(t, td), rtmr3After("a1", "a2")) {
		t.Error("a retry extended RTMR3 again")
	}

	// A key names one event: anything else under it is refused.
	_, err = s.recordKeyed(t, "a1 changed", "key-1")
	wantCode(t, err, codes.AlreadyExists, "event 1", "idempotency key", "2 bytes of data", "10 bytes")
	_, err = s.client.RecordEvent(context.Background(), &eventlogpb.RecordEventRequest{Data: []byte("a1"), EventType: uint32(eventlog.EvAction), IdempotencyKey: "key-1"})
	wantCode(t, err, codes.AlreadyExists, "EV_EVENT_TAG", "EV_ACTION")
	_, err = s.recordKeyed(t, "b1", "key-1") // same length, other bytes
	wantCode(t, err, codes.AlreadyExists, "other bytes")

	// Without a key, as before: every call records.
	s.mustRecord(t, "a2")

	// One key sent in 8 concurrent calls: recorded once, every other
	// call answered with that outcome.
	var wg sync.WaitGroup
	replies := make([]*eventlogpb.RecordEventReply, 8)
	errs := make([]error, len(replies))
	for i := range replies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			replies[i], errs[i] = s.recordKeyed(t, "raced", "raced-key")
		}()
	}
	wg.Wait()
	firsts := 0
	for i, r := range replies {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if !r.AlreadyRecorded {
			firsts++
		}
		if r.EventNum != 4 || r.Digests["sha384"] != sha384Hex("raced") {
			t.Errorf("a concurrent call under one key: %v", r)
		}
	}
	if firsts != 1 {
		t.Errorf("%d of %d concurrent calls under one key recorded it", firsts, len(replies))
	}

	// Keys are the container's own: another container's same key is
	// another record, and tells it nothing of the first.
	e.as(t, ctrB)
	b, err := s.recordKeyed(t, "a1", "key-1")
	if err != nil || b.AlreadyRecorded || b.EventNum != 1 || b.ContainerId != ctrB {
		t.Errorf("container B under container A's key: %v %v", b, err)
	}
	b2, err := s.recordKeyed(t, "something else", "key-1")
	wantCode(t, err, codes.AlreadyExists, "event 1")
	_ = b2

	// Bad keys.
	for _, bad := range []string{strings.Repeat("k", 129), "with space", "tab\tkey", "nul\x00", "é"} {
		_, err := s.recordKeyed(t, "x", bad)
		wantCode(t, err, codes.InvalidArgument, "idempotency_key")
	}
	long := strings.Repeat("k", 128)
	if r, err := s.recordKeyed(t, "long key", long); err != nil || r.AlreadyRecorded {
		t.Errorf("a 128-byte key: %v %v", r, err)
	}
	checkPlatformReplay(t, s)

	// After a restart the keys are still known, from the journal.
	s.stop()
	s = e.start(t, e.newTDX(t))
	e.as(t, ctrA)
	again, err := s.recordKeyed(t, "a1", "key-1")
	if err != nil {
		t.Fatal(err)
	}
	sameOutcome(t, again, first)
	_, err = s.recordKeyed(t, "a1 changed", "key-1")
	wantCode(t, err, codes.AlreadyExists)
	e.as(t, ctrB)
	if r, err := s.recordKeyed(t, "long key", long); err != nil || !r.AlreadyRecorded || r.EventNum != 2 {
		t.Errorf("the 128-byte key after a restart: %v %v", r, err)
	}
	checkPlatformReplay(t, s)
	if !bytes.Equal(liveRTMR3(t, s.tdx), rtmr3After("a1", "a2", "a2", "raced", "a1", "long key")) {
		t.Error("RTMR3 is not the extend of each record once")
	}
}

// TestIdempotencyKeyAfterCrash plays what a crash leaves of a keyed record
// (appended but not extended; appended and extended, never answered), and
// checks that a retry after the restart gets its outcome and never a second
// extend.
func TestIdempotencyKeyAfterCrash(t *testing.T) {
	e := newRuntimeEnv(t)
	s := e.start(t, e.newTDX(t))
	e.as(t, ctrA)
	s.mustRecord(t, "r1")
	s.stop()
	ctx := context.Background()

	for i, extended := range []bool{false, true} {
		data, key := fmt.Sprint("crashed ", i), fmt.Sprint("crash-key-", i)
		appendRecord(t, e, runtimelog.Record{ContainerID: ctrA, Key: key, Event: tdxEvent(data)})
		if extended {
			if err := e.newTDX(t).Extend(ctx, 4, eventlog.Measure([]byte(data), []eventlog.Alg{eventlog.AlgSHA384})); err != nil {
				t.Fatal(err)
			}
		}
		s = e.start(t, e.newTDX(t))
		r, err := s.recordKeyed(t, data, key)
		if err != nil || !r.AlreadyRecorded || r.EventNum != uint32(i+2) || r.Digests["sha384"] != sha384Hex(data) {
			t.Fatalf("retry after a crash (extended: %v): %v %v", extended, r, err)
		}
		_, err = s.recordKeyed(t, "other", key)
		wantCode(t, err, codes.AlreadyExists)
		s.stop()
	}
	s = e.start(t, e.newTDX(t))
	if got := datas(s.own(t)); fmt.Sprint(got) != "[r1 crashed 0 crashed 1]" {
		t.Errorf("the container's events: %v", got)
	}
	if !bytes.Equal(liveRTMR3(t, s.tdx), rtmr3After("r1", "crashed 0", "crashed 1")) {
		t.Error("RTMR3 is not the extend of each record once")
	}
	checkPlatformReplay(t, s)
}

// TestIdempotencyKeyOfPendingRecord: a keyed record whose extend is left
// uncertain is settled by its retry: extended then if the register lacks
// it, never twice; and the retry says it is still pending while the register
// cannot be read.
func TestIdempotencyKeyOfPendingRecord(t *testing.T) {
	e := newRuntimeEnv(t)
	td := &faultyTDX{TDX: e.newTDX(t)}
	s := e.start(t, td)
	e.as(t, ctrA)
	s.mustRecord(t, "p0")

	// The extend did not happen, and the register cannot tell.
	td.set(func(f *faultyTDX) { f.failBefore, f.blind = true, true })
	_, err := s.recordKeyed(t, "p1", "pending-1")
	wantCode(t, err, codes.Unavailable, "do not record it again")
	_, err = s.recordKeyed(t, "p1", "pending-1")
	wantCode(t, err, codes.Unavailable, "still pending", "retry with the same key", "record 2")
	// Its key is taken even while it is pending.
	_, err = s.recordKeyed(t, "not p1", "pending-1")
	wantCode(t, err, codes.AlreadyExists)
	td.set(func(f *faultyTDX) { f.blind = false })
	r, err := s.recordKeyed(t, "p1", "pending-1")
	if err != nil || !r.AlreadyRecorded || r.EventNum != 2 {
		t.Fatalf("the retry once the register is back: %v %v", r, err)
	}
	if !bytes.Equal(liveRTMR3(t, td), rtmr3After("p0", "p1")) {
		t.Fatal("RTMR3 does not hold p0 and p1 once each")
	}

	// The extend happened, though it failed and the register could not
	// be read: the retry finds it there and extends nothing.
	td.set(func(f *faultyTDX) { f.failAfter, f.blind = true, true })
	_, err = s.recordKeyed(t, "p2", "pending-2")
	wantCode(t, err, codes.Unavailable, "do not record it again")
	td.set(func(f *faultyTDX) { f.blind = false })
	r, err = s.recordKeyed(t, "p2", "pending-2")
	if err != nil || !r.AlreadyRecorded || r.EventNum != 3 {
		t.Fatalf("the retry of an extend that happened: %v %v", r, err)
	}

	// An extend known not to have happened takes the record back, and
	// its key with it: the retry records it afresh.
	td.set(func(f *faultyTDX) { f.failBefore = true })
	_, err = s.recordKeyed(t, "p3", "pending-3")
	wantCode(t, err, codes.Unavailable, "not recorded")
	r, err = s.recordKeyed(t, "p3", "pending-3")
	if err != nil || r.AlreadyRecorded || r.EventNum != 4 {
		t.Fatalf("the retry of a record taken back: %v %v", r, err)
	}
	if got := datas(s.own(t)); fmt.Sprint(got) != "[p0 p1 p2 p3]" {
		t.Errorf("the container's events: %v", got)
	}
	if !bytes.Equal(liveRTMR3(t, td), rtmr3After("p0", "p1", "p2", "p3")) {
		t.Error("RTMR3 is not the extend of each record once")
	}
	checkPlatformReplay(t, s)
}

// TestIdempotencyKeyAcrossCategories: a key names one event in one
// category; the other category refuses it.
func TestIdempotencyKeyAcrossCategories(t *testing.T) {
	e := newRuntimeEnv(t)
	tpm, err := simulator.NewTPM(simulator.TPMConfig{Seed: 6})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tpm.Close() })
	s := e.serve(t, map[eventlogpb.CATEGORY]hwsource.Source{eventlogpb.CATEGORY_TDX_EVENTLOG: e.newTDX(t), eventlogpb.CATEGORY_TPM_EVENTLOG: tpm})
	e.as(t, ctrA)
	ctx := context.Background()
	req := func(cat eventlogpb.CATEGORY, key string) (*eventlogpb.RecordEventReply, error) {
		return s.client.RecordEvent(ctx, &eventlogpb.RecordEventRequest{EventlogCategory: cat, Data: []byte("same data"), IdempotencyKey: key})
	}
	if _, err := req(eventlogpb.CATEGORY_TDX_EVENTLOG, "k"); err != nil {
		t.Fatal(err)
	}
	_, err = req(eventlogpb.CATEGORY_TPM_EVENTLOG, "k")
	wantCode(t, err, codes.AlreadyExists, "TDX_EVENTLOG event 1")
	if _, err := req(eventlogpb.CATEGORY_TPM_EVENTLOG, "k2"); err != nil {
		t.Fatal(err)
	}
	_, err = req(eventlogpb.CATEGORY_TDX_EVENTLOG, "k2")
	wantCode(t, err, codes.AlreadyExists, "TPM_EVENTLOG event 1")

	// Racing: one key sent to both categories at once records in one.
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, cat := range []eventlogpb.CATEGORY{eventlogpb.CATEGORY_TDX_EVENTLOG, eventlogpb.CATEGORY_TPM_EVENTLOG} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = req(cat, "raced")
		}()
	}
	wg.Wait()
	if (errs[0] == nil) == (errs[1] == nil) {
		t.Errorf("one key sent to both categories at once: %v, %v; want exactly one recorded", errs[0], errs[1])
	}
}

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
	if _, err := s.recordKeyed(t, "ordered keyed", "ordered"); err != nil {
		t.Fatal(err)
	}
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
					// The key went with the record: a retry records it.
					r, err := s.recordKeyed(t, "r3", "k3")
					if err != nil || r.AlreadyRecorded || r.EventNum != 3 {
						t.Fatalf("recording after the repair: %v %v", r, err)
					}
					checkPlatformReplay(t, s)
					return
				}
				_, err = s.recordKeyed(t, "r3", "k3")
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

// TestDamagedJournalRegisterUnreadable: a damaged last record found while
// the register cannot be read is neither cut nor reported as lost: the file
// is kept, recording is off and says why, and a later start with the
// register back settles it.
func TestDamagedJournalRegisterUnreadable(t *testing.T) {
	e := newRuntimeEnv(t)
	s := e.start(t, e.newTDX(t))
	e.as(t, ctrA)
	s.mustRecord(t, "r1")
	s.stop()
	start := appendRecord(t, e, runtimelog.Record{ContainerID: ctrA, Event: tdxEvent("r2")})
	journal := filepath.Join(e.state, "runtime-tdx.log")
	b, _ := os.ReadFile(journal)
	damaged := b[:len(b)-5]
	os.WriteFile(journal, damaged, 0o600)

	td := &faultyTDX{TDX: e.newTDX(t), blind: true}
	s = e.start(t, td)
	_, err := s.record(t, "r3")
	wantCode(t, err, codes.FailedPrecondition, "damaged record 2", "cannot be read", "kept as it is")
	if got := datas(s.own(t)); fmt.Sprint(got) != "[r1]" {
		t.Errorf("the container's events: %v", got)
	}
	if b, _ := os.ReadFile(journal); !bytes.Equal(b, damaged) {
		t.Error("the journal was changed")
	}
	s.stop()

	s = e.start(t, e.newTDX(t))
	if r, err := s.record(t, "r2 again"); err != nil || r.EventNum != 2 {
		t.Fatalf("after the register came back: %v %v", r, err)
	}
	if fi, _ := os.Stat(journal); fi.Size() <= start {
		t.Error("nothing was appended")
	}
	checkPlatformReplay(t, s)
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
	r, err := s.recordKeyed(t, "after the upgrade", "upgrade")
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
