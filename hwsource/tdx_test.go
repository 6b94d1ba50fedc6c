package hwsource_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog/ccel"
	"github.com/ccnp-eventlog/ccnp-eventlog/hwsource"
	"github.com/ccnp-eventlog/ccnp-eventlog/internal/corpus"
)

// tdxCorpus are the real CCEL table + log area pairs of the corpus.
var tdxCorpus = []string{"cos-113-tdx", "ovmf-64k"}

func TestTDXCorpusTrees(t *testing.T) {
	exp := corpus.Expected(t)
	for _, name := range tdxCorpus {
		table := corpus.Read(t, "tdx/"+name+".table.bin")
		area := corpus.Read(t, "tdx/"+name+".data.bin")
		want := exp["tdx/"+name+".data.bin"]
		tbl, err := ccel.Parse(table)
		if err != nil {
			t.Fatal(err)
		}
		for _, layout := range []struct{ name, table, data string }{
			{"sysfs", hwsource.CCELTablePath, hwsource.CCELDataPath},
			{"staged", hwsource.StagedCCELTablePath, hwsource.StagedCCELDataPath},
		} {
			t.Run(name+"/"+layout.name, func(t *testing.T) {
				root := writeTree(t, map[string][]byte{layout.table: table, layout.data: area})
				src := hwsource.NewTDX(root)
				if src.Kind() != eventlog.TDX || src.Simulated() {
					t.Errorf("Kind() = %v, Simulated() = %v; want TDX, false", src.Kind(), src.Simulated())
				}
				raw, err := src.ReadLog(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				if !raw.Area || raw.Address != tbl.LASA || raw.Path != filepath.Join(root, layout.data) || !bytes.Equal(raw.Data, area) {
					t.Errorf("Log{Area: %v, Address: %#x, Path: %s, %d bytes}, want {true, %#x, %s, %d bytes}",
						raw.Area, raw.Address, raw.Path, len(raw.Data), tbl.LASA, filepath.Join(root, layout.data), len(area))
				}
				l := raw.Parsed
				if got := len(l.Events) + 1; got != want.EventsInclHeader || len(l.Raw) != want.UsedBytes {
					t.Errorf("%d events incl. header in %d bytes, want %d in %d", got, len(l.Raw), want.EventsInclHeader, want.UsedBytes)
				}
				replayed, err := eventlog.Replay(l)
				if err != nil {
					t.Fatal(err)
				}
				if !replayed.Equal(want.Bank(t)) {
					t.Errorf("replayed registers differ from expected.json")
				}
				// A real tree of these logs has no tdx_guest RTMR files.
				if _, err := src.Registers(context.Background()); !errors.Is(err, hwsource.ErrNotAvailable) || !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("Registers() error = %v, want ErrNotAvailable and fs.ErrNotExist", err)
				}
			})
		}
	}
}

