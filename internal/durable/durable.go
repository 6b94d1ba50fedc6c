// Package durable replaces files so that, once a call returns, a crash leaves
// either the old content or the new, never a mix, and the new content
// survives: state that stands for a hardware register (the runtime journal,
// the simulated TD's RTMRs) must be as final as an extend.
package durable

import (
	"os"
	"path/filepath"
)

// WriteFile replaces path with content and mode perm: a temporary file in the
// same directory, written and fsynced, renamed over path, then the directory
// fsynced so that the rename itself is on disk. The directory is created if
// needed.
func WriteFile(path string, content []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	_, err = f.Write(content)
	if err == nil {
		err = f.Chmod(perm)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return err
	}
	return SyncDir(dir)
}

// SyncDir fsyncs a directory, making renames and creations in it durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
