package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// envPrefix is the prefix of the environment variable behind a flag:
// --output-dir is EVENTLOG_OUTPUT_DIR.
const envPrefix = "EVENTLOG_"

func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// hasEnv says whether a command's flag is also read from its environment
// variable: every flag of serve (a DaemonSet configures the server through
// its environment), and --socket of the commands that talk to a server, so
// that a pod with the server's environment finds its socket. Other commands'
// flags come from their command line only: an EVENTLOG_COUNT left in the
// environment must not change what `get` returns.
func hasEnv(fs *flag.FlagSet, name string) bool {
	return fs.Name() == "serve" || name == "socket"
}

// newFlagSet returns a flag set whose usage lists each flag once, with its
// environment variable if it has one.
func newFlagSet(name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() { printUsage(fs.Output(), fs, synopsis) }
	return fs
}

func printUsage(w io.Writer, fs *flag.FlagSet, synopsis string) {
	var withEnv, without int
	fs.VisitAll(func(f *flag.Flag) {
		if hasEnv(fs, f.Name) {
			withEnv++
		} else {
			without++
		}
	})
	fmt.Fprintf(w, "usage: %s\n\n", synopsis)
	switch {
	case withEnv+without == 0:
		return
	case without == 0:
		fmt.Fprintln(w, "flags (each also read from the environment variable shown):")
	case withEnv > 0:
		fmt.Fprintln(w, "flags (one shown with an environment variable also reads it):")
	default:
		fmt.Fprintln(w, "flags:")
	}
	fs.VisitAll(func(f *flag.Flag) {
		dashes := "--"
		if len(f.Name) == 1 {
			dashes = "-" // -o, as it is written
		}
		fmt.Fprintf(w, "  %s%s", dashes, f.Name)
		if hasEnv(fs, f.Name) {
			fmt.Fprintf(w, " (%s)", envName(f.Name))
		}
		fmt.Fprintf(w, "\n    \t%s", f.Usage)
		if def := defaultText(f); def != "" {
			fmt.Fprintf(w, " (default %s)", def)
		}
		fmt.Fprintln(w)
	})
}

// defaultText is how a flag's default is shown: nothing for a zero value or
// where its usage says it already, quoted for a string.
func defaultText(f *flag.Flag) string {
	switch f.DefValue {
	case "", "0", "false", "0s":
		return ""
	}
	if strings.Contains(f.Usage, "(default") {
		return ""
	}
	if g, ok := f.Value.(flag.Getter); ok {
		if _, isString := g.Get().(string); isString {
			return fmt.Sprintf("%q", f.DefValue)
		}
	}
	return f.DefValue
}

// parseFlags parses args, then gives every flag that has an environment
// variable (hasEnv) and was not set on the command line the variable's
// value, if set. Command-line flags win. Help asked for (-h, --help) is
// printed to standard output, as `eventlog-server help` is, where the
// command would write its messages to standard error.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if wantsHelp(args) && fs.Output() == io.Writer(os.Stderr) {
		fs.SetOutput(os.Stdout)
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil || !hasEnv(fs, f.Name) {
			return
		}
		v, ok := os.LookupEnv(envName(f.Name))
		if !ok {
			return
		}
		if e := fs.Set(f.Name, v); e != nil {
			err = fmt.Errorf("%s=%q: %v", envName(f.Name), v, e)
		}
	})
	return err
}

// wantsHelp says whether args ask for help (before a "--").
func wantsHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "-h", "-help", "--help", "--h":
			return true
		case "--":
			return false
		}
	}
	return false
}
