package runtimelog

import "github.com/ccnp-eventlog/ccnp-eventlog/eventlog"

// The errors of recording, besides the journal's *CorruptError and
// Reconcile's *MismatchError.

// UnavailableError says why a kind's runtime events cannot be recorded or
// read: recording is off (the reason wrapped), or the journal and the
// register cannot be squared.
type UnavailableError struct {
	Kind eventlog.Kind
	Err  error
}

func (e *UnavailableError) Error() string {
	return "container-level " + e.Kind.String() + " events are not available on this server: " + e.Err.Error()
}
func (e *UnavailableError) Unwrap() error { return e.Err }

// ExtendError is a register extend that failed. Uncertain: whether it
// happened could not be told, and the event waits in the journal.
type ExtendError struct {
	Uncertain bool
	Err       error
}

func (e *ExtendError) Error() string { return e.Err.Error() }
func (e *ExtendError) Unwrap() error { return e.Err }

// LimitError is a limit reached: a container's count or size of events, or
// the journal's size.
type LimitError struct{ Reason string }

func (e *LimitError) Error() string { return e.Reason }

// KeyConflictError is an idempotency key the container already recorded
// another event under.
type KeyConflictError struct{ Reason string }

func (e *KeyConflictError) Error() string { return e.Reason }

// WriteError is a failure to write the journal: the server's own file, so
// its problem, not the caller's, whatever the error (a permission too).
type WriteError struct {
	Path string
	Err  error
}

func (e *WriteError) Error() string { return "writing " + e.Path + ": " + e.Err.Error() }
func (e *WriteError) Unwrap() error { return e.Err }
