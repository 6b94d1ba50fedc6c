package service

import (
	"context"
	"errors"
	"io/fs"
	"syscall"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog/ccel"
)

// errDirFull is wrapped when the output directory is at its size limit and
// nothing in it is old enough to be removed.
var errDirFull = errors.New("output directory full")

// outputError is a failure to write a reply's file. It is the server's
// problem, not the source's: a permission error here is INTERNAL, not
// PERMISSION_DENIED.
type outputError struct {
	path string
	err  error
}

func (e *outputError) Error() string { return "writing " + e.path + ": " + e.err.Error() }
func (e *outputError) Unwrap() error { return e.err }

// toStatus maps every error the service can meet to its gRPC status, in one
// place. The message is the error's own, which names what was wrong and where;
// no error leaves the service as codes.Unknown.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	var (
		outErr    *outputError
		rangeErr  *eventlog.RangeError
		formatErr *eventlog.FormatError
		tableErr  *ccel.Error
	)
	code := codes.Internal
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	case errors.As(err, &outErr):
		if errors.Is(err, errDirFull) || errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
			code = codes.ResourceExhausted
		}
	case errors.As(err, &rangeErr):
		code = codes.OutOfRange
	case errors.Is(err, eventlog.ErrNegative):
		code = codes.InvalidArgument
	case errors.As(err, &formatErr), errors.As(err, &tableErr):
		code = codes.DataLoss
	case errors.Is(err, fs.ErrNotExist):
		code = codes.FailedPrecondition
	case errors.Is(err, fs.ErrPermission):
		code = codes.PermissionDenied
	}
	return status.Error(code, err.Error())
}
