package main

import (
	"io"
	"os"
	"regexp"
	"strings"
	"testing"
)

// stdoutOf runs f and returns what it wrote to os.Stdout.
func stdoutOf(t *testing.T, f func() int) (string, int) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	saved := os.Stdout
	os.Stdout = w
	done := make(chan string)
	go func() { b, _ := io.ReadAll(r); done <- string(b) }()
	code := f()
	os.Stdout = saved
	w.Close()
	return <-done, code
}

// eventlog-server -h names every command, then serve's flags.
func TestTopLevelHelp(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"--help"}, {"help"}} {
		out, code := stdoutOf(t, func() int { return dispatch(args) })
		if code != 0 {
			t.Errorf("%v: exit %d", args, code)
		}
		for name := range commands {
			if !regexp.MustCompile(`(?m)^  ` + name + ` +\S`).MatchString(out) {
				t.Errorf("%v: command %s not listed:\n%s", args, name, out)
			}
		}
		if !strings.Contains(out, "--zero-based-start (EVENTLOG_ZERO_BASED_START)") {
			t.Errorf("%v: serve's flags not listed:\n%s", args, out)
		}
	}
	out, _ := stdoutOf(t, func() int { return dispatch([]string{"serve", "-h"}) })
	if strings.Contains(out, "commands (") || !strings.Contains(out, "--socket (EVENTLOG_SOCKET)") {
		t.Errorf("serve -h: want serve's flags alone:\n%s", out)
	}
	out, _ = stdoutOf(t, func() int { return dispatch([]string{"help", "decode"}) })
	if !strings.HasPrefix(out, "usage: eventlog-server decode") {
		t.Errorf("help decode:\n%s", out)
	}
}

// Each flag is listed once, as it is written (-o, --start), with an
// environment variable only where it reads one, and one default at most.
func TestFlagHelp(t *testing.T) {
	for name := range commands {
		if name == "serve" {
			continue
		}
		out, _ := stdoutOf(t, func() int { return dispatch([]string{name, "-h"}) })
		for _, line := range strings.Split(out, "\n") {
			if strings.Count(line, "(default") > 1 {
				t.Errorf("%s -h: two defaults on one line: %q", name, line)
			}
			if m := regexp.MustCompile(`^  (-{1,2})([\w-]+)(?: \((EVENTLOG_\w+)\))?$`).FindStringSubmatch(line); m != nil {
				if want := map[bool]string{true: "-", false: "--"}[len(m[2]) == 1]; m[1] != want {
					t.Errorf("%s -h: flag written as %q, want %s%s", name, line, want, m[2])
				}
				if m[3] != "" && m[2] != "socket" {
					t.Errorf("%s -h: %s claims %s, which it does not read", name, m[2], m[3])
				}
			}
		}
	}
	out, _ := stdoutOf(t, func() int { return dispatch([]string{"get", "-h"}) })
	if !strings.Contains(out, "\n  -o\n") || strings.Contains(out, "--o") || strings.Contains(out, "EVENTLOG_O") {
		t.Errorf("get -h does not show -o as -o:\n%s", out)
	}
	if !strings.Contains(out, "--socket (EVENTLOG_SOCKET)") {
		t.Errorf("get -h does not say --socket reads EVENTLOG_SOCKET:\n%s", out)
	}
	out, _ = stdoutOf(t, func() int { return dispatch([]string{"decode", "-h"}) })
	if !strings.Contains(out, "(default: detected; on with --table)\n") {
		t.Errorf("decode -h: --area's default:\n%s", out)
	}
}

// What the help says is what is read: serve's flags and --socket from the
// environment, other client flags not.
func TestFlagsFromEnvironment(t *testing.T) {
	t.Setenv("EVENTLOG_SOCKET", "/env.sock")
	t.Setenv("EVENTLOG_COUNT", "3")
	t.Setenv("EVENTLOG_ZERO_BASED_START", "true")

	get := newFlagSet("get", "get")
	socket := get.String("socket", "/default.sock", "")
	count := get.Int("count", 0, "")
	if err := parseFlags(get, nil); err != nil {
		t.Fatal(err)
	}
	if *socket != "/env.sock" || *count != 0 {
		t.Errorf("get: socket %q count %d, want /env.sock from the environment and count 0", *socket, *count)
	}
	if err := parseFlags(get, []string{"--socket=/arg.sock"}); err != nil || *socket != "/arg.sock" {
		t.Errorf("get --socket: %q %v, want the command line's", *socket, err)
	}

	serve := newFlagSet("serve", "serve")
	zero := serve.Bool("zero-based-start", false, "")
	if err := parseFlags(serve, nil); err != nil || !*zero {
		t.Errorf("serve: --zero-based-start %v (%v), want true from EVENTLOG_ZERO_BASED_START", *zero, err)
	}
	t.Setenv("EVENTLOG_ZERO_BASED_START", "maybe")
	serve = newFlagSet("serve", "serve")
	serve.Bool("zero-based-start", false, "")
	if err := parseFlags(serve, nil); err == nil || !strings.Contains(err.Error(), "EVENTLOG_ZERO_BASED_START") {
		t.Errorf("a bad EVENTLOG_ZERO_BASED_START: %v, want an error naming it", err)
	}
}
