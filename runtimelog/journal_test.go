package runtimelog_test

import (
	"bytes"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"github.com/ccnp-eventlog/ccnp-eventlog/runtimelog"
)

const (
	boot1 = "fe8e5a4f-ae04-4286-b3fd-5ca2e8393898"
	boot2 = "0c1d2e3f-4a5b-4c6d-8e7f-901a2b3c4d5e"
	ctrA  = "8f3c2a41d6e07b95c1a2f4e6d8b0c3a5e7f9d1b3c5a7e9f1d3b5c7a9e1f3d5b7"
	ctrB  = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
)

// rtmr3Event is a runtime record as the server makes it for TDX.
func rtmr3Event(data string) []byte {
	return eventlog.AppendEvent2(nil, 4, eventlog.EvEventTag, eventlog.Measure([]byte(data), []eventlog.Alg{eventlog.AlgSHA384}), []byte(data))
}

func openDir(t *testing.T) (*runtimelog.Dir, string) {
	t.Helper()
	path := t.TempDir()
	d, err := runtimelog.OpenDir(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d, path
}

func open(t *testing.T, d *runtimelog.Dir, boot string) (*runtimelog.Journal, runtimelog.Opened) {
	t.Helper()
	j, op, err := d.Open(eventlog.TDX, boot)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return j, op
}

func appendN(t *testing.T, j *runtimelog.Journal, n int) []runtimelog.Record {
	t.Helper()
	var rs []runtimelog.Record
	var last uint64
	for i := range n {
		r := runtimelog.Record{ContainerID: []string{ctrA, ctrB}[i%2], UID: uint32(1000 + i), Time: time.Unix(1700000000, int64(i)).UTC(), Event: rtmr3Event(fmt.Sprint("event ", i))}
		if i%3 != 2 { // most records carry a key, some none
			r.Key = fmt.Sprintf("key-%d-%x", i, r.Time.UnixNano())
		}
		if err := j.Append(&r); err != nil {
			t.Fatal(err)
		}
		if last != 0 && r.Seq != last+1 {
			t.Fatalf("record after %d got sequence number %d", last, r.Seq)
		}
		last = r.Seq
		rs = append(rs, r)
	}
	return rs
}

func sameRecords(t *testing.T, got, want []runtimelog.Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d records, want %d", len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.Seq != w.Seq || g.ContainerID != w.ContainerID || g.UID != w.UID || !g.Time.Equal(w.Time) || g.Key != w.Key || !bytes.Equal(g.Event, w.Event) {
			t.Errorf("record %d: %+v, want %+v", i+1, g, w)
		}
	}
}

func TestJournalSurvivesReopen(t *testing.T) {
	d, _ := openDir(t)
	j, op := open(t, d, boot1)
	if len(op.Records) != 0 || op.SetAside != "" {
		t.Fatalf("a new journal: %+v", op)
	}
	want := appendN(t, j, 5)
	j.Close()

	j, op = open(t, d, boot1)
	sameRecords(t, op.Records, want)
	if op.Damaged != nil || op.MigratedFrom != 0 {
		t.Errorf("a clean journal of the current version: %+v", op)
	}
	// Appending goes on with the next number.
	more := appendN(t, j, 1)
	_ = more
	j.Close()
	_, op = open(t, d, boot1)
	if n := len(op.Records); n != 6 || op.Records[5].Seq != 6 {
		t.Errorf("after reopening and appending: %d records", n)
	}
}

func TestUndoLast(t *testing.T) {
	d, _ := openDir(t)
	j, _ := open(t, d, boot1)
	want := appendN(t, j, 3)
	size := j.Size()
	r := runtimelog.Record{ContainerID: ctrA, Event: rtmr3Event("undone")}
	if err := j.Append(&r); err != nil {
		t.Fatal(err)
	}
	if err := j.UndoLast(); err != nil {
		t.Fatal(err)
	}
	if j.Size() != size {
		t.Errorf("size after undo %d, want %d", j.Size(), size)
	}
	if err := j.UndoLast(); err == nil {
		t.Error("a second undo must fail: only the last append can be undone")
	}
	// The next record takes the undone one's number.
	r = runtimelog.Record{ContainerID: ctrB, Event: rtmr3Event("after undo")}
	if err := j.Append(&r); err != nil || r.Seq != 4 {
		t.Fatalf("append after undo: seq %d, %v", r.Seq, err)
	}
	j.Close()
	_, op := open(t, d, boot1)
	sameRecords(t, op.Records, append(want, r))
}

