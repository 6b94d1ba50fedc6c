package main

import (
	"bytes"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
)

// TestRecord runs the record and get subcommands as a container would,
// against a server process that reads this test process's cgroup from a
// fake /proc: the server learns the caller's pid from the socket, as always.
func TestRecord(t *testing.T) {
	const id = "5f0e2d1c3b4a59687766554433221100ffeeddccbbaa99887766554433221100"
	proc := t.TempDir()
	self := filepath.Join(proc, strconv.Itoa(os.Getpid()))
	os.MkdirAll(self, 0o755)
	// The server checks that the cgroup is a real one, made by root: make
	// it in this machine's cgroup v2 hierarchy (no process moves in).
	cgroup := "/ccnp-eventlog-test-" + strconv.Itoa(os.Getpid()) + "/docker/" + id
	makeCgroupV2(t, cgroup)
	if err := os.WriteFile(filepath.Join(self, "cgroup"), []byte("0::"+cgroup+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, "EVENTLOG_PROC_ROOT="+proc, "EVENTLOG_CRI_SOCKET=none")

	var out bytes.Buffer
	if code := record([]string{"--socket", s.socket, "--data", "config v1"}, nil, &out); code != 0 {
		t.Fatalf("record: exit %d", code)
	}
	sum := sha512.Sum384([]byte("config v1"))
	if !regexp.MustCompile(`^event 1 of container ` + id + `, extended into RTMR3 \(event \d+ of the platform log\)\n  sha384 ` + hex.EncodeToString(sum[:]) + `\n$`).MatchString(out.String()) {
		t.Errorf("record printed:\n%s", out.String())
	}

	out.Reset()
	data := filepath.Join(t.TempDir(), "blob")
	os.WriteFile(data, []byte("a binary\x00blob"), 0o644)
	if code := record([]string{"--socket", s.socket, "--data-file", data, "--type", "13", "-o", "json"}, nil, &out); code != 0 {
		t.Fatalf("record --data-file: exit %d", code)
	}
	if !regexp.MustCompile(`"eventNum":\s+2,`).MatchString(out.String()) || !regexp.MustCompile(`"eventType":\s+13,`).MatchString(out.String()) {
		t.Errorf("record -o json printed:\n%s", out.String())
	}
	out.Reset()
	if code := record([]string{"--socket", s.socket, "--data-file", "-"}, strings.NewReader("from stdin"), &out); code != 0 {
		t.Fatalf("record --data-file -: exit %d", code)
	}

	// The container's own log, through the get subcommand.
	out.Reset()
	if code := get([]string{"--socket", s.socket, "--level", "saas", "-o", "table"}, &out); code != 0 {
		t.Fatalf("get --level saas: exit %d", code)
	}
	rows := regexp.MustCompile(`(?m)^([123])\s+RTMR3\s+(EV_\w+)\s+(\d+)\s+sha384:`).FindAllStringSubmatch(out.String(), -1)
	if len(rows) != 3 || rows[0][2] != "EV_EVENT_TAG" || rows[1][2] != "EV_IPL" || rows[1][3] != "13" {
		t.Errorf("the container's events:\n%s", out.String())
	}

	// Inline: the events in the reply, no file.
	out.Reset()
	if code := get([]string{"--socket", s.socket, "--level", "saas", "--inline", "--format", "raw"}, &out); code != 0 {
		t.Fatalf("get --inline: exit %d", code)
	}
	if l, err := eventlog.Parse(out.Bytes()); err != nil || len(l.Events) != 3 || string(l.Events[2].Data) != "from stdin" {
		t.Errorf("get --inline --format raw printed no valid log of the 3 events: %v", err)
	}
	out.Reset()
	if code := get([]string{"--socket", s.socket, "--level", "saas", "--inline", "-o", "table"}, &out); code != 0 || !strings.Contains(out.String(), "3 of 3 events") {
		t.Errorf("get --inline -o table: exit %d\n%s", code, out.String())
	}
	if entries, _ := os.ReadDir(filepath.Join(s.outDir, "containers")); len(entries) != 1 {
		t.Errorf("the containers directory holds %d directories: only the one non-inline get writes a file", len(entries))
	}

	for _, bad := range [][]string{
		{"--socket", s.socket}, // no data
		{"--socket", s.socket, "--data", "x", "--data-file", data}, // both
		{"--socket", s.socket, "--data", "x", "-o", "yaml"},
		{"--socket", s.socket, "--data", "x", "--category", "sgx"},
	} {
		if code := record(bad, nil, &out); code != 2 {
			t.Errorf("record %v: exit %d, want 2", bad, code)
		}
	}
	// The server's refusal is printed with its code.
	if code := record([]string{"--socket", s.socket, "--data", "x", "--type", "3"}, nil, &out); code != 1 {
		t.Errorf("EV_NO_ACTION: exit %d, want 1", code)
	}
}

// makeCgroupV2 makes cgroup path in this machine's writable cgroup v2
// hierarchy, removed when the test ends.
func makeCgroupV2(t testing.TB, path string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("making a cgroup needs root")
	}
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var mount string
	for line := range strings.Lines(string(b)) {
		left, right, _ := strings.Cut(line, " - ")
		if lf, rf := strings.Fields(left), strings.Fields(right); len(lf) >= 6 && len(rf) > 0 && rf[0] == "cgroup2" && lf[3] == "/" && strings.HasPrefix(lf[5], "rw") {
			mount = lf[4]
			break
		}
	}
	if mount == "" {
		t.Skip("no writable cgroup v2 hierarchy is mounted")
	}
	top := filepath.Join(mount, strings.Split(path, "/")[1])
	if err := os.MkdirAll(filepath.Join(mount, path), 0o755); err != nil {
		t.Skipf("cannot make cgroups here: %v", err)
	}
	t.Cleanup(func() {
		for d := filepath.Join(mount, path); strings.HasPrefix(d, top); d = filepath.Dir(d) {
			os.Remove(d)
		}
	})
}

