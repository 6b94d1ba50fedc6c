package main

import (
	"bytes"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/ccnp-eventlog/ccnp-eventlog/internal/asnobody"
)

const (
	ccelTablePath = "sys/firmware/acpi/tables/CCEL"
	ccelDataPath  = "sys/firmware/acpi/tables/data/CCEL"
	tpmLogPath    = "sys/kernel/security/tpm0/binary_bios_measurements"
)

// owner is who the tests hand files to: the server's uid when the test may
// chown (root, as in CI), else the test's own ids, which chown always allows.
func owner() (uid, gid int) {
	if os.Geteuid() == 0 {
		return 1000, 1000
	}
	return os.Getuid(), os.Getgid()
}

// hostTree writes files (path under root -> content) with the kernel's
// root-only modes.
func hostTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for rel, content := range files {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o400); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func testLogger() (*slog.Logger, *bytes.Buffer) {
	var buf bytes.Buffer
	return slog.New(slog.NewTextHandler(&buf, nil)), &buf
}

// checkFile asserts content, permission bits and owner of a staged file.
func checkFile(t *testing.T, path, want string, mode fs.FileMode, uid, gid int) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("staged file: %v", err)
	}
	if string(got) != want {
		t.Errorf("%s = %q, want %q", path, got, want)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != mode {
		t.Errorf("%s mode = %04o, want %04o", path, fi.Mode().Perm(), mode)
	}
	if u, g, ok := fileOwner(fi); !ok || u != uid || g != gid {
		t.Errorf("%s owner = %d:%d, want %d:%d", path, u, g, uid, gid)
	}
}

func TestStageCopiesPresentFilesAndSkipsAbsentOnes(t *testing.T) {
	// A TDX guest without a vTPM: CCEL present, no TPM log.
	from := hostTree(t, map[string]string{
		ccelTablePath: "CCEL table bytes",
		ccelDataPath:  "CCEL log area\xff\xff",
	})
	to := filepath.Join(t.TempDir(), "firmware")
	uid, gid := owner()
	log, out := testLogger()

	err := stage(stageOptions{from: from, to: to, uid: uid, gid: gid, mode: 0o400}, log)
	if err != nil {
		t.Fatalf("stage: %v", err)
	}
	checkFile(t, filepath.Join(to, "acpi/tables/CCEL"), "CCEL table bytes", 0o400, uid, gid)
	checkFile(t, filepath.Join(to, "acpi/tables/data/CCEL"), "CCEL log area\xff\xff", 0o400, uid, gid)
	if _, err := os.Stat(filepath.Join(to, "tpm0")); !os.IsNotExist(err) {
		t.Errorf("absent TPM log left something in the staging dir: %v", err)
	}
	logs := out.String()
	if !strings.Contains(logs, "skipped") || !strings.Contains(logs, filepath.Join(from, tpmLogPath)) {
		t.Errorf("log does not say the TPM log was skipped, and where it was looked for:\n%s", logs)
	}
	if strings.Count(logs, "msg=staged") != 2 {
		t.Errorf("want one 'staged' line per copied file:\n%s", logs)
	}
}

func TestStageModeWithoutChown(t *testing.T) {
	from := hostTree(t, map[string]string{tpmLogPath: "tpm log"})
	to := t.TempDir()
	log, _ := testLogger()

	if err := stage(stageOptions{from: from, to: to, uid: -1, gid: -1, mode: 0o444}, log); err != nil {
		t.Fatalf("stage: %v", err)
	}
	checkFile(t, filepath.Join(to, "tpm0/binary_bios_measurements"), "tpm log", 0o444, os.Getuid(), os.Getgid())
}

func TestStageReplacesAnEarlierCopy(t *testing.T) {
	// An init container that restarts finds its earlier copies, read-only
	// and no longer root's: they must be replaced, not written into.
	from := hostTree(t, map[string]string{tpmLogPath: "first boot"})
	to := t.TempDir()
	uid, gid := owner()
	log, _ := testLogger()
	opts := stageOptions{from: from, to: to, uid: uid, gid: gid, mode: 0o400}
	if err := stage(opts, log); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(from, tpmLogPath)
	if err := os.Chmod(src, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(src, []byte("longer content of a second read"), 0o400); err != nil {
		t.Fatal(err)
	}
	if err := stage(opts, log); err != nil {
		t.Fatalf("second stage: %v", err)
	}
	dst := filepath.Join(to, "tpm0/binary_bios_measurements")
	checkFile(t, dst, "longer content of a second read", 0o400, uid, gid)
	entries, err := os.ReadDir(filepath.Dir(dst))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("staging dir holds %d entries, want only the log (temporary files left behind?)", len(entries))
	}
}

func TestStageWithNothingToStage(t *testing.T) {
	// Simulated mode, or a node with neither TDX nor TPM: not an error, and
	// nothing is created (the staging dir may sit on a read-only root).
	to := filepath.Join(t.TempDir(), "firmware")
	log, out := testLogger()
	if err := stage(stageOptions{from: t.TempDir(), to: to, uid: -1, gid: -1, mode: 0o400}, log); err != nil {
		t.Fatalf("stage: %v", err)
	}
	if _, err := os.Stat(to); !os.IsNotExist(err) {
		t.Errorf("staging dir created with nothing to stage: %v", err)
	}
	if !strings.Contains(out.String(), "level=WARN") {
		t.Errorf("no warning that no log was found:\n%s", out.String())
	}
}

