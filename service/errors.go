package service

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"syscall"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ccnp-eventlog/ccnp-eventlog/containerid"
	"github.com/ccnp-eventlog/ccnp-eventlog/containerid/cri"
	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog/ccel"
	"github.com/ccnp-eventlog/ccnp-eventlog/hwsource"
	"github.com/ccnp-eventlog/ccnp-eventlog/internal/boundedread"
	"github.com/ccnp-eventlog/ccnp-eventlog/outdir"
	eventlogpb "github.com/ccnp-eventlog/ccnp-eventlog/proto"
	"github.com/ccnp-eventlog/ccnp-eventlog/runtimelog"
	"github.com/ccnp-eventlog/ccnp-eventlog/tdxquote"
)

// requestError is a request that makes no sense, whatever the node's state.
type requestError struct{ msg string }

func (e *requestError) Error() string { return e.msg }

func invalidRequest(format string, args ...any) error {
	return &requestError{fmt.Sprintf(format, args...)}
}

// noSourceError is a request for a category this server has no source for.
type noSourceError struct{ cat eventlogpb.CATEGORY }

func (e *noSourceError) Error() string {
	return fmt.Sprintf("this server has no %s source (its start-up log says why)", e.cat)
}

// preconditionError is a request the node cannot answer, whatever the
// caller does (the IMA list carries no container).
type preconditionError struct{ msg string }

func (e *preconditionError) Error() string { return e.msg }

// errCannotReplay is wrapped when a log cannot be replayed to compare it with
// the registers: it uses an algorithm this server cannot compute.
var errCannotReplay = errors.New("cannot replay the log")

// limitError is a limit reached by a request: the size of one event, or an
// inline reply's size (runtimelog.LimitError: a container's events, the
// runtime log's).
type limitError struct{ msg string }

func (e *limitError) Error() string { return e.msg }

// keyConflictError is an idempotency key the calling container already
// recorded an event under in another category (runtimelog.KeyConflictError
// in the same one).
type keyConflictError struct{ msg string }

func (e *keyConflictError) Error() string { return e.msg }

// identityError is a caller whose container cannot be told, or that failed
// a check: not over the Unix socket (unauthenticated); not in a container,
// not visible, gone, or the server cannot check (FAILED_PRECONDITION); a
// cgroup its runtime did not make, or a container the runtime does not run
// it in (PERMISSION_DENIED); the runtime cannot be asked (UNAVAILABLE).
type identityError struct {
	unauthenticated bool
	err             error
}

func (e *identityError) Error() string { return e.err.Error() }
func (e *identityError) Unwrap() error { return e.err }

// skipRangeError is a zero-based start_position that skips every event
// (paging.go). It wraps the *eventlog.RangeError (OUT_OF_RANGE) but words
// it in the caller's terms: the start it sent, not the event number it
// became.
type skipRangeError struct {
	skip int32
	err  *eventlog.RangeError
}

func (e *skipRangeError) Error() string {
	return fmt.Sprintf("start position %d is past the last event: the log has %d events, and this server counts start_position as the events to skip (--zero-based-start), so it must be at most %d",
		e.skip, e.err.Total, max(e.err.Total-1, 0))
}

func (e *skipRangeError) Unwrap() error { return e.err }

// toStatus maps every error the service can meet to its gRPC status, in one
// place: the service's own errors above, and those of the packages it
// calls. The message is the error's own, which names what was wrong and
// where; no error leaves the service as codes.Unknown.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	var (
		reqErr      *requestError
		noSourceErr *noSourceError
		condErr     *preconditionError
		limitErr    *limitError
		keyErr      *keyConflictError
		identityErr *identityError
		timeoutErr  *hwsource.TimeoutError
		rangeErr    *eventlog.RangeError
		formatErr   *eventlog.FormatError
		tableErr    *ccel.Error
		quoteErr    *tdxquote.Error
		typeErr     *boundedread.FileTypeError
		tooLargeErr *boundedread.TooLargeError
		dirErr      *outdir.Error
		rtLimitErr  *runtimelog.LimitError
		rtKeyErr    *runtimelog.KeyConflictError
		runtimeErr  *runtimelog.UnavailableError
		extendErr   *runtimelog.ExtendError
		journalErr  *runtimelog.WriteError
		corruptErr  *runtimelog.CorruptError
	)
	code := codes.Internal
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	case errors.As(err, &reqErr), errors.As(err, &quoteErr):
		// A quote or TDREPORT that cannot be read came in the request.
		code = codes.InvalidArgument
	case errors.As(err, &noSourceErr), errors.As(err, &condErr), errors.Is(err, errCannotReplay):
		code = codes.FailedPrecondition
	case errors.As(err, &limitErr), errors.As(err, &rtLimitErr):
		code = codes.ResourceExhausted
	case errors.As(err, &keyErr), errors.As(err, &rtKeyErr):
		// ALREADY_EXISTS rather than FAILED_PRECONDITION: the key already
		// names a record, which is what the code means, and a client can
		// tell this apart from the node's state (recording off, no
		// container), which FAILED_PRECONDITION reports; neither is worth
		// retrying.
		code = codes.AlreadyExists
	case errors.As(err, &identityErr):
		var criErr *cri.UnavailableError
		switch {
		case identityErr.unauthenticated:
			code = codes.Unauthenticated
		case errors.Is(err, containerid.ErrNotRuntimeMade), errors.Is(err, cri.ErrNotRunning), errors.Is(err, containerid.ErrOtherPIDNamespace):
			code = codes.PermissionDenied
		case errors.As(err, &criErr):
			// The server's problem, not the caller's: it may pass.
			code = codes.Unavailable
		default:
			code = codes.FailedPrecondition
		}
	case errors.As(err, &extendErr):
		// The register could not be reached: retrying may work, unless the
		// server lacks what extending needs (a kernel, a permission).
		code = codes.Unavailable
		if !extendErr.Uncertain && (errors.Is(err, hwsource.ErrNotAvailable) || errors.Is(err, fs.ErrPermission)) {
			code = codes.FailedPrecondition
		}
	case errors.As(err, &runtimeErr):
		code = codes.FailedPrecondition
		if errors.As(err, &corruptErr) {
			code = codes.DataLoss
		}
	case errors.As(err, &journalErr), errors.As(err, &dirErr):
		// The server's own files: a permission error here is INTERNAL, not
		// PERMISSION_DENIED, and so is anything in the way of its files.
		switch {
		case errors.Is(err, outdir.ErrFull) || errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT):
			code = codes.ResourceExhausted
		case errors.Is(err, outdir.ErrCannotChown):
			code = codes.FailedPrecondition
		}
	case errors.As(err, &rangeErr):
		code = codes.OutOfRange
	case errors.Is(err, eventlog.ErrNegative):
		code = codes.InvalidArgument
	case errors.As(err, &formatErr), errors.As(err, &tableErr):
		code = codes.DataLoss
	case errors.As(err, &typeErr), errors.As(err, &tooLargeErr):
		// A FIFO, device or directory where a log should be, or a file
		// far larger than any log: the node is set up wrong, and nothing
		// was found corrupt (the file was not read), so not DATA_LOSS.
		code = codes.FailedPrecondition
	case errors.As(err, &timeoutErr):
		code = codes.Unavailable
	case errors.Is(err, fs.ErrNotExist):
		code = codes.FailedPrecondition
	case errors.Is(err, fs.ErrPermission):
		code = codes.PermissionDenied
	}
	return status.Error(code, err.Error())
}
