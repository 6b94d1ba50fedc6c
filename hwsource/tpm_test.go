package hwsource_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"github.com/ccnp-eventlog/ccnp-eventlog/hwsource"
	"github.com/ccnp-eventlog/ccnp-eventlog/internal/corpus"
)

func TestTPMCorpusTrees(t *testing.T) {
	exp := corpus.Expected(t)
	n := 0
	for name, want := range exp {
		if !strings.HasPrefix(name, "tpm/") {
			continue
		}
		n++
		log := corpus.Read(t, name)
		for _, path := range []string{hwsource.TPMLogPath, hwsource.StagedTPMLogPath} {
			t.Run(name+"/"+filepath.Base(filepath.Dir(filepath.Dir(path))), func(t *testing.T) {
				root := writeTree(t, map[string][]byte{path: log})
				src := hwsource.NewTPM(root)
				if src.Kind() != eventlog.TPM || src.Simulated() {
					t.Errorf("Kind() = %v, Simulated() = %v; want TPM, false", src.Kind(), src.Simulated())
				}
				raw, err := src.ReadLog(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				if raw.Area || raw.Path != filepath.Join(root, path) || !bytes.Equal(raw.Data, log) {
					t.Errorf("Log{Area: %v, Path: %s, %d bytes}, want {false, %s, %d bytes}", raw.Area, raw.Path, len(raw.Data), filepath.Join(root, path), len(log))
				}
				l := raw.Parsed
				if got := len(l.Events) + 1; got != want.EventsInclHeader {
					t.Errorf("%d events incl. header, want %d", got, want.EventsInclHeader)
				}
				replayed, err := eventlog.Replay(l)
				if err != nil {
					t.Fatal(err)
				}
				if !replayed.Equal(want.Bank(t)) {
					t.Errorf("replayed registers differ from expected.json")
				}
			})
		}
	}
	if n < 8 {
		t.Errorf("expected.json lists %d TPM logs, the corpus has 8", n)
	}
}

func TestTPMReadLogErrors(t *testing.T) {
	log := corpus.Read(t, "tpm/tpm_rhel8-uefi.bin")
	l, err := eventlog.Parse(log)
	if err != nil {
		t.Fatal(err)
	}
	last := l.Events[len(l.Events)-1]
	logPath := func(root string) string { return filepath.Join(root, hwsource.TPMLogPath) }
	staged := func(root string) string { return filepath.Join(root, hwsource.StagedTPMLogPath) }

	tests := []struct {
		name  string
		files map[string][]byte
		setup func(t *testing.T, root string)
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
			return []string{"no TPM event log", logPath(root), staged(root), "no TPM"}
		},
	}, {
		name:  "permission denied",
		files: map[string][]byte{hwsource.TPMLogPath: log},
		setup: func(t *testing.T, root string) { chmod(t, logPath(root), 0) },
		check: func(t *testing.T, err error) {
			if !errors.Is(err, fs.ErrPermission) {
				t.Errorf("error does not wrap fs.ErrPermission")
			}
		},
		wants: func(root string) []string {
			return []string{logPath(root), "permission denied", "run as root", staged(root), "init container"}
		},
	}, {
		name:  "truncated log",
		files: map[string][]byte{hwsource.TPMLogPath: log[:len(log)-10]},
		check: func(t *testing.T, err error) {
			var fe *eventlog.FormatError
			if !errors.As(err, &fe) || fe.Event != last.Num || fe.Offset != last.Offset {
				t.Errorf("error is not a *eventlog.FormatError for event %d at offset %d", last.Num, last.Offset)
			}
		},
		wants: func(root string) []string { return []string{logPath(root), "malformed event log"} },
	}, {
		name:  "empty log",
		files: map[string][]byte{hwsource.TPMLogPath: {}},
		check: func(t *testing.T, err error) {
			if !errors.As(err, new(*eventlog.FormatError)) {
				t.Errorf("error is not a *eventlog.FormatError")
			}
		},
		wants: func(root string) []string { return []string{logPath(root), "empty"} },
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := writeTree(t, tt.files)
			if tt.setup != nil {
				tt.setup(t, root)
			}
			var err error
			asUnprivileged(t, func() { _, err = hwsource.NewTPM(root).ReadLog(context.Background()) })
			if err == nil {
				t.Fatal("ReadLog succeeded")
			}
			tt.check(t, err)
			for _, w := range tt.wants(root) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

func TestTPMRegistersErrors(t *testing.T) {
	device := func(root string) string { return filepath.Join(root, hwsource.TPMDevicePath) }

	t.Run("no device", func(t *testing.T) {
		root := t.TempDir()
		_, err := hwsource.NewTPM(root).Registers(context.Background())
		if !errors.Is(err, hwsource.ErrNotAvailable) || !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("error %v does not wrap ErrNotAvailable and fs.ErrNotExist", err)
		}
		for _, w := range []string{device(root), filepath.Join(root, hwsource.RawTPMDevicePath)} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error %q does not name %s", err, w)
			}
		}
	})
	t.Run("not a device", func(t *testing.T) {
		root := writeTree(t, map[string][]byte{hwsource.TPMDevicePath: []byte("not a TPM")})
		_, err := hwsource.NewTPM(root).Registers(context.Background())
		if !errors.Is(err, hwsource.ErrNotAvailable) || !strings.Contains(err.Error(), device(root)+" is a regular file, not a TPM device") {
			t.Fatalf("error = %v, want ErrNotAvailable naming the regular file", err)
		}
	})
	t.Run("permission denied", func(t *testing.T) {
		root := writeTree(t, nil)
		if err := os.MkdirAll(filepath.Dir(device(root)), 0o755); err != nil {
			t.Fatal(err)
		}
		l, err := net.Listen("unix", device(root))
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		chmod(t, device(root), 0)
		asUnprivileged(t, func() { _, err = hwsource.NewTPM(root).Registers(context.Background()) })
		if !errors.Is(err, hwsource.ErrNotAvailable) || !errors.Is(err, fs.ErrPermission) {
			t.Fatalf("error %v does not wrap ErrNotAvailable and fs.ErrPermission", err)
		}
		if !strings.Contains(err.Error(), device(root)) || !strings.Contains(err.Error(), "tss") {
			t.Errorf("error %q does not name the device and the remedy", err)
		}
	})
	t.Run("nobody listening", func(t *testing.T) {
		root := writeTree(t, nil)
		if err := os.MkdirAll(filepath.Dir(device(root)), 0o755); err != nil {
			t.Fatal(err)
		}
		l, err := net.ListenUnix("unix", &net.UnixAddr{Name: device(root), Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		l.SetUnlinkOnClose(false)
		l.Close()
		_, err = hwsource.NewTPM(root).Registers(context.Background())
		if !errors.Is(err, hwsource.ErrNotAvailable) || !strings.Contains(err.Error(), "connection refused") {
			t.Fatalf("error = %v, want ErrNotAvailable saying the connection was refused", err)
		}
	})
}
