// Package boundedread reads whole files and streams that must not exceed a
// size. Event logs, sysfs attributes and cgroup files are read whole, and a
// wrong path (a device, /dev/zero, a huge file) must fail rather than fill
// memory. sysfs and securityfs files report a size of 0 or 4096 whatever they
// hold, so the size is learned by reading, never from stat.
package boundedread

import (
	"fmt"
	"io"
	"os"
)

// TooLargeError says the input held more than the limit. Callers wrap it
// with what the input should have been.
type TooLargeError struct {
	Limit int64
}

func (e *TooLargeError) Error() string { return fmt.Sprintf("holds more than %d bytes", e.Limit) }

// ReadAll reads r to its end, failing with *TooLargeError once it has
// produced more than limit bytes.
func ReadAll(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, &TooLargeError{limit}
	}
	return b, nil
}

// ReadFile reads the file at path like ReadAll. Errors opening it are
// returned as they are (they name the path); read errors name it too.
func ReadFile(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := ReadAll(f, limit)
	if err != nil {
		if _, ok := err.(*TooLargeError); ok {
			return nil, err
		}
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return b, nil
}