// The shapes a crash during an append leaves at the end of the journal, and
// that corruption of a complete last record can take too: every shape
// parseEntries takes for a damaged last record. s is where the last record
// starts.
var damages = []struct {
	name string
	tear func(b []byte, s int) []byte
}{
	{"half the entry header", func(b []byte, s int) []byte { return b[:s+3] }},
	{"half the payload", func(b []byte, s int) []byte { return b[:s+(len(b)-s)/2] }},
	{"all but one byte", func(b []byte, s int) []byte { return b[:len(b)-1] }},
	{"payload never written (zeros)", func(b []byte, s int) []byte {
		c := bytes.Clone(b)
		clear(c[s+8:])
		return c
	}},
	{"whole entry zeros", func(b []byte, s int) []byte {
		c := bytes.Clone(b)
		clear(c[s:])
		return c
	}},
	{"last byte flipped", func(b []byte, s int) []byte {
		c := bytes.Clone(b)
		c[len(c)-1] ^= 0xff
		return c
	}},
	{"valid checksum over a malformed payload", func(b []byte, s int) []byte {
		c := bytes.Clone(b)
		// The payload's container ID length (after the u64 sequence)
		// made to overrun the payload, the checksum made to match.
		binary.LittleEndian.PutUint16(c[s+8+8:], 0xFFFF)
		binary.LittleEndian.PutUint32(c[s+4:], crc32.Checksum(c[s+8:], crc32.MakeTable(crc32.Castagnoli)))
		return c
	}},
}

// testBoot is a boot log whose RTMR3 no boot event extends.
var testBoot = func() []byte {
	b := eventlog.AppendSpecIDHeader(nil, 1, []eventlog.Alg{eventlog.AlgSHA384})
	return eventlog.AppendEvent2(b, 1, eventlog.EvSeparator, eventlog.Measure([]byte{0, 0, 0, 0}, []eventlog.Alg{eventlog.AlgSHA384}), []byte{0, 0, 0, 0})
}()

