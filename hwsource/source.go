// Package hwsource reads a node's event logs and live measurement registers:
// one Source per log category, with a real backend for each (CCEL via sysfs
// for TDX, securityfs and the TPM device for TPM). Simulated backends live in
// package simulator and satisfy the same interface.
package hwsource

import (
	"context"
	"errors"

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
	// ReadLog reads the raw log. Errors wrap fs.ErrNotExist when this node
	// has no such log, fs.ErrPermission when it cannot be read, and
	// *ccel.Error / *eventlog.FormatError when what was read is malformed;
	// their messages name the path and what to do.
	ReadLog(ctx context.Context) (RawLog, error)
	// Registers reads the live register values, for the algorithms and
	// registers the node exposes. Errors wrap ErrNotAvailable when this node
	// cannot read them (no device, kernel too old, ...).
	Registers(ctx context.Context) (eventlog.Bank, error)
	// RegistersFrom says where Registers reads from (a sysfs directory, a
	// TPM device, a simulator), for reports that compare log and registers.
	RegistersFrom() string
}

// RawLog is a log as a source read it, before parsing.
type RawLog struct {
	Data []byte
	// Area says Data is a fixed-size log area whose unused tail is padding
	// (the CCEL log area): parse it with eventlog.ParseArea, else Parse.
	Area bool
	// Address is the log area's physical address (CCEL LASA), 0 if unknown.
	Address uint64
	// Path is the file Data was read from; empty for simulated sources.
	Path string
}

// Parse parses the raw log the way its source says it is stored.
func (r RawLog) Parse() (*eventlog.Log, error) {
	if r.Area {
		return eventlog.ParseArea(r.Data)
	}
	return eventlog.Parse(r.Data)
}

// ErrNotAvailable is wrapped by Registers errors when live register values
// cannot be read on this node.
var ErrNotAvailable = errors.New("live registers not available")