// TestTDXPrefersSysfs: with both present, sysfs is the source of truth and
// the staged copy is only a fallback.
func TestTDXPrefersSysfs(t *testing.T) {
	root := writeTree(t, map[string][]byte{
		hwsource.CCELTablePath:       corpus.Read(t, "tdx/cos-113-tdx.table.bin"),
		hwsource.CCELDataPath:        corpus.Read(t, "tdx/cos-113-tdx.data.bin"),
		hwsource.StagedCCELTablePath: corpus.Read(t, "tdx/ovmf-64k.table.bin"),
		hwsource.StagedCCELDataPath:  corpus.Read(t, "tdx/ovmf-64k.data.bin"),
	})
	raw, err := hwsource.NewTDX(root).ReadLog(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if raw.Path != filepath.Join(root, hwsource.CCELDataPath) {
		t.Errorf("read %s, want the sysfs copy", raw.Path)
	}
}

func TestTDXReadLogErrors(t *testing.T) {
	table := corpus.Read(t, "tdx/ovmf-64k.table.bin")
	area := corpus.Read(t, "tdx/ovmf-64k.data.bin")
	tbl, err := ccel.Parse(table)
	if err != nil {
		t.Fatal(err)
	}
	badChecksum := bytes.Clone(table)
	badChecksum[9]++
	sev := *tbl
	sev.CCType = ccel.TypeSEV
	// Event 5's data size made larger than what is left of the area.
	l, err := eventlog.ParseArea(area)
	if err != nil {
		t.Fatal(err)
	}
	badEvent := bytes.Clone(area)
	ev := l.Events[4]
	sizeAt := ev.Offset + len(ev.Raw) - len(ev.Data) - 4
	binary.LittleEndian.PutUint32(badEvent[sizeAt:], 1<<30)

	sysTable := func(root string) string { return filepath.Join(root, hwsource.CCELTablePath) }
	sysData := func(root string) string { return filepath.Join(root, hwsource.CCELDataPath) }
	staged := func(root string) string { return filepath.Join(root, hwsource.StagedCCELTablePath) }

	tests := []struct {
		name  string
		files map[string][]byte
		setup func(t *testing.T, root string)
		// check inspects the error; wants lists what its message must say.
		check func(t *testing.T, err error)
		wants func(root string) []string
	}{{
		name:  "absent",
		files: map[string][]byte{},
		check: func(t *testing.T, err error) {
			if !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("error does not wrap fs.ErrNotExist")
			}
		},
		wants: func(root string) []string {
			return []string{"no TDX event log", sysTable(root), staged(root), "not a TDX guest, or CCEL not exposed"}
		},
	}, {
		name:  "permission denied",
		files: map[string][]byte{hwsource.CCELTablePath: table, hwsource.CCELDataPath: area},
		setup: func(t *testing.T, root string) { chmod(t, sysTable(root), 0) },
		check: func(t *testing.T, err error) {
			if !errors.Is(err, fs.ErrPermission) {
				t.Errorf("error does not wrap fs.ErrPermission")
			}
		},
		wants: func(root string) []string {
			return []string{sysTable(root), "permission denied", "run as root", filepath.Dir(staged(root)), "init container"}
		},
	}, {
		name:  "malformed table",
		files: map[string][]byte{hwsource.CCELTablePath: badChecksum, hwsource.CCELDataPath: area},
		check: func(t *testing.T, err error) {
			var ce *ccel.Error
			if !errors.As(err, &ce) || ce.Offset != 9 {
				t.Errorf("error is not a *ccel.Error at offset 9")
			}
		},
		wants: func(root string) []string { return []string{sysTable(root), "checksum"} },
	}, {
		name:  "SEV table",
		files: map[string][]byte{hwsource.CCELTablePath: sev.Marshal(), hwsource.CCELDataPath: area},
		check: func(t *testing.T, err error) {
			if !errors.Is(err, hwsource.ErrNotTDX) || !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("error does not wrap ErrNotTDX and fs.ErrNotExist")
			}
		},
		wants: func(root string) []string {
			return []string{sysTable(root), "not for TDX", "CC type is 1 (SEV)", "not 2 (TDX)"}
		},
	}, {
		name:  "truncated log area",
		files: map[string][]byte{hwsource.CCELTablePath: table, hwsource.CCELDataPath: area[:len(area)/2]},
		check: func(t *testing.T, err error) {
			var ce *ccel.Error
			if !errors.As(err, &ce) {
				t.Errorf("error is not a *ccel.Error")
			}
		},
		wants: func(root string) []string {
			return []string{"truncated log area", sysData(root), "holds 32768 bytes", "65536 (LAML)", sysTable(root)}
		},
	}, {
		name:  "table without log area",
		files: map[string][]byte{hwsource.CCELTablePath: table},
		check: func(t *testing.T, err error) {
			if !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("error does not wrap fs.ErrNotExist")
			}
		},
		wants: func(root string) []string { return []string{sysTable(root), "not its log area", sysData(root)} },
	}, {
		name:  "malformed log",
		files: map[string][]byte{hwsource.CCELTablePath: table, hwsource.CCELDataPath: badEvent},
		check: func(t *testing.T, err error) {
			var fe *eventlog.FormatError
			if !errors.As(err, &fe) || fe.Event != 5 || fe.Offset != ev.Offset {
				t.Errorf("error is not a *eventlog.FormatError for event 5 at offset %d", ev.Offset)
			}
		},
		wants: func(root string) []string { return []string{sysData(root), "event 5"} },
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := writeTree(t, tt.files)
			if tt.setup != nil {
				tt.setup(t, root)
			}
			var err error
			asUnprivileged(t, func() { _, err = hwsource.NewTDX(root).ReadLog(context.Background()) })
			if err == nil {
				t.Fatal("ReadLog succeeded")
			}
			tt.check(t, err)
			for _, w := range tt.wants(root) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q spans several lines", err)
			}
		})
	}
}