// withEvents is the boot log followed by the events of records.
func withEvents(t *testing.T, records ...runtimelog.Record) *eventlog.Log {
	t.Helper()
	b := bytes.Clone(testBoot)
	for _, r := range records {
		b = append(b, r.Event...)
	}
	l, err := eventlog.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// registerAfter is the live register bank holding the replay of records.
func registerAfter(t *testing.T, records ...runtimelog.Record) eventlog.Bank {
	t.Helper()
	bank, err := eventlog.Replay(withEvents(t, records...))
	if err != nil {
		t.Fatal(err)
	}
	if bank.Get(eventlog.AlgSHA384, 4) == nil {
		bank.Set(eventlog.AlgSHA384, 4, make([]byte, 48))
	}
	return bank
}

// TestDamagedLastRecord damages the last record in each shape parseEntries
// takes for a torn append, and checks that Open keeps the file as it is, and
// that RepairTail cuts the record off only when the register shows it was
// never extended.
func TestDamagedLastRecord(t *testing.T) {
	for _, tc := range damages {
		for _, outcome := range []string{"never extended", "extended", "the one before not extended either"} {
			t.Run(tc.name+"/"+outcome, func(t *testing.T) {
				d, _ := openDir(t)
				j, _ := open(t, d, boot1)
				want := appendN(t, j, 3)
				good := j.Size()
				last := runtimelog.Record{ContainerID: ctrA, Key: "the-last", Event: rtmr3Event("damaged")}
				if err := j.Append(&last); err != nil {
					t.Fatal(err)
				}
				path := j.Path()
				j.Close()
				b, _ := os.ReadFile(path)
				damaged := tc.tear(b, int(good))
				if err := os.WriteFile(path, damaged, 0o600); err != nil {
					t.Fatal(err)
				}

				// ReadFile sees the same, and repairs nothing.
				kind, boot, records, damagedBytes, err := runtimelog.ReadFile(path)
				if err != nil || kind != eventlog.TDX || boot != boot1 || damagedBytes != int64(len(damaged))-good {
					t.Fatalf("ReadFile: %v %q %d damaged bytes, %v", kind, boot, damagedBytes, err)
				}
				sameRecords(t, records, want)

				j, op := open(t, d, boot1)
				sameRecords(t, op.Records, want)
				dmg := op.Damaged
				if dmg == nil || dmg.Record != 4 || dmg.Offset != good || dmg.Bytes != int64(len(damaged))-good || dmg.Reason == "" || j.Damaged() != dmg {
					t.Fatalf("Open reported the damaged record as %+v", dmg)
				}
				unchanged := func() {
					t.Helper()
					if b, _ := os.ReadFile(path); !bytes.Equal(b, damaged) {
						t.Fatalf("the journal was changed (%d bytes, %d before)", len(b), len(damaged))
					}
				}
				unchanged()
				if err := j.Append(&runtimelog.Record{ContainerID: ctrB, Event: rtmr3Event("too soon")}); err == nil || !strings.Contains(err.Error(), "damaged record (4)") {
					t.Fatalf("append before the damage is settled: %v", err)
				}
				unchanged()

				var live eventlog.Bank
				switch outcome {
				case "never extended":
					live = registerAfter(t, want...)
				case "extended":
					live = registerAfter(t, append(want, last)...)
				default:
					live = registerAfter(t, want[:2]...)
				}
				err = j.RepairTail(withEvents(t, want...), 4, 1, live)
				if outcome != "never extended" {
					var ce *runtimelog.CorruptError
					if !errors.As(err, &ce) || ce.Record != 4 || ce.Offset != good || ce.Path != path ||
						!strings.Contains(err.Error(), "record 4") || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), fmt.Sprint("byte ", good)) {
						t.Fatalf("RepairTail with the register %s: %v; want a CorruptError naming record 4 at byte %d of %s", outcome, err, good, path)
					}
					unchanged()
					if err := j.Append(&runtimelog.Record{ContainerID: ctrB, Event: rtmr3Event("after")}); err == nil {
						t.Fatal("appended after a damaged record the register may hold")
					}
					unchanged()
					return
				}
				if err != nil {
					t.Fatalf("RepairTail: %v", err)
				}
				if fi, _ := os.Stat(path); fi.Size() != good {
					t.Errorf("the file is %d bytes after RepairTail, want %d (cut after the last intact record)", fi.Size(), good)
				}
				if j.Damaged() != nil {
					t.Error("still damaged after RepairTail")
				}
				r := runtimelog.Record{ContainerID: ctrB, Event: rtmr3Event("next")}
				if err := j.Append(&r); err != nil || r.Seq != 4 {
					t.Errorf("append after repair: seq %d, %v", r.Seq, err)
				}
				j.Close()
				_, op = open(t, d, boot1)
				sameRecords(t, op.Records, append(want, r))
			})
		}
	}
}