func TestStageFailsClearly(t *testing.T) {
	uid, gid := owner()
	tests := []struct {
		name     string
		setup    func(t *testing.T, opts *stageOptions)
		wantMsgs []string
	}{{
		name: "source is a directory",
		setup: func(t *testing.T, opts *stageOptions) {
			if err := os.MkdirAll(filepath.Join(opts.from, ccelTablePath), 0o755); err != nil {
				t.Fatal(err)
			}
		},
		wantMsgs: []string{ccelTablePath, "not a regular file"},
	}, {
		// A FIFO would block a plain open until a writer came.
		name: "source is a named pipe",
		setup: func(t *testing.T, opts *stageOptions) {
			path := filepath.Join(opts.from, ccelTablePath)
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := syscall.Mkfifo(path, 0o600); err != nil {
				t.Fatal(err)
			}
		},
		wantMsgs: []string{ccelTablePath, "is a named pipe, not a regular file"},
	}, {
		name: "staging dir is a file",
		setup: func(t *testing.T, opts *stageOptions) {
			opts.from = hostTree(t, map[string]string{ccelTablePath: "x"})
			opts.to = filepath.Join(t.TempDir(), "firmware")
			if err := os.WriteFile(opts.to, nil, 0o644); err != nil {
				t.Fatal(err)
			}
		},
		wantMsgs: []string{"cannot create staging directory", "firmware: not a directory"},
	}, {
		name: "own-dir is a file",
		setup: func(t *testing.T, opts *stageOptions) {
			f := filepath.Join(t.TempDir(), "own-dir-file")
			if err := os.WriteFile(f, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			opts.ownDirs = []string{f}
		},
		wantMsgs: []string{"own-dir-file", "not a directory"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := stageOptions{from: t.TempDir(), to: t.TempDir(), uid: uid, gid: gid, mode: 0o400}
			tt.setup(t, &opts)
			log, _ := testLogger()
			err := stage(opts, log)
			if err == nil {
				t.Fatal("stage succeeded, want an error")
			}
			for _, m := range tt.wantMsgs {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not mention %q", err, m)
				}
			}
		})
	}
}

func TestStageUnreadableSource(t *testing.T) {
	if os.Geteuid() == 0 {
		// Root reads every file: the permission error needs another user.
		asnobody.Run(t, nil, "TestStageUnreadableSource")
		return
	}
	from := hostTree(t, map[string]string{ccelTablePath: "x"})
	if err := os.Chmod(filepath.Join(from, ccelTablePath), 0); err != nil {
		t.Fatal(err)
	}
	log, _ := testLogger()
	err := stage(stageOptions{from: from, to: t.TempDir(), uid: -1, gid: -1, mode: 0o400}, log)
	if err == nil || !strings.Contains(err.Error(), "cannot read "+filepath.Join(from, ccelTablePath)) {
		t.Fatalf("stage error = %v, want it to name the unreadable file", err)
	}
}

func TestStageOwnDirs(t *testing.T) {
	uid, gid := owner()
	base := t.TempDir()
	created := filepath.Join(base, "run/ccnp/uds")       // made by stage
	existing := filepath.Join(base, "run/ccnp-eventlog") // made by kubelet, root's, 0700
	if err := os.MkdirAll(existing, 0o700); err != nil {
		t.Fatal(err)
	}
	log, _ := testLogger()
	opts := stageOptions{from: t.TempDir(), to: t.TempDir(), uid: uid, gid: gid, mode: 0o400, ownDirs: []string{created, existing}}
	for run := 1; run <= 2; run++ { // the second run finds them ready
		if err := stage(opts, log); err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		for _, dir := range opts.ownDirs {
			fi, err := os.Stat(dir)
			if err != nil {
				t.Fatal(err)
			}
			if !fi.IsDir() || fi.Mode().Perm() != 0o755 {
				t.Errorf("run %d: %s mode = %v, want a directory with 0755", run, dir, fi.Mode())
			}
			if u, g, _ := fileOwner(fi); u != uid || g != gid {
				t.Errorf("run %d: %s owner = %d:%d, want %d:%d", run, dir, u, g, uid, gid)
			}
		}
	}
}

func TestStageCommandLine(t *testing.T) {
	from := hostTree(t, map[string]string{ccelTablePath: "table"})
	to := t.TempDir()
	uid, gid := owner()
	ids := []string{"--uid", strconv.Itoa(uid), "--gid", strconv.Itoa(gid)}
	tests := []struct {
		args []string
		want int
	}{
		{append([]string{"stage", "--from", from, "--to", to, "--mode", "0440"}, ids...), 0},
		{[]string{"stage", "--from", t.TempDir(), "--to", filepath.Join(t.TempDir(), "unused")}, 0}, // nothing to stage
		{[]string{"stage", "--from", from, "--to", filepath.Join(from, ccelTablePath)}, 1},          // to is a file
		{[]string{"stage", "--mode", "0999"}, 2},
		{[]string{"stage", "--mode", "01777"}, 2},
		{[]string{"stage", "--uid", "-5"}, 2},
		{[]string{"stage", "--own-dir", to}, 2}, // to whom?
		{[]string{"stage", "--to", ""}, 2},
		{[]string{"stage", "extra"}, 2},
		{[]string{"stage", "-h"}, 0},
	}
	for _, tt := range tests {
		if got := dispatch(tt.args); got != tt.want {
			t.Errorf("eventlog-server %s: exit %d, want %d", strings.Join(tt.args, " "), got, tt.want)
		}
	}
	checkFile(t, filepath.Join(to, "acpi/tables/CCEL"), "table", 0o440, uid, gid)
}