// TestTDXPermissionFallsBackToStaged: a non-root server in a pod sees the
// host's sysfs CCEL files but may not read them; the staged copies serve.
func TestTDXPermissionFallsBackToStaged(t *testing.T) {
	table := corpus.Read(t, "tdx/ovmf-64k.table.bin")
	area := corpus.Read(t, "tdx/ovmf-64k.data.bin")
	root := writeTree(t, map[string][]byte{
		hwsource.CCELTablePath: table, hwsource.CCELDataPath: area,
		hwsource.StagedCCELTablePath: table, hwsource.StagedCCELDataPath: area,
	})
	chmod(t, filepath.Join(root, hwsource.CCELTablePath), 0)
	chmod(t, filepath.Join(root, hwsource.CCELDataPath), 0)
	var raw hwsource.Log
	var err error
	asUnprivileged(t, func() { raw, err = hwsource.NewTDX(root).ReadLog(context.Background()) })
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(root, hwsource.StagedCCELDataPath); raw.Path != want {
		t.Errorf("read %s, want %s", raw.Path, want)
	}
}

func TestTDXRegisters(t *testing.T) {
	values := make([][]byte, 4)
	for i := range values {
		values[i] = bytes.Repeat([]byte{byte(0xa0 + i)}, 48)
	}
	rtmr := func(i int) string { return filepath.Join(hwsource.RTMRDir, "rtmr"+string(rune('0'+i))+":sha384") }
	want := eventlog.Bank{}
	for i, v := range values {
		want.Set(eventlog.AlgSHA384, uint32(i+1), v)
	}

	t.Run("raw and hex", func(t *testing.T) {
		// The kernel writes raw bytes; hex text (with or without a newline)
		// is accepted for hand-made trees.
		root := writeTree(t, map[string][]byte{
			rtmr(0): values[0],
			rtmr(1): []byte(hex.EncodeToString(values[1]) + "\n"),
			rtmr(2): []byte(hex.EncodeToString(values[2])),
			rtmr(3): values[3],
		})
		got, err := hwsource.NewTDX(root).Registers(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if !got.Equal(want) {
			t.Errorf("Registers() = %x, want %x", got, want)
		}
	})
	t.Run("absent", func(t *testing.T) {
		root := writeTree(t, map[string][]byte{rtmr(0): values[0]})
		_, err := hwsource.NewTDX(root).Registers(context.Background())
		if !errors.Is(err, hwsource.ErrNotAvailable) || !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("error %v does not wrap ErrNotAvailable and fs.ErrNotExist", err)
		}
		for _, w := range []string{filepath.Join(root, rtmr(1)), "Linux 6.16+"} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error %q does not say %q", err, w)
			}
		}
	})
	t.Run("permission denied", func(t *testing.T) {
		files := map[string][]byte{}
		for i, v := range values {
			files[rtmr(i)] = v
		}
		root := writeTree(t, files)
		chmod(t, filepath.Join(root, rtmr(2)), 0)
		var err error
		asUnprivileged(t, func() { _, err = hwsource.NewTDX(root).Registers(context.Background()) })
		if !errors.Is(err, hwsource.ErrNotAvailable) || !errors.Is(err, fs.ErrPermission) {
			t.Fatalf("error %v does not wrap ErrNotAvailable and fs.ErrPermission", err)
		}
		if !strings.Contains(err.Error(), filepath.Join(root, rtmr(2))) || !strings.Contains(err.Error(), "run as root") {
			t.Errorf("error %q does not name the file and the remedy", err)
		}
	})
	t.Run("malformed", func(t *testing.T) {
		files := map[string][]byte{}
		for i, v := range values {
			files[rtmr(i)] = v
		}
		files[rtmr(3)] = values[3][:47]
		root := writeTree(t, files)
		_, err := hwsource.NewTDX(root).Registers(context.Background())
		if err == nil || errors.Is(err, hwsource.ErrNotAvailable) {
			t.Fatalf("error = %v, want a malformed-value error", err)
		}
		if !strings.Contains(err.Error(), filepath.Join(root, rtmr(3))) || !strings.Contains(err.Error(), "47 bytes") {
			t.Errorf("error %q does not name the file and what is wrong", err)
		}
	})
}

func TestCanceledContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	root := t.TempDir()
	for _, src := range []hwsource.Source{hwsource.NewTDX(root), hwsource.NewTPM(root)} {
		if _, err := src.ReadLog(ctx); !errors.Is(err, context.Canceled) {
			t.Errorf("%s: ReadLog error = %v, want context.Canceled", src.Name(), err)
		}
		if _, err := src.Registers(ctx); !errors.Is(err, context.Canceled) {
			t.Errorf("%s: Registers error = %v, want context.Canceled", src.Name(), err)
		}
	}
}