// TestVersion1Journal opens a journal the previous version of this package
// wrote (testdata, made with its code): its records are read, and it is
// rewritten in the current version at once.
func TestVersion1Journal(t *testing.T) {
	v1, err := os.ReadFile("testdata/v1-3-records.log")
	if err != nil {
		t.Fatal(err)
	}
	want := make([]runtimelog.Record, 3)
	for i := range want {
		want[i] = runtimelog.Record{Seq: uint64(i + 1), ContainerID: []string{ctrA, ctrB}[i%2], UID: uint32(1000 + i), Time: time.Unix(1700000000, int64(i)).UTC(), Event: rtmr3Event(fmt.Sprint("event ", i))}
	}
	d, _ := openDir(t)
	path := d.JournalPath(eventlog.TDX)
	os.WriteFile(path, v1, 0o600)
	_, _, records, damaged, err := runtimelog.ReadFile(path)
	if err != nil || damaged != 0 {
		t.Fatalf("ReadFile of a version 1 journal: %v, %d damaged bytes", err, damaged)
	}
	sameRecords(t, records, want)

	j, op := open(t, d, boot1)
	sameRecords(t, op.Records, want)
	if op.MigratedFrom != 1 || op.Damaged != nil {
		t.Fatalf("Open of a version 1 journal: %+v", op)
	}
	b, _ := os.ReadFile(path)
	if v := binary.LittleEndian.Uint16(b[8:]); v != 2 {
		t.Errorf("the journal is in version %d after Open, want 2", v)
	}
	r := runtimelog.Record{ContainerID: ctrA, Key: "after-upgrade", Event: rtmr3Event("v2")}
	if err := j.Append(&r); err != nil || r.Seq != 4 {
		t.Fatalf("append after migrating: seq %d, %v", r.Seq, err)
	}
	j.Close()
	_, op = open(t, d, boot1)
	sameRecords(t, op.Records, append(want, r))
	if op.MigratedFrom != 0 {
		t.Error("migrated twice")
	}
}

// TestVersion1JournalDamaged: a version 1 journal whose last record a crash
// cut short (testdata, made with that version's code) is kept as it is until
// the register settles it, then cut and migrated in one atomic rewrite.
func TestVersion1JournalDamaged(t *testing.T) {
	v1, err := os.ReadFile("testdata/v1-3-records-4th-torn.log")
	if err != nil {
		t.Fatal(err)
	}
	var want []runtimelog.Record
	for i := range 4 {
		want = append(want, runtimelog.Record{Seq: uint64(i + 1), ContainerID: []string{ctrA, ctrB}[i%2], UID: uint32(1000 + i), Time: time.Unix(1700000000, int64(i)).UTC(), Event: rtmr3Event(fmt.Sprint("event ", i))})
	}
	for _, extended := range []bool{true, false} {
		t.Run(fmt.Sprint("extended=", extended), func(t *testing.T) {
			d, _ := openDir(t)
			path := d.JournalPath(eventlog.TDX)
			os.WriteFile(path, v1, 0o600)
			j, op := open(t, d, boot1)
			sameRecords(t, op.Records, want[:3])
			if op.Damaged == nil || op.Damaged.Record != 4 || op.MigratedFrom != 0 {
				t.Fatalf("Open: %+v", op)
			}
			if b, _ := os.ReadFile(path); !bytes.Equal(b, v1) {
				t.Fatal("Open changed a damaged version 1 journal")
			}
			live := registerAfter(t, want[:3]...)
			if extended {
				live = registerAfter(t, want...)
			}
			err := j.RepairTail(withEvents(t, want[:3]...), 4, 1, live)
			if extended {
				if err == nil || !strings.Contains(err.Error(), "record 4") {
					t.Fatalf("RepairTail: %v", err)
				}
				if b, _ := os.ReadFile(path); !bytes.Equal(b, v1) {
					t.Fatal("the evidence was changed")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			b, _ := os.ReadFile(path)
			if v := binary.LittleEndian.Uint16(b[8:]); v != 2 {
				t.Errorf("version %d after the repair, want 2", v)
			}
			r := runtimelog.Record{ContainerID: ctrA, Key: "k", Event: rtmr3Event("next")}
			if err := j.Append(&r); err != nil || r.Seq != 4 {
				t.Fatalf("append after repair: seq %d, %v", r.Seq, err)
			}
			j.Close()
			_, op = open(t, d, boot1)
			sameRecords(t, op.Records, append(want[:3:3], r))
		})
	}
}

// TestCorruptionIsReported: damage before the last record is not a torn
// append; Open refuses the journal and says where.
func TestCorruptionIsReported(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(b []byte, second int) []byte
		want   string
	}{
		{"flipped byte in record 2", func(b []byte, s int) []byte { b[s+20] ^= 1; return b }, "record 2: checksum mismatch"},
		{"header", func(b []byte, s int) []byte { b[2] = 'X'; return b }, "no runtime log header"},
		{"header boot ID", func(b []byte, s int) []byte { b[20] ^= 1; return b }, "header checksum"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, _ := openDir(t)
			j, _ := open(t, d, boot1)
			appendN(t, j, 1)
			second := int(j.Size())
			appendN(t, j, 3)
			path := j.Path()
			j.Close()
			b, _ := os.ReadFile(path)
			os.WriteFile(path, tc.damage(b, second), 0o600)
			_, _, err := d.Open(eventlog.TDX, boot1)
			var ce *runtimelog.CorruptError
			if !errors.As(err, &ce) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
				t.Fatalf("Open: %v, want a CorruptError about %q naming the file", err, tc.want)
			}
		})
	}
}

