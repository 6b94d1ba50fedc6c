package hwsource

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/ccnp-eventlog/ccnp-eventlog/internal/boundedread"
)

// Size limits for what the real backends read. Real CCEL log areas are 64 KiB
// to 1 MiB and real TPM logs well under 1 MiB; the limits are 8 times that.
// They bound memory: parsed, a log of the smallest events takes about five
// times its size (an Event and its digest for every 32 bytes), and the
// server must stay within 256 MiB whatever log it accepts (BENCHMARKS.md:
// read and parsed at start, 64 MiB logs took 880 MiB, 16 MiB ones 220 MiB).
// A larger log is refused with an error naming the path and the limit.
const (
	maxTableSize = 4 << 10
	maxAreaSize  = 8 << 20
	maxTPMLog    = 8 << 20
)

// StagedDir is where, under the root, the Helm chart's init container
// (eventlog-server stage) copies the firmware logs that only root can read,
// so that a server that is not root can read them: the Staged*Path files.
const StagedDir = "run/firmware"

// hostPath joins a host path under root. An empty root is "/".
func hostPath(root, path string) string {
	if root == "" {
		root = "/"
	}
	return filepath.Join(root, path)
}

// readLimited reads a whole file, failing if it holds more than limit bytes:
// an event log, a CCEL table, an RTMR or the boot ID. It reads regular files
// only, without blocking: a FIFO, device or directory at the path is a
// *boundedread.FileTypeError, and a file larger than limit a
// *boundedread.TooLargeError, both naming the path.
func readLimited(path string, limit int64) ([]byte, error) {
	b, err := boundedread.ReadFile(path, limit)
	var tooLarge *boundedread.TooLargeError
	if errors.As(err, &tooLarge) {
		return nil, fmt.Errorf("%s %w, far more than such a file has: wrong file?", path, err)
	}
	return b, err
}

// joinErrors wraps errs like errors.Join, but on one line: the messages end
// up in gRPC statuses and log lines.
func joinErrors(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	return lineJoin(errs)
}

type lineJoin []error

func (e lineJoin) Error() string {
	msgs := make([]string, len(e))
	for i, err := range e {
		msgs[i] = err.Error()
	}
	return strings.Join(msgs, "; ")
}

func (e lineJoin) Unwrap() []error { return e }

// orList renders paths as "a", "a or b", "a, b or c".
func orList(paths []string) string {
	switch len(paths) {
	case 0:
		return ""
	case 1:
		return paths[0]
	}
	return strings.Join(paths[:len(paths)-1], ", ") + " or " + paths[len(paths)-1]
}
