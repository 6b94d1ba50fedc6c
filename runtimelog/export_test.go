package runtimelog

import "testing"

// CountFsyncs makes the journal's fdatasync call count first, for the rest
// of the test, and returns how many it made so far.
func CountFsyncs(t testing.TB, count func()) {
	real := fdatasync
	fdatasync = func(fd int) error {
		count()
		return real(fd)
	}
	t.Cleanup(func() { fdatasync = real })
}

// MaxGroup is maxGroup, for tests.
const MaxGroup = maxGroup