func TestRecordsOutOfOrderAreCorruption(t *testing.T) {
	d, _ := openDir(t)
	j, _ := open(t, d, boot1)
	appendN(t, j, 1)
	one := j.Size()
	appendN(t, j, 1) // record 2
	two := j.Size()
	appendN(t, j, 1) // record 3
	path := j.Path()
	j.Close()
	b, _ := os.ReadFile(path)
	// Drop record 2: record 3 now follows record 1, with valid checksums.
	b = append(b[:one:one], b[two:]...)
	os.WriteFile(path, b, 0o600)
	if _, _, err := d.Open(eventlog.TDX, boot1); err == nil || !strings.Contains(err.Error(), "record number 3 where 2 was expected") {
		t.Fatalf("Open of a journal missing a record: %v", err)
	}
}

func TestNewBootSetsAsideTheOldJournal(t *testing.T) {
	d, _ := openDir(t)
	j, _ := open(t, d, boot1)
	old := appendN(t, j, 2)
	j.Close()
	j, op := open(t, d, boot2)
	if len(op.Records) != 0 || op.SetAside != j.Path()+runtimelog.PreviousBootSuffix {
		t.Fatalf("opening for a new boot: %+v", op)
	}
	appendN(t, j, 1)
	j.Close()
	// The set-aside file is the old boot's journal, intact.
	b, err := os.ReadFile(op.SetAside)
	if err != nil || !bytes.Contains(b, []byte(boot1)) || !bytes.Contains(b, old[1].Event) {
		t.Errorf("the previous boot's journal was not kept: %v", err)
	}
	_, op = open(t, d, boot2)
	if len(op.Records) != 1 {
		t.Errorf("the new boot's journal has %d records, want 1", len(op.Records))
	}
	// A journal of another kind is not mistaken for this one.
	tpm, _, err := d.Open(eventlog.TPM, boot2)
	if err != nil {
		t.Fatal(err)
	}
	tpm.Close()
	if d.JournalPath(eventlog.TPM) == d.JournalPath(eventlog.TDX) {
		t.Error("TDX and TPM share a journal")
	}
}

