package service

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"syscall"
	"time"

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

// outputError is a failure to write the runtime log. It is the server's
// problem, not the source's: a permission error here is INTERNAL, not
// PERMISSION_DENIED. (A reply's file fails with an *outdir.Error.)
type outputError struct {
	path string
	err  error
}

func (e *outputError) Error() string { return "writing " + e.path + ": " + e.err.Error() }
func (e *outputError) Unwrap() error { return e.err }

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

// errCannotReplay is wrapped when a log cannot be replayed to compare it with
// the registers: it uses an algorithm this server cannot compute.
var errCannotReplay = errors.New("cannot replay the log")

// limitError is a limit reached: a container's count or size of events, the
// size of one event, the node's runtime log, or an inline reply's size.
type limitError struct{ msg string }

func (e *limitError) Error() string { return e.msg }

// keyConflictError is an idempotency key the calling container already
// recorded another event under. ALREADY_EXISTS rather than
// FAILED_PRECONDITION: the key already names a record, which is what the
// code means, and a client can tell this apart from the node's state
// (recording off, no container), which FAILED_PRECONDITION reports; neither
// is worth retrying.
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

// runtimeUnavailableError says why a category's container-level events
// cannot be recorded or read on this server.
type runtimeUnavailableError struct {
	kind eventlog.Kind
	err  error
}

func (e *runtimeUnavailableError) Error() string {
	return "container-level " + e.kind.String() + " events are not available on this server: " + e.err.Error()
}
func (e *runtimeUnavailableError) Unwrap() error { return e.err }

// extendError is a register extend that failed. uncertain: whether it
// happened could not be told, and the event waits in the runtime log.
type extendError struct {
	uncertain bool
	err       error
}

func (e *extendError) Error() string { return e.err.Error() }
func (e *extendError) Unwrap() error { return e.err }

// sourceTimeoutError is a source whose read has not finished in the time
// requests wait for it: a hung file system or device.
type sourceTimeoutError struct {
	source string
	after  time.Duration
}

func (e *sourceTimeoutError) Error() string {
	return fmt.Sprintf("reading the %s has not finished after %s: the source does not answer (a hung file system or device?)", e.source, e.after)
}

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
		outErr      *outputError
		dirErr      *outdir.Error
		rangeErr    *eventlog.RangeError
		formatErr   *eventlog.FormatError
		tableErr    *ccel.Error
		reqErr      *requestError
		noSourceErr *noSourceError
		limitErr    *limitError
		keyErr      *keyConflictError
		identityErr *identityError
		runtimeErr  *runtimeUnavailableError
		extendErr   *extendError
		corruptErr  *runtimelog.CorruptError
		quoteErr    *tdxquote.Error
		typeErr     *boundedread.FileTypeError
		tooLargeErr *boundedread.TooLargeError
		timeoutErr  *sourceTimeoutError
	)
	code := codes.Internal
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	case errors.As(err, &reqErr), errors.As(err, &quoteErr):
		// A quote or TDREPORT that cannot be read came in the request.
		code = codes.InvalidArgument
	case errors.As(err, &noSourceErr), errors.Is(err, errCannotReplay):
		code = codes.FailedPrecondition
	case errors.As(err, &limitErr):
		code = codes.ResourceExhausted
	case errors.As(err, &keyErr):
		code = codes.AlreadyExists
	case errors.As(err, &identityErr):
		var criErr *cri.UnavailableError
		switch {
		case identityErr.unauthenticated:
			code = codes.Unauthenticated
		case errors.Is(err, containerid.ErrNotRuntimeMade), errors.Is(err, cri.ErrNotRunning), errors.Is(err, errOtherPIDNamespace):
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
		if !extendErr.uncertain && (errors.Is(err, hwsource.ErrNotAvailable) || errors.Is(err, fs.ErrPermission)) {
			code = codes.FailedPrecondition
		}
	case errors.As(err, &runtimeErr):
		code = codes.FailedPrecondition
		if errors.As(err, &corruptErr) {
			code = codes.DataLoss
		}
	case errors.As(err, &outErr), errors.As(err, &dirErr):
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
