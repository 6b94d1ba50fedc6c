package ima_test

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog/ima"
)

// expected is testdata/handmade/expected.json: what testdata/mklists.py,
// an implementation of the kernel's format apart from this package's, says
// its lists hold.
type expected struct {
	PCRs          map[string][]string `json:"pcrs"`
	BootAggregate map[string]string   `json:"boot_aggregate"`
	Lists         []expectedList      `json:"lists"`
}

type expectedList struct {
	File      string `json:"file"`
	ByteOrder string `json:"byte_order"`
	HashAlg   string `json:"hash_alg"`
	Size      int64  `json:"size"`
	Entries   []struct {
		Num          int               `json:"num"`
		Offset       int64             `json:"offset"`
		PCR          uint32            `json:"pcr"`
		TemplateHash string            `json:"template_hash"`
		TemplateName string            `json:"template_name"`
		Violation    bool              `json:"violation"`
		TemplateData string            `json:"template_data"`
		Fields       map[string]string `json:"fields"`
	} `json:"entries"`
	PCR10 map[string]string `json:"pcr10"`
}

func readExpected(t testing.TB) *expected {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "handmade", "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var e expected
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatal(err)
	}
	return &e
}

func readList(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "handmade", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustAlg(t testing.TB, name string) eventlog.Alg {
	t.Helper()
	a, ok := eventlog.ParseAlg(name)
	if !ok {
		t.Fatalf("algorithm %q", name)
	}
	return a
}

func (e *expected) bank(t testing.TB) eventlog.Bank {
	t.Helper()
	bank := eventlog.Bank{}
	for name, values := range e.PCRs {
		for i, v := range values {
			b, _ := hex.DecodeString(v)
			bank.Set(mustAlg(t, name), uint32(i), b)
		}
	}
	return bank
}

func TestHandmadeLists(t *testing.T) {
	exp := readExpected(t)
	for _, el := range exp.Lists {
		t.Run(el.File, func(t *testing.T) {
			b := readList(t, el.File)
			l, err := ima.Parse(b, ima.Options{HashAlg: mustAlg(t, el.HashAlg)})
			if err != nil {
				t.Fatal(err)
			}
			wantOrder := binary.ByteOrder(binary.LittleEndian)
			if el.ByteOrder == "big-endian" {
				wantOrder = binary.BigEndian
			}
			if l.Order != wantOrder || l.Size != el.Size || l.Pending != 0 || len(entries(l)) != len(el.Entries) {
				t.Fatalf("order %v size %d pending %d entries %d; want %v %d 0 %d", l.Order, l.Size, l.Pending, len(entries(l)), wantOrder, el.Size, len(el.Entries))
			}
			all := entries(l)
			for i, want := range el.Entries {
				e := &all[i]
				if e.Num != want.Num || e.Offset != want.Offset || e.PCR != want.PCR || hex.EncodeToString(e.TemplateHash) != want.TemplateHash ||
					e.TemplateName != want.TemplateName || e.Violation() != want.Violation || hex.EncodeToString(e.TemplateData) != want.TemplateData {
					t.Errorf("entry %d: got {%d %d %d %x %q %v %x}, want %+v", i+1, e.Num, e.Offset, e.PCR, e.TemplateHash, e.TemplateName, e.Violation(), e.TemplateData, want)
				}
				if !bytes.Equal(e.Raw, b[e.Offset:e.Offset+int64(len(e.Raw))]) || (i+1 < len(all) && e.Offset+int64(len(e.Raw)) != all[i+1].Offset) {
					t.Errorf("entry %d: Raw is not the list's bytes from its offset to the next entry", i+1)
				}
				fields, ok := e.Fields(l.Order)
				if ok != (want.Fields != nil) {
					t.Errorf("entry %d (%s): Fields ok = %v", i+1, e.TemplateName, ok)
				}
				got := map[string]string{}
				for _, f := range fields {
					got[f.ID] = f.String()
				}
				if want.Fields != nil && !mapsEqual(got, want.Fields) {
					t.Errorf("entry %d fields:\n got %q\nwant %q", i+1, got, want.Fields)
				}
			}
			if err := ima.CheckTemplateHashes(l); err != nil {
				t.Error(err)
			}
			bank, err := ima.Replay(l, eventlog.AlgSHA1, eventlog.AlgSHA256, eventlog.AlgSHA384)
			if err != nil {
				t.Fatal(err)
			}
			for alg, v := range el.PCR10 {
				if got := hex.EncodeToString(bank.Get(mustAlg(t, alg), 10)); got != v {
					t.Errorf("PCR10 %s replays to %s, want %s", alg, got, v)
				}
			}
			if idx := bank.Indexes(); len(idx) != 1 || idx[0] != 10 {
				t.Errorf("replay extends registers %v, want only 10", idx)
			}
			if err := ima.CheckBootAggregate(l, exp.bank(t)); err != nil {
				t.Error(err)
			}
		})
	}
}

// all selects every entry of a list.
func all(l *ima.List) ima.Entries {
	es, err := l.Slice(0, 0)
	if err != nil {
		panic(err)
	}
	return es
}

// entries returns copies of every entry of a list.
func entries(l *ima.List) []ima.Entry { return collect(all(l)) }

func collect(es ima.Entries) []ima.Entry {
	var out []ima.Entry
	for e := range es.All() {
		out = append(out, *e)
	}
	return out
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestBootAggregate(t *testing.T) {
	exp := readExpected(t)
	pcrs := exp.bank(t)
	for alg, want := range exp.BootAggregate {
		got, err := ima.BootAggregate(pcrs, mustAlg(t, alg))
		if err != nil || hex.EncodeToString(got) != want {
			t.Errorf("BootAggregate(%s) = %x, %v; want %s", alg, got, err, want)
		}
	}

	l, err := ima.Parse(readList(t, "mixed-le.bin"), ima.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// The list's boot_aggregate is sha256 over PCRs 0-9: PCR 9 counts,
	// and in the SHA-1 aggregate PCR 8 does not.
	changed := exp.bank(t)
	changed.Set(eventlog.AlgSHA256, 9, make([]byte, 32))
	var baErr *ima.BootAggregateError
	if err := ima.CheckBootAggregate(l, changed); !errors.As(err, &baErr) || baErr.Entry != 1 || baErr.Alg != eventlog.AlgSHA256 {
		t.Errorf("boot_aggregate against a changed PCR 9: %v", err)
	}
	sha1Only := exp.bank(t)
	sha1Only.Set(eventlog.AlgSHA1, 8, make([]byte, 20))
	if a, err := ima.BootAggregate(sha1Only, eventlog.AlgSHA1); err != nil || hex.EncodeToString(a) != exp.BootAggregate["sha1"] {
		t.Errorf("the SHA-1 boot_aggregate changed with PCR 8: %x, %v", a, err)
	}
	missing := eventlog.Bank{}
	for i := uint32(0); i < 9; i++ {
		missing.Set(eventlog.AlgSHA256, i, make([]byte, 32))
	}
	if _, err := ima.BootAggregate(missing, eventlog.AlgSHA256); err == nil {
		t.Error("BootAggregate without PCR 9: no error")
	}
	rest, _ := l.Slice(2, 3)
	noBA, err := ima.Parse(ima.AppendRaw(nil, rest), ima.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := ima.CheckBootAggregate(noBA, pcrs); !errors.Is(err, ima.ErrNoBootAggregate) {
		t.Errorf("a list without a boot_aggregate: %v", err)
	}
	// An "ima" template boot_aggregate is SHA-1 over PCRs 0-7.
	sha1BA, _ := hex.DecodeString(exp.BootAggregate["sha1"])
	old, err := ima.AppendEntry(nil, binary.LittleEndian, eventlog.AlgSHA1, 10, "ima", ima.IMAData(binary.LittleEndian, [20]byte(sha1BA), ima.BootAggregateName))
	if err != nil {
		t.Fatal(err)
	}
	ol, err := ima.Parse(old, ima.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := ima.CheckBootAggregate(ol, pcrs); err != nil {
		t.Errorf(`an "ima" template boot_aggregate: %v`, err)
	}
	// ima-ngv2 gives the digest a type: "ima:sha384:".
	sha384BA, _ := hex.DecodeString(exp.BootAggregate["sha384"])
	o := binary.LittleEndian
	v2data := ima.AppendField(ima.AppendField(nil, o, ima.DigestField("ima:sha384", sha384BA)), o, ima.NameField(ima.BootAggregateName))
	v2, _ := ima.AppendEntry(nil, o, eventlog.AlgSHA1, 10, "ima-ngv2", v2data)
	v2l, err := ima.Parse(v2, ima.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if alg, _, ok := ima.BootAggregateDigest(v2l.Entry(1), o); !ok || alg != eventlog.AlgSHA384 {
		t.Errorf("ima-ngv2 boot_aggregate: %v %v", alg, ok)
	}
	if err := ima.CheckBootAggregate(v2l, pcrs); err != nil {
		t.Errorf("an ima-ngv2 boot_aggregate: %v", err)
	}
}

func TestFileAlg(t *testing.T) {
	for name, want := range map[string]eventlog.Alg{
		"binary_runtime_measurements":        eventlog.AlgSHA1,
		"binary_runtime_measurements_sha1":   eventlog.AlgSHA1,
		"binary_runtime_measurements_sha256": eventlog.AlgSHA256,
		"binary_runtime_measurements_sha384": eventlog.AlgSHA384,
		"binary_runtime_measurements_sm3":    eventlog.AlgSM3_256,
	} {
		if got, ok := ima.FileAlg(name); !ok || got != want {
			t.Errorf("FileAlg(%s) = %v, %v", name, got, ok)
		}
	}
	for _, name := range []string{"ascii_runtime_measurements", "binary_runtime_measurements_tpm_alg_27", "binary_runtime_measurementssha1"} {
		if _, ok := ima.FileAlg(name); ok {
			t.Errorf("FileAlg(%s) is ok", name)
		}
	}
}

func TestTemplateHashMismatch(t *testing.T) {
	b := bytes.Clone(readList(t, "mixed-le.bin"))
	l, err := ima.Parse(b, ima.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e := entries(l)[2]
	b[e.Offset+int64(len(e.Raw))-2] ^= 1 // the file name's last byte
	var hashErr *ima.HashError
	if err := ima.CheckTemplateHashes(l); !errors.As(err, &hashErr) || hashErr.Entry != 3 || hashErr.Offset != e.Offset {
		t.Fatalf("a changed name: %v", err)
	}
	before, _ := ima.Replay(l)
	b[e.Offset+int64(len(e.Raw))-2] ^= 1
	after, _ := ima.Replay(l)
	if before.Get(eventlog.AlgSHA1, 10) == nil || bytes.Equal(before.Get(eventlog.AlgSHA256, 10), after.Get(eventlog.AlgSHA256, 10)) {
		t.Error("the SHA-256 replay does not depend on the template data")
	}
	if !bytes.Equal(before.Get(eventlog.AlgSHA1, 10), after.Get(eventlog.AlgSHA1, 10)) {
		t.Error("the SHA-1 replay of a SHA-1 list extends its template hashes, not its data")
	}
}