func TestDirIsLocked(t *testing.T) {
	_, path := openDir(t)
	if _, err := runtimelog.OpenDir(path); err == nil || !strings.Contains(err.Error(), "in use by another server") {
		t.Fatalf("a second OpenDir of a state directory in use: %v", err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm()&0o077 != 0 {
		t.Errorf("state directory mode %v: want it private to the server", fi.Mode())
	}
}

// TestReconcile checks the rule the server applies at start and after a
// failed extend.
func TestReconcile(t *testing.T) {
	boot := eventlog.AppendSpecIDHeader(nil, 1, []eventlog.Alg{eventlog.AlgSHA384})
	boot = eventlog.AppendEvent2(boot, 1, eventlog.EvSeparator, eventlog.Measure([]byte{0, 0, 0, 0}, []eventlog.Alg{eventlog.AlgSHA384}), []byte{0, 0, 0, 0})
	withRecords := func(n int) *eventlog.Log {
		b := bytes.Clone(boot)
		for i := range n {
			b = append(b, rtmr3Event(fmt.Sprint("r", i))...)
		}
		l, err := eventlog.Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	rtmr3 := func(records int) eventlog.Bank {
		v := make([]byte, 48)
		for i := range records {
			d := sha512.Sum384([]byte(fmt.Sprint("r", i)))
			h := sha512.Sum384(append(v, d[:]...))
			v = h[:]
		}
		bank := eventlog.Bank{}
		bank.Set(eventlog.AlgSHA384, 4, v)
		return bank
	}
	for _, tc := range []struct {
		name    string
		records int
		live    eventlog.Bank
		want    runtimelog.Verdict
		err     string
	}{
		{"no records, untouched register", 0, rtmr3(0), runtimelog.InSync, ""},
		{"all extended", 3, rtmr3(3), runtimelog.InSync, ""},
		{"last not extended", 3, rtmr3(2), runtimelog.LastNotExtended, ""},
		{"only one record, not extended", 1, rtmr3(0), runtimelog.LastNotExtended, ""},
		{"two behind", 3, rtmr3(1), 0, "without the last one"},
		{"extended by someone else", 2, rtmr3(5), 0, "something other than this server"},
		{"no records, register extended", 0, rtmr3(1), 0, "something other than this server"},
		{"bank not read", 1, eventlog.Bank{}, 0, "no live RTMR3 bank"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := runtimelog.Reconcile(withRecords(tc.records), eventlog.TDX, 4, tc.records, tc.live)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Reconcile = %v, %v; want an error about %q", v, err, tc.err)
				}
				return
			}
			if err != nil || v != tc.want {
				t.Fatalf("Reconcile = %v, %v; want %v", v, err, tc.want)
			}
		})
	}
	var me *runtimelog.MismatchError
	_, err := runtimelog.Reconcile(withRecords(2), eventlog.TDX, 4, 2, rtmr3(7))
	if !errors.As(err, &me) || me.Register != "RTMR3" || me.Records != 2 {
		t.Errorf("mismatch: %#v", err)
	}
}

// TestReconcileBanksMustAgree: a TPM extends every bank in one command, so
// banks that tell different stories are a mismatch.
func TestReconcileBanksMustAgree(t *testing.T) {
	algs := []eventlog.Alg{eventlog.AlgSHA1, eventlog.AlgSHA256}
	b := eventlog.AppendSpecIDHeader(nil, 0, algs)
	b = eventlog.AppendEvent2(b, 23, eventlog.EvEventTag, eventlog.Measure([]byte("x"), algs), []byte("x"))
	l, err := eventlog.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	all, _ := eventlog.Replay(l)
	live := eventlog.Bank{}
	live.Set(eventlog.AlgSHA1, 23, all.Get(eventlog.AlgSHA1, 23)) // extended
	live.Set(eventlog.AlgSHA256, 23, make([]byte, 32))            // not extended
	if _, err := runtimelog.Reconcile(l, eventlog.TPM, 23, 1, live); err == nil || !strings.Contains(err.Error(), "PCR23 sha256") {
		t.Errorf("banks disagreeing: %v, want a mismatch naming PCR23 sha256", err)
	}
	live.Set(eventlog.AlgSHA256, 23, all.Get(eventlog.AlgSHA256, 23))
	if v, err := runtimelog.Reconcile(l, eventlog.TPM, 23, 1, live); err != nil || v != runtimelog.InSync {
		t.Errorf("both banks extended: %v %v", v, err)
	}
	// A TPM without a SHA-1 bank: the SHA-256 bank alone decides.
	delete(live, eventlog.AlgSHA1)
	if v, err := runtimelog.Reconcile(l, eventlog.TPM, 23, 1, live); err != nil || v != runtimelog.InSync {
		t.Errorf("one bank read: %v %v", v, err)
	}
}
