package service

import (
	"cmp"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strconv"

	"github.com/ccnp-eventlog/ccnp-eventlog/internal/boundedread"
	"github.com/ccnp-eventlog/ccnp-eventlog/internal/durable"
	"github.com/ccnp-eventlog/ccnp-eventlog/runtimelog"
)

// RuntimeOptions configure container-level (SAAS) event logs.
type RuntimeOptions struct {
	// StateDir holds the runtime logs, which must outlive the server (a
	// host directory); "" turns container-level events off.
	StateDir string
	// ProcRoot is the proc filesystem callers' cgroups are read from:
	// "/proc" when empty. The server must see callers' pids in it, so in a
	// pod it needs the host's PID namespace.
	ProcRoot string
	// MaxEvents and MaxBytes bound each container's events: their number
	// and the sum of their data sizes.
	MaxEvents int
	MaxBytes  int64
	// MaxEventSize bounds the data of one event.
	MaxEventSize int
	// MaxLogBytes bounds a category's runtime log as a whole (the journal,
	// every container's events with their attribution): it is kept in
	// memory, and every event stays in it until the node reboots, since
	// the register holds them all.
	MaxLogBytes int64
	// OutputBytes bounds the per-container output directories together;
	// their files live as long as the output directory's (Options.Limits).
	OutputBytes int64
}

// Runtime defaults, for callers that set none.
const (
	DefaultMaxEvents    = 1024
	DefaultMaxBytes     = 1 << 20
	DefaultMaxEventSize = 64 << 10
	DefaultMaxLogBytes  = 16 << 20
	DefaultOutputBytes  = 16 << 20
)

func (o *RuntimeOptions) setDefaults() error {
	o.ProcRoot = cmp.Or(o.ProcRoot, "/proc")
	o.MaxEvents = cmp.Or(o.MaxEvents, DefaultMaxEvents)
	o.MaxBytes = cmp.Or(o.MaxBytes, DefaultMaxBytes)
	o.MaxEventSize = cmp.Or(o.MaxEventSize, DefaultMaxEventSize)
	o.MaxLogBytes = cmp.Or(o.MaxLogBytes, DefaultMaxLogBytes)
	o.OutputBytes = cmp.Or(o.OutputBytes, DefaultOutputBytes)
	switch {
	case o.MaxEvents < 0 || o.MaxBytes < 0 || o.MaxEventSize < 0 || o.MaxLogBytes < 0 || o.OutputBytes < 0:
		return errors.New("container-level event limits must not be negative")
	case int64(o.MaxEventSize) > o.MaxBytes:
		return fmt.Errorf("the largest event (%d bytes) exceeds what a container may record in all (%d bytes)", o.MaxEventSize, o.MaxBytes)
	case o.MaxBytes > o.MaxLogBytes:
		return fmt.Errorf("what one container may record (%d bytes) exceeds the whole runtime log (%d bytes)", o.MaxBytes, o.MaxLogBytes)
	}
	return nil
}

func (o *RuntimeOptions) limits() runtimelog.Limits {
	return runtimelog.Limits{MaxEvents: o.MaxEvents, MaxBytes: o.MaxBytes, MaxLogBytes: o.MaxLogBytes}
}

// openRuntime opens the state directory, the per-container output
// directory and the identifier of callers' containers. It returns why
// container-level events are off, or nil.
func (s *Service) openRuntime(opts Options) error {
	o := &s.rtOpts
	if o.StateDir == "" {
		return errors.New("the server runs without a state directory (--state-dir)")
	}
	s.ident, s.identOff = newIdentifier(opts.Identity, o.ProcRoot, s.log)
	dir, err := runtimelog.OpenDir(o.StateDir)
	if err != nil {
		s.log.Error("container-level events off", "err", err)
		return err
	}
	key, err := loadKey(filepath.Join(o.StateDir, "saas-dir-key"))
	if err == nil {
		limits := opts.Limits
		limits.MaxBytes = o.OutputBytes
		s.saasOut, err = s.out.OpenPrivate("containers", limits)
	}
	if err != nil {
		dir.Close()
		s.log.Error("container-level events off", "err", err)
		return err
	}
	s.rtDir, s.saasKey = dir, key
	return nil
}

// saasKeySize is the size of the key that names per-container directories.
const saasKeySize = 32

// loadKey reads the key that names per-container directories, creating it
// on first use (a file of another size is replaced). It is kept so that the
// directories keep their names, and the paths handed out stay valid, across
// restarts; it is written durably, so that a crash cannot leave a part of
// it. The state directory is the server's alone (runtimelog.OpenDir), but
// the read is bounded all the same.
func loadKey(path string) ([]byte, error) {
	b, err := boundedread.ReadFile(path, saasKeySize)
	var tooLarge *boundedread.TooLargeError
	switch {
	case err == nil && len(b) == saasKeySize:
		return b, nil
	case err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.As(err, &tooLarge):
		return nil, err
	}
	key := make([]byte, saasKeySize)
	rand.Read(key)
	if err := durable.WriteFile(path, key, 0o600); err != nil {
		return nil, err
	}
	return key, nil
}

// containerDir names a caller's directory under the containers directory.
func (s *Service) containerDir(c *caller) string {
	m := hmac.New(sha256.New, s.saasKey)
	m.Write([]byte(c.container.ID))
	m.Write([]byte{0})
	m.Write([]byte(strconv.FormatUint(uint64(c.uid), 10)))
	return hex.EncodeToString(m.Sum(nil))[:32]
}
