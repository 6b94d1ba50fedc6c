// Package tpm2eventlog runs tpm2_eventlog (tpm2-tools; Debian's 5.4 here and
// in CI), the independent decoder the tests compare this project's parser,
// files and replay with, and reads the YAML it prints.
//
// What 5.4 gets wrong, and the tests therefore work around, is said where
// they do: it cannot read legacy SHA1-only logs, stops at events with index
// 0xFFFFFFFF, and extends EV_NO_ACTION events like any other.
package tpm2eventlog

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"go.yaml.in/yaml/v3"
)

// Timeout bounds one run: a decoder that hangs on a log must fail the test,
// not stall it until the test binary's own timeout.
const Timeout = time.Minute

// Find returns the path of tpm2_eventlog, or an error that says how to
// install it (tests skip on it).
func Find() (string, error) {
	path, err := exec.LookPath("tpm2_eventlog")
	if err != nil {
		return "", fmt.Errorf("tpm2_eventlog is not installed (apt-get install tpm2-tools): %w", err)
	}
	return path, nil
}

// Output is what tpm2_eventlog printed about a log.
type Output struct {
	// Events are the log's records, the Spec ID header first (EventNum 0).
	Events []Event `yaml:"events"`
	// PCRs maps an algorithm name ("sha256") and a PCR number to the value
	// it computed, in hex (without its "0x").
	PCRs map[string]map[uint32]string `yaml:"pcrs"`
	// Stderr is what it printed there: warnings about the log, such as an
	// event whose digest does not match its data.
	Stderr string `yaml:"-"`
}

// Event is one record of the log.
type Event struct {
	EventNum  int      `yaml:"EventNum"`
	PCRIndex  uint32   `yaml:"PCRIndex"`
	EventType string   `yaml:"EventType"`
	Digests   []Digest `yaml:"Digests"`
	EventSize int      `yaml:"EventSize"`
	// Event is the event data: decoded into fields for the types it
	// knows, text for the types whose data is text (EV_EFI_ACTION, ...),
	// one quoted hex string for the others (see DataHex).
	Event yaml.Node `yaml:"Event"`
}

// Digest is one of an event's digests.
type Digest struct {
	AlgorithmID string `yaml:"AlgorithmId"`
	Digest      string `yaml:"Digest"`
}

// DataHex is the event data when tpm2_eventlog printed it as one hex string
// (it quotes those), rather than decoding it or printing it as text; "" when
// it did not.
func (e *Event) DataHex() string {
	if e.Event.Kind != yaml.ScalarNode || e.Event.Style != yaml.DoubleQuotedStyle {
		return ""
	}
	return e.Event.Value
}

// Fields counts the names of the fields tpm2_eventlog decoded from the event
// data, at any depth ("UnicodeName", "DevicePath", ...).
func (e *Event) Fields() map[string]int {
	n := map[string]int{}
	var walk func(*yaml.Node)
	walk = func(node *yaml.Node) {
		if node.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(node.Content); i += 2 {
				n[node.Content[i].Value]++
			}
		}
		for _, c := range node.Content {
			walk(c)
		}
	}
	walk(&e.Event)
	return n
}

// Run runs tool (Find's path) on the log file at path, for at most Timeout
// (less when ctx ends first), and parses what it printed. On an error, the
// Output returned still holds Stderr, and whatever could be parsed.
func Run(ctx context.Context, tool, path string) (*Output, error) {
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, tool, path)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// At the deadline its whole process group is killed, children too;
	// and Wait gives up on pipes still held open soon after.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	runErr := cmd.Run()
	out := &Output{Stderr: stderr.String()}
	if runErr != nil {
		if ctx.Err() != nil {
			runErr = fmt.Errorf("%w (%v)", runErr, ctx.Err())
		}
		return out, fmt.Errorf("tpm2_eventlog %s: %w: %s", path, runErr, firstLine(out.Stderr))
	}
	if err := yaml.Unmarshal(stdout.Bytes(), out); err != nil {
		return out, fmt.Errorf("tpm2_eventlog %s printed YAML that does not parse: %w", path, err)
	}
	for alg, pcrs := range out.PCRs {
		for pcr, v := range pcrs {
			hex, ok := strings.CutPrefix(v, "0x")
			if !ok {
				return out, fmt.Errorf("tpm2_eventlog %s: %s PCR%d is %q, not 0x and hex", path, alg, pcr, v)
			}
			pcrs[pcr] = hex
		}
	}
	return out, nil
}

// RunOn writes log to a temporary file and runs tool on it, as Run does.
func RunOn(ctx context.Context, tool string, log []byte) (*Output, error) {
	f, err := os.CreateTemp("", "tpm2eventlog-*.bin")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	_, err = f.Write(log)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("writing the log for tpm2_eventlog: %w", err)
	}
	return Run(ctx, tool, f.Name())
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return line
}
