package service

import (
	"errors"
	"fmt"
	"io/fs"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ccnp-eventlog/ccnp-eventlog/containerid"
	"github.com/ccnp-eventlog/ccnp-eventlog/containerid/cri"
	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"github.com/ccnp-eventlog/ccnp-eventlog/hwsource"
	"github.com/ccnp-eventlog/ccnp-eventlog/internal/boundedread"
	"github.com/ccnp-eventlog/ccnp-eventlog/internal/dirfd"
	"github.com/ccnp-eventlog/ccnp-eventlog/outdir"
	eventlogpb "github.com/ccnp-eventlog/ccnp-eventlog/proto"
	"github.com/ccnp-eventlog/ccnp-eventlog/runtimelog"
)

// TestToStatus: errors the handlers make themselves map to their codes,
// with their own message.
func TestToStatus(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code codes.Code
		msg  string
	}{
		{invalidRequest("unknown format %d", 3), codes.InvalidArgument, "unknown format 3"},
		{&noSourceError{eventlogpb.CATEGORY_TPM_EVENTLOG}, codes.FailedPrecondition, "this server has no TPM_EVENTLOG source (its start-up log says why)"},
		{fmt.Errorf("%w: %v", errCannotReplay, errors.New("sm3_256 is not supported")), codes.FailedPrecondition, "cannot replay the log: sm3_256 is not supported"},
		{&keyConflictError{"key k names another event"}, codes.AlreadyExists, "key k names another event"},
		{&runtimelog.KeyConflictError{Reason: "key k names event 3"}, codes.AlreadyExists, "key k names event 3"},
		{&runtimelog.LimitError{Reason: "the TDX runtime log is full"}, codes.ResourceExhausted, "the TDX runtime log is full"},
		{&runtimelog.ExtendError{Uncertain: true, Err: errors.New("still pending")}, codes.Unavailable, "still pending"},
		{&runtimelog.ExtendError{Err: fmt.Errorf("%w: no kernel support", hwsource.ErrNotAvailable)}, codes.FailedPrecondition, "live registers not available: no kernel support"},
		{&runtimelog.WriteError{Path: "/state/runtime-tdx.log", Err: fs.ErrPermission}, codes.Internal, "writing /state/runtime-tdx.log: permission denied"},
		{&runtimelog.WriteError{Path: "/state/runtime-tdx.log", Err: syscall.ENOSPC}, codes.ResourceExhausted, "writing /state/runtime-tdx.log: no space left on device"},
		{&runtimelog.UnavailableError{Kind: eventlog.TDX, Err: &runtimelog.CorruptError{Path: "/j", Offset: 9, Record: 2, Reason: "record 2 is damaged"}}, codes.DataLoss,
			"container-level TDX events are not available on this server: runtime log /j is corrupt at byte 9: record 2 is damaged (move it aside to start a new one; the registers will then disagree with it until the next reboot)"},
		{fmt.Errorf("reading: %w", &boundedread.FileTypeError{Path: "/sys/x", Type: fs.ModeNamedPipe, Want: "a regular file"}), codes.FailedPrecondition, "reading: /sys/x is a named pipe, not a regular file"},
		{fmt.Errorf("/sys/x %w, wrong file?", &boundedread.TooLargeError{Path: "/sys/x", Limit: 5}), codes.FailedPrecondition, "/sys/x holds more than 5 bytes, wrong file?"},
		{&hwsource.TimeoutError{Source: "TPM log", After: time.Minute}, codes.Unavailable, "reading the TPM log has not finished after 1m0s: the source does not answer (a hung file system or device?)"},
		{errors.New("a bug"), codes.Internal, "a bug"},
		// Callers whose container cannot be told, or that fail a check.
		{&identityError{unauthenticated: true, err: errors.New("not over the socket")}, codes.Unauthenticated, "not over the socket"},
		{&identityError{err: fmt.Errorf("%w: on the host", containerid.ErrNotInContainer)}, codes.FailedPrecondition, "not in a container: on the host"},
		{&identityError{err: fmt.Errorf("%w: mount it", containerid.ErrCannotCheck)}, codes.FailedPrecondition, "cannot check the cgroup: mount it"},
		{&identityError{err: fmt.Errorf("%w: x is owned by uid 1000", containerid.ErrNotRuntimeMade)}, codes.PermissionDenied, "not a cgroup a container runtime made: x is owned by uid 1000"},
		{&identityError{err: fmt.Errorf("%w: exited", cri.ErrNotRunning)}, codes.PermissionDenied, "not a running container: exited"},
		{&identityError{err: fmt.Errorf("%w: pid:[1] and pid:[2]", containerid.ErrOtherPIDNamespace)}, codes.PermissionDenied, "the calling process is not in the container's PID namespace: pid:[1] and pid:[2]"},
		{&identityError{err: &cri.UnavailableError{Socket: "/run/containerd/containerd.sock", Err: errors.New("connection refused")}}, codes.Unavailable, "the container runtime at /run/containerd/containerd.sock cannot be asked: connection refused"},
		{&identityError{err: fmt.Errorf("%w: no pid", cri.ErrUnsupported)}, codes.FailedPrecondition, "the runtime does not say which process a container runs: no pid"},
		// The server's own files: never the caller's PERMISSION_DENIED or
		// FAILED_PRECONDITION for a missing file.
		{&outdir.Error{Path: "/out", Err: fmt.Errorf("%w: 5 of 5 bytes held", outdir.ErrFull)}, codes.ResourceExhausted, "writing /out: output directory full: 5 of 5 bytes held"},
		{&outdir.Error{Path: "/out/f", Err: syscall.ENOSPC}, codes.ResourceExhausted, "writing /out/f: no space left on device"},
		{&outdir.Error{Path: "/out/c/f", Err: fmt.Errorf("%w: use inline", outdir.ErrCannotChown)}, codes.FailedPrecondition, "writing /out/c/f: cannot give the file to the caller's uid: use inline"},
		{&outdir.Error{Path: "/out/c", Err: &fs.PathError{Op: "open", Path: "/out/c", Err: dirfd.ErrSymlink}}, codes.Internal, "writing /out/c: open /out/c: " + dirfd.ErrSymlink.Error()},
		{&outdir.Error{Path: "/out/f", Err: fs.ErrPermission}, codes.Internal, "writing /out/f: permission denied"},
		{&outdir.Error{Path: "/out/f", Err: fs.ErrNotExist}, codes.Internal, "writing /out/f: file does not exist"},
	} {
		st := status.Convert(toStatus(tc.err))
		if st.Code() != tc.code || st.Message() != tc.msg {
			t.Errorf("%v: %s %q, want %s %q", tc.err, st.Code(), st.Message(), tc.code, tc.msg)
		}
	}
}
