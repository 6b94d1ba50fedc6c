// Package hwsource reads a node's event logs and live measurement registers:
// one Source per log category, with a real backend for each (CCEL via sysfs
// for TDX, securityfs and the TPM device for TPM). Simulated backends live in
// package simulator and satisfy the same interface. A LogCache reads a
// source's log once for a server, with bounded waits.
package hwsource

import (
	"context"
	"errors"
	"fmt"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
)

// Source is where one category's event log comes from on this node.
type Source interface {
	// Name says where the log comes from, for logs, health and replies:
	// the path it is read from, or what is simulated.
	Name() string
	// Kind is the register space the log's indexes name.
	Kind() eventlog.Kind
	// Simulated reports whether the source is simulated hardware.
	Simulated() bool
	// ReadLog reads and parses the log. Errors wrap fs.ErrNotExist when
	// this node has no such log, fs.ErrPermission when it cannot be read,
	// and *ccel.Error / *eventlog.FormatError when what was read is
	// malformed; their messages name the path and what to do.
	ReadLog(ctx context.Context) (Log, error)
	// Registers reads the live register values, for the algorithms and
	// registers the node exposes. Errors wrap ErrNotAvailable when this node
	// cannot read them (no device, kernel too old, ...).
	Registers(ctx context.Context) (eventlog.Bank, error)
	// RegistersFrom says where Registers reads from (a sysfs directory, a
	// TPM device, a simulator), for reports that compare log and registers.
	RegistersFrom() string
}

// Log is a log as a source read it: parsed there, once, so that a malformed
// log is reported with the path it came from, and nobody parses it again.
type Log struct {
	// Parsed is the log. Its events alias Data.
	Parsed *eventlog.Log
	// Data is what was read: the log, or, with Area, a fixed-size log area
	// whose unused tail is padding (the CCEL log area).
	Data []byte
	Area bool
	// Address is the log area's physical address (CCEL LASA), 0 if unknown.
	Address uint64
	// Path is the file Data was read from; empty for simulated sources.
	Path string
}

// ParseLog parses data, a log or with area a log area, into a Log; an error
// names where, the path or else the source.
func ParseLog(data []byte, area bool, where string) (Log, error) {
	parse := eventlog.Parse
	if area {
		parse = eventlog.ParseArea
	}
	l, err := parse(data)
	if err != nil {
		return Log{}, fmt.Errorf("%s: %w", where, err)
	}
	return Log{Parsed: l, Data: data, Area: area}, nil
}

// ErrNotAvailable is wrapped by Registers errors when live register values
// cannot be read on this node.
var ErrNotAvailable = errors.New("live registers not available")
