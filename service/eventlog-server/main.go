// Command eventlog-server serves a confidential node's event logs over a Unix
// socket, and carries the offline and client tools that go with it.
//
// Without a subcommand (or with flags only) it runs the server. Run under
// the name grpc_health_probe (the image links /usr/bin/grpc_health_probe to
// it), it is that tool, for upstream's manifests (healthprobe.go).
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// command is one subcommand: it parses its own flags and returns the exit status.
type command struct {
	summary string
	run     func(args []string) int
}

// commands is filled by the files that implement each subcommand.
var commands = map[string]command{}

func main() {
	os.Exit(run(os.Args))
}

// run dispatches on the name the binary was run under, then on the command.
func run(argv []string) int {
	if len(argv) > 0 && filepath.Base(argv[0]) == grpcHealthProbeName {
		return grpcHealthProbe(argv[1:], os.Stdout, os.Stderr)
	}
	return dispatch(argv[1:])
}

func dispatch(args []string) int {
	name := "serve"
	switch {
	case len(args) > 0 && !strings.HasPrefix(args[0], "-"):
		name, args = args[0], args[1:]
	case len(args) > 0 && isHelpFlag(args[0]):
		name, args = "help", nil // eventlog-server -h: every command
	}
	switch {
	case name == "help" && len(args) > 0:
		return dispatch([]string{args[0], "-h"}) // help COMMAND: its flags
	case name == "help":
		// The commands, then serve's flags: without a command, it serves.
		usage(os.Stdout)
		fmt.Fprintln(os.Stdout, "\nWithout a command (or with flags only) it runs serve:")
		fmt.Fprintln(os.Stdout)
		return commands["serve"].run([]string{"-h"})
	}
	cmd, ok := commands[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "eventlog-server: unknown command %q\n", name)
		usage(os.Stderr)
		return 2
	}
	return cmd.run(args)
}

func isHelpFlag(arg string) bool { return wantsHelp([]string{arg}) }

func usage(w *os.File) {
	fmt.Fprintln(w, "usage: eventlog-server [command] [flags]")
	fmt.Fprintln(w, "\ncommands (\"eventlog-server COMMAND -h\" for its flags):")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-8s %s\n", n, commands[n].summary)
	}
}