// TestRecordRetries: record retries a call the server could not take (no
// server yet on the socket) with its key until the server is up, a key
// given again returns the first outcome, and what retrying cannot fix is
// not retried.
func TestRecordRetries(t *testing.T) {
	const id = "6a1f0e2d1c3b4a59687766554433221100ffeeddccbbaa998877665544332211"
	proc := t.TempDir()
	self := filepath.Join(proc, strconv.Itoa(os.Getpid()))
	os.MkdirAll(self, 0o755)
	cgroup := "/ccnp-eventlog-test-" + strconv.Itoa(os.Getpid()) + "/docker/" + id
	makeCgroupV2(t, cgroup)
	if err := os.WriteFile(filepath.Join(self, "cgroup"), []byte("0::"+cgroup+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "rec")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	socket := filepath.Join(dir, "eventlog.sock")

	// No server: one attempt fails at once.
	var out bytes.Buffer
	start := time.Now()
	if code := record([]string{"--socket", socket, "--data", "x", "--retry-for", "0"}, nil, &out); code != 1 {
		t.Fatalf("record with no server and no retries: exit %d", code)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("one attempt took %s", d)
	}

	// The server comes up while record retries.
	done := make(chan int, 1)
	var first bytes.Buffer
	go func() {
		done <- record([]string{"--socket", socket, "--data", "retried", "--idempotency-key", "retry-key", "--retry-for", "60s", "-o", "json"}, nil, &first)
	}()
	time.Sleep(500 * time.Millisecond)
	select {
	case code := <-done:
		t.Fatalf("record ended (exit %d) before the server was up", code)
	default:
	}
	s := startServer(t, "EVENTLOG_PROC_ROOT="+proc, "EVENTLOG_SOCKET="+socket, "EVENTLOG_CRI_SOCKET=none")
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("record while the server came up: exit %d", code)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("record did not finish after the server came up")
	}
	if !regexp.MustCompile(`"eventNum":\s+1,`).MatchString(first.String()) || !regexp.MustCompile(`"alreadyRecorded":\s+false`).MatchString(first.String()) {
		t.Errorf("the retried record printed:\n%s", first.String())
	}

	// The same key again: the first outcome, nothing recorded.
	out.Reset()
	if code := record([]string{"--socket", s.socket, "--data", "retried", "--idempotency-key", "retry-key"}, nil, &out); code != 0 {
		t.Fatalf("record under a used key: exit %d", code)
	}
	if !strings.HasPrefix(out.String(), "event 1 of container "+id+", already recorded under this idempotency key: extended into RTMR3 once") {
		t.Errorf("record under a used key printed:\n%s", out.String())
	}
	// A random key by default: the same data twice is two events.
	for want := 2; want <= 3; want++ {
		out.Reset()
		if code := record([]string{"--socket", s.socket, "--data", "retried"}, nil, &out); code != 0 || !strings.HasPrefix(out.String(), fmt.Sprintf("event %d of container", want)) {
			t.Errorf("record without a key: exit %d\n%s", code, out.String())
		}
	}

	// Refusals are not retried: they come back at once.
	for _, args := range [][]string{
		{"--data", "other data", "--idempotency-key", "retry-key"}, // ALREADY_EXISTS
		{"--data", "x", "--type", "3"},                             // INVALID_ARGUMENT
		{"--data", "x", "--idempotency-key", "with space"},         // INVALID_ARGUMENT
	} {
		start := time.Now()
		if code := record(append([]string{"--socket", s.socket, "--retry-for", "60s"}, args...), nil, &out); code != 1 {
			t.Errorf("record %v: exit %d, want 1", args, code)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("record %v took %s: it was retried", args, d)
		}
	}
	if code := record([]string{"--socket", s.socket, "--data", "x", "--retry-for", "-1s"}, nil, &out); code != 2 {
		t.Errorf("a negative --retry-for: exit %d, want 2", code)
	}
}
